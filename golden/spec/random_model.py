"""Random valid models and designs: the one generator behind the tests, benchmarks and hardware sweeps.

A random model is an ordinary :class:`~qlif.golden.spec.model.Model` (validated like a file), so the
RTL, the golden model and the flow treat it as they would a trained one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qlif.golden.spec.model import Layer, Model, default_codebook

__all__ = ["random_model", "THRESHOLDS", "Design", "random_design", "exercise_failures"]

#: How :func:`random_model` sets each layer's threshold theta:
#: ``"drive"``: about one standard deviation of the drive of a 25 %-active input (capped at
#: ``2^(k-1) - 2``), so that neurons spike and fire, reset and counting are exercised (resource and
#: power figures, board tests); ``"random"``: drawn uniformly from ``0 .. min(2^(k-1) - 1, 24) - 1``
#: (equivalence tests, where low thresholds make spikes frequent).
THRESHOLDS = ("drive", "random")


def random_model(sizes: Sequence[int], *, seed: int = 0, timesteps: int = 8, weight_bits: int = 4,
                 membrane_bits: int = 8, leak_shift: int | None = 3, reset: str = "subtract",
                 codebook: Sequence[int] | None = None, threshold: str = "drive",
                 alternate_resets: bool = False) -> Model:
    """A valid model of the given layer sizes, weights drawn uniformly from the codebook.

    Parameters
    ----------
    sizes : sequence of int
        The inputs, then each layer's neurons, e.g. ``[64, 128, 10]``.
    seed : int
        Seed of the NumPy generator: the same arguments give the same model on every machine.
    timesteps, weight_bits, membrane_bits, leak_shift, reset
        As in the model file (:mod:`qlif.golden.spec.model`), the same for every layer.
    codebook : sequence of int or None
        A custom codebook of ``2^b`` entries; ``None`` for the default one of ``weight_bits``.
    threshold : str
        One of :data:`THRESHOLDS`.
    alternate_resets : bool
        Layers alternate between ``reset`` and the other reset kind, starting with ``reset``.
    """
    if len(sizes) < 2:
        raise ValueError(f"sizes must list the inputs and at least one layer, not {list(sizes)!r}")
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold must be one of {', '.join(THRESHOLDS)}, not {threshold!r}")
    rng = np.random.default_rng(seed)
    book = np.asarray(codebook if codebook is not None else default_codebook(weight_bits))
    other = {"subtract": "zero", "zero": "subtract"}.get(reset, reset)
    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        w = rng.choice(book, size=(n_in, n_out))
        if threshold == "drive":
            drive = float(np.sqrt(0.25 * n_in) * book.std())
            theta = int(min(max(1, round(drive)), (1 << (membrane_bits - 1)) - 2))
        else:
            theta = int(rng.integers(0, max(1, min((1 << (membrane_bits - 1)) - 1, 24))))
        layers.append(Layer(weights=w.astype(np.int64), weight_bits=weight_bits, membrane_bits=membrane_bits,
                            threshold=theta, leak_shift=leak_shift,
                            reset=other if alternate_resets and l % 2 else reset,
                            codebook=None if codebook is None else tuple(codebook)))
    model = Model(timesteps=timesteps, layers=tuple(layers))
    model.validate()
    return model


# --- Constrained-random designs: a model, its stimuli and how to drive them, all from one seed ---

#: Largest layer width drawn for P <= 16 (and 96 for P = 32, 64): partial last groups at every P, and
#: runs short enough for a thousand designs in the Amaranth simulator.
MAX_WIDTH = 40
#: Draws of one layer before the whole design is drawn again (from the next sub-seed).
LAYER_ATTEMPTS = 40
#: Whole-design draws before :func:`random_design` gives up (never reached in practice: see the tests).
DESIGN_ATTEMPTS = 200


@dataclass(frozen=True)
class Design:
    """One constrained-random design: everything a bench needs to run it, drawn from ``seed``.

    Attributes
    ----------
    seed : int
        The seed it came from: ``random_design(seed)`` draws the same design on every machine.
    model : Model
        1-5 layers, every parameter from its whole legal range (:func:`random_design`).
    inputs : numpy.ndarray
        uint8 [S, T, n_in] stimuli, S = 2..3 samples (so a clear runs between samples).
    lanes : int
        P, one of :data:`~qlif.golden.spec.cycles.LANES`.
    gaps : bool
        Drive ``events`` with random ``valid`` gaps and ``spikes`` with random ``ready`` backpressure.
    bad_tokens : bool
        Mix invalid tokens into ``events`` (benches that support it: the Verilog bench).
    saturate : tuple of bool
        Per layer: the draw asked this layer to reach a bound of its membrane, and the guard checked it.
    """

    seed: int
    model: Model
    inputs: np.ndarray
    lanes: int
    gaps: bool
    bad_tokens: bool
    saturate: tuple[bool, ...]

    def describe(self) -> str:
        """One line: sizes, P, T, samples, and each layer's parameters (for failure messages)."""
        m = self.model
        sizes = "-".join(str(n) for n in [m.n_in, *(layer.n_out for layer in m.layers)])
        layers = "; ".join(
            f"b{layer.weight_bits} k{layer.membrane_bits} theta {layer.threshold} "
            f"lam {'-' if layer.leak_shift is None else layer.leak_shift} {layer.reset}"
            f"{' book' if layer.codebook is not None else ''}{' sat' if sat else ''}"
            for layer, sat in zip(m.layers, self.saturate, strict=True))
        extras = "".join([", gaps" if self.gaps else "", ", bad tokens" if self.bad_tokens else ""])
        return (f"design {self.seed}: {sizes}, P={self.lanes}, T={m.timesteps}, "
                f"{self.inputs.shape[0]} samples{extras} [{layers}]")


