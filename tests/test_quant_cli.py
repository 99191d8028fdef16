"""Quantization commands: bad methods, bit-widths and data folders are one line, exit 2, no output."""

import re

import numpy as np
import pytest

from qlif.cli import main
from qlif.golden.data.mnist import MNIST_FILES, write_idx
from qlif.golden.spec.model import load_model
from qlif.golden.training.checkpoint import save_checkpoint
from qlif.golden.training.train import SpikingMLP, TrainConfig


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "float.pt"
    save_checkpoint(SpikingMLP(64, 10, TrainConfig(hidden=(8,), timesteps=4)), path)
    return path


@pytest.fixture(scope="module")
def qat_ckpt(tmp_path_factory):
    from qlif.golden.training.qat import QATConfig, QuantSpikingMLP

    path = tmp_path_factory.mktemp("ckpt") / "lsq.pt"
    save_checkpoint(QuantSpikingMLP(64, 10, TrainConfig(hidden=(8,), timesteps=4), QATConfig(method="lsq")), path)
    return path


def _fails(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("qlif: error:"), err
    assert words in err, err


@pytest.mark.parametrize("argv, words", [
    (["quantize", "{ckpt}", "--method", "xnor", "--out", "{out}"], "--method: unknown value 'xnor'"),
    (["quantize", "{ckpt}", "--method", "ptq", "--weight-bits", "3", "--out", "{out}"], "ptq gives 1 or 2 or 4 or 8"),
    (["quantize", "{ckpt}", "--method", "lsq", "--out", "{out}"], "qlif train --qat lsq"),
    (["quantize", "{ckpt}", "--membrane-bits", "17", "--out", "{out}"], "--membrane-bits must be 2..16"),
    (["quantize", "{missing}", "--out", "{out}"], "no such checkpoint file"),
    (["quantize", "{ckpt}", "--percentile", "0", "--out", "{out}"], "--percentile must lie in (0, 100], not 0"),
    (["quantize", "{ckpt}", "--percentile", "100.5", "--out", "{out}"], "--percentile must lie in (0, 100], not 100.5"),
    (["quantize", "{qat}", "--percentile", "99", "--out", "{out}"], "--percentile belongs to ptq"),
    (["train", "--qat", "xnor", "--out", "{out}"], "--qat: unknown value 'xnor'"),
    (["train", "--qat", "lsq", "--weight-bits", "1", "--out", "{out}"], "lsq gives 2 or 4 or 8-bit weights, not 1"),
    (["train", "--qat", "binary", "--weight-bits", "4", "--out", "{out}"], "binary gives 1-bit weights, not 4"),
    (["train", "--qat", "ternary", "--weight-bits", "8", "--out", "{out}"], "ternary gives 2-bit weights, not 8"),
    (["train", "--qat", "ternary", "--teacher", "{missing}", "--out", "{out}"], "no such checkpoint file"),
    (["train", "--weight-bits", "4", "--out", "{out}"], "belong to --qat"),
    (["train", "--qat", "lsq", "--rate-target", "0.1", "--out", "{out}"], "--rate-target belongs to --qat binary"),
    (["train", "--qat", "binary", "--rate-target", "2", "--out", "{out}"], "rate target must lie in [0, 1]"),
    (["train", "--max-rate", "3/2", "--out", "{out}"], "max rate must lie in (0, 1]"),
    (["train", "--max-rate", "1/100000", "--out", "{out}"], "give an exact fraction such as 1/8"),
    (["train", "--qat", "ternary", "--teacher", "{ckpt}", "--max-rate", "1/8", "--out", "{out}"],
     "trains at the teacher's coding (T = 4, max rate 1), not T = 4, max rate 1/8"),
    (["train", "--qat", "ternary", "--teacher", "{ckpt}", "--timesteps", "8", "--out", "{out}"],
     "not T = 8, max rate 1"),
    (["stimuli", "--timesteps", "8", "--max-rate", "2", "--out", "{out}"], "--max-rate: max rate must lie in"),
    (["train", "--dataset", "cifar", "--out", "{out}"], "--dataset: unknown value 'cifar'"),
    (["train", "--dataset", "mnist", "--out", "{out}"], "--data-dir"),
    (["train", "--dataset", "mnist", "--data-dir", "{missing}", "--out", "{out}"], "no such data folder"),
    (["sweep-accuracy", "--methods", "ptq,xnor", "--out-dir", "{out}"], "--methods: unknown value 'xnor'"),
    (["sweep-accuracy", "--weight-bits", "3", "--out-dir", "{out}"], "--weight-bits: 3 is not one of"),
    (["sweep-accuracy", "--datasets", "mnist", "--out-dir", "{out}"], "--data-dir"),
])
def test_bad_arguments_are_one_line_exit_2(tmp_path, capsys, ckpt, qat_ckpt, argv, words):
    out = tmp_path / "out.json"
    argv = [a.format(ckpt=ckpt, qat=qat_ckpt, out=out, missing=tmp_path / "missing") for a in argv]
    _fails(capsys, argv, words)
    assert not out.exists()


def test_truncated_mnist_is_one_line_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for (split, kind), name in MNIST_FILES.items():
        n = 6 if split == "train" else 4
        a = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) if kind == "images" else np.zeros(n, np.uint8)
        write_idx(tmp_path / f"{name}.gz", a)
    raw = (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) - 40])
    _fails(capsys, ["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x.pt")],
           "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "x.pt").exists()


