"""The host driver of the qlif board protocol (docs/host-protocol.md): classify stimuli on a board.

:class:`Board` speaks the protocol over any object with ``write(bytes)`` and ``read(n) -> bytes`` (a
``read`` that returns fewer bytes than asked has timed out), and optionally ``pause(seconds)`` (keep
the line quiet; default ``time.sleep``). That is a ``pyserial`` port (:func:`open_board`), the software
board of :mod:`qlif.boards.host.emulator`, and, in the cocotb tests, a UART model on the pins of the RTL:
the driver runs unchanged in a cocotb ``bridge`` thread whose port calls block on simulated time
(:mod:`qlif.sim.uart_model`). So the code the tests prove is the code that runs against a board.

Frames are encoded and replies decoded by the sans-I/O :mod:`qlif.boards.protocol`; this module adds
sequence numbers, the send window (never more bytes ahead of the replies than the board buffers, so
back-to-back frames lose no byte whatever the core's speed), error replies as exceptions, and the
recovery after a line error (resynchronise, then send the sample again: RESET makes a sample idempotent).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qlif.boards.protocol import (
    DEFAULT_BAUD,
    MAX_PAYLOAD,
    REQUEST_OVERHEAD,
    BoardResult,
    Cmd,
    Err,
    Flag,
    ProtocolError,
    Reply,
    ReplyDecoder,
    Status,
    decode_result,
    decode_status,
    decode_wake_mask,
    encode_request,
    encode_wake_mask,
    frame_requests,
    model_id,
    step_requests,
)
from qlif.golden.spec.coding import check_frames, frame_levels_of

__all__ = ["Port", "LinkError", "BoardTimeout", "ErrorReply", "ModelMismatch", "NoEncoder", "Board",
           "Classification", "open_board", "DEFAULT_TIMEOUT"]

#: Seconds a read may wait for the board.
DEFAULT_TIMEOUT = 2.0
#: Line errors: a request hit by noise is rejected with one of these, and sending it again helps.
TRANSIENT = frozenset({Err.BAD_CRC, Err.TIMEOUT})


class Port(Protocol):
    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int, /) -> bytes: ...


class LinkError(RuntimeError):
    """The link failed: base of the errors below. ``transient``: a line error, worth a retry."""

    transient = True


class BoardTimeout(LinkError, TimeoutError):
    """A read brought no reply within the port's timeout."""


class ErrorReply(LinkError):
    """The board rejected a request; ``reply.status`` says why (an :class:`~.protocol.Err`)."""

    def __init__(self, request: Cmd, reply: Reply):
        self.request = request
        self.reply = reply
        self.transient = reply.status in TRANSIENT
        super().__init__(f"the board rejected {request.name} (seq {reply.seq}): {reply.describe()}")


class ModelMismatch(LinkError):
    """The board runs another model than the host was given."""

    transient = False


class NoEncoder(LinkError):
    """The board's build has no on-chip encoder: it takes spikes per step (:meth:`Board.classify`), not
    frames."""

    transient = False


@dataclass
class _Pending:
    seq: int
    cmd: Cmd
    size: int
    tag: object


@dataclass
class Classification:
    """What :meth:`Board.classify` read back, one entry per sample."""

    prediction: np.ndarray   #: int64 [S]
    counts: np.ndarray       #: int64 [S, n_out], output spikes per class
    cycles: np.ndarray       #: int64 [S], core clock cycles of the sample (sum of its steps)
    wake: np.ndarray         #: bool [S], the wake output after the sample
    retries: int             #: samples sent again after a line error

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        return {"prediction": self.prediction, "counts": self.counts, "cycles": self.cycles, "wake": self.wake}


