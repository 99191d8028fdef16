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
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject, LogicObject
from cocotb.simtime import get_sim_time
from cocotb.task import Task
from cocotb.triggers import ClockCycles, Event, FallingEdge, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotb.types import LogicArray

from qlif.golden.spec import reference
from qlif.golden.spec.cycles import groups
from qlif.golden.spec.layouts import EOT, TOKEN_ADDR_BITS
from qlif.golden.spec.model import Model
from qlif.hw.network import TRACE_WIDTH
from qlif.sim.compare import prediction_mismatch, step_mismatch

__all__ = [
    "CLOCK_NS", "StreamProtocolError", "Mismatch", "StreamBus", "pauses", "cycle", "StepTiming", "Driver",
    "SpikeMonitor", "TraceMonitor", "StepMonitor", "ReferenceModel", "Scoreboard", "Testbench",
]

#: Clock period of the testbench; only the cycle count matters, the unit is for waveform viewers.
CLOCK_NS = 10


class StreamProtocolError(AssertionError):
    """The design broke its port contract (a token out of order, a trace group missing, an error flag)."""


class Mismatch(AssertionError):
    """The design computed something the golden model does not (raised only by a strict scoreboard)."""


class StreamBus:
    """The ``valid``/``ready``/``payload`` signals of an ``amaranth.lib.stream`` port named ``prefix``.

    Amaranth flattens ``events.valid`` into the Verilog port ``events__valid``.
    """

    def __init__(self, dut: HierarchyObject, prefix: str):
        self.valid: LogicObject = getattr(dut, f"{prefix}__valid")
        self.ready: LogicObject = getattr(dut, f"{prefix}__ready")
        self.payload: LogicObject = getattr(dut, f"{prefix}__payload")


def pauses(rng: random.Random | None, rate: float = 0.3) -> Iterator[bool]:
    """Endless pause pattern: True means "hold back this cycle". None gives no pauses at all.

    Pauses come in bursts of 1..4 cycles so that both single-cycle and longer stalls are exercised.
    """
    while True:
        if rng is not None and rng.random() < rate:
            yield from [True] * rng.randint(1, 4)
        else:
            yield False


def _uint(sig: LogicObject) -> int:
    """The unsigned value of a port; one-bit ports read as a ``Logic``, wider ones as a ``LogicArray``."""
    v = sig.value
    return v.to_unsigned() if isinstance(v, LogicArray) else int(v)


def cycle() -> int:
    """The clock cycle now: the number of clock periods since time 0.

    The parts call it at falling edges (``CLOCK_NS`` apart), so two calls differ by exactly the number of
    clock edges between them: counting edges without a coroutine woken at each one.
    """
    return round(get_sim_time("ns") / CLOCK_NS)


@dataclass(frozen=True)
class StepTiming:
    """The events at the ports that delimit a step, in clock cycles (:func:`cycle`, falling edges).

    The cycle model (docs/architecture.md, "Cycle model"; ``golden/spec/cycles.py``) counts from the
    cycle the step's first ``events`` token leaves the input queue (the one after it was taken) to
    ``DONE``, the cycle before ``step_done``, leaving out the cycles spent waiting for ``spikes.ready``
    in ``OUT`` (``spikes.valid`` is high in every ``OUT`` cycle and only there, so these are the cycles
    with ``valid`` high and ``ready`` low) and those spent waiting for ``events.valid`` or dropping an
    invalid token. The last two cannot be seen at the ports: each wait for a token follows a cycle in
    which the driver held ``valid`` low (``ready`` is high while the input queue is not full), and each
    drop costs at most one cycle. So :attr:`cycles` is exact when the step had neither (:attr:`slack` 0),
    and otherwise exceeds the model's figure by at most :attr:`slack`.
    """

    first_token: int    # the step's first events token was accepted at the end of this cycle
    eot: int            # the spikes eot token was accepted at the end of this cycle
    done: int           # step_done was high in this cycle
    stalls: int         # cycles of the step with spikes.valid high and spikes.ready low
    gaps: int           # cycles the driver held events.valid low between the step's first and eot tokens
    dropped: int        # invalid tokens of the step (dropped by the core)

    @property
    def cycles(self) -> int:
        """The step's cycles as the model counts them, from ``first_token + 1`` to ``done - 1``, less
        the ``spikes`` stalls (and, where :attr:`slack` > 0, up to :attr:`slack` waits for tokens)."""
        return self.done - self.first_token - 1 - self.stalls

    @property
    def slack(self) -> int:
        """How many cycles of waiting for ``events`` (not counted by the model) :attr:`cycles` may hold."""
        return self.gaps + self.dropped

    def describe(self) -> str:
        """Where the figure comes from, for a failure message."""
        text = (f"first events token taken at cycle {self.first_token}, step_done at cycle {self.done}, "
                f"less {self.stalls} cycles of spikes.ready low")
        if self.slack:
            text += (f"; up to {self.slack} more may be waits for events ({self.gaps} events.valid gap "
                     f"cycles, {self.dropped} dropped tokens)")
        return text


