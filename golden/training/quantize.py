"""Post-training quantization of a trained :class:`~qlif.golden.training.train.SpikingMLP` into a :class:`Model`.

Per layer ``l`` (``docs/training.md``):

* clip value ``c_l`` = a percentile ``P_l`` of ``|W_l|``: by default calibrated per layer
  (:func:`calibrate_clips`: coordinate descent over :data:`CLIP_GRID` from every layer at 99.9, scoring the
  integer network's predictions against the float network's on the first :data:`CLIP_SAMPLES` calibration
  stimuli, never test data), or one fixed ``percentile`` for every layer;
* scale ``s_l = c_l / (2^(b-1) - 1)`` and integer weights ``clip(round(W_l / s_l), -2^(b-1), 2^(b-1)-1)``,
  the default two's complement codebook. For ``b = 1`` (codebook ``[-1, +1]``, no zero) the scale is
  ``s_l = mean(|clip(W_l, -c_l, c_l)|)`` (the one that minimises the squared error of ``s_l * sign(W_l)``)
  and the signs are chosen with error feedback on calibration data (:func:`binarize_with_error_feedback`):
  plain ``sign(W_l)`` loses 12 points on the digits where error feedback loses 2;
* threshold ``theta_int = round(theta_l / s_l)`` on the same scale, so the integer membrane is the float
  membrane divided by ``s_l``;
* leak shift: the float network's beta (:func:`qlif.golden.spec.model.leak_beta`) gives ``lam`` back exactly;
* membrane bits ``k``: the fewest bits that hold every membrane value the integer model reaches on
  the calibration stimuli without saturating, plus ``margin_bits`` (1) of headroom,
  and at least enough for ``theta_int``; at most 16. A fixed ``k`` can be forced instead; if
  ``theta_int`` does not fit it (``theta_int <= 2^(k-1) - 2``), the layer's scale grows to
  ``theta / (2^(k-1) - 2)`` (coarser weights; ``2 theta`` at k = 2) so that it does.

The calibration stimuli (:func:`calibration_stimuli`) are the network's held-out slice when its config records
one (``TrainConfig.holdout``: training samples the float network never trained on), else the first training
samples; the model metadata's ``calibration_data`` says which.

The quantization methods (``ptq`` here, the quantization-aware ones in :mod:`qlif.golden.training.qat`) are
listed in :data:`qlif.golden.training.methods.METHODS` with the weight bits each can produce;
``docs/quantization.md`` compares them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from qlif.golden.data.datasets import load_split
from qlif.golden.data.split import holdout_indices
from qlif.golden.spec.coding import encode
from qlif.golden.spec.model import LEAK_SHIFTS, MEMBRANE_BITS, WEIGHT_BITS, Layer, Model, leak_beta
from qlif.golden.spec.reference import predict, run, run_layer
from qlif.golden.training.train import SpikingMLP

__all__ = ["quantize_weights", "binarize_with_error_feedback", "quantize_threshold", "leak_shift_of",
           "error_feedback_factor", "bits_for_range", "quantize", "calibrate_clips", "weight_memory_bits",
           "CALIBRATION_SAMPLES", "CLIP_GRID", "CLIP_SAMPLES", "CLIP_CRITERION", "CLIP_START", "CLIP_PASSES",
           "output_disagreement", "calibration_stimuli", "CalibrationSet",
           "coding_metadata"]

#: Samples the membrane-width calibration runs on, at most: the first ones of the held-out slice, else of
#: the training split (:func:`calibration_stimuli`).
CALIBRATION_SAMPLES = 5000
#: Clip percentiles of ``|W|`` the clip calibration tries in every layer (:func:`calibrate_clips`): from
#: 50 (2-bit layers need heavy clipping) to 100 (no clipping), finer where 4- and 8-bit layers end up.
CLIP_GRID = (50.0, 60.0, 70.0, 80.0, 90.0, 95.0, 97.0, 98.0, 99.0, 99.5, 99.8, 99.9, 99.95, 100.0)
#: Samples the clip calibration compares on, at most: the first ones of the calibration stimuli.
CLIP_SAMPLES = 1000
#: The clip calibration's criterion, as it is recorded in the model metadata.
CLIP_CRITERION = ("output prediction disagreement with the float network (ties: sum of |spike count difference|), "
                  "every layer end to end, coordinate descent from all-99.9, strict improvements only")
#: Where the clip calibration starts, every layer: the fixed default, so the result is never worse than it.
CLIP_START = 99.9
#: Passes of the coordinate descent over the layers.
CLIP_PASSES = 2


def quantize_weights(weights: np.ndarray, bits: int, percentile: float = 99.9) -> tuple[np.ndarray, float]:
    """Quantize one layer's float weights to ``bits``-bit integers with percentile clipping.

    Parameters
    ----------
    weights : numpy.ndarray
        Float weights [n_in, n_out].
    bits : int
        Weight bits b, one of 1, 2, 4, 8.
    percentile : float
        Percentile (0 < p <= 100) of ``|weights|`` used as the clip value; 100 means the largest.

    Returns
    -------
    (numpy.ndarray, float)
        int64 weights in the default codebook of ``bits`` and the scale ``s`` (float value of one unit).
    """
    if bits not in WEIGHT_BITS:
        raise ValueError(f"bits must be one of {WEIGHT_BITS}, not {bits!r}")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], not {percentile!r}")
    w = np.asarray(weights, dtype=np.float64)
    clip = float(np.percentile(np.abs(w), percentile))
    if not clip > 0.0:
        raise ValueError("weights are all zero at this percentile; nothing to scale")
    if bits == 1:
        scale = float(np.abs(np.clip(w, -clip, clip)).mean())
        return _requantize(w, bits, scale), scale
    scale = clip / ((1 << (bits - 1)) - 1)
    return _requantize(w, bits, scale), scale


def binarize_with_error_feedback(weights: np.ndarray, inputs: np.ndarray, scale: float, *,
                                 damp: float = 0.1, factor: tuple | None = None) -> np.ndarray:
    """1-bit codes (+1/-1, int64 [n_in, n_out]) of one layer whose currents on ``inputs`` stay close to the
    float layer's.

    The currents of the layer are ``X @ W`` for the calibration inputs ``X`` ([M, n_in], the spikes the
    layer receives, one row per sample and step). Rounding every weight to ``scale * sign(W)`` on its own
    ignores that errors of inputs that fire together add up. Here (GPTQ/OBQ, Frantar et al. 2022, with
    1-bit codes) the inputs are quantized one at a time, most active first; the error a row of weights
    makes, ``W[j] - scale * sign(W[j])``, is compensated by the rows not yet quantized, through the
    inverse of ``H = X^T X`` (damped by ``damp`` times its mean diagonal): the least-squares correction of
    ``X @ W`` on the calibration data. No gradient and no training: a linear solve per layer.

    Parameters
    ----------
    weights : numpy.ndarray
        Float weights [n_in, n_out].
    inputs : numpy.ndarray
        0/1 [M, n_in] calibration inputs of the layer.
    scale : float
        The unit ``s``: code ``q`` stands for the weight ``s * q``.
    damp : float
        Damping of ``H``, times its mean diagonal.
    factor : tuple, optional
        :func:`error_feedback_factor` of ``inputs`` and ``damp``, when it is already computed (it does not
        depend on the weights or the scale; the clip calibration tries several scales per layer).
    """
    order, u = error_feedback_factor(inputs, damp=damp) if factor is None else factor
    w = np.array(weights, dtype=np.float64)[order]
    q = np.empty_like(w)
    for j in range(len(w)):
        q[j] = np.where(w[j] >= 0, 1.0, -1.0)
        err = (w[j] - scale * q[j]) / u[j, j]
        w[j + 1:] -= np.outer(u[j, j + 1:], err)
    codes = np.empty_like(q)
    codes[order] = q
    return codes.astype(np.int64)


def error_feedback_factor(inputs: np.ndarray, *, damp: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The input order (most active first) and the upper Cholesky factor ``U`` of ``H^-1`` (``H^-1 = U^T U``,
    in that order) that :func:`binarize_with_error_feedback` compensates through."""
    x = np.asarray(inputs, dtype=np.float32)
    h = (x.T @ x).astype(np.float64)          # counts: exact in float32 below 2^24 rows
    diag = np.diag(h).copy()
    h[np.diag_indices_from(h)] += damp * diag.mean() + (diag == 0)    # never-active inputs: any sign
    order = np.argsort(-diag, kind="stable")
    h = h[np.ix_(order, order)]
    return order, np.linalg.cholesky(np.linalg.inv(h)).T


