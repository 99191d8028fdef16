"""On-chip PLLs of the iCE40 UltraPlus and the ECP5: divider search and the ``sync`` clock domain they drive.

:func:`ice40_pll_config` is the search ``icepll`` does, :func:`ecp5_pll_config` the one ``ecppll`` does
(preferring the highest VCO among equally near settings); both return the dividers reaching the
requested output frequency nearest, or raise ``ValueError`` when nothing comes within
:data:`PLL_TOLERANCE`. :func:`ice40_pll_domain` and :func:`ecp5_pll_domain` add the PLL instance and two
clock domains: ``core``, the PLL's output, held in reset until the PLL locks (plus a power-on delay on
iCE40), for the core; and ``sync``, the board oscillator itself, for the host link (the UART needs no
more; :class:`~qlif.boards.link.crossing.CoreCrossing` joins the two). nextpnr derives the PLL output's clock
constraint from the input pin's, so the report has both clocks with their frequencies.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Const, Instance, Module, Signal

__all__ = ["PLL_TOLERANCE", "CORE_DOMAIN", "ICE40PLLConfig", "ice40_pll_config", "ice40_pll_domain", "ECP5PLLConfig",
           "ecp5_pll_config", "ecp5_pll_domain"]

#: Largest relative distance between the requested and the reachable PLL frequency.
PLL_TOLERANCE = 0.01
#: The clock domain of the PLL's output (the core's); ``sync`` is the oscillator's (the host link's).
CORE_DOMAIN = "core"

# iCE40 sysCLOCK PLL limits (iCE40 UltraPlus data sheet, FPGA-DS-02008): phase detector input, VCO and
# output frequency ranges in Hz.
_ICE40_PFD = (10e6, 133e6)
_ICE40_VCO = (533e6, 1066e6)
_ICE40_OUT = (16e6, 275e6)
#: iCE40 block RAMs read as zero for about 3 us after configuration (Amaranth's default domain waits
#: the same way); the PLL domain waits 15 us at any clock.
_ICE40_POR_SECONDS = 15e-6

# ECP5 sysCLOCK PLL limits (ECP5 family data sheet, FPGA-DS-02012, and ecppll): phase detector input,
# VCO and output ranges in Hz, and the divider ranges.
_ECP5_PFD = (3.125e6, 400e6)
_ECP5_VCO = (400e6, 800e6)
_ECP5_OUT = (3.125e6, 400e6)


def _check_out(f_out, limits) -> None:
    if not isinstance(f_out, (int, float)) or isinstance(f_out, bool) or not limits[0] <= f_out <= limits[1]:
        raise ValueError(f"PLL output must be {limits[0] / 1e6:g}..{limits[1] / 1e6:g} MHz, not {f_out!r}")


def _refuse(f_in: float, f_out: float, best: float | None) -> ValueError:
    near = "none" if best is None else f"{best / 1e6:.3f} MHz"
    return ValueError(f"PLL cannot make {f_out / 1e6:.3f} MHz from {f_in / 1e6:.3f} MHz (nearest: {near})")


@dataclass(frozen=True)
class ICE40PLLConfig:
    """``SB_PLL40`` dividers (simple feedback): ``f_out = f_in * (divf + 1) / ((divr + 1) * 2^divq)``."""

    divr: int
    divf: int
    divq: int
    filter_range: int
    f_out: float


def ice40_pll_config(*, f_in: float, f_out: float) -> ICE40PLLConfig:
    """The iCE40 PLL dividers reaching ``f_out`` nearest from ``f_in`` (the search ``icepll`` does)."""
    _check_out(f_out, _ICE40_OUT)
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not _ICE40_PFD[0] <= pfd <= _ICE40_PFD[1]:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not _ICE40_VCO[0] <= vco <= _ICE40_VCO[1]:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if _ICE40_OUT[0] <= out <= _ICE40_OUT[1] and (best is None or abs(out - f_out) < abs(best[3] - f_out)):
                    best = (divr, divf, divq, out, pfd)
    if best is None or abs(best[3] - f_out) > PLL_TOLERANCE * f_out:
        raise _refuse(f_in, f_out, None if best is None else best[3])
    divr, divf, divq, out, pfd = best
    # The loop filter setting for the phase detector frequency, as icepll chooses it.
    filter_range = 1 + sum(pfd >= edge for edge in (17e6, 26e6, 44e6, 66e6, 101e6))
    return ICE40PLLConfig(divr=divr, divf=divf, divq=divq, filter_range=filter_range, f_out=out)


def ice40_pll_domain(m: Module, *, pin, config: ICE40PLLConfig) -> None:
    """An ``SB_PLL40_2_PAD`` on the clock pin ``pin`` (a requested resource, ``dir="-"``): ``core`` from
    its output, held in reset until lock and then :data:`_ICE40_POR_SECONDS` more, and ``sync`` from the
    pin's own clock (the PLL's port A), held in reset for :data:`_ICE40_POR_SECONDS` after start-up."""
    m.domains.sync = cd_sync = ClockDomain("sync")
    m.domains.core = cd_core = ClockDomain(CORE_DOMAIN)
    m.domains.por = cd_por = ClockDomain("por", local=True)
    m.domains.sync_por = cd_sync_por = ClockDomain("sync_por", local=True)
    locked = Signal()
    # _PAD, not _CORE: the PLL sits on the clock pin's I/O cell and takes the pad directly; _2_: its port
    # A passes the pad's clock on to a global net (the oscillator for the link), port B is the PLL's.
    # No clock constraint of ours: nextpnr derives both from the pin's.
    m.submodules.pll = Instance(
        "SB_PLL40_2_PAD",
        p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT_PORTB="GENCLK",
        p_DIVR=Const(config.divr, 4), p_DIVF=Const(config.divf, 7), p_DIVQ=Const(config.divq, 3),
        p_FILTER_RANGE=Const(config.filter_range, 3),
        i_PACKAGEPIN=pin.io, i_RESETB=1, i_BYPASS=0,
        o_PLLOUTGLOBALA=cd_sync.clk, o_PLLOUTGLOBALB=cd_core.clk, o_LOCK=locked,
    )
    f_in = config.f_out * (config.divr + 1) * (1 << config.divq) / (config.divf + 1)
    _hold_until(m, cd_core, cd_por, locked, round(_ICE40_POR_SECONDS * config.f_out))
    _hold_until(m, cd_sync, cd_sync_por, Const(1), round(_ICE40_POR_SECONDS * f_in))


@dataclass(frozen=True)
class ECP5PLLConfig:
    """``EHXPLLL`` dividers (feedback from CLKOP): ``f_out = f_in * clkfb_div / clki_div``, with the VCO at
    ``f_out * clkop_div``."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_out: float
    f_vco: float


