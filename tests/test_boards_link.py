# amaranth: UnusedElaboratable=no
"""The host link in the Amaranth simulator: UART bytes in, framed replies out, against the golden model.

A host-side UART (the same RTL blocks) drives the link's ``rx`` pin and listens on ``tx``; the host driver
:class:`qlif.boards.host.driver.Board` talks to it through :class:`SimPort`, so these tests run the real protocol
against the real core. The long runs (the driver on both simulators, 1000+ fuzzed frames) are cocotb
tests on the generated Verilog: tests/test_host_rtl.py.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from qlif.boards.host.driver import Board
from qlif.boards.host.emulator import BoardModel
from qlif.boards.link.host_link import FRAME_TIMEOUT, HostLink
from qlif.boards.link.uart import UARTRX, UARTTX
from qlif.boards.protocol import Cmd, encode_addresses, encode_request
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import run

CLK, BAUD = 8e6, 1_000_000        # 8 cycles per bit: the shortest frames the UART takes, for speed
TIMEOUT = 400                     # frame timeout in cycles: five UART frames


class SimPort:
    """A serial port onto a simulated :class:`HostLink`: host-side UART blocks drive its pins.

    ``write`` queues bytes; ``read(n)`` runs the simulation until ``n`` reply bytes came (or a cycle
    budget ran out, like a port's timeout); ``pause(s)`` lets the queued bytes go out, then keeps the
    line quiet. ``pins`` records (ok, fault, wake) at every reply byte. ``core_period``: the core in a
    clock domain of its own with this period in seconds (behind the link's clock-domain crossing).
    ``encoder``: the link with the on-chip encoder (``FRAME`` requests).
    """

    CHUNK = 400              # cycles simulated per step while waiting

    def __init__(self, model, lanes: int, *, timeout_cycles: int = 30_000, wake_classes=None,
                 core_period: float | None = None, encoder: bool = False):
        m = Module()
        m.submodules.link = self.link = HostLink(model=model, lanes=lanes, clk_freq=CLK, baud=BAUD,
                                                 frame_timeout=TIMEOUT / CLK, wake_classes=wake_classes,
                                                 core_domain=None if core_period is None else "core",
                                                 encoder=encoder)
        m.submodules.host_tx = self._tx = UARTTX(clk_freq=CLK, baud=BAUD)
        m.submodules.host_rx = self._rx = UARTRX(clk_freq=CLK, baud=BAUD)
        m.d.comb += [self.link.rx.eq(self._tx.tx), self._rx.rx.eq(self.link.tx)]
        if core_period is not None:
            m.domains.core = ClockDomain("core")
        self._out, self._in, self.pins = deque(), deque(), []
        self._timeout = timeout_cycles
        self._now = 0
        self._sim = Simulator(m)
        self._sim.add_clock(1 / CLK)
        if core_period is not None:
            # Not a multiple of the link's period, and starting out of phase with it.
            self._sim.add_clock(core_period, domain="core", phase=core_period / 3)
        self._sim.add_testbench(self._send, background=True)
        self._sim.add_testbench(self._receive, background=True)

    async def _send(self, ctx):
        tx = self._tx.data
        while True:
            if self._out:
                ctx.set(tx.valid, 1)
                ctx.set(tx.payload, self._out.popleft())
                while not ctx.get(tx.ready):
                    await ctx.tick()
                await ctx.tick()
                ctx.set(tx.valid, 0)
            else:
                await ctx.tick()

    async def _receive(self, ctx):
        rx = self._rx.data
        ctx.set(rx.ready, 1)
        while True:
            await ctx.tick()
            if not ctx.get(rx.valid):
                continue
            self._in.append(ctx.get(rx.payload))
            self.pins.append((ctx.get(self.link.ok), ctx.get(self.link.fault), ctx.get(self.link.wake)))

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

    def pause(self, seconds: float) -> None:
        while self._out:
            self._advance(self.CHUNK // 10)
        self._advance(round(seconds * CLK))


@pytest.fixture(scope="module")
def small():
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    x = (np.random.default_rng(4).random((6, 4, 16)) < 0.3).astype(np.uint8)
    return model, x, run(model, x, lanes=2)


#: The core's clock: the link's, or a domain of its own, faster or slower than the link's (periods in s).
CORE_CLOCKS = {"one clock": None, "core faster": 1 / 21.7e6, "core slower": 1 / 5.3e6}


@pytest.mark.parametrize("core_period", CORE_CLOCKS.values(), ids=CORE_CLOCKS.keys())
def test_driver_classifies_like_golden(small, core_period):
    """The host driver of a real board, on the simulated link: predictions, counts, cycles and wake."""
    model, x, golden = small
    x, golden = x[:2], golden.select(slice(0, 2))
    assert len(set(golden.prediction.tolist())) > 1, "the samples should not predict the same class"
    port = SimPort(model, 2, wake_classes=[int(golden.prediction[1])], core_period=core_period)
    board = Board(port, frame_timeout=2 * TIMEOUT / CLK)
    status = board.connect(model)
    assert (status.n_in, status.n_out, status.timesteps, status.lanes, status.divisor) == (16, 4, 4, 2, 8)
    got = board.classify(x)
    assert got.prediction.tolist() == golden.prediction.tolist()
    assert got.counts.tolist() == golden.spikes[-1].sum(axis=1).tolist()
    assert got.cycles.tolist() == golden.cycles.sum(axis=1).tolist()
    assert got.wake.tolist() == [False, True]
    # The pins at the RESULT replies (the last reply of each sample): ok, no fault, wake as configured.
    assert port.pins[-1] == (1, 0, 1)


@pytest.mark.parametrize("core_period", CORE_CLOCKS.values(), ids=CORE_CLOCKS.keys())
def test_bad_frames_answered_like_the_reference(small, core_period):
    """One bad frame of each kind, garbage and a truncated frame: the replies are the reference
    board's byte for byte, and a sample sent afterwards is still golden."""
    model, x, golden = small
    port = SimPort(model, 2, core_period=core_period)
    ref = BoardModel(model, lanes=2, divisor=8)
    reset = encode_request(Cmd.RESET, 1)
    bursts = [
        reset + encode_request(Cmd.STEP, 2, encode_addresses([3, 5])),
        encode_request(Cmd.STEP, 3, encode_addresses([9, 16])),          # 16 >= n_in
        encode_request(Cmd.SPIKES, 4, encode_addresses([7])),
        encode_request(Cmd.STEP, 5, encode_addresses([6, 8])),           # 6 is not above 7 (previous frame)
        encode_request(0x42, 6),                                          # unknown command
        encode_request(Cmd.RESULT, 7, b"\x00"),                           # RESULT takes no payload
        encode_request(Cmd.SET_WAKE, 8, b"\x10"),                        # class 4 of 4 classes
        bytes([0x13, 0x37]) + encode_request(Cmd.GET_WAKE, 9)[:-1] + b"\x00",   # junk, then a bad CRC
        encode_request(Cmd.STATUS, 11),
        encode_request(Cmd.STEP, 10, encode_addresses([1, 2]))[:5],      # truncated: TIMEOUT
    ]
    # Back to back (the truncated frame last: the pause ends it).
    port.write(b"".join(bursts))
    expected = ref.feed(b"".join(bursts))
    port.pause(2 * TIMEOUT / CLK)
    expected += ref.idle()
    assert port.read(len(expected)) == expected
    assert port.read(1) == b""                # and nothing more
    assert ref.status().counters == {"frames_ok": 4, "bad_crc": 1, "timeout": 1, "unknown_cmd": 1, "bad_length": 1,
                                     "bad_address": 1, "bad_order": 1, "bad_arg": 1, "junk": 2, "uart_frame": 0,
                                     "uart_overrun": 0}
    assert port.pins[-1] == (0, 1, 0)     # fault until the next RESET
    got = Board(port, frame_timeout=2 * TIMEOUT / CLK).classify(x[2:3])
    assert got.prediction.tolist() == golden.prediction[2:3].tolist()
    assert port.pins[-1][:2] == (1, 0)


def test_wake_classes_default_and_checks(small):
    model = small[0]
    link = HostLink(model=model, lanes=1, clk_freq=CLK, baud=BAUD, frame_timeout=TIMEOUT / CLK)
    assert link.wake_classes == frozenset(range(4)) and link.core_domain is None
    link = HostLink(model=model, lanes=1, clk_freq=CLK, baud=BAUD, core_domain="core")
    assert link.core_domain == "core"
    link = HostLink(model=model, lanes=1, clk_freq=12e6, baud=115_200, wake_classes=[0, 2])
    assert link.wake_classes == {0, 2} and link.divisor == 104
    assert link.timeout_cycles == round(12e6 * FRAME_TIMEOUT)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"model": "m.json"}, TypeError, "model"),
    ({"baud": 2_000_000}, ValueError, "baud"),
    ({"frame_timeout": 1e-5}, ValueError, "frame_timeout must be at least 3 UART frames"),
    ({"frame_timeout": "1s"}, TypeError, "frame_timeout"),
    ({"wake_classes": [4]}, ValueError, "wake_classes"),
    ({"wake_classes": 3}, TypeError, "wake_classes"),
    ({"lanes": 3}, ValueError, "lanes"),
    ({"core_domain": "sync"}, ValueError, "core_domain must name a clock domain other than 'sync'"),
    ({"core_domain": 3}, ValueError, "core_domain"),
])
def test_bad_params(small, kwargs, error, match):
    args = {"model": small[0], "lanes": 1, "clk_freq": CLK, "baud": BAUD, "frame_timeout": TIMEOUT / CLK, **kwargs}
    with pytest.raises(error, match=match):
        HostLink(**args)


def test_model_limits():
    """Models the protocol cannot carry are refused with the reason."""
    with pytest.raises(ValueError, match="RESULT reply"):
        HostLink(model=random_model([4, 250], timesteps=2), lanes=1, clk_freq=CLK, baud=BAUD)
    with pytest.raises(ValueError, match="RESULT reply"):            # two bytes per count when T > 255
        HostLink(model=random_model([4, 124], timesteps=300), lanes=1, clk_freq=CLK, baud=BAUD)
    HostLink(model=random_model([4, 123], timesteps=300), lanes=1, clk_freq=CLK, baud=BAUD)
