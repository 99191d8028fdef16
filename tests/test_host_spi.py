# amaranth: UnusedElaboratable=no
"""The SPI host adapter (boards/host/spi.py): against the reference target (golden), against the RTL SPI
target of the wake-up build in Amaranth's simulator (a golden stand-in for its core), and its transports'
use of spidev and pyftdi (stand-in modules: neither package is needed for the tests)."""

from __future__ import annotations

import sys
import types
from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator
from test_wakeup_spi import CUT_SEQUENCES, MASK, N_IN, N_OUT, T, observed, transfer

from qlif.boards import protocol
from qlif.boards.host.emulator import SpiTargetModel
from qlif.boards.host.spi import (
    EmulatedSpi,
    FtdiTransport,
    MissingPackage,
    SpiBoard,
    SpidevTransport,
    SpiError,
    SpiTimeout,
)
from qlif.boards.link.spi_target import SPITarget
from qlif.boards.protocol import SPICmd, SPIFlag
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import frame_inputs, run


@pytest.fixture(scope="module")
def case():
    model = replace(random_model([16, 8, 4], timesteps=6, seed=4, threshold="random"),
                    metadata={"dataset": "digits", "max_rate": "3/16"})
    frames = np.random.default_rng(4).integers(0, 17, (5, 16)).astype(np.uint8)
    return model, frames, run(model, frame_inputs(model, frames))


def _golden_equal(got, golden):
    assert got.prediction.tolist() == golden.prediction.tolist()
    assert got.counts.tolist() == golden.spikes[-1].sum(axis=1).tolist()


def test_refused_survives_a_cut_status_read(case):
    """The reference target keeps REFUSED through a READ_STATUS cut short after its command byte, as the
    RTL target does (tests/test_wakeup_spi.py), and clears it once the flags byte has gone out."""
    model, frames, _ = case
    target = SpiTargetModel(model, latency=5)
    target.exchange(protocol.spi_write_frame(frames[0]))
    target.exchange(protocol.spi_write_frame(frames[1]))             # busy: refused
    target.exchange(protocol.spi_read_status()[:1])
    assert SPIFlag.REFUSED in protocol.decode_spi_status(target.exchange(protocol.spi_read_status()))[0]
    assert SPIFlag.REFUSED not in protocol.decode_spi_status(target.exchange(protocol.spi_read_status()))[0]
    with pytest.raises(protocol.ProtocolError, match="READ_STATUS transaction has 4 bytes"):
        protocol.decode_spi_status(b"\x00\x01")


def _pack(bits: list[int]) -> bytes:
    """MSB first, the last byte padded with zeros."""
    padded = bits + [0] * (-len(bits) % 8)
    return bytes(int("".join(map(str, padded[i:i + 8])), 2) for i in range(0, len(padded), 8))


def _unpack(data: bytes, n: int) -> list[int]:
    return [byte >> b & 1 for byte in data for b in reversed(range(8))][:n]


