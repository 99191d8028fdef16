"""Formal proofs of the serializer and the host link's frame receiver (sim/proofs/serializer.py,
sim/proofs/frame_rx.py): each proof passes at its quick depth, and fails (a counterexample, not merely no
proof) on every broken design it names; a harness whose internal signal is gone says which."""

from __future__ import annotations

import pytest
from amaranth.back import rtlil

from qlif.sim.formal import run_proof
from qlif.sim.mutants import Mutant, install
from qlif.sim.proofs import frame_rx, serializer

PROOFS = serializer.PROOFS + frame_rx.PROOFS


@pytest.mark.parametrize("proof", PROOFS, ids=lambda p: p.name)
def test_proof_passes(proof):
    result = run_proof(proof)
    assert result.passed, result.summary()


@pytest.mark.parametrize("proof, mutant", [(p, b) for p in PROOFS for b in p.broken],
                         ids=lambda x: x.name)
def test_broken_design_fails(proof, mutant):
    result = run_proof(proof, mutant=mutant)
    assert result.status == "FAIL", result.summary()
    assert result.traces(), result.summary()


@pytest.mark.parametrize("proof, renamed", [
    (serializer.PROOFS[0], Mutant("rename", "", "qlif.hw.serializer", "Serializer.elaborate",
                                  r"ram_nonempty = Signal\(\)", r"ram_nonempty = Signal(name='ring_nonempty')")),
    (frame_rx.PROOFS[0], Mutant("rename", "", "qlif.boards.link.frame_rx", "FrameReceiver.elaborate",
                                r"is_sync = Signal\(\)", r"is_sync = Signal(name='sync_seen')")),
], ids=["serializer", "frame_rx"])
def test_harness_names_a_missing_signal(proof, renamed):
    undo = install(renamed)
    try:
        with pytest.raises(LookupError, match="(ram_nonempty|is_sync)"):
            harness, ports = proof.build()
            rtlil.convert(harness, ports=ports)
    finally:
        undo()
