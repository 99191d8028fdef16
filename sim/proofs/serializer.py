"""The serializer neither drops, duplicates nor reorders a spike: a proof from its port contract.

The environment keeps to :class:`~qlif.hw.serializer.Serializer`'s contract, and nothing more: a train of
at most ``depth`` pushes of nonzero masks in strictly ascending groups ``< depth``, with ``reading`` and
``ready`` low; then, from the cycle after any cycle the environment chooses, ``reading`` high, no push,
and ``ready`` free, until the cycle after an eot is taken; then the next train.

The harness keeps a scoreboard, one bit per address ``group*P + lane``: the spikes of this train pushed
and not yet taken. The claim, at the ports:

* a taken address is the lowest address on the scoreboard (so it was pushed, it was not sent before,
  and every address below it was sent first: addresses leave ascending, which, as groups are pushed in
  ascending order and lanes are sent lowest first, is push order);
* a taken eot finds the scoreboard empty (nothing was dropped).

k-induction does not close on these alone: an unreachable state (a spike held twice in the queue, say)
can wait out any induction length with ``ready`` low before it shows at the port. So the harness also
asserts auxiliary invariants on the serializer's state, which the induction step then assumes: the
entries it holds (its three registers, the ring read in flight, the ring from ``ra`` to ``wr_ptr``)
are in strictly ascending group order, each well formed (nonzero mask, ``lane`` its lowest bit,
``single`` iff one bit), and together they are exactly the scoreboard. These name the RTL's internal
signals (found by name in its elaborated module, and the ring read through extra asynchronous ports the
harness adds); a rename in ``hw/serializer.py`` fails the harness' construction with the name.
"""

from __future__ import annotations

from amaranth.asserts import AnySeq
from amaranth.hdl import Array, Assert, Assume, Const, Elaboratable, Fragment, Module, Mux, Signal
from amaranth.lib import data

from qlif.golden.spec.layouts import queue_entry_fields, queue_ring_depth
from qlif.hw.serializer import Serializer
from qlif.sim.formal import Proof
from qlif.sim.mutants import Mutant
from qlif.sim.mutants import get as _catalogue
from qlif.sim.proofs.internals import signal_lookup, together

__all__ = ["SerializerHarness", "DROP_LANES", "PROOFS"]


def _lowest(bits, width: int):
    """Index of the lowest set bit of ``bits`` (0 when none is set): a priority chain, for the harness."""
    index = Const(0, width)
    for i in reversed(range(len(bits))):
        index = Mux(bits[i], i, index)
    return index


