"""cocotb tests of the host link (:class:`qlif.boards.link.host_link.HostLink` as Verilog), through its UART pins only.

Run by :func:`qlif.sim.link_runner.run_link`, which names the test and passes a JSON file in
``QLIF_LINK_CONFIG`` (model and stimuli paths, clock, divisor, frame timeout, seed, fuzz size, output
path). Each test writes its figures and verdict to the output JSON, even when it fails.

* ``host_driver``: the host driver :class:`qlif.boards.host.driver.Board`, unchanged, in a cocotb ``bridge``
  thread on :class:`~qlif.sim.uart_model.SimPort`: connect, wake mask, classify every sample (frames
  back to back within the driver's window), status counters; results against the golden model.
* ``fuzz``: the campaign of :mod:`qlif.sim.link_fuzz`; every reply byte against
  :class:`~qlif.boards.host.emulator.BoardModel`, every sample's RESULT against the golden model, the
  ``ok``/``fault``/``wake`` pins against the reference after every item.
* ``flood``: frames with no gap and no window: the receive buffer overflows, overruns are counted, the
  surviving frames are answered, and the link recovers.
* ``steps``: the host driver again, a RESULT after every step: all that the board reports in the middle
  of a sample (prediction, spike counts, steps, core cycles, flags) against the golden model at every
  step (the gate-level board netlists of :mod:`qlif.sim.gate`).
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import HierarchyObject
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, Timer

from qlif.boards.host.driver import Board
from qlif.boards.host.emulator import BoardModel
from qlif.boards.protocol import (
    Cmd,
    Flag,
    ReplyDecoder,
    decode_result,
    decode_status,
    encode_request,
    step_requests,
)
from qlif.golden.spec import reference
from qlif.golden.spec.model import load_model
from qlif.sim.link_fuzz import Fuzzer, apply
from qlif.sim.uart_model import SimPort, UartSink, UartSource


class LinkBench:
    """Clock, reset, the UART model on ``rx``/``tx``, and the test's configuration."""

    def __init__(self, dut: HierarchyObject):
        self.dut = dut
        self.cfg = json.loads(Path(os.environ["QLIF_LINK_CONFIG"]).read_text())
        cfg = self.cfg
        self.model = load_model(cfg["model"])
        self.x = np.load(cfg["inputs"])
        self.lanes = cfg["lanes"]
        self.divisor = cfg["divisor"]
        # An even number of picoseconds (the simulators' precision, two half periods): 12 MHz is 83.334 ns.
        self.period_ps = 2 * round(1e12 / cfg["clk_freq"] / 2)
        self.period_ns = self.period_ps / 1000
        self.timeout_cycles = cfg["timeout_cycles"]
        self.source = UartSource(dut.clk, dut.rx, divisor=self.divisor, period_ns=self.period_ns)
        self.sink = UartSink(dut.tx, divisor=self.divisor, period_ns=self.period_ns)
        self.stats: dict = {"test": cfg["test"]}
        self._t0 = time.monotonic()

    def ref(self) -> BoardModel:
        return BoardModel(self.model, lanes=self.lanes, divisor=self.divisor, rx_buffer=self.cfg["rx_buffer"],
                          wake_classes=self.cfg["wake_classes"])

    def cycles(self, n: float) -> float:
        """``n`` clock cycles in ns."""
        return n * self.period_ns

    def read_timeout(self) -> float:
        """The host's read timeout in seconds: far beyond any reply (a whole window of frames and a step of
        the core), at 8 clock cycles per bit and at a board's baud rate (a window is ~500 UART frames)."""
        return self.cycles(max(400_000, 1_000 * 10 * self.divisor)) * 1e-9

    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, self.period_ps, unit="ps", impl="gpi").start(start_high=False)
        core = self.cfg.get("core_clk_freq")
        if core:
            # The core's own clock (a PLL's on a board): unrelated to the link's, in picoseconds.
            Clock(dut.core_clk, round(1e12 / core), unit="ps", impl="gpi").start(start_high=False)
            dut.core_rst.value = 1
        dut.rx.value = 1
        dut.rst.value = 1
        await ClockCycles(dut.clk, 4, rising=False)
        if core:
            # The core leaves reset later than the link (after its PLL locked), as on a board.
            await ClockCycles(dut.core_clk, 20, rising=False)
            dut.core_rst.value = 0
        dut.rst.value = 0
        await FallingEdge(dut.clk)
        cocotb.start_soon(self.source.run())
        cocotb.start_soon(self.sink.run())

    def pins(self) -> Flag:
        """The ``ok``, ``fault`` and ``wake`` outputs as the flags they mirror."""
        flags = Flag(0)
        for pin, flag in ((self.dut.ok, Flag.DONE), (self.dut.fault, Flag.FAULT), (self.dut.wake, Flag.WAKE)):
            if int(pin.value):
                flags |= flag
        return flags

    def finish(self, failure: str = "") -> None:
        self.stats.update(failure=failure, sim_cycles=int(get_sim_time("ns") / self.period_ns),
                          wall_s=time.monotonic() - self._t0, bytes_sent=self.source.sent)
        Path(self.cfg["out"]).write_text(json.dumps(self.stats, indent=1, default=_jsonable))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    raise TypeError(f"not JSON: {value!r}")


