"""The core in a clock domain of its own: the clock-domain crossing between the host link and the core.

On a board with a PLL the core runs from the PLL's fast clock (domain ``core``) and the host link from
the board oscillator (``sync``): the UART needs no more than the oscillator, and the link's paths then
stay off the core's clock. :class:`CoreCrossing` stands in for the :class:`~qlif.hw.network.Network`
towards the link, with the ports the link uses and the same meaning, and carries them across:

* requests (an events token, or a clear) go over a two-phase handshake: the link holds the request in
  registers, and toggles ``req`` a cycle later; the core side sees the toggle through a two-stage
  synchroniser, raises the core's ``events.valid`` (or ``clear``) from a register of its own, with the
  token's address and eot read from the link's registers (stable from a link cycle and two core cycles
  before until the handshake ends: no copy is needed, and the path is not timed), and once the core has
  taken it (a clear: once the core is idle again) toggles ``ack`` back through another synchroniser.
  One request is in flight at a time; a round trip is about two link cycles and three core cycles,
  against one token per UART frame (20 bit times) from the host. With the on-chip encoder
  (``HostLink(encoder=True)``) the encoder, in the link's domain, sends its tokens and its clear
  through the same ports, one request at a time as well.
* ``step_done`` is a toggle in the core domain, synchronised and turned back into a pulse in the link's.
* ``idle`` is registered in the core domain and synchronised, and so are the error flags (registers
  of the core already), bit by bit (levels).
* ``step_cycles`` and ``counts`` are read by the link straight from the core's registers, without a
  synchroniser: they change only in the core's step (``step_cycles`` in its last cycle, ``counts``
  while its output spikes are counted) and at a clear, and the link reads them only between steps:
  ``step_cycles`` in the cycle that ``step_done`` arrives, ``counts`` in a RESULT reply, which the
  link only builds when no step is running (a step runs from an eot token, after which the link waits
  for ``step_done``) and no clear is in flight. So they have been stable for several cycles of both
  clocks when read (a multi-cycle path, which nextpnr does not time: paths between two clocks are
  left unconstrained).
* ``prediction`` is copied into a link-domain register when ``step_done`` arrives and when a clear
  completes (it is stable then, as above): the link's ``wake`` output reads it every cycle, and the
  core's own ``prediction`` changes while a step counts its spikes.

Both domains are reset only at start-up (the core's until its PLL locks): the handshake toggles start
equal in both.
"""

from __future__ import annotations

from amaranth.hdl import Cat, DomainRenamer, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import Out

from qlif.hw.flash import FlashSignature
from qlif.hw.network import CoreSignature, Network

__all__ = ["check_core_domain", "CoreCrossing"]


def check_core_domain(core_domain) -> str:
    """``core_domain`` if it names a clock domain other than ``sync`` (the link's), else ``ValueError``."""
    if not isinstance(core_domain, str) or core_domain in ("", "sync"):
        raise ValueError(f"core_domain must name a clock domain other than 'sync', not {core_domain!r}")
    return core_domain


