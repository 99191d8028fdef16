"""The host protocol, version 1 (docs/host-protocol.md): frames, CRC, commands, error codes, payloads.

Pure Python and sans-I/O: nothing here reads or writes a port. The RTL (:mod:`qlif.boards.link.host_link`,
:mod:`qlif.boards.link.frame_rx`, :mod:`qlif.boards.link.frame_tx`) takes its constants from here, the host driver
(:mod:`qlif.boards.host.driver`) and the software board (:mod:`qlif.boards.host.emulator`) their encoders and decoders,
so the two ends cannot drift apart.

Request (host to board) and reply (board to host)::

    request:  SYNC  CMD        SEQ          LEN  PAYLOAD[LEN]  CRC_HI CRC_LO
    reply:    SYNC  CMD|0x80   SEQ  STATUS  LEN  PAYLOAD[LEN]  CRC_HI CRC_LO

``SYNC`` = 0xA5; the CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, init 0xFFFF, no reflection, no final
XOR) over every byte after ``SYNC`` up to the end of the payload, sent most significant byte first, so
the CRC run over a whole frame after ``SYNC`` (CRC bytes included) ends at 0.
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "VERSION", "SYNC", "REPLY_FLAG", "MAX_PAYLOAD", "MAX_WORDS", "CRC_INIT", "CRC_POLY",
    "REQUEST_OVERHEAD", "REPLY_OVERHEAD", "UART_BITS_PER_BYTE", "DEFAULT_BAUD", "Cmd", "Err", "Flag", "COUNTERS",
    "STATUS_LEN", "RESULT_HEADER_LEN",
    "crc16", "crc16_byte", "encode_request", "encode_reply", "Reply", "ReplyDecoder", "Status",
    "BoardResult", "count_bytes", "mask_bytes", "result_len", "decode_status", "decode_result",
    "encode_wake_mask", "decode_wake_mask", "encode_addresses", "step_requests", "InferenceBytes", "inference_bytes",
    "frame_requests", "frame_inference_bytes", "model_id", "ProtocolError",
    "SPICmd", "SPIFlag", "SPI_STATUS_BYTES", "spi_result_bytes", "spi_write_frame", "spi_write_mask",
    "spi_read_status", "spi_read_result", "decode_spi_status", "decode_spi_result",
]

VERSION = 1                 #: protocol version, the first byte of the STATUS reply
SYNC = 0xA5                 #: first byte of every frame
REPLY_FLAG = 0x80           #: set in the CMD byte of a reply (a request never has it)
MAX_PAYLOAD = 255           #: LEN is one byte
MAX_WORDS = MAX_PAYLOAD // 2  #: input addresses per SPIKES or STEP frame (127)
CRC_INIT = 0xFFFF
CRC_POLY = 0x1021
REQUEST_OVERHEAD = 6        #: SYNC, CMD, SEQ, LEN, 2 CRC bytes
REPLY_OVERHEAD = 7          #: SYNC, CMD, SEQ, STATUS, LEN, 2 CRC bytes
UART_BITS_PER_BYTE = 10     #: line bits per byte: UART 8N1 is a start bit, 8 data bits and a stop bit
#: The link's line rate unless a build and its host both say otherwise: at 12 MHz 104.2 cycles per bit,
#: 0.16 % off, well inside a UART's tolerance.
DEFAULT_BAUD = 115_200


class ProtocolError(ValueError):
    """A payload that does not decode (wrong length for the command, or a reply that is not one)."""


class Cmd(enum.IntEnum):
    """Request commands (the CMD byte)."""

    STATUS = 0x01          #: read the status block (model sizes, flags, counters)
    RESET = 0x02           #: start a sample: zero membranes, spike counts, steps, cycles, wake
    SPIKES = 0x03          #: input addresses of the current step; the step stays open
    STEP = 0x04            #: input addresses of the current step, then end (run) the step
    RESULT = 0x05          #: read prediction, steps, cycles and the per-class spike counts
    SET_WAKE = 0x06        #: set the wake class mask
    GET_WAKE = 0x07        #: read the wake class mask
    CLEAR_COUNTERS = 0x08  #: zero the frame and error counters of the status block
    #: the next bytes of a frame (one intensity per input); the one that completes it runs a sample on
    #: the on-chip encoder and is answered with the RESULT payload (builds with the encoder only)
    FRAME = 0x09


class Err(enum.IntEnum):
    """Reply STATUS byte: 0 for success, else why the request was rejected (nothing was changed)."""

    OK = 0
    BAD_CRC = 1            #: the CRC did not match (the header may be garbage too)
    TIMEOUT = 2            #: the frame stopped before its end (inter-byte timeout): truncated
    UNKNOWN_CMD = 3        #: CMD is not a command of this version
    BAD_LENGTH = 4         #: LEN is not allowed for CMD
    BAD_ADDRESS = 5        #: an input address >= n_in
    BAD_ORDER = 6          #: addresses of a step not strictly ascending (also across SPIKES frames)
    BAD_ARG = 7            #: a wake mask with bits at classes >= n_out, or a frame value above the levels

    @property
    def description(self) -> str:
        return _ERR_TEXT[self]


_ERR_TEXT = {
    Err.OK: "success",
    Err.BAD_CRC: "frame checksum wrong",
    Err.TIMEOUT: "frame truncated (inter-byte timeout)",
    Err.UNKNOWN_CMD: "unknown command",
    Err.BAD_LENGTH: "payload length not allowed for the command",
    Err.BAD_ADDRESS: "input address >= n_in",
    Err.BAD_ORDER: "input addresses not strictly ascending",
    Err.BAD_ARG: "wake mask names a class >= n_out, or a frame value is above the frame levels",
}


class Flag(enum.IntFlag):
    """The flags byte of the STATUS and RESULT replies."""

    STEP_OPEN = 0x01       #: SPIKES sent addresses of a step that no STEP has ended yet
    DONE = 0x02            #: at least T steps since the last RESET: the prediction is final
    WAKE = 0x04            #: the wake output is high (DONE and the prediction is in the wake mask)
    FAULT = 0x08           #: a request was rejected since the last RESET (the fault output)
    CORE_ERROR = 0x10      #: the core dropped an input token (never happens: the link checks them first)
    FRAME_OPEN = 0x20      #: FRAME sent bytes of a frame that is not complete yet
    ENCODER = 0x40         #: the build has the on-chip encoder: it takes FRAME requests


#: Counters of the STATUS reply, in order, 16 bits each. ``frames_ok`` wraps around; the others saturate
#: at 0xFFFF. ``junk``: bytes dropped while looking for SYNC; ``uart_frame``: bytes with a bad stop bit
#: (wrong baud rate, noise, break); ``uart_overrun``: bytes lost because the receive buffer was full.
COUNTERS = ("frames_ok", "bad_crc", "timeout", "unknown_cmd", "bad_length", "bad_address", "bad_order",
            "bad_arg", "junk", "uart_frame", "uart_overrun")
#: The error counter of each error code.
ERR_COUNTER = {Err.BAD_CRC: "bad_crc", Err.TIMEOUT: "timeout", Err.UNKNOWN_CMD: "unknown_cmd",
               Err.BAD_LENGTH: "bad_length", Err.BAD_ADDRESS: "bad_address", Err.BAD_ORDER: "bad_order",
               Err.BAD_ARG: "bad_arg"}

# STATUS payload: version, flags, model id (4), n_in (2), n_out (2), timesteps (2), lanes, rx buffer (2),
# clock cycles per UART bit (2), then the counters (2 each). All multi-byte fields big-endian.
_STATUS_FIXED = ">BBIHHHBHH"
STATUS_LEN = struct.calcsize(_STATUS_FIXED) + 2 * len(COUNTERS)
#: RESULT payload before the counts: flags, prediction, steps (2), cycles (4).
RESULT_HEADER_LEN = 8


def crc16_byte(crc: int, byte: int) -> int:
    """One byte into CRC-16/CCITT-FALSE (MSB first); the RTL's :func:`qlif.boards.link.crc.crc16_next`."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def crc16(data: bytes | Iterable[int], crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for byte in data:
        crc = crc16_byte(crc, byte)
    return crc


