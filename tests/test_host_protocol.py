"""The host protocol without hardware: codec, reference board, host driver, fuzzer (pure Python, fast).

The reference board (:class:`~qlif.boards.host.emulator.BoardModel`) is what the RTL is scored against in the
cocotb fuzz campaign, so its semantics are pinned down here: bad frames change nothing, counters, wake,
truncation; and the host driver is run against it (windowing, retries on a noisy line, error names).
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from qlif.boards.host.driver import Board, BoardTimeout, ErrorReply, LinkError, ModelMismatch, open_board
from qlif.boards.host.emulator import BoardModel, EmulatedPort, open_emulator
from qlif.boards.protocol import (
    COUNTERS,
    MAX_WORDS,
    REQUEST_OVERHEAD,
    STATUS_LEN,
    SYNC,
    BoardResult,
    Cmd,
    Err,
    Flag,
    ProtocolError,
    ReplyDecoder,
    Status,
    crc16,
    decode_result,
    decode_status,
    decode_wake_mask,
    encode_addresses,
    encode_reply,
    encode_request,
    encode_wake_mask,
    model_id,
    step_requests,
)
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import run
from qlif.sim.link_fuzz import KINDS, Fuzzer, apply


@pytest.fixture(scope="module")
def small():
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    x = (np.random.default_rng(4).random((12, 4, 16)) < 0.3).astype(np.uint8)
    return model, x, run(model, x, lanes=4)


# -- codec -------------------------------------------------------------------------------------------

def test_worked_examples():
    """The examples of docs/host-protocol.md, byte for byte."""
    assert crc16(b"123456789") == 0x29B1
    assert encode_request(Cmd.STATUS, 0).hex(" ") == "a5 01 00 00 fb ac"
    assert encode_request(Cmd.STEP, 7, encode_addresses([1, 7])).hex(" ") == "a5 04 07 04 00 01 00 07 36 98"
    assert encode_reply(Cmd.STEP, 7, Err.OK).hex(" ") == "a5 84 07 00 00 16 99"
    assert encode_reply(Cmd.STEP, 7, Err.BAD_ADDRESS).hex(" ") == "a5 84 07 05 00 e9 6c"


def test_encode_checks():
    with pytest.raises(ValueError, match="payload"):
        encode_request(Cmd.STEP, 0, bytes(256))
    with pytest.raises(ValueError, match="seq"):
        encode_request(Cmd.STEP, 256)
    with pytest.raises(ValueError, match="wake classes"):
        encode_wake_mask([4], 4)
    assert encode_wake_mask([0, 9], 10) == b"\x01\x02" and decode_wake_mask(b"\x01\x02") == {0, 9}


def test_decoder_hunts_through_garbage():
    good = [encode_reply(Cmd.RESULT, 1, 0, b"xyz"), encode_reply(Cmd.STATUS, 2, Err.BAD_CRC)]
    broken = bytearray(encode_reply(Cmd.STEP, 3, 0))
    broken[-1] ^= 1
    stream = b"\x00\x13" + good[0] + bytes(broken) + bytes([SYNC]) + good[1] + encode_request(Cmd.RESULT, 4)
    dec = ReplyDecoder()
    got = []
    for i in range(0, len(stream), 3):          # in pieces, as a port delivers them
        got += dec.feed(stream[i:i + 3])
    assert [(r.cmd, r.seq, r.status, r.payload) for r in got] == [(Cmd.RESULT, 1, 0, b"xyz"),
                                                                  (Cmd.STATUS, 2, Err.BAD_CRC, b"")]
    assert got[1].describe() == "BAD_CRC (frame checksum wrong)"
    assert dec.skipped > 0


def test_status_and_result_round_trip():
    st = Status(version=1, flags=Flag.DONE | Flag.WAKE, model_id=0xDEADBEEF, n_in=784, n_out=10, timesteps=25,
                lanes=4, rx_buffer=512, divisor=104, counters={name: i for i, name in enumerate(COUNTERS)})
    payload = st.encode()
    assert len(payload) == STATUS_LEN == 39
    assert decode_status(payload) == st
    with pytest.raises(ProtocolError, match="version"):
        decode_status(bytes([2]) + payload[1:])
    with pytest.raises(ProtocolError, match="39 bytes"):
        decode_status(payload[:-1])
    for timesteps, cb in ((255, 1), (256, 2)):
        res = BoardResult(flags=Flag.DONE, prediction=3, steps=timesteps, cycles=123456,
                          counts=np.array([0, 5, 255, 7]))
        back = decode_result(res.encode(timesteps), n_out=4, timesteps=timesteps)
        assert len(res.encode(timesteps)) == 8 + 4 * cb
        assert (back.prediction, back.steps, back.cycles, back.counts.tolist()) == (3, timesteps, 123456,
                                                                                   [0, 5, 255, 7])


def test_step_requests_split():
    addrs = list(range(300))
    reqs = list(step_requests(addrs))
    assert [c for c, _ in reqs] == [Cmd.SPIKES, Cmd.SPIKES, Cmd.STEP]
    assert [len(p) // 2 for _, p in reqs] == [MAX_WORDS, MAX_WORDS, 300 - 2 * MAX_WORDS]
    assert list(step_requests([])) == [(Cmd.STEP, b"")]


def test_model_id(small):
    model = small[0]
    other = random_model([16, 8, 4], timesteps=4, seed=4)
    assert model_id(model) == model_id(copy.deepcopy(model)) != model_id(other)
    tagged = type(model)(timesteps=model.timesteps, layers=model.layers, metadata={"note": "x"})
    assert model_id(tagged) == model_id(model)       # metadata does not change the bitstream


# -- the reference board ------------------------------------------------------------------------------

def _replies(board: BoardModel, *frames: bytes):
    return ReplyDecoder().feed(board.feed(b"".join(frames)))


def test_reference_sample_is_golden(small):
    model, x, golden = small
    board = BoardModel(model, lanes=4, wake_classes=[int(golden.prediction[0])])
    frames = [encode_request(Cmd.RESET, 0)]
    frames += [encode_request(cmd, 1, p) for step in x[0] for cmd, p in step_requests(np.flatnonzero(step))]
    frames.append(encode_request(Cmd.RESULT, 2))
    *_, last = _replies(board, *frames)
    res = decode_result(last.payload, n_out=4, timesteps=4)
    assert res.prediction == golden.prediction[0] and res.steps == 4
    assert res.counts.tolist() == golden.spikes[-1][0].sum(axis=0).tolist()
    assert res.cycles == golden.cycles[0].sum()
    assert res.flags == Flag.DONE | Flag.WAKE and board.wake


def test_reference_rejections_change_nothing(small):
    """Each kind of bad frame: its error reply and counter, and the rest of the state untouched."""
    model = small[0]
    board = BoardModel(model, lanes=4)
    _replies(board, encode_request(Cmd.RESET, 0), encode_request(Cmd.STEP, 1, encode_addresses([2, 9])),
             encode_request(Cmd.SPIKES, 2, encode_addresses([5])))
    cases = [
        (encode_request(Cmd.STEP, 3, encode_addresses([7, 16])), Err.BAD_ADDRESS),
        (encode_request(Cmd.STEP, 3, encode_addresses([4, 6])), Err.BAD_ORDER),     # 4 is not above 5
        (encode_request(Cmd.SPIKES, 3, encode_addresses([6, 6])), Err.BAD_ORDER),
        (encode_request(Cmd.STEP, 3, b"\x00\x06\x00"), Err.BAD_LENGTH),
        (encode_request(Cmd.RESET, 3, b"\x00"), Err.BAD_LENGTH),
        (encode_request(Cmd.SET_WAKE, 3, b"\x10"), Err.BAD_ARG),
        (encode_request(Cmd.SET_WAKE, 3, b"\x01\x00"), Err.BAD_LENGTH),
        (encode_request(0x09, 3), Err.UNKNOWN_CMD),
        (encode_request(Cmd.STEP, 3, encode_addresses([6]))[:-1] + b"\x00", Err.BAD_CRC),
    ]
    for frame, err in cases:
        before = (list(board.steps), list(board.open), board.wake_mask, board.result().counts.tolist())
        (reply,) = _replies(board, frame)
        assert reply.status == err, frame.hex(" ")
        assert (list(board.steps), list(board.open), board.wake_mask, board.result().counts.tolist()) == before
    # A truncated frame ends only when the line goes quiet.
    assert board.feed(encode_request(Cmd.STEP, 4)[:4]) == b""
    (reply,) = ReplyDecoder().feed(board.idle())
    assert (reply.cmd, reply.seq, reply.status) == (Cmd.STEP, 4, Err.TIMEOUT)
    assert board.feed(b"\x00\x01") == b""            # junk between frames: no reply, counted
    counters = board.status().counters
    assert counters == {"frames_ok": 3, "bad_crc": 1, "timeout": 1, "unknown_cmd": 1, "bad_length": 3,
                        "bad_address": 1, "bad_order": 2, "bad_arg": 1, "junk": 2, "uart_frame": 0,
                        "uart_overrun": 0}
    assert Flag.FAULT in board.flags() and Flag.STEP_OPEN in board.flags()
    _replies(board, encode_request(Cmd.RESET, 5))
    assert board.flags() == Flag(0)
    _replies(board, encode_request(Cmd.CLEAR_COUNTERS, 6))
    assert set(board.status().counters.values()) == {0}


def test_reference_counters_saturate(small):
    board = BoardModel(small[0])
    board.counters["bad_crc"] = 0xFFFF
    board.counters["frames_ok"] = 0xFFFF
    _replies(board, encode_request(Cmd.RESULT, 0), encode_request(Cmd.RESULT, 1)[:-1] + b"\x00")
    assert board.counters["bad_crc"] == 0xFFFF and board.counters["frames_ok"] == 0     # saturates; wraps


def test_reference_more_steps_than_t(small):
    """Counts saturate at 2^bit_length(T) - 1 and the prediction stays their argmax."""
    model = random_model([4, 2], timesteps=1, seed=0)
    board = BoardModel(model)
    steps = [encode_request(Cmd.STEP, i, encode_addresses(range(4))) for i in range(6)]
    *_, last = _replies(board, *steps, encode_request(Cmd.RESULT, 9))
    res = decode_result(last.payload, n_out=2, timesteps=1)
    assert res.steps == 6 and res.counts.max() <= 1 and Flag.DONE in res.flags


# -- the host driver against the reference board --------------------------------------------------------

class _Recorder:
    """A port that remembers the most bytes ever outstanding (sent, not yet answered by a reply)."""

    def __init__(self, port):
        self.port, self.ahead, self.most = port, 0, 0
        self.decoder = ReplyDecoder()
        self.sent: list[int] = []

    def write(self, data):
        for frame_len in _frame_lengths(data):
            self.sent.append(frame_len)
        self.ahead = sum(self.sent)
        self.most = max(self.most, self.ahead)
        return self.port.write(data)

    def read(self, n):
        data = self.port.read(n)
        for _ in self.decoder.feed(data):
            self.sent.pop(0)
        return data

    def pause(self, s):
        self.port.pause(s)


def _frame_lengths(data: bytes):
    i = 0
    while i < len(data):
        n = REQUEST_OVERHEAD + data[i + 3]
        yield n
        i += n


def test_driver_classifies_within_the_window(small):
    model, x, golden = small
    port = _Recorder(EmulatedPort(BoardModel(model, lanes=4)))
    board = Board(port)
    assert board.connect(model).rx_buffer == board.window == 512
    got = board.classify(x)
    assert got.prediction.tolist() == golden.prediction.tolist()
    assert got.cycles.tolist() == golden.cycles.sum(axis=1).tolist()
    assert got.retries == 0
    assert 400 < port.most <= 512          # it did run ahead, never beyond the board's buffer
    small_window = _Recorder(EmulatedPort(BoardModel(model, lanes=4)))
    Board(small_window, window=30).classify(x[:3])
    assert small_window.most <= 30 + REQUEST_OVERHEAD + 2 * model.n_in


def test_driver_survives_a_noisy_line(small):
    model, x, golden = small
    port = EmulatedPort(BoardModel(model, lanes=4), noise=0.004, seed=3)
    board = Board(port, retries=6)
    board.connect(model)
    got = board.classify(x)
    assert got.prediction.tolist() == golden.prediction.tolist()
    assert got.retries > 0
    counters = board.status().counters
    assert counters["bad_crc"] + counters["timeout"] + counters["junk"] > 0


def test_driver_errors(small):
    model, x, _ = small
    other = random_model([16, 8, 4], timesteps=4, seed=4)
    with pytest.raises(ModelMismatch, match="another model"):
        Board(EmulatedPort(BoardModel(other))).connect(model)
    board = Board(EmulatedPort(BoardModel(model)))
    board.connect(model)
    with pytest.raises(ErrorReply, match="rejected STEP .*BAD_ADDRESS") as info:
        board.step([3, 16])
    assert info.value.reply.status == Err.BAD_ADDRESS and not info.value.transient
    with pytest.raises(ValueError, match="samples, 4, 16"):
        board.classify(x[:, :2])
    with pytest.raises(LinkError, match="did not answer STATUS"):
        Board(EmulatedPort(BoardModel(model), noise=1.0), retries=1).connect()

    class Silent:
        def write(self, data):
            return len(data)

        def read(self, n):
            return b""

        def pause(self, s):
            pass

    with pytest.raises(BoardTimeout, match="no reply"):
        Board(Silent(), retries=0).connect()


def test_driver_wake_and_status(small):
    model, x, golden = small
    board = Board(EmulatedPort(BoardModel(model)))
    board.connect(model)
    board.set_wake([1, 3])
    assert board.get_wake() == {1, 3}
    got = board.classify(x)
    assert got.wake.tolist() == [p in (1, 3) for p in golden.prediction.tolist()]
    board.reset()
    board.step([0, 5])
    assert board.result().steps == 1
    board.clear_counters()
    assert board.status().counters["frames_ok"] == 1


def test_open_board_emulator(small, tmp_path):
    from qlif.golden.spec.model import save_model

    model = small[0]
    save_model(model, tmp_path / "m.json")
    port = open_board("emu://?lanes=2&model=" + str(tmp_path / "m.json"))
    assert isinstance(port, EmulatedPort) and port.board.lanes == 2
    for url, match in [("emu://x", "emu://"), ("emu://?lanes=3", "lanes"), ("emu://?noise=x", "noise"),
                       ("emu://?colour=1", "emu://")]:
        with pytest.raises(ValueError, match=match):
            open_emulator(url, model)
    with pytest.raises(ValueError, match="needs a model"):
        open_emulator("emu://", None)


# -- the fuzzer (a test of the test) ----------------------------------------------------------------------

@pytest.mark.parametrize("kind, err", [
    ("bad_crc", Err.BAD_CRC), ("unknown_cmd", Err.UNKNOWN_CMD), ("bad_length", Err.BAD_LENGTH),
    ("bad_address", Err.BAD_ADDRESS), ("bad_order", Err.BAD_ORDER), ("bad_arg", Err.BAD_ARG),
])
def test_fuzzer_frames_are_what_they_claim(small, kind, err):
    model = random_model([16, 8, 5], timesteps=4, seed=3)      # 5 classes: the mask has spare bits
    rng = random.Random(kind)
    fuzzer = Fuzzer(model, rng)
    board = BoardModel(model)
    for _ in range(40):
        if rng.random() < 0.5:        # sometimes with a step open, for the order check across frames
            _replies(board, encode_request(Cmd.RESET, 0), encode_request(Cmd.SPIKES, 0, encode_addresses([3])))
        (reply,) = _replies(board, fuzzer.bad_frame(kind, board))
        assert reply.status == err


def test_fuzzer_items_leave_the_sample_alone(small):
    model, x, _ = small
    rng = random.Random(11)
    fuzzer = Fuzzer(model, rng)
    board = BoardModel(model)
    _replies(board, encode_request(Cmd.RESET, 0), encode_request(Cmd.STEP, 1, encode_addresses([1, 4])))
    seen = set()
    for _ in range(300):
        before = (list(board.steps), list(board.open))
        item = fuzzer.item(board)
        seen.add(item.kind)
        apply(board, item)
        assert (list(board.steps), list(board.open)) == before
    assert seen == set(KINDS)
    frames = fuzzer.step_frames(list(range(0, 16, 2)))
    *_, last = _replies(board, *frames)
    assert last.cmd == Cmd.STEP and last.ok
