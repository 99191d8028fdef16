"""The wake-up report: average power of the UP5K wake-up build against the inference rate.

What goes in, each measured, none assumed where a measurement exists:

* **resources, Fmax and the memory plan**: the real report of the wake-up build
  (:func:`qlif.boards.flow.build.build` with ``wakeup=True``; cached under
  ``build/wakeup-report/<model>-<key>/hfosc-<MHz>/``);
* **cycles per inference**, exact per sample: the encoder's and the core's
  (:func:`qlif.golden.spec.cycles.encoded_cycles` on the golden cycle model of the model's own test samples,
  encoded as the on-chip encoder does) plus the wake-up top's per-frame edges
  (:func:`qlif.boards.tops.wakeup.frame_edges`: the frame's bytes into the encoder and the runner's states),
  checked equal to the core clock's edges of the wake-up RTL simulation
  (:func:`qlif.sim.wakeup_runner.run_wakeup`) on a few frames (skipped, and said so, for a model whose
  flash load at power-up alone is too long to simulate);
* **switching activity**: RTL simulation of the core on a few of those samples
  (:func:`qlif.sim.activity.measure_activity`; at most :data:`ACTIVITY_CYCLES` cycles of them).

The power comes from :func:`qlif.boards.flow.power_states.power_states` with the core on the ``SB_HFOSC``
(``clock_source="hfosc"``) and the SPI target as the part clocked per inference (by the host's SCK),
plus what that function does not know about this build (:mod:`qlif.boards.tops.wakeup`). One inference
is four phases above the idle power (five with SPRAM), each with its power and duration in the JSON:

* **power-up**: two to three LFOSC cycles with ``CLKHFPU`` high and ``CLKHFEN`` low: the HFOSC draws and
  nothing is clocked (:data:`POWER_UP_S`, the worst case);
* **compute**: the core running, its cycles at the HFOSC frequency;
* **tail**: ``CLKHFEN`` stays high until the ``aon`` domain has seen ``run`` fall, two to three LFOSC cycles
  (200..300 us; the build does this on purpose, :mod:`qlif.boards.tops.wakeup`), the clock running into an
  idle core: charged for its worst case, :data:`TAIL_S`, at the clock's, the flip-flops' clock loads', the
  oscillator's and the memories' read power with no toggles (an upper bound: an idle core's read enables
  are mostly low);
* **SPI**: the host's frame in and result out at its SCK;
* **SPRAM awake** (SPRAM builds): the blocks stay awake, unclocked, :data:`SPRAM_SLEEP_DELAY_S` after
  ``CLKHFEN`` falls (as during the power-up, from the commit on), charged at the power model's figure for
  an unclocked awake block, its STANDBY's: as asleep (:data:`qlif.boards.flow.power.SPRAM_STATES`), so 0
  above idle; the JSON gives what that time would cost were an awake block to leak
  :data:`qlif.boards.flow.power.SPRAM_SLEEP_SENSITIVITY` more than a sleeping one.

Idle: the stopped chip (static power), the always-on ``SB_LFOSC`` domain, and for SPRAM builds the
sleeping blocks (:data:`qlif.boards.flow.power.SPRAM_STATES`: no published current; charged as included in
the blank design's static power, with the sensitivity to a leak of
:data:`qlif.boards.flow.power.SPRAM_SLEEP_SENSITIVITY` per block reported). SPRAM blocks are accessed on
every core clock edge (:data:`SPRAM_ACCESSES_PER_CYCLE`). Their one-time load from the flash at power-up is
reported apart (energy and time), not per inference.

Latency is the power-up plus the compute (the result, and the wake pin, come before the tail); the SPI
transfers at the given SCK, the power-up, the compute and the tail bound the rate the build can sustain
(a frame sent while busy is refused), and rates above it are marked, not extrapolated.

The HFOSC frequency: the one with the lowest energy per inference among those the build meets timing at
(one build at 48 MHz gives Fmax, the chosen frequency is then built for real), or the user's.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qlif.boards.flow.activity import Activity
from qlif.boards.flow.power import ICE40UP, SPRAM_SLEEP_SENSITIVITY, Resources, estimate_power
from qlif.boards.flow.power_states import AlwaysOn, DutyCycle, PowerStates, power_states
from qlif.boards.protocol import spi_read_result, spi_read_status, spi_result_bytes, spi_write_frame
from qlif.boards.tops.wakeup import HFOSC_FREQS, LFOSC_FREQ, frame_edges
from qlif.golden.spec.model import Model

__all__ = ["RATES_HZ", "DEFAULT_SCK_HZ", "POWER_UP_S", "TAIL_S", "SPRAM_SLEEP_DELAY_S", "ACTIVITY_CYCLES",
           "SPRAM_ACCESSES_PER_CYCLE",
           "WakeupInputs", "WakeupReport", "model_key", "spi_cycles", "load_cycles", "compute", "choose_clock",
           "summary_fields", "test_frames", "stamps", "gather"]

#: Inference rates of the report (per second).
RATES_HZ = (0.1, 1.0, 10.0, 100.0)
#: The SPI host's SCK (Hz) by default: a microcontroller's low-power setting (the target takes up to 12 MHz).
DEFAULT_SCK_HZ = 1e6
#: ``SB_HFOSC`` power-up, worst case: ``CLKHFEN`` rises two to three ``SB_LFOSC`` cycles after ``run``
#: (:mod:`qlif.boards.tops.wakeup`), three at its nominal 10 kHz.
POWER_UP_S = 3 / LFOSC_FREQ
#: The clock's tail after the result, worst case: ``CLKHFEN`` falls two to three ``SB_LFOSC`` cycles after
#: ``run`` (the same synchroniser), three at 10 kHz; the least is two (:data:`TAIL_MIN_S`).
TAIL_S = 3 / LFOSC_FREQ
TAIL_MIN_S = 2 / LFOSC_FREQ
#: The SPRAM's SLEEP rises one ``SB_LFOSC`` cycle after ``CLKHFEN`` fell (:class:`qlif.boards.tops.wakeup.WakeupCore`:
#: ``hf_was_on``, so that the core's last clock edge is long done): the blocks spend it awake and unclocked.
SPRAM_SLEEP_DELAY_S = 1 / LFOSC_FREQ
#: Flip-flops clocked by SCK: the SPI target's, "about 80" (:class:`qlif.boards.link.spi_target.SPITarget`'s
#: docstring, as built); its LUTs are taken as many. Only their share of a transfer's energy depends on it.
SPI_TARGET_FFS = 80
#: Flip-flops of the ``aon`` domain, clocked by the ``SB_LFOSC`` all the time: the two synchroniser
#: stages and the ``hf_on`` register of :class:`qlif.boards.tops.wakeup.WakeupCore`.
AON_FFS = 3
#: Output toggles per inference besides CIPO: the wake pin and the run pin, up and down.
PIN_TOGGLES = 4
#: Accesses per SPRAM block and core cycle: :class:`qlif.hw.spram.SpramStore` ties every tile's
#: ``CHIPSELECT`` high, so each tile reads on every clock edge, whatever the core's read enable (the
#: measured enable rate is in the JSON, for what gating ``CHIPSELECT`` would save).
SPRAM_ACCESSES_PER_CYCLE = 1.0
#: Most core cycles of the activity simulation (Verilator writes a waveform of every net): the samples
#: are cut to fit it, at least one (the 784-500-10's take about 10^5 cycles each).
ACTIVITY_CYCLES = 150_000
#: Most core clock edges of the flash load at power-up the wake-up RTL check simulates (Icarus): past it
#: (the 784-500-10's 1.58 M), the check is skipped and the report says so.
CHECK_LOAD_EDGES = 200_000
#: Core cycles per byte of the weight image at power-up, and the flash's wake-up before it
#: (:class:`qlif.hw.flash.FlashLoader`: SCK is half the core clock, ``wake_cycles`` 4096 by default).
LOAD_CYCLES_PER_BYTE = 16
LOAD_WAKE_CYCLES = 4096


def model_key(model: Model, lanes: int) -> str:
    """A short hash of the model and P: the cache folder's name (a new model never reuses a build)."""
    doc = json.dumps(model.to_json(), sort_keys=True) + f"|lanes={lanes}|seed=1"
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def spi_cycles(model: Model) -> tuple[int, int]:
    """SCK cycles per inference and the CIPO bits answered: WRITE_FRAME, one READ_STATUS, READ_RESULT."""
    frame = len(spi_write_frame([0] * model.n_in))
    status, result = len(spi_read_status()), len(spi_read_result(model.n_out, model.timesteps))
    answered = status - 1 + spi_result_bytes(model.n_out, model.timesteps)
    return 8 * (frame + status + result), 8 * answered


