"""qlif sweep-accuracy: rows measured once and cached, resumed, reported with their commands and gaps."""

import csv
import json

import pytest

from qlif.golden.spec.model import load_model
from qlif.golden.training import sweep as sweep_mod
from qlif.golden.training.checkpoint import save_checkpoint
from qlif.golden.training.sweep import missing, sweep, write_results
from qlif.golden.training.train import TrainConfig, set_determinism, train

SMALL = TrainConfig(hidden=(16,), timesteps=4, epochs=3, lr=1e-2)


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory):
    set_determinism(0)
    net, history = train(SMALL, progress=False)
    path = tmp_path_factory.mktemp("sweep") / "float.pt"
    save_checkpoint(net, path, history=history)
    return path


def test_sweep_caches_resumes_and_reports(tmp_path, float_ckpt, monkeypatch):
    monkeypatch.setitem(sweep_mod.QAT_SCHEDULE, "digits", {"lsq": (1, 2e-3), "binary": (1, 2e-3)})
    grid = dict(datasets=("digits",), methods=("ptq", "binary"), weight_bits=(1, 4), membrane_bits=(8,))
    rows = sweep(**grid, work_dir=tmp_path, float_checkpoints={"digits": float_ckpt}, progress=False,
                 log=lambda *_: None)
    assert [(r.method, r.calibration, r.weight_bits, r.membrane_bits) for r in rows] == [
        ("ptq", "calibrated", 1, 8), ("ptq", "fixed 99.9", 1, 8), ("ptq", "calibrated", 4, 8),
        ("ptq", "fixed 99.9", 4, 8), ("binary", "", 1, 8)]
    for r in rows:
        model = load_model(r.commands[-1].split()[2])
        assert [layer.membrane_bits for layer in model.layers] == [8, 8]
        assert 0.0 <= r.integer_accuracy <= 1.0 and r.n_test == 450
        assert r.compression == pytest.approx(32 / r.weight_bits)
        assert (r.timesteps, r.max_rate) == (SMALL.timesteps, "1")
        assert (r.clip_percentiles is None) == (r.method != "ptq")
    # The calibrated row's command is the default of qlif quantize, the fixed one names its percentile.
    assert "--percentile" not in rows[0].commands[1] and "--percentile 99.9" in rows[1].commands[1]
    assert rows[1].clip_percentiles == [99.9, 99.9]
    assert "--rate-target 0.05" in rows[4].commands[1]
    # The given float network is used as it is: no command that would train over it.
    assert all(r.commands[0] == f"test -f {float_ckpt}" for r in rows)

    # A second run takes every row from the cache: nothing is trained or quantized again.
    def boom(*args, **kwargs):
        raise AssertionError("a cached row was measured again")

    monkeypatch.setattr(sweep_mod, "quantize", boom)
    monkeypatch.setattr("qlif.golden.training.qat.train_qat", boom)
    again = sweep(**grid, work_dir=tmp_path, float_checkpoints={"digits": float_ckpt}, progress=False,
                  log=lambda *_: None)
    assert [r.integer_accuracy for r in again] == [r.integer_accuracy for r in rows]

    # --cached-only over a larger grid: the cached rows, and the others named with their command.
    wider = dict(grid, methods=("ptq", "lsq", "binary"), weight_bits=(1, 2, 4), membrane_bits=(4, 8))
    cached = sweep(**wider, work_dir=tmp_path, cached_only=True, log=lambda *_: None)
    assert len(cached) == 5
    absent = {(j.method, j.calibration, j.weight_bits, j.membrane_bits) for j in missing(cached, **wider)}
    assert ("lsq", "", 2, 4) in absent and ("ptq", "calibrated", 4, 8) not in absent
    assert ("ptq", "fixed 99.9", 2, 8) in absent
    assert ("binary", "", 2, 4) not in absent                 # binary cannot do 2 bits: not part of the grid
    jobs = missing(cached, **wider)
    paths = write_results(cached, tmp_path / "out", absent=jobs)
    md = paths[1].read_text()
    assert "not run" in md and f"--float-checkpoint digits={float_ckpt} --methods lsq --weight-bits 2 " \
        "--membrane-bits 4" in md
    # A row's command writes its own one-row table aside, then rewrites the whole table from the cache.
    assert f"--membrane-bits 4 --out-dir {sweep_mod.PARTIAL_OUT} && {sweep_mod.REGENERATE}`" in md
    assert "qlif train --qat binary --weight-bits 1 --membrane-bits 8" in md
    with open(paths[0]) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 5 + len(jobs)
    assert [r["status"] for r in table].count("not run") == len(jobs)
    assert all(r["timesteps"] == "4" and r["max_rate"] == "1" for r in table)
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    # The rows at another coding are part of the grid with codings=True: not run, with their command.
    coded = [j for j in missing(cached, **dict(wider, datasets=("mnist",), methods=("binary",)), codings=True)
             if j.coding]
    assert [(j.coding[0], j.coding[1]) for j in coded] == [(64, "1/8"), (128, "1/16")]
    # ... of the grid only where its b and k are asked for (they are k = 4 rows)
    assert not [j for j in sweep_mod.jobs("mnist", methods=("binary",), weight_bits=(1,), membrane_bits=(8, 16),
                                          codings=True) if j.coding]
    md = write_results(cached, tmp_path / "out2", absent=coded)[1].read_text()
    assert "| binary | - | 1 | 128 | 1/16 |" in md and "--codings" in md


def test_sweeps_on_one_work_folder_keep_each_others_rows(tmp_path, float_ckpt):
    # Another sweep adds a row to the cache while this one measures (the log line comes after the measurement,
    # before the cache is written): both rows stay.
    cache = tmp_path / "digits" / "rows.json"
    other = {"dataset": "digits", "method": "lsq", "weight_bits": 2, "membrane_bits": 8}

    def another_sweep(line):
        if line.startswith("sweep: digits ptq-p99.9"):
            cache.write_text(json.dumps({**json.loads(cache.read_text()), "lsq-b2-k8": other}))

    sweep(datasets=("digits",), methods=("ptq",), weight_bits=(4,), membrane_bits=(8,), work_dir=tmp_path,
          float_checkpoints={"digits": float_ckpt}, progress=False, log=another_sweep)
    assert set(json.loads(cache.read_text())) == {"ptq-cal-b4-k8", "ptq-p99.9-b4-k8", "lsq-b2-k8"}