@pytest.mark.parametrize("name", list(CUT_SEQUENCES))
def test_reference_target_cut_transactions(name):
    """The reference target on the RTL target's table of transactions cut short by CS
    (tests/test_wakeup_spi.py, CUT_SEQUENCES): the same run, mask and status after every step. (Without
    the rule, the write after a cut taken as after a whole one, all 9 fail, as the RTL target before
    5ff2163 fails them.)"""
    model = replace(random_model([N_IN, 8, N_OUT], timesteps=T, seed=5),
                    metadata={"dataset": "digits", "max_rate": "3/16"})
    target = SpiTargetModel(model, latency=10**9, wake_classes=[c for c in range(N_OUT) if MASK >> c & 1])
    for k, (bits, running, status) in enumerate(CUT_SEQUENCES[name]):
        miso = target.exchange(_pack(bits), bits=len(bits))
        assert len(miso) == -(-len(bits) // 8)
        mask = sum(1 << c for c in target.mask)
        assert observed(_unpack(miso, len(bits)), run=target.busy > 0, mask=mask, status=status is not None) \
            == (running, MASK, status), f"step {k}"


# Glitches on CS in a WRITE_FRAME whose rest reads as a WRITE_MASK with frame values 0..16: cut (bits) ->
# {input: value} of the frame that make it so (between bytes: the 6th MOSI byte; mid-byte: the 7th's last 2
# bits and the 8th's first 6; in the command byte: its last 6 bits (0x01) and the next byte's first 2 read
# 0x04 for any such value).
_GLITCHES = {8 * 5: {4: SPICmd.WRITE_MASK, 5: 15}, 8 * 6 + 6: {5: 0, 6: 16, 7: 4}, 2: {0: 3}}


@pytest.mark.parametrize("cut", list(_GLITCHES))
def test_board_recovers_from_a_cs_glitch(case, cut):
    """A glitch on CS ``cut`` bits into the board's second WRITE_FRAME (between bytes, mid-byte, in the
    command byte): the rest of the frame reaches the reference target as a transaction of its own, a
    WRITE_MASK of other classes. Nothing is committed and the mask is untouched (the rest is refused); the
    board sees the count unmoved and REFUSED, reads the status, sends the frame again: golden results."""
    model, frames, _ = case
    frames = frames[:3].copy()
    for i, value in _GLITCHES[cut].items():
        frames[1, i] = value
    golden = run(model, frame_inputs(model, frames))
    target = SpiTargetModel(model, latency=2, wake_classes=[1])
    mosi = _unpack(protocol.spi_write_frame(frames[1]), 8 * (1 + model.n_in))
    rest = _pack(mosi[cut:])
    assert rest[0] == SPICmd.WRITE_MASK and rest[1] != 0b0010        # the rest would change the mask

    class Glitchy(EmulatedSpi):
        writes = 0

        def exchange(self, mosi):
            if mosi[0] == SPICmd.WRITE_FRAME:
                self.writes += 1
                if self.writes == 2:
                    bits = _unpack(mosi, 8 * len(mosi))
                    head = target.exchange(_pack(bits[:cut]), bits=cut)
                    tail = target.exchange(_pack(bits[cut:]), bits=len(bits) - cut)
                    return _pack(_unpack(head, cut) + _unpack(tail, len(bits) - cut))
            return super().exchange(mosi)

    got = SpiBoard.for_model(Glitchy(target), model).classify_frames(frames)
    _golden_equal(got, golden)
    assert got.refused == 1 and target.frames == 3
    assert target.mask == {1}
    assert got.wake.tolist() == (golden.prediction == 1).tolist()


def test_uncommitted_frame_is_sent_again(case):
    """A glitch on CS cuts the board's WRITE_FRAME short: nothing is committed, the target is idle with
    DONE still set from the frame before. The board sees the frames-accepted count unchanged and sends
    the frame again instead of reading the old result."""
    model, frames, golden = case
    target = SpiTargetModel(model, latency=2)

    class Glitchy(EmulatedSpi):
        writes = 0

        def exchange(self, mosi):
            if mosi[0] == SPICmd.WRITE_FRAME:
                self.writes += 1
                if self.writes == 2:                    # the second frame's: the first's result is DONE
                    mosi = mosi[:5]
            return super().exchange(mosi)

    got = SpiBoard.for_model(Glitchy(target), model).classify_frames(frames[:3])
    _golden_equal(got, golden.select(slice(0, 3)))
    assert got.refused == 1


def test_classify_frames_on_the_reference_target(case):
    model, frames, golden = case
    bus = EmulatedSpi(SpiTargetModel(model, latency=3))
    board = SpiBoard.for_model(bus, model)
    board.set_wake([int(golden.prediction[0])])
    got = board.classify_frames(frames)
    _golden_equal(got, golden)
    assert got.wake.tolist() == (golden.prediction == golden.prediction[0]).tolist()
    assert got.refused == 0
    # The mask: a poll, WRITE_MASK (2 bytes), a status. Per frame: a poll, WRITE_FRAME (n_in + 1), 4 polls
    # (3 busy), READ_RESULT (2 + n_out). 4 bytes a poll.
    assert bus.bytes == (4 + 2 + 4) + len(frames) * (4 + (16 + 1) + 4 * 4 + (2 + 4))
    assert board.status().frames == len(frames)


def test_refused_frame_is_sent_again(case):
    """Another controller starts a frame between the board's status read and its WRITE_FRAME: the
    target refuses the board's, which sends it again and still gets its own result."""
    model, frames, golden = case
    target = SpiTargetModel(model, latency=2)

    class Intruder(EmulatedSpi):
        armed = True

        def exchange(self, mosi):
            if mosi[0] == SPICmd.WRITE_FRAME and self.armed:
                self.armed = False
                target.exchange(protocol.spi_write_frame(frames[4]))
            return super().exchange(mosi)

    got = SpiBoard.for_model(Intruder(target), model).classify_frames(frames[:2])
    _golden_equal(got, golden.select(slice(0, 2)))
    assert got.refused == 1


def test_errors(case):
    model, frames, _ = case
    board = SpiBoard.for_model(EmulatedSpi(SpiTargetModel(model, latency=10**9)), model, timeout=0.01)
    with pytest.raises(SpiTimeout, match="busy for more than 0.01 s"):
        board.classify_frames(frames[:1])
    with pytest.raises(SpiError, match="refused the wake mask"):
        board.transport.target.busy, board.wait = 10**9, lambda: None
        board.set_wake([1])
    board = SpiBoard.for_model(EmulatedSpi(SpiTargetModel(model)), model)
    with pytest.raises(ValueError, match=r"\[samples, 16\]"):
        board.classify_frames(frames[:, :3])
    with pytest.raises(ValueError, match="outside 0..16"):
        board.classify_frames(frames + 1)
    with pytest.raises(ValueError, match="n_in must be a positive integer"):
        SpiBoard(board.transport, n_in=0, n_out=2, timesteps=3)


def test_transports_use_spidev_and_pyftdi(monkeypatch):
    """The hardware transports call their package as documented (stand-in modules record the calls),
    and a missing package is a one-line error naming it."""
    calls = []

    class SpiDev:
        def open(self, bus, dev):
            calls.append(("open", bus, dev))

        def xfer2(self, data):
            calls.append(("xfer2", list(data), self.mode, self.max_speed_hz))
            return [0] + [x ^ 0xFF for x in data[1:]]

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "spidev", types.SimpleNamespace(SpiDev=SpiDev))
    t = SpidevTransport(1, 2, max_speed_hz=500_000)
    assert t.exchange(b"\x02\x00\x0f") == b"\x00\xff\xf0"
    t.close()
    assert calls == [("open", 1, 2), ("xfer2", [2, 0, 15], 0, 500_000), ("close",)]

    class Port:
        def exchange(self, out, duplex):
            calls.append(("exchange", bytes(out), duplex))
            return bytearray(len(out))

    class SpiController:
        def configure(self, url):
            calls.append(("configure", url))

        def get_port(self, cs, freq, mode):
            calls.append(("port", cs, freq, mode))
            return Port()

        def terminate(self):
            calls.append(("terminate",))

    calls.clear()
    pyftdi = types.ModuleType("pyftdi")
    pyftdi.spi = types.SimpleNamespace(SpiController=SpiController)
    monkeypatch.setitem(sys.modules, "pyftdi", pyftdi)
    monkeypatch.setitem(sys.modules, "pyftdi.spi", pyftdi.spi)
    t = FtdiTransport("ftdi://ftdi:232h/2", cs=1, frequency=6e6)
    assert t.exchange(b"\x01\x02") == b"\x00\x00"
    t.close()
    assert calls == [("configure", "ftdi://ftdi:232h/2"), ("port", 1, 6e6, 0), ("exchange", b"\x01\x02", True),
                     ("terminate",)]

    monkeypatch.setitem(sys.modules, "spidev", None)          # an import of it raises ImportError
    monkeypatch.setitem(sys.modules, "pyftdi.spi", None)
    with pytest.raises(MissingPackage, match="needs the 'spidev' package: pip install spidev"):
        SpidevTransport()
    with pytest.raises(MissingPackage, match="needs the 'pyftdi' package"):
        FtdiTransport()


