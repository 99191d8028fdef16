"""The integer reference model: the specification the RTL matches bit for bit.

Semantics (``docs/semantics.md``), per layer and timestep ``t``, for every neuron ``i``::

    u = v                      if leak_shift is None
    u = v - (v >> leak_shift)  otherwise (arithmetic shift)
    u = sat(u - theta * s)     reset "subtract"      |  u = 0 if s else u   reset "zero"
    for j ascending with x[j] = 1:  u = sat(u + W[j][i])
    s = u > theta;  v = u

Everything is vectorised over samples and neurons with numpy. Integration only loops over inputs for
the samples where a partial sum could saturate; elsewhere a matrix product gives the same result, since
without saturation the order of additions does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cycles import cycle_model
from .model import Layer, Model, ModelError

__all__ = ["Result", "check_inputs", "run_layer", "run", "predict"]


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


def _sat(u: np.ndarray, layer: Layer) -> np.ndarray:
    return np.clip(u, layer.v_min, layer.v_max)


def run_layer(layer: Layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run one layer on spikes ``x`` (uint8 [S, T, n_in]).

    Returns (spikes uint8, membranes int32), both [S, T, N].
    """
    n_samples, n_steps, _ = x.shape
    w = layer.weights.astype(np.int64)
    w_pos, w_neg = np.maximum(w, 0), np.minimum(w, 0)
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
        # 3. integrate, saturating after every addition in ascending input order
        xt = x[:, t, :].astype(np.int64)
        hi = u + xt @ w_pos   # the highest any partial sum can reach
        lo = u + xt @ w_neg   # the lowest
        exact = ((hi <= layer.v_max) & (lo >= layer.v_min)).all(axis=1)
        u = np.where(exact[:, None], u + xt @ w, u)
        for n in np.flatnonzero(~exact):
            un = u[n]
            for j in np.flatnonzero(xt[n]):
                un = _sat(un + w[j], layer)
            u[n] = un
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