async def _until_high(clk: LogicObject, sig: LogicObject) -> None:
    """Return at the first falling clock edge (from the next one on) at which ``sig`` is 1.

    Sleeps on ``sig``'s value changes instead of waking every cycle; the re-check at the falling edge
    filters out zero-time glitches of combinational outputs.
    """
    await FallingEdge(clk)
    while not sig.value:
        await RisingEdge(sig)
        await FallingEdge(clk)


class _Part:
    """A free-running testbench part: ``start``/``stop`` its coroutine, keep the exception that ended it.

    A failing part's exception ends the cocotb test with the part's traceback, but the test's own
    coroutine only sees a cancellation, so the message for the report is kept in :attr:`failure`.
    """

    _task: Task | None = None
    failure: BaseException | None = None

    async def _run(self) -> None:
        """The part's coroutine. Abstract: each part (driver, monitor) supplies it."""
        raise NotImplementedError(f"{type(self).__name__} must implement _run")

    async def _guarded(self) -> None:
        try:
            await self._run()
        except Exception as e:
            self.failure = e
            raise

    def start(self) -> None:
        self._task = cocotb.start_soon(self._guarded())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class Driver(_Part):
    """Drives the ``events`` stream from a queue of preloaded tokens.

    Tokens are payload integers (``addr | EOT``). With ``rng`` the driver drops ``valid`` for random
    bursts between tokens (it never withdraws a token once offered: a stream producer holds its payload
    until it is accepted).

    Every accepted token is recorded in :attr:`taken` as ``(cycle, gaps)``: the cycle of its handshake
    and the number of cycles the driver had held ``valid`` low for a pause before it (since the start).
    """

    def __init__(self, clk: LogicObject, bus: StreamBus, rng: random.Random | None = None):
        self._clk, self._bus = clk, bus
        self._queue: deque[int] = deque()
        self._gaps = pauses(rng)
        self._gap_cycles = 0
        self.taken: list[tuple[int, int]] = []
        self._work = Event()
        bus.valid.value = 0
        bus.payload.value = 0

    def send(self, tokens: list[int]) -> None:
        """Queue ``tokens`` behind the ones not yet accepted."""
        self._queue.extend(tokens)
        if self._queue:
            self._work.set()

    async def _run(self) -> None:
        bus = self._bus
        while True:
            await FallingEdge(self._clk)
            if not self._queue:
                bus.valid.value = 0
                self._work.clear()
                await self._work.wait()   # sleep instead of waking every cycle with nothing to send
                continue
            if next(self._gaps):
                bus.valid.value = 0
                self._gap_cycles += 1
                continue
            bus.payload.value = self._queue[0]
            bus.valid.value = 1
            # ready may depend combinationally on valid: read it only once the write has settled.
            await ReadOnly()
            while not bus.ready.value:
                await RisingEdge(bus.ready)
                await FallingEdge(self._clk)
                await ReadOnly()
            # valid and ready are both high for the coming rising edge: the token is taken there.
            self._queue.popleft()
            self.taken.append((cycle(), self._gap_cycles))


