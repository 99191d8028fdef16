"""The integer reference model against a naive per-neuron implementation of docs/semantics.md."""

import numpy as np
import pytest

from qlif.golden.spec.model import Layer, Model, ModelError, default_codebook, load_model, save_model
from qlif.golden.spec.reference import check_inputs, predict, run, run_layer


def naive_layer(layer: Layer, x: np.ndarray):
    """docs/semantics.md read literally: one sample, one neuron, one addition at a time."""
    n_steps = x.shape[0]
    lo, hi = layer.v_min, layer.v_max
    sat = lambda u: min(max(u, lo), hi)  # noqa: E731
    spikes = np.zeros((n_steps, layer.n_out), dtype=np.uint8)
    mem = np.zeros((n_steps, layer.n_out), dtype=np.int32)
    for i in range(layer.n_out):
        v, s = 0, 0
        for t in range(n_steps):
            u = v if layer.leak_shift is None else v - (v >> layer.leak_shift)
            if layer.reset == "subtract":
                u = sat(u - layer.threshold * s)
            elif s:
                u = 0
            for j in range(layer.n_in):
                if x[t, j]:
                    u = sat(u + int(layer.weights[j, i]))
            s = int(u > layer.threshold)
            v = u
            spikes[t, i], mem[t, i] = s, v
    return spikes, mem


def random_layer(rng, n_in, n_out, *, b, k, lam, reset, codebook=None):
    book = codebook if codebook is not None else default_codebook(b)
    w = rng.choice(np.asarray(book), size=(n_in, n_out))
    theta = int(rng.integers(0, (1 << (k - 1)) - 1))
    return Layer(weights=w, weight_bits=b, membrane_bits=k, threshold=theta, leak_shift=lam,
                 reset=reset, codebook=None if codebook is None else tuple(codebook))


@pytest.mark.parametrize("b", [1, 2, 4, 8])
@pytest.mark.parametrize("k", [2, 4, 8, 16])
@pytest.mark.parametrize("lam", [None, 0, 1, 4])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_layer_matches_naive(b, k, lam, reset):
    rng = np.random.default_rng(b * 1000 + k * 10 + (lam or 7))
    layer = random_layer(rng, 13, 7, b=b, k=k, lam=lam, reset=reset)
    x = (rng.random((5, 9, 13)) < 0.5).astype(np.uint8)
    spikes, mem = run_layer(layer, x)
    for n in range(x.shape[0]):
        ns, nm = naive_layer(layer, x[n])
        np.testing.assert_array_equal(spikes[n], ns)
        np.testing.assert_array_equal(mem[n], nm)


def test_order_matters_under_saturation():
    # +7 then -8 saturates differently from -8 then +7 at k = 4: ascending input order is the contract.
    layer = Layer(weights=np.array([[7], [7], [-8]]), weight_bits=4, membrane_bits=4, threshold=6,
                  leak_shift=None, reset="zero")
    spikes, mem = run_layer(layer, np.ones((1, 1, 3), dtype=np.uint8))
    assert mem[0, 0, 0] == -1          # 7, sat(14)=7, 7-8=-1; unsaturated order-free sum would be 6
    assert spikes[0, 0, 0] == 0


def test_worked_example():
    """The table in docs/semantics.md."""
    layer = Layer(weights=np.array([[6], [6], [-3]]), weight_bits=4, membrane_bits=4, threshold=5,
                  leak_shift=1, reset="subtract")
    x = np.array([[[1, 1, 0], [0, 0, 1], [1, 0, 0]]], dtype=np.uint8)
    spikes, mem = run_layer(layer, x)
    assert mem[0, :, 0].tolist() == [7, -4, 4]
    assert spikes[0, :, 0].tolist() == [1, 0, 0]


def test_arithmetic_shift_leak_of_negative_membrane():
    # v = -1, lam = 1: -1 >> 1 is -1 (floor), so the leak takes v to 0; v = 3 leaks to 3 - 1 = 2.
    layer = Layer(weights=np.array([[-1], [3]]), weight_bits=4, membrane_bits=8, threshold=100,
                  leak_shift=1, reset="zero")
    x = np.array([[[1, 0], [0, 0], [0, 1], [0, 0]]], dtype=np.uint8)
    _, mem = run_layer(layer, x)
    assert mem[0, :, 0].tolist() == [-1, 0, 3, 2]


def test_network_chains_layers_within_a_step_and_predicts():
    rng = np.random.default_rng(5)
    l0 = random_layer(rng, 10, 6, b=4, k=8, lam=2, reset="subtract")
    l1 = random_layer(rng, 6, 3, b=2, k=6, lam=None, reset="zero")
    model = Model(timesteps=8, layers=(l0, l1))
    x = (rng.random((4, 8, 10)) < 0.6).astype(np.uint8)
    res = run(model, x, lanes=2)
    for n in range(4):
        s0, m0 = naive_layer(l0, x[n])
        s1, m1 = naive_layer(l1, s0)
        np.testing.assert_array_equal(res.spikes[0][n], s0)
        np.testing.assert_array_equal(res.membranes[1][n], m1)
        counts = s1.sum(axis=0)
        assert res.prediction[n] == int(np.flatnonzero(counts == counts.max())[0])
    assert res.cycles.shape == (4, 8) and (res.cycles > 0).all()
    names = set(res.to_npz_dict())
    assert names == {"layer0_spikes", "layer0_membrane", "layer1_spikes", "layer1_membrane",
                     "prediction", "cycles"}


