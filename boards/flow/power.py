"""Power and energy estimate of a build: device static power plus activity-driven dynamic power.

This is an **estimate**, not a measurement; docs/power.md gives every coefficient with its source.
Per device family::

    P = P_static(device) + P_static_aux(device)                              blank design; other rails
      + P_configured + N_lc * P_lc                                           a configured design, clock stopped
      + f * ( E_clock                                                        clock network, per cycle
            + N_ff * E_clock_ff                                              each flip-flop's clock load
            + E_toggle * (N_ff * a_ff + (N_lut + N_carry) * a_logic)         fabric nets
            + N_ebr   * (r_read * E_ebr_read + r_write * E_ebr_write)        block RAM accesses
            + N_spram * (r_read + r_write) * E_spram                         single-port RAM accesses
            + N_dsp   * a_logic * E_dsp )                                    multipliers
      + P_hfosc or P_lfosc (when an on-chip oscillator runs)
      + P_pll + P_pll_rail (when the clock comes from the PLL)
      + P_io  (output pin toggles x (C_pin + C_load) * V_io^2)

``N_*`` come from the build report (:func:`qlif.boards.flow.build.build`), the activity rates ``a_ff``,
``a_logic`` (toggles per bit per cycle) and ``r_read``, ``r_write`` (accesses per block per cycle)
from RTL simulation of the workload (:mod:`qlif.sim.activity`), ``f`` is the clock. Energy per
inference is ``P x cycles / f``. The iCE40 coefficients are fitted to published measurements of
the UP5K (:mod:`qlif.boards.flow.calibration_fit`, docs/results/power-calibration.md).

:func:`qlif.boards.flow.power_states.power_states` builds on it: the power of a build running, with its
clock stopped, and idle with an always-on part, and the average power against an inference rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from qlif.boards.flow.activity import Activity

__all__ = ["Coefficient", "FamilyModel", "FAMILIES", "Resources", "PowerEstimate", "family_of", "static_power",
           "estimate_power", "SPRAM_STATES", "SPRAM_SLEEP_SENSITIVITY"]


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
    # What only the measured family has (None, or no entry: the term is left out).
    static_aux: dict = field(default_factory=dict)   # device prefix -> W on the rails other than VCC
    configured: Coefficient | None = None    # W: a configured design's clock nets and inputs, clock stopped
    lc_leak: Coefficient | None = None       # W per logic cell in use
    clock_ff: Coefficient | None = None      # J per flip-flop per cycle (its clock pin's load)
    hfosc: Coefficient | None = None         # W: the 48 MHz oscillator running (any divider)
    lfosc: Coefficient | None = None         # W: the 10 kHz oscillator running
    pll_rail: Coefficient | None = None      # W on the PLL's own supply (``pll`` is its share of the core's)
    hfosc_startup: Coefficient | None = None   # s from CLKHFPU to a stable clock
    spram_sleep: Coefficient | None = None     # W per SPRAM block asleep beyond the blank design's static power

    #: The optional coefficients, in the order :meth:`coefficients` lists them.
    OPTIONAL = ("configured", "lc_leak", "clock_ff", "hfosc", "lfosc", "pll_rail", "hfosc_startup", "spram_sleep")

    def coefficients(self) -> dict[str, Coefficient]:
        """Every coefficient by a dotted name (``static.iCE40UP5K``, ``toggle``, ...)."""
        out = {}
        for name in ("vcc", "toggle", "ebr_read", "ebr_write", "spram_access", "dsp_op", "pll", "io_cap", "vccio",
                     *self.OPTIONAL):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for group in ("static", "static_aux", "clock"):
            for device, coef in getattr(self, group).items():
                out[f"{group}.{device}"] = coef
        return out

    def value(self, name: str) -> float:
        """The value of an optional coefficient, 0 where the family has none."""
        coef = getattr(self, name)
        return 0.0 if coef is None else coef.value

    def per_device(self, group: str, device: str) -> Coefficient:
        table = getattr(self, group)
        for prefix in sorted(table, key=len, reverse=True):
            if device.upper().startswith(prefix.upper()):
                return table[prefix]
        raise ValueError(f"no {group} figure for device {device!r} in the {self.family} power model "
                         f"(known: {', '.join(sorted(table))})")


#: The fit of the published UP5K measurements (qlif.boards.flow.calibration_fit, make power-calibration).
_FIT = (f"least-squares fit (weighted by 1/measured) of 16 designs rebuilt from the descriptions of {_TV}; "
        "docs/results/power-calibration.md")

ICE40UP = FamilyModel(
    family="ice40up",
    vcc=Coefficient(1.2, "V", "datasheet", f"{_DS_UP}, Table 4.6 (typical VCC of the supply currents)"),
    static={"iCE40UP5K": Coefficient(
        85.6e-6 * 1.219, "W", "measured",
        f"{_TV}, row 'Blank design': 85.6 uA on the core at 1.219 V (the fit keeps it: only this row "
        f"determines it). {_DS_UP}, Table 4.6 gives ICCSTDBY 75 uA typical (1.2 V, TJ = 25 C)")},
    static_aux={"iCE40UP5K": Coefficient(
        0.55e-6 * 2.5 + 0.5e-6 * 3.3 + 0.5e-6 * 3.3, "W", "datasheet",
        f"{_DS_UP}, Table 4.6: IPP2V5STDBY 0.55 uA, ISPI_VCCIO1STDBY 0.5 uA and ICCIOSTDBY 0.5 uA (3.3 V); "
        "typical, TJ = 25 C. The breakout board measured 1.3 + 3.4 + 1.5 uA on its banks and 4.1 uA on "
        "VCCPLL (20 uW more), its pull-ups and LEDs included: the data sheet is the chip's figure")},
    configured=Coefficient(
        8.37e-6, "W", "measured",
        f"{_FIT}: a configured 24-bit counter with its external clock halted draws 92.1 uA, 6.5 uA over the "
        "blank design (the clock net and input buffers in use); not per LC (see lc_leak)"),
    lc_leak=Coefficient(
        2.3e-9, "W/LC", "measured",
        f"{_TV}, Observations: at 10 kHz a 1536-bit counter draws 3 uA more than the 24-bit one, 3.66 uW "
        "for 1512 more LCs; less their clock load at 10 kHz (0.2 uW) this is 2.3 nW per LC of leakage"),
    clock={"iCE40UP5K": Coefficient(
        48.0e-12, "J/cycle", "measured",
        f"{_FIT}: the global clock network per cycle; determined by the slope of the HFOSC rows "
        "(6/12/24/48 MHz, 388.4/645/1162/2184 uA) less the counter's flip-flops and toggles")},
    clock_ff=Coefficient(
        20.9e-15, "J/FF/cycle", "measured",
        f"{_FIT}: each flip-flop's clock load; the rows 'External 12 MHz + 28*k bit counter' (one counter "
        "of 28, 56, 112, 224 bits: 613.5/616.65/624.2/641.3 uA) grow with the flip-flops while their "
        "toggles stay at about 2 per cycle (bit i of a counter toggles every 2^i cycles)"),
    toggle=Coefficient(
        0.556e-12, "J/toggle", "measured",
        f"{_FIT}: determined by the 8x8 multiply in LUTs (996 uA at 12 MHz, 351 uA over the counter alone) "
        "with its RTL activity (no glitches: the figure absorbs them, as the model's toggle rates lack them)"),
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
        45.5e-12, "J/cycle", "measured",
        f"{_FIT}: determined by the 8x8 multiply in one SB_MAC16 (882 uA at 12 MHz), per DSP and cycle "
        "at the design's logic toggle rate"),
    hfosc=Coefficient(
        51.8e-6, "W", "measured",
        f"{_FIT}: the HFOSC rows' line at 0 Hz against the external-clock rows (the oscillator runs at "
        "48 MHz inside whatever the divider)"),
    lfosc=Coefficient(
        4.10e-6, "W", "measured",
        f"{_FIT}: the LFOSC row (96.3 uA) over the halted-clock row (92.1 uA), less its 10 kHz dynamic power"),
    pll=Coefficient(
        0.672e-3, "W", "measured",
        f"{_FIT}: the PLL's share of the core current: the rows 'PLL (12MHz in, 16/32/48MHz output)' "
        "(1419/2029/2573 uA, fed by the HFOSC at 12 MHz) over the HFOSC line at the same clock"),
    pll_rail=Coefficient(
        138.7e-6 * 1.219, "W", "measured",
        f"{_TV}: VCCPLL draws 138.6/138.9/103.6 uA at 16/32/48 MHz (4.1 uA with the PLL off); the two "
        "higher, x 1.219 V"),
    hfosc_startup=Coefficient(
        100e-6, "s", "datasheet",
        "Lattice iCE Technology Library (SBTICETechnologyLibrary, 2017-08), SB_HFOSC: CLKHFPU 'After power up, "
        "oscillator output will be stable after 100us', CLKHFEN to be held low meanwhile (the same for SB_LFOSC); "
        f"no start-up time of the oscillators was found in the text of {_DS_UP} searched here"),
    spram_sleep=Coefficient(
        0.0, "W/block", "estimate",
        "assumption, no published figure: Lattice TN1314 (iCE40 SPRAM Usage Guide) describes SB_SPRAM256KA's "
        f"NORMAL, STANDBY, SLEEP and POWEROFF states without currents, and {_DS_UP}, Table 4.6, has none. The "
        "blank design's measured static current (static.iCE40UP5K) holds the four SPRAM blocks in their "
        "unconfigured state, and a sleeping block (array retained, periphery off) is taken to draw no more "
        "than that: 0 beyond static. SPRAM_SLEEP_SENSITIVITY gives the figure of a leak (qlif wakeup-report "
        "--spram-sleep-ua)"),
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
                                "engineering estimate: the UP5K's 52.1 pJ/cycle of before the calibration (48.0 "
                                "fitted now) x 3 for the larger clock tree x (1.1/1.2)^2 for VCC"),
        "LFE5UM-85": Coefficient(130e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-85"),
        "LFE5U-45": Coefficient(100e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-85 with x 2.3 "
                                                                   "instead of x 3"),
        "LFE5UM-45": Coefficient(100e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-45"),
        "LFE5U-25": Coefficient(75e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-85 with x 1.7 "
                                                                  "instead of x 3"),
        "LFE5UM-25": Coefficient(75e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-25"),
        "LFE5U-12": Coefficient(75e-12, "J/cycle", "estimate", "engineering estimate, as the LFE5U-25 (same die)"),
    },
    toggle=Coefficient(ICE40UP.toggle.value * (1.1 / 1.2) ** 2, "J/toggle", "estimate",
                       "engineering estimate: the UP5K's calibrated toggle (ice40up.toggle, 0.556 pJ) x "
                       "(1.1/1.2)^2 for VCC; both are 40 nm LUT4 fabrics with similar routing (no ECP5 "
                       "measurement: uncertain by the same factor as the fit and the fabrics' difference)"),
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

#: The four states of an iCE40 UltraPlus SPRAM block (``SB_SPRAM256KA``, Lattice TN1314) and how the model
#: charges each. No current of any of them is published (``ice40up.spram_sleep``'s source).
SPRAM_STATES = {
    "normal": "CHIPSELECT high, clocked: every clock edge is an access (a read unless WREN), spram_access each "
              "(estimate_power's spram_rate); its leakage as in sleep",
    "standby": "STANDBY high: the clock ignored, contents kept; not used by qlif (it would be charged as sleep)",
    "sleep": "SLEEP high: contents kept, periphery off; spram_sleep per block beyond static (0: the assumption)",
    "off": "POWEROFF low: contents lost; never used by qlif (its weights would need the flash again); 0 beyond "
           "static",
}
#: The leak per sleeping SPRAM block (A) the wake-up report shows the sensitivity of its idle power to, in
#: place of a published figure: a 256 kbit array in 40 nm low-power CMOS retaining its contents at room
#: temperature with its periphery off leaks of the order of 10-20 pA a bit, 2.6-5.2 uA a block; 5 uA is
#: the top of that range, and four such blocks (21 uA) would add a quarter of the blank chip's 85.6 uA.
SPRAM_SLEEP_SENSITIVITY = Coefficient(
    5e-6, "A/block", "estimate",
    "engineering estimate for a sensitivity, not a figure of the part: 262,144 bits x ~20 pA (a 40 nm "
    "low-power SRAM cell's retention leakage at 25 C, periphery off)")

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
    """Static and dynamic power (W) by component at clock ``clk_hz``; ``off_core_w`` of the total is
    drawn from rails other than the core's VCC (the I/O banks' and the PLL's own supply)."""

    device: str
    family: str
    clk_hz: float
    static_w: float
    dynamic_w: dict
    off_core_w: float = 0.0

    @property
    def total_w(self) -> float:
        return self.static_w + sum(self.dynamic_w.values())

    @property
    def core_w(self) -> float:
        """What the core rail (VCC) draws: the figure the published UP5K measurements give."""
        return self.total_w - self.off_core_w

    def energy_per_inference(self, cycles: float) -> float:
        """Joules for an inference of ``cycles`` clock cycles at :attr:`clk_hz` (power x latency)."""
        if not cycles >= 0:
            raise ValueError(f"cycles must be non-negative, not {cycles!r}")
        return self.total_w * cycles / self.clk_hz

    def to_json(self) -> dict:
        return {"device": self.device, "family": self.family, "clk_hz": self.clk_hz, "static_w": self.static_w,
                "dynamic_w": dict(self.dynamic_w), "total_w": self.total_w, "core_w": self.core_w}


