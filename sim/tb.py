"""cocotb testbench for the generated ``qlif_top`` Verilog: Driver, Monitors, ReferenceModel, Scoreboard, Testbench.

Timing discipline. Everything the testbench reads or writes happens at the *falling* clock edge, half a
cycle away from the rising edge where the design's registers change. Values read there are settled and
are exactly what the next rising edge samples, and values written there are stable before it. This
sidesteps the simulator-dependent question of whether a read right at a rising edge sees the old or the
new register value (Icarus and Verilator differ), so one testbench is cycle-exact on both.

Letting the hardware run free. Python per clock edge is the cost of a cocotb run, so the monitors only
wake up every cycle while their port is active; while ``valid`` (or ``ready``) is low they sleep on a
value-change trigger of that one signal. The stimuli of a whole sample are queued before it starts.

Cycles measured, not reported. The parts stamp the events that define a step's cycles (docs/architecture.md,
"Cycle model") with their clock cycle (:func:`cycle`: the simulation time of the falling edge over the
fixed clock period, so no coroutine has to count every edge): the driver each accepted ``events`` token
and the ``valid`` gaps it made, the spike monitor the ``spikes`` eot handshake and the cycles ``spikes``
waited for ``ready``, the step monitor ``step_done``. :class:`StepTiming` turns them into the step's cycle
count, which the scoreboard compares with the golden cycle model and with the RTL's own ``step_cycles``.
"""

from __future__ import annotations

import random

from cocotb.clock import Clock
from cocotb.handle import HierarchyObject, LogicObject
from cocotb.task import Task
from cocotb.triggers import ClockCycles, FallingEdge, SimTimeoutError, with_timeout

from qlif.golden.spec.layouts import EOT
from qlif.sim.monitors import (
    CLOCK_NS,
    Driver,
    Part,
    SpikeMonitor,
    StepMonitor,
    StreamBus,
    StreamProtocolError,
    TraceMonitor,
    read_uint,
    until_high,
)
from qlif.sim.scoreboard import ReferenceModel, Scoreboard, StepTiming

__all__ = ["Testbench"]