def _check_byte(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be a byte 0..255, not {value!r}")


def _check_payload(payload: bytes) -> bytes:
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload must be at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    return payload


def encode_request(cmd: int, seq: int, payload: bytes = b"") -> bytes:
    """A request frame: ``SYNC CMD SEQ LEN PAYLOAD CRC``. Any CMD byte is allowed (the fuzzer sends bad ones)."""
    _check_byte("cmd", cmd)
    _check_byte("seq", seq)
    payload = _check_payload(payload)
    body = bytes([cmd, seq, len(payload)]) + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


def encode_reply(cmd: int, seq: int, status: int, payload: bytes = b"") -> bytes:
    """A reply frame: ``SYNC CMD|0x80 SEQ STATUS LEN PAYLOAD CRC`` (the board's side; for the emulator)."""
    _check_byte("cmd", cmd)
    _check_byte("seq", seq)
    _check_byte("status", status)
    payload = _check_payload(payload)
    body = bytes([cmd | REPLY_FLAG, seq, status, len(payload)]) + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


@dataclass(frozen=True)
class Reply:
    """A decoded reply frame. ``cmd`` is the request's command (the reply flag removed)."""

    cmd: int
    seq: int
    status: int
    payload: bytes

    @property
    def ok(self) -> bool:
        return self.status == Err.OK

    def describe(self) -> str:
        """``"BAD_CRC (frame checksum wrong)"``, or the raw code when it is not one of :class:`Err`."""
        try:
            err = Err(self.status)
        except ValueError:
            return f"status 0x{self.status:02X} (unknown to protocol version {VERSION})"
        return f"{err.name} ({err.description})"


class ReplyDecoder:
    """Turns the bytes from the board into :class:`Reply` objects (sans-I/O).

    Bytes before a ``SYNC``, and frames whose CRC is wrong or whose CMD lacks the reply flag, are
    skipped; :attr:`skipped` counts the bytes dropped that way. A bad frame is dropped one byte at a time
    (the search restarts after its ``SYNC``), so a real reply right behind garbage is still found.
    """

    def __init__(self):
        self._buf = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[Reply]:
        self._buf += data
        out = []
        while True:
            start = self._buf.find(SYNC)
            if start < 0:
                self.skipped += len(self._buf)
                self._buf.clear()
                return out
            if start:
                self.skipped += start
                del self._buf[:start]
            if len(self._buf) < 5:
                return out
            size = REPLY_OVERHEAD + self._buf[4]
            if len(self._buf) < size:
                return out
            frame = bytes(self._buf[:size])
            if crc16(frame[1:]) != 0 or not frame[1] & REPLY_FLAG:
                self.skipped += 1
                del self._buf[:1]
                continue
            del self._buf[:size]
            out.append(Reply(cmd=frame[1] & ~REPLY_FLAG, seq=frame[2], status=frame[3], payload=frame[5:-2]))

    def need(self) -> int:
        """How many more bytes complete the frame being received (at least 1 while none is pending)."""
        start = self._buf.find(SYNC)
        if start < 0:
            return 5
        have = len(self._buf) - start
        if have < 5:
            return 5 - have
        return max(1, REPLY_OVERHEAD + self._buf[start + 4] - have)


def count_bytes(timesteps: int) -> int:
    """Bytes per class count in the RESULT reply: 1 when ``T`` fits a byte, else 2 (big-endian)."""
    return 1 if timesteps <= 0xFF else 2


def mask_bytes(n_out: int) -> int:
    """Bytes of a wake mask: one bit per class."""
    return -(-n_out // 8)


def result_len(n_out: int, timesteps: int) -> int:
    """Payload bytes of the RESULT reply."""
    return RESULT_HEADER_LEN + n_out * count_bytes(timesteps)


@dataclass(frozen=True)
class Status:
    """The STATUS reply."""

    version: int
    flags: Flag
    model_id: int
    n_in: int
    n_out: int
    timesteps: int
    lanes: int
    rx_buffer: int       #: bytes the board buffers: the most a host may send ahead of the replies
    divisor: int         #: clock cycles per UART bit
    counters: dict[str, int]

    def encode(self) -> bytes:
        fixed = struct.pack(_STATUS_FIXED, self.version, int(self.flags), self.model_id, self.n_in, self.n_out,
                            self.timesteps, self.lanes, self.rx_buffer, self.divisor)
        return fixed + b"".join(self.counters[name].to_bytes(2, "big") for name in COUNTERS)


def decode_status(payload: bytes) -> Status:
    if len(payload) != STATUS_LEN:
        raise ProtocolError(f"STATUS reply must carry {STATUS_LEN} bytes, not {len(payload)}")
    if payload[0] != VERSION:
        raise ProtocolError(f"the board speaks protocol version {payload[0]}, this host version {VERSION}")
    version, flags, mid, n_in, n_out, timesteps, lanes, rx_buffer, divisor = struct.unpack_from(_STATUS_FIXED, payload)
    base = struct.calcsize(_STATUS_FIXED)
    counters = {name: int.from_bytes(payload[base + 2 * i: base + 2 * i + 2], "big") for i, name in enumerate(COUNTERS)}
    return Status(version=version, flags=Flag(flags), model_id=mid, n_in=n_in, n_out=n_out, timesteps=timesteps,
                  lanes=lanes, rx_buffer=rx_buffer, divisor=divisor, counters=counters)


@dataclass(frozen=True)
class BoardResult:
    """The RESULT reply: the state of the current sample."""

    flags: Flag
    prediction: int
    steps: int           #: steps run since the last RESET (saturates at 0xFFFF)
    cycles: int          #: core clock cycles of those steps (sum of step_cycles, wraps at 2^32)
    counts: np.ndarray   #: output spikes per class since the last RESET (int64 [n_out], saturating)

    def encode(self, timesteps: int) -> bytes:
        cb = count_bytes(timesteps)
        head = (bytes([int(self.flags), self.prediction]) + self.steps.to_bytes(2, "big")
                + self.cycles.to_bytes(4, "big"))
        return head + b"".join(int(c).to_bytes(cb, "big") for c in self.counts)


def decode_result(payload: bytes, *, n_out: int, timesteps: int) -> BoardResult:
    if len(payload) != result_len(n_out, timesteps):
        raise ProtocolError(f"RESULT reply must carry {result_len(n_out, timesteps)} bytes for {n_out} classes, "
                            f"not {len(payload)}")
    cb = count_bytes(timesteps)
    counts = np.frombuffer(payload[RESULT_HEADER_LEN:], dtype=">u1" if cb == 1 else ">u2").astype(np.int64)
    return BoardResult(flags=Flag(payload[0]), prediction=payload[1], steps=int.from_bytes(payload[2:4], "big"),
                       cycles=int.from_bytes(payload[4:8], "big"), counts=counts)


def encode_wake_mask(classes: Iterable[int], n_out: int) -> bytes:
    """The SET_WAKE payload: byte ``i`` bit ``b`` is class ``8*i + b``."""
    mask = 0
    for c in classes:
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or not 0 <= c < n_out:
            raise ValueError(f"wake classes must be 0..{n_out - 1}, not {c!r}")
        mask |= 1 << int(c)
    return mask.to_bytes(mask_bytes(n_out), "little")


def decode_wake_mask(payload: bytes) -> frozenset[int]:
    mask = int.from_bytes(payload, "little")
    return frozenset(i for i in range(8 * len(payload)) if mask >> i & 1)


def encode_addresses(addresses: Iterable[int]) -> bytes:
    """Input addresses as the SPIKES/STEP payload: 16 bits each, big-endian."""
    return b"".join(int(a).to_bytes(2, "big") for a in addresses)


def step_requests(addresses: Iterable[int]) -> Iterator[tuple[Cmd, bytes]]:
    """The requests of one timestep: ``SPIKES`` frames of :data:`MAX_WORDS` addresses while more remain,
    then one ``STEP`` with the rest (possibly none)."""
    addresses = [int(a) for a in addresses]
    while len(addresses) > MAX_WORDS:
        yield Cmd.SPIKES, encode_addresses(addresses[:MAX_WORDS])
        addresses = addresses[MAX_WORDS:]
    yield Cmd.STEP, encode_addresses(addresses)


def frame_requests(frame: Iterable[int]) -> Iterator[tuple[Cmd, bytes]]:
    """The ``FRAME`` requests of one frame (``n_in`` intensities, input 0 first): chunks of
    :data:`MAX_PAYLOAD` bytes while more remain, then the rest; the board runs the sample on the last."""
    data = bytes(int(v) for v in frame)       # bytes() refuses a value outside 0..255
    if not data:
        raise ValueError("a frame must have at least one input")
    for i in range(0, len(data), MAX_PAYLOAD):
        yield Cmd.FRAME, data[i:i + MAX_PAYLOAD]


class InferenceBytes(NamedTuple):
    """UART bytes of one inference, each way (see :func:`inference_bytes`)."""

    to_board: int        #: request bytes, host to board
    from_board: int      #: reply bytes, board to host


def inference_bytes(inputs_per_step: Iterable[int], *, n_out: int) -> InferenceBytes:
    """The bytes on the line of one inference as the host driver sends and receives them.

    :meth:`qlif.boards.host.driver.Board.classify` sends, per sample, a RESET, for each timestep the
    frames of :func:`step_requests` (SPIKES frames of :data:`MAX_WORDS` addresses while more remain, then
    a STEP with the rest), and a RESULT; the board answers every request with one reply, the RESULT's
    carrying :func:`result_len` bytes.

    Parameters
    ----------
    inputs_per_step : iterable of int
        The active inputs (input spikes) of each timestep; its length is T.
    n_out : int
        Classes of the model (one count each in the RESULT reply).

    Returns
    -------
    InferenceBytes
        ``to_board`` (requests) and ``from_board`` (replies), in bytes.
    """
    active = [int(n) for n in inputs_per_step]
    if any(n < 0 for n in active):
        raise ValueError(f"inputs_per_step must be non-negative counts, not {active}")
    step_frames = sum(max(1, -(-n // MAX_WORDS)) for n in active)
    frames = 2 + step_frames                                       # + RESET and RESULT
    return InferenceBytes(to_board=frames * REQUEST_OVERHEAD + 2 * sum(active),
                          from_board=frames * REPLY_OVERHEAD + result_len(n_out, len(active)))


def frame_inference_bytes(n_in: int, *, n_out: int, timesteps: int) -> InferenceBytes:
    """The bytes on the line of one inference over the frame path (:meth:`~qlif.boards.host.driver.Board.
    classify_frames`): the :func:`frame_requests` of an ``n_in``-byte frame, and their replies, the last
    one carrying the RESULT payload (:func:`result_len`). No RESET: the last chunk starts the sample."""
    if not isinstance(n_in, int) or n_in < 1:
        raise ValueError(f"n_in must be a positive integer, not {n_in!r}")
    frames = -(-n_in // MAX_PAYLOAD)
    return InferenceBytes(to_board=frames * REQUEST_OVERHEAD + n_in,
                          from_board=frames * REPLY_OVERHEAD + result_len(n_out, timesteps))


def model_id(model) -> int:
    """32-bit fingerprint of a model (weights, widths, thresholds, T; not its metadata).

    Baked into the bitstream and reported by STATUS, so a host can tell that the board runs the model
    file it was given: the first 4 bytes of the SHA-256 of the model's canonical JSON.
    """
    doc = model.to_json()
    doc.pop("metadata", None)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


# -- the SPI frame path (docs/host-protocol.md, "SPI frame path") -------------------------------------------
# The wake-up build's SPI target (:mod:`qlif.boards.link.spi_target`): mode 0, MSB first, CS active low; one
# transaction from CS low to CS high, its first byte the command. The target answers a byte late: the MISO
# byte ``k + 1`` of a read is the answer's byte ``k`` (the first MISO byte is 0).


class SPICmd(enum.IntEnum):
    """The first byte of an SPI transaction; the bytes after it depend on it."""

    WRITE_FRAME = 0x01     #: ``n_in`` bytes follow, one intensity per input, input 0 first
    READ_STATUS = 0x02     #: the target answers :data:`SPI_STATUS_BYTES` bytes
    READ_RESULT = 0x03     #: the target answers :func:`spi_result_bytes` bytes
    WRITE_MASK = 0x04      #: ``mask_bytes(n_out)`` bytes of wake mask follow (byte ``i`` bit ``b``: class 8i + b)


class SPIFlag(enum.IntFlag):
    """The first byte of the READ_STATUS answer."""

    BUSY = 0x01            #: a committed frame is being inferred, or the core's clock is still being turned off
    DONE = 0x02            #: not busy, and a frame has been inferred: the result is the last frame's
    WAKE = 0x04            #: the wake pin is high (DONE and the prediction is in the wake mask)
    REFUSED = 0x08         #: a WRITE_FRAME or WRITE_MASK was refused (busy) since a READ_STATUS last sent it
    CORE_ERROR = 0x10      #: the core dropped an input token (never happens: the encoder's are in order)


#: Bytes of the READ_STATUS answer: flags, prediction, frames accepted (mod 256).
SPI_STATUS_BYTES = 3


def spi_result_bytes(n_out: int, timesteps: int) -> int:
    """Bytes of the READ_RESULT answer: the prediction, then each class's count (``count_bytes(T)`` each,
    most significant byte first)."""
    return 1 + n_out * count_bytes(timesteps)


def spi_write_frame(frame: Iterable[int]) -> bytes:
    """The MOSI bytes of a WRITE_FRAME transaction (``frame``: ``n_in`` intensities 0..255)."""
    values = [int(v) for v in frame]
    if any(not 0 <= v <= 0xFF for v in values):
        raise ValueError("frame intensities must be 0..255")
    return bytes([SPICmd.WRITE_FRAME, *values])


def spi_write_mask(classes: Iterable[int], n_out: int) -> bytes:
    """The MOSI bytes of a WRITE_MASK transaction."""
    return bytes([SPICmd.WRITE_MASK]) + encode_wake_mask(classes, n_out)


def spi_read_status() -> bytes:
    """The MOSI bytes of a READ_STATUS transaction (the command, then dummy bytes to clock the answer)."""
    return bytes([SPICmd.READ_STATUS]) + bytes(SPI_STATUS_BYTES)


def spi_read_result(n_out: int, timesteps: int) -> bytes:
    """The MOSI bytes of a READ_RESULT transaction."""
    return bytes([SPICmd.READ_RESULT]) + bytes(spi_result_bytes(n_out, timesteps))


def decode_spi_status(miso: bytes) -> tuple[SPIFlag, int, int]:
    """(flags, prediction, frames accepted mod 256) from the MISO bytes of a READ_STATUS transaction."""
    if len(miso) != 1 + SPI_STATUS_BYTES:
        raise ProtocolError(f"a READ_STATUS transaction has {1 + SPI_STATUS_BYTES} bytes, not {len(miso)}")
    return SPIFlag(miso[1]), miso[2], miso[3]


def decode_spi_result(miso: bytes, *, n_out: int, timesteps: int) -> tuple[int, list[int]]:
    """(prediction, counts) from the MISO bytes of a READ_RESULT transaction."""
    n = 1 + spi_result_bytes(n_out, timesteps)
    if len(miso) != n:
        raise ProtocolError(f"a READ_RESULT transaction has {n} bytes, not {len(miso)}")
    cb = count_bytes(timesteps)
    counts = [int.from_bytes(miso[2 + cb * i: 2 + cb * (i + 1)], "big") for i in range(n_out)]
    return miso[1], counts
