"""The host link end to end in the Amaranth simulator: UART bytes in, the golden prediction out.

A host-side UART (the same RTL blocks) drives the link's ``rx`` pin and listens on ``tx``, so each test
is the real byte protocol of docs/host-protocol.md against the real core; the reply must equal
``qlif.golden.reference.run``'s prediction.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from qlif.boards.build import random_model
from qlif.boards.host import BoardError, classify
from qlif.boards.link import (
    CLEAR,
    EOT,
    ERR_ADDRESS,
    ERR_ORDER,
    ERROR_FLAG,
    HostLink,
    TokenAssembler,
    decode_reply,
    encode_sample,
)
from qlif.boards.uart import UARTRX, UARTTX
from qlif.golden.reference import run

CLK, BAUD = 1e6, 125_000          # 8 cycles per bit: the shortest frames the UART takes, for speed
RESYNC = 400                      # cycles; five frame times


def _words(*words: int) -> bytes:
    return b"".join(w.to_bytes(2, "big") for w in words)


class SimPort:
    """A serial port onto a simulated :class:`HostLink`: host-side UART blocks drive its pins.

    ``write`` queues bytes; ``read(n)`` runs the simulation until ``n`` reply bytes came (or a cycle
    budget ran out, like a port's timeout); ``idle(cycles)`` lets time pass with the line quiet.
    """

    CHUNK = 2_000            # cycles simulated per step while waiting

    def __init__(self, model, lanes: int, *, timeout_cycles: int = 200_000, wake_classes=None):
        m = Module()
        m.submodules.link = self.link = HostLink(model=model, lanes=lanes, clk_freq=CLK, baud=BAUD,
                                                 resync_cycles=RESYNC, wake_classes=wake_classes)
        m.submodules.host_tx = self._tx = UARTTX(clk_freq=CLK, baud=BAUD)
        m.submodules.host_rx = self._rx = UARTRX(clk_freq=CLK, baud=BAUD)
        m.d.comb += [self.link.rx.eq(self._tx.tx), self._rx.rx.eq(self.link.tx)]
        self._out, self._in, self.leds, self.wake = deque(), deque(), [], []
        self._timeout = timeout_cycles
        self._now = 0
        self._sim = Simulator(m)
        self._sim.add_clock(1 / CLK)
        self._sim.add_testbench(self._send, background=True)
        self._sim.add_testbench(self._receive, background=True)

    async def _send(self, ctx):
        tx = self._tx.data
        while True:
            if self._out:
                ctx.set(tx.valid, 1)
                ctx.set(tx.payload, self._out.popleft())
                await ctx.tick().until(tx.ready)
                ctx.set(tx.valid, 0)
            else:
                await ctx.tick()

    async def _receive(self, ctx):
        ctx.set(self._rx.data.ready, 1)
        while True:
            await ctx.tick()
            if ctx.get(self._rx.data.valid):
                self._in.append(ctx.get(self._rx.data.payload))
                self.leds.append((ctx.get(self.link.ok), ctx.get(self.link.fault)))
                self.wake.append(ctx.get(self.link.wake))

    def _advance(self, cycles: int) -> None:
        self._now += cycles
        self._sim.run_until(self._now / CLK)

    def write(self, data: bytes) -> int:
        self._out.extend(data)
        return len(data)

    def read(self, size: int) -> bytes:
        waited = 0
        while len(self._in) < size and waited < self._timeout:
            self._advance(self.CHUNK)
            waited += self.CHUNK
        return bytes(self._in.popleft() for _ in range(min(size, len(self._in))))

    def idle(self, cycles: int) -> None:
        """Let the queued bytes go out, then keep the line quiet for ``cycles``."""
        while self._out:
            self._advance(self.CHUNK // 10)
        self._advance(cycles)


@pytest.fixture(scope="module")
def small():
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    x = (np.random.default_rng(4).random((6, 4, 16)) < 0.3).astype(np.uint8)
    return model, x, run(model, x).prediction


def test_predictions_match_golden(small):
    """Samples back to back through the host code that drives a board: every reply is golden."""
    model, x, golden = small
    assert len(set(golden.tolist())) > 1, "the stimuli should not all predict the same class"
    port = SimPort(model, 4)
    assert classify(port, x).tolist() == golden.tolist()
    assert port.leds == [(1, 0)] * len(x)
    assert port.wake == [1] * len(x)          # by default every class wakes


def test_wake_classes(small):
    """``wake`` follows the prediction replies whose class is in ``wake_classes``."""
    model, x, golden = small
    chosen = {int(golden[0])}
    port = SimPort(model, 2, wake_classes=chosen)
    assert port.link.wake_classes == chosen
    assert classify(port, x).tolist() == golden.tolist()
    assert port.wake == [int(g in chosen) for g in golden.tolist()]


def test_errors_flush_and_resync(small):
    model, x, golden = small
    port = SimPort(model, 2)
    # Descending addresses: the second token is dropped and the sample answers with ERR_ORDER.
    port.write(_words(CLEAR, 5, 3, *[EOT] * model.timesteps))
    # An address >= n_in: ERR_ADDRESS, then a clean sample: the flags were cleared by CLEAR.
    port.write(_words(CLEAR, 16, *[EOT] * model.timesteps))
    port.write(encode_sample(x[0]))
    # CLEAR in the middle of a step (events, no EOT): the link ends the step itself, clears, and the
    # next sample is unaffected by the abandoned one.
    port.write(_words(CLEAR, 0, 1, 2, 3, 4, 5, 6, 7))
    port.write(encode_sample(x[1]))
    # A lone byte (a host that lost one): after a pause longer than the resync time the next token is
    # aligned again.
    port.write(b"\x00")
    port.idle(2 * RESYNC)
    port.write(encode_sample(x[2]))
    replies = list(port.read(5))
    assert replies == [ERROR_FLAG | ERR_ORDER, ERROR_FLAG | ERR_ADDRESS, *golden[:3].tolist()]
    assert port.leds == [(0, 1), (0, 1), (1, 0), (1, 0), (1, 0)]
    assert [decode_reply(r) for r in replies[:3]] == [(None, ERR_ORDER), (None, ERR_ADDRESS), (golden[0], 0)]
    # The host code turns an error reply into an exception naming the sample and the error.
    with pytest.raises(BoardError, match="sample 0: the board reported address >= n_in") as info:
        classify(_OutOfRange(port, model.n_in), x[:2])
    assert info.value.flags == ERR_ADDRESS


class _OutOfRange:
    """A port that adds input address ``n_in`` to the first step of the first sample it is sent."""

    def __init__(self, port: SimPort, n_in: int):
        self._port, self._n_in, self._done = port, n_in, False

    def write(self, data: bytes) -> int:
        if not self._done:
            # CLEAR is bytes 0..1; the first step's tokens follow.
            data = data[:2] + self._n_in.to_bytes(2, "big") + data[2:]
            self._done = True
        return self._port.write(data)

    def read(self, size: int) -> bytes:
        return self._port.read(size)


def test_classify_times_out(small):
    model, x, _ = small
    port = SimPort(model, 4, timeout_cycles=4_000)
    with pytest.raises(TimeoutError, match="0 of 1"):
        classify(port, x[:1, :-1])     # one step short: the board never answers


def test_token_assembler_timeout():
    """Big-endian pairs; a first byte is dropped when no second byte follows within ``timeout`` cycles."""
    dut = TokenAssembler(timeout=10)
    got = []

    async def source(ctx):
        # (byte, idle cycles after its handshake): the second byte of a pair then lands that many + 1
        # cycles after the first. 0xAB waits 11 cycles (dropped), 0xFE waits 10 (still paired).
        for byte, gap in [(0x12, 0), (0x34, 0), (0xAB, 10), (0xFF, 0), (0xFE, 0), (0xFE, 9), (0x01, 0),
                          (0xFF, 0), (0xFF, 0)]:
            ctx.set(dut.bytes.valid, 1)
            ctx.set(dut.bytes.payload, byte)
            await ctx.tick().until(dut.bytes.ready)
            ctx.set(dut.bytes.valid, 0)
            if gap:
                await ctx.tick().repeat(gap)

    async def sink(ctx):
        ctx.set(dut.tokens.ready, 1)
        for _ in range(60):
            await ctx.tick()
            if ctx.get(dut.tokens.valid):
                tok = ctx.get(dut.tokens.payload)
                got.append((tok.word, tok.eot, tok.clear))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert got == [(0x1234, 0, 0), (CLEAR, 0, 1), (0xFE01, 0, 0), (EOT, 1, 0)]


def test_bad_params(small):
    model = small[0]
    with pytest.raises(ValueError, match="timeout"):
        TokenAssembler(timeout=0)
    with pytest.raises(ValueError, match="outputs"):
        HostLink(model=random_model([4, 200], seed=0), lanes=1, clk_freq=CLK, baud=BAUD)
    with pytest.raises(ValueError, match="baud"):
        HostLink(model=model, lanes=1, clk_freq=CLK, baud=500_000)
    with pytest.raises(ValueError, match="wake_classes"):
        HostLink(model=model, lanes=1, clk_freq=CLK, baud=BAUD, wake_classes=[model.n_out])
    with pytest.raises(TypeError, match="wake_classes"):
        HostLink(model=model, lanes=1, clk_freq=CLK, baud=BAUD, wake_classes=3)
