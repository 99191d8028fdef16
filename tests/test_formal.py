"""Formal proofs of the LIF datapath and the core (sim/proofs/lif.py, sim/proofs/network.py): each proof
passes at its quick depth (the LIF datapath: its default-suite builds) and fails (a counterexample, not
merely no proof) on every broken design it names, and where a proof also asserts auxiliary invariants, its
claim alone catches them too; the LIF proof's builds cover every parameter set, its free theta ranges over
the format's thresholds, and a datapath that reads the threshold in Python fails the build; the proof
registry; and the runner's clock, without which sequential proofs check nothing.

The serializer's and the frame receiver's proofs have their own file (tests/test_formal_link.py).
The full depths run with ``-m slow`` (and in ``make formal``).
"""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Assert, Elaboratable, Fragment, Module, Signal, UnusedElaboratable

from qlif.golden.spec.model import Layer, ModelError
from qlif.hw.lif import LifDatapath
from qlif.sim import proofs
from qlif.sim.formal import FormalToolError, Proof, prove, prove_each, run_proof
from qlif.sim.mutants import install
from qlif.sim.proofs import lif, network

PROOFS = lif.PROOFS + network.PROOFS


@pytest.mark.parametrize("proof", PROOFS, ids=lambda p: p.name)
def test_proof_passes(proof):
    result = run_proof(proof)
    assert result.passed, result.summary()


@pytest.mark.parametrize("proof, mutant", [(p, b) for p in PROOFS for b in p.broken], ids=lambda x: x.name)
def test_broken_design_fails(proof, mutant):
    result = run_proof(proof, mutant=mutant)
    assert result.status == "FAIL", result.summary()
    assert result.traces(), result.summary()


@pytest.mark.slow
@pytest.mark.parametrize("proof", PROOFS, ids=lambda p: p.name)
def test_proof_passes_at_full_depth(proof):
    result = run_proof(proof, full=True)
    assert result.passed, result.summary()


# The core's proofs assert auxiliary invariants besides their claim, which could catch a broken design
# first; the claim alone (a bounded check from reset, no invariants) sees each one too, at these depths.
CLAIM_ONLY = [("spikes", network.VALID_TOGGLES, 18), ("spikes", network.PAYLOAD_CHANGES, 18),
              ("events", network.ACCEPTS_AFTER_EOT, 12), ("onehot", network.STATES_STICK, 8)]


@pytest.mark.parametrize("check, mutant, depth", CLAIM_ONLY, ids=[f"{c}-{m.name}" for c, m, _ in CLAIM_ONLY])
def test_network_claim_alone_catches(check, mutant, depth):
    undo = install(mutant)
    try:
        harness = network.NetworkHarness(check)
        result = prove(harness, name=f"network-{check}-claim-only--{mutant.name}", mode="bmc", depth=depth,
                       ports=[], solver="yices")
    finally:
        undo()
    assert result.status == "FAIL", result.summary()


def test_registry_holds_every_module_once():
    names = [p.name for p in proofs.PROOFS]
    assert len(names) == len(set(names))
    for module in proofs.MODULES:
        assert module.PROOFS and set(module.PROOFS) <= set(proofs.PROOFS), module.__name__
    for proof in proofs.PROOFS:
        assert isinstance(proof, Proof)
        assert proof.broken, f"{proof.name} names no broken design"
        assert 1 <= proof.quick_depth <= proof.depth, proof.name
    assert proofs.get("lif-b4") is lif.PROOFS[2]
    with pytest.raises(ValueError, match="unknown proof 'nope'"):
        proofs.get("nope")


class _Counter(Elaboratable):
    """A free-running 3-bit counter, asserted never to reach 5."""

    def elaborate(self, platform):
        m = Module()
        count = Signal(3)
        m.d.sync += count.eq(count + 1)
        m.d.comb += Assert(count != 5)
        return m


def test_registers_advance_in_a_proof():
    # A harness converted with ports=[] once had its clock tied to 0 by Amaranth, so no register moved
    # and every sequential property passed unchecked: the counter must reach 5 at step 5, and not before.
    assert prove(_Counter(), name="counter-reaches-5", mode="bmc", depth=6, ports=[]).status == "FAIL"
    assert prove(_Counter(), name="counter-before-5", mode="bmc", depth=5, ports=[]).passed


