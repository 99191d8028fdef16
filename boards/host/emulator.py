"""A qlif board in software: the protocol of docs/host-protocol.md on top of the golden model.

:class:`BoardModel` is the reference model of :class:`~qlif.boards.link.host_link.HostLink`: fed the same bytes (and
told where the line went idle for longer than the frame timeout), it produces the same reply bytes, byte
for byte, counters included. The cocotb fuzz test scores the RTL against it; its neuron state comes from
:func:`qlif.golden.spec.reference.run_layer` and its cycle counts from :func:`qlif.golden.spec.cycles.cycle_model`,
so nothing of the core is re-implemented here.

:class:`EmulatedPort` wraps it as a serial port (``write``/``read``/``pause``), which
:func:`qlif.boards.host.driver.open_board` returns for the port name ``emu://``: ``qlif run --port emu:// ...``
runs the whole host flow without a board.
"""

from __future__ import annotations

import random
from urllib.parse import parse_qs, urlsplit

import numpy as np

from qlif.boards.protocol import (
    COUNTERS,
    ERR_COUNTER,
    MAX_PAYLOAD,
    SPI_STATUS_BYTES,
    SYNC,
    VERSION,
    BoardResult,
    Cmd,
    Err,
    Flag,
    SPICmd,
    SPIFlag,
    Status,
    count_bytes,
    crc16,
    decode_wake_mask,
    encode_reply,
    encode_wake_mask,
    mask_bytes,
    model_id,
    spi_result_bytes,
)
from qlif.golden.spec.coding import frame_levels_of
from qlif.golden.spec.cycles import cycle_model
from qlif.golden.spec.model import Model
from qlif.golden.spec.reference import frame_inputs, predict, run_layer

__all__ = ["BoardModel", "EmulatedPort", "SpiTargetModel", "EMULATOR_SCHEME", "RX_BUFFER", "open_emulator"]

#: Receive buffer the emulated board reports (the RTL's :data:`qlif.boards.link.host_link.RX_FIFO_DEPTH`).
RX_BUFFER = 512
#: Port names starting with this open an :class:`EmulatedPort`.
EMULATOR_SCHEME = "emu://"

_HUNT, _CMD, _SEQ, _LEN, _DATA, _CRC1, _CRC2 = range(7)