async def _sim_ns() -> float:
    return get_sim_time("ns")


def sim_now_ns() -> float:
    """Simulated time in ns, from the host's ``bridge`` thread (the simulation waits while it runs)."""
    return resume(_sim_ns)()


async def _guarded(bench: LinkBench, body) -> None:
    failure = ""
    try:
        await bench.start()
        await body(bench)
    except BaseException as e:
        failure = f"{type(e).__name__}: {e}"
        raise
    finally:
        bench.finish(failure)


# -- the host driver, unchanged, against the RTL ------------------------------------------------------

@cocotb.test()
async def host_driver(dut: HierarchyObject) -> None:
    await _guarded(LinkBench(dut), _host_driver)


async def _host_driver(tb: LinkBench) -> None:
    model, x = tb.model, tb.x
    # The read timeout: far beyond any reply (a whole window of frames and a step of the core).
    port = SimPort(tb.source, tb.sink, timeout=tb.read_timeout())
    board = Board(port, frame_timeout=2 * tb.cycles(tb.cfg["host_timeout_cycles"]) * 1e-9)
    wake = sorted(tb.cfg["wake_set"])
    times = []                   # simulated ns: classify's start, then each result's arrival

    def host() -> dict:
        # Everything below is the code that talks to a board over pyserial.
        status = board.connect(model)
        board.set_wake(wake)
        got_wake = board.get_wake()
        before = board.status()
        times.append(sim_now_ns())
        result = board.classify(x, progress=lambda n: times.append(sim_now_ns()))
        after = board.status()
        return {"status": status, "wake": got_wake, "before": before, "result": result, "after": after}

    got = await bridge(host)()
    golden = reference.run(model, x, lanes=tb.lanes)
    res, after = got["result"], got["after"]
    counts = golden.spikes[-1].sum(axis=1, dtype=np.int64)
    tb.stats.update(prediction=res.prediction, counts=res.counts, cycles=res.cycles, wake=res.wake,
                    golden_prediction=golden.prediction, golden_cycles=golden.cycles.sum(axis=1),
                    counters=after.counters, retries=res.retries, bytes_written=port.written,
                    longest_burst=tb.source.longest_burst, classify_ns=times)
    assert got["status"].n_in == model.n_in and got["status"].lanes == tb.lanes
    assert got["wake"] == frozenset(wake), f"wake mask read back {sorted(got['wake'])}, set {wake}"
    assert res.prediction.tolist() == golden.prediction.tolist(), (
        f"predictions {res.prediction.tolist()} != golden {golden.prediction.tolist()}")
    assert res.counts.tolist() == counts.tolist(), "per-class spike counts differ from the golden model"
    assert res.cycles.tolist() == golden.cycles.sum(axis=1).tolist(), "core cycles differ from the cycle model"
    assert res.wake.tolist() == [int(p) in wake for p in golden.prediction], "wake flag wrong"
    assert res.retries == 0, f"{res.retries} samples had to be sent again on a clean line"
    # RESET, the step frames and RESULT per sample, and the final STATUS itself.
    frames = len(x) * 2 + sum(len(list(step_requests(np.flatnonzero(step)))) for step in x.reshape(-1, model.n_in))
    errors = {k: v for k, v in after.counters.items() if k != "frames_ok" and v}
    assert not errors, f"error counters after a clean run: {errors}"
    assert after.counters["frames_ok"] - got["before"].counters["frames_ok"] == frames + 1, "frames lost"
    assert tb.sink.frame_errors == 0


# -- a RESULT after every step -----------------------------------------------------------------------

@cocotb.test()
async def steps(dut: HierarchyObject) -> None:
    await _guarded(LinkBench(dut), _steps)


