"""Spike encoding on chip: a frame of intensities in, every timestep's input spike events out.

The rule is the contract's (docs/semantics.md, "On-chip encoding";
:func:`qlif.golden.spec.coding.encode_frames`): per input ``j`` an accumulator starts at ``c_j * L``, grows
by ``p_j * a`` every step and spikes when it reaches ``D = L * b``, which it then gives back. The
per-input state (the increment and the accumulator) lives in one memory word per input, and one
datapath (an adder and a comparison) visits the inputs in turn, as the core's layers visit their neurons.

:class:`SpikeEncoder` is the block; :class:`EncodedNetwork` is the core with an encoder in front of it,
a frame in and the core's outputs out.
"""

from __future__ import annotations

from fractions import Fraction

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qlif.golden.spec.coding import FRAME_BITS, encoder_constants, frame_levels_of, max_rate_of, parse_max_rate
from qlif.golden.spec.layouts import TOKEN_ADDR_BITS
from qlif.golden.spec.model import MAX_TIMESTEPS, Model
from qlif.hw.flash import DEFAULT_OFFSET
from qlif.hw.memory import MemoryPlan, plan_memories
from qlif.hw.network import Network, check_network, network_signature
from qlif.hw.serializer import Token

__all__ = ["FrameSignature", "SpikeEncoder", "EncodedNetwork"]


def FrameSignature() -> stream.Signature:
    """A frame's stream: one byte per input (the intensity ``0 .. L``), input 0 first."""
    return stream.Signature(unsigned(FRAME_BITS))


