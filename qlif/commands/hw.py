"""``qlif`` subcommands of the hardware package: verilog."""

from __future__ import annotations

from qlif.clitools import AddCommand, lanes_arg, load_model_arg
from qlif.golden.spec.files import write_text

__all__ = ["register"]


def cmd_verilog(args) -> int:
    from qlif.hw.verilog import generate

    model = load_model_arg(args.model)
    text = generate(model, lanes=args.lanes, name=args.name)
    write_text(args.out, text)
    print(f"verilog: module {args.name} (P={args.lanes}) -> {args.out}")
    return 0


def register(add: AddCommand) -> None:
    """Add this package's subcommands to the ``qlif`` parser."""
    sp = add("verilog", cmd_verilog, "write the Verilog of the accelerator for a model")
    sp.add_argument("model")
    sp.add_argument("--out", required=True)
    sp.add_argument("--lanes", type=lanes_arg, default=1)
    sp.add_argument("--name", default="qlif_top", help="top module name")
