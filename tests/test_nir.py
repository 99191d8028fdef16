"""NIR in and out (docs/nir.md): networks trained here in snntorch 1.0 and written by its own export_to_nir.

The producer is :mod:`qlif.golden.training.nir_producer` (digits 64-32-10, ``snn.Leaky`` with subtract
reset, bias-free ``nn.Linear``, T = 8), trained for a few epochs here. What is checked: the imported float
network makes the producer's every output spike on the test split (so the same accuracy), also when the
producer has per-neuron thresholds and gains (folded into the weights), its 4-bit quantization runs
bit-exact on the RTL under Verilator, export -> import -> quantize gives back the same integer model, and
the refusals and bad inputs are one line each, exit 2, no file.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir
from snntorch.import_nir import import_from_nir

from qlif.cli import main
from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import encode
from qlif.golden.spec.model import Layer, Model, load_model, save_model
from qlif.golden.spec.reference import predict
from qlif.golden.training.checkpoint import load_checkpoint
from qlif.golden.training.evaluate import float_spikes
from qlif.golden.training.nir_graph import METADATA_KEY, graph_of_model, nearest_leak_shift
from qlif.golden.training.nir_producer import HIDDEN, T, leaky, run_producer, train_producer
from qlif.golden.training.quantize import quantize

RTL_SAMPLES = 3


@pytest.fixture(scope="module")
def split():
    return load_split("digits")


@pytest.fixture(scope="module")
def producer(tmp_path_factory, split):
    """A snntorch network at beta = 0.875 = 1 - 2^-3 (exact), its NIR file and its test-split spikes."""
    net = train_producer(0.875, 4, split)
    path = tmp_path_factory.mktemp("nir") / "snntorch.nir"
    nir.write(path, export_to_nir(net, torch.zeros(64)))
    x = encode(split.x_test, T)
    with torch.no_grad():
        spikes = run_producer(net, torch.from_numpy(x).float()).numpy().astype(np.uint8)
    return net, path, x, spikes


@pytest.fixture(scope="module")
def imported(producer, tmp_path_factory):
    _, path, _, _ = producer
    out = tmp_path_factory.mktemp("ckpt") / "imported.pt"
    assert main(["import", str(path), "--out", str(out), "--timesteps", str(T), "--reset", "subtract",
                 "--dataset", "digits"]) == 0
    return out


def test_imported_network_makes_the_producers_spikes(producer, imported, split, capsys):
    _, _, x, spikes = producer
    net = load_checkpoint(imported)
    assert net.config.leak_shift == 3 and net.thresholds == [1.0, 1.0]
    ours = float_spikes(net, x)[-1]
    assert np.array_equal(ours, spikes)          # every output spike of every sample and step
    acc = float(np.mean(predict(spikes) == split.y_test))
    assert float(np.mean(predict(ours) == split.y_test)) == acc
    assert acc > 0.5                              # a trained network, not chance (10 %)


def test_import_prints_the_exact_leak_and_the_float_accuracy(producer, split, tmp_path, capsys):
    _, path, _, spikes = producer
    args = ["import", str(path), "--out", str(tmp_path / "c.pt"), "--timesteps", str(T), "--reset", "subtract"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "every neuron's beta is leak shift 3 (beta = 1 - 2^-3 = 0.875) exactly" in out
    assert "64-32-10, T = 8, thresholds 1, 1, reset subtract, data digits" in out
    assert "float accuracy" not in out                    # no data named, nothing measured
    assert main([*args, "--dataset", "digits"]) == 0      # with data: printed although the leak is exact
    acc = float(np.mean(predict(spikes) == split.y_test))
    assert (f"import: float accuracy {acc:.2%} on 450 digits test samples, rate-coded as qlif feeds them "
            "(T = 8, max rate 1; docs/nir.md#the-inputs)") in capsys.readouterr().out


def test_quantized_import_is_bit_exact_on_verilator(imported, producer, tmp_path):
    from qlif.golden.spec import reference
    from qlif.sim.compare import first_mismatch
    from qlif.sim.runner import run_rtl

    model_path = tmp_path / "m.json"
    assert main(["quantize", str(imported), "--weight-bits", "4", "--out", str(model_path)]) == 0
    model = load_model(model_path)
    x = producer[2][:RTL_SAMPLES]
    got = run_rtl(model, x, simulator="verilator", lanes=4, check=True)
    assert first_mismatch(reference.run(model, x, lanes=4), got) is None


def test_export_import_quantize_gives_the_same_model(imported, tmp_path, capsys):
    model = quantize(load_checkpoint(imported), weight_bits=4, percentile=100.0)
    src = tmp_path / "m.json"
    save_model(model, src)
    graph_path = tmp_path / "m.nir"
    assert main(["export", str(src), "--nir", str(graph_path)]) == 0
    graph = nir.read(graph_path)
    assert json.loads(graph.metadata[METADATA_KEY])["layers"][0]["reset"] == "subtract"
    assert "u = v - (v >> leak_shift)" in graph.metadata["qlif_semantics"]
    assert import_from_nir(graph) is not None        # snntorch's importer accepts it
    ckpt = tmp_path / "back.pt"
    assert main(["import", str(graph_path), "--out", str(ckpt)]) == 0      # T, reset, data from the metadata
    back = quantize(load_checkpoint(ckpt), weight_bits=4, percentile=100.0)
    assert back.to_json()["layers"] == model.to_json()["layers"]
    assert back.timesteps == model.timesteps


@pytest.mark.parametrize(("beta", "lam"), [(0.875, 3), (0.9, 3), (0.95, 4), (0.5, 1), (0.0, 0), (1.0, None)])
def test_nearest_leak_shift(beta, lam):
    assert nearest_leak_shift(beta) == lam


def test_inexact_beta_is_snapped_and_measured(split, tmp_path, capsys):
    net = train_producer(0.9, 2, split)
    path = tmp_path / "b09.nir"
    nir.write(path, export_to_nir(net, torch.zeros(64)))
    out = tmp_path / "c.pt"
    assert main(["import", str(path), "--out", str(out), "--timesteps", str(T), "--reset", "subtract"]) == 0
    printed = capsys.readouterr().out
    assert "nearest leak shift 3 (beta = 1 - 2^-3 = 0.875); float accuracy change not measured" in printed
    assert main(["import", str(path), "--out", str(out), "--timesteps", str(T), "--reset", "subtract",
                 "--dataset", "digits"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "nearest" in x)
    assert "beta 0.9 is not 1 - 2^-lam: nearest leak shift 3" in line and "450 digits test samples" in line
    x = encode(split.x_test, T)
    after = float(np.mean(predict(float_spikes(load_checkpoint(out), x)[-1]) == split.y_test))
    assert f"-> {after:.2%}" in line


def test_if_neurons_import_without_leak(tmp_path, capsys):
    rng = np.random.default_rng(0)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type=np.array([64])),
        "w0": nir.Linear(weight=rng.normal(size=(16, 64)).astype(np.float32)),
        "if0": nir.IF(r=np.full(16, 1e4), v_threshold=np.full(16, 2.0), v_reset=np.zeros(16)),
        "w1": nir.Linear(weight=rng.normal(size=(10, 16)).astype(np.float32)),
        "if1": nir.IF(r=np.full(10, 2e4), v_threshold=np.full(10, 2.0), v_reset=np.zeros(10)),
        "out": nir.Output(output_type=np.array([10])),
    }, edges=[("in", "w0"), ("w0", "if0"), ("if0", "w1"), ("w1", "if1"), ("if1", "out")])
    path = tmp_path / "if.nir"
    nir.write(path, graph)
    ckpt = tmp_path / "if.pt"
    assert main(["import", str(path), "--out", str(ckpt), "--timesteps", "4", "--reset", "subtract"]) == 0
    assert "if1 (IF): input gain 2 divided out of the threshold" in capsys.readouterr().out
    net = load_checkpoint(ckpt)
    assert net.config.leak_shift is None and net.thresholds == [2.0, 1.0]
    assert quantize(net, weight_bits=4, percentile=100.0).layers[0].leak_shift is None


# -- refusals: one line naming the node, its type and why; exit 2; no file --------------------------------------


def _conv_graph() -> nir.NIRGraph:
    # snntorch 1.0's export_to_nir fails on Conv2d (nir's type inference, IndexError), so the graph is NIR's own.
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type=np.array([1, 8, 8])),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=np.ones((2, 1, 3, 3), dtype=np.float32), stride=1, padding=0,
                           dilation=1, groups=1, bias=np.zeros(2, dtype=np.float32)),
        "flat": nir.Flatten(input_type={"input": np.array([2, 6, 6])}, start_dim=0),
        "fc": nir.Linear(weight=np.ones((10, 72), dtype=np.float32)),
        "lif": nir.LIF(tau=np.full(10, 8e-4), r=np.full(10, 8.0), v_leak=np.zeros(10), v_threshold=np.ones(10),
                       v_reset=np.zeros(10)),
        "output": nir.Output(output_type=np.array([10])),
    }, edges=[("input", "conv"), ("conv", "flat"), ("flat", "fc"), ("fc", "lif"), ("lif", "output")],
        type_check=False)


def _snntorch_graph(layer: torch.nn.Module) -> nir.NIRGraph:
    return export_to_nir(torch.nn.Sequential(torch.nn.Linear(64, 10, bias=False), layer), torch.zeros(64))


REFUSALS = {
    "cubalif": (lambda: _snntorch_graph(snn.Synaptic(alpha=torch.full((10,), 0.5), beta=torch.full((10,), 0.875),
                                                     threshold=torch.ones(10), init_hidden=True, output=True)),
                "node '1' (CubaLIF): a current-based LIF has a second state (the synaptic current, tau_syn); "
                "qlif's neuron adds its input to the membrane directly"),
    "convolution": (_conv_graph,
                    "node 'conv' (Conv2d): convolutions are not in qlif's integer contract (fully connected layers "
                    "only)"),
    "recurrent": (lambda: _snntorch_graph(snn.RLeaky(beta=torch.full((10,), 0.875), threshold=torch.ones(10),
                                                     linear_features=10, init_hidden=True, output=True)),
                  "node '1.w_rec' (Affine): recurrent edge '1.w_rec' -> '1.lif' (a cycle); qlif's layers are "
                  "feed-forward"),
    "bias": (lambda: export_to_nir(torch.nn.Sequential(torch.nn.Linear(64, 10), leaky(10, 0.875, output=True)),
                                   torch.zeros(64)),
             None),
    "no reset": (lambda: _snntorch_graph(leaky(10, 0.875, output=True)),
                 "node '1' (LIF): NIR says only 'reset to v_reset = 0' and snntorch's export_to_nir writes that for "
                 "reset_mechanism 'subtract' and 'zero' alike; qlif's float network subtracts: pass --reset "
                 "subtract if the producer did"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusal_is_one_line_exit_2_no_file(case, tmp_path, capsys):
    make, why = REFUSALS[case]
    torch.manual_seed(0)
    path = tmp_path / "g.nir"
    nir.write(path, make())
    out = tmp_path / "c.pt"
    args = ["import", str(path), "--out", str(out), "--timesteps", str(T)] + ([] if case == "no reset" else
                                                                               ["--reset", "subtract"])
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    if why is None:       # the bias: its largest value depends on torch's initialisation
        assert err.startswith(f"qlif: error: {path}: node '0' (Affine): bias (largest |b| = ")
        assert err.rstrip().endswith("the integer contract has no bias, a constant current into every neuron each "
                                     "step; train with bias=False")
    else:
        assert err == f"qlif: error: {path}: {why}\n"


def test_scale_folds_when_exact_and_is_refused_otherwise(tmp_path, capsys):
    rng = np.random.default_rng(1)
    w0, w1 = rng.normal(size=(16, 64)).astype(np.float32), rng.normal(size=(10, 16)).astype(np.float32)

    def graph(scale: float) -> nir.NIRGraph:
        lif = {n: nir.LIF(tau=np.full(n, 8e-4), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                          v_reset=np.zeros(n)) for n in (16, 10)}
        return nir.NIRGraph(nodes={
            "in": nir.Input(input_type=np.array([64])), "s": nir.Scale(scale=np.full(64, scale)),
            "w0": nir.Linear(weight=w0), "lif0": lif[16], "w1": nir.Linear(weight=w1), "lif1": lif[10],
            "out": nir.Output(output_type=np.array([10])),
        }, edges=[("in", "s"), ("s", "w0"), ("w0", "lif0"), ("lif0", "w1"), ("w1", "lif1"), ("lif1", "out")])

    path, ckpt = tmp_path / "s.nir", tmp_path / "s.pt"
    nir.write(path, graph(0.25))
    assert main(["import", str(path), "--out", str(ckpt), "--timesteps", "4", "--reset", "subtract"]) == 0
    assert np.array_equal(load_checkpoint(ckpt).fcs[0].weight.detach().numpy(), w0 * 0.25)
    ckpt.unlink()
    nir.write(path, graph(0.3))
    capsys.readouterr()
    assert main(["import", str(path), "--out", str(ckpt), "--timesteps", "4", "--reset", "subtract"]) == 2
    assert capsys.readouterr().err == (f"qlif: error: {path}: node 's' (Scale): scale factors that do not fold "
                                       "exactly into the float32 weights (powers of two do)\n")
    assert not ckpt.exists()


def test_train_qat_and_eval_take_the_imported_checkpoint(imported, tmp_path, capsys):
    qat = tmp_path / "qat.pt"
    assert main(["train", "--qat", "lsq", "--weight-bits", "4", "--teacher", str(imported), "--epochs", "1",
                 "--out", str(qat)]) == 0
    model = tmp_path / "qat.json"
    assert main(["quantize", str(qat), "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["eval", str(model)]) == 0
    assert "(450 test samples)" in capsys.readouterr().out


# -- per-neuron thresholds and gains: folded into the weight columns when the ratios are powers of two -----------


def _with_thresholds(net: torch.nn.Sequential, hidden: torch.Tensor, out: torch.Tensor) -> torch.nn.Sequential:
    """``net`` rebuilt with per-neuron thresholds (``learn_threshold=True``: a parameter, as a producer that
    learns them exports it) and each neuron's incoming weights times its threshold: the same network, its
    membranes scaled by the thresholds (exactly so in float32 when they are powers of two)."""
    beta = float(net[1].beta[0])
    derived = torch.nn.Sequential(
        torch.nn.Linear(64, len(hidden), bias=False), leaky(len(hidden), beta, threshold=hidden, learn_threshold=True),
        torch.nn.Linear(len(hidden), 10, bias=False), leaky(10, beta, output=True, threshold=out, learn_threshold=True))
    with torch.no_grad():
        derived[0].weight.copy_(net[0].weight * hidden[:, None])
        derived[2].weight.copy_(net[2].weight * out[:, None])
    return derived.eval()


def test_per_neuron_thresholds_and_gains_fold_exactly(producer, tmp_path, capsys):
    net, _, x, spikes = producer
    hidden = 2.0 ** (torch.arange(HIDDEN) % 3 - 1.0)              # 0.5, 1, 2, ...
    out = 2.0 ** -(torch.arange(10) % 2 * 2.0)                     # 1, 0.25, ...
    derived = _with_thresholds(net, hidden, out)
    with torch.no_grad():
        assert torch.equal(run_producer(derived, torch.from_numpy(x).float()), torch.from_numpy(spikes).float())
    graph = export_to_nir(derived, torch.zeros(64))
    lif = graph.nodes["3"]
    assert np.ptp(graph.nodes["1"].v_threshold) == 1.5 and np.ptp(lif.v_threshold) == 0.75
    # a gain of 4 on half the outputs, with their thresholds times 4: the same neurons in NIR's real numbers
    four = np.where(np.arange(10) < 5, 4.0, 1.0)
    lif.r, lif.v_threshold = (lif.r * four).astype(np.float32), (lif.v_threshold * four).astype(np.float32)
    path, ckpt = tmp_path / "theta.nir", tmp_path / "theta.pt"
    nir.write(path, graph)
    assert main(["import", str(path), "--out", str(ckpt), "--timesteps", str(T), "--reset", "subtract"]) == 0
    printed = capsys.readouterr().out
    assert ("import: 1 (LIF): per-neuron thresholds 0.5..2 (over the input gain) folded into '0''s weight columns "
            "(factors 2^0..2^2) under one threshold 2") in printed
    assert "import: 3 (LIF): input gain 1..4 divided out of the threshold" in printed
    back = load_checkpoint(ckpt)
    assert back.thresholds == [2.0, 1.0]
    assert torch.equal(back.fcs[0].weight, net[0].weight * 2) and torch.equal(back.fcs[1].weight, net[2].weight)
    assert np.array_equal(float_spikes(back, x)[-1], spikes)      # every output spike of the producer


# -- bad inputs: one line naming the node (or metadata key) and why; exit 2; no file ----------------------------


def _small_graph(weight=None, bias=None, scale=None, **lif) -> nir.NIRGraph:
    """Input 64 -> [Scale] -> Linear (Affine with ``bias``) 16 -> LIF -> Linear 10 -> LIF -> Output, with the
    first LIF's parameters overridden by ``lif``."""
    rng = np.random.default_rng(2)
    w0 = rng.normal(size=(16, 64)) if weight is None else weight

    def neurons(n: int, **kw) -> nir.LIF:
        p = dict(tau=np.full(n, 8e-4), r=np.full(n, 8.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                 v_reset=np.zeros(n))
        return nir.LIF(**(p | kw))

    nodes = {"in": nir.Input(input_type=np.array([64]))}
    if scale is not None:
        nodes["s"] = nir.Scale(scale=scale)
    nodes |= {"w0": nir.Linear(weight=w0) if bias is None else nir.Affine(weight=w0, bias=bias),
              "lif0": neurons(16, **lif), "w1": nir.Linear(weight=rng.normal(size=(10, 16))), "lif1": neurons(10),
              "out": nir.Output(output_type=np.array([10]))}
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)), type_check=False)