class SpikeMonitor(_Part):
    """Collects the ``spikes`` stream as one list of addresses per timestep (closed by the eot token).

    With ``rng`` it holds ``ready`` low for random bursts (backpressure); otherwise ready stays high.
    For every step, :attr:`ends` gets ``(cycle, stalls)``: the cycle of the eot handshake and the cycles
    since the previous eot in which ``valid`` was high and ``ready`` low.
    """

    def __init__(self, clk: LogicObject, bus: StreamBus, rng: random.Random | None = None):
        self._clk, self._bus = clk, bus
        self._pauses = pauses(rng)
        self.steps: deque[list[int]] = deque()
        self.ends: deque[tuple[int, int]] = deque()
        self._current: list[int] = []
        self._stalls = 0
        bus.ready.value = 0

    async def _run(self) -> None:
        bus, clk = self._bus, self._clk
        await FallingEdge(clk)
        last = None
        while True:
            ready = not next(self._pauses)
            if ready != last:   # a write costs more than the comparison: only write changes
                bus.ready.value = int(ready)
                last = ready
            # valid never depends on ready, so it can be read in the same phase as the write above.
            if not bus.valid.value:
                await RisingEdge(bus.valid)
                await FallingEdge(clk)
                continue
            if ready:
                self._take(bus.payload.value)
            else:
                self._stalls += 1
            await FallingEdge(clk)

    def _take(self, payload: LogicArray) -> None:
        # LogicArray indices follow the Verilog range: the bit above the address is eot.
        eot = payload[TOKEN_ADDR_BITS]
        if not eot.is_resolvable:
            raise StreamProtocolError(f"spikes token with an undefined eot bit: payload {payload}")
        if eot:   # the address of an eot token is don't-care
            self.steps.append(self._current)
            self.ends.append((cycle(), self._stalls))
            self._current = []
            self._stalls = 0
        elif not payload.is_resolvable:
            raise StreamProtocolError(f"spikes token with an undefined address: payload {payload}")
        else:
            self._current.append(payload.to_unsigned() & (EOT - 1))


class TraceMonitor(_Part):
    """Samples ``trace`` every cycle it is valid: a list of (layer, group, spikes, membrane) raw words."""

    def __init__(self, clk: LogicObject, dut: HierarchyObject):
        self._clk = clk
        self._valid: LogicObject = dut.trace__valid
        self._fields: tuple[LogicObject, ...] = (dut.trace__layer, dut.trace__group, dut.trace__spikes,
                                                 dut.trace__membrane)
        self.entries: list[tuple[int, int, int, int]] = []

    def take(self) -> list[tuple[int, int, int, int]]:
        """Hand over the entries collected so far and start a new list."""
        entries, self.entries = self.entries, []
        return entries

    async def _run(self) -> None:
        clk, valid, fields = self._clk, self._valid, self._fields
        await FallingEdge(clk)
        while True:
            if valid.value:
                try:
                    self.entries.append(tuple(_uint(f) for f in fields))
                except ValueError:   # X or Z bits: name them instead of cocotb's generic message
                    raise StreamProtocolError("trace shows undefined bits: " + ", ".join(
                        f"{f._name}={f.value}" for f in fields)) from None
                await FallingEdge(clk)
            else:
                await RisingEdge(valid)
                await FallingEdge(clk)


class StepMonitor:
    """Waits for the ``step_done`` pulse and reads ``step_cycles`` with it, noting the cycle it came in."""

    def __init__(self, clk: LogicObject, dut: HierarchyObject):
        self._clk = clk
        self._done: LogicObject = dut.step_done
        self._cycles: LogicObject = dut.step_cycles

    async def next_step(self) -> tuple[int, int]:
        """Return the ``step_cycles`` of the next step to finish and the cycle its ``step_done`` was high."""
        await _until_high(self._clk, self._done)
        return _uint(self._cycles), cycle()