def quantize_threshold(threshold: float, scale: float) -> int:
    """The integer threshold ``round(threshold / scale)`` (never negative)."""
    return max(0, int(round(threshold / scale)))


def leak_shift_of(beta: float) -> int | None:
    """``lam`` with ``beta == 1 - 2^-lam`` (``None`` for ``beta == 1``, no leak); ValueError otherwise."""
    if beta == 1.0:
        return None
    for lam in LEAK_SHIFTS:
        if math.isclose(beta, leak_beta(lam), rel_tol=0, abs_tol=1e-7):
            return lam
    raise ValueError(f"beta must be 1 - 2^-lam for an integer lam in 0..15, not {beta!r}")


def bits_for_range(lo: int, hi: int) -> int:
    """Fewest two's complement bits k with ``-2^(k-1) <= lo`` and ``hi <= 2^(k-1) - 1`` (at least 2)."""
    k = 2
    while lo < -(1 << (k - 1)) or hi > (1 << (k - 1)) - 1:
        k += 1
    return k


def weight_memory_bits(model: Model) -> int:
    """Weight memory of ``model`` in bits: ``n_weights * b`` per layer, plus 16 bits per entry of a
    custom codebook (a default two's complement codebook needs no table)."""
    total = 0
    for layer in model.layers:
        total += layer.weights.size * layer.weight_bits
        if layer.codebook is not None:
            total += 16 * len(layer.codebook)
    return total


