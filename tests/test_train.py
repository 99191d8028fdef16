"""Training is deterministic, checkpoints round-trip, and a small train + quantize run learns the digits."""

from fractions import Fraction

import numpy as np
import pytest
import torch

from qlif.golden.data.datasets import load_digits_split
from qlif.golden.data.split import Split
from qlif.golden.spec.coding import encode
from qlif.golden.training.checkpoint import load_checkpoint, save_checkpoint
from qlif.golden.training.evaluate import evaluate, float_accuracy, float_spikes, integer_accuracy, spike_agreement
from qlif.golden.training.quantize import quantize
from qlif.golden.training.train import SpikingMLP, TrainConfig, train

SMALL = TrainConfig(hidden=(32,), timesteps=8, epochs=8, lr=5e-3)


@pytest.fixture(scope="module")
def trained():
    return train(SMALL, progress=False)


def test_training_is_deterministic():
    full = load_digits_split(0)
    part = Split(full.x_train[:256], full.y_train[:256], full.x_test[:64], full.y_test[:64])
    tiny = TrainConfig(hidden=(16,), timesteps=8, epochs=3, lr=1e-2)
    (net, history), (again, history2) = (train(tiny, split=part, progress=False) for _ in range(2))
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert history["loss"] == history2["loss"]
    assert history["loss"][-1] < history["loss"][0]


def test_checkpoint_round_trip(trained, tmp_path):
    net, history = trained
    save_checkpoint(net, tmp_path / "net.pt", history=history)
    back = load_checkpoint(tmp_path / "net.pt")
    assert back.config == net.config and back.thresholds == net.thresholds
    x = encode(load_digits_split(0).x_test[:50], SMALL.timesteps)
    for a, b in zip(float_spikes(net, x), float_spikes(back, x), strict=True):
        assert np.array_equal(a, b)


def test_small_run_learns_and_survives_4bit_quantization(trained):
    net, _ = trained
    model = quantize(net, weight_bits=4)
    result = evaluate(net=net, model=model)
    assert result.n_test == 450
    assert result.float_accuracy >= 0.85, result.summary()
    assert result.integer_accuracy >= 0.80, result.summary()
    # The helpers agree with evaluate() on the same stimuli.
    split = load_digits_split(0)
    x = encode(split.x_test, SMALL.timesteps)
    assert float_accuracy(net, x, split.y_test) == result.float_accuracy
    assert integer_accuracy(model, x, split.y_test) == result.integer_accuracy
    assert "integer" in result.summary() and "450 test samples" in result.summary()


def test_8bit_integer_model_tracks_the_float_network(trained):
    # Fine weights and wide membranes: only the floor in the integer leak and sub-unit rounding remain,
    # so spikes and predictions stay close to the float network's.
    net, _ = trained
    model = quantize(net, weight_bits=8, percentile=100, membrane_bits=16)
    result = evaluate(net=net, model=model)
    assert min(result.agreement) >= 0.95, result.summary()
    assert result.prediction_agreement >= 0.97, result.summary()
    x = encode(load_digits_split(0).x_test, SMALL.timesteps)
    assert spike_agreement(net, model, x) == result.agreement
    # Coarser weights agree less: the comparison can tell quantization levels apart.
    coarse = evaluate(net=net, model=quantize(net, weight_bits=2, membrane_bits=16))
    assert min(coarse.agreement) < min(result.agreement)


def test_evaluate_checks_its_arguments(trained):
    net, _ = trained
    with pytest.raises(ValueError):
        evaluate()
    other = SpikingMLP(64, 10, TrainConfig(hidden=(32,), timesteps=4))
    with pytest.raises(ValueError):
        evaluate(net=other, model=quantize(net, weight_bits=4))


def test_config_accepts_command_line_forms():
    cfg = TrainConfig(hidden=[64, 32], threshold=[1.0, 0.5, 2.0])
    assert cfg.hidden == (64, 32) and cfg.thresholds == (1.0, 0.5, 2.0)
    assert TrainConfig(hidden=128).hidden == (128,) and TrainConfig().thresholds == (1.0, 1.0)
    assert SpikingMLP(64, 10, cfg).thresholds == [1.0, 0.5, 2.0]


@pytest.mark.parametrize("bad", [
    {"hidden": ()}, {"hidden": (0,)}, {"timesteps": 0}, {"leak_shift": 16}, {"threshold": 0.0},
    {"threshold": (1.0, 1.0, 1.0)}, {"threshold": (1.0, -1.0)}, {"max_rate": "0"}, {"max_rate": "3/2"},
])
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_max_rate_travels_from_the_config_to_the_model_and_its_stimuli(tmp_path):
    # A network trained with max rate 1/2 (T = 8): checkpoint, PTQ and QAT exports carry the coding, and
    # evaluation rate-codes with it; the default rate leaves the model metadata as before.
    from qlif.golden.training.qat import QATConfig, export, train_qat

    full = load_digits_split(0)
    part = Split(full.x_train[:128], full.y_train[:128], full.x_test[:60], full.y_test[:60])
    cfg = TrainConfig(hidden=(16,), timesteps=8, epochs=1, max_rate=Fraction(1, 2))
    assert cfg.max_rate == "1/2" and TrainConfig().max_rate == "1"
    net, history = train(cfg, split=part, progress=False)
    save_checkpoint(net, tmp_path / "net.pt", history=history)
    assert load_checkpoint(tmp_path / "net.pt").config.max_rate == "1/2"
    model = quantize(net, weight_bits=4, membrane_bits=8, split=part)
    assert model.metadata["max_rate"] == "1/2"
    x = encode(part.x_test, 8, max_rate="1/2")
    assert not np.array_equal(x, encode(part.x_test, 8))
    result = evaluate(net=net, model=model, split=part)
    assert result.integer_accuracy == integer_accuracy(model, x, part.y_test)
    assert result.float_accuracy == float_accuracy(net, x, part.y_test)
    assert evaluate(model=model, split=part).integer_accuracy == result.integer_accuracy
    qnet, _ = train_qat(TrainConfig(epochs=1), QATConfig(method="binary", membrane_bits=4), split=part,
                        teacher=net, progress=False)
    assert qnet.config.max_rate == "1/2" and export(qnet).metadata["max_rate"] == "1/2"
    # A different coding than the teacher's, asked for: the teacher's weights start a T = 16, r = 1/4 network
    # (no longer the same spikes as the teacher's, so the student's forward pass is checked against the
    # integer model on its own stimuli).
    recoded, _ = train_qat(TrainConfig(epochs=1), QATConfig(method="binary", membrane_bits=4), split=part,
                           teacher=net, timesteps=16, max_rate="1/4", progress=False)
    assert (recoded.config.timesteps, recoded.config.max_rate) == (16, "1/4") and net.config.timesteps == 8
    recoded_model = export(recoded)
    assert recoded_model.timesteps == 16 and recoded_model.metadata["max_rate"] == "1/4"
    assert evaluate(net=recoded, model=recoded_model, split=part).agreement == [1.0, 1.0]
    with pytest.raises(ValueError, match="ternary's spike calibration"):
        train_qat(TrainConfig(epochs=1), QATConfig(method="ternary"), split=part, teacher=net, max_rate="1/4",
                  progress=False)
    default = quantize(SpikingMLP(64, 10, TrainConfig(hidden=(16,), timesteps=8)), weight_bits=4, membrane_bits=8,
                       split=part)
    assert "max_rate" not in default.metadata
    with pytest.raises(ValueError, match="max rate"):
        evaluate(net=net, model=default, split=part)
