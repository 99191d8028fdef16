"""The power model's coefficients fitted to the measured UP5K designs, and the uncertainty the fit leaves.

The per-row features the power model reads (:class:`Row`: resources from our build, activity from RTL
simulation, clock and clock source, of a design in :data:`qlif.boards.flow.calibration.MEASURED`), the
weighted least-squares fit of the coefficients the rows determine (:func:`fit`), each row predicted by
the fit of the others (:func:`leave_one_out`), each coefficient's range over those refits
(:func:`loo_spread`), and that range carried to a qlif build (:func:`design_spread`). docs/power.md,
"Calibration", explains the fit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from qlif.boards.flow.activity import Activity
from qlif.boards.flow.calibration import DEVICE, MEASURED, Measurement
from qlif.boards.flow.power import ICE40UP, FamilyModel, Resources, estimate_power, static_power

__all__ = ["Row", "estimate_row", "FITTED", "uses_coefficient", "PRIOR", "Fit", "fit", "LeaveOneOut",
           "leave_one_out", "loo_spread", "Design", "design_spread", "error_pct"]


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


def uses_coefficient(row: Row, name: str, model: FamilyModel) -> bool:
    """Whether the coefficient ``name`` enters ``row``'s estimate."""
    return estimate_row(row, _with(model, name, 0.0)) != estimate_row(row, _with(model, name, 1.0))


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
