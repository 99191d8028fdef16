"""The core's ports keep their contracts, its membranes their range, its state machines their states.

Proved on a small :class:`~qlif.hw.network.Network` (:func:`small_model`: two layers at P = 2, a timestep
of a few dozen cycles) whose environment is free within the port contract: ``events`` tokens of any
address (good, out of range or out of order) and ``eot`` at any time, held until taken (the producer's
stream rules, assumed), ``spikes.ready`` and ``clear`` free in every cycle. The properties, asserted in
every cycle:

* ``network-spikes-stream``: ``spikes`` obeys the stream rules: once ``valid`` is high without ``ready``,
  ``valid`` stays high and ``payload`` stays the same in the next cycle (no valid withdrawn, payload held
  until taken);
* ``network-events-stream``: ``events`` keeps its side of the contract: after a step's ``eot`` is taken,
  no token is taken before ``step_done`` (the Network docstring: "No token of the next step is taken
  before step_done");
* ``network-membrane-range``: every membrane on ``trace`` lies in ``[-2^(k-1), 2^(k-1) - 1]`` of the
  layer it names (the trace sign-extends them to 16 bits). Inside the layers a membrane is a ``k``-bit
  signed memory word or register, in range by its type; that the values put there are the contract's
  (saturated, never wrapped) is the datapath proof's (:mod:`qlif.sim.proofs.lif`);
* ``network-fsm-onehot``: the core's state machine, a one-hot register (a flip-flop per state,
  ``st_INT0`` .. ``st_CLEAR``), has exactly one flip-flop set;
* ``flash-fsm-legal``: the SPI flash loader's state machine (an Amaranth ``m.FSM``, binary encoded) holds
  one of its states' codes, never one of the unused codes of its state register.

All are k-induction proofs. The membrane range and the flash FSM's states are inductive on their own
(the trace is loaded only from a layer's k-bit output; an Amaranth FSM moves only between its states'
codes). One-hot and the stream rules need auxiliary invariants on the core's internal registers (found by
name, :func:`~qlif.sim.proofs.internals.signal_lookup`), asserted with them: without them the
counterexample to induction is an input queue holding an eot while ``started`` is low, going round the
steps for ever. Depths and why: :data:`PROOFS`.
"""

from __future__ import annotations

import numpy as np
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cat, Elaboratable, Fragment, Module, Signal

from qlif.golden.spec.model import Layer, Model
from qlif.hw.flash import FlashLoader
from qlif.hw.network import Network
from qlif.sim.formal import Proof
from qlif.sim.mutants import Mutant
from qlif.sim.proofs.internals import signal_lookup

__all__ = ["small_model", "NetworkHarness", "FlashFsmHarness", "legal_codes", "PROOFS"]

#: Lanes of the small model's core.
LANES = 2


def small_model() -> Model:
    """Two layers: 2 inputs to 3 neurons (two groups at P = 2, the second with a padding lane), then 3 to
    2 (one group); ``k`` = 4 then 3, so the trace's range check tells the layers apart; weights that make
    both layers spike; subtract reset with a leak, then zero reset without one."""
    l0 = Layer(weights=np.array([[3, -2, 7], [2, 5, -8]], np.int64), weight_bits=4, membrane_bits=4,
               threshold=1, leak_shift=1, reset="subtract")
    l1 = Layer(weights=np.array([[1, -1], [-2, 1], [1, 1]], np.int64), weight_bits=2, membrane_bits=3,
               threshold=0, leak_shift=None, reset="zero")
    model = Model(timesteps=3, layers=(l0, l1))
    model.validate()
    return model


