"""The ``qlif`` command line: one entry point, one subcommand per step of the flow.

Each module of :mod:`qlif.commands` registers the subcommands of one part of the flow (``register(add)``:
golden model and training, simulation, Verilog, boards, hardware sweep); this module assembles the
parser, adds ``demo``, and turns user errors into one line ``qlif: error: ...`` with exit status 2.
Output files are written atomically, only once everything has been checked and computed, so a failed
command leaves no partial output behind (:mod:`qlif.golden.spec.files`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from qlif.clitools import CLIError, lanes_arg, mhz_arg, positive_arg
from qlif.commands import boards, golden, hw, nir, sim, sweep

__all__ = ["main", "build_parser"]


def cmd_demo(args) -> int:
    from qlif.demo import run_demo

    run_demo(out_dir=Path(args.out_dir), samples=args.samples, simulator=args.simulator,
             lanes=args.lanes, synthesize=not args.no_build, clk_mhz=None if args.oscillator else args.clk_mhz,
             wakeup=not args.no_wakeup)
    return 0


#: Modules with a ``register(add)`` function adding their subcommands, in ``--help`` order.
COMMAND_MODULES = (golden, nir, sim, hw, boards, sweep)


def build_parser() -> argparse.ArgumentParser:
    from qlif.sim.runner import SIMULATORS

    p = argparse.ArgumentParser(
        prog="qlif",
        description="Quantized LIF spiking networks on open-toolchain FPGAs: train, quantize, run the "
                    "integer golden model, simulate the RTL, build bitstreams.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    for module in COMMAND_MODULES:
        module.register(add)

    sp = add("demo", cmd_demo, "train, quantize, verify the RTL, build the UP5K bitstream, write a report")
    sp.add_argument("--out-dir", default="build/demo")
    sp.add_argument("--samples", type=positive_arg, default=200, help="test samples run on the RTL")
    sp.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    sp.add_argument("--lanes", type=lanes_arg, default=4)
    sp.add_argument("--no-build", action="store_true", help="skip synthesis")
    sp.add_argument("--no-wakeup", action="store_true",
                    help="skip the wake-up build and its power report (report.json's wakeup)")
    sp.add_argument("--clk-mhz", type=mhz_arg, default=50.0,
                    help="core clock of the UP5K build, from the PLL (default 50; the host link runs on the 12 MHz "
                         "oscillator)")
    sp.add_argument("--oscillator", action="store_true",
                    help="no PLL: core and host link on the 12 MHz oscillator (Fmax is then the slower of the two)")
    return p


def main(argv: list[str] | None = None) -> int:
    from qlif.golden.spec.model import ModelError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ModelError, CLIError) as e:
        print(f"qlif: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qlif: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