class SimSpi:
    """A transport onto the RTL :class:`~qlif.boards.link.spi_target.SPITarget` in Amaranth's simulator,
    whose core is a golden stand-in: it reads the committed frame from the target's buffer, waits
    ``busy_cycles`` (the inference), and presents :class:`SpiTargetModel`'s result."""

    def __init__(self, model, busy_cycles: int = 40):
        self.dut = dut = SPITarget(n_in=model.n_in, n_out=model.n_out, timesteps=model.timesteps)
        self._ref = SpiTargetModel(model, latency=0)
        self._model, self._busy = model, busy_cycles
        self._todo, self._done = deque(), deque()
        self._now = 0.0
        self._sim = Simulator(dut)
        self._sim.add_clock(1 / 12e6)
        self._sim.add_testbench(self._host, background=True)
        self._sim.add_testbench(self._core, background=True)

    async def _host(self, ctx):
        while True:
            if self._todo:
                self._done.append(await transfer(ctx, self.dut, self._todo.popleft()))
            else:
                await ctx.delay(1e-6)

    async def _core(self, ctx):
        dut = self.dut
        while True:
            while not ctx.get(dut.start):       # (not tick().until: it warns when the simulation is dropped)
                await ctx.tick()
            frame = []
            for j in range(self._model.n_in):
                ctx.set(dut.frame.addr, j)
                await ctx.tick()
                frame.append(ctx.get(dut.frame.data))
            await ctx.tick().repeat(self._busy)
            res = self._ref._board.run_frame(bytes(frame))
            mask = ctx.get(dut.mask)
            ctx.set(dut.prediction, res.prediction)
            ctx.set(dut.wake, mask >> res.prediction & 1)
            for i, c in enumerate(res.counts):
                ctx.set(dut.counts[i], int(c))
            ctx.set(dut.done, 1)
            await ctx.tick()
            ctx.set(dut.done, 0)
            await ctx.tick()

    def exchange(self, mosi: bytes) -> bytes:
        self._todo.append(bytes(mosi))
        while not self._done:
            self._now += 20e-6
            self._sim.run_until(self._now)
        return self._done.popleft()


def test_classify_frames_on_the_rtl_target(case):
    """The adapter drives the RTL SPI target (mode 0, bit by bit): results golden, wake as masked, the
    frame counter and the polls as on the reference target."""
    model, frames, golden = case
    frames, golden = frames[:3], golden.select(slice(0, 3))
    board = SpiBoard.for_model(SimSpi(model), model)
    board.set_wake([int(golden.prediction[2])])
    got = board.classify_frames(frames)
    _golden_equal(got, golden)
    assert got.wake.tolist() == (golden.prediction == golden.prediction[2]).tolist()
    st = board.status()
    assert st.frames == 3 and st.flags & (SPIFlag.DONE | SPIFlag.BUSY) == SPIFlag.DONE
