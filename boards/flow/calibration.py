"""The iCE40 UP5K power model checked against published measurements: the designs, the table, the fit.

tinyvision-ai-inc/ice40_power (README; Joulescope JS110 on every rail of a Lattice iCE40 UltraPlus
breakout board, core at 1.219 V) measured the core current of a handful of tiny designs. This module
holds that table (:data:`MEASURED`, one home), one Amaranth top per row (:class:`CalibrationTop`, the
same description; their Verilog does not carry over), the per-row features the power model reads
(:class:`Row`: resources from our build, activity from RTL simulation, clock and clock source), and the
weighted least-squares fit of the coefficients the rows determine (:func:`fit`).

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
           "DEVICE", "Row", "estimate_row", "FITTED", "Fit", "fit", "error_pct"]

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
    "static.iCE40UP5K": "blank",
    "configured": "halted-ctr24 (over blank)",
    "clock.iCE40UP5K": "hfosc*-ctr24 (the slope against f), ext12-*",
    "clock_ff": "ext12-ctr28..224 (the slope against the flip-flops)",
    "toggle": "hfosc12-mul-luts (over hfosc12-ctr24)",
    "dsp_op": "hfosc12-mul-dsp (over hfosc12-ctr24)",
    "hfosc": "hfosc*-ctr24 (the intercept) against ext12-*",
    "lfosc": "lfosc-ctr24 (over halted-ctr24)",
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


@dataclass(frozen=True)
class Fit:
    """Weighted least squares of :data:`FITTED` over the measured rows.

    ``values`` and ``errors`` (one standard error, from the residuals) by coefficient name, in the
    coefficient's unit; ``estimates`` (W) by design, from the fitted values; ``rms_pct`` the root mean
    square of the relative residuals; ``dof`` rows less fitted coefficients.
    """

    values: dict
    errors: dict
    estimates: dict
    rms_pct: float
    dof: int


def fit(rows: list[Row], model: FamilyModel = ICE40UP) -> Fit:
    """Fit :data:`FITTED` to the rows' measured core power, minimising relative residuals.

    The model is linear in these coefficients, so each design-matrix column is the model's own estimate
    (:func:`estimate_row`) with that coefficient at 1 and the others at 0; the coefficients not fitted
    (``lc_leak``; ``ebr_*``, ``spram_access`` are unused by these designs) keep ``model``'s values.
    Residuals are weighted by 1 / measured (every row counts by its relative error, the blank's 104 uW
    as much as the PLL's 3 mW). A coefficient the unconstrained fit makes negative is fixed at 0 and the
    rest refitted.
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
    free = [i for i in range(len(names)) if norms[i] > 0]
    while True:
        x = np.zeros(len(names))
        x[free] = np.linalg.lstsq(a[:, free] / norms[free], b, rcond=None)[0] / norms[free]
        negative = [i for i in free if x[i] < 0]
        if not negative:
            break
        free.remove(min(negative, key=lambda i: x[i]))
    residual = a @ x - b
    dof = len(rows) - len(free)
    sigma2 = float(residual @ residual) / dof if dof > 0 else math.nan
    scaled = a[:, free] / norms[free]
    cov = np.linalg.inv(scaled.T @ scaled) * sigma2 / np.outer(norms[free], norms[free])
    errors = np.zeros(len(names))
    errors[free] = np.sqrt(np.maximum(np.diag(cov), 0.0))
    # A coefficient one row alone determines fits it to rounding: its error is 0, not 1e-19.
    errors[errors < 1e-9 * np.abs(x)] = 0.0
    fitted = base
    for name, value in zip(names, x, strict=True):
        fitted = _with(fitted, name, float(value))
    return Fit(values=dict(zip(names, map(float, x), strict=True)),
               errors=dict(zip(names, map(float, errors), strict=True)),
               estimates={r.measurement.design: estimate_row(r, fitted) for r in rows},
               rms_pct=100 * math.sqrt(float(np.mean(residual ** 2))), dof=dof)


def error_pct(estimated_w: float, measured_w: float) -> float:
    """The estimate's error relative to the measurement, in percent (positive: the model overestimates)."""
    return 100 * (estimated_w - measured_w) / measured_w


# --------------------------------------------------------------------------------------------------
# The results files.

#: Columns of docs/results/power-calibration.csv.
CSV_COLUMNS = ("design", "measured_mw", "estimated_mw", "error_pct")


def table(rows: list[Row], model: FamilyModel = ICE40UP) -> list[dict]:
    """The CSV's rows: each design's measured and estimated core power (mW) and the error (%)."""
    out = []
    for row in rows:
        measured, estimated = row.measurement.measured_w, estimate_row(row, model)
        out.append({"design": row.measurement.design, "measured_mw": round(measured * 1e3, 4),
                    "estimated_mw": round(estimated * 1e3, 4),
                    "error_pct": round(error_pct(estimated, measured), 1) + 0.0})     # + 0.0: no "-0.0"
    return out


def _si(value: float, unit: str) -> str:
    """``value`` in ``unit`` with an engineering prefix (``48.0 pJ/cycle``)."""
    if value == 0:
        return f"0 {unit}"
    for factor, prefix in ((1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def write_results(rows: list[Row], result: Fit, folder, model: FamilyModel = ICE40UP) -> None:
    """Write ``power-calibration.csv`` (:data:`CSV_COLUMNS`, ``model``'s estimates), ``.md`` (that table with
    the builds' figures, the fit and the uncertainty) and ``.json`` (the rows, for the tests to refit)."""
    import csv
    import json
    from pathlib import Path

    folder = Path(folder)
    lines = table(rows, model)
    with open(folder / "power-calibration.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)
    (folder / "power-calibration.json").write_text(json.dumps({"source": SOURCE, "core_volts": CORE_VOLTS,
                                                               "rows": [r.to_json() for r in rows]}, indent=1) + "\n")
    errors = [abs(line["error_pct"]) for line in lines]
    rms = math.sqrt(sum(e * e for e in errors) / len(errors))
    md = [
        "# The power model against measured iCE40 UP5K figures",
        "",
        f"Measurements: {SOURCE}; measured power = core current x {CORE_VOLTS} V. Estimates: the core-rail share",
        "(`PowerEstimate.core_w`) of `qlif.boards.flow.power` with the `ice40up` coefficients as committed, for",
        "our rebuild of each design (`qlif.boards.flow.calibration`: the same flow as `qlif build`, Yosys",
        "`synth_ice40` and nextpnr through YoWASP; switching activity from an RTL simulation of 4,096 cycles",
        "reduced by `qlif.sim.activity`). Reproduce: `make power-calibration` (builds cached under",
        "`build/power-calibration/`).",
        "",
        "| design | description | LC (published) | FF | FF, logic toggles/cycle | measured mW | estimated mW "
        "| error % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, line in zip(rows, lines, strict=True):
        meas, act, res = row.measurement, row.activity, row.resources
        toggles = (f"{res.ffs * act.ff_rate:.2f}, {(res.luts + res.carries) * act.logic_rate:.2f}" if act else "-")
        md.append(f"| {meas.design} | {meas.description} | {row.lcs} ({meas.published_lcs or '-'}) | {res.ffs} | "
                  f"{toggles} | {line['measured_mw']:.4f} | {line['estimated_mw']:.4f} | {line['error_pct']:+.1f} |")
    md += [
        "",
        f"Error: largest {max(errors):.1f} %, root mean square {rms:.1f} % over the {len(rows)} designs.",
        "",
        "## The fit",
        "",
        f"Weighted least squares (residuals relative to the measurement) of {len(FITTED)} coefficients over "
        f"{len(rows)} rows ({result.dof} degrees of freedom; root mean square residual {result.rms_pct:.1f} %).",
        "The model is linear in them; each column of the design matrix is the model's own estimate with that",
        "coefficient at 1 and the others at 0 (`calibration.fit`). `lc_leak` (2.3 nW per LC, from the",
        "README's 1536-bit counter at 10 kHz) is not fitted: no row of the table varies the LCs of a stopped",
        "design. Standard errors from the residuals of all rows; a row that one coefficient alone fits",
        "(blank, LFOSC, the two multiplies) leaves no residual of its own: its coefficient's error is the",
        "other rows' scatter carried over, not a check.",
        "",
        "| coefficient | fitted | standard error | committed (`power.py`) | determined by |",
        "|---|---|---|---|---|",
    ]
    coefs = model.coefficients()
    for name, rows_note in FITTED.items():
        unit = coefs[name].unit
        md.append(f"| `{name}` | {_si(result.values[name], unit)} | {_si(result.errors[name], unit)} | "
                  f"{_si(coefs[name].value, unit)} | {rows_note} |")
    md += ["", "## The uncertainty that remains", "", *UNCERTAINTY, ""]
    (folder / "power-calibration.md").write_text("\n".join(md))


#: The part of power-calibration.md that the numbers do not write (docs/power.md repeats the gist).
UNCERTAINTY = [
    "* **Within the measured designs**: the over-determined groups fit within 2 % (the four external-clock",
    "  counters, the four HFOSC frequencies, the halted clock); the three PLL rows within 6 %: the PLL's",
    "  share of the core current falls with the output clock (603, 529, 389 uA over the HFOSC line at 16,",
    "  32, 48 MHz), and one constant cannot follow it. The blank, LFOSC and the two multiply rows fit",
    "  exactly, each determining one coefficient: for those, the uncertainty is the measurement's (one board",
    "  at room temperature; a Joulescope JS110 reads to about 0.5 %, the part-to-part spread of the static",
    "  current is far larger: the data sheet's typical ICCSTDBY is 75 uA against this board's 85.6 uA).",
    "* **clock_ff** (each flip-flop's clock load) is the least certain fitted figure (about +-45 %): the",
    "  counter rows span only 27.8 uA, and the fit trades it against the HFOSC line's slope.",
    "* **toggle** and **dsp_op** rest on one multiplier each, with RTL activity as the model's proxy for",
    "  what the LUTs do: the fitted toggle energy (0.56 pJ) absorbs the glitches of an array multiplier",
    "  that a zero-delay simulation does not see, so it overestimates logic with fewer glitches (counters,",
    "  muxes) and may underestimate long carry chains. For a design of thousands of LCs, such as the qlif",
    "  core, logic power is uncertain by about a factor of two either way.",
    "* **Not measured at all**: block RAM and SPRAM accesses (`ebr_read`, `ebr_write`, `spram_access`",
    "  remain engineering estimates), I/O power, temperature. The qlif core's energy is dominated by the",
    "  clock, the flip-flops' clock load and its block RAM reads; only the first two are calibrated here.",
]
