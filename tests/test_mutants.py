# amaranth: UnusedElaboratable=no
"""The RTL mutants of sim/mutants.py (``make mutation``): each one applies to the current hw/ source and
changes the generated Verilog, and leaves nothing behind; stale and unknown ones fail by name."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import types

import numpy as np
import pytest

import qlif.hw.lif
from qlif.golden.spec.model import Layer, Model
from qlif.hw.verilog import generate
from qlif.sim.mutants import MUTANTS, StaleMutant, apply, get, install, names

pytestmark = pytest.mark.skipif(bool(os.environ.get("QLIF_MUTANT")),
                                reason="a mutant is installed for the whole session (QLIF_MUTANT)")

LANES = 4


def small_model() -> Model:
    """What every mutant needs, in little logic: 6-10-3 at P = 4 gives G = 3 (forwarding at distance 3,
    a spike queue ring) and G = 1 (forwarding at distances 1 and 2), partial last groups in both layers,
    a leak and both resets, n_in not a power of two, and more than one output for the argmax."""
    rng = np.random.default_rng(3)
    model = Model(timesteps=3, layers=(
        Layer(weights=rng.integers(-8, 8, (6, 10)), weight_bits=4, membrane_bits=6, threshold=3, leak_shift=1,
              reset="subtract"),
        Layer(weights=rng.integers(-2, 2, (10, 3)), weight_bits=2, membrane_bits=5, threshold=1, leak_shift=2,
              reset="zero"),
    ))
    model.validate()
    return model


def logic(verilog: str) -> str:
    """The Verilog without its source-location attributes (``(* src = "file:line" *)``): logic only."""
    return re.sub(r'\(\* src = "[^"]*" \*\)\s*', "", verilog)


def verilog_with(mutant) -> str:
    """The small model's Verilog with ``mutant`` installed, which is then undone whatever happens."""
    undo = install(mutant)
    try:
        return logic(generate(small_model(), lanes=LANES))
    finally:
        undo()


@pytest.fixture(scope="module")
def clean() -> str:
    return logic(generate(small_model(), lanes=LANES))


def target_of(mutant):
    """The function object that ``mutant``'s target name resolves to now."""
    obj = sys.modules[mutant.module]
    for part in mutant.target.split("."):
        obj = getattr(obj, part)
    return obj


def test_catalogue():
    assert len(MUTANTS) >= 15
    assert len(set(names())) == len(MUTANTS), "mutant names must be unique"
    for m in MUTANTS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", m.name), m.name
        assert m.breaks and "\n" not in m.breaks and m.count >= 1, m.name


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_applies_and_changes_the_verilog(mutant, clean):
    original = target_of(mutant)
    assert verilog_with(mutant) != clean, f"{mutant.name} does not change the Verilog of the small model"
    assert target_of(mutant) is original, f"{mutant.name} was not undone"


@pytest.mark.parametrize("mutant", list({m.target: m for m in MUTANTS}.values()), ids=lambda m: m.target)
def test_an_identity_rewrite_changes_nothing(mutant, clean):
    """Control: a target recompiled with its pattern replaced by itself gives the same logic, so the
    differences above are the mutants' own, not the recompilation's."""
    assert verilog_with(dataclasses.replace(mutant, replacement=r"\g<0>")) == clean


def test_unknown_name_is_a_one_line_error_listing_the_valid_ones():
    with pytest.raises(ValueError) as e:
        apply("no-such-mutant")
    msg = str(e.value)
    assert "\n" not in msg and "'no-such-mutant'" in msg
    assert all(name in msg for name in names())


def test_a_stale_mutant_fails_naming_itself():
    stale = dataclasses.replace(get("forward-2"), pattern=r"membrane = Mux\(d_writes")    # 1 match, not 2
    stale = dataclasses.replace(stale, count=2)
    with pytest.raises(StaleMutant, match=r"mutant 'forward-2': 1 matches of .* in qlif\.hw\.layer\."
                                          r"NeuronLayer\.elaborate, not 2"):
        install(stale)
    with pytest.raises(StaleMutant, match="'sat-top'.*not a function"):
        install(dataclasses.replace(get("sat-top"), target="NoSuchClass.saturate", module="qlif.hw.lif"))


def test_a_function_imported_by_name_is_replaced_there_too(monkeypatch):
    elsewhere = types.ModuleType("qlif_mutants_probe")
    elsewhere.saturate = qlif.hw.lif.saturate          # as ``from qlif.hw.lif import saturate`` binds it
    monkeypatch.setitem(sys.modules, elsewhere.__name__, elsewhere)
    original = qlif.hw.lif.saturate
    undo = apply("sat-top")
    try:
        assert qlif.hw.lif.saturate is not original
        assert elsewhere.saturate is qlif.hw.lif.saturate
        assert qlif.hw.lif.saturate.__qlif_mutant__ == "sat-top"
    finally:
        undo()
    assert qlif.hw.lif.saturate is original and elsewhere.saturate is original
