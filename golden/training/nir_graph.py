"""NIR graphs in and out of qlif: a feed-forward NIR chain as a float network, an integer model as NIR.

NIR (the Neuromorphic Intermediate Representation, ``nir`` 1.0) states neurons in continuous time;
qlif's neurons step (``docs/semantics.md``). ``docs/nir.md`` derives the mapping; in short, a NIR
``LIF`` ``tau dv/dt = (v_leak - v) + R I``, stepped by Euler with the exporter's ``dt`` (snntorch writes
``dt = 1e-4``), is::

    v[t] = beta v[t-1] + g I[t],   beta = 1 - dt / tau,   g = R dt / tau      (v_leak = 0)

and an ``IF`` (``dv/dt = R I``) is the same with ``beta = 1`` and ``g = R dt``. The gain ``g`` divides
the threshold (the membrane in units of ``g``: the same spikes); thresholds that differ between a
layer's neurons by powers of two fold into the weight columns (exact in float32); ``beta`` becomes the leak shift
``lam`` with ``1 - 2^-lam`` nearest to it (``None`` for ``beta = 1``), the change in float accuracy
measured when data is given. What the float network (:class:`~qlif.golden.training.train.SpikingMLP`)
cannot hold is refused by :class:`NIRImportError`, one line naming the node, its type and why.

:func:`export_graph` writes an integer model as ``Input -> (Linear -> LIF or IF)... -> Output`` with
weights, threshold and ``tau = dt 2^lam``, ``R = 2^lam`` (so ``g = 1`` and ``beta = 1 - 2^-lam``), and
the whole model file in the graph's metadata: NIR cannot say "saturate at k bits", "floor the leak" or
"subtract the threshold", the metadata does, and :func:`map_graph` reads it back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import nir
import numpy as np
import torch

from qlif.golden.data.datasets import DATASET_INPUTS, DATASETS
from qlif.golden.spec.coding import parse_max_rate
from qlif.golden.spec.model import LEAK_SHIFTS, Model, ModelError, leak_beta
from qlif.golden.training.train import SpikingMLP, TrainConfig

__all__ = ["DT", "BETA_TOLERANCE", "NIRImportError", "ImportedLayer", "Imported", "read_graph", "map_graph",
           "nearest_leak_shift", "to_network", "default_dataset", "export_graph", "graph_of_model",
           "METADATA_KEY"]

#: Step of the Euler discretisation, in NIR's time unit (seconds): snntorch's export_to_nir and
#: import_from_nir both fix it at 1e-4 (``tau = dt / (1 - beta)``, ``R = tau / dt``).
DT = 1e-4
#: A beta, gain or threshold this close to the exact value counts as exact: snntorch writes tau and R in
#: float32, so ``1 - dt / tau`` comes back about 1e-8 off (measured 0.87500001 for beta = 0.875).
BETA_TOLERANCE = 1e-6
#: Graph metadata key of the qlif model file (JSON text) that :func:`export_graph` writes.
METADATA_KEY = "qlif_model"
#: What the metadata says about the semantics, for a reader without qlif.
SEMANTICS = ("qlif integer LIF (docs/semantics.md): per step leak u = v - (v >> leak_shift) (arithmetic "
             "shift; none if null), reset by the previous spike (subtract: u = sat(u - threshold); zero: u = 0), "
             "integrate u = sat(u + W[j][i]) for each input j with a spike in ascending j, fire s = u > threshold; "
             "sat clamps to membrane_bits two's complement. The NIR nodes are the same network in real numbers "
             "(tau = dt * 2^leak_shift, r = 2^leak_shift: beta = 1 - 2^-leak_shift, input gain 1); NIR's v_reset = 0 "
             "stands for the layer's reset below, which NIR 1.0 cannot state.")

_NEURONS = (nir.LIF, nir.IF)
_WEIGHTS = (nir.Linear, nir.Affine)
#: Why each node type qlif cannot run is refused (type name -> reason).
_REFUSED = {
    "CubaLIF": "a current-based LIF has a second state (the synaptic current, tau_syn); qlif's neuron adds its "
               "input to the membrane directly",
    "CubaLI": "a current-based leaky integrator has no spikes and a synaptic state; qlif's layers spike",
    "LI": "a leaky integrator has no spikes; qlif predicts from the output layer's spike counts",
    "I": "an integrator has no spikes; qlif predicts from the output layer's spike counts",
    "Conv1d": "convolutions are not in qlif's integer contract (fully connected layers only)",
    "Conv2d": "convolutions are not in qlif's integer contract (fully connected layers only)",
    "AvgPool2d": "pooling is not in qlif's integer contract (fully connected layers only)",
    "SumPool2d": "pooling is not in qlif's integer contract (fully connected layers only)",
    "Delay": "qlif's spikes cross the whole network in the step they are made; it has no delays",
    "Threshold": "a threshold without a membrane is not a qlif neuron",
    "NIRGraph": "a subgraph (snntorch writes recurrent layers so); qlif runs one feed-forward chain",
}


class NIRImportError(ValueError):
    """A graph qlif cannot import; the message names the node, its NIR type and why (one line).

    ``kind="metadata"`` names a key of the graph's metadata instead of a node.
    """

    def __init__(self, node: str, kind: str, why: str):
        self.node, self.kind, self.why = node, kind, why
        where = f"graph metadata {node!r}" if kind == "metadata" else f"node {node!r} ({kind})"
        super().__init__(f"{where}: {why}")


@dataclass(frozen=True)
class ImportedLayer:
    """One weight layer and the neurons after it, in discrete time.

    ``weights`` is float64 [n_in, n_out] (the model file's layout), ``threshold`` the membrane threshold
    after the input gain is divided out, ``beta`` the exact decay per neuron and ``leak_shift`` the nearest
    ``lam`` (``None``: no leak).
    """

    weight_node: str
    neuron_node: str
    neuron_kind: str
    weights: np.ndarray
    threshold: float
    beta: np.ndarray
    leak_shift: int | None

    @property
    def beta_error(self) -> float:
        """Largest ``|beta - (1 - 2^-lam)|`` of the layer's neurons (0 when ``lam`` reproduces it)."""
        return float(np.max(np.abs(self.beta - leak_beta(self.leak_shift))))


@dataclass(frozen=True)
class Imported:
    """A NIR chain mapped to discrete time: its layers, its leak shift and what was folded on the way."""

    layers: tuple[ImportedLayer, ...]
    leak_shift: int | None
    notes: tuple[str, ...] = ()
    model_metadata: dict = field(default_factory=dict)

    @property
    def n_in(self) -> int:
        return int(self.layers[0].weights.shape[0])

    @property
    def exact_leak(self) -> bool:
        """Whether every neuron's beta is ``1 - 2^-lam`` of the chosen leak shift."""
        return all(layer.beta_error <= BETA_TOLERANCE for layer in self.layers)


def nearest_leak_shift(beta: float) -> int | None:
    """The ``lam`` (0..15, or ``None`` for no leak) whose ``1 - 2^-lam`` is nearest to ``beta`` (ties: the
    smaller ``lam``, the faster leak)."""
    candidates = [*LEAK_SHIFTS, None]
    return min(candidates, key=lambda lam: abs(beta - leak_beta(lam)))


def read_graph(path: str | os.PathLike) -> nir.NIRGraph:
    """``nir.read`` a file; a missing or unreadable one raises ``ValueError`` naming it."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such NIR file")
    try:
        return nir.read(path)
    except Exception as e:  # h5py and nir raise many types for a file that is not NIR
        raise ValueError(f"{path}: not a NIR graph ({type(e).__name__}: {e})") from None


def _chain(graph: nir.NIRGraph) -> list[str]:
    """The node names from the one Input to the one Output, checking that the graph is a single chain."""
    nodes, edges = graph.nodes, list(dict.fromkeys(tuple(e) for e in graph.edges))
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise NIRImportError(end, "missing", f"an edge {a!r} -> {b!r} names a node the graph does not have")
        succ[a].append(b)
        pred[b].append(a)
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1:
        name = inputs[1] if inputs else next(iter(nodes), "?")
        raise NIRImportError(name, type(nodes[name]).__name__ if name in nodes else "none",
                             f"the graph has {len(inputs)} Input nodes; qlif takes one input vector")
    if len(outputs) != 1:
        name = outputs[1] if outputs else next(iter(nodes), "?")
        raise NIRImportError(name, type(nodes[name]).__name__ if name in nodes else "none",
                             f"the graph has {len(outputs)} Output nodes; qlif predicts from one output layer")
    _refuse_cycles(nodes, succ, inputs[0])
    order, seen, node = [], set(), inputs[0]
    while True:
        order.append(node)
        seen.add(node)
        kind = type(nodes[node]).__name__
        if len(pred[node]) > 1:
            raise NIRImportError(node, kind, f"{len(pred[node])} inputs ({', '.join(map(repr, pred[node]))}); "
                                 "qlif runs one feed-forward chain")
        if node == outputs[0]:
            break
        if len(succ[node]) != 1:
            why = ("no successor before the Output" if not succ[node] else
                   f"fans out to {', '.join(map(repr, succ[node]))}; qlif runs one feed-forward chain")
            raise NIRImportError(node, kind, why)
        node = succ[node][0]
    stray = [n for n in nodes if n not in seen]
    if stray:
        raise NIRImportError(stray[0], type(nodes[stray[0]]).__name__, "not on the chain from the Input to the Output")
    return order


def _refuse_cycles(nodes: dict, succ: dict[str, list[str]], start: str) -> None:
    """Depth-first from the Input (then from any node left); the first edge back onto the path is refused."""
    state: dict[str, int] = {}                       # 1: on the current path, 2: done
    for root in [start, *nodes]:
        if root in state:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                raise NIRImportError(node, type(nodes[node]).__name__,
                                     f"recurrent edge {node!r} -> {nxt!r} (a cycle); qlif's layers are feed-forward")
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))


def _param(node, attr: str, name: str, kind: str, n: int, *, positive: bool = False,
           allow_inf: bool = False) -> np.ndarray:
    """A neuron parameter as float64 [n]: one value or one per neuron, never NaN (nor infinite unless
    ``allow_inf``, nor <= 0 where ``positive``), else refused naming the first bad neuron."""
    a = np.asarray(getattr(node, attr), dtype=np.float64).ravel()
    if a.size not in (1, n):
        raise NIRImportError(name, kind, f"{attr} has {a.size} values for the {n} neurons of the weights before it")
    bad = np.isnan(a) | (np.isinf(a) & (not allow_inf or a < 0)) | ((a <= 0) if positive else False)
    if np.any(bad):
        i = int(np.argmax(bad))
        need = (("a positive number (inf: no leak)" if allow_inf else "a finite positive number") if positive
                else "a finite number")
        raise NIRImportError(name, kind, f"{attr} must be {need}, not {a[i]:g} (neuron {i if a.size > 1 else 'all'})")
    return np.broadcast_to(a, (n,))


def _neuron(name: str, node, n: int, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(beta, v_threshold, input gain g)`` per neuron of a LIF or IF node of ``n`` neurons."""
    kind = type(node).__name__
    reset = np.zeros(1) if node.v_reset is None else _param(node, "v_reset", name, kind, n)
    if np.any(reset != 0):
        raise NIRImportError(name, kind, f"v_reset = {reset[reset != 0][0]:g}: qlif's resets go to zero or subtract "
                             "the threshold, never to another potential")
    r = _param(node, "r", name, kind, n, positive=True)
    theta = _param(node, "v_threshold", name, kind, n, positive=True)
    if isinstance(node, nir.LIF):
        if np.any(_param(node, "v_leak", name, kind, n) != 0):
            raise NIRImportError(name, kind, "v_leak != 0 drives every neuron by (1 - beta) v_leak each step, a "
                                 "bias, which the integer contract does not have")
        tau = _param(node, "tau", name, kind, n, positive=True, allow_inf=True)
        if np.any(tau < dt):
            raise NIRImportError(name, kind, f"tau = {tau.min():g} is below the step dt = {dt:g} (beta = 1 - dt/tau "
                                 "would be negative); give the producer's --dt")
        leaky = np.isfinite(tau)
        beta = np.where(leaky, 1.0 - dt / np.where(leaky, tau, 1.0), 1.0)
        gain = np.where(leaky, r * dt / np.where(leaky, tau, 1.0), r * dt)
    else:
        beta = np.ones(n)
        gain = r * dt
    # within BETA_TOLERANCE of 1: the exporter's float32 rounding of tau and R, not a gain
    gain = np.where(np.abs(gain - 1.0) <= BETA_TOLERANCE, 1.0, gain)
    return beta, theta, gain


def _one_threshold(t: np.ndarray, name: str, kind: str) -> tuple[float, np.ndarray | None]:
    """The layer's one threshold and the power-of-two factor of each neuron's weight column (``None``: all 1).

    Neuron ``j`` with its own threshold ``t_j`` is neuron ``j`` with threshold ``t`` and weights times
    ``t / t_j``: its membrane scaled by ``t / t_j``. In float32 that is the same neuron, step for step and spike
    for spike, only when ``t / t_j`` is a power of two (scaling by ``2^k`` commutes with rounding); any other
    ratio would round the membrane differently from the producer, so it is refused.
    """
    top = float(np.max(t))
    if np.ptp(t) <= BETA_TOLERANCE * top:
        return float(t[0]), None
    ratio = top / t
    k = np.round(np.log2(ratio))
    off = np.abs(ratio - 2.0 ** k) > BETA_TOLERANCE * ratio
    if np.any(off):
        raise NIRImportError(name, kind, f"v_threshold / input gain differs between neurons ({t.min():g}..{top:g}) by "
                             f"ratios that are not powers of two (neuron {int(np.argmax(off))}: {ratio[off][0]:g}); "
                             "qlif has one threshold per layer, and folding a neuron's own into its weights is exact "
                             "in float32 only for a power-of-two ratio")
    return top, 2.0 ** k


def map_graph(graph: nir.NIRGraph, *, dt: float = DT, reset: str | None = None) -> Imported:
    """Map a feed-forward NIR chain to discrete-time layers (module docstring, ``docs/nir.md``).

    Parameters
    ----------
    graph : nir.NIRGraph
        Input, then any of Flatten and Scale, Linear or Affine (zero bias), LIF or IF, repeated, then Output.
    dt : float
        The producer's step (snntorch: 1e-4).
    reset : str, optional
        ``"subtract"``: the producer reset by subtracting the threshold. NIR 1.0 states only a reset to
        ``v_reset``, and snntorch's ``export_to_nir`` writes ``v_reset = 0`` for both of its resets, so a
        graph without qlif metadata says nothing about it; qlif's float network subtracts. ``None`` takes
        the reset from the metadata of a graph :func:`export_graph` wrote, and refuses otherwise.

    Raises
    ------
    NIRImportError
        The first node (along the chain) that qlif cannot represent, with why.
    """
    if not dt > 0:
        raise ValueError(f"dt must be positive, not {dt!r}")
    meta = _model_metadata(graph)
    order = _chain(graph)
    nodes = graph.nodes
    layers: list[ImportedLayer] = []
    notes: list[str] = []
    weights: np.ndarray | None = None          # [n_in, n_out] of the weight layer awaiting its neurons
    weight_node = ""
    in_scale: np.ndarray | None = None          # a Scale before the next weight layer, on its inputs
    scale_node = ""
    for name in order[1:-1]:
        node = nodes[name]
        kind = type(node).__name__
        if kind in _REFUSED:
            raise NIRImportError(name, kind, _REFUSED[kind])
        if isinstance(node, nir.Flatten):
            notes.append(f"{name} (Flatten): row-major, as the flat stimuli already are")
        elif isinstance(node, nir.Scale):
            s = _finite(node.scale, "scale", name, kind).ravel()
            if weights is not None:      # between weights and neurons: scales each neuron's weights
                weights = _fold(weights, s[None, :] if s.size > 1 else s, name, kind)
                notes.append(f"{name} (Scale): folded into {weight_node!r}'s weights")
            else:                        # on spikes or stimuli: scales the next weight layer's inputs
                in_scale = s if in_scale is None else in_scale * s
                scale_node = name
                notes.append(f"{name} (Scale): folded into the next weight layer's inputs")
        elif isinstance(node, _WEIGHTS):
            if weights is not None:
                raise NIRImportError(name, kind, f"follows the weight layer {weight_node!r} with no neurons between")
            if isinstance(node, nir.Affine):
                _finite(node.bias, "bias", name, kind)
            if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
                raise NIRImportError(name, kind, f"bias (largest |b| = {np.abs(node.bias).max():g}): the integer "
                                     "contract has no bias, a constant current into every neuron each step; train "
                                     "with bias=False")
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2:
                raise NIRImportError(name, kind, f"weight of shape {w.shape}, not [n_out, n_in]")
            _finite(w, "weight", name, kind)
            weights, weight_node = w.T.copy(), name
            if in_scale is not None:
                weights = _fold(weights, in_scale[:, None] if in_scale.size > 1 else in_scale, scale_node, "Scale")
                in_scale = None
            if layers and weights.shape[0] != layers[-1].weights.shape[1]:
                raise NIRImportError(name, kind, f"takes {weights.shape[0]} inputs, the layer before has "
                                     f"{layers[-1].weights.shape[1]} neurons")
        elif isinstance(node, _NEURONS):
            if weights is None:
                raise NIRImportError(name, kind, "a neuron layer without a weight layer before it")
            beta, theta, gain = _neuron(name, node, weights.shape[1], dt)
            if np.any(gain != 1.0):
                shown = f"{gain[0]:.6g}" if np.ptp(gain) == 0 else f"{gain.min():.6g}..{gain.max():.6g}"
                notes.append(f"{name} ({kind}): input gain {shown} divided out of the threshold")
            t = theta / gain
            threshold, factors = _one_threshold(t, name, kind)
            if factors is not None:
                weights = _fold(weights, factors[None, :], name, kind)
                notes.append(f"{name} ({kind}): per-neuron thresholds {t.min():g}..{t.max():g} (over the input gain) "
                             f"folded into {weight_node!r}'s weight columns (factors 2^{int(np.log2(factors.min()))}.."
                             f"2^{int(np.log2(factors.max()))}) under one threshold {threshold:g}")
            lams = sorted({nearest_leak_shift(float(b)) for b in beta}, key=lambda v: -1 if v is None else v)
            if len(lams) > 1:
                raise NIRImportError(name, kind, f"its neurons' betas map to different leak shifts {lams}; qlif has "
                                     "one leak for all neurons")
            lam = lams[0]
            layers.append(ImportedLayer(weight_node=weight_node, neuron_node=name, neuron_kind=kind,
                                        weights=weights, threshold=threshold, beta=beta, leak_shift=lam))
            weights = None
        else:
            raise NIRImportError(name, kind, "not a node qlif maps (Input, Flatten, Scale, Linear, Affine, LIF, IF, "
                                 "Output)")
    if weights is not None:
        raise NIRImportError(weight_node, type(nodes[weight_node]).__name__,
                             "the chain ends in weights, not spikes; qlif predicts from spike counts")
    if in_scale is not None or not layers:
        name = order[-2]
        raise NIRImportError(name, type(nodes[name]).__name__,
                             "no spiking layer" if not layers else "a Scale after the last spiking layer changes "
                             "what the output counts; qlif predicts from spike counts")
    lams = {layer.leak_shift for layer in layers}
    if len(lams) > 1:
        odd = next(layer for layer in layers if layer.leak_shift != layers[0].leak_shift)
        raise NIRImportError(odd.neuron_node, odd.neuron_kind,
                             f"its nearest leak shift {odd.leak_shift} differs from {layers[0].neuron_node!r}'s "
                             f"{layers[0].leak_shift}; qlif's float network has one leak for all layers")
    want = _reset_of(meta, reset, layers[0])
    if want != "subtract":
        raise NIRImportError(layers[0].neuron_node, layers[0].neuron_kind,
                             f"reset {want!r}: qlif's float network (training, quantization) resets by "
                             "subtraction only")
    return Imported(layers=tuple(layers), leak_shift=layers[0].leak_shift, notes=tuple(notes), model_metadata=meta)


def _finite(values, what: str, name: str, kind: str) -> np.ndarray:
    """``values`` as float64, refused unless every entry is finite in float32 (the float network's precision)."""
    a = np.asarray(values, dtype=np.float64)
    bad = ~(np.abs(a) <= np.finfo(np.float32).max)          # NaN, inf, and what float32 makes inf
    if np.any(bad):
        raise NIRImportError(name, kind, f"{what} holds {int(bad.sum())} entries that are not finite float32 numbers "
                             f"(the first: {a[bad].ravel()[0]:g} at {tuple(int(i) for i in np.argwhere(bad)[0])})")
    return a


def _fold(weights: np.ndarray, s, name: str, kind: str) -> np.ndarray:
    """``weights * s``, refused unless exact in float32 (the float network's precision): powers of two are."""
    out = weights * s
    if not np.array_equal(out.astype(np.float32).astype(np.float64),
                          weights.astype(np.float32).astype(np.float64) * s):
        raise NIRImportError(name, kind, "scale factors that do not fold exactly into the float32 weights (powers "
                             "of two do)")
    return out


def _model_metadata(graph: nir.NIRGraph) -> dict:
    """The qlif model file in a graph's metadata (:func:`export_graph`), checked: ``{}`` when there is none.

    The file is validated as ``qlif eval`` would read it, and the coding fields ``qlif import`` takes from its
    ``metadata`` (seed, test_fraction, max_rate, dataset) are checked; anything wrong is one
    :class:`NIRImportError` naming the field.
    """
    text = (graph.metadata or {}).get(METADATA_KEY)
    if text is None:
        return {}

    def refuse(why: str):
        return NIRImportError(METADATA_KEY, "metadata", why)

    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        doc = json.loads(str(text))
    except ValueError as e:
        raise refuse(f"not JSON ({e})") from None
    try:
        Model.from_json(doc)
    except ModelError as e:
        raise refuse(f"not a qlif model file ({e})") from None
    meta = doc.get("metadata", {})
    if not isinstance(meta, dict):
        raise refuse(f"metadata must be a JSON object, not {type(meta).__name__}")
    seed, fraction = meta.get("seed", 0), meta.get("test_fraction", 0.25)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise refuse(f"metadata.seed must be a non-negative integer, not {seed!r}")
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction < 1:
        raise refuse(f"metadata.test_fraction must be a number in (0, 1), not {fraction!r}")
    try:
        parse_max_rate(meta.get("max_rate", "1"))
    except ValueError as e:
        raise refuse(f"metadata.max_rate: {e}") from None
    if not isinstance(meta.get("dataset", ""), str):
        raise refuse(f"metadata.dataset must be a data set name, not {meta['dataset']!r}")
    return doc


def _reset_of(meta: dict, reset: str | None, first: ImportedLayer) -> str:
    if meta:
        resets = {layer.get("reset") for layer in meta.get("layers", [])}
        if reset is not None and resets != {reset}:
            raise NIRImportError(first.neuron_node, first.neuron_kind,
                                 f"--reset {reset} contradicts the graph's qlif metadata (reset {sorted(resets)})")
        return resets.pop() if len(resets) == 1 else "mixed"
    if reset is None:
        raise NIRImportError(first.neuron_node, first.neuron_kind,
                             "NIR says only 'reset to v_reset = 0' and snntorch's export_to_nir writes that for "
                             "reset_mechanism 'subtract' and 'zero' alike; qlif's float network subtracts: pass "
                             "--reset subtract if the producer did")
    return reset


def to_network(imported: Imported, *, timesteps: int, dataset: str, max_rate: str = "1", seed: int = 0,
               test_fraction: float = 0.25, n_classes: int | None = None, exact_beta: bool = False) -> SpikingMLP:
    """The float network of an imported chain, ready for ``save_checkpoint`` (eval mode).

    ``dataset``, ``seed``, ``test_fraction`` and ``max_rate`` are what ``qlif quantize`` calibrates on and
    ``qlif eval`` tests on; ``timesteps`` is T. ``exact_beta`` keeps each neuron's own beta instead of
    ``1 - 2^-lam`` (only to measure what the nearest leak shift changes; such a network is not saved).
    """
    layers = imported.layers
    if len(layers) == 1:
        raise ValueError("a chain of one spiking layer: qlif's float network has at least one hidden layer")
    want = DATASET_INPUTS.get(dataset)
    if want is not None and want != imported.n_in:
        raise ValueError(f"the graph takes {imported.n_in} inputs, the {dataset} data {want}")
    config = TrainConfig(hidden=tuple(int(layer.weights.shape[1]) for layer in layers[:-1]),
                         timesteps=timesteps, leak_shift=imported.leak_shift,
                         threshold=tuple(layer.threshold for layer in layers), seed=seed,
                         test_fraction=test_fraction, dataset=dataset, max_rate=max_rate)
    n_out = int(layers[-1].weights.shape[1])
    if n_classes is not None and n_classes != n_out:
        raise ValueError(f"the graph has {n_out} outputs, the {dataset} data {n_classes} classes")
    net = SpikingMLP(imported.n_in, n_out, config)
    with torch.no_grad():
        for fc, lif, layer in zip(net.fcs, net.lifs, layers, strict=True):
            fc.weight.copy_(torch.from_numpy(layer.weights.T))
            if exact_beta:
                lif.beta = torch.as_tensor(layer.beta, dtype=torch.float32)
    net.eval()
    return net


def default_dataset(imported: Imported) -> str | None:
    """The data set of a qlif-exported graph's metadata, else the one whose input width matches."""
    named = imported.model_metadata.get("metadata", {}).get("dataset")
    if named in DATASETS:
        return named
    return next((name for name, n in DATASET_INPUTS.items() if n == imported.n_in), None)


# -- export ------------------------------------------------------------------------------------------------------


def graph_of_model(model: Model, *, dt: float = DT) -> nir.NIRGraph:
    """The integer model as a NIR graph (module docstring); the model file rides in the metadata."""
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array([model.n_in]))}
    edges, prev = [], "input"
    for l, layer in enumerate(model.layers):
        n = layer.n_out
        nodes[f"fc{l}"] = nir.Linear(weight=layer.weights.T.astype(np.float32))
        theta = np.full(n, float(layer.threshold), dtype=np.float32)
        zero = np.zeros(n, dtype=np.float32)
        if layer.leak_shift is None:
            nodes[f"lif{l}"] = nir.IF(r=np.full(n, 1.0 / dt), v_threshold=theta, v_reset=zero)
        else:
            scale = 2.0 ** layer.leak_shift
            nodes[f"lif{l}"] = nir.LIF(tau=np.full(n, dt * scale), r=np.full(n, scale), v_leak=zero,
                                       v_threshold=theta, v_reset=zero)
        edges += [(prev, f"fc{l}"), (f"fc{l}", f"lif{l}")]
        prev = f"lif{l}"
    nodes["output"] = nir.Output(output_type=np.array([model.n_out]))
    edges.append((prev, "output"))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        METADATA_KEY: json.dumps(model.to_json()),
        "qlif_semantics": SEMANTICS,
        "dt": dt,
        "timesteps": model.timesteps,
    })
    return graph


def export_graph(model: Model, path: str | os.PathLike, *, dt: float = DT) -> None:
    """Write :func:`graph_of_model` with ``nir.write``, to a temporary file renamed into place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        nir.write(tmp, graph_of_model(model, dt=dt))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