def ecp5_pll_config(*, f_in: float, f_out: float) -> ECP5PLLConfig:
    """The ECP5 PLL dividers reaching ``f_out`` nearest from ``f_in`` (the divider ranges ``ecppll``
    searches; among equally near settings the highest VCO frequency, for the lowest jitter)."""
    _check_out(f_out, _ECP5_OUT)
    best = None
    for clki_div in range(1, 129):
        pfd = f_in / clki_div
        if not _ECP5_PFD[0] <= pfd <= _ECP5_PFD[1]:
            continue
        for clkfb_div in range(1, 81):
            out = pfd * clkfb_div
            if not _ECP5_OUT[0] <= out <= _ECP5_OUT[1]:
                continue
            for clkop_div in range(1, 129):
                vco = out * clkop_div
                if not _ECP5_VCO[0] <= vco <= _ECP5_VCO[1]:
                    continue
                key = (abs(out - f_out), -vco)
                if best is None or key < best[0]:
                    best = (key, clki_div, clkfb_div, clkop_div, out, vco)
    if best is None or best[0][0] > PLL_TOLERANCE * f_out:
        raise _refuse(f_in, f_out, None if best is None else best[4])
    _, clki_div, clkfb_div, clkop_div, out, vco = best
    return ECP5PLLConfig(clki_div=clki_div, clkfb_div=clkfb_div, clkop_div=clkop_div, f_out=out, f_vco=vco)


def ecp5_pll_domain(m: Module, *, clk_in, f_in: float, config: ECP5PLLConfig) -> None:
    """``core`` from an ``EHXPLLL`` fed by ``clk_in`` (a clock signal at ``f_in``), held in reset until lock,
    and ``sync`` from ``clk_in`` itself, held in reset for a few cycles after start-up.

    The parameters and attributes are those ``ecppll`` and LiteX write (zero phase: ``CLKOP_CPHASE`` is
    ``CLKOP_DIV - 1``).
    """
    m.domains.sync = cd_sync = ClockDomain("sync")
    m.domains.core = cd_core = ClockDomain(CORE_DOMAIN)
    m.domains.por = cd_por = ClockDomain("por", local=True)
    m.domains.sync_por = cd_sync_por = ClockDomain("sync_por", local=True)
    m.d.comb += cd_sync.clk.eq(clk_in)
    locked = Signal()
    m.submodules.pll = Instance(
        "EHXPLLL",
        a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{config.f_out / 1e6:g}",
        a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREFSEL="2",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
        p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=config.clki_div, p_CLKFB_DIV=config.clkfb_div, p_FEEDBK_PATH="CLKOP",
        p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=config.clkop_div, p_CLKOP_CPHASE=config.clkop_div - 1,
        p_CLKOP_FPHASE=0,
        i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=cd_core.clk, o_CLKOP=cd_core.clk,
        i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0,
        i_ENCLKOP=0, o_LOCK=locked,
    )
    # ECP5 block RAMs hold their init values from configuration on; a few cycles after lock suffice.
    _hold_until(m, cd_core, cd_por, locked, 16)
    _hold_until(m, cd_sync, cd_sync_por, Const(1), 16)


def _hold_until(m: Module, cd: ClockDomain, cd_por: ClockDomain, locked, delay: int) -> None:
    """Hold ``cd`` in reset until ``locked`` has been high for ``delay`` cycles (``cd_por``: a local domain
    on the same clock, for the timer)."""
    timer = Signal(range(delay + 1))
    ready = Signal()
    m.d.comb += [cd_por.clk.eq(cd.clk), cd_por.rst.eq(~locked), cd.rst.eq(~ready)]
    with m.If(timer == delay):
        m.d[cd_por.name] += ready.eq(1)
    with m.Else():
        m.d[cd_por.name] += timer.eq(timer + 1)