class SerializerHarness(Elaboratable):
    """A :class:`~qlif.hw.serializer.Serializer` driven within its contract against a scoreboard.

    Parameters
    ----------
    lanes : int
        P of the serializer (at least 2: with one lane there is no order within a mask to check).
    depth : int
        Its queue depth (the most entries of a train; the ring holds ``depth - 2`` of them).
    invariants : bool
        Assert the auxiliary invariants (for k-induction); without them only the claim at the ports is
        asserted (a bounded check then shows what the claim alone catches).
    """

    def __init__(self, *, lanes: int, depth: int, invariants: bool = True):
        if lanes < 2:
            raise ValueError(f"lanes must be at least 2, not {lanes!r}")
        self.lanes, self.depth, self.invariants = lanes, depth, invariants
        self._fields = queue_entry_fields(depth, lanes)
        # One address bit more than group and lane need: an address out of range shows as one.
        self.addr_width = self._fields["group"] + self._fields["lane"] + 1

    def elaborate(self, platform):
        m = Module()
        P, G = self.lanes, self.depth
        entry = data.StructLayout(self._fields)
        dut = Serializer(lanes=P, depth=G, addr_width=self.addr_width)
        push, tok = dut.push, dut.tokens
        # Elaborated here, so that the invariants can name its internal signals and read its ring (through
        # asynchronous ports added to it before it is elaborated).
        module = dut.elaborate(platform)
        dut._MustUse__used = True           # as Fragment.get marks what it elaborates
        R = queue_ring_depth(G)
        rows = []
        if R and self.invariants:
            # Amaranth 0.5 keeps a module's named submodules in _named_submodules (not a public API).
            ring = module._named_submodules.get("queue", (None,))[0]
            if ring is None:
                raise LookupError("hw/serializer.py: no submodule 'queue' (the ring) in Serializer.elaborate "
                                  "(renamed? update the proof's harness)")
            for i in range(R):
                port = ring.read_port(domain="comb")
                m.d.comb += port.addr.eq(i)
                rows.append(port.data.as_value())
        fragment = Fragment.get(module, platform)
        m.submodules.dut = fragment
        find = signal_lookup(fragment, "hw/serializer.py", "Serializer.elaborate")

        # The environment's free choices: pushes, when to start reading, the reader's ready.
        m.d.comb += [push.valid.eq(AnySeq(1)), push.payload.eq(AnySeq(len(push.payload.as_value()))),
                     tok.ready.eq(AnySeq(1))]
        start = AnySeq(1)

        # The phase of the contract: filling (``reading`` low) or reading (until an eot is taken).
        reading = Signal()
        pushes = Signal(range(G + 1))               # entries of this train so far
        last_group = Signal(self._fields["group"])  # the group of this train's last push
        m.d.comb += dut.reading.eq(reading)
        taken = tok.valid & tok.ready
        took_eot = taken & tok.payload.eot
        took_addr = taken & ~tok.payload.eot
        with m.If(~reading):
            m.d.comb += Assume(~tok.ready)
            with m.If(push.valid):
                m.d.comb += [Assume(push.payload.mask != 0), Assume(push.payload.group < G),
                             Assume(pushes < G), Assume((pushes == 0) | (push.payload.group > last_group))]
                m.d.sync += [pushes.eq(pushes + 1), last_group.eq(push.payload.group)]
            with m.If(start):
                m.d.sync += reading.eq(1)
        with m.Else():
            m.d.comb += Assume(~push.valid)
            with m.If(took_eot):
                m.d.sync += [reading.eq(0), pushes.eq(0)]

        # The scoreboard and the claim.
        pending = Signal(G * P)
        pushed_bits = Signal(G * P)
        m.d.comb += pushed_bits.eq(Mux(push.valid, push.payload.mask << (push.payload.group * P), 0))
        lowest = _lowest(pending, self.addr_width)
        with m.If(took_addr):
            m.d.comb += Assert((pending != 0) & (tok.payload.addr == lowest))
        with m.If(took_eot):
            m.d.comb += Assert(pending == 0)
        sent = Mux(took_addr, Const(1, G * P) << tok.payload.addr, 0)
        m.d.sync += pending.eq((pending | pushed_bits) & ~sent)

        if not self.invariants:
            return m
        # Auxiliary invariants (module docstring): the entries the serializer holds, in queue order.
        valid = [find(f"{n}_valid") for n in ("head", "nxt", "pf")]
        slots = [data.View(entry, find(n)) for n in ("head", "nxt", "pf")]
        entries = list(zip(valid, slots, strict=True))
        if R:
            landing, ra, ra_inc = find("landing"), find("ra"), find("ra_inc")
            wr_ptr, nonempty = find("wr_ptr"), find("ram_nonempty")
            rows = Array(rows)
            in_ring = Signal(range(R))
            m.d.comb += in_ring.eq(wr_ptr - ra)
            entries.append((landing, ring.read_ports[0].data))     # the serializer's own read port
            entries += [(in_ring > k, data.View(entry, rows[(ra + k) % R])) for k in range(R)]
            m.d.comb += [Assert(ra_inc == (ra + 1) % R), Assert(nonempty == (in_ring != 0)),
                         Assert(~landing | reading), Assert(~(landing | nonempty) | valid[0]),
                         Assert(~(landing & valid[2]))]     # a read lands only where there is room
        m.d.comb += [Assert(~valid[1] | valid[0]), Assert(~valid[2] | valid[1])]
        held = 0
        for i, (present, e) in enumerate(entries):
            m.d.comb += Assert(~present | ((e.mask != 0) & (e.group < G)
                                           & (e.lane == _lowest(e.mask, len(e.lane)))
                                           & (e.single == ((e.mask & (e.mask - 1)) == 0))))
            for later, f in entries[i + 1:]:
                m.d.comb += Assert(~(present & later) | (e.group < f.group))
            with m.If(~reading & (pushes != 0)):
                m.d.comb += Assert(~present | (e.group <= last_group))
            held = held | Mux(present, e.mask << (e.group * P), 0)
        m.d.comb += Assert(pending == held[:G * P])
        # While filling, the pushes so far: the first two in the head and the next register, the rest in
        # the ring.
        with m.If(~reading):
            m.d.comb += [Assert(valid[0] == (pushes >= 1)), Assert(valid[1] == (pushes >= 2)), Assert(~valid[2])]
            if R:
                m.d.comb += Assert(in_ring == Mux(pushes >= 2, pushes - 2, 0))
        return m