class CoreCrossing(wiring.Component):
    """A :class:`~qlif.hw.network.Network` in clock domain ``core_domain``, seen from ``sync``.

    Parameters
    ----------
    network : qlif.hw.network.Network
        The core; elaborated here with its ``sync`` domain renamed to ``core_domain``. Its ``spikes``
        stream is always ready (the link counts spikes through ``counts``).
    core_domain : str
        The core's clock domain (the board top makes it, e.g. from a PLL).

    Members
    -------
    flash : Out(FlashSignature())
        The core's, passed through (only when its memory plan loads synapses from the flash).
    events : In(stream.Signature(Token))
        As the core's, held by the producer until taken (the stream rule the link keeps): ``ready`` rises
        once the core has taken the token, two link and three core cycles or so after ``valid``.
    clear : In(1)
        A one-cycle request, while ``idle``: the core clears as with its own ``clear``; ``idle`` is low
        from the next cycle until the core has finished.
    idle : Out(1)
        No request in flight and the core idle (synchronised: it may lag the core by three link cycles).
    step_done : Out(1)
        One-cycle pulse per ``step_done`` of the core, three or four link cycles after it.
    step_cycles : Out(32)
        The core's (valid with ``step_done``).
    error : Out(2)
        The core's error flags, synchronised.
    counts : Out(...)
        The core's (read between steps only; see the module docstring).
    prediction : Out(...)
        The core's, as of the last ``step_done`` or completed clear.

    The signature is a :class:`~qlif.hw.network.CoreSignature`, as the core's.

    Latency: as above. Throughput: one events token per handshake round trip. Memory: none; about 30
    flip-flops.
    """

    def __init__(self, *, network: Network, core_domain: str):
        if not isinstance(network, Network):
            raise TypeError(f"network must be a qlif.hw.network.Network, not {network!r}")
        check_core_domain(core_domain)
        self._net = network
        self._domain = core_domain
        flash = {"flash": Out(FlashSignature())} if "flash" in network.signature.members else {}
        super().__init__(CoreSignature(network.model, extra=flash))

    @property
    def network(self) -> Network:
        return self._net

    @property
    def core_domain(self) -> str:
        return self._domain

    def elaborate(self, platform):
        m = Module()
        core = self._domain
        net = self._net
        m.submodules.network = DomainRenamer({"sync": core})(net)
        if "flash" in self.signature.members:
            wiring.connect(m, wiring.flipped(self.flash), net.flash)
        addr_width = net.addr_width

        # -- link side (sync) ---------------------------------------------------------------------
        req = Signal()               # toggled to send a request
        ack = Signal()               # toggled by the core side when it has carried a request out
        ack_sync = Signal()          # ... synchronised
        sent = Signal()              # a request is in flight
        clearing = Signal()          # ... and it is a clear
        m.submodules.ack_sync = FFSynchronizer(ack, ack_sync, o_domain="sync")
        answered = sent & (ack_sync == req)
        # A token crosses with the address bits the core checks, plus one bit for "above them" (the
        # core's range check must see an address that does not fit, exactly as on its own port).
        request = Signal(data.StructLayout({"clear": 1, "eot": 1, "high": 1, "addr": addr_width}))
        addr = self.events.payload.addr
        m.d.comb += [request.clear.eq(clearing), request.eot.eq(self.events.payload.eot),
                     request.high.eq(addr[addr_width:] != 0), request.addr.eq(addr[:addr_width])]
        # The request is registered (``valid`` or ``clearing``) a cycle before ``req`` toggles, so it is
        # stable for a link cycle and two core cycles before the core side reads it.
        with m.If(~sent & (self.events.valid | clearing)):
            m.d.sync += [req.eq(~req), sent.eq(1)]
        with m.If(answered):
            m.d.sync += [sent.eq(0), clearing.eq(0)]
        with m.If(self.clear):
            m.d.sync += clearing.eq(1)
        m.d.comb += self.events.ready.eq(answered & ~clearing)

        # -- core side ----------------------------------------------------------------------------
        req_sync = Signal()
        m.submodules.req_sync = FFSynchronizer(req, req_sync, o_domain=core)
        serving = Signal()           # a request is offered to the core, which has not taken it yet
        token_valid = Signal()
        clear_req = Signal()         # the core's clear input, until taken
        clear_wait = Signal()        # taken; until the core is idle again
        with m.If(~serving & (req_sync != ack)):
            m.d[core] += serving.eq(1)
            with m.If(request.clear):
                m.d[core] += clear_req.eq(1)
            with m.Else():
                m.d[core] += token_valid.eq(1)
        m.d.comb += [net.events.valid.eq(token_valid), net.events.payload.eot.eq(request.eot),
                     net.events.payload.addr.eq(Cat(request.addr, request.high)), net.clear.eq(clear_req),
                     net.spikes.ready.eq(1)]
        with m.If(token_valid & net.events.ready):
            m.d[core] += [token_valid.eq(0), serving.eq(0), ack.eq(~ack)]
        # The core takes a clear while idle (no token is offered meanwhile); it is busy from the next
        # cycle until the clear is done.
        with m.If(clear_req & net.idle):
            m.d[core] += [clear_req.eq(0), clear_wait.eq(1)]
        with m.If(clear_wait & net.idle):
            m.d[core] += [clear_wait.eq(0), serving.eq(0), ack.eq(~ack)]

        # -- core to link -------------------------------------------------------------------------
        done_toggle, idle_reg = Signal(), Signal()
        m.d[core] += [done_toggle.eq(done_toggle ^ net.step_done), idle_reg.eq(net.idle)]
        done_sync, done_seen, idle_sync = Signal(), Signal(), Signal()
        m.submodules.done_sync = FFSynchronizer(done_toggle, done_sync, o_domain="sync")
        m.submodules.idle_sync = FFSynchronizer(idle_reg, idle_sync, o_domain="sync")
        m.submodules.error_sync = FFSynchronizer(net.error, self.error, o_domain="sync")
        m.d.sync += done_seen.eq(done_sync)
        m.d.comb += [self.step_done.eq(done_sync ^ done_seen), self.idle.eq(~sent & ~clearing & idle_sync),
                     self.step_cycles.eq(net.step_cycles), self.counts.eq(net.counts)]
        with m.If(self.step_done | (answered & clearing)):
            m.d.sync += self.prediction.eq(net.prediction)
        return m
