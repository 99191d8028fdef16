"""``qlif sweep-hw``: the hardware sweep (:mod:`qlif.boards.sweep`) from the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from qlif.boards.sweep.config import DEFAULT_TARGET_MHZ, SweepConfig, default_boards, device_of
from qlif.boards.sweep.execute import ClusterError
from qlif.boards.sweep.sweep import run_sweep
from qlif.clitools import CLIError, positive_arg

__all__ = ["register"]


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of integers, not {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("must list at least one integer")
    return values


def _targets(items: Iterable[str]) -> dict:
    out = {}
    for item in items:
        board, sep, mhz = item.partition("=")
        try:
            out[board] = float(mhz)
        except ValueError:
            sep = ""
        if not sep or not board:
            raise ValueError(f"--clk-mhz takes BOARD=MHZ, not {item!r}")
    return out


def cmd_sweep_hw(args) -> int:
    boards = tuple(b for b in args.boards.split(",") if b) if args.boards else default_boards()
    try:
        config = SweepConfig(boards=boards, weight_bits=args.weight_bits, membrane_bits=args.membrane_bits,
                             lanes=args.lanes, seeds=tuple(range(1, args.seeds + 1)), sizes=args.sizes,
                             timesteps=args.timesteps, samples=args.samples, dataset=args.dataset,
                             data_dir=args.data_dir, target_mhz=_targets(args.clk_mhz or []))
        config.check()
        if not args.boards and not any(device_of(b).upper().startswith("LFE5") for b in boards):
            print("sweep-hw: no ECP5-85F board in qlif.boards.tops.registry.BOARDS yet; sweeping "
                  f"{', '.join(boards)} only", file=sys.stderr)
        rows = run_sweep(config, out_dir=args.out_dir, work_dir=args.work_dir, name=args.name, jobs=args.jobs,
                         scheduler=args.scheduler, progress=not args.no_progress, label=args.label,
                         table_only=args.table_only)
    except (ValueError, ClusterError) as e:
        raise CLIError(f"sweep-hw: {e}") from None
    return 1 if any(r["error"] for r in rows) else 0


def _listed(values) -> str:
    return ",".join(map(str, values))


def register(add) -> None:
    """Add ``sweep-hw`` to the ``qlif`` parser (defaults from :class:`SweepConfig`)."""
    from qlif.golden.data.datasets import DATASETS

    d = SweepConfig()
    sp = add("sweep-hw", cmd_sweep_hw,
             "build every weight x membrane width on each board: resources, Fmax, latency, estimated power and "
             "energy per inference (table, CSV, plots)")
    sp.add_argument("--boards", help="comma-separated board names (default: the UP5K board and an ECP5-85F board "
                                     "when one exists)")
    sp.add_argument("--weight-bits", type=_int_list, default=d.weight_bits, metavar="LIST",
                    help=f"default {_listed(d.weight_bits)}")
    sp.add_argument("--membrane-bits", type=_int_list, default=d.membrane_bits, metavar="LIST",
                    help=f"default {_listed(d.membrane_bits)}")
    sp.add_argument("--lanes", type=_int_list, default=d.lanes, metavar="LIST",
                    help=f"lanes P (default {_listed(d.lanes)})")
    sp.add_argument("--seeds", type=positive_arg, default=len(d.seeds),
                    help=f"nextpnr seeds per build (1..N, default {len(d.seeds)}), Fmax is their median")
    sp.add_argument("--sizes", type=_int_list, default=d.sizes, metavar="LIST",
                    help=f"layer sizes (default {_listed(d.sizes)})")
    sp.add_argument("--timesteps", type=positive_arg, default=d.timesteps)
    sp.add_argument("--samples", type=positive_arg, default=d.samples, help="test samples simulated for the activity")
    sp.add_argument("--dataset", choices=DATASETS, default=d.dataset)
    sp.add_argument("--data-dir", help="MNIST IDX folder (with --dataset mnist)")
    sp.add_argument("--clk-mhz", action="append", metavar="BOARD=MHZ",
                    help="clock constraint of a board's builds (default by family: "
                         + ", ".join(f"{mhz:g} for {fam}" for fam, mhz in DEFAULT_TARGET_MHZ.items()) + ")")
    sp.add_argument("--jobs", type=positive_arg, default=2,
                    help="parallel builds and simulations: worker processes of the local Dask cluster")
    sp.add_argument("--scheduler", metavar="ADDRESS",
                    help="run the tasks on an existing Dask cluster, its scheduler at ADDRESS (tcp://host:8786; "
                         "its workers need this tree at the same path); --jobs is then unused")
    sp.add_argument("--out-dir", default="docs/results", help="where the table, CSV and plots go")
    sp.add_argument("--work-dir", help="builds and the resume records (inside build/; default build/sweep-hw)")
    sp.add_argument("--name", default="hw-sweep", help="base name of the outputs")
    sp.add_argument("--label", default="", help="names the design in the report, e.g. a commit")
    sp.add_argument("--table-only", action="store_true",
                    help="build nothing: write the outputs from the records in the work folder (of one design, "
                         "whichever it is)")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