def test_prediction_ties_go_to_lowest_index():
    out = np.zeros((1, 4, 3), dtype=np.uint8)
    out[0, :2, 1] = 1
    out[0, 2:, 2] = 1
    assert predict(out).tolist() == [1]


def test_cycles_grow_with_events_not_inputs():
    rng = np.random.default_rng(1)
    layer = random_layer(rng, 64, 16, b=4, k=8, lam=None, reset="subtract")
    model = Model(timesteps=2, layers=(layer,))
    x = np.zeros((1, 2, 64), dtype=np.uint8)
    x[0, 1, :5] = 1
    c = run(model, x, lanes=4).cycles[0]
    assert c[1] - c[0] == 5 * 4          # five more events, G = 16 / 4 cycles each


# -- model file ------------------------------------------------------------------------------------

def good_doc():
    return {"format": "qlif-model", "version": 1, "timesteps": 4, "layers": [
        {"weights": [[1, -2], [3, 0]], "weight_bits": 4, "membrane_bits": 8, "threshold": 5,
         "leak_shift": 2, "reset": "subtract", "codebook": None},
        {"weights": [[1], [-1]], "weight_bits": 1, "membrane_bits": 4, "threshold": 1,
         "leak_shift": None, "reset": "zero", "codebook": None}], "metadata": {"note": "x"}}


def test_round_trip(tmp_path):
    model = Model.from_json(good_doc())
    save_model(model, tmp_path / "m.json")
    again = load_model(tmp_path / "m.json")
    assert again.to_json() == model.to_json()
    assert again.metadata == {"note": "x"}


def test_codes_pack_two_complement_and_codebook():
    layer = Model.from_json(good_doc()).layers[0]
    assert layer.codes().tolist() == [[1, 14], [3, 0]]
    assert Model.from_json(good_doc()).layers[1].codes().tolist() == [[1], [0]]
    doc = good_doc()
    doc["layers"][1].update(weight_bits=2, codebook=[0, -5, 9, 1], weights=[[9], [-5]])
    assert Model.from_json(doc).layers[1].codes().tolist() == [[2], [1]]


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.pop("timesteps"), "timesteps"),
    (lambda d: d.update(timesteps=0), "timesteps"),
    (lambda d: d.update(layers=[]), "layers"),
    (lambda d: d["layers"][0].pop("threshold"), "layers[0].threshold"),
    (lambda d: d["layers"][0].update(threshold=127), "layers[0].threshold"),
    (lambda d: d["layers"][0].update(threshold=-1), "layers[0].threshold"),
    (lambda d: d["layers"][0].update(threshold=2.5), "layers[0].threshold"),
    (lambda d: d["layers"][0].update(weight_bits=3), "layers[0].weight_bits"),
    (lambda d: d["layers"][0].update(membrane_bits=17), "layers[0].membrane_bits"),
    (lambda d: d["layers"][0].update(membrane_bits=1), "layers[0].membrane_bits"),
    (lambda d: d["layers"][0].update(leak_shift=16), "layers[0].leak_shift"),
    (lambda d: d["layers"][0].update(reset="hard"), "layers[0].reset"),
    (lambda d: d["layers"][0].update(weights=[[1, 2], [3]]), "layers[0].weights"),
    (lambda d: d["layers"][0].update(weights=[[1, 8], [3, 0]]), "layers[0].weights[0][1]"),
    (lambda d: d["layers"][0].update(weights=[[1, "a"], [3, 0]]), "layers[0].weights"),
    (lambda d: d["layers"][1].update(weights=[[0], [1]]), "layers[1].weights[0][0]"),
    (lambda d: d["layers"][1].update(weights=[[1], [1], [1]]), "layers[1].weights"),
    (lambda d: d["layers"][1].update(codebook=[1, 2, 3]), "layers[1].codebook"),
])
def test_bad_models_name_the_field(edit, field):
    doc = good_doc()
    edit(doc)
    with pytest.raises(ModelError) as info:
        Model.from_json(doc)
    assert info.value.where == field


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ModelError, match="cannot be read"):
        load_model(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"format": "qlif-model",')
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(tmp_path / "bad.json")


@pytest.mark.parametrize("x, why", [
    (np.zeros((2, 4)), "3-D"),
    (np.zeros((2, 3, 2)), "does not match"),
    (np.full((2, 4, 2), 2), "0 or 1"),
    (np.full((2, 4, 2), 0.5), "integer"),
])
def test_bad_stimuli(x, why):
    with pytest.raises(ModelError, match=why):
        check_inputs(Model.from_json(good_doc()), x)