def exercise_failures(model: Model, x: np.ndarray, saturate: Sequence[bool]) -> list[str]:
    """Why the stimuli ``x`` do not exercise ``model``: empty when every layer spikes in some step and is
    silent in another, and every layer with ``saturate[l]`` reaches a bound of its membrane."""
    from qlif.golden.spec.reference import run

    gold = run(model, x)
    why = []
    for l, (layer, s, v) in enumerate(zip(model.layers, gold.spikes, gold.membranes, strict=True)):
        why += _layer_failures(l, layer, s, v, saturate[l])
    return why


def _layer_failures(l: int, layer: Layer, s: np.ndarray, v: np.ndarray, saturate: bool) -> list[str]:
    active = s.any(axis=-1)                      # [S, T]: the layer spiked in that step
    why = []
    if not active.any():
        why.append(f"layer {l} never spikes")
    if active.all():
        why.append(f"layer {l} spikes in every step")
    if saturate and not ((v == layer.v_max).any() or (v == layer.v_min).any()):
        why.append(f"layer {l} should saturate but never reaches a bound")
    return why


def _draw_width(rng: np.random.Generator, lanes: int) -> int:
    """A width of 1 .. G*P with G = 1..6 groups (capped), usually leaving the last group partial."""
    cap = 96 if lanes >= 32 else MAX_WIDTH
    g = int(rng.choice([1, 1, 2, 2, 3, 4, 6]))
    n = (g - 1) * lanes + int(rng.integers(1, lanes + 1))
    return n if n <= cap else int(rng.integers(1, cap + 1))


def _draw_stimuli(rng: np.random.Generator, samples: int, steps: int, n_in: int) -> np.ndarray:
    """Each sample at its own density (5 %..95 %); sample 0 starts with an empty step, and one step of
    one sample is all ones half of the time."""
    density = rng.uniform(0.05, 0.95, size=(samples, 1, 1))
    x = (rng.random((samples, steps, n_in)) < density).astype(np.uint8)
    x[0, 0] = 0
    if rng.random() < 0.5:
        x[int(rng.integers(samples)), int(rng.integers(steps))] = 1
    return x