def load_cycles(memory_plan: dict) -> int:
    """Core cycles of the one-time weight load from the flash at power-up (0 without SPRAM), from a build
    report's ``memory`` plan: :data:`LOAD_CYCLES_PER_BYTE` a byte of the image plus the flash's wake-up."""
    image = sum(m["depth"] * -(-m["width"] // 8) for m in memory_plan.get("memories", ()) if m["kind"] == "spram")
    return LOAD_CYCLES_PER_BYTE * image + LOAD_WAKE_CYCLES if image else 0


@dataclass(frozen=True)
class WakeupInputs:
    """Everything measured that the report is computed from (cached as JSON)."""

    model_name: str
    sizes: tuple
    timesteps: int
    lanes: int
    device: str
    resources: dict          # the build's Resources, as a dict
    fmax_mhz: float          # the core clock's, at the build's constraint
    build_mhz: float         # the HFOSC frequency the build was made for
    timing_met: bool
    cycles_mean: float       # encoded_cycles + frame_edges, over the cycle samples
    cycles_max: int
    cycle_samples: int
    overhead_cycles: int     # frame_edges(n_in): the wake-up top's edges per frame beyond encoded_cycles
    overhead_checked: list   # the frames the wake-up RTL ran: [predicted, clock edges] each (equal)
    tail: bool               # the clock runs for the power-down delay after the result (the build's design)
    activity: dict           # Activity.to_json()
    workload: str
    spi_cycles: int
    cipo_bits: int
    spram_memories: tuple = ()   # the memories the build keeps in SPRAM (by the activity's names)
    load_cycles: int = 0         # core cycles of the one-time weight load at power-up
    extra: dict = field(default_factory=dict)   # provenance: commit, digests, the check's notes

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class WakeupReport:
    """The figures of one model at one HFOSC frequency: power states, energy, latency, and the
    average power per rate (``None`` where the build cannot sustain the rate).

    ``phases``: ``(name, power above idle (W), duration (s), energy (J))`` of one inference, whose energies
    sum to ``energy_j``. ``spram_sleep_w``: the leak charged per sleeping SPRAM block beyond static;
    ``idle_sensitivity_w``: the idle power were it :data:`~qlif.boards.flow.power.SPRAM_SLEEP_SENSITIVITY`
    (``None`` without SPRAM). ``spram_awake_s``: the time per inference the SPRAM is awake but unclocked
    (the power-up and :data:`SPRAM_SLEEP_DELAY_S`), charged as asleep; ``spram_awake_sensitivity_j``: its
    energy were an awake block to draw ``SPRAM_SLEEP_SENSITIVITY`` more (``None`` without SPRAM).
    ``load_j``, ``load_s``: the one-time weight load at power-up.
    """

    inputs: WakeupInputs
    clk_mhz: float
    clock_choice: str
    sck_hz: float
    states: PowerStates
    idle_w: float
    energy_j: float
    power_up_s: float
    compute_s: float
    tail_s: float
    spi_s: float
    rates: tuple
    average_w: tuple
    phases: tuple = ()
    idle_parts: dict = field(default_factory=dict)
    spram_sleep_w: float = 0.0
    idle_sensitivity_w: float | None = None
    load_j: float = 0.0
    load_s: float = 0.0
    spram_enable_rate: float | None = None
    spram_awake_s: float = 0.0
    spram_awake_sensitivity_j: float | None = None

    @property
    def latency_s(self) -> float:
        """From the frame's commit to the result: the oscillator's power-up and the compute."""
        return self.power_up_s + self.compute_s

    @property
    def max_rate_hz(self) -> float:
        """Inferences per second back to back: SPI transfers, power-up, compute and tail, one after another."""
        return 1.0 / (self.spi_s + self.latency_s + self.tail_s)

    def at(self, rate_hz: float) -> float | None:
        return self.average_w[self.rates.index(rate_hz)]

    def to_json(self) -> dict:
        i = self.inputs
        sens = self.idle_sensitivity_w
        return {
            "model": i.model_name, "network": list(i.sizes), "timesteps": i.timesteps,
            "lanes": i.lanes, "device": i.device, "resources": i.resources,
            "fmax_mhz": i.fmax_mhz, "timing_met": i.timing_met, "clk_mhz": self.clk_mhz,
            "clock_choice": self.clock_choice, "sck_mhz": self.sck_hz / 1e6,
            "cycles_per_inference": i.cycles_mean, "cycles_max": i.cycles_max,
            "cycle_samples": i.cycle_samples, "overhead_cycles": i.overhead_cycles,
            "overhead_checked": i.overhead_checked, "workload": i.workload,
            "activity": i.activity,
            "idle_power_uw": self.idle_w * 1e6, "running_power_uw": self.states.running_w * 1e6,
            "energy_per_inference_uj": self.energy_j * 1e6, "power_up_us": self.power_up_s * 1e6,
            "compute_us": self.compute_s * 1e6, "tail_us": self.tail_s * 1e6,
            "tail_range_us": [TAIL_MIN_S * 1e6, TAIL_S * 1e6] if self.tail_s else [0.0, 0.0],
            "latency_us": self.latency_s * 1e6, "spi_us": self.spi_s * 1e6,
            "max_rate_hz": self.max_rate_hz,
            "rates": [{"rate_hz": r, "avg_power_uw": None if w is None else w * 1e6, "sustained": w is not None}
                      for r, w in zip(self.rates, self.average_w, strict=True)],
            # The figures above from these: energy = sum of the phases' energies, each power x duration;
            # average = idle + rate x energy.
            "idle_parts_uw": {k: v * 1e6 for k, v in self.idle_parts.items()},
            "phases": [{"phase": n, "power_above_idle_uw": w * 1e6, "duration_us": t * 1e6, "energy_uj": e * 1e6}
                       for n, w, t, e in self.phases],
            "spram": {"blocks": i.resources.get("spram", 0), "memories": list(i.spram_memories),
                      "accesses_per_block_cycle": SPRAM_ACCESSES_PER_CYCLE if i.spram_memories else 0.0,
                      "measured_enable_rate": self.spram_enable_rate,
                      "sleep_ua_per_block": self.spram_sleep_w / ICE40UP.vcc.value * 1e6,
                      "sensitivity_ua_per_block": SPRAM_SLEEP_SENSITIVITY.value * 1e6 if sens is not None else None,
                      "idle_power_uw_at_sensitivity": None if sens is None else sens * 1e6,
                      # Awake but unclocked per inference (the power-up, then SPRAM_SLEEP_DELAY_S after the
                      # clock stopped), charged as asleep: 0 above idle at any sleep figure.
                      "awake_unclocked_us": self.spram_awake_s * 1e6,
                      "awake_unclocked_uj_at_sensitivity": None if self.spram_awake_sensitivity_j is None
                      else self.spram_awake_sensitivity_j * 1e6,
                      "load_cycles": i.load_cycles, "load_ms": self.load_s * 1e3, "load_uj": self.load_j * 1e6},
            "states": self.states.to_json(),
            "provenance": i.extra,
        }


def _aon_power_w(device: str) -> float:
    """What the always-on ``aon`` domain adds to idle: the ``SB_LFOSC`` and its few flip-flops' clock at
    10 kHz (they do not toggle while idle)."""
    quiet = Activity(cycles=1, ff_bits=AON_FFS, ff_toggles=0, logic_bits=0, logic_toggles=0)
    est = estimate_power(device=device, resources=Resources(luts=0, carries=0, ffs=AON_FFS), activity=quiet,
                         clk_hz=LFOSC_FREQ, oscillator="lfosc")
    return est.total_w - est.static_w


def compute(inputs: WakeupInputs, *, clk_mhz: float, clock_choice: str, sck_hz: float = DEFAULT_SCK_HZ,
            rates=RATES_HZ, power_up_s: float = POWER_UP_S, spram_sleep_ua: float | None = None) -> WakeupReport:
    """The report's figures from measured ``inputs`` at ``clk_mhz`` (an ``SB_HFOSC`` frequency).

    ``spram_sleep_ua``: the current (uA) each sleeping SPRAM block draws beyond the blank design's static
    power; ``None``: the power model's ``spram_sleep`` (0, an assumption).
    """
    if clk_mhz * 1e6 not in HFOSC_FREQS:
        raise ValueError(f"clk_mhz must be an SB_HFOSC frequency ({', '.join(f'{f / 1e6:g}' for f in HFOSC_FREQS)}), "
                         f"not {clk_mhz!r}")
    if not (math.isfinite(sck_hz) and 0 < sck_hz <= 12e6):
        raise ValueError(f"the SCK must be in (0, 12] MHz (the SPI target's constraint), not {sck_hz / 1e6:g} MHz")
    if spram_sleep_ua is not None and not (math.isfinite(spram_sleep_ua) and spram_sleep_ua >= 0):
        raise ValueError(f"the SPRAM sleep current must be a non-negative number of uA, not {spram_sleep_ua!r}")
    act = Activity.from_json(inputs.activity)
    res = Resources(**inputs.resources)
    clk = clk_mhz * 1e6
    spram_names = tuple(inputs.spram_memories)
    spram_rate = SPRAM_ACCESSES_PER_CYCLE if spram_names else None
    spi = Resources(luts=SPI_TARGET_FFS, carries=0, ffs=SPI_TARGET_FFS)
    duty = DutyCycle(device=inputs.device, resources=res, activity=act, clk_hz=clk,
                     cycles_per_inference=inputs.cycles_mean, clock_source="hfosc",
                     always_on=AlwaysOn(resources=spi, activity=act, clock="spi", clk_hz=sck_hz,
                                        cycles_per_inference=inputs.spi_cycles),
                     # The power-up is charged below at the HFOSC's power alone: no clock edge reaches the
                     # design before CLKHFEN, so power_states' "start-up at running power" would overcharge.
                     startup_s=0.0, io_toggles_per_inference=PIN_TOGGLES + inputs.cipo_bits / 2,
                     spram_memories=spram_names, spram_rate=spram_rate)
    states = power_states(duty)
    vcc = ICE40UP.vcc.value
    model_sleep_w = ICE40UP.value("spram_sleep")
    sleep_w = model_sleep_w if spram_sleep_ua is None else spram_sleep_ua * 1e-6 * vcc
    aon = _aon_power_w(inputs.device)
    # static_power charged res.spram x the model's spram_sleep already; a user's figure replaces it.
    spram_extra = res.spram * (sleep_w - model_sleep_w)
    idle = states.idle_w + aon + spram_extra
    idle_parts = {"stopped chip (static)": states.stopped_w - res.spram * model_sleep_w,
                  "SPRAM asleep": res.spram * sleep_w, "LFOSC domain": aon}
    sens = (idle + res.spram * (SPRAM_SLEEP_SENSITIVITY.value * vcc - sleep_w)) if res.spram else None
    compute_s = inputs.cycles_mean / clk
    run_above = states.running_w - states.idle_w
    spi_j = states.energy_per_inference_j - run_above * states.active_s
    spi_s = inputs.spi_cycles / sck_hz
    hfosc_w = ICE40UP.value("hfosc")
    # SPRAM awake but unclocked (from the commit through the power-up, and SPRAM_SLEEP_DELAY_S after
    # CLKHFEN fell): the model's figure for it is STANDBY's, charged as asleep (SPRAM_STATES), which the
    # idle power already holds all the time; so 0 above idle, whatever the sleep figure.
    standby_w = sleep_w
    awake_w = res.spram * (standby_w - sleep_w)
    phases = [("power-up", hfosc_w + awake_w, power_up_s, (hfosc_w + awake_w) * power_up_s),
              ("compute", run_above, compute_s, run_above * compute_s)]
    tail_s = TAIL_S if inputs.tail else 0.0
    if tail_s:
        # The clock into an idle core: nothing toggles but the clock, its loads and the read ports, at the
        # rates measured (an upper bound), and the SPRAM's every-cycle reads.
        quiet = Activity(cycles=act.cycles, ff_bits=act.ff_bits, ff_toggles=0, logic_bits=act.logic_bits,
                         logic_toggles=0, memories=act.memories)
        est = estimate_power(device=inputs.device, resources=res, activity=quiet, clk_hz=clk, oscillator="hfosc",
                             spram_memories=spram_names, spram_rate=spram_rate)
        phases.append(("tail", est.total_w - est.static_w, tail_s, (est.total_w - est.static_w) * tail_s))
    if res.spram:
        phases.append(("SPRAM awake", awake_w, SPRAM_SLEEP_DELAY_S, awake_w * SPRAM_SLEEP_DELAY_S))
    phases.append(("SPI", spi_j / spi_s, spi_s, spi_j))
    awake_s = power_up_s + SPRAM_SLEEP_DELAY_S if res.spram else 0.0
    awake_sens = res.spram * SPRAM_SLEEP_SENSITIVITY.value * vcc * awake_s if res.spram else None
    energy = sum(e for *_, e in phases)
    max_rate = 1.0 / (spi_s + power_up_s + compute_s + tail_s)
    average = tuple(idle + r * energy if r <= max_rate else None for r in rates)
    load_s = inputs.load_cycles / clk
    enable = (sum(m.reads + m.writes for m in act.memories if m.name in spram_names) / act.cycles
              if spram_names else None)
    return WakeupReport(inputs=inputs, clk_mhz=clk_mhz, clock_choice=clock_choice, sck_hz=sck_hz, states=states,
                        idle_w=idle, energy_j=energy, power_up_s=power_up_s, compute_s=compute_s, tail_s=tail_s,
                        spi_s=spi_s, rates=tuple(rates), average_w=average, phases=tuple(phases),
                        idle_parts=idle_parts, spram_sleep_w=sleep_w, idle_sensitivity_w=sens,
                        # The load at the core's running power above idle (its own activity, the loader's
                        # SPI and SPRAM writes, is not simulated); the flash chip's power is not the FPGA's.
                        load_j=run_above * load_s, load_s=load_s, spram_enable_rate=enable,
                        spram_awake_s=awake_s, spram_awake_sensitivity_j=awake_sens)


def choose_clock(inputs: WakeupInputs, **options) -> float:
    """The ``SB_HFOSC`` frequency (MHz) with the lowest energy per inference among those at or under the
    build's Fmax; ``ValueError`` if none is (the slowest, 6 MHz, would miss timing)."""
    ok = [f / 1e6 for f in HFOSC_FREQS if f / 1e6 <= inputs.fmax_mhz]
    if not ok:
        raise ValueError(f"the wake-up build's core Fmax is {inputs.fmax_mhz:.2f} MHz, under every SB_HFOSC "
                         f"frequency ({', '.join(f'{f / 1e6:g}' for f in HFOSC_FREQS)} MHz)")
    return min(ok, key=lambda mhz: compute(inputs, clk_mhz=mhz, clock_choice="", **options).energy_j)


def summary_fields(report: WakeupReport) -> dict:
    """The headline figures (the demo's ``report.json`` ``wakeup`` object): idle power, average power at
    1 and 10 inferences/s (``None`` if not sustained), energy, latency, the clock and the build's figures."""
    def uw(rate):
        w = report.at(rate) if rate in report.rates else compute(
            report.inputs, clk_mhz=report.clk_mhz, clock_choice=report.clock_choice, sck_hz=report.sck_hz,
            rates=(rate,), power_up_s=report.power_up_s,
            spram_sleep_ua=report.spram_sleep_w / ICE40UP.vcc.value * 1e6).average_w[0]
        return None if w is None else w * 1e6

    j = report.to_json()
    return {"idle_power_uw": j["idle_power_uw"], "avg_power_uw_at_1hz": uw(1.0), "avg_power_uw_at_10hz": uw(10.0),
            "energy_per_inference_uj": j["energy_per_inference_uj"], "latency_us": j["latency_us"],
            "power_up_us": j["power_up_us"], "compute_us": j["compute_us"],
            "cycles_per_inference": j["cycles_per_inference"], "overhead_cycles": j["overhead_cycles"],
            "clk_mhz": j["clk_mhz"], "clock_choice": j["clock_choice"], "fmax_mhz": j["fmax_mhz"],
            "timing_met": j["timing_met"], "resources": j["resources"], "max_rate_hz": j["max_rate_hz"]}


# --------------------------------------------------------------------------------------------------
# Measuring the inputs: the build, the cycles, the activity (slow; cached).

def test_frames(model: Model, *, data_dir=None) -> tuple[np.ndarray, str]:
    """The model's own test samples as frames (uint8 [S, n_in], ``0 .. L``) and a one-line description."""
    from qlif.golden.data.datasets import load_split
    from qlif.golden.spec.coding import frame_levels_of

    meta = model.metadata
    dataset = meta.get("dataset", "digits")
    levels = frame_levels_of(meta)
    split = load_split(dataset, data_dir=data_dir, seed=int(meta.get("seed", 0)),
                       test_fraction=float(meta.get("test_fraction", 0.25)))
    if split.x_test.shape[1] != model.n_in:
        raise ValueError(f"the {dataset} test samples have {split.x_test.shape[1]} inputs, the model {model.n_in}")
    frames = np.rint(split.x_test * levels).astype(np.uint8)
    return frames, f"{dataset} test split, frames of 0..{levels}"


def _cached_build(model: Model, *, lanes: int, mhz: float, folder: Path, rebuild: bool, stamp: dict,
                  progress: Callable[[str], None]) -> dict:
    from qlif.boards.flow.build import build

    out = folder / f"hfosc-{mhz:g}"
    report_file, stamp_file = out / "report.json", out / "stamp.json"
    if report_file.exists() and stamp_file.exists() and not rebuild:
        report = json.loads(report_file.read_text())
        if (json.loads(stamp_file.read_text()) == stamp and report.get("wakeup") and report.get("clk_mhz") == mhz
                and report.get("lanes") == lanes):
            progress(f"wake-up build at {mhz:g} MHz: cached ({report_file})")
            return report
    progress(f"wake-up build at {mhz:g} MHz (synthesis, place and route; about 1-3 min) ...")
    report = build(model, board="icebreaker", lanes=lanes, clk_freq=mhz * 1e6, out_dir=out, wakeup=True,
                   progress=lambda line: progress(f"  {line}"))
    stamp_file.write_text(json.dumps(stamp) + "\n")
    progress(f"wake-up build at {mhz:g} MHz: Fmax {report['fmax_mhz']:.2f} MHz, timing "
             f"{'met' if report['timing_met'] else 'NOT met'}, {report['wall_s']:.0f} s")
    return report


def _cached_json(path: Path, stamp: dict, make: Callable[[], dict], rebuild: bool) -> dict:
    if path.exists() and not rebuild:
        doc = json.loads(path.read_text())
        if doc.get("stamp") == stamp:
            return doc
    doc = {"stamp": stamp, **make()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def design_key(model: Model, lanes: int) -> str:
    """A hash of the wake-up core's Verilog (:func:`qlif.sim.wakeup_runner.wakeup_verilog`, kept per
    process): a cached build or cycle count of another RTL is not reused."""
    from qlif.sim.wakeup_runner import wakeup_verilog

    return hashlib.sha256(wakeup_verilog(model, lanes=lanes).encode()).hexdigest()[:16]


def stamps(model: Model, *, lanes: int, activity_samples: int, check_samples: int, cycle_samples: int,
           simulator: str) -> dict[str, dict]:
    """What a cached build, ``cycles.json`` and ``activity.json`` must have been made with to be reused
    (the activity is the core's alone, which the model and P fix)."""
    key, design = model_key(model, lanes), design_key(model, lanes)
    return {"build": {"key": key, "design": design},
            "cycles": {"key": key, "design": design, "samples": cycle_samples, "check": check_samples,
                       "simulator": simulator, "method": "encoded_cycles + frame_edges"},
            "activity": {"key": key, "samples": activity_samples}}


def _commit() -> str:
    """The repository's commit, ``+`` if the sources the figures come from have uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "hw", "golden/spec", "boards", "sim"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+" if dirty else "")


def gather(model: Model, *, name: str, lanes: int = 4, clk_mhz: float | None = None, folder: Path,
           frames: np.ndarray, workload: str, activity_samples: int = 8, check_samples: int = 2,
           cycle_samples: int = 200, simulator: str = "icarus", rebuild: bool = False,
           progress: Callable[[str], None] = print, report: dict | None = None) -> tuple[WakeupInputs, float, str]:
    """Measure (or read from ``folder``'s cache) the inputs of the report; return them with the HFOSC
    frequency (MHz) they are for and how it was chosen.

    ``report``: a wake-up build report to use as it is (the demo's), instead of building. Raises
    ``RuntimeError`` if the wake-up RTL's clock edges differ from ``encoded_cycles + frame_edges``.
    """
    from qlif.boards.tops.wakeup import WakeupPlatform
    from qlif.golden.spec.coding import encode_frames, frame_levels_of, max_rate_of
    from qlif.golden.spec.cycles import encoded_cycles
    from qlif.golden.spec.reference import run
    from qlif.hw.memory import plan_memories

    plan = plan_memories(model, lanes, WakeupPlatform.device)
    x = encode_frames(frames[:max(cycle_samples, activity_samples, check_samples)], model.timesteps,
                      levels=frame_levels_of(model.metadata), max_rate=max_rate_of(model.metadata))
    sizes = (model.n_in, *(layer.n_out for layer in model.layers))
    stamp = stamps(model, lanes=lanes, activity_samples=activity_samples, check_samples=check_samples,
                   cycle_samples=cycle_samples, simulator=simulator)

    def measured(rep: dict, cycles: dict, act: dict) -> WakeupInputs:
        res = Resources.from_report(rep)
        mem = rep.get("memory", {})
        spram = tuple(m["name"] for m in mem.get("memories", ()) if m["kind"] == "spram")
        return WakeupInputs(
            model_name=name, sizes=sizes, timesteps=model.timesteps, lanes=lanes, device=rep["device"],
            resources={k: getattr(res, k) for k in ("luts", "carries", "ffs", "ebr", "spram", "dsp")},
            fmax_mhz=float(rep["fmax_mhz"]), build_mhz=float(rep["clk_mhz"]), timing_met=bool(rep["timing_met"]),
            cycles_mean=cycles["mean"], cycles_max=cycles["max"], cycle_samples=cycles["samples"],
            overhead_cycles=cycles["frame_edges"], overhead_checked=cycles["checked"], tail=True,
            activity=act["activity"], workload=act.get("workload", workload), spi_cycles=spi_cycles(model)[0],
            cipo_bits=spi_cycles(model)[1], spram_memories=spram, load_cycles=load_cycles(mem),
            extra={"commit": _commit(), "model_sha256": model_digest, "wakeup_verilog_sha256": stamp["build"]["design"],
                   "bitstream": rep.get("bitstream", ""), "cycles_check": cycles.get("check_note", ""),
                   "tail_sim_edges": cycles.get("tail_sim_edges", [])})

    model_digest = hashlib.sha256(json.dumps(model.to_json(), sort_keys=True).encode()).hexdigest()

    def cycles() -> dict:
        golden = run(model, x[:cycle_samples], lanes=lanes)
        per = encoded_cycles(model, lanes=lanes, inputs=x[:cycle_samples], cycles=golden.cycles)
        per = per + frame_edges(model.n_in)
        doc = {"mean": float(per.mean()), "max": int(per.max()), "samples": int(len(per)),
               "frame_edges": frame_edges(model.n_in), "checked": [], "tail_sim_edges": []}
        n_check = min(check_samples, len(per))
        load = load_cycles(plan.to_json())
        if n_check and plan.uses_spram and load > CHECK_LOAD_EDGES:
            doc["check_note"] = (f"not run: the wake-up RTL would first simulate the flash load at power-up, "
                                 f"{load:,} core cycles (over {CHECK_LOAD_EDGES:,})")
            progress(f"wake-up RTL check skipped: {doc['check_note']}")
            return doc
        if n_check:
            from qlif.sim.wakeup_runner import SIM_PERIODS_NS, run_wakeup

            progress(f"wake-up RTL simulation ({simulator}) of {n_check} frames: core clock edges per inference ...")
            stats = run_wakeup(model, frames[:n_check], simulator=simulator, lanes=lanes, busy_frames=0,
                               spram=plan.uses_spram)
            edges = [int(e) for e in stats["hf_edges"]]      # from the frame's commit to the fall of run
            doc["checked"] = [[int(p), e] for p, e in zip(per[:n_check], edges, strict=True)]
            doc["tail_sim_edges"] = [int(e) for e in stats.get("tail_edges", ())]
            doc["sim_periods_ns"] = SIM_PERIODS_NS
            if edges != per[:n_check].tolist():
                raise RuntimeError(f"the wake-up RTL took {edges} core clock edges on the first {n_check} test "
                                   f"frames, encoded_cycles + frame_edges predicts {per[:n_check].tolist()}")
            doc["check_note"] = f"equal on {n_check} frames ({simulator})"
            progress(f"wake-up RTL: {edges} core clock edges, encoded_cycles + {frame_edges(model.n_in)} exactly")
        return doc

    def activity() -> dict:
        from qlif.sim.activity import measure_activity

        golden = run(model, x[:activity_samples], lanes=lanes).cycles.sum(axis=1)
        n = max(1, min(activity_samples, int(np.searchsorted(np.cumsum(golden), ACTIVITY_CYCLES, side="right"))))
        text = f"first {n} samples of the {workload}, encoded as on chip"
        progress(f"core activity: Verilator with waveforms on {n} test samples ({int(golden[:n].sum()):,} cycles) ...")
        act = measure_activity(model, x[:n], lanes=lanes, workload=text)
        return {"activity": act.to_json(), "workload": text}

    cyc = _cached_json(folder / "cycles.json", stamp["cycles"], cycles, rebuild)
    act = _cached_json(folder / "activity.json", stamp["activity"], activity, rebuild)
    if report is not None:
        return measured(report, cyc, act), float(report["clk_mhz"]), "the demo's build"
    if clk_mhz is not None:
        rep = _cached_build(model, lanes=lanes, mhz=clk_mhz, folder=folder, rebuild=rebuild,
                             stamp=stamp["build"], progress=progress)
        return measured(rep, cyc, act), clk_mhz, "--clk-mhz"
    top = max(HFOSC_FREQS) / 1e6
    first = measured(_cached_build(model, lanes=lanes, mhz=top, folder=folder, rebuild=rebuild,
                             stamp=stamp["build"], progress=progress),
                     cyc, act)
    best = choose_clock(first)
    choice = (f"the least energy per inference of the SB_HFOSC settings under the Fmax of a build at {top:g} MHz, "
              f"{first.fmax_mhz:.2f} MHz")
    if best == top:
        return first, best, choice
    rep = _cached_build(model, lanes=lanes, mhz=best, folder=folder, rebuild=rebuild,
                             stamp=stamp["build"], progress=progress)
    return measured(rep, cyc, act), best, choice
