"""Every formal proof of sim/proofs at its full depth, and every broken design each one names.

::

    make formal                                          # everything
    .venv/bin/python scripts/formal.py --only lif-b4,network-fsm-onehot
    .venv/bin/python scripts/formal.py --quick           # the default suite's depths
    .venv/bin/python scripts/formal.py --list

A proof passes when SymbiYosys (or, for a ``"sat"`` family, Yosys' SAT solver) says PASS at the full depth
(:attr:`qlif.sim.formal.Proof.depth`, and its ``full_build`` where it has one); a broken design is caught
when its run, at the proof's quick depth (the depth the default suite checks it at), ends in FAIL with a
counterexample. Without ``--quick``, every broken design also runs against the ``full_build`` of its proof
where there is one, at the full depth: a harness that proves more than the default suite's must be
shown to catch the same bugs (its assumptions could otherwise rule out every run, and every property pass).
Prints a line per run as it goes, then a table, then ``proofs passed: K/N`` and ``broken designs caught:
B/M``; the exit status is 1 when any proof did not pass or any broken design was not caught.
"""

from __future__ import annotations

import argparse
import sys
import time

from qlif.sim.formal import FormalToolError, run_proof
from qlif.sim.proofs import PROOFS, get


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated proof names (default: all)")
    parser.add_argument("--quick", action="store_true", help="the default suite's depths instead of the full ones")
    parser.add_argument("--list", action="store_true", help="list the proofs and their broken designs, then exit")
    args = parser.parse_args(argv)

    selected = list(PROOFS)
    if args.only:
        try:
            selected = [get(name) for name in dict.fromkeys(args.only.split(","))]
        except ValueError as error:
            parser.error(str(error))
    if args.list:
        for proof in selected:
            print(f"{proof.name}: {proof.mode}, depth {proof.quick_depth}/{proof.depth}; broken: "
                  f"{', '.join(b.name for b in proof.broken)}\n    {proof.claim}")
        return 0

    rows = []                      # (proof, run, expected, verdict, seconds, ok)
    start = time.monotonic()
    for proof in selected:
        # (mutant, full): the proof at its depth, each broken design at the quick depth, and without --quick
        # each broken design against the full harness too, where it is not the quick one.
        runs = [(None, not args.quick)] + [(mutant, False) for mutant in proof.broken]
        if not args.quick and proof.full_build is not None:
            runs += [(mutant, True) for mutant in proof.broken]
        for mutant, full in runs:
            expected = "PASS" if mutant is None else "FAIL"
            try:
                result = run_proof(proof, full=full, mutant=mutant)
                status, seconds = result.status, result.seconds
                what = f"{result.designs} designs" if result.mode == "sat" else f"depth {result.depth}"
                ok = status == expected and (expected == "PASS" or bool(result.traces()))
            except FormalToolError as error:
                status, seconds, what, ok = "ERROR", 0.0, "no verdict", False
                print(error, file=sys.stderr)
            run = "proof" if mutant is None else mutant.name + (" (full)" if full else "")
            label = proof.name if mutant is None else f"{proof.name} -- {run}"
            scope = f"; {proof.scope(full)}" if mutant is None and proof.scope is not None else ""
            print(f"{'ok  ' if ok else 'MISS'} {label}: {status} ({proof.mode}, {what}, {seconds:.1f} s{scope})",
                  flush=True)
            rows.append((proof.name, run, expected, status, seconds, ok))

    width = max(len(r[0]) for r in rows)
    run_width = max(len(r[1]) for r in rows)
    print()
    print(f"{'proof'.ljust(width)}  {'run'.ljust(run_width)}  expected  verdict  seconds")
    for name, run, expected, status, seconds, ok in rows:
        print(f"{name.ljust(width)}  {run.ljust(run_width)}  {expected:8}  {status:7}  {seconds:7.1f}"
              f"{'' if ok else '  <-- MISS'}")
    proofs = [r for r in rows if r[1] == "proof"]
    broken = [r for r in rows if r[1] != "proof"]
    print(f"\ntotal {time.monotonic() - start:.0f} s")
    print(f"proofs passed: {sum(r[5] for r in proofs)}/{len(proofs)}")
    print(f"broken designs caught: {sum(r[5] for r in broken)}/{len(broken)}")
    return 0 if all(r[5] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
