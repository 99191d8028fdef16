"""``qlif`` subcommands of the simulation package: sim."""

from __future__ import annotations

import sys
from pathlib import Path

from qlif.clitools import AddCommand, lanes_arg, load_inputs, load_model_arg
from qlif.golden.spec.files import write_npz

__all__ = ["register"]


def cmd_sim(args) -> int:
    from qlif.golden.spec.reference import check_inputs, run
    from qlif.sim.compare import first_mismatch
    from qlif.sim.runner import run_rtl

    model = load_model_arg(args.model)
    x = check_inputs(model, load_inputs(args.inputs))
    expected = run(model, x, lanes=args.lanes)
    got = run_rtl(model, x, simulator=args.simulator, lanes=args.lanes,
                  build_dir=Path(args.build_dir) if args.build_dir else None)
    write_npz(args.out, got.to_npz_dict())
    mismatch = first_mismatch(expected, got)
    if mismatch is not None:
        print(f"qlif: RTL differs from the golden model: {mismatch}", file=sys.stderr)
        return 1
    print(f"sim ({args.simulator}, P={args.lanes}): {x.shape[0]} samples x {model.timesteps} steps "
          f"match the golden model (spikes, membranes, cycles) -> {args.out}")
    return 0


def register(add: AddCommand) -> None:
    """Add this package's subcommands to the ``qlif`` parser."""
    from qlif.sim.runner import SIMULATORS

    sp = add("sim", cmd_sim, "simulate the RTL on stimuli and check it against the golden model")
    sp.add_argument("model")
    sp.add_argument("--inputs", required=True)
    sp.add_argument("--out", required=True, help="results measured from the RTL, .npz")
    sp.add_argument("--simulator", choices=SIMULATORS, default="icarus")
    sp.add_argument("--lanes", type=lanes_arg, default=1, help="P synapses per cycle (default 1)")
    sp.add_argument("--build-dir", help="simulator build folder (default build/sim/...)")
