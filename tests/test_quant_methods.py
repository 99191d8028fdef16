"""The quantization-aware methods: known codes, exact integer forward, export round trips, small runs."""

import numpy as np
import pytest
import torch

from qlif.golden.data.datasets import load_digits_split
from qlif.golden.data.split import Split
from qlif.golden.spec.coding import encode
from qlif.golden.spec.model import Layer, Model, load_model, save_model
from qlif.golden.spec.reference import run, run_layer
from qlif.golden.training.evaluate import evaluate, float_spikes
from qlif.golden.training.methods import METHODS
from qlif.golden.training.qat import QATConfig, QuantSpikingMLP, export, theta_max, train_qat
from qlif.golden.training.quantize import quantize, weight_memory_bits
from qlif.golden.training.train import SpikingMLP, TrainConfig, set_determinism, train

CFG = TrainConfig(hidden=(24,), timesteps=8, leak_shift=3, epochs=6, lr=5e-3)


def _net(cls, weights, config=CFG, qat=None):
    args = (weights[0].shape[0], weights[-1].shape[1], config) + ((qat,) if qat else ())
    net = cls(*args)
    with torch.no_grad():
        for fc, w in zip(net.fcs, weights, strict=True):
            fc.weight.copy_(torch.from_numpy(np.asarray(w, dtype=np.float32).T))
    return net.eval()


@pytest.mark.parametrize("method, bits, why", [
    ("lsq", 1, "lsq gives 2 or 4 or 8-bit"), ("binary", 2, "binary gives 1-bit"), ("ternary", 4, "ternary gives 2"),
    ("xnor", None, "must be one of"),
])
def test_qat_config_rejects_what_a_method_cannot_do(method, bits, why):
    with pytest.raises(ValueError, match=why):
        QATConfig(method=method, weight_bits=bits)
    with pytest.raises(ValueError, match="2..16"):
        QATConfig(method="lsq", membrane_bits=17)
    assert QATConfig(method="ternary").weight_bits == 2 and QATConfig(method="binary").weight_bits == 1
    assert METHODS["lsq"] == (2, 4, 8) and METHODS["ptq"] == (1, 2, 4, 8)


def test_lsq_codes_are_rounded_clipped_steps():
    w = np.array([[0.10, -0.33], [0.52, -0.90], [0.0, 0.26]])      # [n_in=3, n_out=2]
    cfg = TrainConfig(hidden=(2,), timesteps=2)
    net = _net(QuantSpikingMLP, [w, np.eye(2)], cfg, QATConfig(method="lsq", weight_bits=4, membrane_bits=12))
    with torch.no_grad():
        net.step[0].fill_(0.125)
    q, u = net.quantized(0)
    assert float(u.detach()) == 0.125
    # w / 0.125 = [[0.8, -2.64], [4.16, -7.2], [0, 2.08]] -> round, clip to -8..7
    assert q.detach().numpy().T.tolist() == [[1, -3], [4, -7], [0, 2]]
    assert int(net.integer_threshold(0, u)) == 8                    # round(1.0 / 0.125)
    with torch.no_grad():
        net.step[0].fill_(0.05)                                      # 0.9 / 0.05 = 18 clips at -8
    assert net.quantized(0)[0].detach().numpy().T.min() == -8


def test_binary_codes_are_the_sign_of_the_normalised_weights():
    w = np.array([[0.3, 0.1], [0.2, 0.25], [0.05, 0.4]])            # all positive: the mean decides
    net = _net(QuantSpikingMLP, [w, np.eye(2)], TrainConfig(hidden=(2,), timesteps=2),
               QATConfig(method="binary", membrane_bits=8))
    q, _ = net.quantized(0)
    mean = w.mean()
    assert q.detach().numpy().T.tolist() == np.where(w >= mean, 1, -1).tolist()


