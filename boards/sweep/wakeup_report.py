"""The wake-up report: average power of the UP5K wake-up build against the inference rate.

What goes in, each measured, none assumed where a measurement exists:

* **resources and Fmax**: the real report of the wake-up build (:func:`qlif.boards.flow.build.build`
  with ``wakeup=True``; cached under ``build/wakeup-report/<model>-<key>/hfosc-<MHz>/``);
* **cycles per inference**: the golden cycle model (:func:`qlif.golden.spec.reference.run`) on the
  model's own test samples, encoded as the on-chip encoder does, plus the wake-up core's fixed overhead
  (the frame load into the encoder, the clear, the runner's states) measured by the wake-up RTL
  simulation (:func:`qlif.sim.wakeup_runner.run_wakeup`, the core clock's edges) on a few of them;
* **switching activity**: RTL simulation of the core on those samples (:func:`qlif.sim.activity.measure_activity`).

The power comes from :func:`qlif.boards.flow.power.power_states` with the core on the ``SB_HFOSC``
(``clock_source="hfosc"``) and the SPI target as the part clocked per inference (by the host's SCK),
plus what that function does not know about this build (:mod:`qlif.boards.tops.wakeup`):

* the ``SB_LFOSC`` domain, always on (idle power);
* the oscillator's power-up: two to three LFOSC cycles with ``CLKHFPU`` high and ``CLKHFEN`` low, the
  HFOSC draws and nothing is clocked (:data:`POWER_UP_S`, the worst case);
* where the build keeps ``CLKHFEN`` until the ``aon`` domain has seen the result (the wake-up RTL
  simulation counts core clock edges after ``run`` falls), the tail: as long again with the clock running
  into an idle core, charged at the clock's, the flip-flops' clock loads' and the block RAM reads' power
  with no toggles.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qlif.boards.flow.activity import Activity
from qlif.boards.flow.power import ICE40UP, AlwaysOn, DutyCycle, PowerStates, Resources, estimate_power, power_states
from qlif.boards.protocol import spi_read_result, spi_read_status, spi_result_bytes, spi_write_frame
from qlif.boards.tops.wakeup import HFOSC_FREQS, LFOSC_FREQ
from qlif.golden.spec.model import Model

__all__ = ["RATES_HZ", "DEFAULT_SCK_HZ", "POWER_UP_S", "WakeupInputs", "WakeupReport", "model_key",
           "spi_cycles", "compute", "choose_clock", "summary_fields", "test_frames", "stamps", "gather"]

#: Inference rates of the report (per second).
RATES_HZ = (0.1, 1.0, 10.0, 100.0)
#: The SPI host's SCK (Hz) by default: a microcontroller's low-power setting (the target takes up to 12 MHz).
DEFAULT_SCK_HZ = 1e6
#: ``SB_HFOSC`` power-up, worst case: ``CLKHFEN`` rises two to three ``SB_LFOSC`` cycles after ``run``
#: (:mod:`qlif.boards.tops.wakeup`), three at its nominal 10 kHz.
POWER_UP_S = 3 / LFOSC_FREQ
#: Flip-flops clocked by SCK: the SPI target's, "about 80" (:class:`qlif.boards.link.spi_target.SPITarget`'s
#: docstring, as built); its LUTs are taken as many. Only their share of a transfer's energy depends on it.
SPI_TARGET_FFS = 80
#: Flip-flops of the ``aon`` domain, clocked by the ``SB_LFOSC`` all the time: the two synchroniser
#: stages and the ``hf_on`` register of :class:`qlif.boards.tops.wakeup.WakeupCore`.
AON_FFS = 3
#: Output toggles per inference besides CIPO: the wake pin and the run pin, up and down.
PIN_TOGGLES = 4


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
    cycles_mean: float       # golden cycles + overhead, over the cycle samples
    cycles_max: int
    cycle_samples: int
    overhead_cycles: int     # wake-up core cycles beyond the golden cycle model, measured (tail excluded)
    overhead_checked: list   # the samples the wake-up RTL ran: [golden, clock edges] each
    tail: bool               # the clock runs for the power-down delay after the result (seen in the RTL)
    activity: dict           # Activity.to_json()
    workload: str
    spi_cycles: int
    cipo_bits: int
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class WakeupReport:
    """The figures of one model at one HFOSC frequency: power states, energy, latency, and the
    average power per rate (``None`` where the build cannot sustain the rate)."""

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
        return {
            "model": self.inputs.model_name, "network": list(self.inputs.sizes), "timesteps": self.inputs.timesteps,
            "lanes": self.inputs.lanes, "device": self.inputs.device, "resources": self.inputs.resources,
            "fmax_mhz": self.inputs.fmax_mhz, "timing_met": self.inputs.timing_met, "clk_mhz": self.clk_mhz,
            "clock_choice": self.clock_choice, "sck_mhz": self.sck_hz / 1e6,
            "cycles_per_inference": self.inputs.cycles_mean, "cycles_max": self.inputs.cycles_max,
            "cycle_samples": self.inputs.cycle_samples, "overhead_cycles": self.inputs.overhead_cycles,
            "overhead_checked": self.inputs.overhead_checked, "workload": self.inputs.workload,
            "activity": {"ff_rate": self.inputs.activity["ff_rate"], "logic_rate": self.inputs.activity["logic_rate"]},
            "idle_power_uw": self.idle_w * 1e6, "running_power_uw": self.states.running_w * 1e6,
            "energy_per_inference_uj": self.energy_j * 1e6, "power_up_us": self.power_up_s * 1e6,
            "compute_us": self.compute_s * 1e6, "tail_us": self.tail_s * 1e6, "latency_us": self.latency_s * 1e6,
            "spi_us": self.spi_s * 1e6,
            "max_rate_hz": self.max_rate_hz,
            "rates": [{"rate_hz": r, "avg_power_uw": None if w is None else w * 1e6, "sustained": w is not None}
                      for r, w in zip(self.rates, self.average_w, strict=True)],
            "states": self.states.to_json(),
        }


def _aon_power_w(device: str) -> float:
    """What the always-on ``aon`` domain adds to idle: the ``SB_LFOSC`` and its few flip-flops' clock at
    10 kHz (they do not toggle while idle)."""
    quiet = Activity(cycles=1, ff_bits=AON_FFS, ff_toggles=0, logic_bits=0, logic_toggles=0)
    est = estimate_power(device=device, resources=Resources(luts=0, carries=0, ffs=AON_FFS), activity=quiet,
                         clk_hz=LFOSC_FREQ, oscillator="lfosc")
    return est.total_w - est.static_w


def compute(inputs: WakeupInputs, *, clk_mhz: float, clock_choice: str, sck_hz: float = DEFAULT_SCK_HZ,
            rates=RATES_HZ, power_up_s: float = POWER_UP_S) -> WakeupReport:
    """The report's figures from measured ``inputs`` at ``clk_mhz`` (an ``SB_HFOSC`` frequency)."""
    if clk_mhz * 1e6 not in HFOSC_FREQS:
        raise ValueError(f"clk_mhz must be an SB_HFOSC frequency ({', '.join(f'{f / 1e6:g}' for f in HFOSC_FREQS)}), "
                         f"not {clk_mhz!r}")
    if not (math.isfinite(sck_hz) and 0 < sck_hz <= 12e6):
        raise ValueError(f"the SCK must be in (0, 12] MHz (the SPI target's constraint), not {sck_hz / 1e6:g} MHz")
    act = Activity.from_json(inputs.activity)
    res = Resources(**inputs.resources)
    spi = Resources(luts=SPI_TARGET_FFS, carries=0, ffs=SPI_TARGET_FFS)
    duty = DutyCycle(device=inputs.device, resources=res, activity=act, clk_hz=clk_mhz * 1e6,
                     cycles_per_inference=inputs.cycles_mean, clock_source="hfosc",
                     always_on=AlwaysOn(resources=spi, activity=act, clock="spi", clk_hz=sck_hz,
                                        cycles_per_inference=inputs.spi_cycles),
                     # The power-up is charged below at the HFOSC's power alone: no clock edge reaches the
                     # design before CLKHFEN, so power_states' "start-up at running power" would overcharge.
                     startup_s=0.0, io_toggles_per_inference=PIN_TOGGLES + inputs.cipo_bits / 2)
    states = power_states(duty)
    idle = states.idle_w + _aon_power_w(inputs.device)
    energy = states.energy_per_inference_j + ICE40UP.value("hfosc") * power_up_s
    tail_s = power_up_s if inputs.tail else 0.0
    if tail_s:
        # The clock into an idle core: nothing toggles but the clock, its loads and the read ports that
        # read every cycle (no enable), at the rates measured.
        quiet = Activity(cycles=act.cycles, ff_bits=act.ff_bits, ff_toggles=0, logic_bits=act.logic_bits,
                         logic_toggles=0, memories=act.memories)
        est = estimate_power(device=inputs.device, resources=res, activity=quiet, clk_hz=clk_mhz * 1e6,
                             oscillator="hfosc")
        energy += (est.total_w - est.static_w) * tail_s
    compute_s = inputs.cycles_mean / (clk_mhz * 1e6)
    spi_s = inputs.spi_cycles / sck_hz
    max_rate = 1.0 / (spi_s + power_up_s + compute_s + tail_s)
    average = tuple(idle + r * energy if r <= max_rate else None for r in rates)
    return WakeupReport(inputs=inputs, clk_mhz=clk_mhz, clock_choice=clock_choice, sck_hz=sck_hz, states=states,
                        idle_w=idle, energy_j=energy, power_up_s=power_up_s, compute_s=compute_s, tail_s=tail_s,
                        spi_s=spi_s, rates=tuple(rates), average_w=average)


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
            rates=(rate,), power_up_s=report.power_up_s).average_w[0]
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
                       "simulator": simulator},
            "activity": {"key": key, "samples": activity_samples}}


