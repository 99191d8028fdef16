"""The MNIST IDX reader on small files the tests write, its errors, and the exact /255 rate coding."""

import gzip
from fractions import Fraction
from math import floor
from pathlib import Path

import numpy as np
import pytest

from qlif.golden.data.datasets import load_split
from qlif.golden.data.mnist import MNIST_FILES, load_mnist_split, read_idx, write_idx
from qlif.golden.data.split import DataError
from qlif.golden.spec.coding import encode

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _fake_mnist(folder: Path, *, gz: bool, n_train=6, n_test=4, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        ("train", "images"): rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        ("train", "labels"): rng.integers(0, 10, n_train, dtype=np.uint8),
        ("test", "images"): rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        ("test", "labels"): rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for key, a in arrays.items():
        write_idx(folder / (MNIST_FILES[key] + (".gz" if gz else "")), a)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_reads_idx_files_gzipped_or_not(tmp_path, gz):
    arrays = _fake_mnist(tmp_path, gz=gz)
    split = load_mnist_split(tmp_path)
    assert split.x_train.shape == (6, 784) and split.x_test.shape == (4, 784) and split.n_in == 784
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int64
    assert np.array_equal(np.round(split.x_train * 255).astype(np.uint8),
                          arrays[("train", "images")].reshape(6, 784))     # row-major flattening
    assert split.y_test.tolist() == arrays[("test", "labels")].tolist()
    part = load_split("mnist", data_dir=tmp_path, train_count=2, test_count=1)
    assert part.x_train.shape == (2, 784) and part.x_test.shape == (1, 784)


def test_idx_header_is_the_documented_layout(tmp_path):
    write_idx(tmp_path / "a", np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert (tmp_path / "a").read_bytes() == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1, 2, 3, 4, 5])
    assert read_idx(tmp_path / "a").tolist() == [[0, 1, 2], [3, 4, 5]]


def _error(path) -> str:
    with pytest.raises(DataError) as e:
        read_idx(path)
    return str(e.value)


def test_bad_and_truncated_idx_files_are_clear_errors(tmp_path):
    write_idx(tmp_path / "ok", np.zeros((3, 4, 4), dtype=np.uint8))
    raw = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(raw[:-5])
    assert "truncated" in _error(tmp_path / "short") and "3x4x4 needs 48 data bytes" in _error(tmp_path / "short")
    (tmp_path / "long").write_bytes(raw + b"\0")
    assert "longer than its header" in _error(tmp_path / "long")
    (tmp_path / "magic").write_bytes(b"\x1f\x8b" + raw[2:])
    assert "not an IDX file" in _error(tmp_path / "magic")
    (tmp_path / "type").write_bytes(raw[:2] + b"\x0d" + raw[3:])
    assert "not unsigned byte" in _error(tmp_path / "type")
    (tmp_path / "header").write_bytes(raw[:7])
    assert "truncated IDX header" in _error(tmp_path / "header")
    (tmp_path / "tiny").write_bytes(b"\0")
    assert "too short" in _error(tmp_path / "tiny")
    gz = gzip.compress(raw)
    (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
    assert "gzip" in _error(tmp_path / "cut.gz")
    (tmp_path / "plain.gz").write_bytes(raw)
    assert "gzip" in _error(tmp_path / "plain.gz")
    assert "no such file" in _error(tmp_path / "missing")


def test_missing_folder_files_and_inconsistent_sets(tmp_path):
    with pytest.raises(DataError, match="no such data folder"):
        load_mnist_split(tmp_path / "nowhere")
    with pytest.raises(DataError, match="--data-dir"):
        load_split("mnist")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_split("cifar")
    _fake_mnist(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist_split(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(DataError, match="4 images but .* has 3 labels"):
        load_mnist_split(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 10, 3], dtype=np.uint8))
    with pytest.raises(DataError, match="label 10 is not a digit"):
        load_mnist_split(tmp_path)


def test_mnist_rate_coding_is_exact_integer_arithmetic():
    levels = np.arange(256, dtype=np.uint8)
    x = encode((levels.astype(np.float32) / np.float32(255))[None, :], 16)
    for pixel in range(256):
        p = Fraction(pixel, 255)
        want = [int(floor((t + 1) * p) > floor(t * p)) for t in range(16)]
        assert x[0, :, pixel].tolist() == want, pixel
        assert x[0, :, pixel].sum() == floor(16 * p)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"real MNIST not found at {MNIST_DIR}")
def test_real_mnist_loads():
    split = load_mnist_split(MNIST_DIR)
    assert split.x_train.shape == (60000, 784) and split.x_test.shape == (10000, 784)
    assert np.bincount(split.y_test).tolist()[:3] == [980, 1135, 1032]
    assert split.x_train.max() == 1.0 and split.x_train.min() == 0.0


def test_stimuli_command_codes_mnist_with_the_max_rate(tmp_path, capsys):
    # `qlif stimuli --dataset mnist` writes what `qlif golden`/`qlif sim` take for an MNIST model: the first
    # --count samples of the split, coded with --timesteps and --max-rate exactly as evaluate() codes them.
    from qlif.cli import main

    arrays = _fake_mnist(tmp_path, gz=True)
    out, labels = tmp_path / "x.npy", tmp_path / "y.npy"
    assert main(["stimuli", "--dataset", "mnist", "--data-dir", str(tmp_path), "--timesteps", "16",
                 "--max-rate", "1/4", "--count", "3", "--out", str(out), "--labels", str(labels)]) == 0
    assert "3 mnist samples (test split), T=16, max rate 1/4" in capsys.readouterr().out
    split = load_split("mnist", data_dir=tmp_path)
    assert np.array_equal(np.load(out), encode(split.x_test[:3], 16, max_rate="1/4"))
    assert np.load(labels).tolist() == arrays[("test", "labels")][:3].tolist()
    assert main(["stimuli", "--dataset", "mnist", "--timesteps", "8", "--out", str(out)]) == 2
    assert "--data-dir" in capsys.readouterr().err
