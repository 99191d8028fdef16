"""Functional coverage (qlif.sim.coverage): facts derived from runs, recording, and the report."""

from __future__ import annotations

import numpy as np

from qlif.golden.spec.layouts import EOT
from qlif.golden.spec.model import Layer, Model
from qlif.golden.spec.reference import run
from qlif.sim import coverage


def _layer(w, *, k=4, theta=1, leak=None, reset="subtract", b=4, book=None) -> Layer:
    return Layer(weights=np.asarray(w, np.int64), weight_bits=b, membrane_bits=k, threshold=theta,
                 leak_shift=leak, reset=reset, codebook=book)


def test_integrate_saturation_is_replayed_from_the_run():
    # k = 4: [-8, 7]. Inputs 0 and 1 add 7 then -7: the sum is 0, but the partial sum 7 + 7 clips.
    layer = _layer([[7], [-7]], theta=6, leak=None, reset="zero")
    model = Model(timesteps=2, layers=(layer,))
    x = np.array([[[1, 0], [1, 1]]], np.uint8)          # step 0: v = 7 (spike); step 1: reset to 0, +7, -7
    got = run(model, x)
    facts = coverage.observe(model, x, 1, got)["layers"][0]
    assert facts["integrate_saturation"] == []           # 0 + 7 = 7, then 7 - 7: nothing left the register
    model = Model(timesteps=1, layers=(_layer([[-8], [-8]], theta=6),))
    x = np.array([[[1, 1]]], np.uint8)
    facts = coverage.observe(model, x, 1, run(model, x))["layers"][0]
    assert facts["integrate_saturation"] == ["bottom"]
    model = Model(timesteps=2, layers=(_layer([[7], [7]], theta=6),))
    x = np.array([[[1, 1], [0, 0]]], np.uint8)
    facts = coverage.observe(model, x, 1, run(model, x))["layers"][0]
    assert facts["integrate_saturation"] == ["top"]


def test_a_subtract_reset_never_reaches_the_bottom_bound():
    """The claim behind the ``subtract_reset`` bin, checked exhaustively for k = 2..7: a neuron that
    spiked (v > theta) and is reset by subtraction lands at -theta or above, never at v_min; -theta at
    the largest theta (lam = 0) is reached."""
    for k in range(2, 8):
        lo, hi = -(1 << (k - 1)), (1 << (k - 1)) - 1
        floor = None
        for theta in range(0, hi):
            for lam in (None, *range(16)):
                layer = _layer([[1]], k=k, theta=theta, leak=lam)
                v = np.arange(theta + 1, hi + 1)
                after = coverage._pre_integration(layer, v, np.ones_like(v))
                assert after.min() >= -theta > lo, (k, theta, lam)
                floor = min(floor if floor is not None else 0, int(after.min()))
        assert floor == -(hi - 1), k


def test_bad_token_kinds():
    n_in = 6
    assert coverage.bad_token_kind(9, None, n_in, 2) == coverage.BAD_TOKENS[0]
    assert coverage.bad_token_kind(9, 3, n_in, 4) == coverage.BAD_TOKENS[1]
    assert coverage.bad_token_kind(EOT - 1, 3, n_in, EOT) == coverage.BAD_TOKENS[2]
    assert coverage.bad_token_kind(3, 3, n_in, EOT) == coverage.BAD_TOKENS[3]
    assert coverage.bad_token_kind(1, 3, n_in, EOT) == coverage.BAD_TOKENS[4]


def test_runs_are_recorded_and_reported(tmp_path, monkeypatch):
    """Observations go to ``$QLIF_COVERAGE_DIR`` (nothing without it); the report ends with the summary
    line and names the bins that no run hit."""
    model = Model(timesteps=3, layers=(_layer([[3, -2], [4, 1]], k=6, theta=2, leak=1),))
    x = np.array([[[0, 0], [1, 1], [1, 0]], [[1, 1], [0, 1], [0, 0]]], np.uint8)
    obs = coverage.observe(model, x, 2, run(model, x), gap_runs=[1, 9], stall_runs=[2], forwarding=[1, 1, 5])
    assert obs["events_gap"] == ["1 cycle", ">= 8 cycles"] and obs["spikes_backpressure"] == []
    assert obs["forwarding"] == [1] and obs["input_step"] == ["empty", "all ones"]
    monkeypatch.delenv(coverage.ENV, raising=False)
    coverage.record(obs)
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv(coverage.ENV, str(tmp_path / "cov"))
    coverage.record(obs)
    coverage.record(obs)
    (path,) = (tmp_path / "cov").iterdir()
    assert len(path.read_text().splitlines()) == 2
    assert coverage.collect(tmp_path / "cov") == 2
    lines = []
    hit, total = coverage.report(lines.append)
    assert total == len(coverage.COVERPOINTS) and hit < total
    assert lines[-1] == f"coverpoints hit: {hit}/{total}"
    assert any("missed" in line and "bad_token" in line for line in lines)
