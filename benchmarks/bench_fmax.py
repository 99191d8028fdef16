"""Fmax of one model's board build over nextpnr seeds: per clock domain, per seed and the median.

Run, for example (the digits acceptance figures of docs/boards.md: ``make demo`` writes the model)::

    python benchmarks/bench_fmax.py --model build/demo/model.json --board icebreaker --clk-mhz 50 --seeds 1,2,3
    python benchmarks/bench_fmax.py --model build/demo/model.json --board ulx3s-85f --clk-mhz 100 --seeds 1,2,3

With ``--clk-mhz`` the core runs from the PLL in a clock domain of its own and the host link from the
board oscillator: nextpnr times each clock against its own frequency, and both are printed (``core_clk``,
the core's, and ``clk``, the link's). Without it, one clock (the oscillator). Without ``--model`` a
random model of ``--sizes`` is built. Builds run one after the other (minutes each on a shared 2-core
machine); figures go to stdout and to ``report.json`` in ``--out`` (each build's own report.json and
report.md are in its seed folder).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from qlif.boards.flow.build import build_seeds
from qlif.boards.tops.registry import BOARDS
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import load_model
from qlif.golden.spec.random_model import random_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: a random model of --sizes)")
    parser.add_argument("--sizes", default="64,128,10", help="random model only")
    parser.add_argument("--board", default="icebreaker", choices=sorted(BOARDS))
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--clk-mhz", type=float, help="the core's PLL clock and constraint (default: oscillator)")
    parser.add_argument("--seeds", default="1,2,3", help="nextpnr seeds (comma separated)")
    parser.add_argument("--out", help="output folder inside build/ (default build/bench-fmax-<board>-p<P>)")
    args = parser.parse_args()
    out = Path(args.out) if args.out else BUILD_ROOT / f"bench-fmax-{args.board}-p{args.lanes}"
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    model = load_model(args.model) if args.model else random_model([int(n) for n in args.sizes.split(",")])
    name = args.model or f"random {args.sizes}"
    print(f"model {name}; board {args.board}, P = {args.lanes}, "
          f"{'core clock ' + format(args.clk_mhz, 'g') + ' MHz (PLL)' if args.clk_mhz else 'oscillator clock'}")

    reports = build_seeds(model, seeds, out_dir=out, board=args.board, lanes=args.lanes,
                          clk_freq=None if args.clk_mhz is None else args.clk_mhz * 1e6)
    builds = [{k: r[k] for k in ("seed", "fmax_mhz", "clk_mhz", "clocks", "timing_met", "resources", "critical_path",
                                 "wall_s")} for r in reports]
    medians = {net: statistics.median(b["clocks"][net]["fmax_mhz"] for b in builds) for net in builds[0]["clocks"]}
    for net, fmax in medians.items():
        per_seed = ", ".join(f"{b['seed']}: {b['clocks'][net]['fmax_mhz']:.1f}" for b in builds)
        print(f"{net}: median Fmax {fmax:.2f} MHz over seeds ({per_seed}); constraint "
              f"{builds[0]['clocks'][net]['constraint_mhz']:.2f} MHz")
    print(f"timing met on {sum(b['timing_met'] for b in builds)} of {len(builds)} seeds")
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"model": name, "board": args.board, "lanes": args.lanes,
                                                 "clk_mhz": args.clk_mhz, "builds": builds,
                                                 "fmax_median_mhz": medians}, indent=2) + "\n")
    print(f"report {out / 'report.json'}")
    return 0 if all(b["timing_met"] for b in builds) else 1


if __name__ == "__main__":
    sys.exit(main())