def quantize(net: SpikingMLP, *, weight_bits: int | Sequence[int] = 4, percentile: float | None = None,
             membrane_bits: int | Sequence[int] | None = None, margin_bits: int = 1,
             calibration: CalibrationSet | np.ndarray | None = None, split=None, data_dir=None,
             progress: bool = False) -> Model:
    """Quantize a trained network into a validated integer :class:`Model`.

    Parameters
    ----------
    net : SpikingMLP
        The trained float network (its config gives T, beta, thresholds and the data split).
    weight_bits : int or sequence of int
        Weight bits b per layer (one value for all layers, or one per layer).
    percentile : float, optional
        One clip percentile of ``|W|`` for every layer (0 < P <= 100). By default (None) each layer's is
        calibrated (:func:`calibrate_clips`) on the first :data:`CLIP_SAMPLES` calibration stimuli.
    membrane_bits : int or sequence of int, optional
        Force k per layer; by default chosen from the calibration run (module docstring).
    margin_bits : int
        Extra bits above the calibrated range when ``membrane_bits`` is None.
    calibration : CalibrationSet or numpy.ndarray, optional
        Stimuli (uint8 [S, T, n_in]) for choosing the clips and k and for the error feedback of 1-bit
        layers; default :func:`calibration_stimuli` of ``split`` (else of the data set of the network's
        config, for MNIST read from ``data_dir``): the held-out slice the config records, else the first
        training samples. Never the test split. A bare array is recorded as ``"given"``.
    progress : bool
        Show the clip calibration's progress (a tqdm bar on stderr).

    Returns
    -------
    Model
        With metadata ``{"created_by": "qlif.golden.training.quantize", "scales", "float_thresholds",
        "clip_percentiles", "calibration", "calibration_data", "seed", "test_fraction", ...}``
        (``"percentile"`` too when it was fixed) so :mod:`qlif.golden.training.evaluate` can rebuild the same
        test split; ``calibration_data`` is :attr:`CalibrationSet.metadata` (``"none"`` when nothing was
        calibrated on data).
    """
    cfg = net.config
    n_layers = len(net.fcs)
    bits = _per_layer(weight_bits, n_layers, "weight_bits")
    forced = None if membrane_bits is None else _per_layer(membrane_bits, n_layers, "membrane_bits")
    for k in forced or ():
        if k not in MEMBRANE_BITS:
            raise ValueError(f"membrane_bits must be 2..16, not {k!r}")
    if percentile is not None and not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], not {percentile!r}")
    lam = leak_shift_of(cfg.beta)
    if calibration is None and (forced is None or 1 in bits or percentile is None):
        calibration = calibration_stimuli(net, split=split, data_dir=data_dir)
    if isinstance(calibration, np.ndarray):
        calibration = CalibrationSet(calibration, "given")
    source = "none" if calibration is None else calibration.metadata
    calibration = None if calibration is None else calibration.x
    factors = ([None if b != 1 else error_feedback_factor(x) for x, b in
                zip(_float_layer_inputs(net, calibration), bits, strict=True)] if 1 in bits else [None] * n_layers)
    # The registers the layers run with while the clips are chosen: the forced ones, else 16 bits, in which
    # nothing a well-trained layer reaches saturates (k is calibrated afterwards).
    search_ks = forced or [max(MEMBRANE_BITS)] * n_layers
    codes = [functools.partial(_layer_codes, w, b, theta, k, factor)
             for w, b, theta, k, factor in zip(net.weights(), bits, net.thresholds, search_ks, factors, strict=True)]
    if percentile is None:
        layer_at = [functools.partial(_layer_at, code, b, k, lam) for code, b, k in zip(codes, bits, search_ks,
                                                                                         strict=True)]
        clips = calibrate_clips(net, layer_at, calibration[:CLIP_SAMPLES], progress=progress)
        how = {"calibration": {"criterion": CLIP_CRITERION, "samples": int(min(len(calibration), CLIP_SAMPLES)),
                               "grid": list(CLIP_GRID), "start": CLIP_START, "passes": CLIP_PASSES}}
    else:
        clips = [percentile] * n_layers
        how = {"percentile": percentile, "calibration": "none"}
    ints, scales, thetas = zip(*(code(p) for code, p in zip(codes, clips, strict=True)), strict=True)

    def build(ks: Sequence[int]) -> Model:
        layers = tuple(
            Layer(weights=wi, weight_bits=b, membrane_bits=k, threshold=th, leak_shift=lam, reset="subtract")
            for wi, b, k, th in zip(ints, bits, ks, thetas, strict=True))
        return Model(timesteps=cfg.timesteps, layers=layers, metadata={
            "created_by": "qlif.golden.training.quantize",
            "scales": list(scales),
            "float_thresholds": net.thresholds,
            "method": "ptq",
            "clip_percentiles": [float(p) for p in clips],
            **how,
            "calibration_data": source,
            "seed": cfg.seed,
            "test_fraction": cfg.test_fraction,
            "dataset": cfg.dataset,
            **coding_metadata(cfg),
        })

    if forced is None:
        # At 16 bits nothing a well-trained layer reaches saturates; measure what each layer needs.
        wide = run(build([max(MEMBRANE_BITS)] * n_layers), calibration).membranes
        ks = []
        for th, v in zip(thetas, wide, strict=True):
            need = bits_for_range(int(v.min()), max(int(v.max()), th + 2)) + margin_bits
            ks.append(min(need, max(MEMBRANE_BITS)))
    else:
        ks = forced
    model = build(ks)
    model.validate()
    return model