def gather(model: Model, *, name: str, lanes: int = 4, clk_mhz: float | None = None, folder: Path,
           frames: np.ndarray, workload: str, activity_samples: int = 8, check_samples: int = 2,
           cycle_samples: int = 200, simulator: str = "icarus", rebuild: bool = False,
           progress: Callable[[str], None] = print, report: dict | None = None) -> tuple[WakeupInputs, float, str]:
    """Measure (or read from ``folder``'s cache) the inputs of the report; return them with the HFOSC
    frequency (MHz) they are for and how it was chosen.

    ``report``: a wake-up build report to use as it is (the demo's), instead of building.
    """
    from qlif.boards.tops.wakeup import WakeupPlatform
    from qlif.golden.spec.coding import encode_frames, frame_levels_of, max_rate_of
    from qlif.golden.spec.reference import run
    from qlif.hw.memory import plan_memories

    if plan_memories(model, lanes, WakeupPlatform.device).uses_spram:
        # The build sleeps its SPRAM while idle, but the power model has no figure for that yet.
        raise ValueError("this model keeps its synapses in SPRAM, and the report does not charge the SPRAM's "
                         "sleep current yet")
    x = encode_frames(frames[:max(cycle_samples, activity_samples, check_samples)], model.timesteps,
                      levels=frame_levels_of(model.metadata), max_rate=max_rate_of(model.metadata))
    sizes = (model.n_in, *(layer.n_out for layer in model.layers))

    def measured(rep: dict, cycles: dict, act: dict) -> WakeupInputs:
        res = Resources.from_report(rep)
        return WakeupInputs(
            model_name=name, sizes=sizes, timesteps=model.timesteps, lanes=lanes, device=rep["device"],
            resources={k: getattr(res, k) for k in ("luts", "carries", "ffs", "ebr", "spram", "dsp")},
            fmax_mhz=float(rep["fmax_mhz"]), build_mhz=float(rep["clk_mhz"]), timing_met=bool(rep["timing_met"]),
            cycles_mean=cycles["golden_mean"] + cycles["overhead"],
            cycles_max=cycles["golden_max"] + cycles.get("overhead_max", cycles["overhead"]),
            cycle_samples=cycles["samples"], overhead_cycles=cycles["overhead"], overhead_checked=cycles["checked"],
            tail=cycles["tail"],
            activity=act["activity"], workload=workload, spi_cycles=spi_cycles(model)[0],
            cipo_bits=spi_cycles(model)[1], extra={"bitstream": rep.get("bitstream", "")})

    def cycles() -> dict:
        from qlif.sim.wakeup_runner import SIM_PERIODS_NS, run_wakeup

        golden = run(model, x[:cycle_samples], lanes=lanes).cycles.sum(axis=1)
        progress(f"wake-up RTL simulation ({simulator}) of {check_samples} frames: core clock edges per inference ...")
        stats = run_wakeup(model, frames[:check_samples], simulator=simulator, lanes=lanes, busy_frames=0)
        edges = [int(e) for e in stats["hf_edges"]]          # from the frame's commit to the fall of run
        over = [e - int(g) for e, g in zip(edges, golden[:check_samples], strict=True)]
        if len(set(over)) != 1:
            # Not a fixed overhead (the frame load and the runner's states) alone: the encoder's scan of a
            # step (n_in + 1 cycles) outlasts the core's work on the previous one, and the core's waits for
            # it are not in the cycle model. Their mean over the frames run is taken, its spread shown.
            progress(f"wake-up RTL: the cycles beyond the golden cycle model vary per frame ({over}): the "
                     f"encoder's scan ({model.n_in + 1} cycles a step) outlasts the core's step; their mean is used")
        # Edges after run falls: the clock still enabled while the always-on domain turns it off (its
        # length on the board is the LFOSC's, not the simulation's clock ratio).
        tail = [int(e) for e in stats.get("tail_edges", ())]
        progress(f"wake-up RTL: {edges} core cycles, golden cycle model + {over}"
                 + (f"; then {tail} edges of tail (clock on, core idle)" if any(tail) else ""))
        return {"golden_mean": float(golden.mean()), "golden_max": int(golden.max()), "samples": int(len(golden)),
                "overhead": round(sum(over) / len(over)), "overhead_max": max(over), "tail": any(tail),
                "tail_sim_edges": tail, "sim_periods_ns": SIM_PERIODS_NS,
                "checked": [[int(g), e] for g, e in zip(golden, edges, strict=False)]}

    def activity() -> dict:
        from qlif.sim.activity import measure_activity

        progress(f"core activity: Verilator with waveforms on {activity_samples} test samples ...")
        act = measure_activity(model, x[:activity_samples], lanes=lanes,
                               workload=f"first {activity_samples} samples of the {workload}, encoded as on chip")
        return {"activity": act.to_json()}

    stamp = stamps(model, lanes=lanes, activity_samples=activity_samples, check_samples=check_samples,
                   cycle_samples=cycle_samples, simulator=simulator)
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
