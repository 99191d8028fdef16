"""The seed network on real parts: a 784-500-10 model built for a board, with its Fmax over nextpnr seeds,
its cycles and latency per inference on MNIST test images, and optionally its RTL run bit-exact.

Run, for example (the acceptance figures of docs/boards.md)::

    python benchmarks/bench_mnist_hw.py --model build/acc/mnist_ptq4.json --board ulx3s-85f --lanes 32 \\
        --clk-mhz 100 --seeds 1,2,3 --rtl 20
    python benchmarks/bench_mnist_hw.py --model build/acc/mnist_ternary.json --board icebreaker --lanes 8 \\
        --clk-mhz 30 --seeds 1 --rtl 10

Without ``--model`` a random 784-500-10 model (``--weight-bits``, ``--membrane-bits``, ``--timesteps``) is
used. Cycles come from the cycle model (``golden/spec/cycles.py``, equal to the RTL's ``step_cycles``, checked
by ``--rtl``) on the first ``--samples`` MNIST test images, rate coded as in training. Latency is cycles
divided by the median Fmax of the core's clock, and by the clock the bitstream runs at. Figures go to stdout and to
``report.json`` in ``--out`` (each build's own report.json and report.md are in its seed folder).
Builds run one after the other (each takes minutes on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from qlif.boards.flow.build import build_seeds
from qlif.boards.tops.registry import BOARDS
from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode, max_rate_of
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import load_model
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import run
from qlif.hw.memory import plan_memories

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: a random 784-500-10 model)")
    parser.add_argument("--weight-bits", type=int, default=4, help="random model only")
    parser.add_argument("--membrane-bits", type=int, default=12, help="random model only")
    parser.add_argument("--timesteps", type=int, default=8, help="random model only")
    parser.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS))
    parser.add_argument("--lanes", type=int, default=32)
    parser.add_argument("--clk-mhz", type=float, help="PLL clock and timing constraint (default: oscillator)")
    parser.add_argument("--one-clock", action="store_true",
                        help="with --clk-mhz: the host link on the PLL's clock too (packs denser; see docs/boards.md)")
    parser.add_argument("--seeds", default="1,2,3", help="nextpnr seeds (comma separated); empty: no build")
    parser.add_argument("--samples", type=int, default=1000, help="MNIST test images for the cycle figures")
    parser.add_argument("--rtl", type=int, default=0, help="also run this many images on the Verilog")
    parser.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--out", help="output folder inside build/ (default build/bench-mnist-<board>-p<P>)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else BUILD_ROOT / f"bench-mnist-{args.board}-p{args.lanes}"
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    model = load_model(args.model) if args.model else random_model(
        [784, 500, 10], timesteps=args.timesteps, weight_bits=args.weight_bits, membrane_bits=args.membrane_bits)
    name = Path(args.model).name if args.model else (f"random 784-500-10, b={args.weight_bits}, "
                                                     f"k={args.membrane_bits}, T={args.timesteps}")
    device = BOARDS[args.board].platform.device
    plan = plan_memories(model, args.lanes, device)       # refuses a model that does not fit, with numbers
    print(f"model {name}; board {args.board} ({device}), P = {args.lanes}; synapses in {plan.synapses}")

    split = load_split("mnist", data_dir=args.data_dir, test_count=args.samples)
    x = encode(split.x_test, model.timesteps, max_rate=max_rate_of(model.metadata))
    gold = run(model, x, lanes=args.lanes)
    cycles = gold.cycles.sum(axis=1)
    accuracy = float((gold.prediction == split.y_test).mean())
    print(f"{len(x)} MNIST test images, T = {model.timesteps}: {x.sum(axis=2).mean():.1f} input spikes per step; "
          f"integer-model accuracy {100 * accuracy:.2f}%; cycles per inference mean {cycles.mean():.0f}, "
          f"p99 {np.percentile(cycles, 99):.0f}, max {cycles.max()}")
    result = {"model": name, "board": args.board, "device": device, "lanes": args.lanes,
              "memory": plan.to_json(), "samples": len(x), "timesteps": model.timesteps,
              "input_spikes_per_step": float(x.sum(axis=2).mean()), "accuracy": accuracy,
              "cycles": {"mean": float(cycles.mean()), "p99": float(np.percentile(cycles, 99)),
                         "max": int(cycles.max())}, "builds": []}

    reports = build_seeds(model, seeds, out_dir=out, board=args.board, lanes=args.lanes,
                          clk_freq=None if args.clk_mhz is None else args.clk_mhz * 1e6,
                          separate_clocks=not args.one_clock)
    result["builds"] = [{k: r[k] for k in ("seed", "fmax_mhz", "clk_mhz", "clocks", "timing_met", "resources",
                                           "bitstream", "wall_s", "critical_path")} for r in reports]
    if result["builds"]:
        fmax = statistics.median(b["fmax_mhz"] for b in result["builds"])
        clk = result["builds"][0]["clk_mhz"]
        result["fmax_median_mhz"] = fmax
        result["latency_us_at_fmax"] = {"mean": cycles.mean() / fmax, "max": cycles.max() / fmax}
        result["latency_us_at_clock"] = {"mean": cycles.mean() / clk, "max": cycles.max() / clk}
        print(f"median Fmax {fmax:.2f} MHz over seeds {seeds}: latency per inference mean "
              f"{cycles.mean() / fmax:.1f} us, max {cycles.max() / fmax:.1f} us; at the {clk:.2f} MHz clock the "
              f"bitstream runs at: mean {cycles.mean() / clk:.1f} us, max {cycles.max() / clk:.1f} us")

    if args.rtl:
        from qlif.sim.compare import first_mismatch
        from qlif.sim.runner import run_rtl

        t0 = time.monotonic()
        got = run_rtl(model, x[:args.rtl], simulator=args.simulator, lanes=args.lanes, check=True)
        msg = first_mismatch(run(model, x[:args.rtl], lanes=args.lanes), got)
        result["rtl"] = {"simulator": args.simulator, "samples": args.rtl, "mismatch": msg,
                         "wall_s": round(time.monotonic() - t0, 1)}
        print(f"RTL ({args.simulator}, {args.rtl} images): "
              f"{'bit-exact (spikes, membranes, cycles every step)' if msg is None else msg}; "
              f"{time.monotonic() - t0:.0f} s")

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"report {out / 'report.json'}")
    return 0 if result.get("rtl", {}).get("mismatch") is None else 1


if __name__ == "__main__":
    sys.exit(main())
