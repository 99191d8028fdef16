"""The generated Verilog equals the golden model every timestep, under Icarus and under Verilator.

Builds are what costs time (a Verilator build is ~5-10 s once its runtime library is cached, ~20-50 s
the first time), so the matrix of layer parameters is covered by few designs: each model's layers differ
in weight bits, membrane bits, leak and reset, and each design runs several samples. Every run is
scored step by step by the cocotb scoreboard (``check=True``) and the returned Result is compared
again with :func:`first_mismatch`.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_hw_network import TIE_PREDICTIONS, tie_case

import qlif.hw.lif
from qlif.golden.spec import reference
from qlif.golden.spec.model import Layer, Model, default_codebook
from qlif.sim.compare import first_mismatch
from qlif.sim.runner import RtlMismatch, SimulationError, run_rtl

SIMULATORS = ["icarus", "verilator"]
T = 8


def _layer(rng, n_in, n_out, *, b, k, theta, leak, reset, codebook=None, tilt=0.0) -> Layer:
    """A random layer; ``tilt`` > 0 favours positive weights (so that a layer reaches its upper bound)."""
    book = np.asarray(codebook or default_codebook(b))
    p = np.exp(tilt * np.sign(book))
    w = rng.choice(book.astype(np.int64), size=(n_in, n_out), p=p / p.sum())
    return Layer(w, b, k, theta, leak, reset, None if codebook is None else tuple(codebook))


def _models() -> dict[str, Model]:
    """Two 3-layer models covering b {1,2,4,8}, k {4,8,16}, leak None/0/1/4, both resets, saturation
    (b=1 and b=2 into k=4, b=8 into k=8, a custom codebook reaching 100 into k=8) and odd layer widths
    (partial last groups at P=4)."""
    rng = np.random.default_rng(2026)
    mixed = Model(timesteps=T, layers=(
        _layer(rng, 20, 9, b=1, k=4, theta=1, leak=None, reset="subtract"),
        _layer(rng, 9, 6, b=8, k=16, theta=150, leak=4, reset="zero"),
        _layer(rng, 6, 5, b=4, k=8, theta=4, leak=0, reset="subtract"),
    ))
    book = [-40, -20, -9, -5, -3, -2, -1, 0, 1, 2, 3, 5, 9, 20, 40, 100]
    saturating = Model(timesteps=T, layers=(
        _layer(rng, 16, 7, b=2, k=4, theta=2, leak=1, reset="zero", tilt=1.0),
        _layer(rng, 7, 10, b=4, k=8, theta=30, leak=4, reset="subtract", codebook=book),
        _layer(rng, 10, 3, b=8, k=8, theta=0, leak=None, reset="zero"),
    ))
    for m in (mixed, saturating):
        m.validate()
    return {"mixed": mixed, "saturating": saturating}


MODELS = _models()
#: Layers whose membranes the stimuli must drive into a saturation bound (upper and lower).
SATURATING = {"mixed": (0,), "saturating": (0, 1, 2)}


def _stimuli(model: Model, samples: int = 3) -> np.ndarray:
    """Sparse, medium and dense samples, with an empty step and a full step in the first sample."""
    rng = np.random.default_rng(7)
    density = np.linspace(0.15, 0.8, samples)[:, None, None]
    x = (rng.random((samples, T, model.n_in)) < density).astype(np.uint8)
    x[0, 1] = 0
    x[0, 2] = 1
    return x


def _assert_stimuli_exercise(name: str, x: np.ndarray) -> None:
    """Guard against a test that passes because nothing happens: every layer must spike and stay
    silent sometimes, the saturating layers must each hit a bound, and the model both bounds."""
    model = MODELS[name]
    ref = reference.run(model, x)
    hit = set()
    for l, (layer, s, v) in enumerate(zip(model.layers, ref.spikes, ref.membranes, strict=True)):
        assert s.any() and not s.all(), f"layer {l} spikes never or always"
        if l in SATURATING[name]:
            bounds = {"upper"} if (v == layer.v_max).any() else set()
            bounds |= {"lower"} if (v == layer.v_min).any() else set()
            assert bounds, f"layer {l} never saturates"
            hit |= bounds
    assert hit == {"upper", "lower"}


def _mutate_verilog(monkeypatch, pattern: str, replacement: str, what: str, *, count: int | None = None) -> None:
    """Make ``generate`` return the Verilog with ``pattern`` replaced (a mutant of the RTL as built); the
    substitution must happen (``count`` times, if given), else the mutant no longer means anything."""
    import re

    import qlif.hw.verilog

    real = qlif.hw.verilog.generate

    def mutant(model, *, lanes, name, encoder=False):
        text, n = re.subn(pattern, replacement, real(model, lanes=lanes, name=name, encoder=encoder))
        assert n and (count is None or n == count), f"the generated Verilog no longer {what} as this mutant expects"
        return text

    monkeypatch.setattr(qlif.hw.verilog, "generate", mutant)

@pytest.mark.parametrize("lanes", [1, 4])
@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_rtl_equals_golden(simulator, name, lanes):
    model = MODELS[name]
    x = _stimuli(model)
    _assert_stimuli_exercise(name, x)
    got = run_rtl(model, x, simulator=simulator, lanes=lanes, check=True)
    assert first_mismatch(reference.run(model, x, lanes=lanes), got) is None


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_rtl_equals_golden_with_gaps_and_backpressure(simulator):
    model = MODELS["saturating"]
    x = _stimuli(model)
    ref = reference.run(model, x, lanes=4)
    free, stalled = {}, {}
    got = run_rtl(model, x, simulator=simulator, lanes=4, check=True, stats=free)
    assert first_mismatch(ref, got) is None
    got = run_rtl(model, x, simulator=simulator, lanes=4, check=True, gaps=True, seed=5, stats=stalled)
    assert first_mismatch(ref, got) is None
    # The gaps and stalls really happened (the simulation ran longer) yet step_cycles did not count them.
    assert stalled["sim_cycles"] > free["sim_cycles"] + ref.cycles.size


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_prediction_ties_go_to_the_lowest_index(simulator):
    """The tie stimuli of tests/test_hw_network.py (a higher output neuron reaches the maximum first, a
    lower one ties it later; overtakes both ways): the predictions follow the lowest-index rule. With the
    argmax tie term forced to 0 this fails (docs/verification.md)."""
    model, x = tie_case()
    got = run_rtl(model, x, simulator=simulator, lanes=2, check=True)
    assert first_mismatch(reference.run(model, x, lanes=2), got) is None
    assert got.prediction.tolist() == TIE_PREDICTIONS


def test_wrong_step_cycles_is_caught_at_the_ports(monkeypatch, tmp_path):
    """A ``step_cycles`` counter one too high fails even a run that does not compare with the golden
    model (``check=False``): the bench measures each step's cycles at the ports, and the counter
    contradicts them (tests/test_sim_checker.py: and a counter that agrees with a wrong model does not
    pass either)."""
    _mutate_verilog(monkeypatch, r"(= cycles \+ (?:\(\*[^*]*\*\) )?)2'h2;", r"\g<1>3'h3;",
                    "computes step_cycles as cycles + 2", count=1)
    model = MODELS["mixed"]
    with pytest.raises(SimulationError, match=r"sample 0, t 0: step_cycles says \d+, but the ports show"):
        run_rtl(model, _stimuli(model, 1), simulator="icarus", build_dir=tmp_path)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_invalid_tokens_are_dropped_and_flagged(simulator):
    """Out-of-range and non-ascending tokens change neither state nor step_cycles, and raise the error
    flags the scoreboard expects for each sample (it fails the run otherwise)."""
    model = MODELS["mixed"]
    x = _stimuli(model)
    got = run_rtl(model, x, simulator=simulator, lanes=4, check=True, bad_tokens=True, gaps=True, seed=3)
    assert first_mismatch(reference.run(model, x, lanes=4), got) is None


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_saturation_mutant_is_caught(simulator, monkeypatch):
    """An off-by-one upper saturation bound must be reported by both checkers."""
    real = qlif.hw.lif.saturate

    def off_by_one(value, width):
        from amaranth.hdl import C, Mux, signed
        hi = (1 << (width - 1)) - 2
        return Mux(value > hi, C(hi, signed(width)), real(value, width))

    model = MODELS["mixed"]
    x = _stimuli(model)
    monkeypatch.setattr(qlif.hw.lif, "saturate", off_by_one)
    got = run_rtl(model, x, simulator=simulator, lanes=1)
    msg = first_mismatch(reference.run(model, x, lanes=1), got)
    assert msg is not None and "layer" in msg
    with pytest.raises(RtlMismatch, match=r"sample \d+, t \d+, layer \d+, neuron \d+"):
        run_rtl(model, x, simulator=simulator, lanes=1, check=True)


def test_broken_verilog_is_a_simulation_error(monkeypatch, tmp_path):
    import qlif.hw.verilog

    monkeypatch.setattr(qlif.hw.verilog, "generate", lambda model, *, lanes, name, encoder=False: "module qlif_top(;\n")
    model = MODELS["mixed"]
    with pytest.raises(SimulationError, match="build"):
        run_rtl(model, _stimuli(model, 1), simulator="icarus", build_dir=tmp_path)


def test_hang_is_caught_by_the_watchdog(monkeypatch, tmp_path):
    """A design that never signals step_done ends in a SimulationError naming the step, not a hang."""
    _mutate_verilog(monkeypatch, r"(\bstep_done <= )", r"\g<1>1'h0 & ", "assigns step_done")
    model = MODELS["saturating"]
    with pytest.raises(SimulationError, match=r"sample 0, t 0: no step_done within \d+ cycles"):
        run_rtl(model, _stimuli(model, 1), simulator="icarus", build_dir=tmp_path)


def test_relative_build_dir(monkeypatch, tmp_path):
    """A relative build folder works: the simulator runs in its own folder, the runner must not care."""
    monkeypatch.chdir(tmp_path)
    model = MODELS["mixed"]
    x = _stimuli(model, 1)
    got = run_rtl(model, x, simulator="icarus", build_dir="relative/sim")
    assert first_mismatch(reference.run(model, x), got) is None
    assert (tmp_path / "relative" / "sim" / "icarus").is_dir()


def test_verilator_links_the_cached_runtime(tmp_path):
    """The first Verilator build in a folder compiles Verilator's runtime and keeps its objects; a later
    build links them instead of compiling them again (:func:`qlif.sim.runner.verilator_env`: the makefile's
    runtime list emptied, the objects in ``LOADLIBES``). Fails when Verilator's makefile stops honouring
    those variables, which would otherwise only show as slow builds (or as a link error)."""
    model = MODELS["mixed"]
    x = _stimuli(model, 1)
    logs = []
    for lanes in (1, 2):           # two designs, two builds
        stats = {}
        got = run_rtl(model, x, simulator="verilator", lanes=lanes, build_dir=tmp_path, stats=stats)
        assert first_mismatch(reference.run(model, x, lanes=lanes), got) is None
        logs.append((stats["run_dir"].parent / "build.log").read_text())
    assert "verilated_vpi.cpp" in logs[0]
    assert "verilated_vpi.cpp" not in logs[1] and "/verilated_vpi.o" in logs[1]
