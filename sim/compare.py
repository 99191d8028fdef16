"""What "the RTL equals the golden model" means, as one comparison shared by every checker.

The cocotb :class:`~qlif.sim.tb.Scoreboard` calls :func:`step_mismatch` once per finished timestep
while the simulation runs; :func:`first_mismatch` compares two whole :class:`Result` objects after the
fact (the ``qlif sim`` CLI). Both report the first difference in the same words, in the order
sample, timestep, layer, neuron (membrane before spike), then the step's cycle count, then the
sample's prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qlif.golden.spec.reference import Result

__all__ = ["step_mismatch", "prediction_mismatch", "first_mismatch"]


def step_mismatch(expected: Result, s: int, t: int, spikes: Sequence[np.ndarray],
                  membranes: Sequence[np.ndarray], cycles: int) -> str | None:
    """The first difference at sample ``s``, step ``t``, or None.

    ``spikes[l]`` and ``membranes[l]`` are layer ``l``'s measured values at that step ([N_l] each) and
    ``cycles`` the measured cycle count of the step.
    """
    for l, (es, ev) in enumerate(zip(expected.spikes, expected.membranes, strict=True)):
        gs, gv = np.asarray(spikes[l]), np.asarray(membranes[l])
        bad = (gv != ev[s, t]) | (gs != es[s, t])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what, e, g = (("membrane", ev[s, t, i], gv[i]) if gv[i] != ev[s, t, i]
                          else ("spike", es[s, t, i], gs[i]))
            return f"sample {s}, t {t}, layer {l}, neuron {i}: {what} expected {int(e)}, got {int(g)}"
    if cycles != expected.cycles[s, t]:
        return f"sample {s}, t {t}: step_cycles expected {int(expected.cycles[s, t])}, got {int(cycles)}"
    return None


def prediction_mismatch(expected: Result, s: int, prediction: int) -> str | None:
    """The difference in sample ``s``'s prediction, or None."""
    if prediction != expected.prediction[s]:
        return f"sample {s}: prediction expected {int(expected.prediction[s])}, got {int(prediction)}"
    return None


def first_mismatch(expected: Result, got: Result) -> str | None:
    """The first difference between two results (e.g. golden and RTL), or None when they are equal."""
    if len(got.spikes) != len(expected.spikes) or len(got.membranes) != len(expected.membranes):
        return f"layers: expected {len(expected.spikes)}, got {len(got.spikes)}"
    for l, (es, gs, ev, gv) in enumerate(zip(expected.spikes, got.spikes, expected.membranes, got.membranes,
                                             strict=True)):
        for name, e, g in (("spikes", es, gs), ("membranes", ev, gv)):
            if np.shape(e) != np.shape(g):
                return f"layer {l} {name}: shape expected {np.shape(e)}, got {np.shape(g)}"
    for name, e, g in (("cycles", expected.cycles, got.cycles), ("prediction", expected.prediction,
                                                                   got.prediction)):
        if np.shape(e) != np.shape(g):
            return f"{name}: shape expected {np.shape(e)}, got {np.shape(g)}"
    # Find the first differing step without a Python loop over every step, then let step_mismatch word it.
    step_bad = got.cycles != expected.cycles
    for es, gs, ev, gv in zip(expected.spikes, got.spikes, expected.membranes, got.membranes, strict=True):
        step_bad |= ((es != gs) | (ev != gv)).any(axis=2)
    sample_bad = step_bad.any(axis=1) | (got.prediction != expected.prediction)
    if not sample_bad.any():
        return None
    s = int(np.flatnonzero(sample_bad)[0])
    if step_bad[s].any():
        t = int(np.flatnonzero(step_bad[s])[0])
        return step_mismatch(expected, s, t, [x[s, t] for x in got.spikes], [x[s, t] for x in got.membranes],
                             int(got.cycles[s, t]))
    return prediction_mismatch(expected, s, int(got.prediction[s]))
