# amaranth: UnusedElaboratable=no
"""The Network RTL against the golden reference, bit for bit and cycle for cycle (Amaranth simulator)."""

from __future__ import annotations

import numpy as np
import pytest

import qlif.hw.lif
from qlif.golden.spec.model import Layer, Model, ModelError
from qlif.golden.spec.random_model import random_model as generate_model
from qlif.golden.spec.reference import run
from qlif.hw.layer import NeuronLayer
from qlif.hw.network import Network
from qlif.hw.serializer import Serializer
from qlif.hw.verilog import generate
from qlif.sim.campaign import harness_mismatch
from qlif.sim.coverage import argmax_moves
from qlif.sim.harness import simulate, simulate_tokens


def random_model(seed: int, sizes: list[int], *, b: int, k: int, leak, reset: str, codebook=None,
                 timesteps: int = 5) -> Model:
    """Random weights from the codebook, random low thresholds; resets alternate between layers."""
    return generate_model(sizes, seed=seed, timesteps=timesteps, weight_bits=b, membrane_bits=k, leak_shift=leak,
                          reset=reset, codebook=codebook, threshold="random", alternate_resets=True)


def random_inputs(seed: int, model: Model, samples: int = 3, density: float = 0.45) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    x = (rng.random((samples, model.timesteps, model.n_in)) < density).astype(np.uint8)
    x[:, 0] = 0          # an empty step (just the eot token) in every sample
    return x


def assert_same(model: Model, x: np.ndarray, lanes: int, stall: float = 0.0):
    gold = run(model, x, lanes=lanes)
    rtl = simulate(model, x, lanes=lanes, stall=stall, seed=lanes)
    mismatch = harness_mismatch(model, lanes, gold, rtl)
    assert mismatch is None, mismatch
    return gold


# (weight bits, membrane bits, lanes, leak shift, first reset, codebook, layer sizes, stall)
CASES = [
    (1, 2, 1, None, "subtract", None, [6, 3], 0.0),
    (1, 16, 4, 4, "zero", None, [10, 9, 2], 0.3),
    (2, 4, 2, 0, "subtract", [-3, 0, 1, 5], [9, 5], 0.0),
    (4, 8, 4, 1, "zero", None, [12, 4, 4], 0.3),                          # G == 1 in both layers
    (8, 4, 1, 4, "subtract", None, [5, 4], 0.0),                          # saturates all the time
    (4, 16, 2, None, "zero", list(range(-24, 24, 3)), [9, 5, 3], 0.0),
    (8, 8, 4, 0, "subtract", [(c * 37) % 256 - 128 for c in range(256)], [7, 6], 0.3),
    (2, 2, 4, 1, "zero", None, [5, 3], 0.0),
    (1, 8, 2, 1, "subtract", [0, 3], [8, 8, 1], 0.3),                     # one output neuron
    (4, 5, 1, None, "subtract", None, [16, 12], 0.0),
]


@pytest.mark.parametrize("b,k,lanes,leak,reset,book,sizes,stall", CASES)
def test_matches_reference(b, k, lanes, leak, reset, book, sizes, stall):
    model = random_model(len(sizes) * 100 + b * 10 + k, sizes, b=b, k=k, leak=leak, reset=reset,
                         codebook=book)
    assert_same(model, random_inputs(b + k, model), lanes, stall)


def saturating_case() -> tuple[Model, np.ndarray]:
    model = random_model(7, [10, 6], b=4, k=4, leak=None, reset="subtract", timesteps=4)
    return model, random_inputs(7, model, samples=2, density=0.7)


def test_saturation_is_exercised():
    model, x = saturating_case()
    gold = assert_same(model, x, lanes=2)
    layer = model.layers[0]
    v = gold.membranes[0]
    assert (v == layer.v_max).any() and (v == layer.v_min).any()


def test_saturation_mutation_is_caught(monkeypatch):
    """An off-by-one saturation bound in the datapath must make the comparison fail."""
    original = qlif.hw.lif.saturate

    def off_by_one(value, width):
        return original(value, width) - (value > (1 << (width - 1)) - 2)

    monkeypatch.setattr(qlif.hw.lif, "saturate", off_by_one)
    model, x = saturating_case()
    with pytest.raises(AssertionError):
        assert_same(model, x, lanes=2)