def calibrate_clips(net: SpikingMLP, layer_at: Sequence[Callable[[float], Layer]], x: np.ndarray, *,
                    progress: bool = False) -> list[float]:
    """Choose each layer's clip percentile from :data:`CLIP_GRID` by coordinate descent on the output.

    The criterion (:data:`CLIP_CRITERION`, :func:`output_disagreement`): the integer network's output on
    the calibration stimuli ``x`` against the float network's, as the share of samples whose prediction
    (argmax of the spike counts, the contract's tie-break to the lowest index) differs, ties broken by the
    sum of ``|count difference|`` over samples and classes. Every layer, hidden ones included, is scored
    end to end on it: what a hidden layer's clip is worth is what it does to the prediction (a per-layer
    spike criterion weighs every spike alike and misled on the imported snntorch networks, docs/nir.md).

    The search starts from every layer at :data:`CLIP_START` (99.9, the fixed default, itself in the grid)
    and makes :data:`CLIP_PASSES` passes over the layers, first to last; in each, the layer's every grid
    clip is tried with the others held, and a clip replaces the current one only if it scores strictly
    better. So the result never scores worse than all-99.9 on the calibration stimuli. No labels are read:
    only the float network is matched. Each layer's spikes are cached by the clips of the layers up to it,
    so a layer runs once per distinct prefix (on MNIST 784-500-10: 15 runs of the first layer in all).

    Parameters
    ----------
    net : SpikingMLP
        The float network.
    layer_at : sequence of callables
        Per layer, ``layer_at[l](P)``: the integer layer at clip percentile ``P`` (with the membrane width
        it runs with during the search).
    x : numpy.ndarray
        uint8 [S, T, n_in] calibration stimuli (the held-out slice or training data, never test data).
    progress : bool
        Show a tqdm bar over the candidates tried.

    Returns
    -------
    list of float
        The chosen percentile per layer.
    """
    from qlif.golden.training.evaluate import float_spikes

    target = float_spikes(net, x)[-1]
    n_layers = len(layer_at)
    cache: dict[tuple[float, ...], np.ndarray] = {(): x}

    def spikes(clips: tuple[float, ...]) -> np.ndarray:
        # The spikes of layer len(clips) - 1 with the layers up to it at ``clips``.
        if clips not in cache:
            cache[clips] = run_layer(layer_at[len(clips) - 1](clips[-1]), spikes(clips[:-1]))[0]
        return cache[clips]

    clips = (CLIP_START,) * n_layers
    best = output_disagreement(spikes(clips), target)
    grid = sorted(CLIP_GRID, reverse=True)        # equal scores: the first found, the larger percentile
    with tqdm(total=CLIP_PASSES * n_layers * (len(grid) - 1), desc="clip calibration", unit="clip",
              disable=not progress, leave=False) as bar:
        for _ in range(CLIP_PASSES):
            for l in range(n_layers):
                current = clips
                for p in grid:
                    if p == current[l]:
                        continue
                    candidate = current[:l] + (p,) + current[l + 1:]
                    score = output_disagreement(spikes(candidate), target)
                    if score < best:
                        best, clips = score, candidate
                    bar.update(1)
                bar.set_postfix(disagree=best[0], clips="/".join(f"{c:g}" for c in clips))
    return list(clips)


