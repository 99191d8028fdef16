"""Switching activity of the core, measured in RTL simulation of a real workload (for the power model).

The generated Verilog runs under Verilator with waveforms on (``QLIF_WAVES=1``, see
:mod:`qlif.sim.runner`), checked against the golden model as usual; the VCD is then read once and
reduced to a few counts:

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

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qlif.boards.flow.activity import Activity, MemoryActivity

__all__ = ["DesignInfo", "parse_verilog", "activity_from_vcd", "measure_activity"]


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
    """Verilog name as a VCD shows it: escaped identifiers lose the backslash and the closing space."""
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
# The VCD.

def _vcd_vars(lines: Iterator[str]) -> list[tuple[tuple[str, ...], str, int, str]]:
    """(scope path, name, width, id) of every $var, up to $enddefinitions."""
    scope: list[str] = []
    out = []
    pending = ""
    for line in lines:
        pending = f"{pending} {line.strip()}" if pending else line.strip()
        if "$end" not in pending and not pending.startswith("$enddefinitions"):
            continue
        tokens, pending = pending.split(), ""
        if not tokens:
            continue
        if tokens[0] == "$scope":
            scope.append(tokens[2])
        elif tokens[0] == "$upscope":
            scope.pop()
        elif tokens[0] == "$var":
            out.append((tuple(scope), tokens[4], int(tokens[2]), tokens[3]))
        elif tokens[0] == "$enddefinitions":
            return out
    raise ValueError("VCD has no $enddefinitions: not a VCD file, or a truncated one")


def _resolve(design: DesignInfo, top: str, path: tuple[str, ...]) -> str | None:
    """Module name of the VCD scope ``path`` (which starts at the top module's instance)."""
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


def activity_from_vcd(vcd_path: str | os.PathLike, verilog: str, *, top: str = "qlif_top", clock: str = "clk",
                      workload: str = "") -> Activity:
    """Reduce a VCD of the design in ``verilog`` (top module ``top``) to an :class:`Activity`."""
    design = parse_verilog(verilog)
    if top not in design.modules:
        raise ValueError(f"module {top!r} is not in the Verilog (modules: {sorted(design.modules)[:5]} ...)")
    with open(vcd_path) as f:
        variables = _vcd_vars(f)
        kind: dict[str, str] = {}                  # id -> "ff" or "logic"; ids of other nets are skipped
        widths: dict[str, int] = {}
        watch: dict[tuple[str, str], str] = {}     # (module path, net) -> id, for memory enables
        clock_id = None
        for path, name, width, ident in variables:
            module = _resolve(design, top, path)
            if module is None:
                continue
            info = design.modules[module]
            scope = ".".join(path[path.index(top):])
            watch[(scope, name)] = ident
            if path[-1] == top and name == clock:
                clock_id = ident
            if name in info.ports or name.startswith("$auto$") or name in info.memory_outputs:
                continue
            if ident in kind:                      # an alias of a net already counted
                continue
            kind[ident] = "ff" if name in info.registers else "logic"
            widths[ident] = width
        if clock_id is None:
            raise ValueError(f"VCD has no clock {top}.{clock}")
        ports = []                                  # (memory name, "r"/"w", enable)
        memories = []
        scopes = sorted({".".join(p[p.index(top):]) for p, *_ in variables if top in p})
        for scope in scopes:
            module = _resolve(design, top, tuple(scope.split(".")))
            if module is None:
                continue
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
                            ident = watch.get((scope, _clean(net)))
                            ports.append((full, direction, (ident, int(bit.rstrip("] ")) if bit else 0)
                                          if ident else "?"))
        counts = _scan(f, kind, clock_id, {p[2] for p in ports if isinstance(p[2], tuple)})
    toggles, cycles, enabled = counts
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
    for ident, k in kind.items():
        sums[k][0] += widths[ident]
        sums[k][1] += toggles.get(ident, 0)
    return Activity(cycles=cycles, ff_bits=sums["ff"][0], ff_toggles=sums["ff"][1], logic_bits=sums["logic"][0],
                    logic_toggles=sums["logic"][1], memories=tuple(mem_acts), workload=workload,
                    meta={"unevaluated_enables": unknown} if unknown else {})


def _scan(lines, kind: dict[str, str], clock_id: str, watched: set[tuple[str, int]]):
    """Count bit changes per id, clock rising edges, and per watched (id, bit) the rising edges at which
    it was 1 just before the edge (what the flip-flops sample)."""
    toggles: dict[str, int] = dict.fromkeys(kind, 0)
    value: dict[str, int | None] = {}
    watched_ids = {ident for ident, _ in watched}
    enabled = dict.fromkeys(watched, 0)
    cycles = 0
    batch: list[tuple[str, int | None]] = []
    clock_rose = False
    clock = None

    def flush():
        nonlocal cycles, clock_rose
        if clock_rose:
            cycles += 1
            for ident, bit in watched:
                v = value.get(ident)
                if v is not None and (v >> bit) & 1:
                    enabled[(ident, bit)] += 1
            clock_rose = False
        for ident, v in batch:
            value[ident] = v
        batch.clear()

    for line in lines:
        c = line[:1]
        if c == "#":
            flush()
            continue
        if c == "b":
            bits, _, ident = line[1:].partition(" ")
            ident = ident.strip()
            try:
                new = int(bits, 2)
            except ValueError:          # x or z bits: no toggle counted, value unknown
                new = None
        elif c in "01xzXZ" and c:
            ident = line[1:].strip()
            new = int(c) if c in "01" else None
        else:
            continue                    # $dumpvars, $end, comments, real values
        if ident == clock_id:
            if new == 1 and clock == 0:
                clock_rose = True
            clock = new
            continue
        if ident in toggles:
            old = value.get(ident)
            if old is not None and new is not None:
                toggles[ident] += (old ^ new).bit_count()
            value[ident] = new
        if ident in watched_ids:
            batch.append((ident, new))
    flush()
    return toggles, cycles, enabled


# --------------------------------------------------------------------------------------------------
# Running the workload.

@contextlib.contextmanager
def _waves() -> Iterator[None]:
    saved = os.environ.get("QLIF_WAVES")
    os.environ["QLIF_WAVES"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("QLIF_WAVES", None)
        else:
            os.environ["QLIF_WAVES"] = saved


def measure_activity(model, x, *, lanes: int, build_dir: str | os.PathLike | None = None,
                     workload: str = "") -> Activity:
    """Simulate ``model`` on stimuli ``x`` (uint8 [S, T, n_in]) under Verilator with a VCD, check the
    run against the golden model, and return the activity. The run folder (and its VCD) is deleted.

    Raises :class:`qlif.sim.runner.RtlMismatch` if the RTL differs from the golden model: an activity
    figure of a wrong design would be meaningless.
    """
    from qlif.sim.runner import DEFAULT_BUILD_DIR, run_rtl

    stats: dict = {}
    with _waves():
        run_rtl(model, x, simulator="verilator", lanes=lanes, build_dir=build_dir, check=True, stats=stats)
    run_dir = Path(stats["run_dir"])
    try:
        verilog = (run_dir.parent / "qlif_top.v").read_text()
        act = activity_from_vcd(run_dir / "dump.vcd", verilog, top="qlif_top", workload=workload)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    meta = dict(act.meta, lanes=lanes, samples=int(x.shape[0]), timesteps=int(x.shape[1]),
                build_dir=str(Path(build_dir or DEFAULT_BUILD_DIR)))
    return Activity(**{**{k: getattr(act, k) for k in ("cycles", "ff_bits", "ff_toggles", "logic_bits",
                                                         "logic_toggles", "memories", "workload")},
                       "meta": json.loads(json.dumps(meta))})
