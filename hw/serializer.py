"""Spike queue and serializer: per-group spike masks in, ascending spike addresses out.

A fire pass pushes one entry ``{group, mask}`` for every neuron group with at least one spike, in
ascending group order. The serializer then pops the entries and emits the address ``group*P + lane``
of every set lane, lowest lane first, so addresses come out strictly ascending, one per cycle, with no
bubble between entries, followed by an end-of-train token.

The network never pushes and pops at the same time (a layer's fire pass ends before the next layer
reads its spikes), and the serializer relies on it: the first two entries of a train go to two
registers (the head, being emitted, and the next one), later ones to a block RAM ring that is read at
a registered address into a third (prefetch) register whenever there is room. So the output token
comes from registers, the block RAM's read data only feeds registers, and its address is a register.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qlif.golden.spec.cycles import check_lanes
from qlif.golden.spec.layouts import TOKEN_ADDR_BITS, queue_entry_fields, queue_ring_depth

__all__ = ["AddrToken", "Token", "PushLayout", "Serializer"]


def AddrToken(addr_width: int = TOKEN_ADDR_BITS) -> data.StructLayout:
    """A spike address (``addr``), or ``eot``: the end of a train (of a timestep's spikes), address ignored."""
    return data.StructLayout({"addr": addr_width, "eot": 1})


#: The stream token of the core's ports (:data:`~qlif.golden.spec.layouts.TOKEN_ADDR_BITS` address bits).
Token = AddrToken(TOKEN_ADDR_BITS)


def PushLayout(depth: int, lanes: int) -> data.StructLayout:
    """A queue push: the spike ``mask`` of neuron group ``group`` (lane ``i`` is neuron ``group*P + i``)."""
    return data.StructLayout({"group": queue_entry_fields(depth, lanes)["group"], "mask": lanes})


class Serializer(wiring.Component):
    """Queue of up to ``depth`` spike masks, read out as ascending addresses.

    Parameters
    ----------
    lanes : int
        P, bits per mask; P in :data:`qlif.golden.spec.cycles.LANES` (:func:`~qlif.golden.spec.cycles.check_lanes`).
    depth : int
        Most entries one fire pass can push (the largest group count G of the network).
    addr_width : int
        Width of the emitted addresses.

    Members
    -------
    push : In(stream.Signature(PushLayout(depth, P), always_ready=True))
        Append ``{group, mask}`` in each ``valid`` cycle (no backpressure; ``mask`` nonzero, groups
        ascending, at most ``depth`` entries per train). Only while the queue is empty or being filled:
        a train is pushed completely before its first token is read, and read completely (up to its eot)
        before the next train is pushed.
    reading : In(1)
        High from the end of a train's pushes until its eot has been read, low during pushes: the
        block RAM is read ahead only meanwhile.
    tokens : Out(stream.Signature(AddrToken(addr_width)))
        Always valid: the next address, or ``eot`` once every pushed lane has been sent (and then
        until the next push).

    Latency: an entry pushed in cycle ``c`` can be emitted from cycle ``c + 1``.
    Throughput: one address per cycle. Memory: a ring of the power of two above ``depth - 2`` words of
    ``ceil(log2 depth) + P + 1 + log2 P`` bits (none when ``depth <= 2``), and three entries in
    flip-flops. The entry layout: :func:`qlif.golden.spec.layouts.queue_entry_fields`.
    """

    def __init__(self, *, lanes: int, depth: int, addr_width: int):
        check_lanes(lanes)
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        if not isinstance(addr_width, int) or addr_width < 1:
            raise ValueError(f"addr_width must be a positive integer, not {addr_width!r}")
        self._lanes = lanes
        self._depth = depth
        self._entry = data.StructLayout(queue_entry_fields(depth, lanes))
        super().__init__({
            "reading": In(1),
            "push": In(stream.Signature(PushLayout(depth, lanes), always_ready=True)),
            "tokens": Out(stream.Signature(AddrToken(addr_width))),
        })

    def elaborate(self, platform):
        m = Module()
        P = self._lanes
        entry = self._entry
        push = Signal(entry)
        pushed = self.push.payload
        m.d.comb += [push.group.eq(pushed.group), push.mask.eq(pushed.mask),
                     push.single.eq(_at_most_one(pushed.mask)), push.lane.eq(_lowest(m, pushed.mask))]

        # Three entries in registers, in queue order: the head (its lanes not yet sent), the next one
        # and a prefetched one; valid bits form a prefix. ``single`` marks an entry with one lane left,
        # so that the decision to move on is a flip-flop, not a function of the mask.
        slots = [Signal(entry, name=n) for n in ("head", "nxt", "pf")]
        valid = [Signal(name=f"{n}_valid") for n in ("head", "nxt", "pf")]
        head = slots[0]

        # Lowest lane left in the head: kept in the entry (``lane``, a flip-flop, so the output address
        # comes from registers); ``rest`` is the mask without it. ``lane`` is always the lowest set bit
        # of a nonzero ``mask``, so the next lane (the mask's second lowest bit) and the next ``single``
        # (at most two bits in the mask) are functions of the mask alone: one LUT level on P = 4, where
        # the same functions of ``rest`` (mask and lane, six inputs) took two, on the serializer's head
        # update, the core's slowest path on the iCE40.
        low = Signal(P)
        m.d.comb += low.eq(1 << head.lane)
        rest = head.mask & ~low
        m.d.comb += [
            self.tokens.valid.eq(1),
            self.tokens.payload.eot.eq(~valid[0]),
            self.tokens.payload.addr.eq(Cat(head.lane, head.group) if P > 1 else head.group),
        ]
        take = self.tokens.ready & valid[0]
        pop = take & head.single

        # Entries past the ones in registers: a power-of-two ring in block RAM, larger than the most
        # entries it holds (so ``ra == wr_ptr`` means empty), read at a registered address (``ra``) one
        # entry ahead, while ``reading``, whenever the registers will have room for it (``landing``:
        # the read data of last cycle's read joins the registers). The pointers wrap by themselves, and
        # no restart is needed between trains (the queue is empty when a train's eot was read).
        depth = queue_ring_depth(self._depth)
        landing = C(0, 1)
        ram_data = push
        to_ram = 0
        if depth > 0:
            # Reads and writes never meet (pushes and reads are separate phases): no collision logic.
            m.submodules.queue = queue = Memory(shape=entry, depth=depth, init=[], attrs={"no_rw_check": 1})
            wr = queue.write_port()
            rd = queue.read_port()
            wr_ptr = Signal(range(depth))
            ra = Signal(range(depth))
            ra_inc = Signal(range(depth), init=1)         # ra + 1
            ram_nonempty = Signal()
            landing = Signal()
            to_ram = valid[1]                             # a push goes to the ring when both are taken
            m.d.comb += [rd.addr.eq(ra), wr.addr.eq(wr_ptr), wr.data.eq(push),
                         wr.en.eq(self.push.valid & to_ram)]
            # Room: a read lands next cycle, in a free register even if nothing is popped then. All
            # three registers are taken after this cycle only if they hold three entries with the one
            # landing now and none is popped.
            three = Signal()
            m.d.comb += three.eq(sum(Cat(*valid, landing)) == 3)
            issue = self.reading & ram_nonempty & (~three | pop)
            m.d.sync += [landing.eq(issue),
                         ram_nonempty.eq((self.push.valid & to_ram) | (ram_nonempty & ~(issue & (ra_inc == wr_ptr))))]
            with m.If(self.push.valid & to_ram):
                m.d.sync += wr_ptr.eq(wr_ptr + 1)
            with m.If(issue):
                m.d.sync += [ra.eq(ra_inc), ra_inc.eq(ra_inc + 1)]
            ram_data = rd.data

        # The registers after this cycle. Pushes (never while reading) fill the head, the next one,
        # then the ring. While reading, the registers are computed for both outcomes of ``take``
        # (which depends on the consumer's ready, the latest signal) and selected by it last: not
        # taken, or taken without a pop, the landing entry fills the first free slot; popped, the
        # entries move up by one and the landing entry follows them.
        pushed_slots = [Mux(~valid[0], push, slots[0]), Mux(valid[0] & ~valid[1], push, slots[1]), slots[2]]
        pushed_valid = [1, valid[1] | valid[0], valid[2]]
        fill = [landing & ~valid[0], landing & valid[0] & ~valid[1], landing & valid[1]]
        kept_slots = [Mux(fill[i], ram_data, slots[i]) for i in range(3)]
        kept_valid = [valid[i] | fill[i] for i in range(3)]
        # Taken with lanes left: the head loses its lowest lane; otherwise (single) it pops.
        rest_head = Signal(entry)
        m.d.comb += [rest_head.eq(kept_slots[0]), rest_head.mask.eq(rest), rest_head.single.eq(_at_most_two(head.mask)),
                     rest_head.lane.eq(_second_lowest(m, head.mask))]
        moved = [Mux(valid[i + 1], slots[i + 1], ram_data) for i in range(2)] + [ram_data]
        moved_valid = [valid[1] | landing, valid[2] | (valid[1] & landing), valid[2] & landing]
        taken_slots = [Mux(head.single, moved[0], rest_head)] + [
            Mux(head.single, moved[i], kept_slots[i]) for i in (1, 2)]
        taken_valid = [Mux(head.single, moved_valid[i], kept_valid[i]) for i in range(3)]
        for i in range(3):
            with m.If(self.push.valid):
                m.d.sync += [slots[i].eq(pushed_slots[i]), valid[i].eq(pushed_valid[i])]
            with m.Else():
                m.d.sync += [slots[i].eq(Mux(take, taken_slots[i], kept_slots[i])),
                             valid[i].eq(Mux(take, taken_valid[i], kept_valid[i]))]
        return m


def _lowest(m: Module, bits) -> Signal:
    """Index of the lowest set bit of ``bits`` (don't-care if none is set): a balanced tree of 2:1
    multiplexers, log2(n) deep (not ``bits & -bits``, a carry chain, nor a priority chain, n deep)."""
    return _indexed(m, bits, _lowest_two(bits)[0])


def _second_lowest(m: Module, bits) -> Signal:
    """Index of the second lowest set bit of ``bits`` (don't-care if fewer than two are set), from the
    same tree as :func:`_lowest`."""
    return _indexed(m, bits, _lowest_two(bits)[1])


def _indexed(m: Module, bits, value) -> Signal:
    index = Signal(range(max(len(bits), 2)))
    m.d.comb += index.eq(value)
    return index


def _lowest_two(bits) -> tuple[Value, Value]:
    """(lowest, second lowest) set-bit index of ``bits``: a balanced tree, log2(n) deep, of nodes that keep
    both indices of their half (what a caller does not use, synthesis removes)."""
    def tree(bits):
        # (any set, at least two set, lowest index, second lowest index), indices of len(bits) width.
        if len(bits) == 1:
            return bits[0], C(0, 1), C(0, 0), C(0, 0)
        half = 1 << ((len(bits) - 1).bit_length() - 1)
        any_lo, two_lo, low_lo, sec_lo = tree(bits[:half])
        any_hi, two_hi, low_hi, sec_hi = tree(bits[half:])
        width = (half - 1).bit_length()

        def lo(v):
            return Cat(v, C(0, width - len(v) + 1))

        def hi(v):
            return Cat(v, C(0, width - len(v)), C(1, 1))
        low = Mux(any_lo, lo(low_lo), hi(low_hi))
        second = Mux(two_lo, lo(sec_lo), Mux(any_lo, hi(low_hi), hi(sec_hi)))
        return any_lo | any_hi, two_lo | two_hi | (any_lo & any_hi), low, second
    return tree(bits)[2:]


def _at_most_two(bits) -> Value:
    """At most two bits of ``bits`` are set (a LUT tree: no adder, no carry chain)."""
    def tree(bits):
        # (any set, at least two set, at least three set)
        if len(bits) == 1:
            return bits[0], C(0, 1), C(0, 1)
        half = len(bits) // 2
        a1, a2, a3 = tree(bits[:half])
        b1, b2, b3 = tree(bits[half:])
        return a1 | b1, a2 | b2 | (a1 & b1), a3 | b3 | (a2 & b1) | (a1 & b2)
    return ~tree(bits)[2]


def _at_most_one(bits) -> Value:
    """At most one bit of ``bits`` is set (a LUT tree: no adder, no carry chain)."""
    n = len(bits)
    if n <= 1:
        return C(1, 1)
    half = n // 2
    lo, hi = bits[:half], bits[half:]
    return (~lo.any() & _at_most_one(hi)) | (~hi.any() & _at_most_one(lo))
