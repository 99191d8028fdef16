"""Spike queue and serializer: per-group spike masks in, ascending spike addresses out.

A fire pass pushes one entry ``{group, mask}`` for every neuron group with at least one spike, in
ascending group order. The serializer then pops the entries and emits the address ``group*P + lane``
of every set lane, lowest lane first, so addresses come out strictly ascending, one per cycle, with no
bubble between entries, followed by an end-of-train token.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qlif.golden.cycles import LANES

__all__ = ["AddrToken", "Serializer"]


def AddrToken(addr_width: int) -> data.StructLayout:
    """Serializer output: a spike address, or ``eot`` (end of the train, address ignored)."""
    return data.StructLayout({"addr": addr_width, "eot": 1})


class Serializer(wiring.Component):
    """Queue of up to ``depth`` spike masks, read out as ascending addresses.

    Parameters
    ----------
    lanes : int
        P, bits per mask; P in :data:`qlif.golden.cycles.LANES`.
    depth : int
        Most entries one fire pass can push (the largest group count G of the network).
    addr_width : int
        Width of the emitted addresses.

    Members
    -------
    restart : In(1)
        Empty the queue (both pointers to 0). Not in the same cycle as a push.
    push_valid, push_group, push_mask : In
        Append ``{group, mask}`` (no backpressure; ``mask`` nonzero, groups ascending).
    tokens : Out(stream.Signature(AddrToken(addr_width)))
        Always valid: the next address, or ``eot`` once every pushed lane has been sent (and then
        forever until ``restart``).

    Latency: an entry pushed in cycle ``c`` can be emitted from cycle ``c + 1``.
    Throughput: one address per cycle. Memory: ``depth`` words of ``ceil(log2 depth) + P`` bits.
    """

    def __init__(self, *, lanes: int, depth: int, addr_width: int):
        if lanes not in LANES:
            raise ValueError(f"lanes must be one of {LANES}, not {lanes!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        if not isinstance(addr_width, int) or addr_width < 1:
            raise ValueError(f"addr_width must be a positive integer, not {addr_width!r}")
        self._lanes = lanes
        self._depth = depth
        self._entry = data.StructLayout({"group": range(depth), "mask": lanes})
        super().__init__({
            "restart": In(1),
            "push_valid": In(1),
            "push_group": In(range(depth)),
            "push_mask": In(lanes),
            "tokens": Out(stream.Signature(AddrToken(addr_width))),
        })

    def elaborate(self, platform):
        m = Module()
        P = self._lanes
        m.submodules.queue = queue = Memory(shape=self._entry, depth=self._depth, init=[])
        wr = queue.write_port()
        # Transparent: the last entry of a fire pass may be pushed in the cycle before it is read.
        rd = queue.read_port(transparent_for=(wr,))

        wr_ptr = Signal(range(self._depth + 1))
        rd_ptr = Signal(range(self._depth + 1))
        rd_ptr_next = Signal.like(rd_ptr)
        sent = Signal(P)      # lanes of the head entry already emitted

        m.d.comb += [wr.addr.eq(wr_ptr), wr.data.group.eq(self.push_group), wr.data.mask.eq(self.push_mask),
                     wr.en.eq(self.push_valid)]
        with m.If(self.push_valid):
            m.d.sync += wr_ptr.eq(wr_ptr + 1)

        # The read address is the pointer's next value, so rd.data always holds entry rd_ptr.
        m.d.comb += rd.addr.eq(rd_ptr_next)
        left = Signal(P)
        low = Signal(P)
        lane = Signal(range(P))
        m.d.comb += [left.eq(rd.data.mask & ~sent), low.eq(left & -left)]
        for i in reversed(range(P)):
            with m.If(left[i]):
                m.d.comb += lane.eq(i)
        empty = rd_ptr == wr_ptr
        m.d.comb += [
            self.tokens.valid.eq(1),
            self.tokens.payload.eot.eq(empty),
            self.tokens.payload.addr.eq(Cat(lane, rd.data.group) if P > 1 else rd.data.group),
            rd_ptr_next.eq(rd_ptr),
        ]
        with m.If(self.restart):
            m.d.comb += rd_ptr_next.eq(0)
            m.d.sync += [wr_ptr.eq(0), sent.eq(0)]
        with m.Elif(self.tokens.ready & ~empty):
            with m.If(left == low):
                m.d.comb += rd_ptr_next.eq(rd_ptr + 1)
                m.d.sync += sent.eq(0)
            with m.Else():
                m.d.sync += sent.eq(sent | low)
        m.d.sync += rd_ptr.eq(rd_ptr_next)
        return m
