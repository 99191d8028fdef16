"""The integer reference model for large evaluations: same results as :func:`qlif.golden.reference.run`.

:func:`run_fast` computes exactly what the reference computes (``tests/test_quant_fastrun.py`` checks
spikes, membranes and predictions for equality on saturating and non-saturating models); it exists
because accuracy sweeps run the 784-500-10 model on 10000 MNIST samples many times, and the
reference's int64 matrix products (numpy has no BLAS for integers) take about 17x longer than float64
ones. Differences from :mod:`qlif.golden.reference`, none of which changes a value:

* the products ``x @ W`` are float64 BLAS products, exact because every partial sum is an integer far
  below 2^53 (|W| <= 32768 and at most 2^20 inputs per layer are checked);
* a layer's products are computed for all ``T`` steps at once (they do not depend on the state);
* samples are processed in chunks, with a progress bar.

Where a partial sum could saturate, the sequential saturating loop in ascending input order runs, as in
the reference. No cycle model is computed (``cycles`` is not returned).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from .model import Layer, Model
from .reference import check_inputs, predict

__all__ = ["run_fast", "predict_fast"]

_CHUNK = 500


def _run_layer(layer: Layer, x: np.ndarray, keep_membranes: bool):
    n_samples, n_steps, n_in = x.shape
    w = layer.weights.astype(np.float64)
    if n_in > 1 << 20 or np.abs(layer.weights).max(initial=0) > 1 << 15:
        raise ValueError("layer too large for exact float64 products")
    w_int = layer.weights.astype(np.int64)
    xf = x.reshape(n_samples * n_steps, n_in).astype(np.float64)
    cur = (xf @ w).reshape(n_samples, n_steps, -1).astype(np.int64)
    hi_add = (xf @ np.maximum(w, 0)).reshape(n_samples, n_steps, -1).astype(np.int64)
    lo_add = (xf @ np.minimum(w, 0)).reshape(n_samples, n_steps, -1).astype(np.int64)
    v = np.zeros((n_samples, layer.n_out), dtype=np.int64)
    s = np.zeros((n_samples, layer.n_out), dtype=bool)
    spikes = np.zeros((n_samples, n_steps, layer.n_out), dtype=np.uint8)
    membranes = np.zeros((n_samples, n_steps, layer.n_out), dtype=np.int32) if keep_membranes else None
    lo_v, hi_v = layer.v_min, layer.v_max
    for t in range(n_steps):
        u = v if layer.leak_shift is None else v - (v >> layer.leak_shift)
        if layer.reset == "subtract":
            u = np.clip(u - layer.threshold * s, lo_v, hi_v)
        else:
            u = np.where(s, 0, u)
        exact = ((u + hi_add[:, t] <= hi_v) & (u + lo_add[:, t] >= lo_v)).all(axis=1)
        u = np.where(exact[:, None], u + cur[:, t], u)
        rows = np.flatnonzero(~exact)
        if len(rows):
            u[rows] = _saturating_rows(u[rows], x[rows, t], w_int, lo_v, hi_v)
        s = u > layer.threshold
        v = u
        spikes[:, t] = s
        if keep_membranes:
            membranes[:, t] = v
    return spikes, membranes


def _saturating_rows(u: np.ndarray, x: np.ndarray, w: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``u + x @ w`` saturated after every addition in ascending input order, for rows ``u`` [R, N].

    Two equal ways, the cheaper chosen: input by input over all rows at once (one operation per input
    that any row has, each over R x N values), or row by row over each row's own inputs (one operation
    per event, each over N values; cheaper when rows are few or inputs many, as with MNIST).
    """
    active = np.flatnonzero(x.any(axis=0))
    n_rows, n_out = u.shape
    per_input = len(active) * (2000 + 3 * n_rows * n_out)      # rough costs in ns: call overhead + per value
    per_row = int(x.sum()) * (2000 + n_out)
    if per_input <= per_row:
        for j in active:
            hit = x[:, j].astype(bool)
            u[hit] = np.clip(u[hit] + w[j], lo, hi)
        return u
    for n in range(n_rows):
        un = u[n]
        for j in np.flatnonzero(x[n]):
            un = np.clip(un + w[j], lo, hi)
        u[n] = un
    return u


def run_fast(model: Model, x: np.ndarray, *, keep_membranes: bool = False, progress: bool = False,
             desc: str = "integer model",
             chunk: int = _CHUNK) -> tuple[list[np.ndarray], list[np.ndarray] | None, np.ndarray]:
    """Run ``model`` on stimuli ``x`` (uint8 [S, T, n_in]) exactly as the reference does.

    Returns
    -------
    (spikes, membranes, prediction)
        Per layer uint8 [S, T, N_l] spikes, per layer int32 membranes (``None`` unless
        ``keep_membranes``), and int64 [S] predictions.
    """
    x = check_inputs(model, x)
    spikes: list[list[np.ndarray]] = [[] for _ in model.layers]
    membranes: list[list[np.ndarray]] = [[] for _ in model.layers]
    for start in tqdm(range(0, len(x), chunk), desc=desc, unit="chunk", disable=not progress, leave=False):
        inp = x[start:start + chunk]
        for l, layer in enumerate(model.layers):
            inp, v = _run_layer(layer, inp, keep_membranes)
            spikes[l].append(inp)
            membranes[l].append(v)
    out_spikes = [np.concatenate(s) if s else np.zeros((0, model.timesteps, layer.n_out), np.uint8)
                  for s, layer in zip(spikes, model.layers, strict=True)]
    out_membranes = [np.concatenate(v) for v in membranes] if keep_membranes and len(x) else None
    return out_spikes, out_membranes, predict(out_spikes[-1])


def predict_fast(model: Model, x: np.ndarray, *, progress: bool = False) -> np.ndarray:
    """The integer model's predictions (int64 [S]) on stimuli ``x``; see :func:`run_fast`."""
    return run_fast(model, x, progress=progress)[2]
