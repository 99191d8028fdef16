"""The qlif core: a chain of time-multiplexed LIF layers run one timestep at a time.

Per step the layers run one after the other. Layer ``l`` integrates its input events (layer 0: the
``events`` stream; layer ``l > 0``: the spike addresses of layer ``l-1`` from the serializer) and then
fires; the fire pass pushes its nonzero spike masks into the serializer's queue, which feeds the next
layer, or, after the last layer, the ``spikes`` stream. Cycle model: :mod:`qlif.golden.cycles`,
architecture and memory map: docs/architecture.md.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from qlif.golden.cycles import LANES
from qlif.golden.model import Model

from .layer import Layer
from .serializer import Serializer

__all__ = ["Token", "TraceSignature", "Network"]

#: A spike address (``addr``) or the end of a timestep's spike train (``eot``, ``addr`` ignored).
Token = data.StructLayout({"addr": 16, "eot": 1})

MAX_LAYERS = 16      # the trace's layer field is 4 bits
TRACE_WIDTH = 16     # membranes on the trace are sign-extended to 16 bits


class TraceSignature(wiring.Signature):
    """Monitor port: ``v`` and ``s`` of one neuron group of one layer per valid cycle, no backpressure.

    Members: ``valid`` (1), ``layer`` (4), ``group`` (16), ``spikes`` (P; lane ``i`` is neuron
    ``group*P + i``), ``membrane`` (P lanes of signed 16 bits, lane ``i`` in bits ``[16i, 16i+16)``).
    """

    def __init__(self, lanes: int):
        super().__init__({
            "valid": Out(1),
            "layer": Out(4),
            "group": Out(16),
            "spikes": Out(lanes),
            "membrane": Out(data.ArrayLayout(signed(TRACE_WIDTH), lanes)),
        })


class Network(wiring.Component):
    """Event-driven LIF network core (one bitstream per model: weights are memory init values).

    Parameters
    ----------
    model : qlif.golden.model.Model
        The network; validated here (``ModelError`` if broken).
    lanes : int
        P, neurons updated per cycle, in :data:`qlif.golden.cycles.LANES`.

    Members
    -------
    events : In(stream.Signature(Token))
        Layer-0 input spikes of one step, strictly ascending, then one ``eot`` token.
    spikes : Out(stream.Signature(Token))
        Output-layer spike addresses of the step, ascending, then one ``eot`` token.
    trace : Out(TraceSignature(P))
        New ``v`` and ``s`` of every neuron group of every layer at every step, one cycle after the
        group's fire pipeline stage.
    step_done : Out(1)
        One-cycle pulse in the cycle after the ``spikes`` eot token was accepted.
    step_cycles : Out(32)
        Cycles the step took (valid with ``step_done``), counted from the cycle the step's first
        ``events`` token was accepted up to and including the spikes eot handshake, leaving out cycles
        spent waiting for ``events.valid``, cycles that accepted a dropped token and cycles waiting for
        ``spikes.ready``. Equal to :func:`qlif.golden.cycles.cycle_model`.
    clear : In(1)
        While ``idle``: zero all neuron state, the counters and the error flags (``max G + 1``
        cycles, ``idle`` low meanwhile).
    idle : Out(1)
        Waiting for the first token of a step (and not clearing).
    error : Out(2)
        Sticky: bit 0, an events address ``>= n_in``; bit 1, an address not strictly ascending within
        the step. The token is dropped and no state changes.
    counts : Out(ArrayLayout(unsigned(bit_length(T)), n_out))
        Output spikes per neuron since the last clear (saturating).
    prediction : Out(unsigned(ceil(log2 n_out)))
        Index of the largest count, ties to the lowest index; kept up to date incrementally as
        spikes are counted, valid whenever ``idle``.

    Latency and throughput: see :func:`qlif.golden.cycles.cycle_model`; a layer integrates P synapses
    per cycle. Memory: per layer, see :class:`qlif.hw.layer.Layer`; a queue of ``max G`` entries.
    """

    def __init__(self, *, model: Model, lanes: int):
        if not isinstance(model, Model):
            raise TypeError(f"model must be a qlif.golden.model.Model, not {model!r}")
        if lanes not in LANES:
            raise ValueError(f"lanes must be one of {LANES}, not {lanes!r}")
        model.validate()
        if len(model.layers) > MAX_LAYERS:
            raise ValueError(f"model must have at most {MAX_LAYERS} layers, not {len(model.layers)!r}")
        for l, layer in enumerate(model.layers):
            if max(layer.n_in, layer.n_out) > 1 << 16:
                raise ValueError(f"layers[{l}] must have at most 65536 inputs and neurons, not "
                                 f"{layer.n_in} x {layer.n_out}")
        self._model = model
        self._lanes = lanes
        self._count_width = model.timesteps.bit_length()
        super().__init__({
            "events": In(stream.Signature(Token)),
            "spikes": Out(stream.Signature(Token)),
            "trace": Out(TraceSignature(lanes)),
            "step_done": Out(1),
            "step_cycles": Out(32),
            "clear": In(1),
            "idle": Out(1),
            "error": Out(2),
            "counts": Out(data.ArrayLayout(unsigned(self._count_width), model.n_out)),
            "prediction": Out(unsigned(max(1, (model.n_out - 1).bit_length()))),
        })
        #: Not a port: high in the counted cycles of integrate phases (for benchmarks/bench_lanes.py).
        self.integrating = Signal()

    @property
    def model(self) -> Model:
        return self._model

    @property
    def lanes(self) -> int:
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        model, P = self._model, self._lanes
        layers = [Layer(layer=layer, lanes=P) for layer in model.layers]
        for l, layer in enumerate(layers):
            m.submodules[f"layer{l}"] = layer
        depth = max(layer.groups for layer in layers)
        m.submodules.ser = ser = Serializer(lanes=P, depth=depth, addr_width=16)

        # Fire results: to the trace (registered) and, when any lane spiked, to the spike queue.
        m.d.sync += self.trace.valid.eq(0)
        for l, layer in enumerate(layers):
            with m.If(layer.out_valid):
                m.d.sync += [self.trace.valid.eq(1), self.trace.layer.eq(l), self.trace.group.eq(layer.out_group),
                             self.trace.spikes.eq(layer.out_spikes)]
                m.d.sync += [self.trace.membrane[i].eq(layer.out_membrane[i]) for i in range(P)]
                m.d.comb += [ser.push_valid.eq(layer.out_spikes != 0), ser.push_group.eq(layer.out_group),
                             ser.push_mask.eq(layer.out_spikes)]

        started = Signal()                    # a token of this step was accepted
        have_last = Signal()                  # an address of this step was accepted ...
        addr_width = max(1, (model.n_in - 1).bit_length())
        last_addr = Signal(addr_width)        # ... and this was the latest
        work = Signal()                       # this cycle counts towards step_cycles
        cycles = Signal(32)
        m.d.sync += [cycles.eq(cycles + work), self.step_done.eq(0)]

        best_count = Signal(self._count_width)
        # best_count - 1 (mod 2^width), kept in a register of its own for a short argmax path.
        below = Signal(self._count_width, init=(1 << self._count_width) - 1)
        # Output spikes are counted one cycle after they leave, off the queue-to-register path; the last
        # one is counted in the eot cycle, so prediction is final by step_done.
        counted = Signal(model.n_out)               # one-hot: the neuron to count (decoded a cycle early)
        counted_addr = Signal(range(model.n_out))
        m.d.sync += counted.eq(0)
        self._count(m, counted, counted_addr, best_count, below)
        start_clear = Signal()

        with m.FSM(init="INT0"):
            for l, layer in enumerate(layers):
                last = l == len(layers) - 1
                with m.State(f"INT{l}"):
                    # Starting the fire pass in the cycle that takes eot costs no extra cycle: stage A
                    # is free then, and the last event's write-back (stage B) is to another group or
                    # visible through the transparent membrane read port when G = 1.
                    fire = Signal(name=f"fire{l}")
                    m.d.comb += [layer.fire.eq(fire), ser.restart.eq(fire)]
                    with m.If(fire):
                        m.next = f"FIRE{l}"
                    if l == 0:
                        tok = self.events
                        addr = tok.payload.addr
                        # Compares of addr_width bits, not 16: the checks sit on the path from the
                        # events port to the layer's pipeline registers.
                        low = addr[:addr_width]
                        in_range = (addr[addr_width:] == 0) & (low < model.n_in)
                        ascending = ~have_last | (low > last_addr)
                        good = in_range & ascending
                        m.d.comb += [
                            self.idle.eq(~started),
                            start_clear.eq(self.clear & ~started),
                            tok.ready.eq(layer.events.ready & ~start_clear),
                            layer.events.valid.eq(tok.valid & ~tok.payload.eot & good & ~start_clear),
                            layer.events.payload.eq(addr),
                            fire.eq(tok.valid & tok.ready & tok.payload.eot),
                            # Busy with the later groups of an event, or taking a good token.
                            work.eq(~layer.events.ready | (tok.valid & tok.ready & (tok.payload.eot | good))),
                        ]
                        with m.If(start_clear):
                            m.next = "CLEAR"
                        with m.If(tok.valid & tok.ready):
                            m.d.sync += started.eq(1)
                            with m.If(tok.payload.eot):
                                m.d.sync += have_last.eq(0)
                            with m.Elif(good):
                                m.d.sync += [have_last.eq(1), last_addr.eq(low)]
                            with m.Else():
                                # Out of range is not also "not ascending" (it is above every good address).
                                m.d.sync += self.error.eq(self.error | (in_range & ~ascending) << 1 | ~in_range)
                    else:
                        tok = ser.tokens
                        m.d.comb += [
                            tok.ready.eq(layer.events.ready),
                            layer.events.valid.eq(~tok.payload.eot),
                            layer.events.payload.eq(tok.payload.addr),
                            fire.eq(tok.ready & tok.payload.eot),
                            work.eq(1),
                        ]
                    m.d.comb += self.integrating.eq(work)

                with m.State(f"FIRE{l}"):
                    m.d.comb += work.eq(1)
                    with m.If(layer.fire_done):
                        m.next = "OUT" if last else f"INT{l + 1}"

            with m.State("OUT"):
                tok = ser.tokens
                addr = tok.payload.addr
                m.d.comb += [
                    self.spikes.valid.eq(1),
                    self.spikes.payload.eq(tok.payload),
                    tok.ready.eq(self.spikes.ready),
                    work.eq(self.spikes.ready),
                ]
                with m.If(self.spikes.ready):
                    with m.If(tok.payload.eot):
                        m.d.sync += [self.step_done.eq(1), self.step_cycles.eq(cycles + 1), cycles.eq(0),
                                     started.eq(0)]
                        m.next = "INT0"
                    with m.Else():
                        m.d.sync += [counted[i].eq(addr == i) for i in range(model.n_out)]
                        m.d.sync += counted_addr.eq(addr)

            with m.State("CLEAR"):
                with m.If(~any_busy(layers)):
                    m.next = "INT0"

        with m.If(start_clear):
            m.d.comb += [layer.clear.eq(1) for layer in layers]
            m.d.sync += [self.error.eq(0), self.counts.eq(0), best_count.eq(0), below.eq(below.init),
                         self.prediction.eq(0), cycles.eq(0), have_last.eq(0)]
        return m

    def _count(self, m: Module, hot, addr, best_count, below) -> None:
        """Count an output spike of neuron ``addr`` (one-hot ``hot``, or none) and keep ``prediction``
        its argmax (ties: lowest).

        Counts only ever grow by one, so the new maximum is either the old one or this neuron's count:
        no comparison tree over all counters is needed. Counter ``i`` becomes the argmax when it equals
        the maximum (it overtakes) or is one below it with ``i`` below the current argmax (a tie won).
        These tests use equalities and constants only, computed beside every counter in parallel, and
        the address just selects one: a short path for the iCE40.
        """
        top = (1 << self._count_width) - 1
        takes, grows = [], []       # per neuron: it becomes the argmax; and the maximum grows
        for i in range(self._model.n_out):
            count = self.counts[i]
            room = hot[i] & (count != top)
            with m.If(room):
                m.d.sync += count.eq(count + 1)
            grows.append(room & (count == best_count))
            takes.append(room & ((count == best_count) | ((count == below) & (self.prediction > i))))
        # OR trees (one-hot select), not a priority chain of if-statements.
        take, grow = Signal(), Signal()
        m.d.comb += [take.eq(Cat(*takes).any()), grow.eq(Cat(*grows).any())]
        with m.If(take):
            m.d.sync += self.prediction.eq(addr)
        with m.If(grow):
            m.d.sync += [best_count.eq(best_count + 1), below.eq(best_count)]


def any_busy(layers):
    """High while any layer has a pass in its pipeline."""
    busy = 0
    for layer in layers:
        busy = busy | layer.busy
    return busy
