"""The cocotb test module that :func:`qlif.sim.runner.run_rtl` runs inside the simulator.

Its inputs come from environment variables set by the runner (the simulator process cannot be handed
Python objects):

========================  =====================================================================
``QLIF_SIM_MODEL``        model file (JSON)
``QLIF_SIM_INPUTS``       stimuli, ``.npy`` uint8 [S, T, n_in]
``QLIF_SIM_OUT``          ``.npz`` written at the end: the measured Result and the checker's verdict
``QLIF_SIM_LANES``        lanes P the design was generated with
``QLIF_SIM_GAPS``         ``1``: random events.valid gaps and spikes.ready backpressure
``QLIF_SIM_SEED``         seed of those random patterns
``QLIF_SIM_STRICT``       ``1``: fail the test at the first difference from the golden model
``QLIF_SIM_BAD_TOKENS``   ``1``: also send invalid tokens, which must be dropped and flagged
========================  =====================================================================

The ``.npz`` is written even when the test fails, so the runner can report the checker's message. Besides
what the runner reads, it holds ``measured_cycles`` (int64 [S, T]: each step's cycles measured at the
ports, -1 where not reached) and ``measured_exact`` (bool [S, T]: measured without ``events`` gaps or
dropped tokens, so compared exactly rather than within bounds; see :class:`qlif.sim.tb.StepTiming`), and
for functional coverage (:mod:`qlif.sim.coverage`) ``gap_runs``, ``stall_runs``, ``forwarding`` and
``bad_tokens``.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.handle import HierarchyObject
from cocotb.simtime import get_sim_time

from qlif.golden.spec.model import load_model
from qlif.sim.monitors import CLOCK_NS
from qlif.sim.scoreboard import ReferenceModel
from qlif.sim.tb import Testbench


@cocotb.test()
async def network_matches_golden(dut: HierarchyObject) -> None:
    env = os.environ
    seed = int(env.get("QLIF_SIM_SEED", "0"))
    model = ReferenceModel(load_model(env["QLIF_SIM_MODEL"]), np.load(env["QLIF_SIM_INPUTS"]),
                  lanes=int(env["QLIF_SIM_LANES"]),
                  bad_tokens=random.Random(seed + 2) if env.get("QLIF_SIM_BAD_TOKENS") == "1" else None)
    tb = Testbench(dut, model, gaps=env.get("QLIF_SIM_GAPS") == "1", seed=seed,
                   strict=env.get("QLIF_SIM_STRICT") == "1")
    failure = ""
    tb.start()
    try:
        await tb.reset()
        for s in range(model.samples):
            await tb.run_sample(s)
    except BaseException as e:
        # A failing driver or monitor cancels this coroutine: report the part's exception, not that.
        cause = tb.failure() or e
        failure = f"{type(cause).__name__}: {cause}"
        raise
    finally:
        tb.stop()
        sb = tb.scoreboard
        np.savez(env["QLIF_SIM_OUT"], **sb.result().to_npz_dict(), mismatch=np.str_(sb.mismatch or ""),
                 failure=np.str_(failure), sim_cycles=np.int64(get_sim_time("ns") // CLOCK_NS),
                 measured_cycles=sb.measured_cycles, measured_exact=sb.measured_exact,
                 gap_runs=np.array(tb.driver.gap_runs, np.int64),
                 stall_runs=np.array(tb.spikes.stall_runs, np.int64),
                 forwarding=np.array(tb.forwarding, np.int64),
                 bad_tokens=np.array([k for s in range(model.samples) for k in model.bad_kinds(s)], np.str_))
