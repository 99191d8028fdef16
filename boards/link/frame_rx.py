"""Request frame receiver of the host link: bytes in, checked frames out (docs/host-protocol.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qlif.boards.link.crc import crc16_next
from qlif.boards.protocol import CRC_INIT, MAX_PAYLOAD, MAX_WORDS, SYNC, Cmd, Err, mask_bytes
from qlif.golden.spec.coding import FRAME_LEVELS

__all__ = ["FrameInfo", "LastAddress", "FrameReceiver"]

#: A received frame: its header as received and the verdict (an :class:`~.protocol.Err` code).
FrameInfo = data.StructLayout({
    "cmd": 8,
    "seq": 8,
    "length": 8,
    "error": 3,
})

#: The last input address of the open timestep (``valid``: the step has one), for the order check.
LastAddress = data.StructLayout({"valid": 1, "addr": 16})


class FrameReceiver(wiring.Component):
    """Finds, checks and buffers request frames: ``SYNC CMD SEQ LEN PAYLOAD CRC16``.

    Bytes other than ``SYNC`` between frames are dropped (a ``junk`` pulse each). A frame ends after its
    two CRC bytes, or early when no byte arrives for ``timeout`` cycles while one is open (``TIMEOUT``:
    truncated). Every frame, good or bad, is then presented on ``frame`` with its verdict, checked in
    this order: the CRC (``BAD_CRC``), the command (``UNKNOWN_CMD``), the length for the command
    (``BAD_LENGTH``), then for ``SPIKES``/``STEP`` the addresses (``BAD_ADDRESS``: ``>= n_in``;
    ``BAD_ORDER``: not strictly ascending, starting from ``last``) and for ``SET_WAKE`` the mask
    (``BAD_ARG``: a bit at a class ``>= n_out``). With ``levels`` (a build with the on-chip encoder),
    ``FRAME`` is a command too: its length must be 1 .. ``room`` (``BAD_LENGTH``), each byte at most
    ``levels`` (``BAD_ARG``). The payload is checked while it arrives and kept in a
    buffer: nothing leaves the receiver before the whole frame has passed, so a bad frame has no effect
    but its verdict.

    Parameters
    ----------
    n_in : int
        Input addresses ``0 .. n_in - 1`` are valid (1..65535).
    n_out : int
        Classes: the wake mask has ``ceil(n_out / 8)`` bytes.
    timeout : int
        Clock cycles without a byte after which an open frame is dropped as truncated.
    levels : int or None
        ``None`` (default): ``FRAME`` is an unknown command. Else the frame levels ``L`` of the on-chip
        encoder (:data:`~qlif.golden.spec.coding.FRAME_LEVELS`): ``FRAME`` is accepted, its bytes
        ``0 .. L``.

    Members
    -------
    bytes : In(stream.Signature(8))
        From the receive FIFO into an input register. Taken one per cycle, except while a frame is
        presented (then one more byte waits in the register).
    frame : Out(stream.Signature(FrameInfo))
        Offered three cycles after the frame's last byte is taken (the input register, the CRC, the
        verdict) and held until
        accepted; the consumer accepts it when it has finished with the frame (with ``words`` and
        ``arg``), and only then does the receiver take the next byte.
    words : Out(stream.Signature(16))
        While a good ``SPIKES``/``STEP`` frame is presented: its ``LEN / 2`` addresses, in order, one every
        two cycles at most (from the buffer, a 128 x 16 memory addressed by a register). While a good
        ``FRAME`` is presented: its bytes in pairs, ``ceil(LEN / 2)`` words, the earlier byte in the high
        half (an odd last byte alone in the high half).
    arg : Out(8 * ceil(n_out / 8))
        The last ``ceil(n_out / 8)`` payload bytes, the first of them in the low bits: the ``SET_WAKE``
        mask (valid while the frame is presented).
    last : In(LastAddress)
        The open step's last address, sampled at each ``SYNC``: the first address of a ``SPIKES``/``STEP``
        frame must lie above it.
    junk : Out(1)
        One-cycle pulse for each byte dropped while looking for ``SYNC``.
    room : In(16)
        Only with ``levels``: the bytes the open frame still needs (``n_in`` minus those received), the
        longest ``FRAME`` payload allowed; read at the verdict.

    Latency: the verdict three cycles after the last byte is taken. Throughput: one byte per cycle. The
    timeout counts from when a byte leaves the input register, so it never ends a frame early.
    """

    def __init__(self, *, n_in: int, n_out: int, timeout: int, levels: int | None = None):
        problem = None
        if not isinstance(n_in, int) or not 1 <= n_in <= 0xFFFF:
            problem = f"n_in must be an integer 1..65535, not {n_in!r}"
        elif not isinstance(n_out, int) or not 1 <= n_out <= 8 * MAX_PAYLOAD:
            problem = f"n_out must be an integer 1..{8 * MAX_PAYLOAD}, not {n_out!r}"
        elif not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 2:
            problem = f"timeout must be an integer of at least 2 cycles, not {timeout!r}"
        elif levels is not None and levels not in FRAME_LEVELS.values():
            problem = f"levels must be None or one of {sorted(set(FRAME_LEVELS.values()))}, not {levels!r}"
        if problem:
            raise ValueError(problem)
        self._n_in, self._n_out, self._timeout, self._levels = n_in, n_out, timeout, levels
        self._arg_bytes = mask_bytes(n_out)
        super().__init__({
            "bytes": In(stream.Signature(8)),
            "frame": Out(stream.Signature(FrameInfo)),
            "words": Out(stream.Signature(16)),
            "arg": Out(8 * self._arg_bytes),
            "last": In(LastAddress),
            "junk": Out(1),
            **({"room": In(16)} if levels is not None else {}),
        })

    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def n_out(self) -> int:
        return self._n_out

    @property
    def timeout(self) -> int:
        return self._timeout

    @property
    def levels(self) -> int | None:
        return self._levels

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.buf = buf = Memory(shape=16, depth=MAX_WORDS + 1, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        info = self.frame.payload
        # An input register stage: the byte and its SYNC test come from flip-flops, so the FIFO's block
        # RAM output only drives this register. Full rate: it refills in the cycle its byte is taken.
        in_valid = Signal()
        byte = Signal(8)
        is_sync = Signal()
        accept = Signal()                   # the state machine takes a byte in this state
        take = in_valid & accept
        m.d.comb += self.bytes.ready.eq(~in_valid | take)
        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += [in_valid.eq(1), byte.eq(self.bytes.payload), is_sync.eq(self.bytes.payload == SYNC)]
        with m.Elif(take):
            m.d.sync += in_valid.eq(0)
        crc = Signal(16, init=CRC_INIT)
        count = Signal(8)                   # payload bytes taken so far
        high = Signal(8)                    # first byte of the address being received
        have_prev = Signal()                # an address precedes the next one in this step ...
        prev = Signal(16)                   # ... and this is it
        addr_err = Signal()
        order_err = Signal()
        idle = Signal(range(self._timeout))  # cycles since the last byte of an open frame
        word = Cat(byte, high)
        n_words = info.length[1:]
        ridx = Signal(range(MAX_WORDS + 1))

        crc_next = Signal(16)               # one CRC datapath, shared by every state
        m.d.comb += crc_next.eq(crc16_next(crc, byte))
        m.d.sync += self.junk.eq(0)
        with m.If(self.frame.ready):
            m.d.sync += self.frame.valid.eq(0)

        # Replay: the read port is addressed by the ridx register alone (no handshake logic on the block
        # RAM's address), so after a word is taken the next one shows a cycle later: one word per two
        # cycles, far faster than words arrive on the line. ``pending``: words left (set by the verdict).
        is_words = (info.cmd == Cmd.SPIKES) | (info.cmd == Cmd.STEP)
        frames = self._levels is not None
        is_frame = (info.cmd == Cmd.FRAME) if frames else Const(0)
        value_err = Signal()                # a FRAME byte above the levels
        # Words to replay: LEN / 2 addresses, or ceil(LEN / 2) frame byte pairs.
        n_replay = Mux(is_frame, (info.length + 1)[1:], n_words) if frames else n_words
        pending = Signal()
        loaded = Signal()                   # rd.data holds the word at ridx
        take_word = self.words.valid & self.words.ready
        m.d.comb += [
            self.words.valid.eq(self.frame.valid & pending & loaded),
            self.words.payload.eq(rd.data),
            rd.addr.eq(ridx),
            wr.addr.eq(count[1:]),
            wr.data.eq(word),
        ]
        m.d.sync += loaded.eq(~take_word)

        # An address is checked the cycle after its second byte, against n_in and the address before it
        # (of this frame, or of the open step): from registers, off the path from the FIFO's block RAM.
        # The next address is at least two bytes away, the verdict three.
        checked = Signal(16)
        check = Signal()
        m.d.sync += check.eq(0)
        with m.If(check):
            m.d.sync += [prev.eq(checked), have_prev.eq(1)]
            with m.If(checked >= self._n_in):
                m.d.sync += addr_err.eq(1)
            with m.If(have_prev & (checked <= prev)):
                m.d.sync += order_err.eq(1)
        with m.If(take_word):
            m.d.sync += ridx.eq(ridx + 1)
            with m.If(ridx + 1 == n_replay):
                m.d.sync += pending.eq(0)

        def open_frame(next_state):
            """A byte of an open frame moves on to ``next_state``; silence ends the frame (TIMEOUT)."""
            m.d.comb += accept.eq(1)
            with m.If(in_valid):
                m.d.sync += [crc.eq(crc_next), idle.eq(0)]
                if next_state is not None:
                    m.next = next_state
            with m.Else():
                m.d.sync += idle.eq(idle + 1)
                with m.If(idle == self._timeout - 1):
                    m.d.sync += [info.error.eq(Err.TIMEOUT), self.frame.valid.eq(1)]
                    m.next = "PRESENT"

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += accept.eq(1)
                with m.If(in_valid):
                    with m.If(is_sync):
                        m.d.sync += [info.cmd.eq(0), info.seq.eq(0), info.length.eq(0), crc.eq(CRC_INIT),
                                     count.eq(0), idle.eq(0), ridx.eq(0), addr_err.eq(0), order_err.eq(0),
                                     pending.eq(0), value_err.eq(0),
                                     have_prev.eq(self.last.valid), prev.eq(self.last.addr)]
                        m.next = "CMD"
                    with m.Else():
                        m.d.sync += self.junk.eq(1)
            with m.State("CMD"):
                open_frame("SEQ")
                with m.If(in_valid):
                    m.d.sync += info.cmd.eq(byte)
            with m.State("SEQ"):
                open_frame("LEN")
                with m.If(in_valid):
                    m.d.sync += info.seq.eq(byte)
            with m.State("LEN"):
                open_frame(None)
                with m.If(in_valid):
                    m.d.sync += info.length.eq(byte)
                    with m.If(byte == 0):
                        m.next = "CRC1"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                open_frame(None)
                with m.If(in_valid):
                    m.d.sync += [count.eq(count + 1), self.arg.eq(Cat(self.arg[8:], byte))]
                    with m.If(count[0]):
                        # The second byte of an address: store it; check it next cycle (below).
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += [checked.eq(word), check.eq(1)]
                    with m.Else():
                        m.d.sync += high.eq(byte)
                        if frames:
                            # A FRAME's odd last byte is stored alone, in the high half.
                            # (written so as not to match the payload end that sim/proofs' mutant edits)
                            with m.If(info.length == count + 1):
                                m.d.comb += [wr.en.eq(1), wr.data.eq(Cat(Const(0, 8), byte))]
                    if frames and self._levels < 0xFF:
                        with m.If(is_frame & (byte > self._levels)):
                            m.d.sync += value_err.eq(1)
                    with m.If(count + 1 == info.length):
                        m.next = "CRC1"
            with m.State("CRC1"):
                open_frame("CRC2")
            with m.State("CRC2"):
                open_frame("CHECK")
            with m.State("CHECK"):
                # The verdict from registers only (the CRC of everything after SYNC is 0 when intact).
                cmd, length = info.cmd, info.length
                top = Cmd.FRAME if frames else Cmd.CLEAR_COUNTERS      # FRAME only with the encoder
                known = (cmd >= int(min(Cmd))) & (cmd <= int(top))
                wake = cmd == Cmd.SET_WAKE
                length_ok = Mux(is_words, ~length[0], Mux(wake, length == self._arg_bytes, length == 0))
                if frames:
                    length_ok = Mux(is_frame, (length != 0) & (length <= self.room), length_ok)
                arg_bad = (self.arg[self._n_out:] != 0) if 8 * self._arg_bytes > self._n_out else 0
                with m.If(crc != 0):
                    m.d.sync += info.error.eq(Err.BAD_CRC)
                with m.Elif(~known):
                    m.d.sync += info.error.eq(Err.UNKNOWN_CMD)
                with m.Elif(~length_ok):
                    m.d.sync += info.error.eq(Err.BAD_LENGTH)
                with m.Elif(is_words & addr_err):
                    m.d.sync += info.error.eq(Err.BAD_ADDRESS)
                with m.Elif(is_words & order_err):
                    m.d.sync += info.error.eq(Err.BAD_ORDER)
                with m.Elif((wake & arg_bad) | (is_frame & value_err)):
                    m.d.sync += info.error.eq(Err.BAD_ARG)
                with m.Else():
                    m.d.sync += [info.error.eq(Err.OK), pending.eq((is_words & (n_words != 0)) | is_frame)]
                m.d.sync += self.frame.valid.eq(1)
                m.next = "PRESENT"
            with m.State("PRESENT"):
                with m.If(self.frame.ready):
                    m.next = "HUNT"
        return m
