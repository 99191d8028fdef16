"""The cocotb test module that :func:`qlif.sim.runner.run_rtl` runs for frames: the core with the on-chip
encoder (``qlif_top`` from :func:`qlif.hw.verilog.generate` with ``encoder=True``).

Its inputs are those of :mod:`qlif.sim.cocotb_network`, with ``QLIF_SIM_FRAMES`` (``.npy``, [S, n_in]
frame values) in place of ``QLIF_SIM_INPUTS``. The frames of all samples are queued at once: the
``frame`` driver (with random ``valid`` gaps when ``QLIF_SIM_GAPS`` is 1) waits on ``frame.ready``, low
while the design is busy with a sample, so each frame goes in as soon as the previous sample's steps
are sent. The golden model is :func:`~qlif.golden.spec.reference.frame_inputs` then the reference run;
every step is scored from the trace, the ``spikes`` stream and ``step_cycles`` (the cycles at the
ports are not: the ``events`` port is inside), every sample's ``prediction``, ``error`` and ``counts``
with ``done``, which must pulse with the last step's ``step_done`` and only then.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, SimTimeoutError, with_timeout

from qlif.golden.spec import reference
from qlif.golden.spec.model import load_model
from qlif.sim.monitors import (
    CLOCK_NS,
    Driver,
    SpikeMonitor,
    StepMonitor,
    StreamBus,
    StreamProtocolError,
    TraceMonitor,
    read_uint,
)
from qlif.sim.scoreboard import ReferenceModel, Scoreboard


@cocotb.test()
async def encoded_network_matches_golden(dut: HierarchyObject) -> None:
    env = os.environ
    seed = int(env.get("QLIF_SIM_SEED", "0"))
    gaps = env.get("QLIF_SIM_GAPS") == "1"
    qm = load_model(env["QLIF_SIM_MODEL"])
    frames = np.load(env["QLIF_SIM_FRAMES"])
    model = ReferenceModel(qm, reference.frame_inputs(qm, frames), lanes=int(env["QLIF_SIM_LANES"]))
    sb = Scoreboard(model, strict=env.get("QLIF_SIM_STRICT") == "1")
    clk = dut.clk
    frame = Driver(clk, StreamBus(dut, "frame"), random.Random(seed) if gaps else None)
    spikes = SpikeMonitor(clk, StreamBus(dut, "spikes"), random.Random(seed + 1) if gaps else None)
    trace = TraceMonitor(clk, dut)
    steps = StepMonitor(clk, dut)
    parts = (frame, spikes, trace)
    failure = ""
    clock = Clock(clk, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)
    try:
        await FallingEdge(clk)
        dut.rst.value = 1
        await ClockCycles(clk, 2, rising=False)
        dut.rst.value = 0
        for part in parts:
            part.start()
        frame.send([int(v) for f in frames for v in f])
        for s in range(model.samples):
            for t in range(qm.timesteps):
                # The frame, the clear and the encoder's scan of the inputs come on top of the cycle model.
                budget = 10 * int(model.expected.cycles[s, t]) + 4 * qm.n_in + 1000
                try:
                    cycles, _ = await with_timeout(steps.next_step(), budget * CLOCK_NS, "ns")
                except SimTimeoutError:
                    raise StreamProtocolError(f"sample {s}, t {t}: no step_done within {budget} cycles") from None
                done = read_uint(dut.done)
                if done != (t == qm.timesteps - 1):
                    raise StreamProtocolError(f"sample {s}, t {t}: done is {done} with step_done")
                if not spikes.steps:
                    raise StreamProtocolError(f"sample {s}, t {t}: step_done before the spikes eot token")
                spikes.ends.popleft()
                sb.step(s, t, trace.take(), spikes.steps.popleft(), cycles)
            sb.sample_done(s, read_uint(dut.prediction), read_uint(dut.error), read_uint(dut.counts))
    except BaseException as e:
        cause = next((p.failure for p in parts if p.failure is not None), None) or e
        failure = f"{type(cause).__name__}: {cause}"
        raise
    finally:
        for part in parts:
            part.stop()
        clock.cancel()
        np.savez(env["QLIF_SIM_OUT"], **sb.result().to_npz_dict(), mismatch=np.str_(sb.mismatch or ""),
                 failure=np.str_(failure), sim_cycles=np.int64(get_sim_time("ns") // CLOCK_NS),
                 gap_runs=np.array(frame.gap_runs, np.int64), stall_runs=np.array(spikes.stall_runs, np.int64))
