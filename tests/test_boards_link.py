"""The host link end to end in the Amaranth simulator: UART bytes in, the golden prediction out.

A host-side UART (the same RTL blocks) drives the link's ``rx`` pin and listens on ``tx``, so each test
is the real byte protocol of docs/host-protocol.md against the real core; the reply must equal
``qlif.golden.reference.run``'s prediction.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from qlif.boards.build import random_model
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


def run_link(model, lanes: int, chunks: list[tuple[bytes, int]], n_replies: int) -> tuple[list[int], list]:
    """Send ``chunks`` of (bytes, idle cycles after them) to a :class:`HostLink`; return the replies
    and the (ok, fault) LEDs seen with each reply."""
    m = Module()
    m.submodules.link = link = HostLink(model=model, lanes=lanes, clk_freq=CLK, baud=BAUD, resync_cycles=RESYNC)
    m.submodules.host_tx = host_tx = UARTTX(clk_freq=CLK, baud=BAUD)
    m.submodules.host_rx = host_rx = UARTRX(clk_freq=CLK, baud=BAUD)
    m.d.comb += [link.rx.eq(host_tx.tx), host_rx.rx.eq(link.tx)]
    replies, leds = [], []

    async def host(ctx):
        for data, pause in chunks:
            for byte in data:
                ctx.set(host_tx.data.valid, 1)
                ctx.set(host_tx.data.payload, byte)
                await ctx.tick().until(host_tx.data.ready)
            ctx.set(host_tx.data.valid, 0)
            if pause:
                await ctx.tick().repeat(pause)

    async def listen(ctx):
        ctx.set(host_rx.data.ready, 1)
        while len(replies) < n_replies:
            await ctx.tick()
            if ctx.get(host_rx.data.valid):
                replies.append(ctx.get(host_rx.data.payload))
                leds.append((ctx.get(link.ok), ctx.get(link.fault)))

    sim = Simulator(m)
    sim.add_clock(1 / CLK)
    sim.add_testbench(host, background=True)
    sim.add_testbench(listen)
    n_bytes = sum(len(data) for data, _ in chunks)
    sim.run_until((n_bytes * 10 * 8 + sum(p for _, p in chunks) + 20_000) / CLK)
    return replies, leds


@pytest.fixture(scope="module")
def small():
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    x = (np.random.default_rng(4).random((6, 4, 16)) < 0.3).astype(np.uint8)
    return model, x, run(model, x).prediction


def test_predictions_match_golden(small):
    """Samples back to back, no pauses: every reply is the golden prediction."""
    model, x, golden = small
    assert len(set(golden.tolist())) > 1, "the stimuli should not all predict the same class"
    data = b"".join(encode_sample(s) for s in x)
    replies, leds = run_link(model, 4, [(data, 0)], len(x))
    assert replies == golden.tolist()
    assert leds == [(1, 0)] * len(x)


def test_errors_flush_and_resync(small):
    model, x, golden = small
    chunks = [
        # Descending addresses: the second token is dropped and the sample answers with ERR_ORDER.
        (_words(CLEAR, 5, 3, *[EOT] * model.timesteps), 0),
        # An address >= n_in: ERR_ADDRESS, then a clean sample: the flags were cleared by CLEAR.
        (_words(CLEAR, 16, *[EOT] * model.timesteps), 0),
        (encode_sample(x[0]), 0),
        # CLEAR in the middle of a step (events, no EOT): the link ends the step itself, clears, and
        # the next sample is unaffected by the abandoned one.
        (_words(CLEAR, 0, 1, 2, 3, 4, 5, 6, 7), 0),
        (encode_sample(x[1]), 0),
        # A lone byte (a host that lost a byte): after a pause longer than the resync time the next
        # token is aligned again.
        (b"\x00", 2 * RESYNC),
        (encode_sample(x[2]), 0),
    ]
    replies, leds = run_link(model, 2, chunks, 5)
    assert replies == [ERROR_FLAG | ERR_ORDER, ERROR_FLAG | ERR_ADDRESS, *golden[:3].tolist()]
    assert leds == [(0, 1), (0, 1), (1, 0), (1, 0), (1, 0)]
    assert [decode_reply(r) for r in replies[:3]] == [(None, ERR_ORDER), (None, ERR_ADDRESS), (golden[0], 0)]


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
