"""``--frames`` of ``qlif golden``, ``qlif sim`` and ``qlif stimuli``: frames give the golden model of
their on-chip encoding, and every bad frames file is a one-line error, exit status 2, no output."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from test_encoder import _frames, _small_model

from qlif.cli import main
from qlif.golden.spec.coding import encode
from qlif.golden.spec.model import save_model
from qlif.golden.spec.reference import frame_inputs, run


@pytest.fixture
def model_file(tmp_path):
    model = _small_model()
    save_model(model, tmp_path / "m.json")
    return tmp_path, model


def test_golden_frames_equal_the_encoded_inputs(model_file):
    tmp, model = model_file
    frames = _frames(np.random.default_rng(1), 4, model.n_in, 255)
    np.save(tmp / "f.npy", frames)
    np.save(tmp / "x.npy", encode(frames / 255, model.timesteps, max_rate="3/16"))
    for kind, path in (("--frames", "f.npy"), ("--inputs", "x.npy")):
        assert main(["golden", str(tmp / "m.json"), kind, str(tmp / path), "--out", str(tmp / f"{path}.npz")]) == 0
    a, b = np.load(tmp / "f.npy.npz"), np.load(tmp / "x.npy.npz")
    assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert a["layer0_spikes"].any()


def test_sim_frames_matches_golden(model_file):
    # The design of tests/test_encoder.py::test_encoded_network_verilog: its Icarus build is reused.
    tmp, model = model_file
    frames = _frames(np.random.default_rng(2), 2, model.n_in, 255)
    np.save(tmp / "f.npy", frames)
    assert main(["sim", str(tmp / "m.json"), "--frames", str(tmp / "f.npy"), "--lanes", "2",
                 "--out", str(tmp / "s.npz")]) == 0
    got, want = np.load(tmp / "s.npz"), run(model, frame_inputs(model, frames), lanes=2).to_npz_dict()
    assert all(np.array_equal(got[k], want[k]) for k in want)


def test_stimuli_frames_are_the_pixels(tmp_path):
    assert main(["stimuli", "--frames", "--count", "6", "--out", str(tmp_path / "f.npy")]) == 0
    assert main(["stimuli", "--timesteps", "9", "--count", "6", "--out", str(tmp_path / "x.npy")]) == 0
    f, x = np.load(tmp_path / "f.npy"), np.load(tmp_path / "x.npy")
    assert f.dtype == np.uint8 and f.shape == (6, 64) and f.max() == 16
    assert np.array_equal(encode(f / 16, 9), x)


@pytest.mark.parametrize("frames, words", [
    (np.zeros((2, 24), np.float64), "frames: must be an integer (uint8) array, not dtype float64"),
    (np.zeros((2, 23), np.uint8), "frames: must have shape [samples, 24]"),
    (np.zeros((2, 12, 24), np.uint8), "frames: must be a 2-D array"),
])
def test_bad_frames_are_one_line_exit_2_no_output(model_file, frames, words, capsys):
    tmp, _ = model_file
    np.save(tmp / "bad.npy", frames)
    for command in ("golden", "sim"):
        assert main([command, str(tmp / "m.json"), "--frames", str(tmp / "bad.npy"), "--out",
                      str(tmp / "out.npz")]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0]
        assert not list(tmp.glob("*out.npz*"))


def test_bad_frames_from_the_shell(model_file):
    # The process as a user runs it: one line on stderr, no traceback, exit status 2.
    tmp, _ = model_file
    np.save(tmp / "bad.npy", np.zeros((2, 24), np.float32))
    proc = subprocess.run([sys.executable, "-m", "qlif.cli", "golden", str(tmp / "m.json"), "--frames",
                           str(tmp / "bad.npy"), "--out", str(tmp / "out.npz")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["qlif: error: frames: must be an integer (uint8) array, not dtype "
                                                "float32"]


def test_frame_values_above_the_levels(tmp_path, capsys):
    model = _small_model()
    save_model(type(model)(timesteps=model.timesteps, layers=model.layers, metadata={"dataset": "digits"}),
               tmp_path / "m.json")
    frames = np.full((1, model.n_in), 16, np.uint8)
    frames[0, 7] = 17
    np.save(tmp_path / "f.npy", frames)
    assert main(["golden", str(tmp_path / "m.json"), "--frames", str(tmp_path / "f.npy"),
                 "--out", str(tmp_path / "out.npz")]) == 2
    assert "frames: sample 0, input 7: value 17 is outside 0..16" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()


def test_inputs_and_frames_exclude_each_other(model_file):
    tmp, _ = model_file
    with pytest.raises(SystemExit) as e:
        main(["golden", str(tmp / "m.json"), "--out", str(tmp / "g.npz")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["golden", str(tmp / "m.json"), "--frames", "a.npy", "--inputs", "b.npy", "--out", "g.npz"])
    assert e.value.code == 2
