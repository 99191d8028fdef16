"""The data sets qlif trains and evaluates on, loaded by name into a :class:`~qlif.golden.data.split.Split`.

The default data set is scikit-learn's ``load_digits`` (1797 handwritten digits, 8x8 pixels with
intensities 0..16, shipped inside scikit-learn, so nothing is downloaded). The train/test split is a
fixed, stratified split seeded by ``seed``; the same seed always gives the same split. MNIST comes from
IDX files (:mod:`qlif.golden.data.mnist`). Images become spike stimuli through the rate coding of
:mod:`qlif.golden.spec.coding`.
"""

from __future__ import annotations

import numpy as np

from qlif.golden.data.mnist import load_mnist_split
from qlif.golden.data.split import DataError, Split
from qlif.golden.spec.coding import DIGITS_MAX

__all__ = ["DATASETS", "DATASET_INPUTS", "load_digits_split", "load_split"]


#: The data sets qlif trains and evaluates on: the embedded 8x8 digits, and MNIST from IDX files.
DATASETS = ("digits", "mnist")
#: Inputs per sample of each data set: 8x8 and 28x28 pixels.
DATASET_INPUTS = {"digits": 64, "mnist": 784}


def load_digits_split(seed: int = 0, test_fraction: float = 0.25) -> Split:
    """Load scikit-learn's 8x8 digits and split them into train and test sets.

    Parameters
    ----------
    seed : int
        Seed of the split (``train_test_split(random_state=seed)``); the split is a pure function of
        ``seed`` and ``test_fraction``.
    test_fraction : float
        Fraction of the 1797 samples held out for test, stratified by class. The default 0.25 gives
        450 test and 1347 train samples.

    Returns
    -------
    Split
        64 inputs per sample, intensities ``pixel / 16`` in [0, 1].
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, not {test_fraction!r}")
    # Imported here: scikit-learn is slow to import and only this function needs it.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / DIGITS_MAX).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)


def load_split(dataset: str = "digits", *, data_dir=None, seed: int = 0, test_fraction: float = 0.25,
               train_count: int | None = None, test_count: int | None = None) -> Split:
    """Load a data set by name: ``"digits"`` (embedded) or ``"mnist"`` (IDX files in ``data_dir``).

    ``seed`` and ``test_fraction`` choose the digits split; MNIST has its standard split (60000 train,
    10000 test). ``train_count``/``test_count`` keep only the first samples of each part.
    Raises ``ValueError`` (:class:`qlif.golden.data.split.DataError` for data files) naming what is wrong.
    """
    if dataset == "digits":
        split = load_digits_split(seed, test_fraction)
        if train_count is not None or test_count is not None:
            split = Split(split.x_train[:train_count], split.y_train[:train_count],
                          split.x_test[:test_count], split.y_test[:test_count])
        return split
    if dataset == "mnist":
        if data_dir is None:
            raise DataError("the mnist data set needs a data folder (--data-dir) with its IDX files")
        return load_mnist_split(data_dir, train_count=train_count, test_count=test_count)
    raise ValueError(f"dataset must be one of {', '.join(DATASETS)}, not {dataset!r}")
