"""``qlif`` subcommands of the simulation package: sim, random-design."""

from __future__ import annotations

import sys
from pathlib import Path

from qlif.clitools import AddCommand, lanes_arg, load_model_arg, load_stimuli, stimuli_args
from qlif.golden.spec.files import write_npz

__all__ = ["register"]


def cmd_sim(args) -> int:
    from qlif.golden.spec.reference import run
    from qlif.sim.compare import first_mismatch
    from qlif.sim.runner import run_rtl

    model = load_model_arg(args.model)
    frames, x = load_stimuli(model, args)
    expected = run(model, x, lanes=args.lanes)
    # With frames the RTL has the on-chip encoder in front of the core and is given the frames.
    stimulus = {"x": x} if frames is None else {"frames": frames}
    got = run_rtl(model, **stimulus, simulator=args.simulator, lanes=args.lanes,
                  build_dir=Path(args.build_dir) if args.build_dir else None)
    write_npz(args.out, got.to_npz_dict())
    mismatch = first_mismatch(expected, got)
    if mismatch is not None:
        print(f"qlif: RTL differs from the golden model: {mismatch}", file=sys.stderr)
        return 1
    coded = "" if frames is None else " (frames, encoded on chip)"
    print(f"sim ({args.simulator}, P={args.lanes}): {x.shape[0]} samples x {model.timesteps} steps{coded} "
          f"match the golden model (spikes, membranes, cycles) -> {args.out}")
    return 0


def cmd_random_design(args) -> int:
    from qlif.golden.spec.random_model import random_design
    from qlif.sim.campaign import run_design

    failed = 0
    for seed in range(args.seed, args.seed + args.count):
        design = random_design(seed)
        if args.show:
            print(design.describe())
            continue
        outcome = run_design(design, args.simulator)
        if outcome.mismatch is not None:
            print(f"qlif: {outcome.message}", file=sys.stderr)
            failed += 1
        else:
            print(f"{design.describe()}\n  {args.simulator}: bit-exact, {outcome.samples} samples, "
                  f"{outcome.steps} steps, {outcome.cycles} cycles, {outcome.seconds:.1f} s")
    return 1 if failed else 0


def register(add: AddCommand) -> None:
    """Add this package's subcommands to the ``qlif`` parser."""
    from qlif.sim.runner import SIMULATORS

    sp = add("sim", cmd_sim, "simulate the RTL on stimuli and check it against the golden model")
    sp.add_argument("model")
    stimuli_args(sp)
    sp.add_argument("--out", required=True, help="results measured from the RTL, .npz")
    sp.add_argument("--simulator", choices=SIMULATORS, default="icarus")
    sp.add_argument("--lanes", type=lanes_arg, default=1, help="P synapses per cycle (default 1)")
    sp.add_argument("--build-dir", help="simulator build folder (default build/sim/...)")

    from qlif.sim.campaign import SIMULATORS as ANY

    sp = add("random-design", cmd_random_design,
             "draw constrained-random design SEED (model, stimuli, P, port timing) and run it on the RTL")
    sp.add_argument("seed", type=int, help="the seed a test or campaign names")
    sp.add_argument("--simulator", choices=ANY, default="amaranth")
    sp.add_argument("--count", type=int, default=1, help="run the designs SEED .. SEED+COUNT-1 (default 1)")
    sp.add_argument("--show", action="store_true", help="print the designs, do not run them")
