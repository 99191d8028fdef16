"""Formal proofs of the serializer and the host link's frame receiver (sim/proofs/serializer.py,
sim/proofs/frame_rx.py): each proof passes at its quick depth, and fails (a counterexample, not merely no
proof) on every broken design it names; where a broken design trips an auxiliary invariant first, the
claim alone (a bounded check without the invariants) catches it too; a harness whose internal signal is
gone says which."""

from __future__ import annotations

import gc
import warnings

import pytest
from amaranth.back import rtlil

from qlif.sim.formal import prove, run_proof
from qlif.sim.mutants import Mutant, get, install
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


# The broken designs that the proofs catch first on an auxiliary invariant (the queue or the receiver
# already wrong, before it shows at a port), and the steps from reset at which the claim alone sees them.
CLAIM_ONLY = [
    ("serializer", lambda: serializer.SerializerHarness(lanes=4, depth=3, invariants=False), get("lowest-lane"), 3),
    ("serializer", lambda: serializer.SerializerHarness(lanes=2, depth=3, invariants=False), serializer.DROP_LANES, 4),
    ("serializer", lambda: serializer.SerializerHarness(lanes=2, depth=3, invariants=False), serializer.STALE_RING, 8),
    ("frame-rx", lambda: frame_rx.FrameReceiverHarness(n_in=0xFFFF, n_out=12, timeout=2, invariants=False),
     frame_rx.SHORT_DATA, 10),
]


@pytest.mark.parametrize("block, build, mutant, depth", CLAIM_ONLY, ids=[f"{c[0]}-{c[2].name}" for c in CLAIM_ONLY])
def test_claim_alone_catches(block, build, mutant, depth):
    undo = install(mutant)
    try:
        harness = build()
        result = prove(harness, name=f"{block}-claim-only--{mutant.name}", mode="bmc", depth=depth, ports=[],
                        solver="yices")
    finally:
        undo()
    assert result.status == "FAIL", result.summary()


@pytest.mark.parametrize("proof, renamed", [
    (serializer.PROOFS[0], Mutant("rename", "", "qlif.hw.serializer", "Serializer.elaborate",
                                  r"ram_nonempty = Signal\(\)", r"ram_nonempty = Signal(name='ring_nonempty')")),
    (frame_rx.PROOFS[0], Mutant("rename", "", "qlif.boards.link.frame_rx", "FrameReceiver.elaborate",
                                r"is_sync = Signal\(\)", r"is_sync = Signal(name='sync_seen')")),
], ids=["serializer", "frame_rx"])
def test_harness_names_a_missing_signal(proof, renamed):
    undo = install(renamed)
    try:
        with pytest.raises(LookupError, match="(ram_nonempty|is_sync)") as failed:
            harness, ports = proof.build()
            rtlil.convert(harness, ports=ports)
    finally:
        undo()
    # The modules the failed elaboration left unused would warn (UnusedElaboratable) in a later test.
    del failed, harness
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