async def _steps(tb: LinkBench) -> None:
    model, x = tb.model, tb.x
    port = SimPort(tb.source, tb.sink, timeout=tb.cycles(400_000) * 1e-9)
    board = Board(port, frame_timeout=2 * tb.cycles(tb.cfg["host_timeout_cycles"]) * 1e-9)
    wake = sorted(tb.cfg["wake_set"])
    golden = reference.run(model, x, lanes=tb.lanes)
    counts = np.cumsum(golden.spikes[-1], axis=1, dtype=np.int64)     # [S, T, n_out]: so far, at each step
    cycles = np.cumsum(golden.cycles, axis=1)

    def expected(s: int, t: int) -> tuple:
        prediction = int(reference.predict(golden.spikes[-1][s:s + 1, :t + 1])[0])
        flags = Flag.DONE if t + 1 == model.timesteps else Flag(0)
        if flags and prediction in wake:
            flags |= Flag.WAKE
        return prediction, counts[s, t].tolist(), t + 1, int(cycles[s, t]) % (1 << 32), flags

    def host() -> tuple[int, object]:
        # Checked as each reply comes, so that a difference ends the simulation at once.
        board.connect(model)
        board.set_wake(wake)
        checked = 0
        for s, sample in enumerate(x):
            board.reset()
            for t, step in enumerate(sample):
                board.step(np.flatnonzero(step))
                res = board.result()
                got = (res.prediction, res.counts.tolist(), res.steps, res.cycles, res.flags)
                if got != expected(s, t):
                    raise AssertionError(f"sample {s}, step {t}: the board says (prediction, counts, steps, "
                                         f"cycles, flags) {got}, the golden model {expected(s, t)}")
                checked += 1
        return checked, board.status()

    checked, status = await bridge(host)()
    # The ok, fault and wake pins show the last step's flags (a board top's pin inversions undone).
    want = expected(len(x) - 1, model.timesteps - 1)[4] if len(x) else Flag(0)
    assert tb.pins() == want, f"pins ok/fault/wake show {tb.pins()!r} at the end, the flags {want!r}"
    errors = {k: v for k, v in status.counters.items() if k != "frames_ok" and v}
    assert not errors, f"error counters after a clean run: {errors}"
    assert tb.sink.frame_errors == 0
    tb.stats.update(steps_checked=checked, samples=len(x), counters=status.counters, prediction=golden.prediction)


# -- the fuzz campaign -----------------------------------------------------------------------------

@cocotb.test()
async def fuzz(dut: HierarchyObject) -> None:
    await _guarded(LinkBench(dut), _fuzz)


class _Stream:
    """Bursts go out back to back; their expected replies are checked at the next :meth:`settle`.

    The campaign settles (waits for every reply due and compares, item by item) before a burst with a
    UART framing error (so the error counter changes while the board is idle and every STATUS sees it
    in stream order), after a burst that leaves a frame open (its TIMEOUT needs a quiet line), when
    :data:`AHEAD` bytes went out since the last settle (the board's replies may be longer than the
    requests: this keeps the receive buffer from overflowing), and at the end of every sample.
    """

    AHEAD = 256

    def __init__(self, tb: LinkBench, ref: BoardModel):
        self.tb, self.ref = tb, ref
        self.pending: list[tuple[str, bytes]] = []
        self.ahead = 0

    async def send(self, item, what: str) -> bytes:
        """Send ``item`` (a fuzz :class:`~qlif.sim.link_fuzz.Item`); return the reply bytes it must cause."""
        if self.ahead > self.AHEAD or any(b.bad_stop for b in item.data):
            await self.settle()
        expected, mid_frame = apply(self.ref, item)
        self.tb.source.send(item.data)
        self.pending.append((what, expected))
        self.ahead += len(item.data)
        if mid_frame:
            await self.settle()
        return expected

    async def settle(self) -> None:
        """Wait for every reply due, compare item by item, then check the pins."""
        tb = self.tb
        await tb.source.drained()
        total = sum(len(e) for _, e in self.pending)
        budget = tb.cycles(tb.timeout_cycles + 10 * tb.divisor * (total + 16) + 200_000)
        arrived = await tb.sink.wait_for(total, budget)
        got = tb.sink.take(total)
        at = 0
        for what, expected in self.pending:
            part = got[at:at + len(expected)]
            if part != expected:
                if not arrived and len(part) < len(expected):
                    raise AssertionError(f"{what}: the link hung: {len(got)} of {total} reply bytes came "
                                         f"(this item's: {part.hex(' ')}, expected {expected.hex(' ')})")
                raise AssertionError(f"{what}: replies differ from the reference board:\n got      "
                                     f"{part.hex(' ')}\n expected {expected.hex(' ')}")
            at += len(expected)
        self.pending.clear()
        self.ahead = 0
        want = self.ref.flags() & (Flag.DONE | Flag.FAULT | Flag.WAKE)
        if tb.pins() != want:
            raise AssertionError(f"after {what}: pins ok/fault/wake show {tb.pins()!r}, the reference {want!r}")


