"""MNIST from the standard IDX files (gzipped or not), with errors that name the file and what is wrong.

The four files of the MNIST distribution are looked up in ``data_dir``, each as ``NAME`` or ``NAME.gz``::

    train-images-idx3-ubyte   60000 x 28 x 28 pixels 0..255
    train-labels-idx1-ubyte   60000 labels 0..9
    t10k-images-idx3-ubyte    10000 x 28 x 28
    t10k-labels-idx1-ubyte    10000 labels

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte, the only type MNIST uses), the number of
dimensions, then each dimension as a big-endian uint32, then the data in row-major order. A file whose
size does not match its header (a truncated download), a corrupt gzip stream, a wrong magic number or
labels outside 0..9 raise :class:`DataError`. The split is the standard one (60000 train, 10000 test);
pixels are flattened row-major into 784 inputs and scaled to ``pixel / 255`` (the rate coding of
:func:`qlif.golden.spec.coding.encode` computes ``floor(t * pixel / 255)`` exactly in integers).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from qlif.golden.data.split import DataError, Split
from qlif.golden.spec.coding import MNIST_MAX

__all__ = ["MNIST_FILES", "read_idx", "write_idx", "find_mnist_file", "load_mnist_split"]


#: The file names of the standard distribution (without ``.gz``), keyed by (split, kind).
MNIST_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

_UBYTE = 0x08


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzipped when its name ends in ``.gz``).

    Returns
    -------
    numpy.ndarray
        uint8 array of the shape the header gives.

    Raises
    ------
    DataError
        The file cannot be read, is not a gzip stream although named ``.gz``, has a bad header, or
        holds fewer or more bytes than its header promises.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (magic bytes {raw[:4].hex()}, expected 0000 08 0n)")
    if raw[2] != _UBYTE:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned byte (0x08), the type MNIST uses")
    ndim = raw[3]
    if ndim < 1:
        raise DataError(f"{path}: IDX header gives {ndim} dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, {header} needed for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        what = "truncated" if len(raw) - header < size else "longer than its header says"
        raise DataError(f"{path}: {what}: header {'x'.join(map(str, shape))} needs {size} data bytes, "
                        f"the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzipped when the name ends in ``.gz``); used by tests and tools."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX arrays here are uint8, not {array.dtype}")
    header = bytes([0, 0, _UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


def find_mnist_file(data_dir: str | os.PathLike, split: str, kind: str) -> Path:
    """The path of one MNIST file in ``data_dir``: ``NAME`` if present, else ``NAME.gz``."""
    data_dir = Path(data_dir)
    name = MNIST_FILES[(split, kind)]
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{data_dir}: no {name} or {name}.gz (the MNIST {split} {kind})")


def _load(data_dir: Path, split: str, count: int | None) -> tuple[np.ndarray, np.ndarray]:
    img_path = find_mnist_file(data_dir, split, "images")
    lab_path = find_mnist_file(data_dir, split, "labels")
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3:
        raise DataError(f"{img_path}: images must have 3 dimensions (count, rows, columns), not {images.ndim}")
    if labels.ndim != 1:
        raise DataError(f"{lab_path}: labels must have 1 dimension, not {labels.ndim}")
    if len(images) != len(labels):
        raise DataError(f"{img_path}: {len(images)} images but {lab_path.name} has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lab_path}: label {int(labels.max())} is not a digit 0..9")
    if count is not None:
        images, labels = images[:count], labels[:count]
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(MNIST_MAX)
    return x, labels.astype(np.int64)


def load_mnist_split(data_dir: str | os.PathLike, *, train_count: int | None = None,
                     test_count: int | None = None):
    """Load MNIST's standard train/test split from the IDX files in ``data_dir``.

    Parameters
    ----------
    data_dir : path
        Folder holding the four IDX files, gzipped or not.
    train_count, test_count : int, optional
        Keep only the first samples of each split (smaller runs, tests).

    Returns
    -------
    qlif.golden.data.split.Split
        784 inputs per sample, intensities ``pixel / 255`` (float32) in [0, 1].
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such data folder (pass --data-dir with the MNIST IDX files)")
    x_tr, y_tr = _load(data_dir, "train", train_count)
    x_te, y_te = _load(data_dir, "test", test_count)
    if x_tr.shape[1] != x_te.shape[1]:
        raise DataError(f"{data_dir}: train images have {x_tr.shape[1]} pixels, test images {x_te.shape[1]}")
    return Split(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