def test_bad_tokens_are_dropped_and_flagged():
    model = random_model(3, [8, 5, 4], b=4, k=8, leak=2, reset="subtract", timesteps=3)
    good = [[[1, 4], [0, 2, 7], []], [[3], [5, 6], [2]]]
    bad = [[[1, 4, 9], [0, 2, 2, 7], []],        # 9 >= n_in; 2 repeated
           [[3], [5, 6], [2]]]                   # sample 2 after a clear: no error
    x = np.zeros((2, 3, 8), np.uint8)
    for s, sample in enumerate(good):
        for t, step in enumerate(sample):
            x[s, t, step] = 1
    gold = run(model, x, lanes=2)
    rtl = simulate_tokens(model, bad, lanes=2)
    for l in range(2):
        np.testing.assert_array_equal(rtl.result.membranes[l], gold.membranes[l])
        np.testing.assert_array_equal(rtl.result.spikes[l], gold.spikes[l])
    np.testing.assert_array_equal(rtl.result.cycles, gold.cycles)
    assert list(rtl.errors) == [3, 0]
    rtl = simulate_tokens(model, [[[5, 3], [], []]], lanes=2)
    assert list(rtl.errors) == [2]
    rtl = simulate_tokens(model, [[[8], [], []]], lanes=2)
    assert list(rtl.errors) == [1]
    rtl = simulate_tokens(model, [[[5, 9], [], []]], lanes=2)    # out of range, not also out of order
    assert list(rtl.errors) == [1]
    # n_in not a power of two: the addresses n_in .. 2^ceil(log2 n_in)-1 fit the port but are out of range.
    model = random_model(4, [6, 4], b=2, k=6, leak=1, reset="zero", timesteps=2)
    for tokens, errors in (([6], 1), ([7], 1), ([2, 6], 1), ([5], 0)):
        assert list(simulate_tokens(model, [[tokens, []]], lanes=2).errors) == [errors], tokens


def test_prediction_ties_go_to_the_lowest_index():
    """Output neurons 5, 4, 3 copy neurons 0, 1, 2, so every count is tied; the lower index must win."""
    rng = np.random.default_rng(11)
    half = rng.integers(-2, 8, size=(6, 3))
    model = Model(timesteps=6, layers=(Layer(weights=np.concatenate([half[:, ::-1], half], axis=1),
                                             weight_bits=4, membrane_bits=6, threshold=6, leak_shift=2,
                                             reset="subtract"),))
    x = random_inputs(11, model, samples=4, density=0.5)
    gold = assert_same(model, x, lanes=2)
    counts = gold.spikes[-1].sum(axis=1)
    top = counts.max(axis=1, keepdims=True)
    assert ((counts == top).sum(axis=1) > 1).all() and (top > 0).any()


#: Output spikes of the tie stimuli, per sample and step (the model passes input j to output j).
TIE_STEPS = [
    [[3], [1], [], [], [], []],                   # 3 reaches the maximum first, 1 ties it a step later
    [[4], [2, 4], [0, 2], [], [4], [2]],          # 2 ties 4 three times, once in the cycle before 4 overtakes
    [[3], [3], [1], [1], [1], [0, 3]],            # 1 ties 3, then overtakes it; 3 ties again and must lose
    [[4], [0, 1], [], [], [], []],                # 0 ties 4, then 1 ties too, one cycle behind 0's update
]
#: The predictions the lowest-index tie rule gives for them.
TIE_PREDICTIONS = [1, 2, 1, 0]


def tie_case() -> tuple[Model, np.ndarray]:
    """Stimuli whose predictions depend on the argmax tie rule: a higher-index output neuron reaches the
    maximum count first (an earlier step) and a lower one ties it later, so the lower one must take over
    (every sample), a lower one overtakes a higher one (sample 2) and a higher one the lower argmax
    (sample 1). Two layers of 5 neurons that pass
    input ``j`` to output ``j`` in the same step (weight 3 on the diagonal, 0 elsewhere, theta 2, leak shift
    0: no memory between steps), so the input spikes are the output spikes; with P = 2 the last group is
    partial."""
    diag = Layer(weights=3 * np.eye(5, dtype=np.int64), weight_bits=4, membrane_bits=6, threshold=2,
                 leak_shift=0, reset="zero")
    model = Model(timesteps=len(TIE_STEPS[0]), layers=(diag, diag))
    model.validate()
    x = np.zeros((len(TIE_STEPS), model.timesteps, model.n_in), np.uint8)
    for s, sample in enumerate(TIE_STEPS):
        for t, step in enumerate(sample):
            x[s, t, step] = 1
    return model, x


def test_tie_stimuli_exercise_the_tie_rule():
    """Guard: in the tie stimuli a lower index really ties a maximum that a higher one reached first, a
    lower one and a higher one overtake, and the golden predictions are the lowest index of the maximum."""
    model, x = tie_case()
    gold = run(model, x, lanes=2)
    np.testing.assert_array_equal(gold.spikes[-1], x)
    assert [argmax_moves(sample) for sample in gold.spikes[-1]] == [
        {"tie"}, {"tie", "higher overtakes"}, {"tie", "lower overtakes"}, {"tie"}]
    assert gold.prediction.tolist() == TIE_PREDICTIONS


def test_prediction_ties_won_after_a_higher_index_got_there_first():
    model, x = tie_case()
    gold = assert_same(model, x, lanes=2)
    assert gold.prediction.tolist() == TIE_PREDICTIONS


