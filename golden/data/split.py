"""The train/test split every data set loads into, and the error a data set that cannot be used raises."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "DataError"]


class DataError(ValueError):
    """A data set that cannot be used (missing folder or file, bad or truncated IDX); names the file."""


@dataclass(frozen=True)
class Split:
    """A train/test split of images scaled to [0, 1].

    Members
    -------
    x_train, x_test : numpy.ndarray
        float32 [S, n_in] pixel intensities in [0, 1] (row-major flattened images).
    y_train, y_test : numpy.ndarray
        int64 [S] class labels.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def n_in(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1
