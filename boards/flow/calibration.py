"""The iCE40 UP5K power model checked against published measurements: the designs, the table, the fit.

tinyvision-ai-inc/ice40_power (README; Joulescope JS110 on every rail of a Lattice iCE40 UltraPlus
breakout board, core at 1.219 V) measured the core current of a handful of tiny designs. This module
holds that table (:data:`MEASURED`, one home), one Amaranth top per row (:class:`CalibrationTop`, the
same description; their Verilog does not carry over), the per-row features the power model reads
(:class:`Row`: resources from our build, activity from RTL simulation, clock and clock source), the
weighted least-squares fit of the coefficients the rows determine (:func:`fit`), and the uncertainty
that fit leaves: each row predicted by the fit of the others (:func:`leave_one_out`), each coefficient's
range over those refits (:func:`loo_spread`), that range carried to a qlif build (:func:`design_spread`),
and the idle on the core rail against every rail (:func:`idle_rails`).

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

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from amaranth.hdl import ClockDomain, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import Out

from qlif.boards.flow.activity import Activity
from qlif.boards.flow.power import ICE40UP, FamilyModel, Resources, estimate_power, static_power
from qlif.boards.tops.pll import ice40_pll_config

__all__ = ["CORE_VOLTS", "SOURCE", "CLOCK_SOURCES", "Measurement", "MEASURED", "CounterLogic", "CalibrationTop",
           "DEVICE", "Row", "estimate_row", "FITTED", "PRIOR", "Fit", "fit", "LeaveOneOut", "leave_one_out",
           "loo_spread", "Design", "design_spread", "idle_rails", "error_pct"]

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


# --------------------------------------------------------------------------------------------------
# The fit.

@dataclass(frozen=True)
class Row:
    """One measured design as the power model reads it: our build's resources and the RTL activity of
    its logic (``None`` for the blank design, which has none)."""

    measurement: Measurement
    lcs: int
    resources: Resources
    activity: Activity | None

    @classmethod
    def from_build(cls, measurement: Measurement, report: dict, activity: Activity | None) -> Row:
        """From a build report (:func:`qlif.boards.flow.reports.parse_reports`) and the measured activity."""
        lcs = int(report["resources"]["lc"]["used"])
        if measurement.clock == "none":
            # The blank design's one LC is nextpnr's constant driver of the LED pin: no logic, no flip-flop
            # (Resources.from_report would count it as a LUT, having no LUT cells to count).
            return cls(measurement, lcs, Resources(luts=0, carries=0, ffs=0), None)
        return cls(measurement, lcs, Resources.from_report(report), activity)

    def to_json(self) -> dict:
        return {"design": self.measurement.design, "lcs": self.lcs, "resources": asdict(self.resources),
                "activity": self.activity.to_json() if self.activity else None}

    @classmethod
    def from_json(cls, doc: dict) -> Row:
        by_name = {m.design: m for m in MEASURED}
        if doc.get("design") not in by_name:
            raise ValueError(f"design must be one of the measured rows, not {doc.get('design')!r}")
        act = Activity.from_json(doc["activity"]) if doc["activity"] else None
        return cls(by_name[doc["design"]], int(doc["lcs"]), Resources(**doc["resources"]), act)


def estimate_row(row: Row, model: FamilyModel = ICE40UP) -> float:
    """The core power (W) ``model`` estimates for a measured design: :func:`estimate_power`'s ``core_w``
    at the row's clock and source; :func:`static_power`'s core share with no clock (blank, halted)."""
    meas = row.measurement
    if meas.clock == "none" or meas.clk_hz == 0:
        return static_power(device=DEVICE, resources=row.resources, model=model)[0]
    osc = {"hfosc": "hfosc", "pll": "hfosc", "lfosc": "lfosc"}.get(meas.clock)
    return estimate_power(device=DEVICE, resources=row.resources, activity=row.activity, clk_hz=meas.clk_hz,
                          pll=meas.clock == "pll", oscillator=osc, model=model).core_w


#: The coefficients the rows determine, and the rows that do (docs/power.md, "Calibration").
FITTED = {
    "static.iCE40UP5K": "blank alone",
    "configured": "halted-ctr24 (over blank)",
    "clock.iCE40UP5K": "hfosc*-ctr24 (the slope against f), ext12-*",
    "clock_ff": "ext12-ctr28..224 (the slope against the flip-flops)",
    "toggle": "hfosc12-mul-luts alone (over hfosc12-ctr24; the counters' toggles barely vary)",
    "dsp_op": "hfosc12-mul-dsp alone (over hfosc12-ctr24)",
    "hfosc": "hfosc*-ctr24 (the intercept) against ext12-*",
    "lfosc": "lfosc-ctr24 alone (over halted-ctr24)",
    "pll": "pll16/32/48-ctr24 (over the HFOSC line)",
}


def _with(model: FamilyModel, name: str, value: float) -> FamilyModel:
    """``model`` with the coefficient ``name`` (dotted for per-device ones) set to ``value``."""
    group, _, device = name.partition(".")
    if device:
        table = dict(getattr(model, group))
        table[device] = replace(table[device], value=value)
        return replace(model, **{group: table})
    return replace(model, **{name: replace(getattr(model, name), value=value)})


#: What a coefficient is held at when the rows given cannot determine it (in a leave-one-out refit, the
#: row left out is the one that alone determines it): the data sheet's figure where it has one (the
#: typical ICCSTDBY, 75 uA at 1.2 V), else 0 (the term left out: no figure but the measurement's).
PRIOR = {"static.iCE40UP5K": 75e-6 * 1.2}


@dataclass(frozen=True)
class Fit:
    """Weighted least squares of :data:`FITTED` over the measured rows.

    ``values`` and ``errors`` (one standard error, from the residuals; NaN for a coefficient held) by
    coefficient name, in the coefficient's unit; ``estimates`` (W) by design, from the fitted values;
    ``rms_pct`` the root mean square of the relative residuals; ``dof`` rows less fitted coefficients;
    ``held`` the coefficients the rows did not determine (held at :data:`PRIOR`), ``clipped`` those the
    fit made negative (held at 0), each in :data:`FITTED`'s order.
    """

    values: dict
    errors: dict
    estimates: dict
    rms_pct: float
    dof: int
    held: tuple = ()
    clipped: tuple = ()

    def model(self, base: FamilyModel = ICE40UP) -> FamilyModel:
        """``base`` with the fitted values."""
        for name, value in self.values.items():
            base = _with(base, name, value)
        return base


#: Singular values below this fraction of the largest (of the unit-norm columns) mark coefficients the
#: rows cannot tell apart: exact collinearity is at 1e-16, the weakest real constraint here (toggle from
#: the counters alone) about 1e-3.
_RANK_TOL = 1e-9


def fit(rows: list[Row], model: FamilyModel = ICE40UP) -> Fit:
    """Fit :data:`FITTED` to the rows' measured core power, minimising relative residuals.

    The model is linear in these coefficients, so each design-matrix column is the model's own estimate
    (:func:`estimate_row`) with that coefficient at 1 and the others at 0; the coefficients not fitted
    (``lc_leak``; ``ebr_*``, ``spram_access`` are unused by these designs) keep ``model``'s values.
    Residuals are weighted by 1 / measured (every row counts by its relative error, the blank's 104 uW
    as much as the PLL's 3 mW). A coefficient the rows do not determine (a column of zeros, or one that
    a combination of the others matches, as ``static`` and ``configured`` without the blank row) is held
    at :data:`PRIOR`; one the fit makes negative is held at 0; the rest are refitted.
    """
    names = list(FITTED)
    base = model
    for name in names:
        base = _with(base, name, 0.0)
    measured = np.array([r.measurement.measured_w for r in rows])
    fixed = np.array([estimate_row(r, base) for r in rows])
    columns = np.array([[estimate_row(r, _with(base, name, 1.0)) for name in names] for r in rows]) - fixed[:, None]
    a = columns / measured[:, None]
    b = (measured - fixed) / measured
    # Columns span 17 decades (W per W, W per J/toggle ...): solve with each scaled to unit norm.
    norms = np.linalg.norm(a, axis=0)
    x = np.zeros(len(names))
    free = [i for i in range(len(names)) if norms[i] > 0]
    held = [i for i in range(len(names)) if norms[i] == 0]
    clipped = []
    for i in held:
        x[i] = PRIOR.get(names[i], 0.0)
    while free:
        scaled = a[:, free] / norms[free]
        _, sv, vt = np.linalg.svd(scaled, full_matrices=False)
        if len(free) > len(rows) or sv[-1] < _RANK_TOL * sv[0]:
            # Undetermined: hold the first (in FITTED's order) of the coefficients the null direction
            # involves most, and refit the rest.
            null = np.abs(vt[-1]) if len(free) <= len(rows) else np.ones(len(free))
            j = free[int(np.flatnonzero(null >= null.max() * (1 - 1e-6))[0])]
            x[j] = PRIOR.get(names[j], 0.0)
            held.append(j)
        else:
            out = held + clipped
            rhs = b - a[:, out] @ x[out]
            x[free] = np.linalg.lstsq(scaled, rhs, rcond=None)[0] / norms[free]
            negative = [i for i in free if x[i] < 0]
            if not negative:
                break
            j = min(negative, key=lambda i: x[i])
            x[j] = 0.0
            clipped.append(j)
        free.remove(j)
    residual = a @ x - b
    dof = len(rows) - len(free)
    sigma2 = float(residual @ residual) / dof if dof > 0 else math.nan
    errors = np.full(len(names), math.nan)
    if free:
        cov = np.linalg.inv(scaled.T @ scaled) * sigma2 / np.outer(norms[free], norms[free])
        errors[free] = np.sqrt(np.maximum(np.diag(cov), 0.0))
    # A coefficient one row alone determines fits it to rounding: its error is 0, not 1e-19.
    errors[errors < 1e-9 * np.abs(x)] = 0.0
    result = Fit(values=dict(zip(names, map(float, x), strict=True)),
                 errors=dict(zip(names, map(float, errors), strict=True)), estimates={},
                 rms_pct=100 * math.sqrt(float(np.mean(residual ** 2))), dof=dof,
                 held=tuple(names[i] for i in sorted(held)), clipped=tuple(names[i] for i in sorted(clipped)))
    fitted = result.model(model)
    return replace(result, estimates={r.measurement.design: estimate_row(r, fitted) for r in rows})


@dataclass(frozen=True)
class LeaveOneOut:
    """One row predicted by the fit of the other rows: what the model says of a design it was not fitted
    to. ``estimate_w`` (W) and ``error_pct`` against the row's measurement; ``fit`` the refit, whose
    ``held`` names the coefficients the other rows cannot determine and ``clipped`` those they make
    negative."""

    design: str
    estimate_w: float
    error_pct: float
    fit: Fit


def leave_one_out(rows: list[Row], model: FamilyModel = ICE40UP) -> list[LeaveOneOut]:
    """Refit :data:`FITTED` without each row in turn and predict that row (rows' order)."""
    out = []
    for i, row in enumerate(rows):
        refit = fit(rows[:i] + rows[i + 1:], model)
        est = estimate_row(row, refit.model(model))
        out.append(LeaveOneOut(row.measurement.design, est, error_pct(est, row.measurement.measured_w), refit))
    return out


def loo_spread(loo: list[LeaveOneOut]) -> dict:
    """Each fitted coefficient's range over the leave-one-out refits that determine it:
    ``{name: (low, high, undetermined)}``, ``undetermined`` the designs whose removal leaves it held or
    clipped."""
    out = {}
    for name in FITTED:
        values = [r.fit.values[name] for r in loo if name not in r.fit.held + r.fit.clipped]
        out[name] = (min(values), max(values), tuple(r.design for r in loo if name in r.fit.held + r.fit.clipped))
    return out


@dataclass(frozen=True)
class Design:
    """A design to carry the fit's uncertainty to (a qlif build running from the HFOSC): what
    :func:`estimate_power` needs, and a name for the report."""

    name: str
    resources: Resources
    activity: Activity
    clk_hz: float


def design_spread(design: Design, result: Fit, loo: list[LeaveOneOut], model: FamilyModel = ICE40UP) -> dict:
    """``design``'s core power (W) running from the HFOSC and stopped, by the full fit and over the
    leave-one-out refits: ``{"running": (full, low, high), "stopped": (...)}``, and the designs left out
    at each extreme (``"running_low"``, ``"running_high"``, ...)."""
    def states(fam: FamilyModel) -> dict:
        run = estimate_power(device=DEVICE, resources=design.resources, activity=design.activity,
                             clk_hz=design.clk_hz, oscillator="hfosc", model=fam).core_w
        return {"running": run, "stopped": static_power(device=DEVICE, resources=design.resources, model=fam)[0]}

    full = states(result.model(model))
    each = [(r.design, states(r.fit.model(model))) for r in loo]
    out = {}
    for key in ("running", "stopped"):
        low = min(each, key=lambda e: e[1][key])
        high = max(each, key=lambda e: e[1][key])
        out[key] = (full[key], low[1][key], high[1][key])
        out[f"{key}_low"], out[f"{key}_high"] = low[0], high[0]
    return out


def error_pct(estimated_w: float, measured_w: float) -> float:
    """The estimate's error relative to the measurement, in percent (positive: the model overestimates)."""
    return 100 * (estimated_w - measured_w) / measured_w


# --------------------------------------------------------------------------------------------------
# The results files.

#: Columns of docs/results/power-calibration.csv: the committed model's estimate of each row, then the
#: leave-one-out prediction (the fit of the other 15 rows) and what that refit could not determine.
CSV_COLUMNS = ("design", "measured_mw", "estimated_mw", "error_pct", "loo_estimated_mw", "loo_error_pct",
               "loo_held")

#: The LFOSC row's currents on the rails other than the core (A, V): the README's 151 uW "whole chip".
LFOSC_OTHER_RAILS = {"VCCPLL": (4.4e-6, 1.219), "bank 0": (3.76e-6, 3.283), "bank 1": (3.4e-6, 3.283),
                     "bank 2": (1.5e-6, 3.283)}


def _uses(row: Row, name: str, model: FamilyModel) -> bool:
    """Whether the coefficient ``name`` enters ``row``'s estimate."""
    return estimate_row(row, _with(model, name, 0.0)) != estimate_row(row, _with(model, name, 1.0))


def _held_note(result: Fit) -> str:
    """What a refit held: ``static.iCE40UP5K=data sheet``, ``dsp_op=0``; ``;``-separated."""
    return ";".join([f"{n}={'data sheet' if n in PRIOR else '0'}" for n in result.held]
                    + [f"{n}=0 (negative)" for n in result.clipped])


def _pct(value: float) -> float:
    return round(value, 1) + 0.0     # + 0.0: no "-0.0"


def table(rows: list[Row], model: FamilyModel = ICE40UP, loo: list[LeaveOneOut] | None = None) -> list[dict]:
    """The CSV's rows: each design's measured and estimated core power (mW) and the error (%), and its
    leave-one-out prediction (``loo``, default :func:`leave_one_out` of ``rows``)."""
    loo = {r.design: r for r in (loo if loo is not None else leave_one_out(rows, model))}
    out = []
    for row in rows:
        measured, estimated = row.measurement.measured_w, estimate_row(row, model)
        left = loo[row.measurement.design]
        out.append({"design": row.measurement.design, "measured_mw": round(measured * 1e3, 4),
                    "estimated_mw": round(estimated * 1e3, 4), "error_pct": _pct(error_pct(estimated, measured)),
                    "loo_estimated_mw": round(left.estimate_w * 1e3, 4), "loo_error_pct": _pct(left.error_pct),
                    "loo_held": _held_note(left.fit)})
    return out


def _si(value: float, unit: str) -> str:
    """``value`` in ``unit`` with an engineering prefix (``48.0 pJ/cycle``)."""
    if value == 0:
        return f"0 {unit}"
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _rms(values) -> float:
    values = list(values)
    return math.sqrt(sum(v * v for v in values) / len(values))


def idle_rails(rows: list[Row], model: FamilyModel = ICE40UP) -> dict:
    """The LFOSC row (24-bit counter at 10 kHz, the wake-up build's idle) on the core rail and on every
    rail, measured and modelled (W): ``core_measured``, ``core_model``, ``other_measured`` (the
    README's PLL and bank currents), ``other_model`` (``static_aux``: the data sheet's standby)."""
    row = next(r for r in rows if r.measurement.design == "lfosc-ctr24")
    return {"core_measured": row.measurement.measured_w, "core_model": estimate_row(row, model),
            "other_measured": sum(a * v for a, v in LFOSC_OTHER_RAILS.values()),
            "other_model": static_power(device=DEVICE, resources=row.resources, model=model)[1]}


def write_results(rows: list[Row], result: Fit, folder, model: FamilyModel = ICE40UP,
                  design: Design | None = None, design_fixed_w: float = 0.0) -> None:
    """Write ``power-calibration.csv`` (:data:`CSV_COLUMNS`, ``model``'s estimates and the leave-one-out
    predictions), ``.md`` (that table with the builds' figures, the fit, the leave-one-out spread, the idle
    rails and the uncertainty; with ``design``, the spread carried to it, ``design_fixed_w`` of its power
    being terms the fit does not touch, block RAM) and ``.json`` (the rows, for the tests to refit)."""
    import csv
    import json
    from pathlib import Path

    folder = Path(folder)
    loo = leave_one_out(rows, model)
    lines = table(rows, model, loo)
    with open(folder / "power-calibration.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    (folder / "power-calibration.json").write_text(json.dumps({"source": SOURCE, "core_volts": CORE_VOLTS,
                                                               "rows": [r.to_json() for r in rows]}, indent=1) + "\n")
    in_sample = [line["error_pct"] for line in lines]
    out_sample = [line["loo_error_pct"] for line in lines]
    md = [
        "# The power model against measured iCE40 UP5K figures",
        "",
        f"Measurements: {SOURCE}; measured power = core current x {CORE_VOLTS} V. Estimates: the core-rail share",
        "(`PowerEstimate.core_w`) of `qlif.boards.flow.power` with the `ice40up` coefficients as committed, for",
        "our rebuild of each design (`qlif.boards.flow.calibration`: the same flow as `qlif build`, Yosys",
        "`synth_ice40` and nextpnr through YoWASP; switching activity from an RTL simulation of 4,096 cycles",
        "reduced by `qlif.sim.activity`). Leave-one-out (LOO): the row predicted by the fit of the other 15",
        "rows, the test of a design the model was not fitted to. Reproduce: `make power-calibration` (builds",
        "cached under `build/power-calibration/`).",
        "",
        "| design | description | LC (published) | FF | FF, logic toggles/cycle | measured mW | estimated mW "
        "| error % | LOO mW | LOO error % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    # A row is marked when its refit held (or clipped) a coefficient the row's own estimate uses.
    marked = {left.design for row, left in zip(rows, loo, strict=True)
              if any(_uses(row, n, model) for n in left.fit.held + left.fit.clipped)}
    checked = [line["loo_error_pct"] for line in lines if line["design"] not in marked]
    for row, line in zip(rows, lines, strict=True):
        meas, act, res = row.measurement, row.activity, row.resources
        toggles = (f"{res.ffs * act.ff_rate:.2f}, {(res.luts + res.carries) * act.logic_rate:.2f}" if act else "-")
        mark = " *" if meas.design in marked else ""
        md.append(f"| {meas.design} | {meas.description} | {row.lcs} ({meas.published_lcs or '-'}) | {res.ffs} | "
                  f"{toggles} | {line['measured_mw']:.4f} | {line['estimated_mw']:.4f} | {line['error_pct']:+.1f} | "
                  f"{line['loo_estimated_mw']:.4f} | {line['loo_error_pct']:+.1f}{mark} |")
    md += [
        "",
        "\\* the other rows cannot determine a coefficient this row uses: the refit holds it at the data",
        "sheet's figure or at 0 (column `loo_held` of the CSV lists what each refit held, used or not): "
        + "; ".join(f"{line['design']}: {line['loo_held'].replace(';', ', ')}" for line in lines
                    if line["design"] in marked) + ".",
        "",
        f"In sample (the fit of all 16 rows): largest {max(map(abs, in_sample)):.1f} %, root mean square "
        f"{_rms(in_sample):.1f} %. Leave-one-out: from {min(out_sample):+.1f} to {max(out_sample):+.1f} %, root "
        f"mean square {_rms(out_sample):.1f} %; the {len(checked)} rows not marked, whose every coefficient the "
        f"other rows determine: {min(checked):+.1f} to {max(checked):+.1f} %, root mean square "
        f"{_rms(checked):.1f} %.",
        "",
        "## The fit",
        "",
        f"Weighted least squares (residuals relative to the measurement) of {len(FITTED)} coefficients over "
        f"{len(rows)} rows ({result.dof} degrees of freedom; root mean square residual {result.rms_pct:.1f} %).",
        "The model is linear in them; each column of the design matrix is the model's own estimate with that",
        "coefficient at 1 and the others at 0 (`calibration.fit`). `lc_leak` (2.3 nW per LC, from the",
        "README's 1536-bit counter at 10 kHz) is not fitted: no row of the table varies the LCs of a stopped",
        "design. Standard errors from the residuals of all rows. The LOO range is the coefficient's lowest and",
        "highest value over the 16 refits that leave one row out, among those that still determine it.",
        "",
        "| coefficient | fitted | standard error | LOO range | committed (`power.py`) | determined by |",
        "|---|---|---|---|---|---|",
    ]
    coefs = model.coefficients()
    spread = loo_spread(loo)
    for name, rows_note in FITTED.items():
        unit = coefs[name].unit
        low, high, without = spread[name]
        gone = f"; none without {' or '.join(without)}" if without else ""
        md.append(f"| `{name}` | {_si(result.values[name], unit)} | {_si(result.errors[name], unit)} | "
                  f"{_si(low, unit)} .. {_si(high, unit)}{gone} | {_si(coefs[name].value, unit)} | {rows_note} |")
    md += [
        "",
        "**One row each.** `static.iCE40UP5K` rests on the blank row alone, `lfosc` on the LFOSC row,",
        "`dsp_op` on the multiply in a DSP, and `toggle` in effect on the multiply in LUTs: every other row is",
        "a counter whose toggles stay at 5.8 to 6.0 per cycle whatever its width (bit i toggles every 2^i",
        "cycles), so the counters cannot tell toggle energy from the clock's. A row that one coefficient",
        "alone fits leaves no residual of its own: its standard error is the other rows' scatter carried",
        "over, not a check, and its LOO prediction shows what the model would say without it (blank: the",
        "data sheet's typical static current; LFOSC and DSP: no figure; LUTs: `toggle` from the counters, "
        f"{_si(spread['toggle'][1], 'J/toggle')}).",
        "",
    ]
    rails = idle_rails(rows, model)
    md += [
        "## Idle: the core rail and every rail",
        "",
        "The wake-up build idles as the LFOSC row does (its `aon` domain on the LFOSC, the core's clock off).",
        "",
        "| LFOSC + 24-bit counter | core rail | other rails | every rail |",
        "|---|---|---|---|",
        f"| measured (README) | {rails['core_measured'] * 1e6:.1f} uW | {rails['other_measured'] * 1e6:.1f} uW "
        f"(PLL rail, banks 0-2: " + ", ".join(f"{a * 1e6:g} uA" for a, _ in LFOSC_OTHER_RAILS.values()) + ") | "
        f"{(rails['core_measured'] + rails['other_measured']) * 1e6:.1f} uW |",
        f"| model | {rails['core_model'] * 1e6:.1f} uW (fitted) | {rails['other_model'] * 1e6:.1f} uW (data sheet "
        f"standby, `static_aux`) | {(rails['core_model'] + rails['other_model']) * 1e6:.1f} uW |",
        "",
        "The wake-up figures (`qlif wakeup-report`, `make demo`) use the model's every-rail figure: the fitted",
        "core rail plus the data sheet's typical standby of the other rails. The board measured "
        f"{(rails['other_measured'] - rails['other_model']) * 1e6:.0f} uW more",
        "on those rails (the README does not say how much of it is the chip's and how much the board's own",
        "circuits): a wake-up build on that board would idle up to that much higher than reported.",
        "",
    ]
    md += ["## The uncertainty that remains", "", *UNCERTAINTY]
    if design is not None:
        sp = design_spread(design, result, loo, model)
        run, stop = sp["running"], sp["stopped"]
        fixed = design_fixed_w
        md += [
            "",
            f"**Carried to a qlif-sized design.** {design.name[:1].upper()}{design.name[1:]}: "
            f"{design.resources.luts} LUTs, "
            f"{design.resources.carries} carries, {design.resources.ffs} FFs, {design.resources.ebr} EBR at "
            f"{design.clk_hz / 1e6:g} MHz from the HFOSC (its activity: FF {design.activity.ff_rate:.3f}, "
            f"logic {design.activity.logic_rate:.3f} toggles per bit and cycle). Core power running, by the full fit",
            f"and over the 16 LOO refits: {(run[0] + fixed) * 1e6:.0f} uW, {(run[1] + fixed) * 1e6:.0f} .. "
            f"{(run[2] + fixed) * 1e6:.0f} uW ({error_pct(run[1] + fixed, run[0] + fixed):+.0f} / "
            f"{error_pct(run[2] + fixed, run[0] + fixed):+.0f} %; the high end without {sp['running_high']}, "
            f"the low end without {sp['running_low']}),",
            f"of which {fixed * 1e6:.0f} uW of block RAM reads that no row measures (an estimate, held fixed here). "
            f"Stopped: {stop[0] * 1e6:.1f} uW, {stop[1] * 1e6:.1f} .. {stop[2] * 1e6:.1f} uW on the core rail.",
            "So the running power of a qlif core is known to about "
            f"{error_pct(run[1] + fixed, run[0] + fixed):+.0f} / {error_pct(run[2] + fixed, run[0] + fixed):+.0f} % "
            "from this table, the toggle energy being the",
            "term that moves it, before the unmeasured block RAM and the glitches its zero-delay activity misses.",
        ]
    md.append("")
    (folder / "power-calibration.md").write_text("\n".join(md))


#: The part of power-calibration.md that the numbers do not write (docs/power.md repeats the gist).
UNCERTAINTY = [
    "* **Within the measured designs**: in sample every row is within 6 %, but that is the fit describing",
    "  its own data. Left out one at a time, the counters and HFOSC frequencies are predicted within 3 %,",
    "  the halted clock within 5 %, the PLL rows within 10 % (the PLL's share of the core current falls",
    "  with the output clock, 603, 529, 389 uA over the HFOSC line at 16, 32, 48 MHz, and one constant",
    "  cannot follow it). The rows that alone determine a coefficient are not predicted at all: without",
    "  the blank row the data sheet's typical static current is 14 % low for this board; without the DSP",
    "  row nothing gives `dsp_op`; without the multiply in LUTs the counters put `toggle` at 1.9 times",
    "  the fitted figure and over-predict that row by 30 %. One board at room temperature: the",
    "  part-to-part spread of the static current (data sheet typical 75 uA, this board 85.6 uA) and its",
    "  temperature dependence are not in the table.",
    "* **toggle** and **dsp_op** rest on one multiplier each, with RTL activity as the model's proxy for",
    "  what the LUTs do: the fitted toggle energy absorbs the glitches of an array multiplier that a",
    "  zero-delay simulation does not see, so it may overestimate logic with fewer glitches (counters,",
    "  muxes) and underestimate long carry chains.",
    "* **clock_ff** (each flip-flop's clock load) rests on the four counter rows, which span only 27.8 uA;",
    "  its standard error is half its value.",
    "* **Not measured at all**: block RAM and SPRAM accesses (`ebr_read`, `ebr_write`, `spram_access`",
    "  remain engineering estimates), the SPRAM's sleep current, I/O power, temperature.",
    "* **A duty-cycled design measured on the same board** (the README's `lp_design`: LFOSC, HFOSC gated,",
    "  62 LCs) idled at 135 uA on the core, 40 % over the LFOSC row's 96.3 uA, for a reason its author",
    "  did not find. The model predicts the table's row, not that design; it is the one measurement of a",
    "  wake-up design, and it says the idle figure could be that much higher on a real build.",
]
