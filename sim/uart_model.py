"""cocotb UART model of the host's side of the link: drives ``rx`` and decodes ``tx`` bit by bit.

* :class:`UartSource` sends queued bytes as 8N1 frames on the board's ``rx`` pin, back to back (no idle
  bit between frames: the fastest a UART can send), with optional framing errors (a 0 stop bit).
* :class:`UartSink` watches ``tx``: it waits for a start edge, samples every bit in its middle, checks the
  stop bit, and collects the bytes.
* :class:`SimPort` puts both behind the ``write``/``read``/``pause`` port of :class:`qlif.boards.host.driver.Board`
  for a driver running in a cocotb ``bridge`` thread: each call hands control to the simulator
  (``resume``) and returns when the simulated line has done it, so the host driver runs unchanged.

Timing discipline (as in :mod:`qlif.sim.tb`): a burst starts at a falling clock edge and every bit lasts
a whole number of clock cycles, so ``rx`` only changes half a cycle away from the rising edges where
the design samples it, on every simulator.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from cocotb.handle import LogicObject
from cocotb.task import resume
from cocotb.triggers import Event, FallingEdge, SimTimeoutError, Timer, with_timeout

__all__ = ["UartByte", "UartSource", "UartSink", "SimPort"]


@dataclass(frozen=True)
class UartByte:
    """A byte to send; ``bad_stop`` sends it with a 0 stop bit (the receiver must drop and count it),
    followed by two idle bits so that the receiver finds the next start edge."""

    value: int
    bad_stop: bool = False


class UartSource:
    """Sends bytes on ``pin`` (the design's ``rx``), ``divisor`` clock cycles per bit.

    Parameters
    ----------
    clk, pin : LogicObject
        The design's clock and its UART input.
    divisor : int
        Clock cycles per bit.
    period_ns : float
        The clock period.
    """

    def __init__(self, clk: LogicObject, pin: LogicObject, *, divisor: int, period_ns: float):
        self._clk, self._pin = clk, pin
        self._bit_ns = divisor * period_ns
        self._queue: deque[UartByte] = deque()
        self._work = Event()
        self._idle = Event()
        self._idle.set()
        self.sent = 0
        self.longest_burst = 0     # the most bytes sent back to back (no idle bit between them)
        pin.value = 1

    def send(self, data: bytes | list[UartByte]) -> None:
        """Queue bytes (or :class:`UartByte` items) behind those not yet sent."""
        self._queue.extend(b if isinstance(b, UartByte) else UartByte(b) for b in data)
        if self._queue:
            self._idle.clear()
            self._work.set()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    async def drained(self) -> None:
        """Return once every queued byte has left, stop bit included."""
        await self._idle.wait()

    async def run(self) -> None:
        pin, bit = self._pin, self._bit_ns
        burst = 0
        while True:
            if not self._queue:
                burst = 0
                self._idle.set()
                self._work.clear()
                await self._work.wait()
                await FallingEdge(self._clk)   # a burst starts half a cycle from the sampling edges
            item = self._queue.popleft()
            frame = [0, *((item.value >> i) & 1 for i in range(8)), 0 if item.bad_stop else 1]
            if item.bad_stop:
                frame += [1, 1]
            level = None
            run = 0
            for b in frame:
                # Merge runs of equal bits into one wait: fewer simulator round trips.
                if b == level:
                    run += 1
                    continue
                if run:
                    await Timer(run * bit, unit="ns", round_mode="round")
                pin.value = b
                level, run = b, 1
            await Timer(run * bit, unit="ns", round_mode="round")
            self.sent += 1
            burst = 0 if item.bad_stop else burst + 1
            self.longest_burst = max(self.longest_burst, burst)


class UartSink:
    """Decodes the design's ``tx``: bytes in :attr:`data`, bad stop bits counted in :attr:`frame_errors`."""

    def __init__(self, pin: LogicObject, *, divisor: int, period_ns: float):
        self._pin = pin
        self._bit_ns = divisor * period_ns
        self.data = bytearray()
        self.frame_errors = 0
        self._arrived = Event()

    async def run(self) -> None:
        pin, bit = self._pin, self._bit_ns
        while True:
            if pin.value:
                await FallingEdge(pin)
            await Timer(bit / 2, unit="ns", round_mode="round")
            if pin.value:          # a glitch, not a start bit
                continue
            value = 0
            for i in range(8):
                await Timer(bit, unit="ns", round_mode="round")
                value |= int(pin.value) << i
            await Timer(bit, unit="ns", round_mode="round")
            if not pin.value:
                self.frame_errors += 1
                continue
            self.data.append(value)
            self._arrived.set()

    def take(self, size: int | None = None) -> bytes:
        """Remove and return up to ``size`` received bytes (all by default)."""
        size = len(self.data) if size is None else min(size, len(self.data))
        out = bytes(self.data[:size])
        del self.data[:size]
        return out

    async def wait_for(self, size: int, timeout_ns: float) -> bool:
        """Wait until ``size`` bytes are waiting (True) or ``timeout_ns`` passed (False)."""
        try:
            await with_timeout(self._wait(size), timeout_ns, "ns")
        except SimTimeoutError:
            return len(self.data) >= size
        return True

    async def _wait(self, size: int) -> None:
        while len(self.data) < size:
            self._arrived.clear()
            await self._arrived.wait()


class SimPort:
    """The port of :class:`qlif.boards.host.driver.Board` on the simulated UART pins, for a ``bridge`` thread.

    ``read(n)`` returns when ``n`` bytes came or after ``timeout`` seconds of simulated time (fewer
    bytes: a timeout, as with pyserial); ``pause(s)`` lets the queued bytes go out and then keeps the
    line quiet for ``s`` simulated seconds.
    """

    def __init__(self, source: UartSource, sink: UartSink, *, timeout: float):
        self._source, self._sink = source, sink
        self.timeout = timeout
        self.written = 0

    def write(self, data: bytes) -> int:
        resume(self._write)(bytes(data))
        return len(data)

    def read(self, size: int) -> bytes:
        return resume(self._read)(size)

    def pause(self, seconds: float) -> None:
        resume(self._pause)(seconds)

    async def _write(self, data: bytes) -> None:
        self._source.send(data)
        self.written += len(data)

    async def _read(self, size: int) -> bytes:
        await self._sink.wait_for(size, self.timeout * 1e9)
        return self._sink.take(size)

    async def _pause(self, seconds: float) -> None:
        await self._source.drained()
        await Timer(seconds * 1e9, unit="ns", round_mode="round")