def output_disagreement(spikes: np.ndarray, target: np.ndarray) -> tuple[int, int]:
    """The clip calibration's score of output spikes against the float network's (smaller is better):
    (samples whose prediction differs, sum of ``|count difference|``), both over uint8 [S, T, n_out]."""
    counts, want = spikes.sum(axis=1, dtype=np.int64), target.sum(axis=1, dtype=np.int64)
    return int(np.count_nonzero(predict(spikes) != predict(target))), int(np.abs(counts - want).sum())


def _layer_at(code, b: int, k: int, leak_shift: int | None, percentile: float) -> Layer:
    wi, _, th = code(percentile)
    return Layer(weights=wi, weight_bits=b, membrane_bits=k, threshold=th, leak_shift=leak_shift, reset="subtract")


def _layer_codes(w: np.ndarray, b: int, theta: float, k: int, factor,
                 percentile: float) -> tuple[np.ndarray, float, int]:
    """One layer's integer weights, scale and integer threshold at a clip percentile, for k-bit membranes."""
    wi, s = quantize_weights(w, b, percentile)
    top = (1 << (k - 1)) - 2                                    # the largest threshold k allows
    if quantize_threshold(theta, s) > top:
        # The register cannot hold this threshold: a coarser scale so that it can
        # (k = 2 allows only theta_int = 0: the unit is then 2 theta, so theta is half a unit).
        s = theta / top if top else 2.0 * theta
        wi = _requantize(w, b, s)
    if b == 1:
        wi = binarize_with_error_feedback(w, None, s, factor=factor)
    return wi, s, min(quantize_threshold(theta, s), top)


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration stimuli and where they come from.

    Members
    -------
    x : numpy.ndarray
        uint8 [S, T, n_in] rate-coded stimuli.
    split : str
        ``"holdout"`` (the network's held-out slice of the training split), ``"training"`` (training
        samples the network trained on; its config records no held-out slice) or ``"given"`` (by the caller).
    first : int or None
        Index in the training split of ``x``'s first sample (``None`` for ``"given"``); the samples are
        ``first .. first + S - 1``.
    """

    x: np.ndarray
    split: str
    first: int | None = None

    @property
    def metadata(self) -> dict:
        """What the model metadata records as ``calibration_data``."""
        doc = {"split": self.split, "samples": int(len(self.x))}
        if self.first is not None:
            doc["indices"] = [self.first, self.first + len(self.x)]     # half-open, in the training split
        if self.split == "training":
            doc["why"] = "the checkpoint records no held-out slice"
        return doc

    def describe(self) -> str:
        """One phrase for a command's output."""
        n = len(self.x)
        if self.split == "given":
            return f"{n} given samples"
        span = f"training samples {self.first}..{self.first + n - 1}"
        if self.split == "holdout":
            return f"the held-out slice ({span}, never trained on)"
        return f"the training split ({span}; the checkpoint records no held-out slice)"