class Board:
    """A qlif board behind a port.

    Parameters
    ----------
    port : Port
        The byte channel.
    retries : int
        How often :meth:`classify` sends a sample again after a line error (checksum, truncation, a lost
        or stray reply, a timeout) before it gives up.
    frame_timeout : float
        Seconds of line silence after which the board drops a partial frame (its ``frame_timeout``, or
        longer); the driver pauses this long before resynchronising.
    window : int or None
        Bytes the driver may send ahead of the replies. ``None``: one frame until :meth:`connect` has read
        the board's receive buffer size, then that size.
    """

    def __init__(self, port: Port, *, retries: int = 3, frame_timeout: float = 0.02, window: int | None = None):
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, not {retries!r}")
        self.port = port
        self.retries = retries
        self.frame_timeout = frame_timeout
        self._window = window
        self._fixed_window = window is not None
        self._decoder = ReplyDecoder()
        self._replies: deque[Reply] = deque()
        self._inflight: deque[_Pending] = deque()
        self._seq = 0
        self.status_cache: Status | None = None
        #: The frame levels ``L`` of the model given to :meth:`connect` (``None``: not known; STATUS does
        #: not carry them): :meth:`classify_frames` refuses values above them before sending anything.
        self.levels: int | None = None

    # -- frames ---------------------------------------------------------------------------------------

    @property
    def window(self) -> int:
        return self._window or REQUEST_OVERHEAD + MAX_PAYLOAD

    def _pause(self, seconds: float) -> None:
        pause = getattr(self.port, "pause", None)
        (pause or time.sleep)(seconds)

    def _frame(self, cmd: Cmd, payload: bytes, tag) -> bytes:
        frame = encode_request(cmd, self._seq, payload)
        self._inflight.append(_Pending(self._seq, cmd, len(frame), tag))
        self._seq = (self._seq + 1) & 0xFF
        return frame

    def _next_reply(self) -> Reply:
        while not self._replies:
            want = self._decoder.need()
            data = self.port.read(want)
            if not data:
                junk = self._decoder.skipped
                hint = (f"; {junk} bytes came that are no qlif reply (wrong baud rate, or not a qlif bitstream?)"
                        if junk else "")
                raise BoardTimeout(f"no reply from the board ({len(self._inflight)} request(s) unanswered{hint})")
            self._replies.extend(self._decoder.feed(data))
        return self._replies.popleft()

    def _receive(self) -> tuple[_Pending, Reply]:
        """The reply to the oldest request in flight, checked against it (seq, command, status)."""
        reply = self._next_reply()
        head = self._inflight[0]
        if reply.seq != head.seq or reply.cmd != head.cmd:
            raise LinkError(f"expected the reply to {head.cmd.name} seq {head.seq}, got one to command "
                            f"0x{reply.cmd:02X} seq {reply.seq} (a request or reply was lost on the line)")
        self._inflight.popleft()
        if not reply.ok:
            raise ErrorReply(head.cmd, reply)
        return head, reply

    def pipeline(self, requests: Iterable[tuple[Cmd, bytes, object]]) -> Iterator[tuple[object, Reply]]:
        """Send ``(cmd, payload, tag)`` requests back to back, at most :attr:`window` bytes ahead of the
        replies; yield ``(tag, reply)`` in order. Raises :class:`ErrorReply` for a rejected request."""
        todo = iter(requests)
        nxt = next(todo, None)
        while nxt is not None or self._inflight:
            burst = bytearray()
            used = sum(p.size for p in self._inflight)
            while nxt is not None:
                size = REQUEST_OVERHEAD + len(nxt[1])
                if self._inflight and used + size > self.window:
                    break
                burst += self._frame(*nxt)
                used += size
                nxt = next(todo, None)
            if burst:
                self.port.write(bytes(burst))
            pending, reply = self._receive()
            yield pending.tag, reply

    def request(self, cmd: Cmd, payload: bytes = b"") -> Reply:
        """Send one request and return its (good) reply."""
        for _, reply in self.pipeline([(cmd, payload, None)]):
            return reply
        raise AssertionError("unreachable")

    def resync(self) -> Status:
        """Recover from a line error: let a partial frame time out, then STATUS until its reply comes.

        Replies to older requests still on their way are skipped by sequence number.
        """
        last: Exception | None = None
        for _ in range(self.retries + 1):
            self._pause(2 * self.frame_timeout)
            self._inflight.clear()
            self._replies.clear()
            self._decoder = ReplyDecoder()
            self.port.write(self._frame(Cmd.STATUS, b"", None))
            sync = self._inflight[0]
            try:
                reply = self._next_reply()
                while (reply.seq, reply.cmd) != (sync.seq, Cmd.STATUS):   # older replies still coming
                    reply = self._next_reply()
                self._inflight.clear()
                if reply.ok:
                    return decode_status(reply.payload)
                last = ErrorReply(Cmd.STATUS, reply)
            except (LinkError, ProtocolError) as e:
                last = e
        error = BoardTimeout if isinstance(last, BoardTimeout) else LinkError
        raise error(f"the board did not answer STATUS in {self.retries + 1} attempts: {last}")

    # -- commands -------------------------------------------------------------------------------------

    def status(self) -> Status:
        self.status_cache = decode_status(self.request(Cmd.STATUS).payload)
        return self.status_cache

    def connect(self, model=None) -> Status:
        """Resynchronise, read the status, size the window; with ``model``, check that the board runs it."""
        self.resync()
        status = self.status()
        if not self._fixed_window:
            self._window = status.rx_buffer
        if model is not None:
            theirs = f"{status.n_in}-...-{status.n_out}, T={status.timesteps}, id {status.model_id:08X}"
            ours = f"{model.n_in}-...-{model.n_out}, T={model.timesteps}, id {model_id(model):08X}"
            if (status.n_in, status.n_out, status.timesteps, status.model_id) != (
                    model.n_in, model.n_out, model.timesteps, model_id(model)):
                raise ModelMismatch(f"the board runs another model ({theirs}) than the model file ({ours})")
            try:
                self.levels = frame_levels_of(model.metadata)
            except ValueError:        # a model without frame levels: no encoder build can run it
                self.levels = None
        return status

    def _sizes(self) -> Status:
        return self.status_cache if self.status_cache is not None else self.status()

    def reset(self) -> None:
        self.request(Cmd.RESET)

    def step(self, addresses: Iterable[int] = ()) -> None:
        """Run one timestep with these input addresses (ascending)."""
        for _ in self.pipeline((cmd, payload, None) for cmd, payload in step_requests(addresses)):
            pass

    def result(self) -> BoardResult:
        st = self._sizes()
        return decode_result(self.request(Cmd.RESULT).payload, n_out=st.n_out, timesteps=st.timesteps)

    def set_wake(self, classes: Iterable[int]) -> None:
        self.request(Cmd.SET_WAKE, encode_wake_mask(classes, self._sizes().n_out))

    def get_wake(self) -> frozenset[int]:
        return decode_wake_mask(self.request(Cmd.GET_WAKE).payload)

    def clear_counters(self) -> None:
        self.request(Cmd.CLEAR_COUNTERS)

    # -- classification --------------------------------------------------------------------------------

    def classify(self, x: np.ndarray, *, progress: Callable[[int], None] | None = None) -> Classification:
        """Classify stimuli ``x`` (0/1, [S, T, n_in]): per sample RESET, T steps, RESULT, all pipelined.

        ``progress(n)`` is called as each sample's result arrives. A sample hit by a line error is sent
        again after :meth:`resync` (up to :attr:`retries` times); a request the board rejects for any other
        reason raises :class:`ErrorReply`.
        """
        st = self._sizes()
        x = np.asarray(x)
        if x.ndim != 3 or x.dtype.kind not in "biu" or (x.size and (x.min() < 0 or x.max() > 1)):
            raise ValueError(f"x must be a 0/1 integer array [samples, timesteps, n_in], not {x.dtype} {x.shape}")
        if x.shape[1:] != (st.timesteps, st.n_in):
            raise ValueError(f"x must be [samples, {st.timesteps}, {st.n_in}] for the board's model, not {x.shape}")
        return self._run(len(x), lambda start: self._sample_requests(x, start), progress)

    def _run(self, n: int, requests: Callable[[int], Iterable[tuple[Cmd, bytes, object]]],
             progress: Callable[[int], None] | None) -> Classification:
        """Pipeline ``requests(start)`` (the requests of samples ``start ..``, RESULT payloads tagged with
        their sample) and collect the results; after a line error, resync and go on from the failed sample."""
        st = self._sizes()
        out = Classification(prediction=np.zeros(n, np.int64), counts=np.zeros((n, st.n_out), np.int64),
                             cycles=np.zeros(n, np.int64), wake=np.zeros(n, bool), retries=0)
        start, failures = 0, 0
        while start < n:
            try:
                for s, reply in self.pipeline(requests(start)):
                    if s is None:
                        continue
                    res = decode_result(reply.payload, n_out=st.n_out, timesteps=st.timesteps)
                    out.prediction[s], out.counts[s], out.cycles[s] = res.prediction, res.counts, res.cycles
                    out.wake[s] = Flag.WAKE in res.flags
                    if res.steps != st.timesteps:
                        raise LinkError(f"sample {s}: the board ran {res.steps} steps, not {st.timesteps}")
                    start, failures = s + 1, 0
                    if progress:
                        progress(start)
            except (LinkError, ProtocolError) as e:
                if not getattr(e, "transient", True) or failures >= self.retries:
                    raise LinkError(f"sample {start}: {e}") from e
                failures += 1
                out.retries += 1
                self.resync()
        return out

    def classify_frames(self, frames: np.ndarray, *, levels: int | None = None,
                        progress: Callable[[int], None] | None = None) -> Classification:
        """Classify frames (integers ``0 ..`` the model's frame levels, [S, n_in]) on a board with the
        on-chip encoder: per sample its ``FRAME`` requests (:func:`~qlif.boards.protocol.frame_requests`),
        the last answered with the result, all pipelined; a ``RESET`` first, and again after a resync, so
        that no partial frame from before is completed by this run's bytes.

        ``levels``: the frame levels ``L`` (default :attr:`levels`, those of the model given to
        :meth:`connect`); a value above them is a ``ValueError`` naming the sample and the input, and
        nothing is sent. With no levels known, values up to 255 go out and the board answers one above
        its levels with :class:`ErrorReply` (``BAD_ARG``). Recovery and errors as :meth:`classify`; a
        board without the encoder raises :class:`NoEncoder`.
        """
        st = self._sizes()
        if Flag.ENCODER not in st.flags:
            raise NoEncoder("the board has no on-chip encoder (a build with HostLink(encoder=True) takes frames; "
                            "this one takes spikes per step: classify)")
        f = np.asarray(frames)
        if f.ndim != 2 or f.dtype.kind not in "iu":
            raise ValueError(f"frames must be an integer array [samples, n_in], not {f.dtype} {f.shape}")
        if f.shape[1] != st.n_in:
            raise ValueError(f"frames must be [samples, {st.n_in}] for the board's model, not {f.shape}")
        levels = self.levels if levels is None else levels
        f = check_frames(f, st.n_in, 0xFF if levels is None else levels)    # names the sample and input
        return self._run(len(f), lambda start: self._frame_sample_requests(f, start), progress)

    @staticmethod
    def _frame_sample_requests(frames: np.ndarray, start: int) -> Iterator[tuple[Cmd, bytes, object]]:
        """A RESET, then the FRAME requests from sample ``start`` on; the last of each carries its index."""
        yield Cmd.RESET, b"", None
        for s in range(start, len(frames)):
            chunks = list(frame_requests(frames[s]))
            for i, (cmd, payload) in enumerate(chunks):
                yield cmd, payload, s if i == len(chunks) - 1 else None

    @staticmethod
    def _sample_requests(x: np.ndarray, start: int) -> Iterator[tuple[Cmd, bytes, object]]:
        """All requests from sample ``start`` on; only RESULT replies carry a tag (the sample index)."""
        for s in range(start, len(x)):
            yield Cmd.RESET, b"", None
            for step in x[s]:
                for cmd, payload in step_requests(np.flatnonzero(step)):
                    yield cmd, payload, None
            yield Cmd.RESULT, b"", s


def open_board(device: str, *, baud: int = DEFAULT_BAUD, timeout: float = DEFAULT_TIMEOUT, model=None):
    """Open the board's serial port: a device (``/dev/ttyUSB1``, ``COM5``), a pyserial URL (``loop://``,
    ``socket://host:port``), or ``emu://`` for the software board of :mod:`qlif.boards.host.emulator` running
    ``model``. ``timeout`` bounds each read, in seconds.
    """
    from qlif.boards.host.emulator import EMULATOR_SCHEME, open_emulator

    if device.startswith(EMULATOR_SCHEME):
        return open_emulator(device, model)
    import serial  # pyserial: only needed with a board attached

    return serial.serial_for_url(device, baudrate=baud, timeout=timeout)