class NetworkHarness(Elaboratable):
    """A :class:`~qlif.hw.network.Network` of :func:`small_model` in a free environment, one property on.

    Parameters
    ----------
    check : {"spikes", "events", "range", "onehot"}
        The property to assert (each proof has its own run, so a broken design shows which one failed).
    invariants : bool
        Also assert the auxiliary invariants that let k-induction close, on the core's internal registers
        (found by name, :func:`~qlif.sim.proofs.internals.signal_lookup`): the state flip-flops are one-hot;
        a queued token means the step has started, the second queue entry is only filled behind the first,
        and tokens wait only in state INT0; with ``"events"`` also: the harness' closed flag and the core's
        agree (up to the step_done cycle), a closed step is started and not accepting, and CLEAR is not
        started. Without them only the claim is asserted.
    """

    CHECKS = ("spikes", "events", "range", "onehot")

    def __init__(self, check: str, invariants: bool = False):
        if check not in self.CHECKS:
            raise ValueError(f"check must be one of {self.CHECKS}, not {check!r}")
        self.check = check
        self.invariants = invariants
        self.model = small_model()

    def elaborate(self, platform):
        m = Module()
        net = Network(model=self.model, lanes=LANES)
        frag = Fragment.get(net, platform)
        m.submodules.net = frag

        # The environment: events tokens free but held until taken; clear and spikes.ready free.
        ev = net.events
        ev_valid, ev_payload = AnySeq(1), AnySeq(len(ev.payload.as_value()))
        m.d.comb += [ev.valid.eq(ev_valid), ev.payload.eq(ev_payload), net.clear.eq(AnySeq(1)),
                     net.spikes.ready.eq(AnySeq(1))]
        ev_waiting = Signal()                       # events.valid without ready in the last cycle
        ev_last = Signal.like(ev.payload.as_value())
        m.d.sync += [ev_waiting.eq(ev.valid & ~ev.ready), ev_last.eq(ev.payload.as_value())]
        with m.If(ev_waiting):
            m.d.comb += [Assume(ev.valid), Assume(ev.payload.as_value() == ev_last)]

        if self.check == "spikes":
            sp = net.spikes
            waiting = Signal()
            last = Signal.like(sp.payload.as_value())
            m.d.sync += [waiting.eq(sp.valid & ~sp.ready), last.eq(sp.payload.as_value())]
            with m.If(waiting):
                m.d.comb += [Assert(sp.valid), Assert(sp.payload.as_value() == last)]
        elif self.check == "events":
            closed = Signal()                       # an eot was taken and step_done has not come since
            taken = ev.valid & ev.ready
            # An eot taken in the cycle of step_done (an empty step) closes the next step.
            with m.If(taken & ev.payload.eot):
                m.d.sync += closed.eq(1)
            with m.Elif(net.step_done):
                m.d.sync += closed.eq(0)
            # "Before step_done": the cycle of the step_done pulse may take the next step's first token.
            with m.If(closed & ~net.step_done):
                m.d.comb += Assert(~taken)
        elif self.check == "range":
            tr = net.trace
            for l, layer in enumerate(self.model.layers):
                with m.If(tr.valid & (tr.payload.layer == l)):
                    for i in range(LANES):
                        mem = tr.payload.membrane[i]
                        m.d.comb += Assert((mem >= layer.v_min) & (mem <= layer.v_max))
            m.d.comb += Assert(~tr.valid | (tr.payload.layer < len(self.model.layers)))
        if self.check == "onehot" or self.invariants:
            find = signal_lookup(frag, "hw/network.py", "Network.elaborate")
            names = [f"{kind}{l}" for l in range(len(self.model.layers)) for kind in ("INT", "FIRE")]
            hot = Cat(*(find(f"st_{name}") for name in (*names, "OUT", "DONE", "CLEAR")))
            # Exactly one bit set: nonzero, and clearing the lowest set bit leaves zero.
            m.d.comb += Assert((hot != 0) & ((hot & (hot - 1)) == 0))
            if self.invariants:
                # in0, in1: the input queue's entries, fields (valid, eot, good, addr) from bit 0.
                head, second, started = find("in0"), find("in1"), find("started")
                head_valid, second_valid = head[0], second[0]
                m.d.comb += [Assert(~head_valid | started), Assert(~second_valid | head_valid),
                             Assert(find("st_INT0") | ~head_valid)]
                if self.check == "events":
                    net_closed, accepting = find("closed"), find("accepting")
                    m.d.comb += [Assert(~net_closed | closed), Assert(~closed | net.step_done | net_closed),
                                 Assert(~net_closed | ~accepting), Assert(~net_closed | started),
                                 Assert(~find("st_CLEAR") | ~started)]
        return m


class FlashFsmHarness(Elaboratable):
    """A :class:`~qlif.hw.flash.FlashLoader` (one target, so that its FSM has 7 states in a 3-bit register
    and one unused code) with a free flash, its FSM's state register asserted to hold a state's code."""

    def elaborate(self, platform):
        m = Module()
        loader = FlashLoader(targets=[(8, 3)], offset=0x100, wake_cycles=2)
        frag = Fragment.get(loader, platform)
        m.submodules.loader = frag
        m.d.comb += loader.flash.cipo.eq(AnySeq(1))
        state = signal_lookup(frag, "hw/flash.py", "FlashLoader.elaborate")("fsm_state")
        codes = legal_codes(state)
        if len(codes) == 1 << len(state):
            raise RuntimeError("FlashLoader's FSM uses every code of its register: the proof would be empty")
        m.d.comb += Assert(state < len(codes))
        return m


def legal_codes(state: Signal) -> list[int]:
    """The codes of an Amaranth FSM's states: those its state register's decoder names (Amaranth numbers
    the states ``0 .. n - 1`` in the order they are defined)."""
    codes = []
    for code in range(1 << len(state)):
        try:
            state.decoder(code)
        except KeyError:
            continue
        codes.append(code)
    if codes != list(range(len(codes))):
        raise RuntimeError(f"FSM codes {codes} are not 0 .. n - 1 (Amaranth changed its FSM encoding)")
    return codes


def _network(check: str, *, invariants: bool = False):
    """``Proof.build`` of the core's harness for ``check``, with or without its auxiliary invariants."""
    return lambda: (NetworkHarness(check, invariants=invariants), [])


