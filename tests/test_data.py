"""The digits split is fixed by its seed and the rate coding is the documented formula, exactly."""

from fractions import Fraction
from math import floor

import numpy as np
import pytest

from qlif.golden.data.datasets import load_digits_split
from qlif.golden.spec.coding import DIGITS_MAX, encode, format_max_rate, input_phases, max_rate_of, parse_max_rate


def test_split_is_deterministic_and_stratified():
    a, b = load_digits_split(0), load_digits_split(0)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.x_train.shape == (1347, 64) and a.x_test.shape == (450, 64)
    assert a.n_in == 64 and a.n_classes == 10
    # Stratified: each class's share of the test set is within one sample of its share overall.
    y = np.concatenate([a.y_train, a.y_test])
    for c in range(10):
        assert abs((a.y_test == c).sum() - (y == c).sum() * 450 / 1797) <= 1
    other = load_digits_split(1)
    assert not np.array_equal(a.y_test, other.y_test)


def test_split_intensities_are_sixteenths_in_unit_range():
    split = load_digits_split(0)
    q = split.x_train * DIGITS_MAX
    assert split.x_train.min() == 0.0 and split.x_train.max() == 1.0
    assert np.array_equal(q, np.round(q))


@pytest.mark.parametrize("bad", [{"seed": -1}, {"seed": 1.5}, {"test_fraction": 0.0}, {"test_fraction": 1.0}])
def test_split_rejects_bad_arguments(bad):
    with pytest.raises(ValueError):
        load_digits_split(**bad)


@pytest.mark.parametrize("timesteps", [1, 5, 8, 16, 17])
def test_encode_is_the_documented_formula(timesteps):
    levels = np.arange(DIGITS_MAX + 1) / DIGITS_MAX
    x = encode(levels[None, :], timesteps)
    assert x.dtype == np.uint8 and x.shape == (1, timesteps, DIGITS_MAX + 1)
    for j, level in enumerate(range(DIGITS_MAX + 1)):
        p = Fraction(level, DIGITS_MAX)
        want = [int(floor((t + 1) * p) > floor(t * p)) for t in range(timesteps)]
        assert x[0, :, j].tolist() == want, f"p={p}"
        assert x[0, :, j].sum() == floor(timesteps * p)


def test_encode_spreads_spikes_evenly():
    x = encode(np.array([[5 / 16, 1.0, 0.0, 1 / 3]]), 16)
    assert x[0, :, 1].all() and not x[0, :, 2].any()
    # 5/16 over 16 steps: first spike at ceil(16/5) - 1 = 3, gaps of 3 or 4 steps.
    steps = np.flatnonzero(x[0, :, 0])
    assert steps[0] == 3 and set(np.diff(steps)) <= {3, 4}
    # A value that is not a sixteenth takes the float path and still gives floor(T p) spikes.
    assert x[0, :, 3].sum() == 5 and np.flatnonzero(x[0, :, 3]).tolist() == [2, 5, 8, 11, 14]


def test_encode_is_deterministic_and_batched():
    split = load_digits_split(0)
    a = encode(split.x_test, 16)
    assert np.array_equal(a, encode(split.x_test, 16))
    assert np.array_equal(a[7], encode(split.x_test[7], 16)[0])
    assert a.shape == (450, 16, 64)


@pytest.mark.parametrize("images, timesteps", [
    (np.array([[1.5]]), 4), (np.array([[-0.1]]), 4), (np.array([[np.nan]]), 4),
    (np.zeros((1, 2, 3)), 4), (np.zeros((1, 4)), 0), (np.zeros((1, 4)), 2.0),
])
def test_encode_rejects_bad_arguments(images, timesteps):
    with pytest.raises(ValueError):
        encode(images, timesteps)


# -- the maximum rate (rate coding spread over more steps) ------------------------------------------------

def _literal_phase(j: int, denominator: int) -> int:
    return (j * 2654435769 % 2 ** 32) * denominator // 2 ** 32


@pytest.mark.parametrize("rate, timesteps", [("1/8", 64), ("3/16", 20), ("1/3", 9), ("1", 7)])
def test_encode_with_max_rate_is_the_documented_formula(rate, timesteps):
    # Every MNIST level 0..255 (p = level / 255, float32 as the loader gives it) on its own input j.
    levels = np.arange(256)
    x = encode((levels.astype(np.float32) / np.float32(255))[None, :], timesteps, max_rate=rate)
    r = Fraction(rate)
    for j, level in enumerate(levels):
        f = Fraction(_literal_phase(j, r.denominator), r.denominator)
        pr = Fraction(int(level), 255) * r
        want = [int(floor((t + 1) * pr + f) > floor(t * pr + f)) for t in range(timesteps)]
        assert x[0, :, j].tolist() == want, f"level {level}, input {j}"
        assert x[0, :, j].sum() == floor(timesteps * pr + f)       # exact count
    # the digits' sixteenths take the integer path too
    d = encode((np.arange(17) / 16)[None, :], timesteps, max_rate=rate)
    for j in range(17):
        f = Fraction(_literal_phase(j, r.denominator), r.denominator)
        assert d[0, :, j].sum() == floor(timesteps * Fraction(j, 16) * r + f)


def test_default_max_rate_is_the_old_coding():
    split = load_digits_split(0)
    a = encode(split.x_test, 16)
    for same in (1, "1", Fraction(1), 1.0, " 1/1 "):
        assert np.array_equal(a, encode(split.x_test, 16, max_rate=same))
    assert not input_phases(784, 1).any()


def test_max_rate_spreads_the_same_spikes_over_more_steps():
    split = load_digits_split(0)
    base, spread = encode(split.x_test, 8), encode(split.x_test, 64, max_rate="1/8")
    assert np.array_equal(spread, encode(split.x_test, 64, max_rate=Fraction(1, 8)))    # deterministic
    # Per pixel floor(8 p + f) instead of floor(8 p): never fewer, at most one more spike.
    extra = spread.sum(axis=1, dtype=np.int64) - base.sum(axis=1, dtype=np.int64)
    assert extra.min() >= 0 and extra.max() <= 1
    # A full pixel fires once every 8 steps, at its phase; the phases spread the full pixels of a sample
    # over the 8 steps instead of all firing in the same one.
    full = encode(np.ones((1, 64)), 64, max_rate="1/8")[0]
    for j in range(64):
        assert np.flatnonzero(full[:, j]).tolist() == list(range(7 - _literal_phase(j, 8), 64, 8))
    assert full.sum(axis=1).max() <= 2 * full.sum(axis=1).mean()
    assert np.bincount(input_phases(784, 8)).min() >= 97


@pytest.mark.parametrize("bad", ["0", "2", "-1/8", "x", "1/0", 0.3, None, True, "1/100000"])
def test_max_rate_rejects_what_is_not_an_exact_fraction_in_0_1(bad):
    with pytest.raises(ValueError, match="max rate"):
        parse_max_rate(bad)
    with pytest.raises(ValueError, match="max rate"):
        encode(np.zeros((1, 4)), 4, max_rate=bad)


def test_max_rate_text_and_metadata():
    assert format_max_rate(0.125) == "1/8" and format_max_rate("2/16") == "1/8" and format_max_rate(1) == "1"
    assert max_rate_of({}) == "1" and max_rate_of({"max_rate": "1/8"}) == "1/8"
