"""One fully connected LIF layer: synapse and membrane memories around a shared P-lane datapath.

The layer does three kinds of pass, one P-wide neuron group per cycle, through a read-modify-write
pipeline of four stages: A presents the memory addresses; B is the synchronous read, whose data is
registered (nothing but wires between a block RAM's output and a flip-flop); C runs
:class:`qlif.hw.lif.LifDatapath` on the registered data; D writes the result back.

* integrate: one input event ``j`` takes G cycles (groups ``g = 0 .. G-1``), back to back with the next
  event, no bubbles; stage C computes ``sat(u + w)``, stage D writes it;
* fire: G cycles plus four for the last group; stage C tests ``s = v > theta`` and leaks ``v``, stage D
  writes ``reset(leak(v), s)``, the next step's pre-integration value (so that no leak pass and no
  previous-spike memory are needed), stage E emits ``v`` and ``s`` on ``out``;
* clear: G cycles writing zeros (a fresh neuron, ``v = s = 0``, has pre-integration value 0).

A membrane value written in stage D is read again by the same group's next op G cycles after that op
was issued; with G <= 3 that read happens before (or at) the write, so the value is forwarded to the
stage C registers instead (see :meth:`NeuronLayer.elaborate`).

Memory map (see docs/architecture.md): synapse word ``g*n_in + j`` holds the P codes of input ``j`` to
neurons ``g*P .. g*P+P-1`` (lane ``i`` in bits ``[i*b, (i+1)*b)``); membrane word ``g`` holds their
membranes (lane ``i`` in bits ``[i*k, (i+1)*k)``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, ReadPort
from amaranth.lib.wiring import In, Out

from qlif.golden.spec.cycles import check_lanes, groups
from qlif.golden.spec.layouts import synapse_words
from qlif.golden.spec.model import Layer as ModelLayer
from qlif.hw.flash import WriteSignature
from qlif.hw.lif import LifDatapath
from qlif.hw.memory import LOGIC_DEPTH
from qlif.hw.spram import SpramStore

__all__ = ["Op", "FireLayout", "NeuronLayer"]


class Op(enum.Enum, shape=2):
    """What a pipeline stage does with its neuron group."""
    NONE = 0
    INTEGRATE = 1
    FIRE = 2
    CLEAR = 3


def FireLayout(groups: int, lanes: int, membrane_bits: int) -> data.StructLayout:
    """One neuron group's fire result: ``group``, ``spikes`` (lane ``i`` is neuron ``group*P + i``),
    ``any`` (any of them set) and ``membrane`` (P signed lanes of ``membrane_bits``)."""
    return data.StructLayout({"group": max(1, (groups - 1).bit_length()), "spikes": lanes, "any": 1,
                              "membrane": data.ArrayLayout(signed(membrane_bits), lanes)})


def _width(n: int) -> int:
    """Bits for an unsigned value ``0 .. n-1`` (at least one)."""
    return max(1, (n - 1).bit_length())


class NeuronLayer(wiring.Component):
    """One LIF layer, time multiplexed over G = ceil(n_out / P) neuron groups.

    Parameters
    ----------
    layer : qlif.golden.spec.model.Layer
        Weights (baked into the synapse memory init) and neuron parameters.
    lanes : int
        P in :data:`qlif.golden.spec.cycles.LANES` (:func:`~qlif.golden.spec.cycles.check_lanes`).
    synapses : str
        ``"ebr"`` (default): the synapse memory is a block RAM with the weights as init values;
        ``"spram"``: a :class:`~qlif.hw.spram.SpramStore`, written through ``load`` before use.
    slice_width : int or None
        Block RAM only: build the synapse memory from bit slices of this width (each one block deep,
        :meth:`qlif.hw.memory.DeviceMemory.slice_width`) instead of one inferred memory.

    Members
    -------
    load : In(WriteSignature(P*b, n_in*G))
        Only with ``synapses="spram"``: writes synapse words (:class:`~qlif.hw.flash.FlashLoader`).
    sleep : In(1)
        Only with ``synapses="spram"``: the SPRAM's ``sleep`` (:class:`~qlif.hw.spram.SpramStore`; low,
        its default, unless the clock is stopped).
    events : In(stream.Signature(unsigned(ceil(log2 n_in))))
        Input spike addresses. ``ready`` is high when stage A is free; the accepting cycle already
        processes group 0, so an event costs exactly G cycles and events stream back to back.
    fire, clear : In(stream.Signature(0, always_ready=True))
        Requests without a payload: start a fire or clear pass in a ``valid`` cycle (group 0 in this
        cycle). Only while ``events.ready`` is high and ``events.valid`` low (the network sequences this).
    ready_next : Out(1)
        ``events.ready`` of the next cycle (stage A is free after this one), for a consumer that keeps
        its own registered copy of ``ready`` (the network's serializer read enable).
    busy : Out(1)
        A pass or an event is in a pipeline stage.
    fire_done : Out(1)
        Stage E holds the last group of a fire pass (the pass's last busy cycle).
    out : Out(stream.Signature(FireLayout(G, P, k), always_ready=True))
        Stage E of a fire pass, ``valid`` for each group (flip-flops, ``valid`` and ``payload`` all zero
        outside one): ``v`` (``membrane``, signed k-bit lanes) and ``s`` (``spikes``, P bits) of group
        ``group``, ``any`` when any of them is set; lanes past ``n_out`` read 0.

    Latency: an op issued at cycle ``c`` writes group ``g`` back at cycle ``c + g + 3`` (stage D); a fire
    pass emits it at ``c + g + 4`` (stage E).
    Throughput: P synapses per cycle while integrating (one group per cycle, no bubbles).
    Memory: synapse ``n_in * G`` words of ``P*b`` bits (a block RAM initialised with the weights, or with
    ``synapses="spram"`` an iCE40 SPRAM loaded through ``load``), membrane ``G`` words of ``P*k`` bits.
    """

    def __init__(self, *, layer: ModelLayer, lanes: int, synapses: str = "ebr", slice_width: int | None = None):
        if not isinstance(layer, ModelLayer):
            raise TypeError(f"layer must be a qlif.golden.spec.model.Layer, not {layer!r}")
        check_lanes(lanes)
        if synapses not in ("ebr", "spram"):
            raise ValueError(f"synapses must be 'ebr' or 'spram', not {synapses!r}")
        if slice_width is not None and (not isinstance(slice_width, int) or slice_width < 1):
            raise ValueError(f"slice_width must be a positive integer or None, not {slice_width!r}")
        self._slice = slice_width
        self._layer = layer
        self._lanes = lanes
        self._groups = groups(layer.n_out, lanes)
        self._synapses = synapses
        k = layer.membrane_bits
        load = {}
        if synapses == "spram":
            load = {"load": In(WriteSignature(lanes * layer.weight_bits, layer.n_in * self._groups)), "sleep": In(1)}
        super().__init__({
            **load,
            "events": In(stream.Signature(unsigned(_width(layer.n_in)))),
            "fire": In(stream.Signature(0, always_ready=True)),
            "clear": In(stream.Signature(0, always_ready=True)),
            "ready_next": Out(1),
            "busy": Out(1),
            "fire_done": Out(1),
            "out": Out(stream.Signature(FireLayout(self._groups, lanes, k), always_ready=True)),
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

    @property
    def synapses(self) -> str:
        """Where the synapse memory is: ``"ebr"`` (block RAM, weights in the bitstream) or ``"spram"``."""
        return self._synapses

    def elaborate(self, platform):
        m = Module()
        layer, P, G = self._layer, self._lanes, self._groups
        n_in, k = layer.n_in, layer.membrane_bits

        width = P * layer.weight_bits
        # Block RAM, not distributed RAM, whose read data comes through a multiplexer tree (the memory
        # planner counts these as blocks; tiny ones are left to Yosys).
        attrs = {"ram_style": "block"} if n_in * G >= LOGIC_DEPTH else None
        if self._synapses == "ebr" and (self._slice is None or self._slice >= width):
            m.submodules.syn = syn = Memory(shape=unsigned(width), depth=n_in * G, init=synapse_words(layer, P),
                                            attrs=attrs)
            syn_rd = syn.read_port()
        elif self._synapses == "ebr":
            # Bit slices, each one block RAM deep: the read data goes from the blocks straight to the
            # stage C register, with no multiplexer over rows of blocks.
            words = synapse_words(layer, P)
            syn_rd = ReadPort.Signature(addr_width=_width(n_in * G), shape=unsigned(width)).create(path=("syn",))
            for i, lo in enumerate(range(0, width, self._slice)):
                w = min(self._slice, width - lo)
                m.submodules[f"syn{i}"] = part = Memory(shape=unsigned(w), depth=n_in * G, attrs=attrs,
                                                        init=[(x >> lo) & ((1 << w) - 1) for x in words])
                rd = part.read_port()
                m.d.comb += [rd.addr.eq(syn_rd.addr), syn_rd.data[lo:lo + w].eq(rd.data)]
        else:
            # Loaded once at start-up through ``load``; the read port behaves as a block RAM's.
            m.submodules.syn = syn = SpramStore(width=P * layer.weight_bits, depth=n_in * G)
            syn_rd = syn.read
            wiring.connect(m, wiring.flipped(self.load), syn.write)
            m.d.comb += syn.sleep.eq(self.sleep)
        # A read during a write of the same group returns don't-care: forwarding replaces that data (no
        # collision logic from Yosys on the read path).
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(k), P), depth=G, init=[],
                                        attrs={"no_rw_check": 1})
        m.submodules.lif = lif = LifDatapath(layer=layer, lanes=P)
        mem_wr = mem.write_port()
        mem_rd = mem.read_port()

        # Stage A: the op in flight past its first group (the first group is issued straight from the
        # request, so a new event or pass costs no extra cycle) and the addresses of its next group.
        a_op = Signal(Op)
        a_group = Signal(range(G))
        a_syn = Signal(range(n_in * G))
        # Stage B: what the read data belongs to.
        b_op = Signal(Op)
        b_group = Signal(range(G))
        # Stage C: the registered read data and its op.
        c_op = Signal(Op)
        c_group = Signal(range(G))
        c_codes = Signal.like(syn_rd.data)
        c_membrane = Signal.like(mem_rd.data)
        # Stage D: the value to write back before its reset (``pending``), the lanes to reset (the
        # spikes of a fire pass, else none), and for the outputs v and s of a fire pass.
        d_op = Signal(Op)
        d_group = Signal(range(G))
        d_pending = Signal.like(c_membrane)
        d_resets = Signal(P)
        d_membrane = Signal.like(c_membrane)

        # The read addresses depend on registers and the event address only, not on valid or on the
        # request kind: reading speculatively is harmless and keeps the handshake logic off the path
        # into the block RAM address.
        # cont: stage A continues an op (a flip-flop of its own: events.ready fans out widely).
        cont = Signal()
        m.d.comb += [syn_rd.addr.eq(Mux(cont, a_syn, self.events.payload)),
                     mem_rd.addr.eq(Mux(cont, a_group, 0))]

        issue_op = Signal(Op)
        issue_group = Signal(range(G))
        with m.If(cont):
            m.d.comb += [issue_op.eq(a_op), issue_group.eq(a_group)]
        with m.Else():
            m.d.comb += self.events.ready.eq(1)
            with m.If(self.fire.valid):
                m.d.comb += issue_op.eq(Op.FIRE)
            with m.Elif(self.clear.valid):
                m.d.comb += issue_op.eq(Op.CLEAR)
            with m.Elif(self.events.valid):
                m.d.comb += issue_op.eq(Op.INTEGRATE)

        # Stage A is free in the next cycle when nothing is issued now or this is an op's last group.
        m.d.comb += self.ready_next.eq((issue_op == Op.NONE) | (issue_group == G - 1))
        with m.If(self.ready_next):
            m.d.sync += [a_op.eq(Op.NONE), cont.eq(0)]
        with m.Else():
            m.d.sync += [a_op.eq(issue_op), cont.eq(1)]
        # Loaded every cycle (they only matter while a_op is set): no enable from the handshake logic.
        m.d.sync += [a_group.eq(mem_rd.addr + 1), a_syn.eq(syn_rd.addr + n_in)]
        m.d.sync += [b_op.eq(issue_op), b_group.eq(issue_group)]
        m.d.sync += [c_op.eq(b_op), c_group.eq(b_group), c_codes.eq(syn_rd.data)]
        m.d.comb += [
            self.busy.eq(cont | (b_op != Op.NONE) | (c_op != Op.NONE) | (d_op != Op.NONE) | self.out.valid),
            self.fire_done.eq(self.out.valid & (self.out.payload.group == G - 1)),
        ]

        # Stage C: integrate (sat(u + w)), clear (0), or fire: the spike test, and the leak of the value
        # that the reset in stage D turns into the next step's pre-integration value. Lanes past n_out
        # in the last group are forced to 0 in the outputs.
        m.d.comb += [lif.codes.eq(c_codes), lif.membrane.eq(c_membrane)]
        tail = layer.n_out - (G - 1) * P
        lane_ok = Signal(P)
        with m.If(c_group == G - 1):
            m.d.comb += lane_ok.eq((1 << tail) - 1)
        with m.Else():
            m.d.comb += lane_ok.eq((1 << P) - 1)
        c_pending = Signal.like(c_membrane)
        fired_membrane = Signal.like(c_membrane)
        fired_spikes = Signal(P)
        with m.Switch(c_op):
            with m.Case(Op.INTEGRATE):
                m.d.comb += c_pending.eq(lif.integrated)
            with m.Case(Op.FIRE):
                m.d.comb += c_pending.eq(lif.leaked)
                for i in range(P):
                    with m.If(lane_ok[i]):
                        m.d.comb += [fired_membrane[i].eq(lif.membrane[i]), fired_spikes[i].eq(lif.spikes[i])]
            # CLEAR: c_pending stays 0.
        m.d.sync += [d_op.eq(c_op), d_group.eq(c_group), d_pending.eq(c_pending), d_resets.eq(fired_spikes),
                     d_membrane.eq(fired_membrane)]

        # Stage D: every kind of pass writes reset(pending, resets) back (pending itself unless a fire
        # pass spiked): one write path, no multiplexer between kinds of pass after the arithmetic.
        m.d.comb += [lif.pending.eq(d_pending), lif.resets.eq(d_resets),
                     mem_wr.addr.eq(d_group), mem_wr.en.eq(d_op != Op.NONE), mem_wr.data.eq(lif.reset_next)]

        # Stage E, fire only: v and s leave on ``out``, from flip-flops that are zero outside a fire pass
        # (the network ORs them over the layers). A stage of its own: the spike test, the lane mask and
        # the OR over P lanes do not fit one cycle with it at 100 MHz on an ECP5 (P = 32).
        e_fire = Signal()
        e_group = Signal.like(d_group)
        e_spikes = Signal(P)
        e_any = Signal()
        e_membrane = Signal.like(d_membrane)
        d_fire = d_op == Op.FIRE
        m.d.sync += [e_fire.eq(d_fire), e_group.eq(Mux(d_fire, d_group, 0)), e_spikes.eq(d_resets),
                     e_any.eq(d_resets.any()), e_membrane.eq(d_membrane)]
        out = self.out.payload
        m.d.comb += [self.out.valid.eq(e_fire), out.group.eq(e_group), out.membrane.eq(e_membrane),
                     out.spikes.eq(e_spikes), out.any.eq(e_any)]

        # Forwarding. Stage B's data was read at the clock edge that ended its op's stage A cycle, so
        # it misses the writes (stage D) of that cycle (a read during a write returns the old word) and
        # of the two before it: the ops issued 1, 2 and 3 cycles earlier. A group's next op is issued
        # at least G cycles after its previous one, so only the distances >= G need forwarding, and
        # none for G >= 4. Only integrate and clear writes are forwarded: a fire pass's writes are read
        # again in the next step only.
        c_writes = (c_op == Op.INTEGRATE) | (c_op == Op.CLEAR)
        d_writes = (d_op == Op.INTEGRATE) | (d_op == Op.CLEAR)
        w_valid = Signal()                        # the write of the last cycle, registered
        w_group = Signal(range(G))
        w_value = Signal.like(c_membrane)
        membrane = mem_rd.data
        if G <= 3:
            m.d.sync += [w_valid.eq(d_writes), w_group.eq(d_group), w_value.eq(d_pending)]
            membrane = Mux(w_valid & (w_group == b_group), w_value, membrane)
        if G <= 2:
            membrane = Mux(d_writes & (d_group == b_group), d_pending, membrane)
        if G == 1:
            membrane = Mux(c_writes, c_pending, membrane)
        m.d.sync += c_membrane.eq(membrane)
        return m
