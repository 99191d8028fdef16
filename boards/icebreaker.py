"""iCEBreaker (iCE40 UP5K) top: the host link on the board's FTDI UART, status on the two user LEDs.

Pins (``amaranth_boards.icebreaker.ICEBreakerPlatform``): ``uart`` 0 (rx pin 6, tx pin 9, the second
channel of the on-board FT2232H, so the host sees the link as the board's second serial port), ``led_g``
0 (pin 37: the last reply was a prediction) and ``led_r`` 0 (pin 11: the last reply was an error).

Clock: by default the 12 MHz oscillator (``clk12``, pin 35) is the ``sync`` clock. With ``clk_freq``
the on-chip PLL (``SB_PLL40_PAD`` on the same pin) makes a faster one. Either way the clock is
constrained to its frequency, and nextpnr's timing report gives the Fmax the placed design reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth_boards.icebreaker import ICEBreakerPlatform

from qlif.golden.model import Model

from .link import HostLink

__all__ = ["OSC_FREQ", "DEFAULT_BAUD", "PLLConfig", "pll_config", "ICEBreakerTop", "ICEBreakerPlatform"]

#: The board oscillator.
OSC_FREQ = ICEBreakerPlatform().default_clk_frequency
#: 12 MHz / 115200 = 104.2 cycles per bit, 0.16 % off: well inside the UART's tolerance.
DEFAULT_BAUD = 115_200

# iCE40 sysCLOCK PLL limits (iCE40 UltraPlus data sheet, FPGA-DS-02008): phase detector input,
# VCO and output frequency ranges in Hz.
_PFD = (10e6, 133e6)
_VCO = (533e6, 1066e6)
_OUT = (16e6, 275e6)
#: Largest relative distance between the requested and the reachable PLL frequency.
PLL_TOLERANCE = 0.01
#: Cycles of the PLL clock the design stays in reset after lock: iCE40 block RAMs read as zero for about
#: 3 us after configuration (Amaranth's default domain waits the same way), here 15 us at any clock.
_POR_SECONDS = 15e-6


@dataclass(frozen=True)
class PLLConfig:
    """``SB_PLL40`` dividers (simple feedback): ``f_out = f_in * (divf + 1) / ((divr + 1) * 2^divq)``."""

    divr: int
    divf: int
    divq: int
    filter_range: int
    f_out: float


def pll_config(*, f_in: float, f_out: float) -> PLLConfig:
    """The dividers reaching ``f_out`` nearest from ``f_in`` (the search ``icepll`` does).

    Raises ``ValueError`` when no setting comes within :data:`PLL_TOLERANCE` of ``f_out``.
    """
    if not isinstance(f_out, (int, float)) or isinstance(f_out, bool) or not _OUT[0] <= f_out <= _OUT[1]:
        raise ValueError(f"PLL output must be {_OUT[0] / 1e6:.0f}..{_OUT[1] / 1e6:.0f} MHz, not {f_out!r}")
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not _PFD[0] <= pfd <= _PFD[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not _VCO[0] <= vco <= _VCO[1]:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if _OUT[0] <= out <= _OUT[1] and (best is None or abs(out - f_out) < abs(best[3] - f_out)):
                    best = (divr, divf, divq, out, pfd)
    if best is None or abs(best[3] - f_out) > PLL_TOLERANCE * f_out:
        near = "none" if best is None else f"{best[3] / 1e6:.3f} MHz"
        raise ValueError(f"PLL cannot make {f_out / 1e6:.3f} MHz from {f_in / 1e6:.3f} MHz (nearest: {near})")
    divr, divf, divq, out, pfd = best
    # The loop filter setting for the phase detector frequency, as icepll chooses it.
    filter_range = 1 + sum(pfd >= edge for edge in (17e6, 26e6, 44e6, 66e6, 101e6))
    return PLLConfig(divr=divr, divf=divf, divq=divq, filter_range=filter_range, f_out=out)


class ICEBreakerTop(Elaboratable):
    """The board top: :class:`~qlif.boards.link.HostLink` wired to the iCEBreaker's pins.

    Parameters
    ----------
    model : qlif.golden.model.Model
        The network, baked into the bitstream.
    lanes : int
        P of the core.
    baud : int
        UART baud rate (8N1); the FT2232H makes any rate up to 3 Mbaud, the limit here is the clock
        (:func:`qlif.boards.uart.baud_divisor`).
    clk_freq : float or None
        ``None``: run from the 12 MHz oscillator. Otherwise the PLL's output frequency in Hz, within
        1 % of a reachable one (:func:`pll_config`); :attr:`clk_freq` is the exact one.
    """

    def __init__(self, *, model: Model, lanes: int, baud: int = DEFAULT_BAUD, clk_freq: float | None = None):
        self._pll = None if clk_freq is None else pll_config(f_in=OSC_FREQ, f_out=clk_freq)
        self._clk_freq = OSC_FREQ if self._pll is None else self._pll.f_out
        # Built here, not in elaborate(), so that a bad model, lane count or baud rate fails at once.
        self._link = HostLink(model=model, lanes=lanes, clk_freq=self._clk_freq, baud=baud)
        self._model = model
        self._lanes = lanes
        self._baud = baud

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
    def clk_freq(self) -> float:
        """The ``sync`` clock in Hz."""
        return self._clk_freq

    @property
    def pll(self) -> PLLConfig | None:
        return self._pll

    def elaborate(self, platform) -> Module:
        if not isinstance(platform, ICEBreakerPlatform):
            raise TypeError(f"platform must be an ICEBreakerPlatform, not {platform!r}")
        m = Module()
        if self._pll is not None:
            self._elaborate_pll(m, platform)
        m.submodules.link = link = self._link
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.submodules.led_ok = led_ok = io.Buffer("o", platform.request("led_g", 0, dir="-"))
        m.submodules.led_fault = led_fault = io.Buffer("o", platform.request("led_r", 0, dir="-"))
        m.d.comb += [
            link.rx.eq(rx_buf.i),
            tx_buf.o.eq(link.tx),
            led_ok.o.eq(link.ok),
            led_fault.o.eq(link.fault),
        ]
        return m

    def _elaborate_pll(self, m: Module, platform) -> None:
        """``sync`` from the PLL; held in reset until lock and then :data:`_POR_SECONDS` more."""
        pll = self._pll
        m.domains.sync = cd_sync = ClockDomain("sync")
        m.domains.por = cd_por = ClockDomain("por", local=True)
        # No add_clock_constraint(): Amaranth would name a net that synthesis renames, and nextpnr
        # derives the output constraint from the PLL's dividers and the 12 MHz pin constraint.
        locked = Signal()
        # _PAD, not _CORE: the PLL sits on the clock pin's I/O cell and takes the pad directly.
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=Const(pll.divr, 4), p_DIVF=Const(pll.divf, 7), p_DIVQ=Const(pll.divq, 3),
            p_FILTER_RANGE=Const(pll.filter_range, 3),
            i_PACKAGEPIN=platform.request(platform.default_clk, dir="-").io,
            i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=cd_sync.clk, o_LOCK=locked,
        )
        delay = round(_POR_SECONDS * pll.f_out)
        timer = Signal(range(delay + 1))
        ready = Signal()
        m.d.comb += [cd_por.clk.eq(cd_sync.clk), cd_por.rst.eq(~locked), cd_sync.rst.eq(~ready)]
        with m.If(timer == delay):
            m.d.por += ready.eq(1)
        with m.Else():
            m.d.por += timer.eq(timer + 1)