class BoardModel:
    """Reference model of the board's protocol engine (sans-I/O).

    Parameters
    ----------
    model : Model
        The network the board runs.
    lanes : int
        P of the core (reported by STATUS; sets the cycle counts).
    divisor : int
        Clock cycles per UART bit reported by STATUS.
    rx_buffer : int
        Receive buffer reported by STATUS.
    wake_classes : iterable of int or None
        The wake mask at power-up (None: every class), as :class:`~qlif.boards.link.host_link.HostLink`'s.
    encoder : bool
        The build has the on-chip encoder (``HostLink(encoder=True)``): ``FRAME`` requests run samples,
        encoded by :func:`qlif.golden.spec.reference.frame_inputs`.
    """

    def __init__(self, model: Model, *, lanes: int = 4, divisor: int = 104, rx_buffer: int = RX_BUFFER,
                 wake_classes=None, encoder: bool = False):
        model.validate()
        self.encoder = bool(encoder)
        self.levels = frame_levels_of(model.metadata) if encoder else None   # refuses a model without levels
        self.frame = bytearray()               # the open frame's bytes (FRAME so far)
        self.model = model
        self.lanes = lanes
        self.divisor = divisor
        self.rx_buffer = rx_buffer
        self._id = model_id(model)
        classes = range(model.n_out) if wake_classes is None else wake_classes
        self.wake_mask = decode_wake_mask(encode_wake_mask(classes, model.n_out))
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._count_top = (1 << model.timesteps.bit_length()) - 1
        self._state = _HUNT
        self._reset_sample()
        self.fault = False

    # -- the core ----------------------------------------------------------------------------------

    def _reset_sample(self) -> None:
        self.steps: list[np.ndarray] = []      # inputs of the finished steps, uint8 [n_in] each
        self.open: list[int] = []              # addresses of the open step (SPIKES so far)
        self._cache = None

    def _core(self) -> tuple[np.ndarray, int, int]:
        """(saturated counts, prediction, cycles) of the steps run since the last RESET."""
        if self._cache is None:
            m = self.model
            if not self.steps:
                counts = np.zeros(m.n_out, np.int64)
                self._cache = (counts, 0, 0)
            else:
                x = np.stack(self.steps)[None]
                inputs, spikes = [], []
                for layer in m.layers:
                    inputs.append(x)
                    x, _ = run_layer(layer, x)
                    spikes.append(x)
                counts = np.minimum(x.sum(axis=1, dtype=np.int64)[0], self._count_top)
                cycles = int(cycle_model(m, lanes=self.lanes, layer_inputs=inputs, layer_spikes=spikes).sum())
                self._cache = (counts, int(predict(counts[None, None])[0]), cycles % (1 << 32))
        return self._cache

    def flags(self) -> Flag:
        _, prediction, _ = self._core()
        done = len(self.steps) >= self.model.timesteps
        flags = Flag(0)
        if self.open:
            flags |= Flag.STEP_OPEN
        if done:
            flags |= Flag.DONE
        if done and prediction in self.wake_mask:
            flags |= Flag.WAKE
        if self.fault:
            flags |= Flag.FAULT
        if self.frame:
            flags |= Flag.FRAME_OPEN
        if self.encoder:
            flags |= Flag.ENCODER
        return flags

    def result(self) -> BoardResult:
        counts, prediction, cycles = self._core()
        return BoardResult(flags=self.flags(), prediction=prediction, steps=min(len(self.steps), 0xFFFF),
                           cycles=cycles, counts=counts.copy())

    def status(self) -> Status:
        m = self.model
        return Status(version=VERSION, flags=self.flags(), model_id=self._id, n_in=m.n_in, n_out=m.n_out,
                      timesteps=m.timesteps, lanes=self.lanes, rx_buffer=self.rx_buffer, divisor=self.divisor,
                      counters=dict(self.counters))

    def run_frame(self, frame: bytes) -> BoardResult:
        """A whole frame through the on-chip encoder, as the ``FRAME`` that completes it: a new sample
        (an open step ended, a partial frame dropped, as RESET does), its T encoded steps; the result."""
        x = frame_inputs(self.model, np.frombuffer(bytes(frame), np.uint8)[None])[0]
        self._reset_sample()
        self.frame.clear()
        self.fault = False
        self.steps = list(x)
        return self.result()

    @property
    def wake(self) -> bool:
        """The level of the wake output."""
        return Flag.WAKE in self.flags()

    # -- counters ----------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        if name == "frames_ok":
            self.counters[name] = (self.counters[name] + 1) & 0xFFFF
        else:
            self.counters[name] = min(self.counters[name] + 1, 0xFFFF)

    def uart_error(self, kind: str) -> None:
        """A byte lost on the line: ``"uart_frame"`` (bad stop bit) or ``"uart_overrun"``."""
        if kind not in ("uart_frame", "uart_overrun"):
            raise ValueError(f"kind must be 'uart_frame' or 'uart_overrun', not {kind!r}")
        self._count(kind)

    # -- the receiver --------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Bytes from the host, back to back; returns the reply bytes they cause."""
        out = bytearray()
        for byte in bytes(data):
            out += self._byte(byte)
        return bytes(out)

    def idle(self) -> bytes:
        """The line stayed quiet for longer than the frame timeout: a partial frame ends with TIMEOUT."""
        if self._state == _HUNT:
            return b""
        self._state = _HUNT
        return self._finish(Err.TIMEOUT)

    def _byte(self, byte: int) -> bytes:
        st = self._state
        if st == _HUNT:
            if byte == SYNC:
                self._cmd = self._seq = self._len = 0
                self._payload = bytearray()
                self._crc_bytes = bytearray()
                self._state = _CMD
            else:
                self._count("junk")
        elif st == _CMD:
            self._cmd, self._state = byte, _SEQ
        elif st == _SEQ:
            self._seq, self._state = byte, _LEN
        elif st == _LEN:
            self._len = byte
            self._state = _DATA if byte else _CRC1
        elif st == _DATA:
            self._payload.append(byte)
            if len(self._payload) == self._len:
                self._state = _CRC1
        elif st == _CRC1:
            self._crc_bytes.append(byte)
            self._state = _CRC2
        else:
            self._crc_bytes.append(byte)
            self._state = _HUNT
            body = bytes([self._cmd, self._seq, self._len]) + self._payload + self._crc_bytes
            return self._finish(Err.OK if crc16(body) == 0 else Err.BAD_CRC)
        return b""

    def _check(self) -> Err:
        """Why a frame with a good CRC is refused (checked in this order), or OK."""
        try:
            cmd = Cmd(self._cmd)
        except ValueError:
            return Err.UNKNOWN_CMD
        n, payload = self._len, bytes(self._payload)
        if cmd in (Cmd.SPIKES, Cmd.STEP):
            if n % 2:
                return Err.BAD_LENGTH
            words = [int.from_bytes(payload[i:i + 2], "big") for i in range(0, n, 2)]
            if any(w >= self.model.n_in for w in words):
                return Err.BAD_ADDRESS
            seq = self.open[-1:] + words
            if any(b <= a for a, b in zip(seq, seq[1:], strict=False)):
                return Err.BAD_ORDER
            return Err.OK
        if cmd == Cmd.FRAME:
            if not self.encoder:
                return Err.UNKNOWN_CMD
            if not 0 < n <= self.model.n_in - len(self.frame):
                return Err.BAD_LENGTH
            if max(payload) > self.levels:
                return Err.BAD_ARG
            return Err.OK
        if cmd == Cmd.SET_WAKE:
            if n != mask_bytes(self.model.n_out):
                return Err.BAD_LENGTH
            if int.from_bytes(payload, "little") >> self.model.n_out:
                return Err.BAD_ARG
            return Err.OK
        return Err.OK if n == 0 else Err.BAD_LENGTH

    def _finish(self, err: Err) -> bytes:
        if err == Err.OK:
            err = self._check()
        if err != Err.OK:
            self._count(ERR_COUNTER[err])
            self.fault = True
            return encode_reply(self._cmd, self._seq, err)
        self._count("frames_ok")
        cmd, payload = Cmd(self._cmd), bytes(self._payload)
        data = b""
        if cmd == Cmd.STATUS:
            data = self.status().encode()
        elif cmd == Cmd.RESET:
            self._reset_sample()
            self.frame.clear()
            self.fault = False
        elif cmd == Cmd.FRAME:
            self.frame += payload
            if len(self.frame) == self.model.n_in:
                data = self.run_frame(bytes(self.frame)).encode(self.model.timesteps)
        elif cmd in (Cmd.SPIKES, Cmd.STEP):
            self.open += [int.from_bytes(payload[i:i + 2], "big") for i in range(0, len(payload), 2)]
            if cmd == Cmd.STEP:
                x = np.zeros(self.model.n_in, np.uint8)
                x[self.open] = 1
                self.steps.append(x)
                self.open = []
                self._cache = None
        elif cmd == Cmd.RESULT:
            data = self.result().encode(self.model.timesteps)
        elif cmd == Cmd.SET_WAKE:
            self.wake_mask = decode_wake_mask(payload)
        elif cmd == Cmd.GET_WAKE:
            data = encode_wake_mask(self.wake_mask, self.model.n_out)
        elif cmd == Cmd.CLEAR_COUNTERS:
            self.counters = dict.fromkeys(COUNTERS, 0)
        assert len(data) <= MAX_PAYLOAD
        return encode_reply(cmd, self._seq, Err.OK, data)