def test_prove_each_refuses_a_design_with_state():
    # Yosys' sat (without -seq) would take the counter's register for a free input: refused, not proved.
    with pytest.raises(FormalToolError, match="selection is not empty"):
        prove_each({"counter": (_Counter(), [])}, name="prove-each-refuses-state")


@pytest.mark.parametrize(("name", "workdir"), [("..", None), (".", None), ("ok", "/tmp/qlif-proof")])
def test_a_proof_only_empties_folders_in_the_build_tree(name, workdir):
    # prove() empties its folder first: a name or folder that points out of build/formal must be refused.
    counter = _Counter()
    with pytest.raises(ValueError, match="name must be|workdir must lie inside"):
        prove(counter, name=name, mode="bmc", depth=1, ports=[], workdir=workdir)
    Fragment.get(counter, None)     # refused before its conversion: mark it used (no UnusedElaboratable)


def test_lif_full_builds_cover_every_parameter_set():
    # make formal: every (k, lam, reset) with the default codebook is a build of its own, theta free in each;
    # 8,398 parameter sets per b. The default suite's builds are a subset holding every k and both resets.
    every = {(k, lam, reset) for k in lif.K_RANGE for lam in (None, *range(16)) for reset in ("subtract", "zero")}
    for b in lif.WEIGHT_BITS:
        quick, full = lif.builds(b, full=False), lif.builds(b, full=True)
        assert set(quick) < set(full)
        default = [x for x in full if x.codebook is None]
        assert len(default) == len(every) and {(x.k, x.lam, x.reset) for x in default} == every
        assert lif.parameter_sets(default) == 8398
        assert any(x.codebook is not None for x in full)
        assert {x.k for x in quick} == set(lif.K_RANGE)
        assert {x.reset for x in quick} == {"subtract", "zero"}
        assert {None, 0, 1, 15} <= {x.lam for x in quick}
        for x in full:
            x.layer()                                         # a valid layer (validate() raises otherwise)


@pytest.mark.parametrize("k", lif.K_RANGE)
def test_lif_free_theta_ranges_over_the_formats_thresholds(k):
    # The harness assumes theta in lif.thetas(k): exactly the thresholds Layer.validate accepts.
    def layer(theta):
        return Layer(weights=np.zeros((1, 1), np.int64), weight_bits=4, membrane_bits=k, threshold=theta,
                     leak_shift=None, reset="zero")
    thetas = lif.thetas(k)
    assert len(thetas) >= 1
    for theta in (thetas[0], thetas[-1]):
        layer(theta).validate("t")
    for theta in (thetas[0] - 1, thetas[-1] + 1):
        with pytest.raises(ModelError):
            layer(theta).validate("t")


def test_lif_proof_build_refuses_a_datapath_that_reads_theta():
    # A free theta stands for every theta only while the generator never branches on the threshold in
    # Python; one that does (this broken design) must fail the proof's build, not pass it unproved.
    undo = install(lif.READS_THETA)
    try:
        harness = lif.LifHarness(lif.Build(4, 4, None, "subtract"))
        with warnings.catch_warnings():
            # The datapath's Module, abandoned by the refused elaboration, is collected here, unused.
            warnings.simplefilter("ignore", UnusedElaboratable)
            with pytest.raises(TypeError, match="read layer.threshold"):
                Fragment.get(harness, None)
            gc.collect()
    finally:
        undo()


def test_lif_datapath_threshold_port_is_checked():
    layer = Layer(weights=np.zeros((1, 1), np.int64), weight_bits=2, membrane_bits=4, threshold=1,
                  leak_shift=None, reset="zero")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)          # the refused datapath, never elaborated
        with pytest.raises(TypeError, match=r"threshold must be a signed\(4\) value"):
            LifDatapath(layer=layer, lanes=1, threshold=Signal(4))
        gc.collect()


def test_contract_codebook_is_the_documented_one():
    assert lif.contract_codebook(lif.Build(1, 4, None, "zero")) == (-1, 1)
    assert lif.contract_codebook(lif.Build(2, 4, None, "zero")) == (0, 1, -2, -1)
    assert lif.contract_codebook(lif.Build(4, 4, None, "zero"))[7:10] == (7, -8, -7)


def test_flash_fsm_has_an_unused_code():
    # The property is only worth proving if the FSM's register has codes that are no state.
    harness = network.FlashFsmHarness()
    top = Module()
    top.submodules.h = harness
    Fragment.get(top, None)            # raises if every code is a state, or the register is not found
