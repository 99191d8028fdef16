# amaranth: UnusedElaboratable=no
"""The on-chip encoder's RTL against the golden model (docs/semantics.md, "On-chip encoding").

:class:`SpikeEncoder` alone, in Amaranth's simulator with a stand-in core (random ``ready``, ``idle``
late), must send exactly the golden spikes of every step of every sample; :class:`EncodedNetwork` (the
core fed by it) must equal the golden model of the frames at every step (spikes, membranes,
``step_cycles``, prediction) in Amaranth's simulator and, as generated Verilog, under Icarus and
Verilator.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from qlif.golden.spec import reference
from qlif.golden.spec.coding import encode_frames
from qlif.golden.spec.random_model import random_model
from qlif.hw.encoder import EncodedNetwork, SpikeEncoder
from qlif.sim.compare import first_mismatch
from qlif.sim.harness import simulate_frames
from qlif.sim.runner import run_rtl

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"

#: (n_in, T, L, r): one input and one step, the MNIST levels with phases (b > 1), a rate with a > 1,
#: full rate on both levels.
ENCODERS = [(1, 1, 16, "1"), (5, 4, 255, "3/16"), (13, 9, 16, "2/3"), (8, 3, 255, "1"), (6, 20, 16, "1/8")]


def _frames(rng, samples: int, n_in: int, levels: int, *, over: bool = False) -> np.ndarray:
    """Random frames with 0 and ``levels`` in every sample; ``over``: some values above ``levels``."""
    f = rng.integers(0, levels + 1, size=(samples, n_in))
    f[:, 0] = levels
    f[:, -1] = 0 if n_in > 1 else f[:, -1]
    if over:
        f[:, rng.integers(0, n_in, size=2)] = rng.integers(levels + 1, 256, size=2)
    return f.astype(np.uint8)


def _run_encoder(enc: SpikeEncoder, frames: np.ndarray, seed: int) -> tuple[list[list[list[int]]], list[str]]:
    """Feed ``frames`` to ``enc`` (random gaps) with a stand-in core: ``ready`` at random, ``idle`` only
    some cycles after each sample's last eot; return the addresses of every step and the protocol
    faults seen."""
    rng = np.random.default_rng(seed)
    steps: list[list[list[int]]] = []
    faults: list[str] = []
    n_steps = frames.shape[0] * enc.timesteps
    state = {"eots": 0, "cleared": 0, "idle_at": 0}

    async def source(ctx):
        for frame in frames:
            for value in frame:
                while rng.random() < 0.3:
                    await ctx.tick()
                ctx.set(enc.frame.valid, 1)
                ctx.set(enc.frame.payload, int(value))
                _, _, ready, busy = await ctx.tick().sample(enc.frame.ready, enc.busy)
                while not ready:
                    _, _, ready, busy = await ctx.tick().sample(enc.frame.ready, enc.busy)
                if busy:
                    faults.append("frame taken while busy")
                ctx.set(enc.frame.valid, 0)

    async def core(ctx):
        cycle, last, current = 0, None, []
        while state["eots"] < n_steps:
            # The core is idle again a few cycles after a sample's last step.
            idle = cycle >= state["idle_at"] and state["eots"] % enc.timesteps == 0
            ready = bool(rng.random() < 0.6) and state["cleared"] > state["eots"] // enc.timesteps
            ctx.set(enc.core_idle, idle)
            ctx.set(enc.events.ready, ready)
            _, _, valid, payload, clear = await ctx.tick().sample(enc.events.valid, enc.events.payload, enc.clear)
            cycle += 1
            if clear and idle:
                if valid:
                    faults.append("clear with a token offered")
                state["cleared"] += 1
            if valid and ready:
                if payload.eot:
                    if payload.addr != 0:
                        faults.append("eot with an address")
                    steps.append(current)
                    current, last = [], None
                    state["eots"] += 1
                    if state["eots"] % enc.timesteps == 0:
                        state["idle_at"] = cycle + int(rng.integers(0, 6))
                else:
                    if last is not None and payload.addr <= last:
                        faults.append("addresses not ascending")
                    last = int(payload.addr)
                    current.append(last)

    sim = Simulator(enc)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(core)
    sim.run()
    return steps, faults


@pytest.mark.parametrize("n_in, T, levels, rate", ENCODERS)
def test_encoder_sends_golden_spikes(n_in, T, levels, rate):
    rng = np.random.default_rng(n_in * 100 + T)
    frames = _frames(rng, 3, n_in, levels, over=n_in > 4 and levels < 255)
    enc = SpikeEncoder(n_in=n_in, timesteps=T, levels=levels, max_rate=rate)
    steps, faults = _run_encoder(enc, frames, seed=T)
    assert faults == []
    # A value above L counts as L (the golden model refuses it: clip first).
    want = encode_frames(np.minimum(frames, levels), T, levels=levels, max_rate=rate)
    got = np.zeros_like(want)
    for i, addrs in enumerate(steps):
        got[i // T, i % T, addrs] = 1
    assert len(steps) == 3 * T and np.array_equal(got, want)
    assert want.any() and (n_in == 1 or not want.all())


def test_encoder_parameters_are_checked():
    for kwargs, match in (({"n_in": 0}, "n_in"), ({"n_in": True}, "n_in"), ({"timesteps": 0}, "timesteps"),
                          ({"levels": 100}, "levels"), ({"max_rate": "3/2"}, "max rate")):
        with pytest.raises(ValueError, match=match):
            SpikeEncoder(**{"n_in": 4, "timesteps": 2, "levels": 16, **kwargs})
    with pytest.raises(TypeError, match="model"):
        SpikeEncoder.for_model("model.json")


def _small_model():
    """Two layers on MNIST's levels with phases: 24 inputs, T = 12, r = 3/16."""
    model = random_model([24, 12, 5], seed=5, timesteps=12, threshold="random")
    return replace(model, metadata={"dataset": "mnist", "max_rate": "3/16"})