class SpiTargetModel:
    """Reference model of the wake-up build's SPI target (:mod:`qlif.boards.link.spi_target`) with its
    core: whole SPI transactions in, the MISO bytes out (sans-I/O).

    Inference takes time on a board; here a committed frame keeps the target busy for the next
    ``latency`` transactions (0: done at once), so that a host's polling and the refusal of a frame
    sent while busy can be exercised. The result comes from :meth:`BoardModel.run_frame` (golden).

    A transaction may be cut short by CS anywhere, in the middle of a byte too (``exchange(bits=)``),
    and then as the RTL target (docs/host-protocol.md, "Cut transactions"): only its whole bytes take
    effect, nothing is committed before a write's last byte, and a WRITE_FRAME or WRITE_MASK whose
    transaction follows one that ended before its command's length is refused (REFUSED) until a whole
    transaction (a READ_STATUS) has gone by.

    Parameters
    ----------
    model : Model
        The network; its metadata gives the encoder's frame levels and rate.
    latency : int
        Transactions during which a committed frame is BUSY.
    wake_classes : iterable of int or None
        The wake mask at power-up (None: every class).
    """

    def __init__(self, model: Model, *, latency: int = 1, wake_classes=None):
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative integer, not {latency!r}")
        self._board = BoardModel(model, encoder=True, wake_classes=wake_classes)
        self.model = model
        self.latency = latency
        self.buffer = bytearray(model.n_in)
        self.busy = 0                     # transactions left while busy
        self.frames = 0                   # frames accepted, mod 256
        self.refused = False
        self.inferred = False
        self.whole = True                 # the last transaction reached its command's length (power-up: none)
        self.result: BoardResult | None = None

    @property
    def mask(self) -> frozenset[int]:
        return self._board.wake_mask

    @property
    def wake(self) -> bool:
        """The wake pin: a result whose prediction is in the mask, and not busy."""
        return not self.busy and self.result is not None and self.result.prediction in self.mask

    def length(self, cmd: int) -> int:
        """Bytes of a whole transaction of command ``cmd`` (the command byte included; any other: 1)."""
        n_out = self.model.n_out
        return 1 + {SPICmd.WRITE_FRAME: self.model.n_in, SPICmd.WRITE_MASK: mask_bytes(n_out),
                    SPICmd.READ_STATUS: SPI_STATUS_BYTES,
                    SPICmd.READ_RESULT: spi_result_bytes(n_out, self.model.timesteps)}.get(cmd, 0)

    def _answer(self, cmd: int | None, n: int, whole: int) -> bytes:
        """The answer bytes of a read command (0 past its end), sampled at the command byte: ``n`` of them,
        of which ``whole`` went out whole."""
        ready = not self.busy
        pred = self.result.prediction if ready and self.result is not None else 0
        if cmd == SPICmd.READ_STATUS:
            flags = SPIFlag(0)
            if self.busy:
                flags |= SPIFlag.BUSY
            if ready and self.inferred:
                flags |= SPIFlag.DONE
            if self.wake:
                flags |= SPIFlag.WAKE
            if self.refused:
                flags |= SPIFlag.REFUSED
            table = bytes([int(flags), pred, self.frames])
            if whole >= 1:          # cleared once the flags byte has gone out whole (as the RTL target does)
                self.refused = False
        elif cmd == SPICmd.READ_RESULT:
            cb = count_bytes(self.model.timesteps)
            counts = self.result.counts if ready and self.result is not None else [0] * self.model.n_out
            table = bytes([pred]) + b"".join(int(c).to_bytes(cb, "big") for c in counts)
        else:
            table = b""
        return (table + bytes(n))[:n]

    def exchange(self, mosi: bytes, *, bits: int | None = None) -> bytes:
        """One transaction (CS low, ``mosi`` clocked out, CS high); returns the MISO bytes.

        ``bits``: the SCK cycles clocked before CS rose (default all of ``mosi``'s), to model a
        transaction cut short in the middle of a byte; the MISO bytes then number ``ceil(bits / 8)``,
        the last one's bits after the cut 0.
        """
        mosi = bytes(mosi)
        bits = 8 * len(mosi) if bits is None else bits
        if not isinstance(bits, int) or not 0 <= bits <= 8 * len(mosi):
            raise ValueError(f"bits must be 0..{8 * len(mosi)} (the bits of mosi), not {bits!r}")
        if not bits:                      # CS low and high again with no SCK edge: nothing happens
            return b""
        # Whether the last transaction was whole is taken at this one's first SCK edge; a command byte
        # cut short is no command (``cmd`` None): nothing but that.
        after_whole, self.whole = self.whole, False
        n = bits // 8                     # whole bytes, the command's included
        cmd, data = (mosi[0] if n else None), mosi[1:n]
        busy = bool(self.busy)
        sent = -(-bits // 8) - 1          # answer bytes clocked out, the last perhaps in part
        miso = bytearray(bytes(1) + self._answer(cmd, sent, len(data)))
        if bits % 8:
            miso[-1] &= 0xFF << (8 - bits % 8) & 0xFF
        if n and n >= self.length(cmd):
            self.whole = True
        if cmd in (SPICmd.WRITE_FRAME, SPICmd.WRITE_MASK) and (busy or not after_whole):
            self.refused = True
        elif cmd == SPICmd.WRITE_FRAME:
            n_in = self.model.n_in
            self.buffer[:min(len(data), n_in)] = data[:n_in]
            if len(data) >= n_in:           # committed with its last byte; bytes after it are ignored
                # The encoder takes a value above the levels as the levels (the host tools refuse it).
                levels = self._board.levels
                self.result = self._board.run_frame(bytes(min(v, levels) for v in self.buffer))
                self.frames = (self.frames + 1) & 0xFF
                self.inferred = True
                self.busy = self.latency + 1   # this transaction's own count is taken below
        elif cmd == SPICmd.WRITE_MASK:
            n_mask = mask_bytes(self.model.n_out)
            if len(data) >= n_mask:
                mask = int.from_bytes(data[:n_mask], "little") & ((1 << self.model.n_out) - 1)
                self._board.wake_mask = decode_wake_mask(mask.to_bytes(n_mask, "little"))
        if self.busy:
            self.busy -= 1
        return bytes(miso)


class EmulatedPort:
    """A serial port with a :class:`BoardModel` behind it (what ``open_board("emu://")`` returns).

    ``noise`` is the probability that a host byte reaches the board with one bit flipped (seeded by
    ``seed``), to exercise a host's error handling. A ``read`` returns what the board has answered so
    far, at most ``size`` bytes: fewer than asked is what a real port does when its timeout expires.
    """

    def __init__(self, board: BoardModel, *, noise: float = 0.0, seed: int = 0):
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be a probability 0..1, not {noise!r}")
        self.board = board
        self.noise = noise
        self._rng = random.Random(seed)
        self._rx = bytearray()
        self.is_open = True

    def write(self, data: bytes) -> int:
        data = bytearray(data)
        if self.noise:
            for i in range(len(data)):
                if self._rng.random() < self.noise:
                    data[i] ^= 1 << self._rng.randrange(8)
        self._rx += self.board.feed(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def pause(self, seconds: float) -> None:
        """Keep the line quiet for ``seconds`` (longer than the frame timeout ends a partial frame)."""
        self._rx += self.board.idle()

    def reset_input_buffer(self) -> None:
        self._rx.clear()

    def close(self) -> None:
        self.is_open = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_emulator(url: str, model: Model | None) -> EmulatedPort:
    """An :class:`EmulatedPort` for ``emu://[?lanes=P&noise=p&seed=s&model=FILE&encoder=1]``.

    ``model`` is the model the board runs unless the URL names another file (to try a mismatch);
    ``encoder=1`` emulates a build with the on-chip encoder (``FRAME`` requests).
    """
    from qlif.golden.spec.cycles import check_lanes
    from qlif.golden.spec.model import load_model

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    unknown = set(query) - {"lanes", "noise", "seed", "model", "encoder"}
    if parts.netloc or parts.path or unknown:
        raise ValueError(f"emulator port must be emu://[?lanes=P&noise=p&seed=s&model=FILE&encoder=0|1], not {url!r}")

    def one(key, kind, default):
        if key not in query:
            return default
        try:
            return kind(query[key][-1])
        except ValueError:
            raise ValueError(f"{url}: {key} must be a {kind.__name__}, not {query[key][-1]!r}") from None

    try:
        lanes = check_lanes(one("lanes", int, 4))
    except ValueError as e:
        raise ValueError(f"{url}: {e}") from None
    if "model" in query:
        model = load_model(query["model"][-1])
    if model is None:
        raise ValueError(f"{url}: the emulated board needs a model")
    encoder = one("encoder", int, 0)
    if encoder not in (0, 1):
        raise ValueError(f"{url}: encoder must be 0 or 1, not {encoder!r}")
    try:
        board = BoardModel(model, lanes=lanes, encoder=bool(encoder))
    except ValueError as e:
        raise ValueError(f"{url}: {e}") from None
    return EmulatedPort(board, noise=one("noise", float, 0.0), seed=one("seed", int, 0))
