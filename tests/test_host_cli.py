"""``qlif run``: the whole host flow against the software board (``--port emu://``), and its errors.

The software board (:mod:`qlif.boards.host.emulator`) answers exactly as the RTL does (the cocotb fuzz campaign
holds the RTL to it byte for byte), so these runs exercise the real command line, port opening, driver,
window, retries and output files without hardware.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from qlif.cli import main
from qlif.golden.spec.model import save_model
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import run


@pytest.fixture
def files(tmp_path):
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    save_model(model, tmp_path / "m.json")
    save_model(random_model([16, 8, 4], timesteps=4, seed=4), tmp_path / "other.json")
    x = (np.random.default_rng(4).random((20, 4, 16)) < 0.3).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    golden = run(model, x, lanes=4)
    labels = golden.prediction.copy()
    labels[:5] = (labels[:5] + 1) % 4             # 75 % right
    np.save(tmp_path / "y.npy", labels)
    return tmp_path, golden


def _run(tmp, *args, port="emu://"):
    return main(["run", str(tmp / "m.json"), "--port", port, "--inputs", str(tmp / "x.npy"), "--quiet", *args])


def test_run_classifies_and_writes_results(files, capsys):
    tmp, golden = files
    assert _run(tmp, "--labels", str(tmp / "y.npy"), "--out", str(tmp / "r.npz")) == 0
    out = capsys.readouterr().out
    assert "predictions equal the integer model on 20/20 samples" in out
    assert "core cycles the cycle model on 20/20" in out
    assert "accuracy 75.00% (15/20)" in out
    r = np.load(tmp / "r.npz")
    assert r["prediction"].tolist() == golden.prediction.tolist()
    assert r["cycles"].tolist() == golden.cycles.sum(axis=1).tolist()
    assert r["counts"].tolist() == golden.spikes[-1].sum(axis=1).tolist()
    assert r["wake"].all()                        # every class wakes by default


def test_run_recovers_from_line_noise(files, capsys):
    tmp, golden = files
    assert _run(tmp, "--out", str(tmp / "r.npz"), "--retries", "8", port="emu://?noise=0.003&seed=5") == 0
    captured = capsys.readouterr()
    assert "20/20" in captured.out and "sent again after line errors" in captured.err
    assert np.load(tmp / "r.npz")["prediction"].tolist() == golden.prediction.tolist()


@pytest.mark.parametrize("args, port, words", [
    (["--labels", "LABELS_BAD"], "emu://", "labels must be an integer array [20]"),
    (["--inputs", "X_BAD"], "emu://", "does not match the model"),
    ([], "/dev/qlif-no-such-port", "cannot open port /dev/qlif-no-such-port: No such file or directory"),
    ([], "emu://?lanes=3", "lanes must be one of"),
    (["--baud", "9600"], "emu://?model=/nonexistent.json", "cannot be read"),
])
def test_bad_input_is_one_line_exit_2_no_output(files, capsys, args, port, words):
    tmp, _ = files
    np.save(tmp / "labels_bad.npy", np.zeros(3, np.int64))
    np.save(tmp / "x_bad.npy", np.zeros((2, 4, 15), np.uint8))
    args = [a.replace("LABELS_BAD", str(tmp / "labels_bad.npy")).replace("X_BAD", str(tmp / "x_bad.npy"))
            for a in args]
    assert _run(tmp, *args, "--out", str(tmp / "r.npz"), port=port) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1
    assert not (tmp / "r.npz").exists()


@pytest.mark.parametrize("port, words", [
    ("emu://?model=OTHER", "the board runs another model"),
    ("loop://", "no reply from the board"),                        # an echo is no reply
    ("emu://?noise=0.5&seed=1", "the board did not answer STATUS"),
])
def test_link_failures_are_one_line_exit_1(files, capsys, port, words):
    tmp, _ = files
    port = port.replace("OTHER", str(tmp / "other.json"))
    assert _run(tmp, "--out", str(tmp / "r.npz"), "--timeout", "0.2", port=port) == 1
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1 and err.startswith("qlif: error:")
    assert not (tmp / "r.npz").exists()


def test_no_traceback_from_the_command(files):
    tmp, _ = files
    proc = subprocess.run([sys.executable, "-m", "qlif.cli", "run", str(tmp / "m.json"), "--port", "/dev/qlif-nope",
                           "--inputs", str(tmp / "x.npy")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "qlif: error: cannot open port /dev/qlif-nope: No such file or directory"
