# amaranth: UnusedElaboratable=no
"""UART RX/TX in the Amaranth simulator: loopback, bit timing, baud tolerance, framing and overrun."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from qlif.boards.link.uart import MAX_BAUD_ERROR, UARTRX, UARTTX, baud_divisor


def _line_bits(byte: int) -> list[int]:
    """The 8N1 frame of ``byte`` as line levels: start, data LSB first, stop."""
    return [0, *((byte >> i) & 1 for i in range(8)), 1]


async def _drive_frame(ctx, pin, bits, period_cycles: float, clock: list[float]) -> None:
    """Drive ``bits`` on ``pin`` with a (fractional) bit period; ``clock[0]`` carries the phase over."""
    for b in bits:
        ctx.set(pin, b)
        clock[0] += period_cycles
        while clock[0] >= 1:
            await ctx.tick()
            clock[0] -= 1


def _run(dut, *testbenches, deadline_cycles: int = 200_000):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    sim.run_until(deadline_cycles * 1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"clk_freq": 12e6, "baud": 3_000_000}, "too fast"),
    ({"clk_freq": 12e6, "baud": 1_300_000}, "off"),            # 9 cycles give 1.333 Mbaud, 2.6 % off
    ({"clk_freq": 0, "baud": 9600}, "clk_freq"),
    ({"clk_freq": 12e6, "baud": 9600.0}, "baud"),
    ({"clk_freq": 12e6, "baud": True}, "baud"),
])
def test_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UARTRX(**kwargs)
    with pytest.raises(ValueError, match=match):
        UARTTX(**kwargs)


def test_divisor():
    assert baud_divisor(clk_freq=12e6, baud=115200) == 104          # 0.16 % fast
    assert baud_divisor(clk_freq=48e6, baud=1_000_000) == 48
    assert baud_divisor(clk_freq=1e6, baud=100_000) == 10


def test_loopback_back_to_back():
    """TX into RX, bytes queued back to back: every byte arrives, in order, one frame time apart."""
    rng = random.Random(1)
    payload = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(28)]
    m = Module()
    m.submodules.tx = tx = UARTTX(clk_freq=1e6, baud=100_000)
    m.submodules.rx = rx = UARTRX(clk_freq=1e6, baud=100_000)
    m.d.comb += rx.rx.eq(tx.tx)
    got, times = [], []

    async def send(ctx):
        for byte in payload:
            ctx.set(tx.data.valid, 1)
            ctx.set(tx.data.payload, byte)
            await ctx.tick().until(tx.data.ready)
        ctx.set(tx.data.valid, 0)

    async def receive(ctx):
        ctx.set(rx.data.ready, 1)
        cycle = 0
        while len(got) < len(payload):
            await ctx.tick()
            cycle += 1
            assert not ctx.get(rx.error.frame) and not ctx.get(rx.error.overrun)
            if ctx.get(rx.data.valid):
                got.append(ctx.get(rx.data.payload))
                times.append(cycle)

    _run(m, send, receive)
    assert got == payload
    # Back to back: one byte every 10 bit times exactly (the transmitter sets the pace).
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {100}


def test_tx_bit_timing():
    """Each bit of the transmitted frame lasts exactly ``divisor`` cycles, LSB first, idle high."""
    dut = UARTTX(clk_freq=1e6, baud=62_500)   # 16 cycles per bit
    levels = []

    async def tb(ctx):
        assert ctx.get(dut.tx) == 1
        ctx.set(dut.data.valid, 1)
        ctx.set(dut.data.payload, 0xB4)
        await ctx.tick()
        ctx.set(dut.data.valid, 0)
        for _ in range(16 * 12):
            levels.append(ctx.get(dut.tx))
            await ctx.tick()

    _run(dut, tb)
    expect = [b for b in _line_bits(0xB4) for _ in range(16)]
    assert levels[:160] == expect
    assert set(levels[160:]) == {1}


@pytest.mark.parametrize("skew", [-MAX_BAUD_ERROR * 1.5, 0.0, MAX_BAUD_ERROR * 1.5])
def test_rx_baud_tolerance(skew):
    """A sender up to 3 % off the nominal rate is still received, bytes back to back."""
    dut = UARTRX(clk_freq=1e6, baud=62_500)
    rng = random.Random(2)
    payload = [rng.randrange(256) for _ in range(20)]
    got = []

    async def sender(ctx):
        clock = [0.0]
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        for byte in payload:
            await _drive_frame(ctx, dut.rx, _line_bits(byte), 16 * (1 + skew), clock)

    async def receiver(ctx):
        ctx.set(dut.data.ready, 1)
        while len(got) < len(payload):
            await ctx.tick()
            assert not ctx.get(dut.error.frame)
            if ctx.get(dut.data.valid):
                got.append(ctx.get(dut.data.payload))

    _run(dut, sender, receiver)
    assert got == payload


def test_rx_framing_error_glitch_and_overrun():
    dut = UARTRX(clk_freq=1e6, baud=100_000)
    events = []

    async def sender(ctx):
        clock = [0.0]
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(5)
        # A 3-cycle glitch is not a start bit.
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(30)
        # 0x3C with a 0 stop bit, then the line held low (a break) for three frame times: one error.
        await _drive_frame(ctx, dut.rx, [0, 0, 0, 1, 1, 1, 1, 0, 0, 0], 10, clock)
        await ctx.tick().repeat(300)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(30)
        # Two good bytes while nobody takes them: the first is held, the second overruns.
        await _drive_frame(ctx, dut.rx, _line_bits(0x12) + _line_bits(0x34), 10, clock)
        await ctx.tick().repeat(30)

    async def monitor(ctx):
        for cycle in range(1200):
            if ctx.get(dut.error.frame):
                events.append(("frame", cycle))
            if ctx.get(dut.error.overrun):
                events.append(("overrun", cycle))
            await ctx.tick()
        assert ctx.get(dut.data.valid) and ctx.get(dut.data.payload) == 0x12

    _run(dut, sender, monitor)
    assert [e for e, _ in events] == ["frame", "overrun"]
