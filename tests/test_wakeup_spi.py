# amaranth: UnusedElaboratable=no
"""The SPI target of the wake-up build (boards/link/spi_target.py) in Amaranth's simulator: frames in,
status and result out, a frame sent while busy refused whole (also while ``clock_on`` says the core's
clock is still being turned off), REFUSED kept through a READ_STATUS cut short, CIPO driven only while
CS is low, the wake mask written over SPI, a glitch on CS in a frame committing nothing."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from qlif.boards.link.spi_target import SPITarget
from qlif.boards.protocol import SPICmd, SPIFlag, decode_spi_result, decode_spi_status
from qlif.boards.protocol import spi_read_result as read_result
from qlif.boards.protocol import spi_read_status as read_status
from qlif.boards.protocol import spi_write_frame as write_frame
from qlif.boards.protocol import spi_write_mask as write_mask

N_IN, N_OUT, T = 12, 10, 300       # T > 255: two bytes per count


async def transfer(ctx, dut, mosi: bytes) -> bytes:
    """One SPI mode-0 transaction, MSB first; returns the MISO bytes. The core domain ticks meanwhile
    (the target must work whether or not it runs)."""
    miso = await transfer_bits(ctx, dut, _bits(mosi))
    return bytes(int("".join(map(str, miso[i:i + 8])), 2) for i in range(0, len(miso), 8))


def _bits(data: bytes) -> list[int]:
    return [byte >> b & 1 for byte in data for b in reversed(range(8))]


async def transfer_bits(ctx, dut, bits: list[int]) -> list[int]:
    """CS low, ``bits`` out on COPI (one SCK cycle each), CS high; returns the bits read on CIPO."""
    miso = []
    assert not ctx.get(dut.cipo_oe), "CIPO driven while CS is high"
    ctx.set(dut.cs_n, 0)
    await ctx.delay(1e-7)
    assert ctx.get(dut.cipo_oe), "CIPO not driven while CS is low"
    for bit in bits:
        ctx.set(dut.copi, bit)
        await ctx.delay(1e-7)
        miso.append(ctx.get(dut.cipo))
        ctx.set(dut.sck, 1)
        await ctx.delay(1e-7)
        ctx.set(dut.sck, 0)
    await ctx.delay(1e-7)
    ctx.set(dut.cs_n, 1)
    await ctx.delay(1e-7)
    return miso


def test_spi_target_frames_status_result():
    dut = SPITarget(n_in=N_IN, n_out=N_OUT, timesteps=T, wake_classes=0b100)
    rng = random.Random(3)
    frames = [[rng.randrange(256) for _ in range(N_IN)] for _ in range(2)]
    seen = []
    release = []          # the host lets the core finish a frame once it has checked it busy

    async def host(ctx):
        flags, pred, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert (flags, n) == (SPIFlag(0), 0)
        # The core's clock still on (its controller turning it off): busy, a frame refused; REFUSED
        # outlives a READ_STATUS cut short before its flags byte has gone out whole.
        ctx.set(dut.clock_on, 1)
        await transfer(ctx, dut, write_frame(frames[1]))
        assert not ctx.get(dut.run)
        await transfer(ctx, dut, read_status()[:1])      # the command byte alone
        flags, _, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert (flags, n) == (SPIFlag.BUSY | SPIFlag.REFUSED, 0)
        ctx.set(dut.clock_on, 0)
        flags, _, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert (flags, n) == (SPIFlag(0), 0)
        assert not ctx.get(dut.run)
        await transfer(ctx, dut, write_frame(frames[0]))
        assert ctx.get(dut.run)                          # the core's clock may start now
        # Busy: a second frame and a mask are refused, and the buffer keeps the first frame.
        flags, _, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert flags == SPIFlag.BUSY and n == 1
        await transfer(ctx, dut, write_frame(frames[1]))
        await transfer(ctx, dut, write_mask([0], N_OUT))
        flags, _, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert flags == SPIFlag.BUSY | SPIFlag.REFUSED and n == 1
        assert ctx.get(dut.mask) == 0b100
        release.append(0)
        await ctx.tick().until(~dut.run)
        flags, pred, n = decode_spi_status(await transfer(ctx, dut, read_status()))   # REFUSED was cleared
        assert (flags, pred, n) == (SPIFlag.DONE | SPIFlag.WAKE, 2, 1)
        got = decode_spi_result(await transfer(ctx, dut, read_result(N_OUT, T)), n_out=N_OUT, timesteps=T)
        assert got == (2, [7 * i + 250 for i in range(N_OUT)])
        await transfer(ctx, dut, write_mask([1, 9], N_OUT))
        assert ctx.get(dut.mask) == 0b10_0000_0010
        # A short frame commits nothing, and the write after it is refused (it could be the rest of the
        # short one, cut by a glitch on CS); after a whole READ_STATUS the frame goes in.
        await transfer(ctx, dut, write_frame(frames[1])[:-1])
        assert not ctx.get(dut.run)
        await transfer(ctx, dut, write_frame(frames[1]))
        assert not ctx.get(dut.run)
        flags, _, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert flags & SPIFlag.REFUSED and n == 1
        await transfer(ctx, dut, write_frame(frames[1]))
        release.append(1)
        await ctx.tick().until(~dut.run)

    async def core(ctx):
        for k in range(len(frames)):
            await ctx.tick().until(dut.start)
            while len(release) <= k:      # read after the refused frame: it must not have been written
                await ctx.tick()
            got = []
            for j in range(N_IN):
                ctx.set(dut.frame.addr, j)
                await ctx.tick()
                got.append(ctx.get(dut.frame.data))
            seen.append(got)
            ctx.set(dut.prediction, 2)
            ctx.set(dut.wake, 1)
            for i in range(N_OUT):
                ctx.set(dut.counts[i], 7 * i + 250)
            ctx.set(dut.done, 1)
            await ctx.tick()
            ctx.set(dut.done, 0)
            await ctx.tick()
            assert not ctx.get(dut.start)

    sim = Simulator(dut)
    sim.add_clock(1 / 12e6)
    sim.add_testbench(host)
    sim.add_testbench(core, background=True)
    sim.run_until(2e-3)
    assert seen == frames


@pytest.mark.parametrize("cut", [8 * 5, 8 * 5 + 3, 2])
def test_spi_target_cs_glitch_commits_nothing(cut):
    """A glitch on CS ``cut`` bits into a WRITE_FRAME (between bytes, in the middle of one, in the command
    byte): the rest of the frame, whose first 8 bits happen to read WRITE_MASK and whose next two bytes a
    mask, reaches the target as a transaction of its own. Nothing is committed (no frame, the mask
    untouched); the target reports REFUSED, then takes the frame sent again. (Before the fix the rest
    was decoded as a WRITE_MASK and overwrote the mask.)"""
    dut = SPITarget(n_in=N_IN, n_out=N_OUT, timesteps=T, wake_classes=0b100)
    frame = write_frame(range(1, N_IN + 1))
    rest = _bits(bytes([SPICmd.WRITE_MASK, 0xFF, 0x03]))
    stream = _bits(frame)[:cut] + rest
    stream += [0] * (8 * len(frame) - len(stream))

    async def host(ctx):
        await transfer_bits(ctx, dut, stream[:cut])
        await transfer_bits(ctx, dut, stream[cut:])                  # the glitch: CS high 200 ns
        assert ctx.get(dut.mask) == 0b100 and not ctx.get(dut.run)
        flags, _, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert (flags, n) == (SPIFlag.REFUSED, 0)
        assert ctx.get(dut.mask) == 0b100
        await transfer(ctx, dut, frame)
        assert ctx.get(dut.run)
        flags, _, n = decode_spi_status(await transfer(ctx, dut, read_status()))
        assert (flags, n) == (SPIFlag.BUSY, 1)

    sim = Simulator(dut)
    sim.add_clock(1 / 12e6)
    sim.add_testbench(host)
    sim.run()


@pytest.mark.parametrize("kwargs", [dict(n_in=0, n_out=2, timesteps=4), dict(n_in=4, n_out=256, timesteps=4),
                                    dict(n_in=4, n_out=2, timesteps=4, wake_classes=4)])
def test_spi_target_refuses_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        SPITarget(**kwargs)