def test_ternary_codes_scales_and_codebook():
    w = np.array([[0.8, -0.2], [0.05, -0.6], [0.4, 0.0]])           # mean |w| = 0.341..., cut = 0.7 * that
    net = _net(QuantSpikingMLP, [w, np.eye(2)], TrainConfig(hidden=(2,), timesteps=2),
               QATConfig(method="ternary", membrane_bits=16, levels=8))
    net.init_from(None)
    cut = 0.7 * np.abs(w).mean()
    assert float(net.scale_pos[0].detach()) == pytest.approx(np.mean(w[w > cut]))     # (0.8 + 0.4) / 2
    assert float(net.scale_neg[0].detach()) == pytest.approx(-np.mean(w[w < -cut]))   # 0.6
    layer = net.integer_layers()[0]
    # unit = max(0.6, 0.6) / 8 -> P = round(0.6 / 0.075) = 8, N = 8; codes by sign of w beyond the cut
    assert layer["codebook"] == (0, 8, 0, -8)
    assert layer["weights"].tolist() == [[8, 0], [0, -8], [8, 0]]
    assert layer["threshold"] == round(1.0 / 0.075)


@pytest.mark.parametrize("method, bits, k", [("lsq", 4, 9), ("lsq", 2, 5), ("binary", 1, 4), ("ternary", 2, 10)])
def test_qat_forward_is_the_exported_integer_model(method, bits, k):
    # The network trains on exactly the spikes the hardware produces: every layer, every step.
    rng = np.random.default_rng(3)
    weights = [rng.normal(0, 0.25, (64, 24)), rng.normal(0, 0.3, (24, 10))]
    net = _net(QuantSpikingMLP, weights, CFG, QATConfig(method=method, weight_bits=bits, membrane_bits=k))
    net.init_from(None)
    model = export(net)
    assert [layer.membrane_bits for layer in model.layers] == [k, k]
    assert all(layer.threshold <= theta_max(k) for layer in model.layers)
    x = encode(load_digits_split(0).x_test[:120], CFG.timesteps)
    ref = run(model, x)
    for a, b in zip(float_spikes(net, x), ref.spikes, strict=True):
        assert np.array_equal(a, b)
    saturated = any(((v == layer.v_min) | (v == layer.v_max)).any()
                    for v, layer in zip(ref.membranes, model.layers, strict=True))
    assert 0 < ref.spikes[0].mean() < 1 and (saturated or k > 8)


def test_exports_round_trip_with_codebooks(tmp_path):
    rng = np.random.default_rng(4)
    weights = [rng.normal(0, 0.25, (64, 24)), rng.normal(0, 0.3, (24, 10))]
    x = encode(load_digits_split(0).x_test[:50], CFG.timesteps)
    for qat in (QATConfig(method="ternary", membrane_bits=12), QATConfig(method="binary", membrane_bits=6),
                QATConfig(method="lsq", weight_bits=8)):
        net = _net(QuantSpikingMLP, weights, CFG, qat)
        net.init_from(None)
        model = export(net, calibration=x)
        save_model(model, tmp_path / "m.json")
        back = load_model(tmp_path / "m.json")
        for a, b in zip(model.layers, back.layers, strict=True):
            assert np.array_equal(a.weights, b.weights) and a.codebook == b.codebook
            assert a.threshold == b.threshold and a.membrane_bits == b.membrane_bits
        assert back.metadata["method"] == qat.method
        assert np.array_equal(run(model, x).prediction, run(back, x).prediction)
        if qat.method == "ternary":
            book = back.layers[0].codebook
            assert book[0] == book[2] == 0 and book[1] > 0 > book[3]
            assert set(np.unique(back.layers[0].weights)) <= {0, book[1], book[3]}
            n = sum(layer.weights.size for layer in back.layers)
            assert weight_memory_bits(back) == 2 * n + 2 * 4 * 16
            assert 32 * n / weight_memory_bits(back) >= 14.9


