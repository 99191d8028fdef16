# amaranth: UnusedElaboratable=no
"""The frame blocks of the host link in the Amaranth simulator, against the protocol's Python reference.

* ``crc16_next`` (the RTL's CRC) equals ``protocol.crc16_byte``;
* ``FrameReceiver``: random streams of good and bad frames and junk give the reference board's verdicts
  (command, sequence number, error code), words and wake masks, junk counts, and the exact frame
  timeout; nothing leaves it before a frame's last byte;
* ``FrameSender``: framed replies equal ``protocol.encode_reply`` under random backpressure.
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from qlif.boards.host.emulator import BoardModel
from qlif.boards.link.crc import crc16_next
from qlif.boards.link.frame_rx import FrameReceiver
from qlif.boards.link.frame_tx import FrameSender
from qlif.boards.protocol import (
    MAX_WORDS,
    SYNC,
    Cmd,
    Err,
    ReplyDecoder,
    crc16,
    crc16_byte,
    encode_addresses,
    encode_reply,
    encode_request,
)
from qlif.golden.spec.random_model import random_model
from qlif.sim.link_fuzz import Fuzzer


def test_crc_reference():
    # The catalogue check value of CRC-16/CCITT-FALSE, and the residue property the receiver uses.
    assert crc16(b"123456789") == 0x29B1
    body = bytes([Cmd.STATUS, 0, 0])
    assert crc16(body + crc16(body).to_bytes(2, "big")) == 0


def test_crc_rtl_equals_reference():
    rng = random.Random(5)
    cases = [(0xFFFF, b) for b in range(256)] + [(rng.randrange(1 << 16), rng.randrange(256)) for _ in range(256)]
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))
    got = []

    async def tb(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert got == [crc16_byte(c, b) for c, b in cases]


# -- FrameReceiver -----------------------------------------------------------------------------------

TIMEOUT = 40


def _receive(rx: FrameReceiver, stream: list[tuple[int, int]], *, rng: random.Random, last_of=None):
    """Drive ``(byte, gap)`` pairs (``gap`` idle cycles before the byte) into ``rx`` and collect frames.

    The consumer plays the link's sequencer: it takes every word of a good SPIKES/STEP frame (with
    random stalls), reads ``arg``, then accepts the frame after a random delay, and keeps ``last`` as
    the link does (``last_of(frame, words)`` -> (valid, addr)).
    """
    frames, junk, byte_cycles = [], [0], []

    async def source(ctx):
        for byte, gap in stream:
            ctx.set(rx.bytes.valid, 0)
            for _ in range(gap):
                await ctx.tick()
            ctx.set(rx.bytes.valid, 1)
            ctx.set(rx.bytes.payload, byte)
            await ctx.tick().until(rx.bytes.ready)
            byte_cycles.append(ctx.get(cycle))
        ctx.set(rx.bytes.valid, 0)
        for _ in range(TIMEOUT + 50):      # the last frame's verdict (or its timeout)
            await ctx.tick()

    cycle = Signal(32)

    async def sink(ctx):
        state = (0, 0)
        while True:
            ctx.set(rx.last.valid, state[0])
            ctx.set(rx.last.addr, state[1])
            await ctx.tick()
            junk[0] += ctx.get(rx.junk)
            if not ctx.get(rx.frame.valid):
                continue
            info = ctx.get(rx.frame.payload)
            seen = ctx.get(cycle)
            words = []
            good_words = info.error == Err.OK and info.cmd in (Cmd.SPIKES, Cmd.STEP)
            for _ in range(20 * MAX_WORDS):            # a bound, so a stuck stream fails the test
                if not good_words or len(words) == info.length // 2:
                    break
                ready = rng.random() < 0.7
                ctx.set(rx.words.ready, ready)
                if ready and ctx.get(rx.words.valid):
                    words.append(ctx.get(rx.words.payload))
                await ctx.tick()
                ctx.set(rx.words.ready, 0)
            assert not ctx.get(rx.words.valid), "more words than LEN / 2"
            arg = ctx.get(rx.arg)
            for _ in range(rng.randrange(3)):
                await ctx.tick()
            ctx.set(rx.frame.ready, 1)
            frame = (info.cmd, info.seq, info.error, info.length, words, arg, seen)
            frames.append(frame)
            await ctx.tick()
            ctx.set(rx.frame.ready, 0)
            if last_of is not None:
                state = last_of(frame, state)

    m = Module()
    m.submodules.rx = rx
    m.d.sync += cycle.eq(cycle + 1)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(sink, background=True)
    sim.run()
    return frames, junk[0], byte_cycles


def _last_of(frame, state):
    """The link's bookkeeping of the open step: SPIKES opens it at its last word, STEP closes it."""
    cmd, _, error, _, words, _, _ = frame
    if error == Err.OK and cmd == Cmd.SPIKES and words:
        return (1, words[-1])
    if error == Err.OK and cmd in (Cmd.STEP, Cmd.RESET):
        return (0, 0)
    return state


