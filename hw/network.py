"""The qlif core: a chain of time-multiplexed LIF layers run one timestep at a time.

Per step the layers run one after the other. Layer ``l`` integrates its input events (layer 0: the
``events`` stream; layer ``l > 0``: the spike addresses of layer ``l-1`` from the serializer) and then
fires; the fire pass pushes its nonzero spike masks into the serializer's queue, which feeds the next
layer, or, after the last layer, the ``spikes`` stream. Cycle model: :mod:`qlif.golden.spec.cycles`,
architecture and memory map: docs/architecture.md.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qlif.golden.spec.cycles import check_lanes
from qlif.golden.spec.layouts import TOKEN_ADDR_BITS
from qlif.golden.spec.model import Model
from qlif.hw.flash import DEFAULT_OFFSET, FlashLoader, FlashSignature
from qlif.hw.layer import NeuronLayer
from qlif.hw.memory import MemoryPlan, plan_memories
from qlif.hw.serializer import Serializer, Token

__all__ = ["Token", "TraceLayout", "FlashSignature", "CoreSignature", "check_network", "network_signature",
           "Network"]

MAX_LAYERS = 16      # the trace's layer field is 4 bits
TRACE_WIDTH = 16     # membranes on the trace are sign-extended to 16 bits
#: The trace's index fields: a layer (``0 .. MAX_LAYERS-1``) and a group (at most a neuron index).
_TRACE_LAYER_BITS = (MAX_LAYERS - 1).bit_length()
_TRACE_GROUP_BITS = TOKEN_ADDR_BITS


def TraceLayout(lanes: int) -> data.StructLayout:
    """The trace's payload: ``v`` and ``s`` of one neuron group of one layer.

    ``layer`` (4), ``group`` (16), ``spikes`` (P; lane ``i`` is neuron ``group*P + i``), ``membrane`` (P
    lanes of signed 16 bits, lane ``i`` in bits ``[16i, 16i+16)``).
    """
    return data.StructLayout({"layer": _TRACE_LAYER_BITS, "group": _TRACE_GROUP_BITS, "spikes": lanes,
                              "membrane": data.ArrayLayout(signed(TRACE_WIDTH), lanes)})


class CoreSignature(wiring.Signature):
    """The core as the host link drives it: what :class:`Network` and the clock-domain crossing
    (:class:`~qlif.boards.link.crossing.CoreCrossing`) both offer, with the same meaning.

    Members (as in :class:`Network`): ``events`` (In, a :data:`Token` stream), ``clear`` (In), ``idle``,
    ``step_done``, ``step_cycles`` (32), ``error`` (2), ``counts`` and ``prediction`` (Out). A block
    with more ports (the core's ``spikes``, ``trace``, ``flash``) passes them in ``extra``: its signature
    is still a ``CoreSignature``, and :meth:`face` is the part of it that the link connects to.

    Parameters
    ----------
    model : qlif.golden.spec.model.Model
        Sets the shapes of ``counts`` and ``prediction``.
    extra : dict
        Further members (``flash`` goes first, ``spikes`` and ``trace`` after ``events``, others last:
        the order of the core's Verilog ports).
    """

    def __init__(self, model: Model, *, extra: dict | None = None):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a qlif.golden.spec.model.Model, not {model!r}")
        self._model = model
        extra = dict(extra or {})
        # The core's ports in the order of its Verilog ports (the flash first, its streams together).
        flash = {"flash": extra.pop("flash")} if "flash" in extra else {}
        streams = {name: extra.pop(name) for name in ("spikes", "trace") if name in extra}
        super().__init__({
            **flash,
            "events": In(stream.Signature(Token)),
            **streams,
            "step_done": Out(1),
            "step_cycles": Out(32),
            "clear": In(1),
            "idle": Out(1),
            "error": Out(2),
            "counts": Out(data.ArrayLayout(unsigned(model.timesteps.bit_length()), model.n_out)),
            "prediction": Out(unsigned(max(1, (model.n_out - 1).bit_length()))),
            **extra,
        })

    @property
    def model(self) -> Model:
        return self._model

    def core(self) -> CoreSignature:
        """The core members alone (the signature the link connects to)."""
        return CoreSignature(self._model)

    def face(self, obj):
        """The core members of ``obj`` (a block with this signature) as an interface object of
        :meth:`core`'s signature, for ``wiring.connect``; ``obj`` itself when it has no others."""
        core = self.core()
        if set(self.members) == set(core.members):
            return obj
        return _Face(core, obj)


class _Face:
    """Some members of an interface object, as an interface object of their own signature."""

    def __init__(self, signature: wiring.Signature, obj):
        self.signature = signature
        for name in signature.members:
            setattr(self, name, getattr(obj, name))


def check_network(model: Model, lanes: int, memory: MemoryPlan | None = None) -> None:
    """The checks :class:`Network` makes of its ``model``, ``lanes`` and ``memory`` (``ModelError``,
    ``TypeError``, ``ValueError``), for a block that builds one when elaborated and must refuse bad ones at
    once."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a qlif.golden.spec.model.Model, not {model!r}")
    check_lanes(lanes)
    model.validate()
    if len(model.layers) > MAX_LAYERS:
        raise ValueError(f"model must have at most {MAX_LAYERS} layers, not {len(model.layers)!r}")
    for l, layer in enumerate(model.layers):
        if max(layer.n_in, layer.n_out) > 1 << TOKEN_ADDR_BITS:
            raise ValueError(f"layers[{l}] must have at most {1 << TOKEN_ADDR_BITS} inputs and neurons, not "
                             f"{layer.n_in} x {layer.n_out}")
    if memory is not None and (not isinstance(memory, MemoryPlan) or len(memory.synapses) != len(model.layers)):
        raise TypeError(f"memory must be a MemoryPlan for the model's {len(model.layers)} layers, not {memory!r}")


def network_signature(model: Model, lanes: int, memory: MemoryPlan) -> CoreSignature:
    """The signature of a :class:`Network` of ``model``, ``lanes`` and the memory plan ``memory`` (for a
    block that offers the core's outputs and builds the core only when elaborated)."""
    flash = {"flash": Out(FlashSignature()), "spram_sleep": In(1)} if memory.uses_spram else {}
    return CoreSignature(model, extra={
        **flash,
        "spikes": Out(stream.Signature(Token)),
        "trace": Out(stream.Signature(TraceLayout(lanes), always_ready=True)),
    })


class Network(wiring.Component):
    """Event-driven LIF network core (one bitstream per model: weights are memory init values).

    Parameters
    ----------
    model : qlif.golden.spec.model.Model
        The network; validated here (``ModelError`` if broken).
    lanes : int
        P, neurons updated per cycle, in :data:`qlif.golden.spec.cycles.LANES`.
    memory : MemoryPlan or None
        Where the synapse memories go (:func:`qlif.hw.memory.plan_memories`), made for its device by
        the board top. ``None`` (default): the generic plan (simulation, Verilog: block RAM with the
        weights as init values). A plan that puts synapses in SPRAM adds the ``flash`` port.
    flash_offset : int
        Byte address of the weight image in the SPI flash (only used with SPRAM).

    Members
    -------
    flash : Out(FlashSignature())
        Only with a ``memory`` plan that uses SPRAM: the SPI flash the synapse weights are
        loaded from after reset (:class:`~qlif.hw.flash.FlashLoader`); meanwhile ``idle`` and
        ``events.ready`` stay low.
    spram_sleep : In(1)
        Only with a ``memory`` plan that uses SPRAM: puts the SPRAM synapse memories to sleep, keeping
        their contents (:class:`~qlif.hw.spram.SpramStore` ``sleep``). Low (its default) unless the
        core's clock is stopped, and released long enough before it runs again for the SPRAM to wake.
    events : In(stream.Signature(Token))
        Layer-0 input spikes of one step, strictly ascending, then one ``eot`` token. Checked as they are
        taken (``ready`` is a flip-flop), they wait in a two-entry queue for layer 0. No token of the
        next step is taken before ``step_done``.
    spikes : Out(stream.Signature(Token))
        Output-layer spike addresses of the step, ascending, then one ``eot`` token.
    trace : Out(stream.Signature(TraceLayout(P), always_ready=True))
        New ``v`` and ``s`` of every neuron group of every layer at every step, one cycle after the
        group's fire pipeline stage (no backpressure: a monitor samples every ``valid`` cycle).
    step_done : Out(1)
        One-cycle pulse two cycles after the ``spikes`` eot token was accepted (``prediction`` and
        ``counts`` are final then).
    step_cycles : Out(32)
        Cycles the step took (valid with ``step_done``), counted from the cycle the step's first
        ``events`` token left the input queue (the cycle after it was taken, when the core was idle) up
        to the cycle after the spikes eot handshake, leaving out cycles spent waiting for
        ``events.valid``, cycles that dropped a token and cycles waiting for ``spikes.ready``. Equal to
        :func:`qlif.golden.spec.cycles.cycle_model`.
    clear : In(1)
        While ``idle`` and unless a token is taken in the same cycle: zero all neuron state, the counters,
        the prediction and the error flags (``max G + 4`` cycles, ``idle`` low meanwhile; ``counts`` and
        ``prediction`` are zero from the second cycle after the request).
    idle : Out(1)
        Waiting for the first token of a step (and not clearing, nor loading SPRAM weights).
    error : Out(2)
        Sticky: bit 0, an events address ``>= n_in``; bit 1, an address not strictly ascending within
        the step. The token is dropped and no state changes.
    counts : Out(ArrayLayout(unsigned(bit_length(T)), n_out))
        Output spikes per neuron since the last clear (saturating).
    prediction : Out(unsigned(ceil(log2 n_out)))
        Index of the largest count, ties to the lowest index; kept up to date incrementally as
        spikes are counted, valid whenever ``idle``.

    The signature is a :class:`CoreSignature` (with ``spikes``, ``trace`` and ``flash`` besides).

    Latency and throughput: see :func:`qlif.golden.spec.cycles.cycle_model`; a layer integrates P synapses
    per cycle. Memory: per layer, see :class:`qlif.hw.layer.NeuronLayer`; a queue of ``max G`` entries; where
    they go on a device, :mod:`qlif.hw.memory`.
    """

    def __init__(self, *, model: Model, lanes: int, memory: MemoryPlan | None = None,
                 flash_offset: int = DEFAULT_OFFSET):
        check_network(model, lanes, memory)
        if not isinstance(flash_offset, int) or not 0 <= flash_offset < 1 << 24:
            raise ValueError(f"flash_offset must be a 24-bit byte address, not {flash_offset!r}")
        self._model = model
        self._lanes = lanes
        self._memory = memory if memory is not None else plan_memories(model, lanes, None)
        self._flash_offset = flash_offset
        self._count_width = model.timesteps.bit_length()
        super().__init__(network_signature(model, lanes, self._memory))
        #: Not a port: high in the counted cycles of integrate phases (for benchmarks/bench_lanes.py).
        self.integrating = Signal()

    @property
    def model(self) -> Model:
        return self._model

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def addr_width(self) -> int:
        """Bits of an input address the core keeps (``0 .. n_in-1``); the higher bits of ``events`` must
        be zero (the core's range check flags a token whose are not)."""
        return max(1, (self._model.n_in - 1).bit_length())

    @property
    def memory(self) -> MemoryPlan:
        """The memory plan (the generic one unless one was given)."""
        return self._memory

    @property
    def flash_offset(self) -> int:
        """Byte address of the weight image in the SPI flash (with a plan that uses SPRAM)."""
        return self._flash_offset

    def elaborate(self, platform):
        m = Module()
        model, P = self._model, self._lanes
        plan = self._memory
        slices = plan.slices or (None,) * len(model.layers)
        layers = [NeuronLayer(layer=layer, lanes=P, synapses=kind, slice_width=w)
                  for layer, kind, w in zip(model.layers, plan.synapses, slices, strict=True)]
        for l, layer in enumerate(layers):
            m.submodules[f"layer{l}"] = layer
        # Synapses in SPRAM are loaded from the flash first; until then the core takes no token.
        loading = Signal(init=plan.uses_spram)
        if plan.uses_spram:
            self._load(m, layers, loading)
        depth = max(layer.groups for layer in layers)
        m.submodules.ser = ser = Serializer(lanes=P, depth=depth, addr_width=TOKEN_ADDR_BITS)

        # Fire results: to the trace (registered) and, when any lane spiked, to the spike queue. One layer
        # fires at a time, so the queue's inputs are ORs of the layers' (zero when idle) outputs.
        trace = self.trace.payload
        m.d.sync += self.trace.valid.eq(0)
        push_valid, push_group, push_mask = 0, 0, 0
        for l, layer in enumerate(layers):
            out = layer.out.payload
            with m.If(layer.out.valid):
                m.d.sync += [self.trace.valid.eq(1), trace.layer.eq(l), trace.group.eq(out.group),
                             trace.spikes.eq(out.spikes)]
                m.d.sync += [trace.membrane[i].eq(out.membrane[i]) for i in range(P)]
            # All zero outside a fire pass's stage D.
            push_valid = push_valid | out.any
            push_group = push_group | out.group
            push_mask = push_mask | out.spikes
        m.d.comb += [ser.push.valid.eq(push_valid), ser.push.payload.group.eq(push_group),
                     ser.push.payload.mask.eq(push_mask)]

        started = Signal()                    # a token of this step was accepted
        addr_width = self.addr_width
        # The lowest address the next token may have: the step's last good address plus one, or 0.
        next_addr = Signal(addr_width + 1)
        # The input queue: tokens taken from ``events`` wait here, already checked, for layer 0 (two
        # entries, so that ``events.ready`` can be a flip-flop at full throughput). The checks (two
        # comparisons) end in flip-flops, not in layer 0's pipeline registers.
        entry = data.StructLayout({"valid": 1, "eot": 1, "good": 1, "addr": addr_width})
        queue = [Signal(entry, name="in0"), Signal(entry, name="in1")]
        # events.ready: the queue has room and the step's eot has not been taken yet (``closed``).
        accepting = Signal(init=1)
        closed = Signal()
        work = Signal()                       # this cycle counts towards step_cycles
        # Counted a cycle later, from a flip-flop: the decision and the 32-bit carry chain stay apart.
        worked = Signal()
        cycles = Signal(32)
        m.d.sync += [worked.eq(work), cycles.eq(cycles + worked), self.step_done.eq(0)]

        # Output spikes are counted off the queue-to-register path: one cycle after they leave (``hot``,
        # the neuron decoded one-hot) the counter grows and the argmax tests are registered, one cycle
        # later the argmax is updated (see _count).
        hot = Signal(model.n_out)
        hot_addr = Signal(range(model.n_out))
        m.d.sync += hot.eq(0)
        start_clear = Signal()
        clearing = Signal()
        self._count(m, hot, hot_addr, clearing)

        # The state machine, one-hot: a flip-flop per state (INT{l}, FIRE{l}, OUT, DONE, CLEAR), so that
        # no state decoding sits in front of the many signals that depend on the state. A state's
        # flip-flop clears when one of its exits is taken and sets when an entry into it is.
        names = [f"{kind}{l}" for l in range(len(layers)) for kind in ("INT", "FIRE")] + ["OUT", "DONE", "CLEAR"]
        state = {name: Signal(name=f"st_{name}", init=name == "INT0") for name in names}
        moves = []                            # (from, to, condition)

        # The serializer's reader: layer l in INT{l} (l > 0), the spikes port in OUT. The layers' part is
        # a flip-flop (``int_ready``, computed from the next state and the layers' ``ready_next``): the
        # serializer's head update after ``ready`` is the core's slowest path on the iCE40, and this takes
        # the state decoding and the AND with the layers' ready off it.
        nxt = {name: Signal(name=f"st_{name}_next") for name in state}
        int_ready = Signal()
        m.d.sync += int_ready.eq(Cat(*(nxt[f"INT{l}"] & layers[l].ready_next for l in range(1, len(layers)))).any())
        ser_ready = (self.spikes.ready & state["OUT"]) | int_ready
        m.d.comb += [ser.tokens.ready.eq(ser_ready),
                     ser.reading.eq(Cat(state["OUT"], *(state[f"INT{l}"] for l in range(1, len(layers)))).any())]

        for l, layer in enumerate(layers):
            following = "OUT" if l == len(layers) - 1 else f"INT{l + 1}"
            # Starting the fire pass in the cycle that takes eot costs no extra cycle: stage A is free
            # then, and the last event's write-back is to another group, or forwarded.
            fire = Signal(name=f"fire{l}")
            m.d.comb += layer.fire.valid.eq(fire)
            moves.append((f"INT{l}", f"FIRE{l}", fire))
            with m.If(state[f"INT{l}"]):
                if l == 0:
                    self._input(m, layer, fire, start_clear, work, started, next_addr,
                                queue, accepting, closed, loading)
                else:
                    tok = ser.tokens
                    m.d.comb += [
                        layer.events.valid.eq(~tok.payload.eot),
                        layer.events.payload.eq(tok.payload.addr),
                        fire.eq(layer.events.ready & tok.payload.eot),
                        work.eq(1),
                    ]
                m.d.comb += self.integrating.eq(work)
            with m.If(state[f"FIRE{l}"]):
                m.d.comb += work.eq(1)
            moves.append((f"FIRE{l}", following, state[f"FIRE{l}"] & layer.fire_done))
        moves.append(("INT0", "CLEAR", start_clear))

        tok = ser.tokens
        addr = tok.payload.addr
        out_eot = Signal()
        with m.If(state["OUT"]):
            m.d.comb += [
                self.spikes.valid.eq(1),
                self.spikes.payload.eq(tok.payload),
                work.eq(self.spikes.ready),
                out_eot.eq(self.spikes.ready & tok.payload.eot),
            ]
            with m.If(self.spikes.ready & ~tok.payload.eot):
                m.d.sync += [hot[i].eq(addr == i) for i in range(model.n_out)]
                m.d.sync += hot_addr.eq(addr)
        moves.append(("OUT", "DONE", out_eot))

        with m.If(state["DONE"]):
            # The last spike's argmax update happens in this cycle, so prediction is final with
            # step_done. This cycle counts, and so does the one before: DONE is only entered from the
            # OUT cycle that hands over the eot token, which counts (work = spikes.ready = 1), so
            # ``worked`` is 1 here and the total is cycles + 2 (one carry chain; ``cycles + worked + 1``
            # was two in a row, the core's slowest path on the iCE40).
            m.d.sync += [self.step_done.eq(1), self.step_cycles.eq(cycles + 2), cycles.eq(0),
                         started.eq(0), closed.eq(0), accepting.eq(1)]
        moves.append(("DONE", "INT0", state["DONE"]))

        cleared = state["CLEAR"] & ~clearing & ~any_busy(layers)
        with m.If(cleared):
            m.d.sync += accepting.eq(1)
        moves.append(("CLEAR", "INT0", cleared))

        for name, flag in state.items():
            leave = [cond for src, _, cond in moves if src == name]
            enter = [cond for _, dst, cond in moves if dst == name]
            m.d.comb += nxt[name].eq((flag & ~Cat(*leave).any()) | Cat(*enter).any())
            m.d.sync += flag.eq(nxt[name])

        # The layers start their clear pass one cycle after the request, from a flip-flop.
        m.d.sync += clearing.eq(start_clear)
        m.d.comb += [layer.clear.valid.eq(clearing) for layer in layers]
        with m.If(start_clear):
            m.d.sync += [self.error.eq(0), next_addr.eq(0), accepting.eq(0)]
        # The cycle counter is zeroed from the flip-flop too: the request logic (after events.valid)
        # in front of its 32 resets was the core's slowest path on the iCE40 once the serializer's was
        # cut. Nothing counts in between (the core is idle: worked is 0).
        with m.If(clearing):
            m.d.sync += cycles.eq(0)
        return m

    def _input(self, m: Module, layer: NeuronLayer, fire, start_clear, work, started, next_addr,
               queue, accepting, closed, loading) -> None:
        """State ``INT0``: take ``events`` tokens into the input queue, check them, feed layer 0."""
        model = self._model
        tok = self.events
        addr = tok.payload.addr
        head, second = queue
        addr_width = len(head.addr)
        # Compares of addr_width bits, not 16 (the upper bits must be zero anyway).
        low = addr[:addr_width]
        in_range = (addr[addr_width:] == 0) & (low < model.n_in)
        # One comparison (a carry chain) and no flag: next_addr is 0 at the start of a step.
        ascending = low >= next_addr
        good = in_range & ascending
        take = tok.valid & accepting & ~loading
        # The head leaves when layer 0 takes its event or eot (stage A is free), or when it is dropped.
        issue = head.valid & layer.events.ready & (head.eot | head.good)
        leaves = issue | (head.valid & ~head.eot & ~head.good)
        m.d.comb += [
            self.idle.eq(~started & ~loading),
            # A clear is taken while idle, unless a token is taken in the same cycle.
            start_clear.eq(self.clear & ~started & ~loading & ~take),
            tok.ready.eq(accepting & ~loading),
            layer.events.valid.eq(head.valid & ~head.eot & head.good),
            layer.events.payload.eq(head.addr),
            fire.eq(head.valid & head.eot & layer.events.ready),
            # Busy with the later groups of an event, or issuing an event or the eot.
            work.eq(~layer.events.ready | issue),
        ]
        new = Signal.like(head)
        m.d.comb += [new.valid.eq(1), new.eot.eq(tok.payload.eot), new.good.eq(good), new.addr.eq(low)]
        # A two-entry queue in registers; ``accepting`` for the next cycle is computed from its next
        # state, so events.ready is a flip-flop.
        head_next, second_next = Signal.like(head), Signal.like(head)
        with m.If(leaves):
            m.d.comb += [head_next.eq(Mux(second.valid, second, Mux(take, new, 0))),
                         second_next.eq(Mux(second.valid & take, new, 0))]
        with m.Else():
            m.d.comb += [head_next.eq(Mux(head.valid, head, Mux(take, new, 0))),
                         second_next.eq(Mux(head.valid & take, new, second))]
        closing = take & tok.payload.eot
        m.d.sync += [head.eq(head_next), second.eq(second_next), closed.eq(closed | closing),
                     accepting.eq(~closed & ~closing & ~second_next.valid)]
        # The handshake alone enables these registers; the comparisons only select their new values
        # (two short paths instead of one long one).
        with m.If(take):
            eot = tok.payload.eot
            m.d.sync += [
                started.eq(1),
                next_addr.eq(Mux(eot, 0, Mux(good, low + 1, next_addr))),
                # Out of range is not also "not ascending" (it is above every good address).
                self.error.eq(self.error | Mux(eot, 0, (in_range & ~ascending) << 1 | ~in_range)),
            ]

    def _load(self, m: Module, layers: list[NeuronLayer], loading: Signal) -> None:
        """Fill the SPRAM synapse memories from the flash after reset, then clear ``loading``."""
        spram = [layer for layer in layers if layer.synapses == "spram"]
        m.submodules.loader = loader = FlashLoader(
            targets=[(self._lanes * layer.layer.weight_bits, layer.layer.n_in * layer.groups) for layer in spram],
            offset=self._flash_offset)
        for i, layer in enumerate(spram):
            wiring.connect(m, getattr(loader, f"t{i}"), layer.load)
            m.d.comb += layer.sleep.eq(self.spram_sleep)
        with m.If(loader.done):
            m.d.sync += loading.eq(0)
        wiring.connect(m, wiring.flipped(self.flash), loader.flash)

    def _count(self, m: Module, hot, hot_addr, clearing) -> None:
        """Count an output spike of neuron ``hot_addr`` (one-hot ``hot``, or none) and keep ``prediction``
        its argmax (ties: lowest), in two pipeline stages.

        Counts only ever grow by one, so the new maximum is either the old one or this neuron's count:
        no comparison tree over all counters is needed. Neuron ``i`` becomes the argmax when its count
        equals the maximum (it overtakes, the maximum grows) or is one below it with ``i`` below the
        current argmax (it wins a tie). Stage 1 (the cycle ``hot`` is set) counts and registers the two
        tests, computed beside every counter in parallel and selected by ``hot``; stage 2 updates the
        argmax. Stage 1 of a spike may run in the same cycle as stage 2 of the previous one, and so see
        the maximum and argmax before that update. Spikes of a step come in ascending neuron order, so
        that update can only be: none (the tests stand), a tie won by a lower neuron (this one can
        only still overtake), or an overtake (this one can no longer win, not even a tie).
        """
        top = (1 << self._count_width) - 1
        best = Signal(self._count_width)
        # best - 1 (mod 2^width), kept in a register of its own for a short path.
        below = Signal(self._count_width, init=top)
        overtakes, ties = [], []
        for i in range(self._model.n_out):
            count = self.counts[i]
            room = hot[i] & (count != top)
            with m.If(room):
                m.d.sync += count.eq(count + 1)
            overtakes.append(room & (count == best))
            ties.append(room & (count == below) & (self.prediction > i))
        # Stage 2's inputs (the tests of every neuron, all zero but the counted one's), and its results
        # of the last cycle.
        s2_overtakes, s2_ties, s2_addr = Signal(len(overtakes)), Signal(len(ties)), Signal.like(hot_addr)
        took, grew = Signal(), Signal()
        m.d.sync += [s2_overtakes.eq(Cat(*overtakes)), s2_ties.eq(Cat(*ties)), s2_addr.eq(hot_addr)]
        # OR trees (one-hot select), not a priority chain of if-statements.
        grow = s2_overtakes.any() & ~grew
        take = grow | (s2_ties.any() & ~took)
        m.d.sync += [took.eq(take), grew.eq(grow)]
        with m.If(take):
            m.d.sync += self.prediction.eq(s2_addr)
        with m.If(grow):
            m.d.sync += [best.eq(best + 1), below.eq(best)]
        # Cleared in the first cycle of the clear pass (``clearing``, a flip-flop), not in the cycle the
        # request is taken: the argmax's update enable then has a flip-flop, not the request logic,
        # beside its OR trees (the core's slowest path on the iCE40). No spike is counted meanwhile.
        with m.If(clearing):
            m.d.sync += [self.counts.eq(0), best.eq(0), below.eq(below.init), self.prediction.eq(0),
                         s2_overtakes.eq(0), s2_ties.eq(0), took.eq(0), grew.eq(0)]


def any_busy(layers):
    """High while any layer has a pass in its pipeline."""
    busy = 0
    for layer in layers:
        busy = busy | layer.busy
    return busy
