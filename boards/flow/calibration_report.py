"""The power calibration's results files: docs/results/power-calibration.csv, .md and .json.

The committed model's estimate of each measured design and its leave-one-out prediction (:func:`table`),
the idle on the core rail against every rail (:func:`idle_rails`), and the report that puts them with the
fit of :mod:`qlif.boards.flow.calibration_fit` and the uncertainty that remains (:func:`write_results`,
run by ``make power-calibration``).
"""

from __future__ import annotations

import math

from qlif.boards.flow.calibration import CORE_VOLTS, DEVICE, SOURCE
from qlif.boards.flow.calibration_fit import (
    FITTED,
    PRIOR,
    Design,
    Fit,
    LeaveOneOut,
    Row,
    design_spread,
    error_pct,
    estimate_row,
    leave_one_out,
    loo_spread,
    uses_coefficient,
)
from qlif.boards.flow.power import ICE40UP, FamilyModel, static_power

__all__ = ["CSV_COLUMNS", "LFOSC_OTHER_RAILS", "table", "idle_rails", "write_results", "UNCERTAINTY"]


#: Columns of docs/results/power-calibration.csv: the committed model's estimate of each row, then the
#: leave-one-out prediction (the fit of the other 15 rows) and what that refit could not determine.
CSV_COLUMNS = ("design", "measured_mw", "estimated_mw", "error_pct", "loo_estimated_mw", "loo_error_pct",
               "loo_held")

#: The LFOSC row's currents on the rails other than the core (A, V): the README's 151 uW "whole chip".
LFOSC_OTHER_RAILS = {"VCCPLL": (4.4e-6, 1.219), "bank 0": (3.76e-6, 3.283), "bank 1": (3.4e-6, 3.283),
                     "bank 2": (1.5e-6, 3.283)}


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
              if any(uses_coefficient(row, n, model) for n in left.fit.held + left.fit.clipped)}
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
        "coefficient at 1 and the others at 0 (`calibration_fit.fit`). `lc_leak` (2.3 nW per LC, from the",
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