def calibration_stimuli(net, *, split=None, data_dir=None) -> CalibrationSet:
    """The network's calibration stimuli, rate-coded at its coding: at most :data:`CALIBRATION_SAMPLES`.

    When the network's config records a held-out slice (``holdout``, the last samples of the training
    split, :func:`qlif.golden.data.split.holdout_indices`), its first samples, which the network never
    trained on; else the first samples of the training split. ``split`` is the data (default: the data set
    of the config, for MNIST read from ``data_dir``); only its training part is read.
    """
    cfg = net.config
    holdout = cfg.holdout
    if split is None:
        split = load_split(cfg.dataset, data_dir=data_dir, seed=cfg.seed, test_fraction=cfg.test_fraction,
                           train_count=None if holdout else CALIBRATION_SAMPLES)
    if holdout:
        first, kind = holdout_indices(len(split.y_train), holdout).start, "holdout"
    else:
        first, kind = 0, "training"
    x = split.x_train[first:first + CALIBRATION_SAMPLES]
    return CalibrationSet(encode(x, cfg.timesteps, max_rate=cfg.max_rate), kind, first)


def coding_metadata(cfg) -> dict:
    """The model metadata that names the rate coding of a network's config: ``{"max_rate": "1/8"}``, or
    nothing for the default rate 1 (so default models are unchanged; readers default to 1)."""
    return {} if cfg.max_rate == "1" else {"max_rate": cfg.max_rate}


def _float_layer_inputs(net: SpikingMLP, x: np.ndarray) -> list[np.ndarray]:
    """The spikes each layer of the float network receives on stimuli ``x``, as [S * T, n_in] rows."""
    from qlif.golden.training.evaluate import float_spikes

    inputs = [x, *float_spikes(net, x)[:-1]]
    return [a.reshape(-1, a.shape[-1]) for a in inputs]


def _requantize(w: np.ndarray, bits: int, scale: float) -> np.ndarray:
    if bits == 1:
        return np.where(w >= 0, 1, -1).astype(np.int64)
    top = (1 << (bits - 1)) - 1
    return np.clip(np.round(w / scale), -top - 1, top).astype(np.int64)


def _per_layer(value: int | Sequence[int], n: int, name: str) -> list[int]:
    if isinstance(value, (int, np.integer)):
        return [int(value)] * n
    values = [int(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name} needs one value or {n} (one per layer), not {len(values)}")
    return values