async def _fuzz(tb: LinkBench) -> None:
    model, x = tb.model, tb.x
    rng = random.Random(tb.cfg["seed"])
    fuzzer = Fuzzer(model, rng)
    ref = tb.ref()
    line = _Stream(tb, ref)
    golden = reference.run(model, x, lanes=tb.lanes)
    target = tb.cfg["fuzz_frames"]
    per_sample = max(1, round(target / max(1, tb.cfg["fuzz_samples"])))
    kinds: dict[str, int] = {}
    fuzzed = good = samples = 0
    seq = 0

    def request(cmd: Cmd, payload: bytes = b""):
        nonlocal seq, good
        frame = encode_request(cmd, seq, payload)
        seq, good = (seq + 1) & 0xFF, good + 1
        return _as_item(frame)

    while fuzzed < target:
        s = samples % len(x)
        await line.send(request(Cmd.RESET), f"sample {samples}: RESET")
        # Fuzz items before each step and after the last one, then the RESULT that must be golden.
        slots = model.timesteps + 1
        for t in range(slots):
            for _ in range(rng.randrange(0, 2 * per_sample // slots + 2)):
                item = fuzzer.item(ref)
                label = item.kind if not item.kinds else f"{item.kind} {item.kinds}"
                await line.send(item, f"sample {samples}, step {t}, fuzz item at frame {fuzzed} ({label})")
                fuzzed += item.fuzzed
                for k in item.kinds or [item.kind]:
                    kinds[k] = kinds.get(k, 0) + 1
            if t < model.timesteps:
                for frame in fuzzer.step_frames(np.flatnonzero(x[s, t]).tolist()):
                    good += 1
                    await line.send(_as_item(frame), f"sample {samples}, step {t}")
        reply = await line.send(request(Cmd.RESULT), f"sample {samples}: RESULT")
        await line.settle()
        (res,) = ReplyDecoder().feed(reply)
        result = decode_result(res.payload, n_out=model.n_out, timesteps=model.timesteps)
        want = (int(golden.prediction[s]), golden.spikes[-1][s].sum(axis=0).tolist(), int(golden.cycles[s].sum()))
        if (result.prediction, result.counts.tolist(), result.cycles) != want:
            raise AssertionError(f"sample {samples} (stimulus {s}): the board says prediction "
                                 f"{result.prediction}, counts {result.counts.tolist()}, cycles {result.cycles}; "
                                 f"the golden model {want}")
        samples += 1

    # The counters the board kept must be the reference's, and nothing may follow.
    reply = await line.send(request(Cmd.STATUS), "final STATUS")
    await line.settle()
    (res,) = ReplyDecoder().feed(reply)
    status = decode_status(res.payload)
    await Timer(tb.cycles(20 * 10 * tb.divisor), unit="ns")
    if tb.sink.data:
        raise AssertionError(f"after the campaign: unexpected bytes {tb.sink.take().hex(' ')}")
    tb.stats.update(fuzzed_frames=fuzzed, good_frames=good, samples=samples, kinds=kinds, counters=status.counters,
                    longest_burst=tb.source.longest_burst)


def _as_item(frame: bytes):
    from qlif.sim.link_fuzz import Item
    from qlif.sim.uart_model import UartByte

    return Item("good", [UartByte(b) for b in frame], 0)


# -- no window: overflow and recovery --------------------------------------------------------------

@cocotb.test()
async def flood(dut: HierarchyObject) -> None:
    await _guarded(LinkBench(dut), _flood)


async def _flood(tb: LinkBench) -> None:
    """RESULT requests back to back, far more than the buffer holds while the replies (longer than the
    requests) hold the board back: bytes are lost and counted, every frame that arrived whole is
    answered, and a STATUS after a pause finds the link healthy."""
    n = tb.cfg["flood_frames"]
    frames = b"".join(encode_request(Cmd.RESULT, i & 0xFF) for i in range(n))
    tb.source.send(frames)
    await tb.source.drained()
    # Let the board work off its buffer, and a partial frame time out.
    reply_bytes = 7 + len(frames)   # more than enough to bound the wait
    await Timer(tb.cycles(10 * tb.divisor * reply_bytes + 2 * tb.timeout_cycles), unit="ns")
    replies = ReplyDecoder().feed(tb.sink.take())
    port = SimPort(tb.source, tb.sink, timeout=tb.cycles(200_000) * 1e-9)
    board = Board(port, frame_timeout=2 * tb.cycles(tb.timeout_cycles) * 1e-9)
    status = await bridge(board.connect)(tb.model)
    ok = sum(r.ok for r in replies)
    tb.stats.update(flood_frames=n, flood_bytes=len(frames), replies=len(replies), ok_replies=ok,
                    counters=status.counters)
    assert status.counters["uart_overrun"] > 0, "the flood should have overrun the receive buffer"
    assert ok >= tb.cfg["rx_buffer"] // 6, f"only {ok} frames answered"
    # Every good reply answers one of the frames, in order.
    seqs = [r.seq for r in replies if r.ok]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "replies out of order"