class _JunkTotal(BoardModel):
    """The reference board, also counting junk bytes across CLEAR_COUNTERS (the receiver's pulses)."""

    junk_total = 0

    def _count(self, name: str) -> None:
        self.junk_total += name == "junk"
        super()._count(name)


def test_receiver_matches_reference():
    """Fuzzed bursts and good step frames: every verdict, word list and mask is the reference's."""
    model = random_model([40, 9], timesteps=3, seed=1)          # 9 classes: a 2-byte mask with spare bits
    rng = random.Random(7)
    ref = _JunkTotal(model, lanes=1)
    fuzzer = Fuzzer(model, rng)
    stream, expected_words = [], []
    for i in range(120):
        if i % 4 == 0:
            frames = fuzzer.step_frames(sorted(rng.sample(range(model.n_in), rng.randrange(0, 12))))
            data = b"".join(frames)
        else:
            item = fuzzer.item(ref)
            data = bytes(b.value for b in item.data if not b.bad_stop)
        gaps = [rng.choice([0, 0, 0, 1, 5]) for _ in data]
        before = ReplyDecoder().feed(ref.feed(data))
        # A frame left open ends with a pause longer than the timeout (the next burst's first gap).
        tail = ReplyDecoder().feed(ref.idle())
        for reply in before + tail:
            expected_words.append(reply)
        stream += list(zip(data, gaps, strict=True))
        if tail:
            # Marker: a long gap before the next byte. The receiver counts silence from when it takes a
            # byte, which may be later than the source offered it (while the sink holds a frame).
            stream.append((None, TIMEOUT + 100))
    # Fold the long-gap markers into the next byte's gap.
    folded, extra = [], 0
    for byte, gap in stream:
        if byte is None:
            extra = gap
            continue
        folded.append((byte, gap + extra))
        extra = 0
    rx = FrameReceiver(n_in=model.n_in, n_out=model.n_out, timeout=TIMEOUT)
    frames, junk, _ = _receive(rx, folded, rng=rng, last_of=_last_of)
    # A reply echoes CMD with bit 7 set, so the reference's replies tell CMD modulo 0x80.
    got = [(cmd & 0x7F, seq, err) for cmd, seq, err, *_ in frames]
    want = [(r.cmd, r.seq, r.status) for r in expected_words]
    assert got == want
    assert junk == ref.junk_total > 0
    kinds = {err for _, _, err in got}
    assert kinds >= {Err.OK, Err.BAD_CRC, Err.TIMEOUT, Err.UNKNOWN_CMD, Err.BAD_LENGTH, Err.BAD_ADDRESS,
                     Err.BAD_ORDER, Err.BAD_ARG}, f"the stream should hit every verdict, hit {sorted(kinds)}"


