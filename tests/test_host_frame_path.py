# amaranth: UnusedElaboratable=no
"""The frame path over the UART (``FRAME``, docs/host-protocol.md): a frame in, the board's encoder runs the
sample, the RESULT payload back. The reference board and the driver in pure Python; the RTL link with its
:class:`~qlif.hw.encoder.SpikeEncoder` in the Amaranth simulator, scored against golden and the reference
board byte for byte; the Verilog of that link under cocotb (Icarus; Verilator behind ``slow``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_boards_link import CLK, TIMEOUT, SimPort

from qlif.boards.host.driver import Board, ErrorReply, LinkError, NoEncoder
from qlif.boards.host.emulator import BoardModel, EmulatedPort, open_emulator
from qlif.boards.link.host_link import HostLink
from qlif.boards.protocol import (
    MAX_PAYLOAD,
    Cmd,
    Err,
    Flag,
    decode_result,
    decode_status,
    encode_addresses,
    encode_request,
    frame_inference_bytes,
    frame_requests,
    inference_bytes,
)
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import frame_inputs, run
from qlif.sim.link_frames import run_link_frames
from qlif.sim.link_runner import SIM_CORE_CLKS


def _model(sizes, *, timesteps, seed, meta):
    return replace(random_model(sizes, timesteps=timesteps, seed=seed, threshold="random"), metadata=meta)


@pytest.fixture(scope="module")
def digits_like():
    """16 inputs at the digits' 16 levels, r = 3/16 (start phases: the encoder's phase memory is used)."""
    model = _model([16, 8, 4], timesteps=6, seed=4, meta={"dataset": "digits", "max_rate": "3/16"})
    frames = np.random.default_rng(4).integers(0, 17, (5, 16)).astype(np.uint8)
    return model, frames, run(model, frame_inputs(model, frames), lanes=2)


class CountingPort(EmulatedPort):
    """An emulated port that counts the bytes each way."""

    def __init__(self, board, **kw):
        super().__init__(board, **kw)
        self.written = self.read_bytes = 0

    def write(self, data):
        self.written += len(data)
        return super().write(data)

    def read(self, size=1):
        out = super().read(size)
        self.read_bytes += len(out)
        return out


def _golden_equal(got, golden):
    assert got.prediction.tolist() == golden.prediction.tolist()
    assert got.counts.tolist() == golden.spikes[-1].sum(axis=1).tolist()
    assert got.cycles.tolist() == golden.cycles.sum(axis=1).tolist()


# -- protocol, reference board and driver (pure Python) -------------------------------------------------

def test_frame_requests_and_bytes():
    assert list(frame_requests([1, 2, 3])) == [(Cmd.FRAME, b"\x01\x02\x03")]
    chunks = list(frame_requests(range(256)))
    assert [len(p) for _, p in chunks] == [MAX_PAYLOAD, 1]
    assert [len(p) for _, p in frame_requests(bytes(784))] == [255, 255, 255, 19]
    assert frame_inference_bytes(784, n_out=10, timesteps=16) == (4 * 6 + 784, 4 * 7 + 18)
    assert frame_inference_bytes(64, n_out=10, timesteps=16) == (70, 25)
    with pytest.raises(ValueError):
        list(frame_requests([256]))
    with pytest.raises(ValueError, match="at least one input"):
        list(frame_requests([]))


def test_driver_classifies_frames_like_golden(digits_like):
    """classify_frames on the reference board: golden's predictions, counts, cycles; the wire bytes are
    frame_inference_bytes per sample (plus the run's one RESET), against inference_bytes of the spikes."""
    model, frames, golden = digits_like
    port = CountingPort(BoardModel(model, lanes=2, encoder=True, wake_classes=[int(golden.prediction[0])]))
    board = Board(port)
    assert Flag.ENCODER in board.connect(model).flags
    port.written = port.read_bytes = 0
    got = board.classify_frames(frames)
    _golden_equal(got, golden)
    assert got.wake.tolist() == (golden.prediction == golden.prediction[0]).tolist()
    per = frame_inference_bytes(model.n_in, n_out=model.n_out, timesteps=model.timesteps)
    assert (port.written, port.read_bytes) == (6 + len(frames) * per.to_board, 7 + len(frames) * per.from_board)
    # The same samples sent as spikes per step: the same results, more bytes.
    x = frame_inputs(model, frames)
    port.written = 0
    _golden_equal(board.classify(x), golden)
    assert port.written == sum(inference_bytes(s.sum(axis=1), n_out=model.n_out).to_board for s in x)


def test_driver_frames_over_chunks_and_noise():
    """A 300-input model (frames of two FRAME requests, the first of an odd 255 bytes) at MNIST levels,
    on a noisy line: recovered by resync and a RESET, results golden."""
    model = _model([300, 6, 3], timesteps=3, seed=7, meta={"dataset": "mnist"})
    frames = np.random.default_rng(1).integers(0, 256, (6, 300)).astype(np.uint8)
    golden = run(model, frame_inputs(model, frames), lanes=4)
    port = EmulatedPort(BoardModel(model, lanes=4, encoder=True), noise=0.002, seed=5)
    board = Board(port, retries=8)
    board.connect(model)
    got = board.classify_frames(frames)
    _golden_equal(got, golden)
    assert got.retries > 0


def test_driver_refuses_frames_without_encoder(digits_like):
    model, frames, _ = digits_like
    board = Board(EmulatedPort(BoardModel(model)))
    board.connect(model)
    with pytest.raises(NoEncoder, match="no on-chip encoder"):
        board.classify_frames(frames)
    board = Board(EmulatedPort(BoardModel(model, encoder=True)))
    board.connect(model)
    with pytest.raises(ValueError, match=r"\[samples, 16\]"):
        board.classify_frames(frames[:, :15])
    bad = frames.copy()
    bad[1, 3] = 17                                  # above the digits' 16 levels
    # Refused by the driver with the model's levels (from connect, or given), before any byte goes out ...
    port = CountingPort(BoardModel(model, encoder=True))
    board = Board(port)
    board.connect(model)
    assert board.levels == 16
    sent = port.written
    with pytest.raises(ValueError, match=r"^frames: sample 1, input 3: value 17 is outside 0\.\.16 "):
        board.classify_frames(bad)
    assert port.written == sent
    board.levels = None
    with pytest.raises(ValueError, match="sample 1, input 3: value 17"):
        board.classify_frames(bad, levels=16)
    # ... and by the board (BAD_ARG) when the driver does not know them.
    with pytest.raises(LinkError, match="sample 1: .*BAD_ARG"):
        board.classify_frames(bad)


def test_reference_frame_semantics(digits_like):
    """Chunks accumulate (FRAME_OPEN); RESET drops a partial frame; the last chunk ends an open step and
    starts a new sample (fault cleared); bad FRAMEs change nothing but counters and fault."""
    model, frames, golden = digits_like
    ref = BoardModel(model, lanes=2, encoder=True)

    def send(cmd, payload=b"", seq=0):
        return ref.feed(encode_request(cmd, seq, payload))

    def status():
        return decode_status(send(Cmd.STATUS)[5:-2])

    f = bytes(frames[0])
    assert send(Cmd.FRAME, f[:10])[3] == Err.OK
    assert Flag.FRAME_OPEN in status().flags
    for payload, err in [(b"", Err.BAD_LENGTH), (f[10:] + b"\x00", Err.BAD_LENGTH),
                         (bytes([17]) + f[11:], Err.BAD_ARG)]:
        assert send(Cmd.FRAME, payload)[3] == err
    assert Flag.FAULT | Flag.FRAME_OPEN | Flag.ENCODER == status().flags
    send(Cmd.RESET)
    assert Flag.FRAME_OPEN not in status().flags
    assert send(Cmd.FRAME, f[:10])[3] == Err.OK
    send(Cmd.RESET)
    send(Cmd.SPIKES, encode_addresses([2, 5]))                        # an open step ...
    assert send(Cmd.FRAME, bytes([99] * 3))[3] == Err.BAD_ARG           # a bad chunk: only fault
    reply = send(Cmd.FRAME, bytes(frames[1]))                         # ... ended by the whole frame
    assert reply[3] == Err.OK
    res = decode_result(reply[5:-2], n_out=model.n_out, timesteps=model.timesteps)
    assert (res.prediction, res.steps, res.cycles) == (golden.prediction[1], 6, golden.cycles[1].sum())
    assert res.counts.tolist() == golden.spikes[-1][1].sum(axis=0).tolist()
    assert res.flags & (Flag.DONE | Flag.FAULT | Flag.STEP_OPEN) == Flag.DONE
    assert send(Cmd.RESULT)[5:-2] == reply[5:-2]
    # Without the encoder, FRAME is an unknown command.
    assert BoardModel(model).feed(encode_request(Cmd.FRAME, 0, f))[3] == Err.UNKNOWN_CMD


def test_emulator_url_and_model_checks(digits_like):
    model = digits_like[0]
    assert open_emulator("emu://?encoder=1", model).board.encoder
    assert not open_emulator("emu://", model).board.encoder
    with pytest.raises(ValueError, match="encoder must be 0 or 1"):
        open_emulator("emu://?encoder=2", model)
    with pytest.raises(ValueError, match="frame_levels|dataset"):
        BoardModel(replace(model, metadata={"dataset": "cifar"}), encoder=True)


def test_hostlink_encoder_checks(digits_like):
    model = digits_like[0]
    assert HostLink(model=model, lanes=2, clk_freq=CLK, baud=1_000_000, encoder=True).encoder
    assert HostLink(model=model, lanes=2, clk_freq=CLK, baud=1_000_000, encoder=True, core_domain="core").encoder
    with pytest.raises(ValueError, match="encoder=True: the model's metadata.dataset 'cifar'"):
        HostLink(model=replace(model, metadata={"dataset": "cifar"}), lanes=2, clk_freq=CLK, baud=1_000_000,
                 encoder=True)
    with pytest.raises(TypeError, match="encoder must be a bool"):
        HostLink(model=model, lanes=2, clk_freq=CLK, baud=1_000_000, encoder=1)


# -- the RTL link in the Amaranth simulator -------------------------------------------------------------

@pytest.mark.parametrize("core_period", [None, pytest.param(1 / 21.7e6, marks=pytest.mark.slow),
                                         pytest.param(1 / 5.3e6, marks=pytest.mark.slow)],
                         ids=["shared", "faster", "slower"])
def test_rtl_driver_classifies_frames_like_golden(digits_like, core_period):
    """The driver's classify_frames on the simulated link with the encoder: golden results and pins; the
    core on the link's clock, or on a faster or slower one of its own behind the crossing (the encoder's
    tokens and clear cross as the link's do)."""
    model, frames, golden = digits_like
    frames, golden = frames[:3], golden.select(slice(0, 3))
    assert len(set(golden.prediction.tolist())) > 1, "the samples should not predict the same class"
    port = SimPort(model, 2, encoder=True, wake_classes=[int(golden.prediction[1])], core_period=core_period)
    board = Board(port, frame_timeout=2 * TIMEOUT / CLK)
    assert Flag.ENCODER in board.connect(model).flags
    got = board.classify_frames(frames)
    _golden_equal(got, golden)
    assert got.wake.tolist() == (golden.prediction == golden.prediction[1]).tolist()
    assert port.pins[-1][:2] == (1, 0)


def test_rtl_bad_frames_answered_like_the_reference(digits_like):
    """Bad FRAMEs (too long, empty, a value above the levels), a RESET dropping a partial frame, a frame
    ending an open step: every reply byte is the reference board's, and the sample is golden."""
    model, frames, golden = digits_like
    port = SimPort(model, 2, encoder=True)
    ref = BoardModel(model, lanes=2, divisor=8, encoder=True)
    f0, f1 = bytes(frames[0]), bytes(frames[1])
    bad_value = bytearray(f0[5:])
    bad_value[3] = 200
    burst = b"".join([
        encode_request(Cmd.FRAME, 1, f0[:5]),                            # a partial frame ...
        encode_request(Cmd.FRAME, 2, f0[5:] + b"\x01"),                  # one byte too many
        encode_request(Cmd.FRAME, 3, b""),                               # empty
        encode_request(Cmd.FRAME, 4, bytes(bad_value)),                  # 200 > 16
        encode_request(Cmd.STATUS, 5),                                   # FRAME_OPEN, FAULT
        encode_request(Cmd.RESET, 6),                                    # ... dropped
        encode_request(Cmd.FRAME, 7, f0[:7]),
        encode_request(Cmd.FRAME, 8, f0[7:]),                            # the whole frame 0 (odd chunks)
        encode_request(Cmd.SPIKES, 9, encode_addresses([1, 4])),          # an open step ...
        encode_request(Cmd.FRAME, 10, f1),                               # ... ended: frame 1 runs
        encode_request(Cmd.STATUS, 11),
    ])
    port.write(burst)
    expected = ref.feed(burst)
    assert port.read(len(expected)) == expected
    assert port.read(1) == b""
    assert ref.status().counters["bad_length"] == 2 and ref.status().counters["bad_arg"] == 1
    # The two samples' replies are golden's.
    results = [r for r in _replies(expected) if r[1] == Cmd.FRAME | 0x80 and r[4]]
    for (_, _, _, _, _, payload), s in zip(results, (0, 1), strict=True):
        res = decode_result(payload, n_out=model.n_out, timesteps=model.timesteps)
        assert (res.prediction, res.cycles) == (golden.prediction[s], golden.cycles[s].sum())
        assert res.counts.tolist() == golden.spikes[-1][s].sum(axis=0).tolist()


def test_rtl_frames_without_encoder_are_unknown(digits_like):
    model, frames, _ = digits_like
    port = SimPort(model, 2)
    board = Board(port, frame_timeout=2 * TIMEOUT / CLK)
    board.connect(model)
    with pytest.raises(ErrorReply, match="UNKNOWN_CMD"):
        board.request(Cmd.FRAME, bytes(frames[0]))
    with pytest.raises(NoEncoder):
        board.classify_frames(frames)


def _replies(data: bytes):
    """(sync, cmd, seq, status, len, payload) of each reply frame in ``data``."""
    out, i = [], 0
    while i < len(data):
        n = data[i + 4]
        out.append((data[i], data[i + 1], data[i + 2], data[i + 3], n, data[i + 5:i + 5 + n]))
        i += 7 + n
    return out


# -- the Verilog under cocotb ---------------------------------------------------------------------------

@pytest.mark.parametrize("simulator, core", [("icarus", "slower"), ("verilator", "faster"),
                                             pytest.param("icarus", None, marks=pytest.mark.slow),
                                             pytest.param("verilator", None, marks=pytest.mark.slow)])
def test_cocotb_frames_driver(digits_like, simulator, core):
    """The driver's classify_frames on the Verilog of HostLink(encoder=True), through the UART pins, with
    the core on the link's clock or on one of its own behind the crossing (as a board top with a PLL):
    golden predictions, counts and cycles, no frame lost, no error counted (sim/cocotb_link_frames.py)."""
    model, frames, golden = digits_like
    stats = run_link_frames(model, frames[:3], simulator=simulator, lanes=2, core_clk=SIM_CORE_CLKS.get(core))
    assert stats["prediction"] == golden.prediction[:3].tolist()
    assert stats["counts"] == golden.spikes[-1][:3].sum(axis=1).tolist()
    assert stats["cycles"] == golden.cycles[:3].sum(axis=1).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("simulator, core", [("icarus", "slower"), ("verilator", "faster"), ("verilator", None)])
def test_cocotb_frames_digits(simulator, core):
    """The demo's digits model (64-128-10, T = 16, 4-bit PTQ of the stored float network, P = 4) on four
    test images as frames through the UART of the encoder link, the core behind the crossing or not:
    predictions, counts and cycles equal golden's of coding.encode_frames."""
    model, frames = _digits_frames()
    golden = run(model, frame_inputs(model, frames), lanes=4)
    stats = run_link_frames(model, frames, simulator=simulator, lanes=4, core_clk=SIM_CORE_CLKS.get(core))
    assert stats["prediction"] == golden.prediction.tolist()
    assert stats["counts"] == golden.spikes[-1].sum(axis=1).tolist()
    assert stats["cycles"] == golden.cycles.sum(axis=1).tolist()


def _digits_frames():
    """The demo's digits model (as tests/test_gate.py makes it) and four test images as frames."""
    from test_gate import _digits

    from qlif.golden.data.datasets import load_digits_split
    from qlif.golden.spec.coding import frame_levels_of
    from qlif.golden.training.train import TrainConfig

    model = _digits()[0]
    config = TrainConfig()
    images = load_digits_split(config.seed, config.test_fraction).x_test[:4]
    return model, np.rint(images.reshape(len(images), -1) * frame_levels_of(model.metadata)).astype(np.uint8)


@pytest.mark.slow
@pytest.mark.parametrize("case, lanes", [("small", 2), ("digits", 4)])
def test_board_netlist_frames(digits_like, case, lanes):
    """The iCEBreaker top of `qlif build --encoder` (one clock, the board oscillator) as the netlist
    nextpnr places (qlif.sim.gate), through its UART pins with the unchanged driver's classify_frames
    under Icarus (Verilator refuses the iCE40 cell models' tristate ports, as for every board netlist):
    predictions, counts and cycles equal golden's of the encoded frames (small: 31 s with its synthesis)."""
    from qlif.sim.gate import run_board_gate

    model, frames = (digits_like[0], digits_like[1][:3]) if case == "small" else _digits_frames()
    golden = run(model, frame_inputs(model, frames), lanes=lanes)
    stats = run_board_gate(model, frames, board="icebreaker", lanes=lanes, test="frames_driver", encoder=True,
                           simulator="icarus")
    assert stats["prediction"] == golden.prediction.tolist()
    assert stats["counts"] == golden.spikes[-1].sum(axis=1).tolist()
    assert stats["cycles"] == golden.cycles.sum(axis=1).tolist()
