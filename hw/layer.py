"""One fully connected LIF layer: synapse and membrane memories around a shared P-lane datapath.

The layer does three kinds of pass, one P-wide neuron group per cycle, through a read-modify-write
pipeline (stage A presents the memory addresses; stage B gets the synchronous read data one cycle
later and runs :class:`qlif.hw.lif.LifDatapath`; stage C exists for fire passes only):

* integrate: one input event ``j`` takes G cycles (groups ``g = 0 .. G-1``), back to back with the next
  event, no bubbles; stage B writes ``sat(u + w)`` back;
* fire: G cycles plus two for the last group; stage B tests ``s = v > theta``, stage C emits ``v`` and
  ``s`` on ``out`` and writes ``reset(leak(v), s)``, the next step's pre-integration value, so that no
  leak pass and no previous-spike memory are needed;
* clear: G cycles writing zeros (a fresh neuron, ``v = s = 0``, has pre-integration value 0).

Memory map (see docs/architecture.md): synapse word ``j*G + g`` holds the P codes of input ``j`` to
neurons ``g*P .. g*P+P-1`` (lane ``i`` in bits ``[i*b, (i+1)*b)``); membrane word ``g`` holds their
membranes (lane ``i`` in bits ``[i*k, (i+1)*k)``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qlif.golden.cycles import LANES, groups
from qlif.golden.model import Layer as ModelLayer

from .lif import LifDatapath

__all__ = ["Op", "Layer", "synapse_words"]


class Op(enum.Enum, shape=2):
    """What a pipeline stage does with its neuron group."""
    NONE = 0
    INTEGRATE = 1
    FIRE = 2
    CLEAR = 3


def _width(n: int) -> int:
    """Bits for an unsigned value ``0 .. n-1`` (at least one)."""
    return max(1, (n - 1).bit_length())


def synapse_words(layer: ModelLayer, lanes: int) -> list[int]:
    """Synapse memory init: word ``j*G + g`` packs the codes of weights ``W[j][g*P + i]``, lane ``i``.

    Lanes past ``n_out`` (last group) hold code 0; their neurons are masked out of every result.
    """
    b, g_count = layer.weight_bits, groups(layer.n_out, lanes)
    codes = layer.codes().astype(int)
    words = []
    for j in range(layer.n_in):
        for g in range(g_count):
            word = 0
            for i, c in enumerate(codes[j, g * lanes:(g + 1) * lanes]):
                word |= int(c) << (i * b)
            words.append(word)
    return words


class Layer(wiring.Component):
    """One LIF layer, time multiplexed over G = ceil(n_out / P) neuron groups.

    Parameters
    ----------
    layer : qlif.golden.model.Layer
        Weights (baked into the synapse memory init) and neuron parameters.
    lanes : int
        P in :data:`qlif.golden.cycles.LANES`.

    Members
    -------
    events : In(stream.Signature(unsigned(ceil(log2 n_in))))
        Input spike addresses. ``ready`` is high when stage A is free; the accepting cycle already
        processes group 0, so an event costs exactly G cycles and events stream back to back.
    fire, clear : In(1)
        Start a fire or clear pass in this cycle (group 0 in this cycle). Only while ``events.ready``
        is high and ``events.valid`` low (the network sequences this).
    busy : Out(1)
        A pass or an event is in a pipeline stage.
    fire_done : Out(1)
        Stage C holds the last group of a fire pass (the pass's last busy cycle).
    out_valid, out_group, out_spikes, out_membrane : Out
        Stage C of a fire pass (registers): ``v`` (signed k-bit lanes) and ``s`` (P bits) of group
        ``out_group``; lanes past ``n_out`` read 0.

    Latency: an event or clear issued at cycle ``c`` writes group ``g`` at cycle ``c + g + 1``; a fire
    pass emits and writes group ``g`` at ``c + g + 2``.
    Throughput: P synapses per cycle while integrating (one group per cycle, no bubbles).
    Memory: synapse ``n_in * G`` words of ``P*b`` bits, membrane ``G`` words of ``P*k`` bits.
    """

    def __init__(self, *, layer: ModelLayer, lanes: int):
        if not isinstance(layer, ModelLayer):
            raise TypeError(f"layer must be a qlif.golden.model.Layer, not {layer!r}")
        if lanes not in LANES:
            raise ValueError(f"lanes must be one of {LANES}, not {lanes!r}")
        self._layer = layer
        self._lanes = lanes
        self._groups = groups(layer.n_out, lanes)
        k = layer.membrane_bits
        super().__init__({
            "events": In(stream.Signature(unsigned(_width(layer.n_in)))),
            "fire": In(1),
            "clear": In(1),
            "busy": Out(1),
            "fire_done": Out(1),
            "out_valid": Out(1),
            "out_group": Out(unsigned(_width(self._groups))),
            "out_spikes": Out(lanes),
            "out_membrane": Out(data.ArrayLayout(signed(k), lanes)),
        })

    @property
    def layer(self) -> ModelLayer:
        return self._layer

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def groups(self) -> int:
        return self._groups

    def elaborate(self, platform):
        m = Module()
        layer, P, G = self._layer, self._lanes, self._groups
        k = layer.membrane_bits

        m.submodules.syn = syn = Memory(
            shape=unsigned(P * layer.weight_bits), depth=layer.n_in * G, init=synapse_words(layer, P))
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(k), P), depth=G, init=[])
        m.submodules.lif = lif = LifDatapath(layer=layer, lanes=P)
        syn_rd = syn.read_port()
        mem_wr = mem.write_port()
        # With G = 1 the next event reads group 0 in the cycle its predecessor writes it back.
        mem_rd = mem.read_port(transparent_for=(mem_wr,) if G == 1 else ())

        # Stage A: the op in flight past its first group (the first group is issued straight from the
        # request, so a new event or pass costs no extra cycle) and the addresses of its next group.
        a_op = Signal(Op)
        a_group = Signal(range(G))
        a_syn = Signal(range(layer.n_in * G))
        # Stage B: what the read data belongs to.
        b_op = Signal(Op)
        b_group = Signal(range(G))
        # Stage C: a fire pass's group whose next pre-integration value is written back.
        c_valid = Signal()
        c_group = Signal(range(G))

        # The read addresses depend on registers and the event address only, not on valid or on the
        # request kind: reading speculatively is harmless and keeps the handshake logic off the path
        # into the block RAM address (the slowest path otherwise).
        cont = a_op != Op.NONE
        addr = self.events.payload
        # j*G as a shift where G is a power of two, else a constant multiply.
        event_base = addr << (G.bit_length() - 1) if G & (G - 1) == 0 else addr * G
        m.d.comb += [syn_rd.addr.eq(Mux(cont, a_syn, event_base)), mem_rd.addr.eq(Mux(cont, a_group, 0))]

        issue_op = Signal(Op)
        issue_group = Signal(range(G))
        with m.If(cont):
            m.d.comb += [issue_op.eq(a_op), issue_group.eq(a_group)]
        with m.Else():
            m.d.comb += self.events.ready.eq(1)
            with m.If(self.fire):
                m.d.comb += issue_op.eq(Op.FIRE)
            with m.Elif(self.clear):
                m.d.comb += issue_op.eq(Op.CLEAR)
            with m.Elif(self.events.valid):
                m.d.comb += issue_op.eq(Op.INTEGRATE)

        with m.If((issue_op == Op.NONE) | (issue_group == G - 1)):
            m.d.sync += a_op.eq(Op.NONE)
        with m.Else():
            m.d.sync += a_op.eq(issue_op)
        # Loaded every cycle (they only matter while a_op is set): no enable from the handshake logic.
        m.d.sync += [a_group.eq(mem_rd.addr + 1), a_syn.eq(syn_rd.addr + 1)]
        m.d.sync += [b_op.eq(issue_op), b_group.eq(issue_group)]
        m.d.comb += [
            self.busy.eq(cont | (b_op != Op.NONE) | c_valid),
            self.fire_done.eq(c_valid & (c_group == G - 1)),
        ]

        # Stage B: integrate and write back, or test for spikes and emit v, s. Lanes past n_out in the
        # last group are forced to 0.
        m.d.comb += [lif.codes.eq(syn_rd.data), lif.membrane.eq(mem_rd.data)]
        tail = layer.n_out - (G - 1) * P
        lane_ok = Signal(P)
        with m.If(b_group == G - 1):
            m.d.comb += lane_ok.eq((1 << tail) - 1)
        with m.Else():
            m.d.comb += lane_ok.eq((1 << P) - 1)
        fired_membrane = Signal.like(lif.membrane)
        fired_spikes = Signal(P)
        with m.If(b_op == Op.FIRE):
            for i in range(P):
                with m.If(lane_ok[i]):
                    m.d.comb += [fired_membrane[i].eq(lif.membrane[i]), fired_spikes[i].eq(lif.spikes[i])]

        # Stage C, fire only: emit v and s, and write reset(leak(v), s) back. A stage of its own keeps
        # the fire test and the leak/reset arithmetic out of one block RAM to block RAM path, and the
        # outputs come from registers. The write port is free: integrate and clear writes (stage B)
        # never happen in the cycle after a fire pass's stage B.
        m.d.sync += [c_valid.eq(b_op == Op.FIRE), c_group.eq(b_group),
                     lif.fired_membrane.eq(fired_membrane), lif.fired_spikes.eq(fired_spikes)]
        m.d.comb += [self.out_valid.eq(c_valid), self.out_group.eq(c_group),
                     self.out_membrane.eq(lif.fired_membrane), self.out_spikes.eq(lif.fired_spikes)]
        with m.If(c_valid):
            m.d.comb += [mem_wr.addr.eq(c_group), mem_wr.en.eq(1), mem_wr.data.eq(lif.reset_next)]
        with m.Else():
            m.d.comb += [mem_wr.addr.eq(b_group), mem_wr.en.eq((b_op == Op.INTEGRATE) | (b_op == Op.CLEAR))]
            with m.If(b_op == Op.INTEGRATE):
                m.d.comb += mem_wr.data.eq(lif.integrated)
            # CLEAR writes the default 0 of mem_wr.data.
        return m
