"""``qlif`` subcommands of the boards package: build."""

from __future__ import annotations

from pathlib import Path

from qlif.clitools import AddCommand, lanes_arg, load_model_arg

__all__ = ["register"]


def cmd_build(args) -> int:
    from .build import build

    model = load_model_arg(args.model)
    report = build(model, board=args.board, lanes=args.lanes, out_dir=Path(args.out_dir))
    print(f"build: {args.board}: bitstream {report['bitstream']}, Fmax {report['fmax_mhz']:.1f} MHz")
    return 0


def register(add: AddCommand) -> None:
    """Add this package's subcommands to the ``qlif`` parser."""
    from .build import BOARDS

    sp = add("build", cmd_build, "synthesise, place and route a bitstream with a report")
    sp.add_argument("model")
    sp.add_argument("--board", choices=sorted(BOARDS), default="icebreaker")
    sp.add_argument("--lanes", type=lanes_arg, default=4)
    sp.add_argument("--out-dir", default="build/board")