def test_quantize_cli_ptq_and_eval(tmp_path, capsys, ckpt):
    out = tmp_path / "m.json"
    assert main(["quantize", str(ckpt), "--method", "ptq", "--weight-bits", "2", "--membrane-bits", "6",
                 "--out", str(out)]) == 0
    assert "ptq" in capsys.readouterr().out and out.is_file()
    assert main(["eval", str(out)]) == 0
    assert "integer" in capsys.readouterr().out
    _fails(capsys, ["eval", str(out), "--dataset", "mnist", "--data-dir", str(tmp_path)], "MNIST")


def test_binary_cli_trains_at_another_coding_than_its_teacher(tmp_path, capsys, ckpt):
    # The teacher (T = 4, r = 1) only gives the starting weights; the checkpoint, the export and `qlif eval`
    # use the coding asked for.
    out, model = tmp_path / "bin.pt", tmp_path / "bin.json"
    assert main(["train", "--qat", "binary", "--membrane-bits", "4", "--teacher", str(ckpt), "--timesteps", "8",
                 "--max-rate", "2/4", "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trained at T = 4, max rate 1; this network trains at T = 8, max rate 1/2" in printed, printed
    assert "train: quantization-aware (binary, the integer model's spikes)" in printed
    assert not re.search(r"float \d", printed), printed
    assert main(["quantize", str(out), "--out", str(model)]) == 0
    saved = load_model(model)
    assert saved.timesteps == 8 and saved.metadata["max_rate"] == "1/2"
    assert main(["eval", str(model)]) == 0


def test_quantize_cli_calibrates_the_clips_by_default_and_fixes_them_on_request(tmp_path, capsys, ckpt):
    from qlif.golden.training.quantize import CLIP_CRITERION

    out = tmp_path / "cal.json"
    assert main(["quantize", str(ckpt), "--membrane-bits", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    meta = load_model(out).metadata
    assert meta["calibration"]["criterion"] == CLIP_CRITERION and "percentile" not in meta
    clips = "/".join(f"{p:g}" for p in meta["clip_percentiles"])
    assert f"clip percentiles (calibrated) {clips}; calibration data: the training split (" in printed, printed
    assert main(["quantize", str(ckpt), "--membrane-bits", "8", "--percentile", "99", "--out", str(out)]) == 0
    assert "clip percentiles (fixed) 99/99" in capsys.readouterr().out
    meta = load_model(out).metadata
    assert meta["percentile"] == 99 and meta["clip_percentiles"] == [99, 99] and meta["calibration"] == "none"
