"""The free-running regression bench (qlif.sim.regress): equal to the golden model on both simulators, and
not blind: a corrupted weights file and a mutated core are caught. ``make regress-mnist`` runs it at scale."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qlif.golden.spec import reference
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import Layer, Model
from qlif.sim import mutants
from qlif.sim import regress as r
from qlif.sim.regress import regress, runtime_weights_verilog

T = 4
LANES = 4


def _model(seed: int = 7) -> Model:
    """Two layers with partial last groups at P = 4 (G = 4 and 2), 4-bit weights."""
    rng = np.random.default_rng(seed)
    return Model(timesteps=T, layers=(
        Layer(rng.integers(-8, 8, size=(24, 13)), 4, 10, 6, 2, "subtract"),
        Layer(rng.integers(-8, 8, size=(13, 5)), 4, 8, 3, None, "zero"),
    ))


def _stimuli(samples: int = 6) -> np.ndarray:
    return (np.random.default_rng(1).random((samples, T, 24)) < 0.35).astype(np.uint8)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """One build folder for the module: the corrupted weights reuse the clean run's Verilator build."""
    return tmp_path_factory.mktemp("regress")


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_regress_equals_golden(simulator, builds):
    model, x = _model(), _stimuli()
    expected = reference.run(model, x, lanes=LANES)
    assert expected.spikes[1].any() and expected.spikes[0].mean() < 0.9     # neither dead nor saturated
    result = regress(model, x, lanes=LANES, simulator=simulator, jobs=2, chunk=4, build_dir=builds)
    assert result.mismatch is None
    assert np.array_equal(result.rtl_prediction, expected.prediction)
    assert result.steps_cycles == int(expected.cycles.sum())
    assert result.clocks > result.steps_cycles


def test_build_does_not_depend_on_the_weights():
    model = _model()
    other = replace(model, layers=tuple(replace(layer, weights=-layer.weights.clip(-7, 7)) for layer in model.layers))
    text = runtime_weights_verilog(model, lanes=LANES)
    assert text == runtime_weights_verilog(other, lanes=LANES)
    assert "syn[0] =" not in text and " syn [" in text           # memories declared, never initialised


def test_corrupted_weights_are_caught(builds):
    model, x = _model(), _stimuli()
    # One weight of an input that spikes in sample 0, step 0 (so its neuron's membrane must change).
    j = int(np.flatnonzero(x[0, 0])[0])
    w = model.layers[0].weights.copy()
    w[j, 3] = 7 if w[j, 3] != 7 else -8
    corrupt = replace(model, layers=(replace(model.layers[0], weights=w), model.layers[1]))
    result = regress(model, x, lanes=LANES, simulator="verilator", jobs=1, build_dir=builds, weights=corrupt)
    assert result.build.seconds == 0                             # the clean run's build: weights are not in it
    assert result.mismatch is not None and result.mismatch.startswith("sample 0, t 0, layer 0, neuron 3: membrane")


def test_mutated_core_is_caught(tmp_path):
    undo = mutants.apply("spike-ge")
    try:
        result = regress(_model(), _stimuli(), lanes=LANES, simulator="icarus", jobs=1, build_dir=tmp_path)
    finally:
        undo()
    assert result.mismatch is not None and ("spike expected" in result.mismatch or "membrane" in result.mismatch)


def test_missing_or_undefined_output_is_a_failure(builds):
    """The reader refuses a run that stopped early (a line short) or wrote an undefined (x) value."""
    from qlif.sim.regress import _read_shard

    model, x = _model(), _stimuli(2)
    result = regress(model, x, lanes=LANES, simulator="icarus", jobs=1, build_dir=builds, keep=True)
    assert result.mismatch is None
    run = next(p for p in (result.build.folder).glob("run-*/s000000") if (p / "trace.hex").exists())
    assert _read_shard(model, LANES, len(x), run).problem is None
    steps = (run / "steps.hex").read_text().splitlines(keepends=True)
    (run / "steps.hex").write_text("".join(steps[:-1]))
    assert "step_done came" in _read_shard(model, LANES, len(x), run).problem
    (run / "steps.hex").write_text("".join(steps))
    trace = (run / "trace.hex").read_text()
    (run / "trace.hex").write_text(trace[:-3] + "x" + trace[-2:])
    with pytest.raises(ValueError, match="not a defined hex value"):
        _read_shard(model, LANES, len(x), run)


def test_cached_build_skips_the_icarus_rewrite(monkeypatch):
    """The cache key is the generated text: a second build of the same shape finds the first without
    running Yosys' rewrite again; the rewrite works inside the build tree (YoWASP sees no other)."""
    BUILD_ROOT.mkdir(exist_ok=True)
    where = Path(tempfile.mkdtemp(prefix="test-regress-", dir=BUILD_ROOT))
    try:
        first = r.build(_model(), lanes=LANES, simulator="icarus", build_dir=where)
        assert first.seconds > 0 and first.folder.is_relative_to(where)

        def rewrite(*args, **kwargs):
            raise AssertionError("the core was rewritten for a build that is cached")

        monkeypatch.setattr(r, "icarus_verilog", rewrite)
        again = r.build(_model(), lanes=LANES, simulator="icarus", build_dir=where)
        assert (again.folder, again.seconds) == (first.folder, 0.0)
        assert sorted(p.name for p in (where / "icarus").iterdir()) == sorted([first.folder.name,
                                                                               f"{first.folder.name}.lock"])
    finally:
        shutil.rmtree(where, ignore_errors=True)
