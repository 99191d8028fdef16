"""The iCE40 UP5K designs whose power was measured: the published table and one Amaranth top per row.

tinyvision-ai-inc/ice40_power (README; Joulescope JS110 on every rail of a Lattice iCE40 UltraPlus
breakout board, core at 1.219 V) measured the core current of a handful of tiny designs. This module
holds that table (:data:`MEASURED`, one home) and one Amaranth top per row (:class:`CalibrationTop`, the
same description; their Verilog does not carry over). :mod:`qlif.boards.flow.calibration_fit` fits the
power model's coefficients to them and :mod:`qlif.boards.flow.calibration_report` writes the results.

``scripts/power_calibration.py`` (``make power-calibration``) builds every design with the flow of
:mod:`qlif.boards.flow.build`, measures its activity with :mod:`qlif.sim.activity`, and writes
``docs/results/power-calibration.*``; docs/power.md explains the fit.

How the published designs were made (their ``power_test/rgb_blink.v``): one counter of ``CTR_SIZE`` bits
whose top bit drives a pin, so nothing is optimised away. The "28*k bit counter" rows are one counter of
28, 56, 112 and 224 bits (32, 60, 116 and 228 LCs with four LCs of glue that ORs every unused input pin
into an output); the HFOSC rows a 24-bit counter, the divider ``CLKHF_DIV`` setting the clock; the math
rows add two 8-bit counters stepping by 3 and 5 and their 16-bit product, whose reductions join the
output (mapped to one SB_MAC16 with Yosys' ``-dsp``); the PLL rows feed an ``SB_PLL40_CORE`` from the
HFOSC at 12 MHz (the state of their source when those rows were added). We leave the input-pin glue
out: it is four LCs that never toggle.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import Out

from qlif.boards.tops.pll import ice40_pll_config

__all__ = ["DEVICE", "CORE_VOLTS", "SOURCE", "CLOCK_SOURCES", "LFOSC_HZ", "Measurement", "MEASURED", "CounterLogic",
           "CalibrationTop"]

#: The measured device (the breakout board's), as build reports name it.
DEVICE = "iCE40UP5K-SG48"
#: The core rail's voltage in the measurements (V).
CORE_VOLTS = 1.219
SOURCE = ("tinyvision-ai-inc/ice40_power README, 'Results' table (Joulescope JS110, iCE40 UltraPlus breakout "
          "board, core at 1.219 V)")
#: How a design is clocked: ``none`` (no clock), ``external`` (the 12 MHz pin; halted: ``clk_hz`` 0),
#: ``hfosc``, ``lfosc``, ``pll`` (an SB_PLL40_CORE fed by the HFOSC at 12 MHz).
CLOCK_SOURCES = ("none", "external", "hfosc", "lfosc", "pll")

#: SB_HFOSC divider settings by output frequency.
_HFOSC_DIV = {48e6: "0b00", 24e6: "0b01", 12e6: "0b10", 6e6: "0b11"}
#: The LFOSC's nominal frequency (Hz).
LFOSC_HZ = 10e3


@dataclass(frozen=True)
class Measurement:
    """One row of the published table: the design as described, and its core current (A)."""

    design: str
    description: str
    core_a: float
    clock: str
    clk_hz: float
    counter_bits: int = 0
    math: str = "none"           # "none", "luts" or "dsp"
    published_lcs: int = 0       # the LC count the table states (0: none stated)

    @property
    def measured_w(self) -> float:
        return self.core_a * CORE_VOLTS


#: The published rows (issue 12's table), in its order. Core currents in A.
MEASURED: tuple[Measurement, ...] = (
    Measurement("blank", "Blank design", 85.6e-6, "none", 0.0),
    Measurement("ext12-ctr28", "External 12 MHz + 28 bit counter", 613.5e-6, "external", 12e6, 28, published_lcs=32),
    Measurement("ext12-ctr56", "External 12 MHz + 28*2 bit counter", 616.65e-6, "external", 12e6, 56, published_lcs=60),
    Measurement("ext12-ctr112", "External 12 MHz + 28*4 bit counter", 624.2e-6, "external", 12e6, 112,
                published_lcs=116),
    Measurement("ext12-ctr224", "External 12 MHz + 28*8 bit counter", 641.3e-6, "external", 12e6, 224,
                published_lcs=228),
    Measurement("hfosc48-ctr24", "HFOSC (48 MHz) + 24 bit counter", 2184e-6, "hfosc", 48e6, 24, published_lcs=28),
    Measurement("hfosc24-ctr24", "HFOSC (24 MHz) + 24 bit counter", 1162e-6, "hfosc", 24e6, 24, published_lcs=28),
    Measurement("hfosc12-ctr24", "HFOSC (12 MHz) + 24 bit counter", 645e-6, "hfosc", 12e6, 24, published_lcs=28),
    Measurement("hfosc6-ctr24", "HFOSC (6 MHz) + 24 bit counter", 388.4e-6, "hfosc", 6e6, 24, published_lcs=28),
    Measurement("lfosc-ctr24", "LFOSC (10 kHz) + 24 bit counter", 96.3e-6, "lfosc", LFOSC_HZ, 24, published_lcs=28),
    Measurement("halted-ctr24", "External halted clock (0 kHz) + 24 bit counter", 92.1e-6, "external", 0.0, 24,
                published_lcs=28),
    Measurement("hfosc12-mul-luts", "HFOSC (12 MHz) + 8x8 multiply in LUTs + 24 bit counter", 996e-6, "hfosc", 12e6,
                24, "luts", published_lcs=208),
    Measurement("hfosc12-mul-dsp", "HFOSC (12 MHz) + 8x8 multiply in 1 DSP + 24 bit counter", 882e-6, "hfosc", 12e6,
                24, "dsp", published_lcs=72),
    Measurement("pll16-ctr24", "PLL (12 MHz in, 16 MHz out) + 24 bit counter", 1419e-6, "pll", 16e6, 24),
    Measurement("pll32-ctr24", "PLL (12 MHz in, 32 MHz out) + 24 bit counter", 2029e-6, "pll", 32e6, 24),
    Measurement("pll48-ctr24", "PLL (12 MHz in, 48 MHz out) + 24 bit counter", 2573e-6, "pll", 48e6, 24),
)


class CounterLogic(wiring.Component):
    """The measured designs' logic in the ``sync`` domain: a counter, optionally an 8x8 multiply.

    ``out`` is the counter's top bit, ORed (with ``math``) with the AND-reductions of the two 8-bit
    counters (stepping by 3 and 5) and the XOR-reduction (parity) of their 16-bit product, so that
    synthesis keeps all of it. (Their Verilog AND-reduces the product too; but an 8x8 product never
    exceeds 0xFE01, so that reduction is constant 0, and today's Yosys proves it and drops the
    multiplier: their 208 LCs came from a 2020 Yosys that did not.)
    Latency: none to speak of (free-running). Memory: none.

    Parameters
    ----------
    counter_bits : int
        Width of the free-running counter, 1..1024.
    math : str
        ``"none"``, or ``"luts"`` / ``"dsp"`` for the multiply (the RTL is the same; the build decides).
    """

    def __init__(self, *, counter_bits: int, math: str = "none"):
        if not isinstance(counter_bits, int) or isinstance(counter_bits, bool) or not 1 <= counter_bits <= 1024:
            raise ValueError(f"counter_bits must be an integer 1..1024, not {counter_bits!r}")
        if math not in ("none", "luts", "dsp"):
            raise ValueError(f"math must be 'none', 'luts' or 'dsp', not {math!r}")
        self._bits, self._math = counter_bits, math
        super().__init__({"out": Out(1)})

    @property
    def counter_bits(self) -> int:
        return self._bits

    @property
    def math(self) -> str:
        return self._math

    def elaborate(self, platform):
        m = Module()
        counter = Signal(self._bits)
        m.d.sync += counter.eq(counter + 1)
        if self._math == "none":
            m.d.comb += self.out.eq(counter[-1])
        else:
            a, b, product = Signal(8), Signal(8), Signal(16)
            m.d.sync += [a.eq(a + 3), b.eq(b + 5)]
            m.d.comb += [product.eq(a * b),
                         self.out.eq(counter[-1] | a.all() | b.all() | product.xor())]
        return m


class CalibrationTop(Elaboratable):
    """A measured design on the iCEBreaker platform (an iCE40UP5K-SG48, as the breakout board's).

    The clock source makes the ``sync`` domain: the 12 MHz pin (``external``, no reset logic, as their
    bare Verilog), the ``SB_HFOSC`` with its divider, the ``SB_LFOSC``, or an ``SB_PLL40_CORE`` fed by
    the HFOSC at 12 MHz. The logic's output drives the green LED. ``none`` is the blank design (the LED
    pin driven constant).
    """

    def __init__(self, measurement: Measurement):
        if not isinstance(measurement, Measurement):
            raise TypeError(f"measurement must be a Measurement, not {measurement!r}")
        if measurement.clock not in CLOCK_SOURCES:
            raise ValueError(f"clock must be one of {CLOCK_SOURCES}, not {measurement.clock!r}")
        self.measurement = measurement

    @property
    def synth_opts(self) -> str:
        """Yosys ``synth_ice40`` options of the build: ``-dsp`` maps the multiply of the DSP row to an SB_MAC16."""
        return "-dsp" if self.measurement.math == "dsp" else ""

    def elaborate(self, platform):
        meas = self.measurement
        m = Module()
        m.submodules.led = led = io.Buffer("o", platform.request("led_g", 0, dir="-"))
        if meas.clock == "none":
            m.d.comb += led.o.eq(0)
            return m
        m.domains.sync = ClockDomain("sync", reset_less=True)
        clk = Signal()          # a plain signal: a clock constraint cannot name a ClockSignal
        m.d.comb += ClockSignal("sync").eq(clk)
        if meas.clock == "external":
            # The pin's resource carries its 12 MHz constraint.
            m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request("clk12", 0, dir="-"))
            m.d.comb += clk.eq(clk_buf.i)
        elif meas.clock == "lfosc":
            m.submodules.osc = Instance("SB_LFOSC", i_CLKLFPU=1, i_CLKLFEN=1, o_CLKLF=clk)
            platform.add_clock_constraint(clk, LFOSC_HZ)
        elif meas.clock == "hfosc":
            m.submodules.osc = Instance("SB_HFOSC", p_CLKHF_DIV=_HFOSC_DIV[meas.clk_hz], i_CLKHFPU=1,
                                        i_CLKHFEN=1, o_CLKHF=clk)
            platform.add_clock_constraint(clk, meas.clk_hz)
        else:
            osc = Signal()
            m.submodules.osc = Instance("SB_HFOSC", p_CLKHF_DIV=_HFOSC_DIV[12e6], i_CLKHFPU=1, i_CLKHFEN=1,
                                        o_CLKHF=osc)
            cfg = ice40_pll_config(f_in=12e6, f_out=meas.clk_hz)
            m.submodules.pll = Instance(
                "SB_PLL40_CORE", p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=Const(cfg.divr, 4), p_DIVF=Const(cfg.divf, 7), p_DIVQ=Const(cfg.divq, 3),
                p_FILTER_RANGE=Const(cfg.filter_range, 3),
                i_REFERENCECLK=osc, i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk, o_LOCK=Signal())
            platform.add_clock_constraint(osc, 12e6)
        m.submodules.logic = logic = CounterLogic(counter_bits=meas.counter_bits, math=meas.math)
        m.d.comb += led.o.eq(logic.out)
        return m