class SpikeEncoder(wiring.Component):
    """Rate coding on chip (docs/semantics.md, "On-chip encoding"): a frame in, ``T`` steps of events out.

    The encoder is the core's host for one sample: it takes a frame, clears the core, then sends every
    step's input spikes on ``events`` exactly as the host link does (ascending addresses, then an eot
    token), ``T`` steps, and takes the next frame.

    Parameters
    ----------
    n_in : int
        Inputs (frame bytes), ``1 .. 2^16``.
    timesteps : int
        ``T``, steps per sample.
    levels : int
        ``L``, the frame levels (16 or 255, :data:`qlif.golden.spec.coding.FRAME_LEVELS`).
    max_rate : Fraction, int or str
        ``r = a/b`` (:func:`qlif.golden.spec.coding.parse_max_rate`).

    Members
    -------
    frame : In(FrameSignature())
        The frame, ``n_in`` bytes, input 0 first; ``ready`` (a flip-flop state) while no sample is being
        encoded. A value above ``L`` counts as ``L`` (the host tools refuse it).
    events : Out(stream.Signature(Token))
        To the core's ``events``: per step the spiking inputs' addresses ascending, then eot (address 0).
        ``valid`` and the payload come from flip-flops and are held until taken.
    clear : Out(1)
        To the core's ``clear``: high from the frame's last byte until the core is ``idle`` (the clear is
        taken then: ``events.valid`` is low).
    core_idle : In(1)
        The core's ``idle``.
    busy : Out(1)
        Clearing the core or encoding a sample (from the cycle after the frame's last byte until the
        last step's eot is taken); ``frame.ready`` is low meanwhile. The next frame can thus be taken while
        the core still runs the last step: :class:`EncodedNetwork`'s ``busy`` covers that step too.

    Latency: the first step's first token is valid ``ENCODER_SCAN_START``
    (:mod:`qlif.golden.spec.cycles`) cycles after the clear is taken at the earliest
    (when input 0 spikes). Throughput: a
    frame byte per cycle; per step ``n_in + 1`` cycles (each input, then the eot) while ``events`` does
    not push back. The scan never waits between steps: an input without a spike passes stage X at once,
    a spiking one waits there while ``events`` still holds the previous token. So while the core, having
    taken a step's eot, finishes that step (``events.ready`` low), the encoder scans on into the next
    step up to its second token, and the next step costs the core the rest of the scan: more than its
    own work when ``n_in`` is large and layer 0 small (the exact latency of the pair:
    :func:`qlif.golden.spec.cycles.encoded_cycles`). Memory: ``n_in`` words of ``increment_bits + acc_bits``
    (:class:`~qlif.golden.spec.coding.EncoderConstants`; 9 bits on the digits at ``r = 1``, 16 on
    MNIST), and when ``b > 1`` a read-only one of the start phases (``acc_bits`` each).
    """

    def __init__(self, *, n_in: int, timesteps: int, levels: int, max_rate=1):
        if not isinstance(n_in, int) or isinstance(n_in, bool) or not 1 <= n_in <= 1 << TOKEN_ADDR_BITS:
            raise ValueError(f"n_in must be an integer 1..{1 << TOKEN_ADDR_BITS}, not {n_in!r}")
        if not isinstance(timesteps, int) or isinstance(timesteps, bool) or not 1 <= timesteps <= MAX_TIMESTEPS:
            raise ValueError(f"timesteps must be an integer 1..{MAX_TIMESTEPS}, not {timesteps!r}")
        self._n_in = n_in
        self._timesteps = timesteps
        self._max_rate = parse_max_rate(max_rate)
        self._k = encoder_constants(n_in, levels, self._max_rate)   # refuses other levels
        super().__init__({
            "frame": In(FrameSignature()),
            "events": Out(stream.Signature(Token)),
            "clear": Out(1),
            "core_idle": In(1),
            "busy": Out(1),
        })

    @classmethod
    def for_model(cls, model: Model) -> SpikeEncoder:
        """The encoder of ``model``: its ``n_in``, ``T``, frame levels and maximum rate (its metadata)."""
        if not isinstance(model, Model):
            raise TypeError(f"model must be a qlif.golden.spec.model.Model, not {model!r}")
        return cls(n_in=model.n_in, timesteps=model.timesteps, levels=frame_levels_of(model.metadata),
                   max_rate=max_rate_of(model.metadata))

    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def timesteps(self) -> int:
        return self._timesteps

    @property
    def levels(self) -> int:
        return self._k.levels

    @property
    def max_rate(self) -> Fraction:
        return self._max_rate

    def elaborate(self, platform):
        m = Module()
        k, n, steps = self._k, self._n_in, self._timesteps
        # One word per input: its increment p*a (written with the frame) and its accumulator (0 .. D-1).
        word = data.StructLayout({"inc": k.increment_bits, "acc": k.acc_bits})
        m.submodules.state = state = Memory(shape=word, depth=n, init=[])
        rd, wr = state.read_port(), state.write_port()
        phased = bool(k.start.any())     # b > 1 (some c_j > 0): the start phases are a ROM
        if phased:
            m.submodules.phases = phases = Memory(shape=unsigned(k.acc_bits), depth=n,
                                                  init=[int(c) for c in k.start])
            ph = phases.read_port()

        j = Signal(range(n))             # the next frame byte's input
        # The step pass, two stages. R: the slot whose word is being read, 0 .. n-1 an input, n the
        # step's eot (reads nothing, writes nothing: so the write-back of input n-1 and the read of input
        # 0 of the next step never meet, and the read port needs no transparency). X: the word read.
        r_slot, r_step, r_valid = Signal(range(n + 1)), Signal(range(steps)), Signal()
        x_slot, x_first, x_final, x_valid = Signal(range(n + 1)), Signal(), Signal(), Signal()
        out_final = Signal()             # events holds the sample's last eot

        ev = self.events
        x_eot = x_slot == n
        start = ph.data if phased else 0
        acc = Mux(x_first, start, rd.data.acc)       # step 0 starts from the phase, not the stored word
        total = Signal(k.acc_bits + 1)               # < D + L*a <= 2D
        m.d.comb += total.eq(acc + rd.data.inc)
        spike = total >= k.modulus
        token = x_eot | spike
        # X's slot leaves when it sends nothing, or when events can take its token this cycle.
        leaves = x_valid & (~token | ~ev.valid | ev.ready)
        advance = Signal()

        with m.If(ev.ready):
            m.d.sync += ev.valid.eq(0)
        with m.FSM(name="encoder"):
            with m.State("LOAD"):
                m.d.comb += self.frame.ready.eq(1)
                with m.If(self.frame.valid):
                    p = self.frame.payload
                    m.d.comb += [wr.en.eq(1), wr.addr.eq(j),
                                 wr.data.inc.eq(Mux(p > k.levels, k.levels, p) * k.multiplier)]
                    m.d.sync += j.eq(Mux(j == n - 1, 0, j + 1))
                    with m.If(j == n - 1):
                        m.next = "CLEAR"
            with m.State("CLEAR"):
                # The core takes the clear in the first idle cycle (no token is offered now).
                m.d.comb += [self.clear.eq(1), self.busy.eq(1)]
                with m.If(self.core_idle):
                    m.d.sync += [r_slot.eq(0), r_step.eq(0), r_valid.eq(1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), advance.eq(~x_valid | leaves)]
                with m.If(leaves & ~x_eot):
                    m.d.comb += [wr.en.eq(1), wr.addr.eq(x_slot), wr.data.inc.eq(rd.data.inc),
                                 wr.data.acc.eq(Mux(spike, total - k.modulus, total))]
                with m.If(leaves & token):
                    m.d.sync += [ev.valid.eq(1), ev.payload.addr.eq(Mux(x_eot, 0, x_slot)),
                                 ev.payload.eot.eq(x_eot), out_final.eq(x_final)]
                with m.If(advance):
                    m.d.sync += [x_valid.eq(r_valid), x_slot.eq(r_slot), x_first.eq(r_step == 0),
                                 x_final.eq((r_step == steps - 1) & (r_slot == n))]
                    with m.If(r_slot == n):
                        m.d.sync += [r_slot.eq(0), r_step.eq(r_step + 1)]
                        with m.If(r_step == steps - 1):
                            m.d.sync += r_valid.eq(0)
                    with m.Else():
                        m.d.sync += r_slot.eq(r_slot + 1)
                # The sample ends when the core takes the last eot (nothing is left in R or X then).
                with m.If(ev.valid & ev.ready & out_final):
                    m.d.sync += out_final.eq(0)
                    m.next = "LOAD"
        m.d.comb += [rd.addr.eq(r_slot), rd.en.eq(advance)]
        if phased:
            m.d.comb += [ph.addr.eq(r_slot), ph.en.eq(advance)]
        return m