def tie_term_mutant():
    """``Network._count`` with its tie term forced to 0 (the source rewritten, nothing in hw/ touched):
    a lower neuron that only ties the maximum never becomes the argmax."""
    import inspect
    import re
    import textwrap

    import qlif.hw.network

    source, n = re.subn(r"ties\.append\((.*)\)$", r"ties.append((\1) & 0)",
                        textwrap.dedent(inspect.getsource(Network._count)), flags=re.MULTILINE)
    assert n == 1, "Network._count no longer appends its tie term as this mutant expects"
    scope = dict(vars(qlif.hw.network))
    exec(compile(source, qlif.hw.network.__file__, "exec"), scope)
    return scope["_count"]


def test_tie_mutant_is_caught(monkeypatch):
    """With the tie term forced to 0 the tie stimuli must fail (the default suite's other tests pass)."""
    monkeypatch.setattr(Network, "_count", tie_term_mutant())
    model, x = tie_case()
    with pytest.raises(AssertionError, match="prediction"):
        assert_same(model, x, lanes=2)


def test_clear_restores_fresh_state():
    model = random_model(5, [6, 6, 3], b=2, k=6, leak=1, reset="zero", timesteps=4)
    x = random_inputs(5, model, samples=1, density=0.8)
    rtl = simulate(model, np.concatenate([x, x, x]), lanes=1)
    for l in range(2):
        assert (rtl.result.membranes[l] == rtl.result.membranes[l][:1]).all()
    assert (rtl.result.cycles == rtl.result.cycles[:1]).all()
    assert (rtl.counts == rtl.counts[:1]).all()


def test_parameters_are_checked():
    model = random_model(1, [4, 3], b=2, k=4, leak=None, reset="zero")
    with pytest.raises(TypeError, match="model must be"):
        Network(model="model.json", lanes=1)
    with pytest.raises(ValueError, match="lanes must be one of"):
        Network(model=model, lanes=3)
    with pytest.raises(ValueError, match="lanes must be one of"):
        NeuronLayer(layer=model.layers[0], lanes=128)
    with pytest.raises(TypeError, match="layer must be"):
        NeuronLayer(layer=model, lanes=1)
    with pytest.raises(ValueError, match="depth must be"):
        Serializer(lanes=2, depth=0, addr_width=4)
    with pytest.raises(ValueError, match="name must be"):
        generate(model, lanes=1, name="not a name")
    bad = Model(timesteps=2, layers=(Layer(weights=np.zeros((2, 2), np.int64), weight_bits=2,
                                           membrane_bits=4, threshold=9, leak_shift=None, reset="zero"),))
    with pytest.raises(ModelError, match="threshold"):
        Network(model=bad, lanes=1)


def test_verilog_has_pinned_ports():
    model = random_model(2, [5, 4], b=4, k=8, leak=3, reset="subtract")
    text = generate(model, lanes=2, name="qlif_top")
    assert "module qlif_top" in text
    for port in ("clk", "rst", "events__valid", "events__ready", "events__payload", "spikes__payload",
                 "trace__membrane", "trace__spikes", "step_done", "step_cycles", "clear", "idle", "error",
                 "prediction"):
        assert f" {port}" in text, port


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 32, 64])
def test_lowest_set_bit_tree(n):
    """The serializer's lowest-lane search (a multiplexer tree) against bit arithmetic."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from qlif.hw.serializer import _lowest

    m = Module()
    bits = Signal(n)
    index = _lowest(m, bits)
    rng = np.random.default_rng(n)
    values = [1 << i for i in range(n)] + [int(rng.integers(1, 1 << min(n, 62))) << int(rng.integers(0, max(1, n - 62)))
                                           for _ in range(200)]

    async def tb(ctx):
        for v in values:
            ctx.set(bits, v)
            assert ctx.get(index) == (v & -v).bit_length() - 1, v

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 13, 32, 64])
def test_second_lowest_and_at_most_two_trees(n):
    """The serializer's next-lane search and next ``single`` flag (functions of the mask alone) against
    bit arithmetic, on every mask with at least two bits set (small n) or random ones."""
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    from qlif.hw.serializer import _at_most_two, _second_lowest

    m = Module()
    bits = Signal(n)
    second = _second_lowest(m, bits)
    two = Signal()
    m.d.comb += two.eq(_at_most_two(bits))
    rng = np.random.default_rng(n)
    if n <= 8:
        values = [v for v in range(1 << n) if bin(v).count("1") >= 2]
    else:
        values = [(1 << i) | (1 << j) for i in range(n) for j in range(i + 1, n, 7)]
        values += [int(rng.integers(0, 1 << 62)) << int(rng.integers(0, n - 61)) if n > 62
                   else int(rng.integers(0, 1 << n)) for _ in range(300)]
        values = [v for v in values if bin(v).count("1") >= 2]

    async def tb(ctx):
        for v in values:
            ctx.set(bits, v)
            rest = v & (v - 1)
            assert ctx.get(second) == (rest & -rest).bit_length() - 1, v
            assert ctx.get(two) == (bin(v).count("1") <= 2), v

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
