"""The cocotb parts at the ports of the generated ``qlif_top``: a driver of ``events`` and monitors of
``spikes``, ``trace`` and the step status, each free-running and stamping what it sees with its clock
cycle.

Timing discipline (see :mod:`qlif.sim.tb`): everything is read and written at the falling clock edge.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator

import cocotb
from cocotb.handle import HierarchyObject, LogicObject
from cocotb.simtime import get_sim_time
from cocotb.task import Task
from cocotb.triggers import Event, FallingEdge, ReadOnly, RisingEdge
from cocotb.types import LogicArray

from qlif.golden.spec.layouts import EOT, TOKEN_ADDR_BITS

__all__ = ["CLOCK_NS", "StreamProtocolError", "StreamBus", "pauses", "read_uint", "cycle", "until_high", "Part",
           "Driver", "SpikeMonitor", "TraceMonitor", "StepMonitor"]

#: Clock period of the testbench; only the cycle count matters, the unit is for waveform viewers.
CLOCK_NS = 10


class StreamProtocolError(AssertionError):
    """The design broke its port contract (a token out of order, a trace group missing, an error flag)."""


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

    Pauses come in bursts of 1..4 cycles, and one in ten of 8..12 cycles, so that single-cycle, short
    and long stalls are all exercised (functional coverage asks for 1 and >= 8 cycles).
    """
    while True:
        if rng is not None and rng.random() < rate:
            yield from [True] * (rng.randint(8, 12) if rng.random() < 0.1 else rng.randint(1, 4))
        else:
            yield False


def read_uint(sig: LogicObject) -> int:
    """The unsigned value of a port; one-bit ports read as a ``Logic``, wider ones as a ``LogicArray``."""
    v = sig.value
    return v.to_unsigned() if isinstance(v, LogicArray) else int(v)


def cycle() -> int:
    """The clock cycle now: the number of clock periods since time 0.

    The parts call it at falling edges (``CLOCK_NS`` apart), so two calls differ by exactly the number of
    clock edges between them: counting edges without a coroutine woken at each one.
    """
    return round(get_sim_time("ns") / CLOCK_NS)


async def until_high(clk: LogicObject, sig: LogicObject) -> None:
    """Return at the first falling clock edge (from the next one on) at which ``sig`` is 1.

    Sleeps on ``sig``'s value changes instead of waking every cycle; the re-check at the falling edge
    filters out zero-time glitches of combinational outputs.
    """
    await FallingEdge(clk)
    while not sig.value:
        await RisingEdge(sig)
        await FallingEdge(clk)


class Part:
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


class Driver(Part):
    """Drives the ``events`` stream from a queue of preloaded tokens.

    Tokens are payload integers (``addr | EOT``). With ``rng`` the driver drops ``valid`` for random
    bursts between tokens (it never withdraws a token once offered: a stream producer holds its payload
    until it is accepted).

    Every accepted token is recorded in :attr:`taken` as ``(cycle, gaps)``: the cycle of its handshake
    and the number of cycles the driver had held ``valid`` low for a pause before it (since the start);
    :attr:`gap_runs` gets the length of every pause (functional coverage).
    """

    def __init__(self, clk: LogicObject, bus: StreamBus, rng: random.Random | None = None):
        self._clk, self._bus = clk, bus
        self._queue: deque[int] = deque()
        self._gaps = pauses(rng)
        self._gap_cycles = 0
        self._run_length = 0
        self.taken: list[tuple[int, int]] = []
        self.gap_runs: list[int] = []
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
                self._run_length += 1
                continue
            if self._run_length:
                self.gap_runs.append(self._run_length)
                self._run_length = 0
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


class SpikeMonitor(Part):
    """Collects the ``spikes`` stream as one list of addresses per timestep (closed by the eot token).

    With ``rng`` it holds ``ready`` low for random bursts (backpressure); otherwise ready stays high.
    For every step, :attr:`ends` gets ``(cycle, stalls)``: the cycle of the eot handshake and the cycles
    since the previous eot in which ``valid`` was high and ``ready`` low; :attr:`stall_runs` the length
    of every unbroken run of such cycles (functional coverage).
    """

    def __init__(self, clk: LogicObject, bus: StreamBus, rng: random.Random | None = None):
        self._clk, self._bus = clk, bus
        self._pauses = pauses(rng)
        self.steps: deque[list[int]] = deque()
        self.ends: deque[tuple[int, int]] = deque()
        self._current: list[int] = []
        self._stalls = 0
        self._run_length = 0
        self.stall_runs: list[int] = []
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
                self._end_run()
                await RisingEdge(bus.valid)
                await FallingEdge(clk)
                continue
            if ready:
                self._end_run()
                self._take(bus.payload.value)
            else:
                self._stalls += 1
                self._run_length += 1
            await FallingEdge(clk)

    def _end_run(self) -> None:
        if self._run_length:
            self.stall_runs.append(self._run_length)
            self._run_length = 0

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


class TraceMonitor(Part):
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
                    self.entries.append(tuple(read_uint(f) for f in fields))
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
        await until_high(self._clk, self._done)
        return read_uint(self._cycles), cycle()