def _build(*sizes: tuple[int, int]):
    """``Proof.build``: the harnesses of ``(lanes, depth)`` pairs, proved as one design."""
    return lambda: (together(*(SerializerHarness(lanes=p, depth=g) for p, g in sizes)), [])


#: A formal-only broken design (not in the mutation score, :data:`qlif.sim.mutants.MUTANTS`): every pushed
#: entry is marked as having one lane left, so a mask of two or more lanes pops after its lowest lane.
DROP_LANES = Mutant(
    "ser-single", "a pushed entry is marked single: the lanes of a mask after its lowest are dropped",
    "qlif.hw.serializer", "Serializer.elaborate",
    r"push\.single\.eq\(_at_most_one\(pushed\.mask\)\)", r"push.single.eq(1)")

#: A formal-only broken design: the ring's "nonempty" flag never clears, so a train's last ring entry is
#: read again (a stale entry) after it was sent.
STALE_RING = Mutant(
    "ser-ring-stale", "the ring never reads as empty once written: stale entries are sent again",
    "qlif.hw.serializer", "Serializer.elaborate",
    r"\(ram_nonempty & ~\(issue & \(ra_inc == wr_ptr\)\)\)", r"ram_nonempty")

_CLAIM = ("the serializer neither drops, duplicates nor reorders a spike: within its push/reading contract, "
          "each taken address is the lowest pushed and not yet sent one, and eot comes after the last")

PROOFS: tuple[Proof, ...] = (
    Proof(
        name="serializer-p2-g3", claim=_CLAIM + " (P = 2, depth 3: the smallest queue with a ring, of 2)",
        build=_build((2, 3)), mode="prove", solver="yices", depth=12, quick_depth=12,
        why_depth="k-induction closes at k = 2 with the auxiliary invariants; k = 12 so that the base case "
                  "(from reset) reaches the second train through the ring, where queue-wrap shows (step 11)",
        broken=(_catalogue("queue-wrap"), _catalogue("lowest-lane"), DROP_LANES, STALE_RING)),
    Proof(
        name="serializer", claim=_CLAIM + " (P = 4, depth 5: a ring of 4, lanes searched in two levels; the "
                                          "full run adds P = 4, depth 9: a ring of 8, and P = 8, depth 5)",
        build=_build((4, 5)), full_build=_build((4, 5), (4, 9), (8, 5)),
        mode="prove", solver="yices", depth=5, quick_depth=5,
        why_depth="k-induction closes at k = 2 (each size); k = 5 so that the base case reaches a ring read "
                  "(step 4), where ser-ring-stale shows",
        broken=(_catalogue("lowest-lane"), DROP_LANES, STALE_RING)),
)