class ReferenceModel:
    """The golden model of one run: expected results and the ``events`` tokens of every step.

    With ``bad_tokens`` (a seeded ``random.Random``), some steps also carry tokens the core must drop
    and flag: an address ``>= n_in`` (error bit 0) or a repeat of the step's previous address (not
    strictly ascending, bit 1). Dropped tokens change no state and no cycle count, so the expected
    results stay those of the clean stimuli; :attr:`expected_error` holds the flags each sample must
    end with.
    """

    def __init__(self, model: Model, x: np.ndarray, *, lanes: int, bad_tokens: random.Random | None = None):
        self.model = model
        self.x = reference.check_inputs(model, x)
        self.lanes = lanes
        self.expected = reference.run(model, self.x, lanes=lanes)
        self._tokens: list[list[int]] = []
        #: Invalid tokens per sample and step (each may cost the core one uncounted cycle).
        self.dropped: list[list[int]] = []
        self.expected_error: list[int] = []
        for s in range(self.samples):
            tokens, error = self._sample_tokens(s, bad_tokens)
            self._tokens.append(tokens)
            self.expected_error.append(error)
            self.dropped.append(self._dropped(tokens))

    @property
    def samples(self) -> int:
        return self.x.shape[0]

    def _dropped(self, tokens: list[int]) -> list[int]:
        """Per step, the tokens the core must drop: out of range, or not above the previous good one."""
        out, bad, low = [], 0, 0
        for tok in tokens:
            if tok == EOT:
                out.append(bad)
                bad, low = 0, 0
            elif tok >= self.model.n_in or tok < low:
                bad += 1
            else:
                low = tok + 1
        return out

    def _sample_tokens(self, s: int, rng: random.Random | None) -> tuple[list[int], int]:
        out: list[int] = []
        error = 0
        n_in = self.model.n_in
        # With 2^TOKEN_ADDR_BITS inputs every address is in range.
        oor = rng is not None and n_in < EOT
        for t in range(self.model.timesteps):
            if oor and rng.random() < 0.1:
                out.append(rng.randrange(n_in, min(n_in + 300, EOT)))   # before any address of the step
                error |= 1
            for a in (int(a) for a in np.flatnonzero(self.x[s, t])):
                out.append(a)
                if rng is not None and rng.random() < 0.15:
                    if oor and rng.random() < 0.5:
                        out.append(rng.randrange(n_in, min(n_in + 300, EOT)))
                        error |= 1
                    else:
                        out.append(rng.randrange(0, a + 1))   # not above the previous address
                        error |= 2
            if oor and rng.random() < 0.1:
                out.append(EOT - 1)   # the largest address, right before eot
                error |= 1
            out.append(EOT)
        return out, error

    def tokens(self, s: int) -> list[int]:
        """All ``events`` tokens of sample ``s``: per step the ascending input addresses, then eot."""
        return self._tokens[s]