#: On-chip oscillators :func:`estimate_power` knows (``oscillator=``).
OSCILLATORS = ("hfosc", "lfosc")


def check_positive(name: str, value, *, zero: bool = False) -> None:
    """A finite number above 0 (or at least 0 with ``zero``); ValueError naming ``name`` otherwise."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (value >= 0 if zero else value > 0)):
        raise ValueError(f"{name} must be a {'non-negative' if zero else 'positive'} finite number, not {value!r}")


def static_power(*, device: str, resources: Resources, model: FamilyModel | None = None) -> tuple[float, float]:
    """The power (W) that does not depend on the clock, as ``(core, off_core)``: what a build draws with
    its clocks stopped (oscillators off, the external clock halted).

    Core: the blank device's static power, plus, once a design is configured (any LUT or flip-flop),
    ``configured`` and ``lc_leak`` per logic cell (``max(luts, ffs)``: an iCE40 LC holds one of each).
    Off-core: ``static_aux`` (I/O banks, the configuration supply, the PLL's supply in standby). Families
    without these coefficients (ECP5) give their whole static figure as core. SPRAM blocks in use add
    ``spram_sleep`` each (0 by assumption: :data:`SPRAM_STATES`).
    """
    fam = model or family_of(device)
    core = fam.per_device("static", device).value + resources.spram * fam.value("spram_sleep")
    if resources.luts or resources.ffs:
        core += fam.value("configured") + max(resources.luts, resources.ffs) * fam.value("lc_leak")
    aux = fam.per_device("static_aux", device).value if fam.static_aux else 0.0
    return core, aux


def estimate_power(*, device: str, resources: Resources, activity: Activity, clk_hz: float, pll: bool = False,
                   oscillator: str | None = None, io_toggles_per_s: float = 0.0, spram_memories=(),
                   spram_rate: float | None = None, model: FamilyModel | None = None) -> PowerEstimate:
    """Estimate the power of a design on ``device`` running at ``clk_hz`` with ``activity``.

    ``pll``: the clock comes from the on-chip PLL (its power is added). ``oscillator``: ``"hfosc"`` or
    ``"lfosc"`` when an on-chip oscillator runs (the clock's source, or the PLL's reference); ``None``
    for a board oscillator. ``io_toggles_per_s``: output pin transitions per second (the host link's
    replies). ``spram_memories``: the names of ``activity``'s memories that are in SPRAM (left out of the
    block RAM's rates); ``spram_rate``: accesses per SPRAM block and cycle (``None``: those memories'
    measured accesses per cycle, or the block RAM's rate when none is named). ``model`` defaults to the
    device's family.
    """
    if not (isinstance(clk_hz, (int, float)) and math.isfinite(clk_hz) and clk_hz > 0):
        raise ValueError(f"clk_hz must be a positive frequency, not {clk_hz!r}")
    if not io_toggles_per_s >= 0:
        raise ValueError(f"io_toggles_per_s must be non-negative, not {io_toggles_per_s!r}")
    if oscillator not in (None, *OSCILLATORS):
        raise ValueError(f"oscillator must be None or one of {', '.join(OSCILLATORS)}, not {oscillator!r}")
    fam = model or family_of(device)
    if oscillator is not None and getattr(fam, oscillator) is None:
        raise ValueError(f"the {fam.family} power model has no {oscillator} figure")
    static_core, static_aux = static_power(device=device, resources=resources, model=fam)
    a_ff, a_logic = activity.ff_rate, activity.logic_rate
    spram_names = set(spram_memories)
    ebr_act = replace(activity, memories=tuple(m for m in activity.memories if m.name not in spram_names))
    r_read, r_write = ebr_act.memory_rates(block_width=fam.ebr_geometry[0], block_depth=fam.ebr_geometry[1])
    if spram_rate is None:
        spram_rate = (sum(m.reads + m.writes for m in activity.memories if m.name in spram_names) / activity.cycles
                      if spram_names else r_read + r_write)
    check_positive("spram_rate", spram_rate, zero=True)
    f = float(clk_hz)
    io = io_toggles_per_s * fam.io_cap.value * fam.vccio.value ** 2
    pll_rail = fam.value("pll_rail") if pll else 0.0
    dynamic = {
        "clock": f * fam.per_device("clock", device).value,
        "flip-flop clocks": f * resources.ffs * fam.value("clock_ff"),
        "flip-flops": f * fam.toggle.value * resources.ffs * a_ff,
        "logic": f * fam.toggle.value * (resources.luts + resources.carries) * a_logic,
        "block RAM": f * resources.ebr * (r_read * fam.ebr_read.value + r_write * fam.ebr_write.value),
        "SPRAM": f * resources.spram * spram_rate * fam.spram_access.value,
        "DSP": f * resources.dsp * a_logic * fam.dsp_op.value,
        "oscillator": fam.value(oscillator) if oscillator else 0.0,
        "PLL": fam.pll.value + pll_rail if pll else 0.0,
        "I/O": io,
    }
    return PowerEstimate(device=device, family=fam.family, clk_hz=f, static_w=static_core + static_aux,
                         dynamic_w=dynamic, off_core_w=static_aux + pll_rail + io)