def _draw_layer(rng: np.random.Generator, x: np.ndarray, n_out: int, saturate: bool) -> Layer:
    """One layer fed by spikes ``x``, with weights scaled to its threshold (and beyond its bounds when
    ``saturate``) so that the exercise guard usually accepts it."""
    n_in = x.shape[-1]
    b = int(rng.choice([1, 2, 4, 8]))
    k = int(rng.integers(2, 17))
    top = (1 << (k - 1)) - 2                      # the largest legal theta
    u = rng.random()
    theta = 0 if u < 0.12 else top if u < 0.27 else int(top * rng.random() ** 3)
    # lam = 0 (no memory between steps) gets a weight of its own: with subtract and theta at its maximum
    # it takes the reset to its floor.
    u = rng.random()
    leak = None if u < 0.25 else 0 if u < 0.35 else int(rng.integers(1, 16))
    reset = str(rng.choice(["subtract", "zero"]))
    # A weight of about this size makes a typical step's drive (active inputs x weight) a fraction to a
    # few times theta; asked to saturate, a few times the register's range instead.
    active = max(1.0, float(x.sum(axis=-1).mean()))
    scale = (theta + 1) * float(np.exp(rng.uniform(np.log(0.3), np.log(4.0)))) / active
    if saturate:
        scale = max(scale, (top + 2) * float(rng.uniform(1.0, 3.0)) / active)
    default = np.asarray(default_codebook(b))
    codebook = None
    if default.max() < scale / 2 or rng.random() < 0.3:
        if b == 1:
            entries = np.array([-scale * rng.uniform(0, 2), scale * rng.uniform(0.5, 2)])
        else:
            entries = scale * rng.uniform(-2, 2, size=1 << b)
            entries[int(rng.integers(1 << b))] = scale * rng.uniform(0.5, 2)      # some drive upwards
        entries = np.clip(np.rint(entries), -(1 << 15), 1 << 15).astype(np.int64)
        if rng.random() < 0.2:                    # the extreme entries of the format
            entries[int(np.argmin(entries))], entries[int(np.argmax(entries))] = -(1 << 15), 1 << 15
        codebook = tuple(int(c) for c in entries)
    book = np.asarray(codebook if codebook is not None else default, dtype=np.int64)
    # A tilt towards the positive entries, so that layers without leak or with negative codebooks
    # still reach their threshold.
    p = np.exp(rng.uniform(0.0, 1.5) * np.sign(book))
    w = rng.choice(book, size=(n_in, n_out), p=p / p.sum())
    return Layer(weights=w, weight_bits=b, membrane_bits=k, threshold=theta, leak_shift=leak, reset=reset,
                 codebook=codebook)


def random_design(seed: int, *, max_layers: int = 5) -> Design:
    """Draw a design from every parameter's whole legal range, kept only if its stimuli exercise it.

    Drawn: P from :data:`~qlif.golden.spec.cycles.LANES`, T = 1..20, 2..3 samples, 1..``max_layers``
    layers of widths that mostly leave the last group partial (:data:`MAX_WIDTH`), and per layer b in
    {1, 2, 4, 8}, k = 2..16, theta = 0 .. 2^(k-1)-2 (0 and the maximum each with a weight of their own),
    leak shift null or 0..15, either reset, the default codebook or a custom one (sometimes with the
    extreme entries -32768 and 32768), and whether it must saturate; and whether the bench adds gaps,
    backpressure and invalid tokens. The **exercise guard** (:func:`exercise_failures`) keeps a layer
    only if, on the golden model, it spikes in some step and is silent in another and reaches a bound
    when asked to; a layer is drawn again up to :data:`LAYER_ATTEMPTS` times, then the whole design
    from the next sub-seed. The same seed gives the same design on every machine.

    Raises
    ------
    RuntimeError
        No draw passed the guard in :data:`DESIGN_ATTEMPTS` attempts (names the seed).
    """
    from qlif.golden.spec.cycles import LANES
    from qlif.golden.spec.reference import run_layer

    if not 1 <= max_layers <= 5:
        raise ValueError(f"max_layers must be 1..5, not {max_layers!r}")
    for attempt in range(DESIGN_ATTEMPTS):
        rng = np.random.default_rng([seed, attempt])
        lanes = int(rng.choice(LANES))
        steps = int(rng.integers(1, 21))
        x = _draw_stimuli(rng, int(rng.integers(2, 4)), steps, _draw_width(rng, lanes))
        depth = int(rng.integers(1, max_layers + 1))
        layers, wants, inp = [], [], x
        for l in range(depth):
            n_out = _draw_width(rng, lanes)
            saturate = bool(rng.random() < 0.35)
            for _ in range(LAYER_ATTEMPTS):
                layer = _draw_layer(rng, inp, n_out, saturate)
                s, v = run_layer(layer, inp)
                if not _layer_failures(l, layer, s, v, saturate):
                    break
            else:
                break
            layers.append(layer)
            wants.append(saturate)
            inp = s
        if len(layers) < depth:
            continue
        model = Model(timesteps=steps, layers=tuple(layers))
        model.validate()
        return Design(seed=seed, model=model, inputs=x, lanes=lanes, gaps=bool(rng.random() < 0.5),
                      bad_tokens=bool(rng.random() < 0.25), saturate=tuple(wants))
    raise RuntimeError(f"random design {seed}: no draw passed the exercise guard in {DESIGN_ATTEMPTS} attempts")
