"""The train/test split every data set loads into, and the error a data set that cannot be used raises."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Split", "DataError", "holdout_indices"]


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

    def holdout_indices(self, holdout: int) -> range:
        """:func:`holdout_indices` of this split's training part."""
        return holdout_indices(len(self.y_train), holdout)

    def without_holdout(self, holdout: int) -> Split:
        """This split less the held-out slice of :meth:`holdout_indices` (the test part unchanged)."""
        keep = self.holdout_indices(holdout).start
        return Split(self.x_train[:keep], self.y_train[:keep], self.x_test, self.y_test)


def holdout_indices(n_train: int, holdout: int) -> range:
    """The training-split indices of a held-out calibration slice of ``holdout`` samples: the last ones.

    The one home of where the slice lies. Taking the end of the training split (after the data set's own
    deterministic order: the digits' seeded split, MNIST's file order) keeps the samples a network trains
    on a prefix of the split and names the slice by one number. ``holdout`` is 0 (none) up to
    ``n_train - 1``; anything else is a ``ValueError`` naming the range.
    """
    if not isinstance(holdout, int) or isinstance(holdout, bool) or not 0 <= holdout < n_train:
        raise ValueError(f"holdout must be an integer 0..{n_train - 1} (the training split has {n_train} "
                         f"samples), not {holdout!r}")
    return range(n_train - holdout, n_train)
