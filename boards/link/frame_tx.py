"""Reply frame sender of the host link: header and payload in, framed bytes out (docs/host-protocol.md)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qlif.boards.link.crc import crc16_next
from qlif.boards.protocol import CRC_INIT, REPLY_FLAG, SYNC

__all__ = ["ReplyHeader", "FrameSender"]

#: A reply's header: the request's command and sequence number, the status (an Err code), LEN.
ReplyHeader = data.StructLayout({"cmd": 8, "seq": 8, "status": 8, "length": 8})


class FrameSender(wiring.Component):
    """Frames a reply: ``SYNC CMD|0x80 SEQ STATUS LEN PAYLOAD CRC_HI CRC_LO``.

    The CRC (CRC-16/CCITT-FALSE, :mod:`qlif.boards.link.crc`) runs over the bytes from ``CMD|0x80`` to the
    end of the payload as they are sent.

    Members
    -------
    header : In(stream.Signature(ReplyHeader))
        Taken when the sender is idle and its output register empty; ``SYNC`` is offered the next cycle.
    payload : In(stream.Signature(8))
        Exactly ``header.length`` bytes, taken one at a time straight into the output register (so a
        payload byte is taken only after the consumer has taken the byte before it).
    bytes : Out(stream.Signature(8))
        The frame, from a register (held until taken).

    Latency: one cycle from header to ``SYNC``. Throughput: one byte per two cycles while ``bytes.ready``
    stays high; behind a UART, one byte per UART frame (the UART takes the next byte in the last cycle
    of a stop bit, and has a whole start bit to wait for it).
    """

    def __init__(self):
        super().__init__({
            "header": In(stream.Signature(ReplyHeader)),
            "payload": In(stream.Signature(8)),
            "bytes": Out(stream.Signature(8)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        hdr = Signal(ReplyHeader)
        crc = Signal(16, init=CRC_INIT)
        sent = Signal(8)                               # payload bytes sent
        out = self.bytes
        # The output register takes a byte only when empty: nothing here depends on the consumer's ready
        # combinationally (a UART's ready is a compare of its bit timer). One byte per two cycles at most.
        free = ~out.valid

        with m.If(out.ready):
            m.d.sync += out.valid.eq(0)

        # One CRC datapath: every state picks the byte it loads, the CRC follows the loaded byte.
        load = Signal()                                # a byte goes into the output register
        byte = Signal(8)                               # ... this one
        checked = Signal()                             # ... and it counts towards the CRC
        with m.If(load):
            m.d.sync += [out.payload.eq(byte), out.valid.eq(1)]
            with m.If(checked):
                m.d.sync += crc.eq(crc16_next(crc, byte))

        def emit(value, next_state, *, check=True):
            """Load ``value`` when the output register is free, then go to ``next_state``."""
            m.d.comb += [byte.eq(value), checked.eq(check)]
            with m.If(free):
                m.d.comb += load.eq(1)
                m.next = next_state

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.header.ready.eq(free)
                with m.If(self.header.valid & free):
                    m.d.comb += [byte.eq(SYNC), load.eq(1)]
                    m.d.sync += [hdr.eq(self.header.payload), crc.eq(CRC_INIT), sent.eq(0)]
                    m.next = "CMD"
            with m.State("CMD"):
                emit(hdr.cmd | REPLY_FLAG, "SEQ")
            with m.State("SEQ"):
                emit(hdr.seq, "STATUS")
            with m.State("STATUS"):
                emit(hdr.status, "LEN")
            with m.State("LEN"):
                emit(hdr.length, "DATA")
                with m.If(free & (hdr.length == 0)):
                    m.next = "CRC_HI"
            with m.State("DATA"):
                m.d.comb += self.payload.ready.eq(free)
                with m.If(self.payload.valid):
                    emit(self.payload.payload, "DATA")
                    with m.If(free):
                        m.d.sync += sent.eq(sent + 1)
                        with m.If(sent + 1 == hdr.length):
                            m.next = "CRC_HI"
            with m.State("CRC_HI"):
                emit(crc[8:], "CRC_LO", check=False)
            with m.State("CRC_LO"):
                emit(crc[:8], "IDLE", check=False)
        return m