def test_receiver_words_arg_and_latency():
    addrs = list(range(3, 300, 3))[:90]
    mask = 0b1_0110_0101
    frames_in = [encode_request(Cmd.SPIKES, 1, encode_addresses(addrs[:40])),
                 encode_request(Cmd.STEP, 2, encode_addresses(addrs[40:])),
                 encode_request(Cmd.SET_WAKE, 3, mask.to_bytes(2, "little")),
                 encode_request(Cmd.STEP, 4, encode_addresses([0, 299]))]
    stream = [(b, 0) for frame in frames_in for b in frame]
    rx = FrameReceiver(n_in=300, n_out=9, timeout=TIMEOUT)
    frames, _, byte_cycles = _receive(rx, stream, rng=random.Random(1), last_of=_last_of)
    assert [f[2] for f in frames] == [Err.OK] * 4
    assert frames[0][4] == addrs[:40] and frames[1][4] == addrs[40:] and frames[3][4] == [0, 299]
    assert frames[2][5] == mask
    # The last byte taken in cycle c, the verdict offered in cycle c + 3 (input register, CRC, verdict):
    # the source reads the cycle counter right after the handshake edge (c + 1), the sink right after the
    # edge raising valid (c + 3).
    last_byte = byte_cycles[len(frames_in[0]) - 1]
    assert frames[0][6] - last_byte == 2


@pytest.mark.parametrize("gap, timed_out", [(TIMEOUT - 1, False), (TIMEOUT, True)])
def test_receiver_timeout_is_exact(gap, timed_out):
    """A gap of ``timeout - 1`` idle cycles inside a frame is fine, ``timeout`` ends it (TIMEOUT)."""
    frame = encode_request(Cmd.STATUS, 9)
    stream = [(b, gap if i == 3 else 0) for i, b in enumerate(frame)]
    rx = FrameReceiver(n_in=16, n_out=4, timeout=TIMEOUT)
    frames, junk, _ = _receive(rx, stream, rng=random.Random(2))
    got = [(cmd, seq, err) for cmd, seq, err, *_ in frames]
    if timed_out:
        # The truncated frame, then the rest of it: LEN (0) and the CRC bytes are junk without a SYNC.
        assert got == [(Cmd.STATUS, 9, Err.TIMEOUT)] and junk == 3 - (frame[4:].count(SYNC) + (frame[3] == SYNC))
    else:
        assert got == [(Cmd.STATUS, 9, Err.OK)] and junk == 0


def test_receiver_params():
    for kwargs, match in [({"n_in": 0}, "n_in"), ({"n_in": 1 << 16}, "n_in"), ({"n_out": 0}, "n_out"),
                          ({"timeout": 1}, "timeout"), ({"timeout": 2.5}, "timeout")]:
        with pytest.raises(ValueError, match=match):
            FrameReceiver(**{"n_in": 16, "n_out": 4, "timeout": 100, **kwargs})


# -- FrameSender -------------------------------------------------------------------------------------

def test_sender_frames_replies():
    rng = random.Random(3)
    replies = [(rng.randrange(0x80), rng.randrange(256), rng.randrange(8), rng.randbytes(rng.choice([0, 1, 2, 7, 40])))
               for _ in range(30)]
    replies.append((Cmd.RESULT, 255, 0, bytes(range(255))))
    dut = FrameSender()
    out = bytearray()

    async def producer(ctx):
        for cmd, seq, status, payload in replies:
            ctx.set(dut.header.payload, {"cmd": cmd, "seq": seq, "status": status, "length": len(payload)})
            ctx.set(dut.header.valid, 1)
            await ctx.tick().until(dut.header.ready)
            ctx.set(dut.header.valid, 0)
            for b in payload:
                ctx.set(dut.payload.payload, b)
                ctx.set(dut.payload.valid, 1)
                await ctx.tick().until(dut.payload.ready)
            ctx.set(dut.payload.valid, 0)
        for _ in range(40):          # the last CRC bytes drain
            await ctx.tick()

    async def consumer(ctx):
        while True:
            ready = rng.random() < 0.6
            ctx.set(dut.bytes.ready, ready)
            if ready and ctx.get(dut.bytes.valid):          # the handshake of the coming edge
                out.append(ctx.get(dut.bytes.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.run()
    assert bytes(out) == b"".join(encode_reply(*r) for r in replies)