class Testbench:
    """The whole bench around one ``qlif_top`` instance.

    Parameters
    ----------
    dut : HierarchyObject
        The cocotb handle of the top level.
    model : ReferenceModel
        Golden model and stimuli.
    gaps : bool
        Random ``events.valid`` gaps and random ``spikes.ready`` backpressure.
    seed : int
        Seed of those random patterns.
    strict : bool
        Stop with :class:`Mismatch` at the first difference from the golden model.
    """

    def __init__(self, dut: HierarchyObject, model: ReferenceModel, *, gaps: bool = False, seed: int = 0,
                 strict: bool = False):
        self.dut = dut
        self.model = model
        self.clk: LogicObject = dut.clk
        self.driver = Driver(self.clk, StreamBus(dut, "events"), random.Random(seed) if gaps else None)
        self.spikes = SpikeMonitor(self.clk, StreamBus(dut, "spikes"),
                                   random.Random(seed + 1) if gaps else None)
        self.trace = TraceMonitor(self.clk, dut)
        self.steps = StepMonitor(self.clk, dut)
        self.scoreboard = Scoreboard(model, strict=strict)
        #: Cycles between consecutive integrated ``events`` tokens of a step (functional coverage).
        self.forwarding: list[int] = []
        self._clock: Task | None = None
        dut.clear.value = 0
        dut.rst.value = 0

    @property
    def _parts(self) -> tuple[Part, ...]:
        return (self.driver, self.spikes, self.trace)

    def start(self) -> None:
        """Start the clock; the driver and monitors start with the end of :meth:`reset`."""
        # The GPI (C++) clock: cocotb picks a Python one on Icarus, which costs a coroutine wake-up per
        # edge. Safe here because the testbench never acts at rising edges.
        self._clock = Clock(self.clk, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)

    def stop(self) -> None:
        """Stop everything :meth:`start` and :meth:`reset` started."""
        for part in self._parts:
            part.stop()
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None

    def failure(self) -> BaseException | None:
        """The exception that ended a driver or monitor, if one did."""
        return next((p.failure for p in self._parts if p.failure is not None), None)

    async def reset(self, cycles: int = 2) -> None:
        """Hold ``rst`` for ``cycles`` cycles, wait for ``idle``, then start the driver and monitors.

        They start only now because the outputs may be undefined (X) before the first reset.
        """
        for part in self._parts:
            part.stop()
        await FallingEdge(self.clk)
        self.dut.rst.value = 1
        await ClockCycles(self.clk, cycles, rising=False)
        self.dut.rst.value = 0
        await self._wait_idle()
        for part in self._parts:
            part.start()

    async def _wait_idle(self) -> None:
        # A clear takes max G + 1 cycles; G <= the widest layer.
        budget = max(layer.n_out for layer in self.model.model.layers) + 100
        try:
            await with_timeout(until_high(self.clk, self.dut.idle), budget * CLOCK_NS, "ns")
        except SimTimeoutError:
            raise StreamProtocolError(f"idle did not come within {budget} cycles") from None

    async def clear(self) -> None:
        """Pulse ``clear`` for one cycle while idle (a new sample) and wait until idle again."""
        await self._wait_idle()
        self.dut.clear.value = 1
        await FallingEdge(self.clk)
        self.dut.clear.value = 0
        await self._wait_idle()

    async def run_sample(self, s: int) -> None:
        """Run sample ``s`` to the end and score every step of it."""
        m, sb = self.model, self.scoreboard
        await self.clear()
        stray = self.trace.take()
        if stray:   # the trace belongs to steps: nothing may show between them, nor while clearing
            layer, group, _, _ = stray[0]
            raise StreamProtocolError(f"before sample {s}: trace valid outside a step (layer {layer}, "
                                      f"group {group})")
        tokens = m.tokens(s)
        # Indices (into driver.taken) of each step's first token and of its eot token.
        base = len(self.driver.taken)
        eots = [base + i for i, tok in enumerate(tokens) if tok == EOT]
        firsts = [base, *(i + 1 for i in eots[:-1])]
        self.driver.send(tokens)
        for t in range(m.model.timesteps):
            # A generous watchdog: ten times the golden cycle count, plus room for gaps and backpressure.
            budget = 10 * int(m.expected.cycles[s, t]) + 1000
            try:
                cycles, done = await with_timeout(self.steps.next_step(), budget * CLOCK_NS, "ns")
            except SimTimeoutError:
                raise StreamProtocolError(f"sample {s}, t {t}: no step_done within {budget} cycles (the golden "
                                          f"cycle model says {int(m.expected.cycles[s, t])})") from None
            if not self.spikes.steps:
                raise StreamProtocolError(f"sample {s}, t {t}: step_done before the spikes eot token")
            if len(self.driver.taken) <= eots[t]:
                raise StreamProtocolError(f"sample {s}, t {t}: step_done before the step's events eot token "
                                          f"was taken")
            (first, gaps_before), (_, gaps_at_eot) = self.driver.taken[firsts[t]], self.driver.taken[eots[t]]
            eot, stalls = self.spikes.ends.popleft()
            timing = StepTiming(first_token=first, eot=eot, done=done, stalls=stalls,
                                gaps=gaps_at_eot - gaps_before, dropped=m.dropped[s][t])
            sb.step(s, t, self.trace.take(), self.spikes.steps.popleft(), cycles, timing)
        await self._wait_idle()
        sb.sample_done(s, read_uint(self.dut.prediction), read_uint(self.dut.error), read_uint(self.dut.counts))
        # Functional coverage: the cycles between consecutive integrated tokens of a step (layer 0 issues
        # each event's groups from the cycle its token is taken).
        last = None
        for tok, good, (c, _) in zip(tokens, m.valid(s), self.driver.taken[base:], strict=True):
            if tok == EOT:
                last = None
            elif good:
                if last is not None:
                    self.forwarding.append(c - last)
                last = c