class Scoreboard:
    """Turns raw trace words into per-layer arrays, records them, and compares each step with the reference.

    Protocol faults (a trace group missing or repeated, output tokens that disagree with the trace's own
    output spikes, nonzero padding lanes) raise :class:`StreamProtocolError` at once. A difference from the
    golden model is kept as :attr:`mismatch` (the first one) and raised as :class:`Mismatch` only when
    ``strict``.

    Cycles are checked three ways when a step comes with its :class:`StepTiming`: ``step_cycles`` against
    the golden cycle model (a mismatch), the cycles measured at the ports against the model (a
    mismatch), and ``step_cycles`` against the measured cycles (a protocol fault: the counter breaks its
    port contract, and only this makes a lenient run fail when the counter agrees with a wrong model,
    since the measured :class:`Result` carries ``step_cycles``). Measured figures are in
    :attr:`measured_cycles` (-1: not measured) and whether each was exact in :attr:`measured_exact`.
    """

    def __init__(self, model: ReferenceModel, *, strict: bool):
        self._m = model
        self.strict = strict
        self.mismatch: str | None = None
        qm, lanes = model.model, model.lanes
        shape = (model.samples, qm.timesteps)
        self.spikes = [np.zeros((*shape, layer.n_out), np.uint8) for layer in qm.layers]
        self.membranes = [np.zeros((*shape, layer.n_out), np.int32) for layer in qm.layers]
        self.cycles = np.zeros(shape, np.int64)
        self.measured_cycles = np.full(shape, -1, np.int64)
        self.measured_exact = np.zeros(shape, bool)
        self.prediction = np.full(model.samples, -1, np.int64)
        self._groups = [groups(layer.n_out, lanes) for layer in qm.layers]

    def _fail(self, msg: str) -> None:
        self.mismatch = self.mismatch or msg
        if self.strict:
            raise Mismatch(msg)

    def step(self, s: int, t: int, trace: list[tuple[int, int, int, int]], tokens: list[int],
             cycles: int, timing: StepTiming | None = None) -> None:
        """Score step ``t`` of sample ``s`` from its trace words, output tokens, ``step_cycles`` and (if
        given) the port events that delimit it."""
        lanes = self._m.lanes
        seen = [np.zeros(g, bool) for g in self._groups]
        for layer, group, spk, mem in trace:
            if layer >= len(seen) or group >= len(seen[layer]):
                raise StreamProtocolError(f"sample {s}, t {t}: trace names layer {layer} group {group}, "
                                          f"which does not exist")
            if seen[layer][group]:
                raise StreamProtocolError(f"sample {s}, t {t}: trace shows layer {layer} group {group} twice")
            seen[layer][group] = True
            n_out = self.spikes[layer].shape[2]
            for lane in range(lanes):
                i = group * lanes + lane
                raw = (mem >> (TRACE_WIDTH * lane)) & ((1 << TRACE_WIDTH) - 1)
                v = raw - (1 << TRACE_WIDTH) if raw >> (TRACE_WIDTH - 1) else raw
                bit = (spk >> lane) & 1
                if i < n_out:
                    self.membranes[layer][s, t, i] = v
                    self.spikes[layer][s, t, i] = bit
                elif v or bit:
                    raise StreamProtocolError(f"sample {s}, t {t}: trace layer {layer} group {group} lane {lane} "
                                              f"lies beyond the {n_out} neurons but shows v={v}, s={bit}")
        for layer, got in enumerate(seen):
            if not got.all():
                raise StreamProtocolError(f"sample {s}, t {t}: trace never showed layer {layer} group "
                                          f"{int(np.flatnonzero(~got)[0])}")
        self.cycles[s, t] = cycles
        msg = step_mismatch(self._m.expected, s, t, [x[s, t] for x in self.spikes],
                            [x[s, t] for x in self.membranes], cycles)
        if msg is not None:
            self._fail(msg)
        if timing is not None:
            self._timing(s, t, cycles, timing)
        # The output tokens are checked against the RTL's own trace: the measured Result then speaks for
        # them too, so a comparison of Results (first_mismatch) loses nothing.
        own = np.flatnonzero(self.spikes[-1][s, t]).tolist()
        if tokens != own:
            raise StreamProtocolError(f"sample {s}, t {t}: spikes stream sent addresses {tokens}, but the trace "
                                      f"shows output spikes at {own}")

    def _timing(self, s: int, t: int, cycles: int, timing: StepTiming) -> None:
        """Compare the cycles measured at the ports with the cycle model and with ``step_cycles``."""
        if timing.done - timing.eot != 2:
            raise StreamProtocolError(f"sample {s}, t {t}: step_done at cycle {timing.done}, "
                                      f"{timing.done - timing.eot} cycles after the spikes eot handshake "
                                      f"(cycle {timing.eot}), not 2")
        got, slack = timing.cycles, timing.slack
        self.measured_cycles[s, t] = got
        self.measured_exact[s, t] = slack == 0
        model = int(self._m.expected.cycles[s, t])
        if not model <= got <= model + slack:
            want = f"{model}" if slack == 0 else f"{model}..{model + slack}"
            self._fail(f"sample {s}, t {t}: cycles measured {got}, cycle model {want} (step_cycles {cycles}; "
                       f"{timing.describe()})")
        if not cycles <= got <= cycles + slack:
            raise StreamProtocolError(f"sample {s}, t {t}: step_cycles says {cycles}, but the ports show "
                                      f"{got} cycles ({timing.describe()})")

    def sample_done(self, s: int, prediction: int, error: int, counts: int) -> None:
        """Score the end of sample ``s`` from the ``prediction``, ``error`` and (packed) ``counts`` ports.

        The counters must equal the output spikes the trace showed; the prediction is compared with the
        golden model.
        """
        if error != self._m.expected_error[s]:
            raise StreamProtocolError(f"sample {s}: error flags {error:#04b}, expected "
                                      f"{self._m.expected_error[s]:#04b} from the invalid tokens sent")
        own = self.spikes[-1][s].sum(axis=0, dtype=np.int64)
        width = self._m.model.timesteps.bit_length()
        got = [(counts >> (width * i)) & ((1 << width) - 1) for i in range(len(own))]
        if got != own.tolist():
            raise StreamProtocolError(f"sample {s}: counts port shows {got}, but the trace shows output spike "
                                      f"counts {own.tolist()}")
        self.prediction[s] = prediction
        msg = prediction_mismatch(self._m.expected, s, prediction)
        if msg is not None:
            self._fail(msg)

    def result(self) -> reference.Result:
        """What was measured, as a golden :class:`~qlif.golden.spec.reference.Result`."""
        return reference.Result(spikes=self.spikes, membranes=self.membranes, prediction=self.prediction,
                                cycles=self.cycles)


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
        self._clock: Task | None = None
        dut.clear.value = 0
        dut.rst.value = 0

    @property
    def _parts(self) -> tuple[_Part, ...]:
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
            await with_timeout(_until_high(self.clk, self.dut.idle), budget * CLOCK_NS, "ns")
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
        sb.sample_done(s, _uint(self.dut.prediction), _uint(self.dut.error), _uint(self.dut.counts))