class EncodedNetwork(wiring.Component):
    """The core (:class:`~qlif.hw.network.Network`) fed by a :class:`SpikeEncoder`: frames in, the
    core's outputs out, with the same values as the core run on the encoded stimuli from the host.

    Parameters
    ----------
    model, lanes, memory, flash_offset
        As :class:`~qlif.hw.network.Network`; the encoder's ``L`` and ``r`` come from the model's
        metadata (:meth:`SpikeEncoder.for_model`).

    Members
    -------
    frame : In(FrameSignature())
        A sample's frame (:class:`SpikeEncoder`), accepted while not ``busy``.
    busy : Out(1)
        From the cycle after a frame's last byte to ``done``.
    done : Out(1)
        One-cycle pulse with the sample's last ``step_done``: ``prediction`` and ``counts`` are final.
    flash, spram_sleep, spikes, trace, step_done, step_cycles, error, counts, prediction
        The core's (:class:`~qlif.hw.network.Network`), the same values; its ``events``, ``clear``
        and ``idle`` are the encoder's.

    Latency: the frame (``n_in`` cycles), then from its last byte to ``done``
    :func:`qlif.golden.spec.cycles.encoded_cycles`, exact: the clear (the core takes its first token
    ``max G + CLEAR_OVERHEAD`` cycles after the last byte, :mod:`qlif.golden.spec.cycles`), ``T`` steps
    of the cycle model and the cycles the core
    waits for the encoder's scan (not counted in ``step_cycles``), up to ``n_in + 1`` a step when the
    scan outlasts layer 0's events (``G_0`` cycles each; 1,780 to 2,975 cycles of waits in 6,346 to
    13,634 on the ternary MNIST 784-44-10 at P = 4, docs/architecture.md).
    Memory: the core's and the encoder's.
    """

    def __init__(self, *, model: Model, lanes: int, memory: MemoryPlan | None = None,
                 flash_offset: int = DEFAULT_OFFSET):
        check_network(model, lanes, memory)
        if not isinstance(flash_offset, int) or not 0 <= flash_offset < 1 << 24:
            raise ValueError(f"flash_offset must be a 24-bit byte address, not {flash_offset!r}")
        # The encoder's parameters are checked now (bad frame levels or max rate fail here, not later).
        encoder_constants(model.n_in, frame_levels_of(model.metadata), max_rate_of(model.metadata))
        self._model, self._lanes, self._flash_offset = model, lanes, flash_offset
        self._memory = memory if memory is not None else plan_memories(model, lanes, None)
        core = network_signature(model, lanes, self._memory)
        members = {name: member for name, member in core.members.items() if name not in ("events", "clear", "idle")}
        super().__init__({"frame": In(FrameSignature()), **members, "busy": Out(1), "done": Out(1)})
        #: Not a port: the core's ``integrating`` (:class:`~qlif.hw.network.Network`).
        self.integrating = Signal()
        #: Not a port: the core's ``idle`` (low while it loads SPRAM weights from the flash).
        self.core_idle = Signal()

    @property
    def model(self) -> Model:
        return self._model

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def memory(self) -> MemoryPlan:
        return self._memory

    @property
    def flash_offset(self) -> int:
        return self._flash_offset

    def elaborate(self, platform):
        m = Module()
        model = self._model
        m.submodules.encoder = enc = SpikeEncoder.for_model(model)
        m.submodules.core = core = Network(model=model, lanes=self._lanes, memory=self._memory,
                                           flash_offset=self._flash_offset)
        wiring.connect(m, wiring.flipped(self.frame), enc.frame)
        wiring.connect(m, enc.events, core.events)
        m.d.comb += [core.clear.eq(enc.clear), enc.core_idle.eq(core.idle)]
        wiring.connect(m, core.spikes, wiring.flipped(self.spikes))
        wiring.connect(m, core.trace, wiring.flipped(self.trace))
        m.d.comb += [self.integrating.eq(core.integrating), self.core_idle.eq(core.idle)]
        for name in ("step_done", "step_cycles", "error", "counts", "prediction"):
            m.d.comb += getattr(self, name).eq(getattr(core, name))
        if "flash" in self.signature.members:
            wiring.connect(m, wiring.flipped(self.flash), core.flash)
            m.d.comb += core.spram_sleep.eq(self.spram_sleep)
        # Steps of the sample done so far: the last one's step_done is the sample's end.
        step = Signal(range(model.timesteps))
        running = Signal()               # from the clear to done
        last = step == model.timesteps - 1
        m.d.comb += [self.done.eq(core.step_done & last), self.busy.eq(enc.busy | running)]
        with m.If(core.step_done):
            m.d.sync += step.eq(Mux(last, 0, step + 1))
            with m.If(last):
                m.d.sync += running.eq(0)
        # After the step_done block, so that it wins: the encoder takes the next frame while the core runs
        # the previous sample's last step, and that sample's clear can come in the cycle of its step_done.
        with m.If(enc.clear & core.idle):
            m.d.sync += [running.eq(1), step.eq(0)]
        return m