def test_ptq_forced_small_registers_rescale_the_threshold():
    rng = np.random.default_rng(5)
    net = _net(SpikingMLP, [rng.normal(0, 0.1, (64, 24)), rng.normal(0, 0.3, (24, 10))])
    for b in (1, 2, 4, 8):
        for k in (2, 4, 8, 9, 16):
            model = quantize(net, weight_bits=b, membrane_bits=k, percentile=99.9)      # validates
            assert all(layer.membrane_bits == k and layer.threshold <= theta_max(k) for layer in model.layers)
    assert quantize(net, weight_bits=8, membrane_bits=8).layers[0].threshold == theta_max(8)   # 126: rescaled
    # The clip calibration tries every clip of its grid in the forced register: each rescaled as needed.
    assert all(layer.threshold <= theta_max(4) for layer in quantize(net, weight_bits=8, membrane_bits=4).layers)


def test_integer_model_converges_to_the_float_spikes_with_fine_weights_and_wide_registers():
    set_determinism(0)
    net, _ = train(TrainConfig(hidden=(32,), timesteps=8, epochs=4, lr=5e-3), progress=False)
    x = encode(load_digits_split(0).x_test[:200], 8)
    fs = float_spikes(net, x)
    disagree = []
    for bits in (2, 4, 8):
        model = quantize(net, weight_bits=bits, percentile=100, membrane_bits=16)
        disagree.append(np.mean([np.mean(a != b) for a, b in zip(fs, run(model, x).spikes, strict=True)]))
    assert disagree[0] > disagree[1] > disagree[2]
    assert disagree[2] < 0.02, disagree


@pytest.fixture(scope="module")
def teacher():
    set_determinism(0)
    return train(CFG, progress=False)[0]


@pytest.mark.parametrize("qat, floor", [
    (QATConfig(method="lsq", weight_bits=2, membrane_bits=8), 0.88),
    (QATConfig(method="ternary", membrane_bits=10), 0.88),
    (QATConfig(method="binary", membrane_bits=8), 0.75),
])
def test_small_qat_runs_learn_the_digits(teacher, qat, floor):
    from dataclasses import replace

    set_determinism(0)
    net, history = train_qat(replace(CFG, epochs=3), qat, split=load_digits_split(0), teacher=teacher,
                             progress=False)
    model = export(net)
    result = evaluate(net=net, model=model)
    assert result.integer_accuracy >= floor, result.summary()
    assert result.agreement == [1.0, 1.0]            # trained forward == integer model
    assert history["loss"][-1] < history["loss"][0]


def test_ternary_needs_a_teacher():
    with pytest.raises(ValueError, match="teacher"):
        train_qat(CFG, QATConfig(method="ternary"), split=load_digits_split(0), progress=False)


def test_killed_training_resumes_bit_identical(tmp_path):
    full = load_digits_split(0)
    part = Split(full.x_train[:200], full.y_train[:200], full.x_test[:10], full.y_test[:10])
    cfg = TrainConfig(hidden=(16,), timesteps=4, epochs=3, lr=1e-2)
    set_determinism(0)
    whole, h_whole = train(cfg, split=part, progress=False)

    def kill(epoch, history):
        if epoch == 1:
            raise KeyboardInterrupt

    resume = tmp_path / "run.resume"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, split=part, progress=False, resume=resume, on_epoch=kill)
    assert resume.is_file()
    again, h_again = train(cfg, split=part, progress=False, resume=resume)
    assert h_again["resumed_at"] == 1 and h_again["loss"] == h_whole["loss"]
    for a, b in zip(whole.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="different training run"):
        train(TrainConfig(hidden=(8,), timesteps=4, epochs=3), split=part, progress=False, resume=resume)


def test_layer_helpers_agree():
    # theta_max is the format's bound: a threshold of theta_max validates, one more does not.
    for k in (2, 4, 16):
        layer = Layer(weights=np.ones((1, 1), dtype=np.int64), weight_bits=4, membrane_bits=k,
                      threshold=theta_max(k), leak_shift=None, reset="subtract")
        Model(timesteps=1, layers=(layer,)).validate()
        assert run_layer(layer, np.ones((1, 1, 1), dtype=np.uint8))[0].shape == (1, 1, 1)
