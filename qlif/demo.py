"""`qlif demo`: the whole flow once, on the embedded digits data, with a report.

train (snntorch) -> 4-bit post-training quantization -> integer golden model -> RTL simulation of the
test samples, checked against the golden model every step -> iCE40 UP5K bitstream -> report.md/.json.
With the bitstream, the UP5K wake-up build (frames over SPI, the core on the gated SB_HFOSC at
:data:`WAKEUP_MHZ`) and its average power against the inference rate (``report.json`` ``wakeup``;
:mod:`qlif.boards.sweep.wakeup_report`, ``qlif wakeup-report``).

The bitstream is the deployable design: the core on the UP5K's PLL clock (default 50 MHz, the timing
constraint nextpnr works to) and the host link on the 12 MHz oscillator, each clock timed on its own.

The RTL simulation and the synthesis are independent, so they run side by side (two cores).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

__all__ = ["run_demo", "WAKEUP_MHZ"]

#: The SB_HFOSC frequency of the demo's wake-up build: the one ``qlif wakeup-report`` chooses for the digits
#: model (the lowest energy per inference of those under Fmax; docs/power.md, "Wake-up power"), fixed here
#: so that the demo makes one wake-up build, not two.
WAKEUP_MHZ = 6.0


def _stage(name: str):
    print(f"demo: {name} ...", flush=True)
    return time.perf_counter()


def _done(name: str, start: float, detail: str = "") -> float:
    seconds = time.perf_counter() - start
    print(f"demo: {name} done in {seconds:.1f} s{': ' + detail if detail else ''}", flush=True)
    return seconds


def run_demo(*, out_dir: Path, samples: int = 200, simulator: str = "verilator", lanes: int = 4,
             synthesize: bool = True, weight_bits: int = 4, clk_mhz: float | None = 50.0,
             wakeup: bool = True) -> dict:
    """Run the demo and write ``out_dir/report.md`` and ``out_dir/report.json``; return the report.

    ``clk_mhz`` is the core clock of the UP5K build (made by the PLL; ``None``: everything on the 12 MHz
    oscillator). ``wakeup`` (with ``synthesize``): also the wake-up build and its power report
    (``out_dir/wakeup``, ``out_dir/wakeup-power.*``).
    """
    from qlif.boards.flow.build import build
    from qlif.golden.data.datasets import load_digits_split
    from qlif.golden.spec.coding import encode
    from qlif.golden.spec.files import write_text
    from qlif.golden.spec.model import save_model
    from qlif.golden.spec.reference import run
    from qlif.golden.training.checkpoint import save_checkpoint
    from qlif.golden.training.evaluate import float_accuracy
    from qlif.golden.training.quantize import quantize
    from qlif.golden.training.train import TrainConfig, train
    from qlif.sim.compare import first_mismatch
    from qlif.sim.runner import run_rtl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    config = TrainConfig()
    split = load_digits_split(config.seed, config.test_fraction)

    t = _stage("training the float LIF network on the digits data")
    net, history = train(config, split=split)
    save_checkpoint(net, out_dir / "float.pt", history=history)
    float_acc = float_accuracy(net, encode(split.x_test, config.timesteps), split.y_test)
    seconds["train"] = _done("training", t, f"float test accuracy {float_acc:.2%}")

    t = _stage(f"quantizing to {weight_bits}-bit weights")
    model = quantize(net, weight_bits=weight_bits)
    save_model(model, out_dir / "model.json")
    x_test = encode(split.x_test, model.timesteps)
    golden = run(model, x_test, lanes=lanes)
    int_acc = float(np.mean(golden.prediction == split.y_test))
    seconds["quantize"] = _done("quantization", t, f"integer test accuracy {int_acc:.2%}")

    n = min(samples, len(x_test))
    x_rtl = x_test[:n]
    expected = run(model, x_rtl, lanes=lanes)

    def simulate():
        start = time.perf_counter()
        got = run_rtl(model, x_rtl, simulator=simulator, lanes=lanes, build_dir=out_dir / "sim")
        return got, time.perf_counter() - start

    def synth():
        start = time.perf_counter()
        report = build(model, board="icebreaker", lanes=lanes, out_dir=out_dir / "icebreaker",
                       clk_freq=None if clk_mhz is None else clk_mhz * 1e6)
        return report, time.perf_counter() - start

    def synth_wakeup():
        start = time.perf_counter()
        report = build(model, board="icebreaker", lanes=lanes, out_dir=out_dir / "wakeup" / f"hfosc-{WAKEUP_MHZ:g}",
                       clk_freq=WAKEUP_MHZ * 1e6, wakeup=True, progress=None)
        return report, time.perf_counter() - start

    wakeup = wakeup and synthesize
    t = _stage(f"RTL simulation of {n} test samples ({simulator}, P={lanes})"
               + (" and UP5K synthesis" + (" (the UART and the wake-up builds)" if wakeup else "") + ", in parallel"
                  if synthesize else ""))
    with ThreadPoolExecutor(max_workers=3) as pool:
        sim_future = pool.submit(simulate)
        hw_future = pool.submit(synth) if synthesize else None
        wake_future = pool.submit(synth_wakeup) if wakeup else None
        got, seconds["rtl_sim"] = sim_future.result()
        hw, seconds["synthesis"] = hw_future.result() if hw_future else (None, 0.0)
        wake_build, seconds["wakeup_synthesis"] = wake_future.result() if wake_future else (None, 0.0)
    mismatch = first_mismatch(expected, got)
    matched = int(sum(first_mismatch(expected.select(i), got.select(i)) is None for i in range(n)))
    _done("RTL simulation" + (" and synthesis" if synthesize else ""), t,
          f"{matched}/{n} samples bit-exact" + (f"; first mismatch: {mismatch}" if mismatch else ""))

    cycles_per_inference = got.cycles.sum(axis=1)
    report = {
        "dataset": "digits (sklearn load_digits), test split",
        "network": [model.n_in, *(layer.n_out for layer in model.layers)],
        "timesteps": model.timesteps,
        "weight_bits": [layer.weight_bits for layer in model.layers],
        "membrane_bits": [layer.membrane_bits for layer in model.layers],
        "lanes": lanes,
        "test_samples": len(x_test),
        "float_accuracy": float_acc,
        "integer_accuracy": int_acc,
        "rtl_samples": n,
        "rtl_simulator": simulator,
        "rtl_match_samples": matched,
        "rtl_match": matched / n,
        "rtl_accuracy": float(np.mean(got.prediction == split.y_test[:n])),
        "first_mismatch": mismatch,
        "mean_cycles_per_inference": float(cycles_per_inference.mean()),
        "max_cycles_per_inference": int(cycles_per_inference.max()),
        "seconds": seconds,
    }
    if hw is not None:
        report["hardware"] = hw
        report["latency_us_at_fmax"] = report["mean_cycles_per_inference"] / hw["fmax_mhz"]
        report["latency_us_at_clock"] = report["mean_cycles_per_inference"] / hw["clk_mhz"]
    if wake_build is not None:
        t = _stage("wake-up power: the wake-up RTL's cycles and the core's activity on the test samples")
        report["wakeup"] = _wakeup_power(model, split, wake_build, out_dir, lanes)
        seconds["wakeup_power"] = _done("wake-up power", t, f"idle {report['wakeup']['idle_power_uw']:.1f} uW, "
                                        f"{report['wakeup']['avg_power_uw_at_10hz']:.1f} uW at 10 inferences/s")
    write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    write_text(out_dir / "report.md", render_markdown(report))
    print((out_dir / "report.md").read_text())
    if mismatch:
        raise SystemExit(f"qlif demo: the RTL differs from the golden model: {mismatch}")
    return report


def _wakeup_power(model, split, build_report: dict, out_dir: Path, lanes: int) -> dict:
    """The wake-up report of the demo's model from its wake-up build (``out_dir/wakeup-power.*``); the
    ``wakeup`` object of ``report.json``."""
    from qlif.boards.sweep.wakeup_render import write_all
    from qlif.boards.sweep.wakeup_report import compute, gather, summary_fields
    from qlif.golden.spec.coding import frame_levels_of

    frames = np.rint(split.x_test * frame_levels_of(model.metadata)).astype(np.uint8)
    inputs, mhz, _ = gather(model, name="digits", lanes=lanes, folder=out_dir / "wakeup", frames=frames,
                            workload="digits test split, frames of 0..16", report=build_report,
                            progress=lambda line: print(f"demo: {line}", flush=True))
    rep = compute(inputs, clk_mhz=mhz, clock_choice=f"the demo's build at {mhz:g} MHz (qlif.demo.WAKEUP_MHZ)")
    write_all([rep], out_dir, "wakeup-power")
    return summary_fields(rep)


def render_markdown(r: dict) -> str:
    """The human-readable report."""
    net = "-".join(map(str, r["network"]))
    lines = [
        "# qlif demo report",
        "",
        f"Network {net} LIF, T = {r['timesteps']} steps, weight bits {r['weight_bits']}, membrane bits "
        f"{r['membrane_bits']}, P = {r['lanes']} lanes. Data: {r['dataset']} ({r['test_samples']} samples).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| float model accuracy | {r['float_accuracy']:.2%} |",
        f"| integer model accuracy (what the RTL computes) | {r['integer_accuracy']:.2%} |",
        f"| RTL match ({r['rtl_simulator']}, {r['rtl_samples']} samples: spikes, membranes, cycles every step) "
        f"| {r['rtl_match']:.1%} ({r['rtl_match_samples']}/{r['rtl_samples']}) |",
        f"| RTL accuracy on those samples | {r['rtl_accuracy']:.2%} |",
        f"| mean cycles per inference | {r['mean_cycles_per_inference']:.0f} (max {r['max_cycles_per_inference']}) |",
    ]
    hw = r.get("hardware")
    if hw:
        lines.append(f"| core Fmax (nextpnr, {hw['device']}, seed {hw['seed']}) | {hw['fmax_mhz']:.1f} MHz "
                     f"(clock {hw['clk_mhz']:.2f} MHz{' from the PLL' if hw['pll'] else ''}) |")
        for net, c in hw["clocks"].items():
            lines.append(f"| clock `{net}`: Fmax / constraint | {c['fmax_mhz']:.1f} / {c['constraint_mhz']:.2f} MHz |")
        lines.append(f"| timing | {'met' if hw['timing_met'] else '**NOT met**'} |")
        lines.append(f"| latency per inference at core Fmax | {r['latency_us_at_fmax']:.1f} us |")
        lines.append(f"| latency per inference at the {hw['clk_mhz']:.2f} MHz clock "
                     f"| {r['latency_us_at_clock']:.1f} us |")
        lines += ["", f"## Resources on {hw['device']}", "", "| resource | used | available | % |",
                  "|---|---|---|---|"]
        for name, u in hw["resources"].items():
            pct = 100.0 * u["used"] / u["available"] if u["available"] else 0.0
            lines.append(f"| {name} | {u['used']} | {u['available']} | {pct:.1f} |")
        lines += ["", f"Bitstream: `{hw['bitstream']}`"]
    wk = r.get("wakeup")
    if wk:
        def uw(v):
            return "not sustained" if v is None else f"{v:.1f} uW"

        res = wk["resources"]
        lines += ["", "## Wake-up build (frames over SPI, core on the gated SB_HFOSC)", "",
                  "Estimated with the calibrated power model (docs/power.md, \"Wake-up power\"); "
                  "`wakeup-power.md` has every rate.", "",
                  "| measure | value |", "|---|---|",
                  f"| build | {res['luts']} LUT4, {res['ffs']} FF, {res['ebr']} EBR; core Fmax "
                  f"{wk['fmax_mhz']:.1f} MHz, SB_HFOSC {wk['clk_mhz']:g} MHz, timing "
                  f"{'met' if wk['timing_met'] else '**NOT met**'} |",
                  f"| idle power | {wk['idle_power_uw']:.1f} uW |",
                  f"| average power at 1 inference/s | {uw(wk['avg_power_uw_at_1hz'])} |",
                  f"| average power at 10 inferences/s | {uw(wk['avg_power_uw_at_10hz'])} |",
                  f"| energy per inference | {wk['energy_per_inference_uj']:.3f} uJ |",
                  f"| latency (oscillator power-up + compute) | {wk['latency_us']:.0f} us ({wk['power_up_us']:.0f} + "
                  f"{wk['compute_us']:.0f}) |"]
    lines += ["", "## Time", ""] + [f"- {k}: {v:.1f} s" for k, v in r["seconds"].items()]
    return "\n".join(lines) + "\n"