def _nan_at(shape, where, value=np.nan) -> np.ndarray:
    a = np.ones(shape)
    a[where] = value
    return a


def _learned_thresholds() -> nir.NIRGraph:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16, bias=False),
                              leaky(16, 0.875, threshold=torch.tensor([1.0, 1.5] * 8), learn_threshold=True),
                              torch.nn.Linear(16, 10, bias=False), leaky(10, 0.875, output=True))
    return export_to_nir(net, torch.zeros(64))


def _model_graph(metadata: str | None = None, **inner) -> nir.NIRGraph:
    rng = np.random.default_rng(3)
    model = Model(timesteps=4, metadata=inner, layers=tuple(
        Layer(weights=rng.integers(-8, 8, size=shape), weight_bits=4, membrane_bits=8, threshold=5, leak_shift=3,
              reset="subtract") for shape in ((64, 16), (16, 10))))
    graph = graph_of_model(model)
    if metadata is not None:
        graph.metadata[METADATA_KEY] = metadata
    return graph


BAD = {
    "nan weight": (lambda: _small_graph(weight=_nan_at((16, 64), (3, 5))),
                   "node 'w0' (Linear): weight holds 1 entries that are not finite float32 numbers (the first: nan at "
                   "(3, 5))"),
    "float32 overflow": (lambda: _small_graph(weight=_nan_at((16, 64), (0, 7), 1e39)),
                         "node 'w0' (Linear): weight holds 1 entries that are not finite float32 numbers (the first: "
                         "1e+39 at (0, 7))"),
    "inf bias": (lambda: _small_graph(bias=_nan_at(16, 2, -np.inf)),
                 "node 'w0' (Affine): bias holds 1 entries that are not finite float32 numbers (the first: -inf at "
                 "(2,))"),
    "nan scale": (lambda: _small_graph(scale=_nan_at(64, 9)),
                  "node 's' (Scale): scale holds 1 entries that are not finite float32 numbers (the first: nan at "
                  "(9,))"),
    "nan tau": (lambda: _small_graph(tau=_nan_at(16, 4) * 8e-4),
                "node 'lif0' (LIF): tau must be a positive number (inf: no leak), not nan (neuron 4)"),
    "negative r": (lambda: _small_graph(r=np.full(16, -8.0)),
                   "node 'lif0' (LIF): r must be a finite positive number, not -8 (neuron 0)"),
    "zero threshold": (lambda: _small_graph(v_threshold=_nan_at(16, 6, 0.0)),
                       "node 'lif0' (LIF): v_threshold must be a finite positive number, not 0 (neuron 6)"),
    "inf threshold": (lambda: _small_graph(v_threshold=_nan_at(16, 0, np.inf)),
                      "node 'lif0' (LIF): v_threshold must be a finite positive number, not inf (neuron 0)"),
    "nan v_leak": (lambda: _small_graph(v_leak=_nan_at(16, 1)),
                   "node 'lif0' (LIF): v_leak must be a finite number, not nan (neuron 1)"),
    "learned thresholds": (_learned_thresholds,
                           "node '1' (LIF): v_threshold / input gain differs between neurons (1..1.5) by ratios that "
                           "are not powers of two (neuron 0: 1.5); qlif has one threshold per layer, and folding a "
                           "neuron's own into its weights is exact in float32 only for a power-of-two ratio"),
    "metadata not a model": (lambda: _model_graph("[1, 2]"),
                             "graph metadata 'qlif_model': not a qlif model file ((top level): must be a JSON "
                             "object)"),
    "metadata seed": (lambda: _model_graph(seed="abc"),
                      "graph metadata 'qlif_model': metadata.seed must be a non-negative integer, not 'abc'"),
    "metadata max_rate": (lambda: _model_graph(max_rate="2"),
                          "graph metadata 'qlif_model': metadata.max_rate: max rate must lie in (0, 1], not '2'"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_graph_is_one_line_exit_2_no_file(case, tmp_path, capsys):
    make, why = BAD[case]
    path, out = tmp_path / "g.nir", tmp_path / "c.pt"
    nir.write(path, make())
    capsys.readouterr()
    assert main(["import", str(path), "--out", str(out), "--timesteps", "4", "--reset", "subtract"]) == 2
    assert capsys.readouterr().err == f"qlif: error: {path}: {why}\n"
    assert not out.exists()


def test_export_of_a_binary_file_is_one_line_exit_2_no_file(tmp_path, capsys):
    src, out = tmp_path / "g.nir", tmp_path / "out.nir"
    nir.write(src, _small_graph())                                 # HDF5: starts with byte 0x89
    assert main(["export", str(src), "--nir", str(out)]) == 2
    assert capsys.readouterr().err == (f"qlif: error: {src}: is not a JSON model file (not UTF-8 text: byte 0 is "
                                       "0x89)\n")
    assert not out.exists()
