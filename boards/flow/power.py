"""Power and energy estimate of a build: device static power plus activity-driven dynamic power.

This is an **estimate**, not a measurement; docs/power.md gives every coefficient with its source.
Per device family::

    P = P_static(device)                                                     data sheet
      + f * ( E_clock                                                        clock network, per cycle
            + E_toggle * (N_ff * a_ff + (N_lut + N_carry) * a_logic)         fabric nets
            + N_ebr   * (r_read * E_ebr_read + r_write * E_ebr_write)        block RAM accesses
            + N_spram * (r_read + r_write) * E_spram                         single-port RAM accesses
            + N_dsp   * a_logic * E_dsp )                                    multipliers
      + P_pll (when the clock comes from the PLL)
      + P_io  (output pin toggles x (C_pin + C_load) * V_io^2)

``N_*`` come from the build report (:func:`qlif.boards.flow.build.build`), the activity rates ``a_ff``,
``a_logic`` (toggles per bit per cycle) and ``r_read``, ``r_write`` (accesses per block per cycle)
from RTL simulation of the workload (:mod:`qlif.sim.activity`), ``f`` is the clock. Energy per
inference is ``P x cycles / f``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from qlif.boards.flow.activity import Activity

__all__ = ["Coefficient", "FamilyModel", "FAMILIES", "Resources", "PowerEstimate", "family_of", "estimate_power"]


@dataclass(frozen=True)
class Coefficient:
    """A number of the power model with its unit, its source, and how sure it is.

    ``kind`` is ``"datasheet"`` (a vendor document, table named in ``source``), ``"measured"``
    (derived from a published measurement, named in ``source``) or ``"estimate"`` (an engineering
    estimate: ``source`` says how it was reasoned).
    """

    value: float
    unit: str
    kind: str
    source: str

    def __post_init__(self):
        if self.kind not in ("datasheet", "measured", "estimate"):
            raise ValueError(f"kind must be datasheet, measured or estimate, not {self.kind!r}")
        if not self.source:
            raise ValueError("every coefficient needs a source")
        if not (isinstance(self.value, (int, float)) and math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"value must be a finite non-negative number, not {self.value!r}")


_DS_UP = "Lattice FPGA-DS-02008 (iCE40 UltraPlus Family Data Sheet) v1.9"
_TV = ("tinyvision-ai-inc/ice40_power README (Joulescope JS110 measurements of an iCE40 UltraPlus breakout "
       "board, core rail at 1.219 V)")


@dataclass(frozen=True)
class FamilyModel:
    """Coefficients of one device family; ``static`` and ``clock`` per device name prefix."""

    family: str
    vcc: Coefficient
    static: dict          # device prefix -> Coefficient (W)
    clock: dict           # device prefix -> Coefficient (J per cycle)
    toggle: Coefficient   # J per net toggle
    ebr_read: Coefficient
    ebr_write: Coefficient
    ebr_geometry: tuple   # (width, depth) of the block's widest-but-one configuration, for memory_rates
    spram_access: Coefficient
    dsp_op: Coefficient
    pll: Coefficient      # W
    io_cap: Coefficient   # F, pin plus board load
    vccio: Coefficient

    def coefficients(self) -> dict[str, Coefficient]:
        """Every coefficient by a dotted name (``static.iCE40UP5K``, ``toggle``, ...)."""
        out = {}
        for name in ("vcc", "toggle", "ebr_read", "ebr_write", "spram_access", "dsp_op", "pll", "io_cap", "vccio"):
            out[name] = getattr(self, name)
        for group in ("static", "clock"):
            for device, coef in getattr(self, group).items():
                out[f"{group}.{device}"] = coef
        return out

    def per_device(self, group: str, device: str) -> Coefficient:
        table = getattr(self, group)
        for prefix in sorted(table, key=len, reverse=True):
            if device.upper().startswith(prefix.upper()):
                return table[prefix]
        raise ValueError(f"no {group} figure for device {device!r} in the {self.family} power model "
                         f"(known: {', '.join(sorted(table))})")


ICE40UP = FamilyModel(
    family="ice40up",
    vcc=Coefficient(1.2, "V", "datasheet", f"{_DS_UP}, Table 4.6 (typical VCC of the supply currents)"),
    static={"iCE40UP5K": Coefficient(
        75e-6 * 1.2 + 0.55e-6 * 2.5 + 0.5e-6 * 3.3 + 0.5e-6 * 3.3, "W", "datasheet",
        f"{_DS_UP}, Table 4.6: ICCSTDBY 75 uA (core, 1.2 V), IPP2V5STDBY 0.55 uA, ISPI_VCCIO1STDBY 0.5 uA, "
        "ICCIOSTDBY 0.5 uA (3.3 V); typical, TJ = 25 C, 0 MHz, PLL off. A blank design measured 85.6 uA "
        f"on the core ({_TV}, row 'Blank design')")},
    clock={"iCE40UP5K": Coefficient(
        52.1e-12, "J/cycle", "measured",
        f"{_TV}: core current of a 28-LC counter clocked by HFOSC at 6/12/24/48 MHz is 388.4/645/1162/2184 uA, "
        "a straight line of slope 42.76 uA/MHz (residuals < 3 uA); x 1.219 V = 52.1 pJ per cycle for the global "
        "clock network and the clocked cells")},
    toggle=Coefficient(
        0.20e-12, "J/toggle", "measured",
        f"{_TV}: 7 more 28-bit counters (196 more LCs, about 14 more output toggles per cycle) at 12 MHz add "
        "27.8 uA: 2.82 pJ per cycle, 0.20 pJ per toggle (counting every extra LC's clock load in it; the "
        "counter rows cannot separate the two). Cross-check: the 8x8 multiplier row (180 LCs, +351 uA at "
        "12 MHz) then implies about one toggle per LC per cycle, plausible for a glitchy array multiplier"),
    ebr_read=Coefficient(
        3.0e-12, "J/access", "estimate",
        "engineering estimate: a 256 x 16 SRAM read in 40 nm is about 1-2 pJ; doubled for the block's "
        "decoders and output latch. No iCE40 EBR figure is published; the address and data nets are "
        "counted separately as logic toggles"),
    ebr_write=Coefficient(3.0e-12, "J/access", "estimate", "engineering estimate: as ebr_read"),
    ebr_geometry=(16, 256),
    spram_access=Coefficient(
        10e-12, "J/access", "estimate",
        "engineering estimate: a 16k x 16 single-port array, about 3x the EBR figure for its longer bit "
        "lines"),
    dsp_op=Coefficient(
        20e-12, "J/cycle", "measured",
        f"{_TV}: the same multiplier in one DSP at 12 MHz adds 237 uA over the 28-LC counter, 24 pJ per "
        "cycle, less about 4 pJ for the 44 extra LCs"),
    pll=Coefficient(
        0.79e-3, "W", "measured",
        f"{_TV}: VCCPLL draws 138.6 uA at 1.219 V (0.17 mW), and the core 388-602 uA more than the HFOSC "
        "line at the same clock (rows 'PLL (12MHz in, 16/32/48MHz output)'), mean 506 uA (0.62 mW)"),
    io_cap=Coefficient(
        16e-12, "F", "estimate",
        f"{_DS_UP}, Table 4.5: I/O capacitance 6 pF; plus an assumed 10 pF of board trace and load"),
    vccio=Coefficient(3.3, "V", "datasheet", f"{_DS_UP}, Table 4.12: LVCMOS33 (the iCEBreaker's I/O banks)"),
)

_ECP5_DS = "Lattice FPGA-DS-02012 (ECP5 and ECP5-5G Family Data Sheet)"
_ECP5_STATIC = (
    "engineering estimate, uncertain by about +-50 %: no ECP5 supply-current table was available to this "
    f"project; replace with the typical ICC + ICCAUX of {_ECP5_DS}, section 'Supply Current (Standby)'. "
    "Reasoning: leakage of a 40 nm die scales with its size; the 85F die has about 16x the logic of the "
    "UP5K on a performance (not ultra-low-power) process")

ECP5 = FamilyModel(
    family="ecp5",
    vcc=Coefficient(1.1, "V", "datasheet", f"{_ECP5_DS}, Recommended Operating Conditions: VCC 1.1 V"),
    static={
        "LFE5U-85": Coefficient(100e-3, "W", "estimate", _ECP5_STATIC),
        "LFE5UM-85": Coefficient(100e-3, "W", "estimate", _ECP5_STATIC),
        "LFE5U-45": Coefficient(55e-3, "W", "estimate", _ECP5_STATIC + " (0.55x the 85F)"),
        "LFE5UM-45": Coefficient(55e-3, "W", "estimate", _ECP5_STATIC + " (0.55x the 85F)"),
        "LFE5U-25": Coefficient(30e-3, "W", "estimate", _ECP5_STATIC + " (0.3x the 85F)"),
        "LFE5UM-25": Coefficient(30e-3, "W", "estimate", _ECP5_STATIC + " (0.3x the 85F)"),
        "LFE5U-12": Coefficient(30e-3, "W", "estimate", _ECP5_STATIC + " (the 12F is a 25F die)"),
    },
    clock={
        "LFE5U-85": Coefficient(130e-12, "J/cycle", "estimate",
                                "engineering estimate: the UP5K's measured 52.1 pJ/cycle x 3 for the larger "
                                "clock tree x (1.1/1.2)^2 for VCC"),
        "LFE5UM-85": Coefficient(130e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-85"),
        "LFE5U-45": Coefficient(100e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-85 with x 2.3 "
                                                                   "instead of x 3"),
        "LFE5UM-45": Coefficient(100e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-45"),
        "LFE5U-25": Coefficient(75e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-85 with x 1.7 "
                                                                  "instead of x 3"),
        "LFE5UM-25": Coefficient(75e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-25"),
        "LFE5U-12": Coefficient(75e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-25 (same die)"),
    },
    toggle=Coefficient(0.17e-12, "J/toggle", "estimate",
                       "engineering estimate: the UP5K's measured 0.20 pJ x (1.1/1.2)^2; both are 40 nm LUT4 "
                       "fabrics with similar routing"),
    ebr_read=Coefficient(6.0e-12, "J/access", "estimate",
                         "engineering estimate: an 18 kbit DP16KD block, 2x the iCE40 4 kbit estimate"),
    ebr_write=Coefficient(6.0e-12, "J/access", "estimate", "engineering estimate: as ebr_read"),
    ebr_geometry=(18, 1024),
    spram_access=Coefficient(0.0, "J/access", "estimate", "not used: the ECP5 family has no SPRAM blocks"),
    dsp_op=Coefficient(20e-12, "J/cycle", "estimate", "engineering estimate: the iCE40 DSP figure"),
    pll=Coefficient(5e-3, "W", "estimate", "engineering estimate: an EHXPLLL on the 2.5 V VCCAUX rail, ~2 mA"),
    io_cap=Coefficient(16e-12, "F", "estimate", "engineering estimate: as the iCE40 (6 pF pin + 10 pF load)"),
    vccio=Coefficient(3.3, "V", "datasheet", f"{_ECP5_DS}: LVCMOS33 banks (the ULX3S)"),
)

#: Power models by family name.
FAMILIES = {model.family: model for model in (ICE40UP, ECP5)}


def family_of(device: str) -> FamilyModel:
    """The power model of a device name as build reports give it (``iCE40UP5K-SG48``, ``LFE5U-85F-6BG381C``)."""
    name = device.upper()
    if name.startswith("ICE40UP"):
        return ICE40UP
    if name.startswith("LFE5U"):
        return ECP5
    raise ValueError(f"no power model for device {device!r} (known families: iCE40 UltraPlus, ECP5)")


@dataclass(frozen=True)
class Resources:
    """What a build uses, as the power model counts it."""

    luts: int
    carries: int
    ffs: int
    ebr: int = 0
    spram: int = 0
    dsp: int = 0

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {value!r}")

    @classmethod
    def from_report(cls, report: dict) -> Resources:
        """Counts from a :func:`qlif.boards.flow.build.build` report (Yosys cells, nextpnr utilisation)."""
        cells = report.get("cells", {})
        res = report.get("resources", {})

        def used(key, *cell_types):
            if key in res:
                return int(res[key]["used"])
            return sum(int(cells.get(c, 0)) for c in cell_types)

        luts = sum(int(n) for c, n in cells.items() if c in ("SB_LUT4", "LUT4"))
        # An ECP5 CCU2C is two bits of carry.
        carries = int(cells.get("SB_CARRY", 0)) + 2 * int(cells.get("CCU2C", 0))
        ffs = used("ff", *(c for c in cells if c.startswith(("SB_DFF", "TRELLIS_FF"))))
        if not luts and "lc" in res:
            luts = int(res["lc"]["used"])        # no cell counts: every logic cell as a LUT
        return cls(luts=luts, carries=carries, ffs=ffs, ebr=used("ebr", "SB_RAM40_4K", "DP16KD", "PDPW16KD"),
                   spram=used("spram", "SB_SPRAM256KA"), dsp=used("dsp", "SB_MAC16", "MULT18X18D"))


@dataclass(frozen=True)
class PowerEstimate:
    """Static and dynamic power (W) by component at clock ``clk_hz``."""

    device: str
    family: str
    clk_hz: float
    static_w: float
    dynamic_w: dict

    @property
    def total_w(self) -> float:
        return self.static_w + sum(self.dynamic_w.values())

    def energy_per_inference(self, cycles: float) -> float:
        """Joules for an inference of ``cycles`` clock cycles at :attr:`clk_hz` (power x latency)."""
        if not cycles >= 0:
            raise ValueError(f"cycles must be non-negative, not {cycles!r}")
        return self.total_w * cycles / self.clk_hz

    def to_json(self) -> dict:
        return {"device": self.device, "family": self.family, "clk_hz": self.clk_hz, "static_w": self.static_w,
                "dynamic_w": dict(self.dynamic_w), "total_w": self.total_w}


def estimate_power(*, device: str, resources: Resources, activity: Activity, clk_hz: float, pll: bool = False,
                   io_toggles_per_s: float = 0.0, model: FamilyModel | None = None) -> PowerEstimate:
    """Estimate the power of a design on ``device`` running at ``clk_hz`` with ``activity``.

    ``pll``: the clock comes from the on-chip PLL (its power is added). ``io_toggles_per_s``: output
    pin transitions per second (the host link's replies). ``model`` defaults to the device's family.
    """
    if not (isinstance(clk_hz, (int, float)) and math.isfinite(clk_hz) and clk_hz > 0):
        raise ValueError(f"clk_hz must be a positive frequency, not {clk_hz!r}")
    if not io_toggles_per_s >= 0:
        raise ValueError(f"io_toggles_per_s must be non-negative, not {io_toggles_per_s!r}")
    fam = model or family_of(device)
    static = fam.per_device("static", device).value
    a_ff, a_logic = activity.ff_rate, activity.logic_rate
    r_read, r_write = activity.memory_rates(block_width=fam.ebr_geometry[0], block_depth=fam.ebr_geometry[1])
    f = float(clk_hz)
    dynamic = {
        "clock": f * fam.per_device("clock", device).value,
        "flip-flops": f * fam.toggle.value * resources.ffs * a_ff,
        "logic": f * fam.toggle.value * (resources.luts + resources.carries) * a_logic,
        "block RAM": f * resources.ebr * (r_read * fam.ebr_read.value + r_write * fam.ebr_write.value),
        "SPRAM": f * resources.spram * (r_read + r_write) * fam.spram_access.value,
        "DSP": f * resources.dsp * a_logic * fam.dsp_op.value,
        "PLL": fam.pll.value if pll else 0.0,
        "I/O": io_toggles_per_s * fam.io_cap.value * fam.vccio.value ** 2,
    }
    return PowerEstimate(device=device, family=fam.family, clk_hz=f, static_w=static, dynamic_w=dynamic)
