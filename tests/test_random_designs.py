# amaranth: UnusedElaboratable=no
"""The constrained-random generator, and its designs on the RTL in the Amaranth simulator.

Default suite: the generator's range and guard, and 30 designs (seeds 0-29) on the Amaranth simulator.
``-m slow``: 1,000 designs (seeds 0-999). The Verilog designs are in tests/test_random_verilog.py.
Any design reruns alone with ``qlif random-design SEED --simulator amaranth``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from qlif.golden.spec.cycles import LANES
from qlif.golden.spec.model import Layer, Model
from qlif.golden.spec.random_model import exercise_failures, random_design
from qlif.golden.spec.reference import run
from qlif.sim.campaign import SEED_BASE, check_design, run_design

DEFAULT, SLOW = 30, 1000


@pytest.mark.parametrize("seed", range(SEED_BASE["amaranth"], SEED_BASE["amaranth"] + DEFAULT))
def test_amaranth(seed):
    check_design(seed, "amaranth")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(SEED_BASE["amaranth"], SEED_BASE["amaranth"] + SLOW))
def test_amaranth_slow(seed):
    check_design(seed, "amaranth")


@pytest.fixture(scope="module")
def draws():
    return [random_design(seed) for seed in range(400)]


def test_every_draw_passes_the_exercise_guard(draws):
    for d in draws[:100]:
        assert exercise_failures(d.model, d.inputs, d.saturate) == [], d.describe()
        gold = run(d.model, d.inputs)
        for l, s in enumerate(gold.spikes):
            active = s.any(axis=-1)
            assert active.any() and not active.all(), f"{d.describe()}: layer {l}"


def test_draws_cover_the_whole_legal_range(draws):
    """Every value of every parameter's legal range is drawn (the generator's side; what the runs did is
    measured by the functional coverage, qlif.sim.coverage)."""
    seen = Counter()
    for d in draws:
        m = d.model
        seen.update({("P", d.lanes), ("depth", len(m.layers)), ("T", m.timesteps), ("gaps", d.gaps),
                     ("bad", d.bad_tokens), ("samples", d.inputs.shape[0])})
        for layer, sat in zip(m.layers, d.saturate, strict=True):
            top = (1 << (layer.membrane_bits - 1)) - 2
            book = layer.codebook
            seen.update({("b", layer.weight_bits), ("k", layer.membrane_bits), ("lam", layer.leak_shift),
                         ("reset", layer.reset), ("sat", sat),
                         ("theta", "0" if layer.threshold == 0 else "max" if layer.threshold == top else "mid"),
                         ("book", "default" if book is None else
                          "extremes" if {-32768, 32768} <= set(book) else "custom"),
                         ("partial", layer.n_out % d.lanes != 0 and layer.n_out > d.lanes)})
    expected = ({("P", p) for p in LANES} | {("depth", n) for n in range(1, 6)} | {("T", t) for t in (1, 20)}
                | {("b", b) for b in (1, 2, 4, 8)} | {("k", k) for k in range(2, 17)}
                | {("lam", lam) for lam in (None, *range(16))} | {("reset", "subtract"), ("reset", "zero")}
                | {("theta", t) for t in ("0", "max", "mid")} | {("book", b) for b in ("default", "custom", "extremes")}
                | {("sat", True), ("partial", True), ("gaps", True), ("bad", True), ("samples", 2), ("samples", 3)})
    assert expected - set(seen) == set()


def test_the_same_seed_draws_the_same_design():
    a, b = random_design(17), random_design(17)
    assert a.describe() == b.describe() and a.describe().startswith("design 17: ")
    np.testing.assert_array_equal(a.inputs, b.inputs)
    for la, lb in zip(a.model.layers, b.model.layers, strict=True):
        np.testing.assert_array_equal(la.weights, lb.weights)
    assert random_design(18).describe() != a.describe()


def test_the_guard_names_what_is_not_exercised():
    silent = Layer(weights=np.full((3, 2), -1), weight_bits=1, membrane_bits=4, threshold=2, leak_shift=None,
                   reset="zero")
    model = Model(timesteps=2, layers=(silent,))
    x = np.ones((2, 2, 3), np.uint8)
    assert exercise_failures(model, x, [False]) == ["layer 0 never spikes"]
    assert exercise_failures(model, x, [True]) == ["layer 0 never spikes",
                                                   "layer 0 should saturate but never reaches a bound"]
    busy = Layer(weights=np.full((3, 2), 1), weight_bits=1, membrane_bits=4, threshold=0, leak_shift=None,
                 reset="zero")
    assert exercise_failures(Model(timesteps=2, layers=(busy,)), x, [False]) == ["layer 0 spikes in every step"]


def test_a_failure_names_the_seed_and_the_command(monkeypatch):
    """The message of a failing design carries its seed, its parameters and the command that reruns it."""
    import qlif.sim.campaign

    monkeypatch.setattr(qlif.sim.campaign, "_amaranth", lambda design, gold: "sample 0, t 1: broken on purpose")
    outcome = run_design(random_design(5), "amaranth")
    assert outcome.mismatch == "sample 0, t 1: broken on purpose"
    assert "design 5: " in outcome.message
    assert "qlif random-design 5 --simulator amaranth" in outcome.message
