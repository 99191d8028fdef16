"""Constrained-random campaigns: designs from :func:`qlif.golden.spec.random_model.random_design`, each run on
the RTL in one simulator and compared with the golden model, bit for bit and cycle for cycle.

One design is one seed: ``qlif random-design SEED --simulator SIM`` reproduces any run, and every failure
message names its seed and that command. Runs leave functional-coverage observations in
``$QLIF_COVERAGE_DIR`` like every RTL run (:mod:`qlif.sim.coverage`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qlif.golden.spec.cycles import groups
from qlif.golden.spec.model import Model
from qlif.golden.spec.random_model import Design, random_design
from qlif.golden.spec.reference import Result, run
from qlif.sim.compare import first_mismatch

if TYPE_CHECKING:
    from qlif.sim.harness import RtlRun

__all__ = ["SIMULATORS", "SEED_BASE", "Outcome", "DesignMismatch", "harness_mismatch", "run_design",
           "check_design", "campaign", "reproduce"]

#: Where a design can run: the Amaranth simulator (the Python model of the RTL) or the generated Verilog.
SIMULATORS = ("amaranth", "icarus", "verilator")

#: First seed of each simulator's campaign: different designs in each simulator, never the same draws.
SEED_BASE = {"amaranth": 0, "icarus": 100_000, "verilator": 200_000}


def reproduce(seed: int, simulator: str) -> str:
    """The command that reruns one design."""
    return f"qlif random-design {seed} --simulator {simulator}"


@dataclass(frozen=True)
class Outcome:
    """One design's run: ``mismatch`` is None when the RTL equalled the golden model everywhere."""

    design: Design
    simulator: str
    mismatch: str | None
    samples: int
    steps: int          # timesteps compared (samples x T)
    cycles: int         # clock cycles the golden cycle model counts for them
    seconds: float

    @property
    def message(self) -> str:
        """The failure message: the design's seed and parameters, the difference, and how to rerun it."""
        return (f"{self.simulator}: {self.design.describe()}: {self.mismatch}\n"
                f"  reproduce: {reproduce(self.design.seed, self.simulator)}")


def harness_mismatch(model: Model, lanes: int, gold: Result, rtl: RtlRun) -> str | None:
    """The first difference of an Amaranth-simulator run ``rtl`` from ``gold``, or a broken port rule
    (what the cocotb bench checks as protocol, checked from the harness's records), or None."""
    mismatch = first_mismatch(gold, rtl.result)
    if mismatch is not None:
        return mismatch
    n_groups = [groups(layer.n_out, lanes) for layer in model.layers]
    checks = [
        (np.array_equal(rtl.stream_spikes, gold.spikes[-1]), "the spikes stream differs from the output layer"),
        (rtl.stream_ordered, "the spikes stream is not strictly ascending or misses an eot"),
        (np.array_equal(rtl.counts, gold.spikes[-1].sum(axis=1)), "counts differ from the output spikes"),
        (bool((rtl.trace_counts == n_groups).all()), "not one trace entry per group, layer and step"),
        (rtl.padding_zero, "trace lanes past n_out are not 0"),
        (not rtl.errors.any(), f"error flags {rtl.errors.tolist()} on valid stimuli"),
    ]
    return next((why for ok, why in checks if not ok), None)


def _amaranth(design: Design, gold: Result) -> str | None:
    from qlif.sim.harness import simulate

    rtl = simulate(design.model, design.inputs, lanes=design.lanes, stall=0.3 if design.gaps else 0.0,
                   seed=design.seed)
    return harness_mismatch(design.model, design.lanes, gold, rtl)


def _verilog(design: Design, gold: Result, simulator: str) -> str | None:
    from qlif.sim.runner import RtlMismatch, SimulationError, run_rtl

    try:
        got = run_rtl(design.model, design.inputs, simulator=simulator, lanes=design.lanes, gaps=design.gaps,
                      seed=design.seed, bad_tokens=design.bad_tokens, check=True)
    except (RtlMismatch, SimulationError) as e:
        return str(e)
    return first_mismatch(gold, got)


def run_design(design: Design, simulator: str) -> Outcome:
    """Run ``design`` on the RTL in ``simulator`` (one of :data:`SIMULATORS`) and compare it with golden."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    start = time.perf_counter()
    gold = run(design.model, design.inputs, lanes=design.lanes)
    mismatch = _amaranth(design, gold) if simulator == "amaranth" else _verilog(design, gold, simulator)
    s, t, _ = design.inputs.shape
    return Outcome(design=design, simulator=simulator, mismatch=mismatch, samples=s, steps=s * t,
                   cycles=int(gold.cycles.sum()), seconds=time.perf_counter() - start)


class DesignMismatch(AssertionError):
    """A random design on which the RTL differs from the golden model (the message: :attr:`Outcome.message`)."""


def check_design(seed: int, simulator: str) -> Outcome:
    """Draw design ``seed``, run it in ``simulator``; raise :class:`DesignMismatch` unless it is bit-exact."""
    outcome = run_design(random_design(seed), simulator)
    if outcome.mismatch is not None:
        raise DesignMismatch(outcome.message)
    return outcome


def campaign(simulator: str, seeds: Iterable[int], *,
             progress: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run the designs of ``seeds`` in ``simulator``, one after the other; ``progress`` sees each outcome."""
    outcomes = []
    for seed in seeds:
        outcome = run_design(random_design(seed), simulator)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return outcomes
