# amaranth: UnusedElaboratable=no
"""The SPI target of the wake-up build (boards/link/spi_target.py) in Amaranth's simulator: frames in,
status and result out, a frame sent while busy refused whole (also while ``clock_on`` says the core's
clock is still being turned off), REFUSED kept through a READ_STATUS cut short, CIPO driven only while
CS is low, the wake mask written over SPI, transactions cut short by CS committing nothing (CUT_SEQUENCES,
which tests/test_host_spi.py runs on the reference target too)."""

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


# -- transactions cut short by CS: one table for the RTL target (here) and the reference target
# (tests/test_host_spi.py) -------------------------------------------------------------------------------
MASK = 0b100                                    #: the wake mask at power-up; no sequence may change it
FRAME = write_frame(range(1, N_IN + 1))
STATUS = read_status()
#: What reaches the target after a glitch on CS in FRAME: the frame's rest, whose first 8 bits happen to
#: read WRITE_MASK and next 16 a mask of every class (then zeros to the frame's length).
REST = bytes([SPICmd.WRITE_MASK, 0xFF, 0x03])


def _glitch(cut: int) -> list[list[int]]:
    """FRAME with CS high for a moment ``cut`` bits in: two transactions, the second the rest above."""
    rest = _bits(REST) + [0] * (8 * len(FRAME) - cut - 8 * len(REST))
    return [_bits(FRAME)[:cut], rest]


_CUTS = {"between bytes": 8 * 5, "mid-byte": 8 * 5 + 3, "in the command byte": 2}
_RETRY = [(_bits(STATUS), False, (SPIFlag.REFUSED, 0)), (_bits(FRAME), True, None),
          (_bits(STATUS), True, (SPIFlag.BUSY, 1))]
#: name -> steps (MOSI bits of one transaction, ``run`` after it, the READ_STATUS answer's (flags, frames)
#: or None); the wake mask stays MASK throughout. The target is idle and fresh at the start. Its rule: a
#: write is refused when the transaction before it ended short of its command's length (CS high in a byte
#: counts); any whole transaction, the refused write's own too, lifts that.
CUT_SEQUENCES = {
    **{f"glitch {name}, its rest": [(bits, False, None) for bits in _glitch(cut)] + _RETRY
       for name, cut in _CUTS.items()},
    **{f"cut {name}, the frame at once": [(_bits(FRAME)[:cut], False, None), (_bits(FRAME), False, None)] + _RETRY
       for name, cut in _CUTS.items()},
    # The rest is a whole (refused) WRITE_MASK: the frame after it goes in, REFUSED still reported.
    "glitch between bytes, its rest, the frame at once": [
        *[(bits, False, None) for bits in _glitch(8 * 5)], (_bits(FRAME), True, None),
        (_bits(STATUS), True, (SPIFlag.BUSY | SPIFlag.REFUSED, 1))],
    # A READ_STATUS cut short is a cut transaction too (a host that cuts one must send a whole one).
    "a status cut after its command byte": [(_bits(STATUS)[:8], False, None), (_bits(FRAME), False, None),
                                            *_RETRY],
    "a frame one byte short": [(_bits(FRAME)[:-8], False, None), (_bits(FRAME), False, None), *_RETRY],
}


def observed(miso: list[int], *, run: bool, mask: int, status: bool) -> tuple:
    """A step's observable result, as CUT_SEQUENCES states it: (run, mask, (flags, frames) or None)."""
    flags_frames = None
    if status:
        flags, _, n = decode_spi_status(bytes(int("".join(map(str, miso[i:i + 8])), 2) for i in range(0, 32, 8)))
        flags_frames = (flags, n)
    return bool(run), mask, flags_frames


@pytest.mark.parametrize("name", list(CUT_SEQUENCES))
def test_spi_target_cut_transactions(name):
    """CUT_SEQUENCES on the RTL target: a glitch on CS between bytes, in the middle of one, in the command
    byte, a READ_STATUS cut short, a frame a byte short. Nothing is committed and the mask is untouched
    (before 5ff2163 a frame's rest read as WRITE_MASK overwrote it); the next write is refused until a
    whole transaction, REFUSED says so, and the frame sent again goes in."""
    dut = SPITarget(n_in=N_IN, n_out=N_OUT, timesteps=T, wake_classes=MASK)

    async def host(ctx):
        for k, (bits, run, status) in enumerate(CUT_SEQUENCES[name]):
            miso = await transfer_bits(ctx, dut, bits)
            got = observed(miso, run=ctx.get(dut.run), mask=ctx.get(dut.mask), status=status is not None)
            assert got == (run, MASK, status), f"step {k}"

    sim = Simulator(dut)
    sim.add_clock(1 / 12e6)
    sim.add_testbench(host)
    sim.run()


@pytest.mark.parametrize("kwargs", [dict(n_in=0, n_out=2, timesteps=4), dict(n_in=4, n_out=256, timesteps=4),
                                    dict(n_in=4, n_out=2, timesteps=4, wake_classes=4)])
def test_spi_target_refuses_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        SPITarget(**kwargs)
