"""The on-chip encoder's integer rule (docs/semantics.md, "On-chip encoding") against the rate coding.

``coding.encode_frames`` (accumulators, no division) must give exactly the spikes of ``coding.encode``
(``floor`` of products) on every frame value of both frame levels, for many ``T`` and rates; and the
frames' checks must name what is wrong in one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from qlif.golden.spec import reference
from qlif.golden.spec.coding import (
    DIGITS_MAX,
    MNIST_MAX,
    encode,
    encode_frames,
    encoder_constants,
    frame_levels_of,
)
from qlif.golden.spec.model import Layer, Model, ModelError

#: Rates with denominators from 1 to 2^16, numerators from 1 to b - 1 (phases of every kind).
RATES = ["1", "1/2", "1/3", "1/8", "3/16", "5/7", "2/3", "7/8", "99/100", "1/255", "254/255", "1/65536",
         "65535/65536", "12345/65521"]


@pytest.mark.parametrize("levels", [DIGITS_MAX, MNIST_MAX])
@pytest.mark.parametrize("rate", RATES)
def test_rule_equals_encode_on_every_value(levels, rate):
    # Every value 0..L on 37 inputs each (different phases for the same value), T = 64 covers many
    # wraps of the accumulator for every rate above 1/64.
    values = np.arange(levels + 1, dtype=np.uint8)
    frames = np.tile(values, (1, 37)).reshape(1, -1)
    got = encode_frames(frames, 64, levels=levels, max_rate=rate)
    want = encode(frames / levels, 64, max_rate=rate)
    assert got.dtype == np.uint8 and got.shape == (1, 64, frames.shape[1])
    assert np.array_equal(got, want)
    # Not vacuous: at rate 1 the brightest value spikes at every step, and any rate above 1/64 spikes.
    if rate == "1":
        assert got[0, :, levels].all()
    assert got.any() or rate in ("1/65536", "1/255")


@pytest.mark.parametrize("T", [1, 2, 3, 7, 16, 100])
def test_rule_equals_encode_on_mnist_pixels(T):
    # Float32 pixel / 255, as the MNIST loader gives them, code to the same spikes as the bytes.
    rng = np.random.default_rng(T)
    frames = rng.integers(0, 256, size=(5, 784), dtype=np.uint8)
    for rate in ("1", "1/8", "3/16"):
        assert np.array_equal(encode_frames(frames, T, levels=255, max_rate=rate),
                              encode((frames / np.float32(255)).astype(np.float32), T, max_rate=rate))


def test_constants_and_widths():
    k = encoder_constants(64, 16, "1")
    assert (k.multiplier, k.modulus, k.acc_bits, k.increment_bits) == (1, 16, 4, 5) and not k.start.any()
    k = encoder_constants(784, 255, "3/16")
    assert (k.multiplier, k.modulus) == (3, 255 * 16)
    assert k.start.min() == 0 and k.start.max() < k.modulus and set(k.start % 255) == {0}
    assert len(set(k.start.tolist())) == 16           # every phase is used
    assert k.acc_bits == (255 * 16 - 1).bit_length() and k.increment_bits == (255 * 3).bit_length()


def test_frame_levels_of():
    assert frame_levels_of({}) == 16
    assert frame_levels_of({"dataset": "mnist"}) == 255
    assert frame_levels_of({"dataset": "mnist", "frame_levels": 16}) == 16
    for meta, word in (({"frame_levels": 100}, "frame_levels"), ({"frame_levels": True}, "frame_levels"),
                       ({"dataset": "cifar"}, "cifar")):
        with pytest.raises(ValueError, match=word):
            frame_levels_of(meta)


def _model(meta: dict | None = None) -> Model:
    w = np.ones((4, 2), np.int64)
    return Model(timesteps=5, layers=(Layer(w, 2, 8, 1, None, "subtract"),), metadata=meta or {})


def test_frame_inputs_uses_model_metadata():
    frames = np.array([[0, 5, 16, 9]], np.uint8)
    assert np.array_equal(reference.frame_inputs(_model(), frames), encode(frames / 16, 5))
    model = _model({"dataset": "mnist", "max_rate": "1/8"})
    frames = np.array([[0, 255, 128, 200]], np.uint8)
    assert np.array_equal(reference.frame_inputs(model, frames), encode(frames / 255, 5, max_rate="1/8"))


@pytest.mark.parametrize("frames, match", [
    (np.zeros((2, 4), np.float32), "frames: must be an integer .*float32"),
    (np.zeros((2, 5), np.uint8), r"frames: must have shape \[samples, 4\]"),
    (np.zeros((2, 3, 4), np.uint8), "frames: must be a 2-D array"),
    (np.array([[0, 1, 17, 2]], np.int64), "frames: sample 0, input 2: value 17 is outside 0..16"),
    (np.array([[0, -1, 2, 2]], np.int64), "frames: sample 0, input 1: value -1"),
])
def test_frame_errors_are_one_line(frames, match):
    with pytest.raises(ModelError, match=match) as e:
        reference.frame_inputs(_model(), frames)
    assert "\n" not in str(e.value)


def test_bad_metadata_is_a_model_error():
    with pytest.raises(ModelError, match="metadata: metadata.frame_levels"):
        reference.frame_inputs(_model({"frame_levels": 12}), np.zeros((1, 4), np.uint8))
    json.dumps(_model().to_json())   # metadata stays plain JSON
