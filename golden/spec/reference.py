"""The integer reference model: the specification the RTL matches bit for bit.

Semantics (``docs/semantics.md``), per layer and timestep ``t``, for every neuron ``i``::

    u = v                      if leak_shift is None
    u = v - (v >> leak_shift)  otherwise (arithmetic shift)
    u = sat(u - theta * s)     reset "subtract"      |  u = 0 if s else u   reset "zero"
    for j ascending with x[j] = 1:  u = sat(u + W[j][i])
    s = u > theta;  v = u

Everything is vectorised over samples and neurons with numpy; ``tests/test_golden.py`` and
``tests/test_quant_reference.py`` check it against the contract read literally (one sample, one neuron,
one addition at a time). Two things make it fast without changing a value:

* **Integration without saturation is a matrix product.** For each sample the bounds
  ``u + x @ max(W, 0)`` (the highest any partial sum can reach) and ``u + x @ min(W, 0)`` (the lowest)
  are computed; where both stay inside the register for every neuron, no addition saturates, the order
  does not matter and the result is their sum, ``u + x @ W``. The products are float BLAS products:
  numpy has no BLAS for integers (its int64 products are about 17 times slower), and a float product of
  0/1 inputs and integer weights is exact while every partial sum is an integer the float represents
  exactly: below 2^24 in float32 (used when ``n_in * max|W|`` is), else below 2^53 in float64
  (``|W| <= 2^15`` and ``n_in <= 2^20`` are checked).
* **The other samples add input by input**, exactly as the contract says, vectorised over samples by
  event rank (:func:`integrate_in_order`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qlif.golden.spec.coding import check_frames, encode_frames, frame_levels_of, max_rate_of
from qlif.golden.spec.cycles import cycle_model
from qlif.golden.spec.model import Layer, Model, ModelError

__all__ = ["Result", "check_inputs", "frame_inputs", "integrate_in_order", "run_layer", "run", "predict"]


@dataclass
class Result:
    """What the golden model (and the RTL, via ``qlif sim``) records for ``S`` samples and ``T`` steps."""

    spikes: list[np.ndarray]      # per layer: uint8 [S, T, N_l]
    membranes: list[np.ndarray]   # per layer: int32 [S, T, N_l]
    prediction: np.ndarray        # int64 [S]
    cycles: np.ndarray            # int64 [S, T], the cycle model of docs/architecture.md

    def select(self, samples) -> Result:
        """The results of a subset of samples (an index, slice or index array), shapes kept."""
        if isinstance(samples, (int, np.integer)):
            samples = [samples]
        return Result(spikes=[s[samples] for s in self.spikes], membranes=[v[samples] for v in self.membranes],
                      prediction=self.prediction[samples], cycles=self.cycles[samples])

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for l, (s, v) in enumerate(zip(self.spikes, self.membranes, strict=True)):
            out[f"layer{l}_spikes"] = s
            out[f"layer{l}_membrane"] = v
        out["prediction"] = self.prediction
        out["cycles"] = self.cycles
        return out


def check_inputs(model: Model, x: np.ndarray) -> np.ndarray:
    """Validate stimuli ``x`` (uint8 [S, T, n_in] of 0/1) against ``model``; return them as uint8."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ModelError("inputs", f"must be a 3-D array [samples, timesteps, n_in], not shape {x.shape}")
    if x.shape[1] != model.timesteps or x.shape[2] != model.n_in:
        raise ModelError(
            "inputs",
            f"shape {x.shape} does not match the model: expected [S, {model.timesteps}, {model.n_in}]")
    if x.dtype.kind not in "biu":
        raise ModelError("inputs", f"must be an integer array of 0/1, not dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ModelError("inputs", "values must be 0 or 1")
    return x.astype(np.uint8)


def frame_inputs(model: Model, frames: np.ndarray) -> np.ndarray:
    """The stimuli (uint8 [S, T, n_in]) that the on-chip encoder makes of ``frames`` (integers [S, n_in],
    ``0 ..`` the model's frame levels) with the model's T and maximum rate (docs/semantics.md, "On-chip
    encoding"). Anything wrong is a :class:`ModelError` naming ``frames`` or the metadata field."""
    try:
        levels = frame_levels_of(model.metadata)
        rate = max_rate_of(model.metadata)
    except ValueError as e:
        raise ModelError("metadata", str(e)) from None
    frames = np.asarray(frames)
    if frames.ndim != 2:
        raise ModelError("frames", f"must be a 2-D array [samples, {model.n_in}], not shape {frames.shape}")
    try:
        frames = check_frames(frames, model.n_in, levels)
        return encode_frames(frames, model.timesteps, levels=levels, max_rate=rate)
    except ValueError as e:
        raise ModelError("frames", str(e).removeprefix("frames: ")) from None


def _sat(u: np.ndarray, layer: Layer) -> np.ndarray:
    return np.clip(u, layer.v_min, layer.v_max)


#: Largest |weight| (the format's) and input count checked before the products: every partial sum then
#: lies below 2^35, an exact float64 integer (exact up to 2^53).
_MAX_WEIGHT, _MAX_INPUTS = 1 << 15, 1 << 20


def _exact_dtype(n_in: int, w: np.ndarray) -> type:
    """The float type in which every partial sum of ``x @ w`` (x 0/1) is an exactly represented integer."""
    top = int(np.abs(w).max(initial=0))
    if top > _MAX_WEIGHT or n_in > _MAX_INPUTS:
        raise ValueError(f"layer too large for exact products: max |weight| {top}, {n_in} inputs")
    return np.float32 if n_in * top < 1 << 24 else np.float64


def integrate_in_order(u: np.ndarray, x: np.ndarray, w: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Contract step 3 literally: for each row, ``u = min(max(u + w[j], lo), hi)`` for every input ``j``
    with ``x[j] = 1``, in ascending ``j``.

    Parameters
    ----------
    u : numpy.ndarray
        int64 [R, N], one row per sample (the membranes before integration); not modified.
    x : numpy.ndarray
        0/1 [R, n_in], the input spikes of each row.
    w : numpy.ndarray
        int64 [n_in, N].

    Returns
    -------
    numpy.ndarray
        int64 [R, N].

    Vectorised over rows by *event rank*: the rows are sorted by their number of input spikes, most
    first; pass ``e`` adds, for every row that has more than ``e`` input spikes (a prefix of the sorted
    rows), the weights of its ``e``-th input in ascending order. Each row still sees its own inputs one
    at a time in ascending order; the work is one addition per input spike and neuron.
    """
    counts = x.sum(axis=1, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")
    counts = counts[order]
    _, inputs = np.nonzero(x[order])            # row-major: each row's inputs ascending, row after row
    first = np.cumsum(counts) - counts          # where each row's inputs start in ``inputs``
    out = u[order].astype(np.int64)
    for e in range(int(counts[0]) if len(counts) else 0):
        m = int(np.count_nonzero(counts > e))   # rows with an e-th input: the first m
        out[:m] = np.clip(out[:m] + w[inputs[first[:m] + e]], lo, hi)
    result = np.empty_like(out)
    result[order] = out
    return result


def run_layer(layer: Layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run one layer on spikes ``x`` (uint8 [S, T, n_in]).

    Returns (spikes uint8, membranes int32), both [S, T, N].
    """
    n_samples, n_steps, n_in = x.shape
    w = layer.weights.astype(np.int64)
    dtype = _exact_dtype(n_in, w)
    w_pos, w_neg = np.maximum(w, 0).astype(dtype), np.minimum(w, 0).astype(dtype)
    v = np.zeros((n_samples, layer.n_out), dtype=np.int64)
    s = np.zeros((n_samples, layer.n_out), dtype=bool)
    spikes = np.zeros((n_samples, n_steps, layer.n_out), dtype=np.uint8)
    membranes = np.zeros((n_samples, n_steps, layer.n_out), dtype=np.int32)
    for t in range(n_steps):
        # 1. leak: v >> lam is numpy's arithmetic shift, floor division by 2^lam.
        u = v if layer.leak_shift is None else v - (v >> layer.leak_shift)
        # 2. reset by the spike of the previous step
        if layer.reset == "subtract":
            u = _sat(u - layer.threshold * s, layer)
        else:
            u = np.where(s, 0, u)
        # 3. integrate, saturating after every addition in ascending input order. Where no partial sum
        # can leave the register (bounded by the sums of the positive and of the negative weights hit),
        # the order does not matter and the result is the unsaturated sum.
        xt = x[:, t, :]
        xf = xt.astype(dtype)
        up = (xf @ w_pos).astype(np.int64)
        down = (xf @ w_neg).astype(np.int64)
        exact = ((u + up <= layer.v_max) & (u + down >= layer.v_min)).all(axis=1)
        risky = np.flatnonzero(~exact)
        u_sum = u + up + down
        if len(risky):
            u_sum[risky] = integrate_in_order(u[risky], xt[risky], w, layer.v_min, layer.v_max)
        u = u_sum
        # 4. fire
        s = u > layer.threshold
        v = u
        spikes[:, t] = s
        membranes[:, t] = v
    return spikes, membranes


def predict(output_spikes: np.ndarray) -> np.ndarray:
    """Argmax of the spike count over all steps; ``np.argmax`` breaks ties to the lowest index."""
    return output_spikes.sum(axis=1, dtype=np.int64).argmax(axis=1)


def run(model: Model, x: np.ndarray, *, lanes: int = 1) -> Result:
    """Run ``model`` on stimuli ``x`` (uint8 [S, T, n_in]); ``lanes`` only changes the cycle model."""
    x = check_inputs(model, x)
    layer_inputs, spikes, membranes = [], [], []
    inp = x
    for layer in model.layers:
        layer_inputs.append(inp)
        s, v = run_layer(layer, inp)
        spikes.append(s)
        membranes.append(v)
        inp = s
    return Result(
        spikes=spikes,
        membranes=membranes,
        prediction=predict(spikes[-1]),
        cycles=cycle_model(model, lanes=lanes, layer_inputs=layer_inputs, layer_spikes=spikes),
    )
