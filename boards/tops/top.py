"""The board top shared by every board: :class:`~qlif.boards.link.host_link.HostLink` on the board's UART, its three
status outputs on LEDs or header pins, and the clocks: the board oscillator alone (link and core in
``sync``), or with a PLL the core in a ``core`` domain of the PLL's clock and the link on the oscillator
(``sync``), joined by :class:`~qlif.boards.link.crossing.CoreCrossing`.

A board file subclasses :class:`BoardTop` with its platform, pins and PLL; :data:`qlif.boards.tops.registry.BOARDS`
lists the boards by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.build import Platform
from amaranth.hdl import DomainRenamer, Elaboratable, Module
from amaranth.lib import io

from qlif.boards.link.host_link import HostLink
from qlif.boards.protocol import DEFAULT_BAUD
from qlif.boards.tops.pll import CORE_DOMAIN
from qlif.golden.spec.model import Model
from qlif.hw.memory import MemoryPlan, plan_memories

__all__ = ["Pin", "BoardTop"]

@dataclass(frozen=True)
class Pin:
    """A platform resource (``name``, ``number``), or one subsignal of it (an RGB LED's ``g``)."""

    name: str
    number: int = 0
    subsignal: str | None = None

    def request(self, platform: Platform, requested: dict | None = None):
        """The port (``dir="-"``); ``requested`` caches resources already requested (the subsignals of an
        RGB LED are requested once)."""
        requested = {} if requested is None else requested
        key = (self.name, self.number)
        if key not in requested:
            requested[key] = platform.request(self.name, self.number, dir="-")
        res = requested[key]
        return res if self.subsignal is None else getattr(res, self.subsignal)

    def __str__(self) -> str:
        return f"{self.name} {self.number}" + (f" ({self.subsignal})" if self.subsignal else "")


class BoardTop(Elaboratable):
    """The host link on a board.

    Subclasses set :attr:`platform_cls` (an ``amaranth-boards`` platform), :attr:`uart` (the UART
    resource), :attr:`outputs` (a :class:`Pin` for each of HostLink's ``ok``, ``fault`` and ``wake``)
    and implement :meth:`pll_config` and :meth:`pll_domain` (which adds the ``core`` domain, the PLL's
    clock, and ``sync``, the oscillator's: :func:`~qlif.boards.tops.pll.ice40_pll_domain`,
    :func:`~qlif.boards.tops.pll.ecp5_pll_domain`).

    Parameters
    ----------
    model : qlif.golden.spec.model.Model
        The network, baked into the bitstream.
    lanes : int
        P of the core.
    baud : int
        UART baud rate (8N1); :func:`qlif.boards.link.uart.baud_divisor` checks it against the clock.
    clk_freq : float or None
        ``None``: run from the board oscillator. Otherwise the core's clock, the PLL's output frequency in
        Hz, within 1 % of a reachable one (:attr:`clk_freq` is the exact one); the host link stays on the
        oscillator (:attr:`link_freq`).
    separate_clocks : bool
        With a PLL: ``True`` (default), the core on the PLL's clock and the host link on the oscillator,
        joined by :class:`~qlif.boards.link.crossing.CoreCrossing`; ``False``, both on the PLL's clock (no
        crossing; the link's paths then count against the PLL clock, but a design that fills the device
        packs better with one clock: an iCE40 logic tile serves one clock).
    device : str or None
        The FPGA (``platform.device``), when the top's platform class stands for several: the memory
        plan (:func:`qlif.hw.memory.plan_memories`) is made for it here, so that a model that fits
        nowhere is refused at once (``MemoryFitError``, with the numbers).
    encoder : bool
        The host link with the on-chip encoder (``HostLink(encoder=True)``: ``FRAME`` requests, one frame
        per sample instead of the spikes of every step), in the link's clock domain in front of the core
        (or of the crossing to it). The model's metadata must give its frame levels and rate.
    """

    platform_cls: type[Platform]
    uart: Pin = Pin("uart")
    outputs: dict[str, Pin]

    def __init__(self, *, model: Model, lanes: int, baud: int = DEFAULT_BAUD, clk_freq: float | None = None,
                 device: str | None = None, separate_clocks: bool = True, encoder: bool = False):
        # Amaranth warns about an Elaboratable never elaborated; a top its own checks refuse is not one
        # (build() and the CLI say why), so the warning is off until the checks have passed.
        self._MustUse__silence = True
        if not isinstance(separate_clocks, bool):
            raise TypeError(f"separate_clocks must be a bool, not {separate_clocks!r}")
        device = device if device is not None else getattr(self.platform_cls, "device", None)
        # The plan for the device, made once, here (a model that fits nowhere fails at once), and passed
        # through the link to the core.
        self._memory = plan_memories(model, lanes, device)
        osc = self.osc_freq()
        self._pll = None if clk_freq is None else self.pll_config(f_in=osc, f_out=clk_freq)
        self._clk_freq = osc if self._pll is None else self._pll.f_out
        self._split = self._pll is not None and separate_clocks
        self._link_freq = self._clk_freq if self._pll is not None and not self._split else osc
        # The link is built in elaborate(); its checks run now, so that a bad model, lane count or baud
        # rate fails at once.
        self._divisor = HostLink.check(model=model, lanes=lanes, clk_freq=self._link_freq, baud=baud,
                                       core_domain=CORE_DOMAIN if self._split else None, memory=self._memory,
                                       encoder=encoder)[0]
        self._encoder = encoder
        self._model = model
        self._lanes = lanes
        self._baud = baud
        self._MustUse__silence = False

    @classmethod
    def osc_freq(cls) -> float:
        """The board oscillator (the platform's default clock) in Hz."""
        return cls.platform_cls().default_clk_frequency

    @classmethod
    def pins(cls) -> dict[str, str]:
        """Signal -> board resource, for reports and documentation."""
        return {"uart": str(cls.uart), **{name: str(pin) for name, pin in cls.outputs.items()}}

    def pll_config(self, *, f_in: float, f_out: float):
        """The board's PLL settings for ``f_out`` from the oscillator ``f_in`` (``ValueError`` when out of
        reach). Abstract: every board top supplies it (its family's search in :mod:`qlif.boards.tops.pll`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement pll_config")

    def pll_domain(self, m: Module, platform: Platform) -> None:
        """Add the PLL and the ``core`` and ``sync`` domains to ``m``. Abstract: every board top supplies
        it (its family's ``*_pll_domain`` in :mod:`qlif.boards.tops.pll`, on its clock pin)."""
        raise NotImplementedError(f"{type(self).__name__} must implement pll_domain")

    @property
    def model(self) -> Model:
        return self._model

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def encoder(self) -> bool:
        """The host link has the on-chip encoder (takes ``FRAME``)."""
        return self._encoder

    @property
    def clk_freq(self) -> float:
        """The core's clock in Hz (the PLL's, or the oscillator)."""
        return self._clk_freq

    @property
    def link_freq(self) -> float:
        """The host link's clock in Hz (the board oscillator, or the PLL's without separate clocks)."""
        return self._link_freq

    @property
    def separate_clocks(self) -> bool:
        """The core and the link run on clocks of their own (a PLL and ``separate_clocks``)."""
        return self._split

    @property
    def core_domain(self) -> str:
        """The core's clock domain: ``"core"`` with a PLL, else ``"sync"``."""
        return "sync" if self._pll is None else CORE_DOMAIN

    @property
    def pll(self):
        """The PLL settings, or ``None`` when the design runs from the oscillator."""
        return self._pll

    @property
    def divisor(self) -> int:
        """The host link's clock cycles per UART bit."""
        return self._divisor

    @property
    def link_core_domain(self) -> str | None:
        """The core's clock domain as the link sees it: ``"core"`` with separate clocks, else ``None`` (the
        link's own, ``sync``; renamed to ``core`` with it when one PLL clock runs both)."""
        return CORE_DOMAIN if self._split else None

    @property
    def memory(self) -> MemoryPlan:
        """Where the synapse memories go on this board's device."""
        return self._memory

    def elaborate(self, platform: Platform) -> Module:
        if not isinstance(platform, self.platform_cls):
            raise TypeError(f"platform must be a {self.platform_cls.__name__}, not {platform!r}")
        m = Module()
        if self._pll is not None:
            self.pll_domain(m, platform)
        link = HostLink(model=self._model, lanes=self._lanes, clk_freq=self._link_freq, baud=self._baud,
                        core_domain=self.link_core_domain, memory=self._memory, encoder=self._encoder)
        # One clock with a PLL: the link (and the core in it) moves to the PLL's domain; the oscillator's
        # domain is then unused.
        m.submodules.link = link if self._pll is None or self._split else DomainRenamer({"sync": CORE_DOMAIN})(link)
        if "flash" in link.signature.members:
            self._flash(m, platform, link.flash)
        uart = self.uart.request(platform)
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx_buf.i), tx_buf.o.eq(link.tx)]
        requested = {}
        for name, pin in self.outputs.items():
            m.submodules[f"{name}_buf"] = buf = io.Buffer("o", pin.request(platform, requested))
            m.d.comb += buf.o.eq(getattr(link, name))
        return m

    @staticmethod
    def _flash(m: Module, platform: Platform, flash) -> None:
        """The core's SPRAM weight loader on the configuration flash (its pins are free after
        configuration). Plain buffers, no I/O registers: the loader samples ``cipo`` at the end of SCK's
        high half, a bit period after the flash changed it, which a round trip through I/O registers
        would exceed."""
        pins = platform.request("spi_flash_1x", 0, dir="-")
        for name, value in (("cs", flash.cs), ("clk", flash.sck), ("copi", flash.copi)):
            m.submodules[f"flash_{name}"] = buf = io.Buffer("o", getattr(pins, name))
            m.d.comb += buf.o.eq(value)
        for name in ("wp", "hold"):       # active low: driven inactive (the resource inverts)
            if hasattr(pins, name):
                m.submodules[f"flash_{name}"] = buf = io.Buffer("o", getattr(pins, name))
                m.d.comb += buf.o.eq(0)
        m.submodules.flash_cipo = buf = io.Buffer("i", pins.cipo)
        m.d.comb += flash.cipo.eq(buf.i)
