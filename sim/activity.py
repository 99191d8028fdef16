"""Switching activity of the core, measured in RTL simulation of a real workload (for the power model).

The generated Verilog runs under Verilator with waveforms on (``QLIF_WAVES=1``, see
:mod:`qlif.sim.runner`), checked against the golden model as usual; the waveform is then read once
(with pywellen, which reads Verilator's VCD and Icarus' FST alike) and reduced to a few counts:

* **flip-flop toggles**: bit changes of every register the design's clocked blocks assign (Yosys
  writes them as ``x <= ...`` inside ``always @(posedge clk)``), per register bit and cycle;
* **logic toggles**: bit changes of every other internal net (the combinational signals Yosys names
  in its Verilog: datapath adders, muxes, decoders, memory addresses and data), per net bit and
  cycle. Ports of sub-modules are left out so a net connected through the hierarchy counts once;
* **memory accesses**: for every memory (``reg [w] m [d]``), the cycles in which each write port's
  enable was high at the rising clock edge, and likewise each read port's (a read port without an
  enable reads every cycle, as the block RAM it becomes does);
* **cycles**: rising edges of the top clock.

What this does not see (docs/power.md says how the power model treats it): glitches (the simulation
has zero delays), nets that exist only after synthesis, the board's host link (only the core is
simulated), and which memories Yosys maps to block RAM (:meth:`Activity.memory_rates` assumes the
deep ones). The classification reads Yosys' Verilog style, which Amaranth's back end always produces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pywellen

from qlif.boards.flow.activity import Activity, MemoryActivity
from qlif.sim.waves import waves_on

__all__ = ["DesignInfo", "parse_verilog", "activity_from_waveform", "measure_activity"]


# --------------------------------------------------------------------------------------------------
# The Verilog: which nets are registers, which are memories, and how modules nest.

@dataclass
class _Memory:
    width: int
    depth: int
    write_enables: list = field(default_factory=list)   # per port: a net name, or None (every cycle)
    read_enables: list = field(default_factory=list)


@dataclass
class _Module:
    ports: set = field(default_factory=set)
    nets: dict = field(default_factory=dict)             # name -> width (wire and reg, not memories)
    registers: set = field(default_factory=set)          # assigned in a clocked block
    memory_outputs: set = field(default_factory=set)     # registers that hold a memory's read data
    memories: dict = field(default_factory=dict)         # name -> _Memory
    instances: dict = field(default_factory=dict)        # instance name -> module name


@dataclass
class DesignInfo:
    """What :func:`parse_verilog` learnt about each module of a Yosys-written Verilog file."""

    modules: dict

    def module(self, name: str) -> _Module:
        return self.modules[name]


_NAME = r"(?:\\\S+|[A-Za-z_][\w$]*)"
_RANGE = r"\[\s*(-?\d+)\s*:\s*(-?\d+)\s*\]"
_DECL = re.compile(rf"^\s*(wire|reg)\s+(?:signed\s+)?(?:{_RANGE}\s*)?({_NAME})\s*(?:{_RANGE})?\s*(?:=.*)?;")
_PORT = re.compile(rf"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(?:{_RANGE}\s*)?({_NAME})\s*;")
_MODULE = re.compile(rf"^module\s+({_NAME})\s*\(")
_INSTANCE = re.compile(rf"^\s*({_NAME})\s+({_NAME})\s*\(\s*$")
_IF = re.compile(r"^\s*if\s*\((.*)\)\s*(begin)?\s*$")
_ASSIGN = re.compile(r"^\s*(.+?)\s*<=\s*(.+?)\s*;\s*$")
_PLAIN = re.compile(rf"^({_NAME})\s*(?:\[\s*\d+\s*\])?$")


def _clean(name: str) -> str:
    """Verilog name as Verilator's waveforms show it: escaped identifiers lose the backslash and the
    closing space."""
    return name[1:].strip() if name.startswith("\\") else name.strip()


def _base(lhs: str) -> str:
    """The net a left-hand side assigns: ``\\a$1 [3:0]`` -> ``a$1``."""
    lhs = lhs.strip()
    if lhs.startswith("\\"):
        return lhs[1:].split()[0]
    return re.split(r"[\s\[]", lhs, maxsplit=1)[0]


def _enable(conditions: list[str]) -> str | None | bool:
    """One plain net (optionally a bit of it) as a memory port's enable; ``None`` when unconditional;
    ``False`` when the condition is an expression this reader does not evaluate."""
    if not conditions:
        return None
    if len(conditions) == 1:
        match = _PLAIN.match(conditions[0].strip())
        if match:
            return conditions[0].strip()
    return False


def parse_verilog(text: str) -> DesignInfo:
    """Classify the nets of Yosys-written Verilog (what Amaranth's back end emits), module by module."""
    modules: dict[str, _Module] = {}
    mod: _Module | None = None
    in_clocked = False
    depth = 0              # begin/end nesting inside a clocked block
    conds: list[tuple[int, str]] = []     # (depth, condition) of enclosing if ... begin
    pending: str | None = None            # condition of an `if (...)` that guards the next statement
    for line in text.splitlines():
        stripped = line.strip()
        if mod is None:
            match = _MODULE.match(line)
            if match:
                mod = modules.setdefault(_clean(match.group(1)), _Module())
            continue
        if stripped.startswith("endmodule"):
            mod, in_clocked = None, False
            continue
        if not in_clocked:
            if stripped.startswith("always @(posedge"):
                in_clocked = True
                depth = 1 if stripped.endswith("begin") else 0
                conds, pending = [], None
                continue
            if match := _PORT.match(line):
                mod.ports.add(_clean(match.group(4)))
                width = abs(int(match.group(2)) - int(match.group(3))) + 1 if match.group(2) else 1
                mod.nets.setdefault(_clean(match.group(4)), width)
                continue
            if match := _DECL.match(line):
                name = _clean(match.group(4))
                width = abs(int(match.group(2)) - int(match.group(3))) + 1 if match.group(2) else 1
                if match.group(5) is not None:
                    mem_depth = abs(int(match.group(5)) - int(match.group(6))) + 1
                    mod.memories[name] = _Memory(width=width, depth=mem_depth)
                else:
                    mod.nets[name] = width
                continue
            if (match := _INSTANCE.match(line)) and not stripped.startswith(("module", "always", "assign")):
                mod.instances[_clean(match.group(2))] = _clean(match.group(1))
            continue
        # Inside a clocked block.
        if match := _IF.match(line):
            if match.group(2):
                depth += 1
                conds.append((depth, match.group(1)))
            else:
                pending = match.group(1)
            continue
        if stripped == "end" or stripped.startswith("end "):
            while conds and conds[-1][0] == depth:
                conds.pop()
            depth -= 1
            if depth <= 0:
                in_clocked = False
            continue
        if stripped.endswith("begin"):       # else begin, case items ...
            depth += 1
            continue
        if match := _ASSIGN.match(line):
            guard = [c for _, c in conds] + ([pending] if pending is not None else [])
            pending = None
            target, value = _base(match.group(1)), match.group(2)
            if target in mod.memories:
                mod.memories[target].write_enables.append(_enable(guard))
            else:
                mod.registers.add(target)
                for mem_name, mem in mod.memories.items():
                    if re.search(rf"(?<![\w$\\]){re.escape(mem_name)}\s*\[", value):
                        mem.read_enables.append(_enable(guard))
                        mod.memory_outputs.add(target)
            if depth == 0:                    # a single-statement always block
                in_clocked = False
            continue
        if stripped and not stripped.startswith("(*") and depth == 0:
            in_clocked = False                # anything else ends a block without begin
    return DesignInfo(modules=modules)


# --------------------------------------------------------------------------------------------------
# The waveform.

def _open(path: str | os.PathLike) -> pywellen.Waveform:
    if not Path(path).is_file():              # pywellen panics (a BaseException) on a missing file
        raise FileNotFoundError(f"no waveform at {path}")
    try:
        return pywellen.Waveform(str(path))
    except RuntimeError as e:                 # pywellen's error for anything it cannot parse
        raise ValueError(f"{path}: not a VCD or FST waveform, or a truncated one ({e})") from None


def _variables(waves: pywellen.Waveform) -> Iterator[tuple[tuple[str, ...], str, pywellen.Var]]:
    """(scope path, name, variable) of every variable inside a scope, names as the Verilog spells them."""
    def walk(scope, path, prefix):
        name = _clean(scope.name)             # Icarus keeps Verilog's escapes (``\\$1``), Verilator not
        if scope.scope_type == "vhdl_array":
            # wellen files the variables ``x[0]``, ``x[1]`` (a memory's words, the nets Amaranth names
            # after array elements) in a scope ``x``; in the Verilog they are nets of the enclosing one.
            prefix += name
        else:
            path, prefix = (*path, name), ""
        for var in scope.vars():
            yield path, prefix + _clean(var.name), var
        for sub in scope.scopes():
            yield from walk(sub, path, prefix)

    for scope in waves.scopes():
        yield from walk(scope, (), "")


def _key(var: pywellen.Var) -> str:
    # Variables that alias one net (a VCD identifier code, an FST handle) share a signal; a SignalId
    # object is created per access and compares by identity, its text ``SignalId(n)`` by n.
    return str(var.signal_ref)


def _resolve(design: DesignInfo, top: str, path: tuple[str, ...]) -> str | None:
    """Module name of the waveform scope ``path`` (which starts at the top module's instance)."""
    try:
        i = path.index(top)
    except ValueError:
        return None
    module = top
    for inst in path[i + 1:]:
        module = design.modules.get(module, _Module()).instances.get(inst)
        if module is None:
            return None
    return module if module in design.modules else None


def activity_from_waveform(path: str | os.PathLike, verilog: str, *, top: str = "qlif_top", clock: str = "clk",
                           workload: str = "") -> Activity:
    """Reduce a waveform (VCD or FST) of the design in ``verilog`` (top module ``top``) to an
    :class:`Activity`.

    Parameters
    ----------
    path : path
        The waveform: a VCD (Verilator, Icarus) or an FST (Icarus with ``QLIF_WAVES=1``), read with
        pywellen.
    verilog : str
        The Verilog the simulator ran (Yosys' style, see :func:`parse_verilog`).
    top, clock : str
        The top module (the scope whose name it is) and its clock port.
    workload : str
        What the simulation ran, kept in the result.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        ``top`` is not in the Verilog, the file is no waveform, or it has no ``top.clock``.

    Notes
    -----
    The counts are those of the nets the simulator traced: Verilator traces the words of memories
    (counted here as logic nets), Icarus does not, so the same run gives slightly different logic
    figures under the two. The VCD and the FST of one simulator's run give the same.
    """
    design = parse_verilog(verilog)
    if top not in design.modules:
        raise ValueError(f"module {top!r} is not in the Verilog (modules: {sorted(design.modules)[:5]} ...)")
    waves = _open(path)
    kind: dict[str, str] = {}                  # signal -> "ff" or "logic"; other signals are skipped
    widths: dict[str, int] = {}
    signals: dict[str, pywellen.Var] = {}      # signal -> one variable that shows it
    watch: dict[tuple[str, str], str] = {}     # (module path, net) -> signal, for memory enables
    scopes: set[str] = set()
    clock_key = None
    for scope_path, name, var in _variables(waves):
        module = _resolve(design, top, scope_path)
        if module is None:
            continue
        info = design.modules[module]
        scope = ".".join(scope_path[scope_path.index(top):])
        scopes.add(scope)
        key = _key(var)
        signals.setdefault(key, var)
        watch[(scope, name)] = key
        if scope_path[-1] == top and name == clock:
            clock_key = key
        if name in info.ports or name.startswith("$auto$") or name in info.memory_outputs:
            continue
        if key in kind:                        # an alias of a net already counted
            continue
        kind[key] = "ff" if name in info.registers else "logic"
        widths[key] = var.bitwidth
    if clock_key is None:
        raise ValueError(f"{path} has no clock {top}.{clock}")
    ports = []                                  # (memory name, "r"/"w", enable)
    memories = []
    for scope in sorted(scopes):
        module = _resolve(design, top, tuple(scope.split(".")))
        for mem_name, mem in design.modules[module].memories.items():
            full = ".".join(scope.split(".")[1:] + [mem_name])
            memories.append((full, mem))
            for direction, enables in (("r", mem.read_enables), ("w", mem.write_enables)):
                for enable in enables:
                    if enable is None:
                        ports.append((full, direction, None))
                    elif enable is False:
                        ports.append((full, direction, "?"))
                    else:
                        net, _, bit = enable.partition("[")
                        key = watch.get((scope, _clean(net)))
                        ports.append((full, direction, (key, int(bit.rstrip("] ")) if bit else 0) if key else "?"))
    edges = _rising_edges(signals[clock_key].signal)
    cycles = len(edges)
    # A net that aliases the clock counts its bits but no toggles: the clock is the power model's E_clock.
    toggles = {key: 0 if key == clock_key else _toggles(signals[key].signal) for key in kind}
    enabled = {e: _high_before(signals[e[0]].signal, e[1], edges)
               for e in {p[2] for p in ports if isinstance(p[2], tuple)}}
    unknown = [f"{name} ({'read' if d == 'r' else 'write'})" for name, d, e in ports if e == "?"]
    mem_acts = []
    for full, mem in memories:
        reads = writes = 0
        for name, direction, enable in ports:
            if name != full:
                continue
            # An enable this reader cannot evaluate counts as always on (an upper bound).
            n = cycles if enable is None or enable == "?" else enabled[enable]
            if direction == "r":
                reads += n
            else:
                writes += n
        mem_acts.append(MemoryActivity(name=full, width=mem.width, depth=mem.depth, reads=reads, writes=writes,
                                       read_ports=len(mem.read_enables), write_ports=len(mem.write_enables)))
    sums = {"ff": [0, 0], "logic": [0, 0]}
    for key, k in kind.items():
        sums[k][0] += widths[key]
        sums[k][1] += toggles[key]
    return Activity(cycles=cycles, ff_bits=sums["ff"][0], ff_toggles=sums["ff"][1], logic_bits=sums["logic"][0],
                    logic_toggles=sums["logic"][1], memories=tuple(mem_acts), workload=workload,
                    meta={"unevaluated_enables": unknown} if unknown else {})


# pywellen gives a signal's changes as (time, value): an int, or a string where a bit is x or z.

def _toggles(signal: pywellen.Signal) -> int:
    """Bit changes between known values; a change from or to a value with x or z bits counts none."""
    count, old = 0, None
    for _, new in signal:
        if type(new) is not int:
            new = None
        elif old is not None:
            count += (old ^ new).bit_count()
        old = new
    return count


def _rising_edges(signal: pywellen.Signal) -> np.ndarray:
    """Times at which the clock went from 0 to 1."""
    edges, old = [], None
    for time, new in signal:
        if new == 1 and old == 0:
            edges.append(time)
        old = new
    return np.array(edges, dtype=np.uint64)


def _high_before(signal: pywellen.Signal, bit: int, edges: np.ndarray) -> int:
    """At how many of the clock ``edges`` bit ``bit`` of the signal was 1 just before the edge (what the
    flip-flops sample: a change at the edge's own time comes after it)."""
    times = np.array([t for t, _ in signal], dtype=np.uint64)
    high = np.array([type(v) is int and (v >> bit) & 1 for _, v in signal], dtype=bool)
    last = np.searchsorted(times, edges, side="left") - 1     # the last change before each edge
    return int(high[last[last >= 0]].sum())


# --------------------------------------------------------------------------------------------------
# Running the workload.

def measure_activity(model, x, *, lanes: int, build_dir: str | os.PathLike | None = None,
                     workload: str = "") -> Activity:
    """Simulate ``model`` on stimuli ``x`` (uint8 [S, T, n_in]) under Verilator with a VCD, check the
    run against the golden model, and return the activity. The run folder (and its VCD) is deleted.

    Raises :class:`qlif.sim.runner.RtlMismatch` if the RTL differs from the golden model: an activity
    figure of a wrong design would be meaningless.
    """
    from qlif.sim.runner import DEFAULT_BUILD_DIR, run_rtl

    stats: dict = {}
    with waves_on():
        run_rtl(model, x, simulator="verilator", lanes=lanes, build_dir=build_dir, check=True, stats=stats)
    run_dir = Path(stats["run_dir"])
    try:
        verilog = (run_dir.parent / "qlif_top.v").read_text()
        act = activity_from_waveform(run_dir / "dump.vcd", verilog, top="qlif_top", workload=workload)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    meta = dict(act.meta, lanes=lanes, samples=int(x.shape[0]), timesteps=int(x.shape[1]),
                build_dir=str(Path(build_dir or DEFAULT_BUILD_DIR)))
    return Activity(**{**{k: getattr(act, k) for k in ("cycles", "ff_bits", "ff_toggles", "logic_bits",
                                                         "logic_toggles", "memories", "workload")},
                       "meta": json.loads(json.dumps(meta))})