#: Formal-only broken designs (not in the mutation score, :data:`qlif.sim.mutants.MUTANTS`).
_NET = "qlif.hw.network"
VALID_TOGGLES = Mutant(
    "net-valid-withdrawn", "spikes.valid is withdrawn in cycles where the step's cycle count is odd",
    _NET, "Network.elaborate", r"self\.spikes\.valid\.eq\(1\),", r"self.spikes.valid.eq(~cycles[0]),")
PAYLOAD_CHANGES = Mutant(
    "net-payload-changes", "spikes.payload's lowest bit follows the cycle count while it waits",
    _NET, "Network.elaborate", r"self\.spikes\.payload\.eq\(tok\.payload\),",
    r"self.spikes.payload.eq(tok.payload.as_value() ^ cycles[0]),")
ACCEPTS_AFTER_EOT = Mutant(
    "net-accepts-after-eot", "events.ready comes back after the eot is taken (accepting ignores closed)",
    _NET, "Network._input", r"accepting\.eq\(~closed & ~closing & ~second_next\.valid\)",
    r"accepting.eq(~closing & ~second_next.valid)")
TRACE_UNSIGNED = Mutant(
    "net-trace-zero-extend", "the trace zero-extends membranes to 16 bits instead of sign-extending",
    _NET, "Network.elaborate", r"trace\.membrane\[i\]\.eq\(out\.membrane\[i\]\)",
    r"trace.membrane[i].eq(out.membrane[i].as_unsigned())")
FSM_BAD_CODE = Mutant(
    "flash-fsm-bad-code", "the flash loader's FSM leaves START for the unused code 7 of its state register",
    "qlif.hw.flash", "FlashLoader.elaborate",
    r"(?s)with m\.FSM\(\):(.*)\n(\s+)return m\n$",
    r"with m.FSM() as fsm:\1\n\2with m.If(fsm.state == 0): m.d.sync += fsm.state.eq(7)\n\2return m\n")
STATES_STICK = Mutant(
    "net-states-stick", "a state's flip-flop is not cleared when the FSM leaves it",
    _NET, "Network.elaborate", r"nxt\[name\]\.eq\(\(flag & ~Cat\(\*leave\)\.any\(\)\) \| Cat\(\*enter\)\.any\(\)\)",
    r"nxt[name].eq(flag | Cat(*enter).any())")

PROOFS: tuple[Proof, ...] = (
    Proof(name="network-spikes-stream",
          claim="spikes: once valid without ready, valid stays high and payload stays the same next cycle",
          build=_network("spikes", invariants=True), mode="prove", depth=24, quick_depth=18, solver="yices",
          why_depth=("k-induction with the one-hot and input queue invariants: closes at k = 8, not at 7; 18 so "
                     "that the base case from reset reaches the first output spike waiting on ready (step 16), "
                     "where the broken designs show; 24 in make formal"),
          broken=(VALID_TOGGLES, PAYLOAD_CHANGES)),
    Proof(name="network-events-stream",
          claim="events: after a step's eot is taken, no token is taken before step_done",
          build=_network("events", invariants=True), mode="prove", depth=16, quick_depth=12, solver="yices",
          why_depth=("k-induction with the one-hot and input queue invariants and five on the step's closing "
                     "(the harness' and the core's closed flags agree, a closed step is started and not "
                     "accepting, CLEAR is not started): closes at k = 6, not at 5; 12 so that the base case "
                     "reaches an eot waiting in the input queue, where the broken design shows; 16 in make formal"),
          broken=(ACCEPTS_AFTER_EOT,)),
    Proof(name="network-membrane-range",
          claim="every membrane on trace lies in [-2^(k-1), 2^(k-1)-1] of the layer it names",
          build=_network("range"), mode="prove", depth=16, quick_depth=12, solver="yices",
          why_depth=("k-induction: closes at depth 1 (the trace registers are loaded only from a layer's k-bit "
                     "output, sign-extended, with that layer's index); depth 12 so that the base case from reset "
                     "reaches layer 0's first fire pass on the trace, where the broken design shows"),
          broken=(TRACE_UNSIGNED,)),
    Proof(name="network-fsm-onehot",
          claim="the core's state machine (one flip-flop per state) has exactly one state flip-flop set",
          build=_network("onehot", invariants=True), mode="prove", depth=12, quick_depth=8, solver="yices",
          why_depth=("k-induction with three invariants on the input queue (a queued token means the step has "
                     "started; the second entry only behind a first; tokens wait only in INT0): closes at k = 6, "
                     "not at 5; 8 in the default suite, 12 in make formal"),
          broken=(STATES_STICK,)),
    Proof(name="flash-fsm-legal",
          claim="the flash loader's FSM (binary encoded) only ever holds one of its 7 states' codes",
          build=lambda: (FlashFsmHarness(), []), mode="prove", depth=4, quick_depth=4, solver="yices",
          why_depth=("k-induction: an Amaranth FSM moves from a state's code only to a state's code, so the "
                     "property is inductive at depth 1; depth 4 gives the base case the steps in which the "
                     "broken design leaves its states"),
          broken=(FSM_BAD_CODE,)),
)