def _digits_model():
    """A digits-shaped model (64-32-10, T = 16, r = 1, the digits' 16 levels)."""
    model = random_model([64, 32, 10], seed=3, timesteps=16, threshold="random")
    return replace(model, metadata={"dataset": "digits"})


def test_encoded_network_refuses_bad_coding_metadata():
    with pytest.raises(ValueError, match="frame_levels"):
        EncodedNetwork(model=replace(_small_model(), metadata={"dataset": "cifar"}), lanes=2)
    with pytest.raises(ValueError, match="max rate"):
        EncodedNetwork(model=replace(_small_model(), metadata={"max_rate": "3/2"}), lanes=2)
    with pytest.raises(ValueError, match="flash_offset"):
        EncodedNetwork(model=_small_model(), lanes=2, flash_offset=-1)


@pytest.mark.parametrize("name, lanes, stall", [("small", 2, 0.3), ("digits", 8, 0.0)])
def test_encoded_network_amaranth(name, lanes, stall):
    model = _small_model() if name == "small" else _digits_model()
    rng = np.random.default_rng(lanes)
    levels = 255 if name == "small" else 16
    frames = _frames(rng, 3 if name == "small" else 2, model.n_in, levels)
    want = reference.run(model, reference.frame_inputs(model, frames), lanes=lanes)
    run = simulate_frames(model, frames, lanes=lanes, stall=stall, seed=1)
    assert first_mismatch(want, run.result) is None
    assert run.stream_ordered and run.padding_zero and (run.errors == 0).all()
    assert want.spikes[-1].any()


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_encoded_network_verilog(simulator):
    model = _small_model()
    frames = _frames(np.random.default_rng(9), 3, model.n_in, 255)
    got = run_rtl(model, frames=frames, simulator=simulator, lanes=2, gaps=True, seed=4, check=True)
    assert first_mismatch(reference.run(model, reference.frame_inputs(model, frames), lanes=2), got) is None


@pytest.mark.slow
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_encoded_network_verilog_digits(simulator):
    model = _digits_model()
    frames = _frames(np.random.default_rng(11), 10, model.n_in, 16)
    got = run_rtl(model, frames=frames, simulator=simulator, lanes=4, gaps=True, seed=5, check=True)
    assert first_mismatch(reference.run(model, reference.frame_inputs(model, frames), lanes=4), got) is None


def test_run_rtl_wants_inputs_or_frames():
    with pytest.raises(ValueError, match="either"):
        run_rtl(_small_model())


@pytest.mark.slow
def test_encoded_network_trained_digits_verilator():
    # The demo's model (4-bit PTQ of the stored float network) on the first 20 digits test images.
    from qlif.golden.data.datasets import load_digits_split
    from qlif.golden.training.checkpoint import load_checkpoint
    from qlif.golden.training.quantize import quantize
    from qlif.golden.training.train import TrainConfig

    config = TrainConfig()
    model = quantize(load_checkpoint(FIXTURES / "digits_float_seed0.pt"), weight_bits=4)
    frames = np.rint(load_digits_split(config.seed, config.test_fraction).x_test[:20] * 16).astype(np.uint8)
    want = reference.run(model, reference.frame_inputs(model, frames), lanes=4)
    got = run_rtl(model, frames=frames, simulator="verilator", lanes=4, gaps=True, seed=6, check=True)
    assert first_mismatch(want, got) is None


@pytest.mark.slow
def test_encoded_network_mnist_verilator():
    # 784-500-10 at r = 1/8 (phases in a ROM) on real MNIST frames.
    if not (MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST IDX files not found in {MNIST}")
    from qlif.golden.data.datasets import load_split

    model = replace(random_model([784, 500, 10], timesteps=16, weight_bits=4, membrane_bits=13, seed=1),
                    metadata={"dataset": "mnist", "max_rate": "1/8"})
    frames = np.rint(load_split("mnist", data_dir=MNIST, test_count=4).x_test * 255).astype(np.uint8)
    want = reference.run(model, reference.frame_inputs(model, frames), lanes=32)
    assert want.spikes[0].any() and not want.spikes[0].all()
    got = run_rtl(model, frames=frames, simulator="verilator", lanes=32, check=True)
    assert first_mismatch(want, got) is None
