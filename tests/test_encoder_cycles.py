# amaranth: UnusedElaboratable=no
"""The encoded core's latency (:func:`qlif.golden.spec.cycles.encoded_cycles`) against the RTL.

:class:`~qlif.hw.encoder.EncodedNetwork` runs in Amaranth's simulator, frames fed with random gaps; the
cycles from each frame's last byte to ``done`` must equal the prediction exactly, on a model where the
encoder's scan dominates (many inputs, a small first layer) and on ones where the core does.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from qlif.golden.spec import reference
from qlif.golden.spec.cycles import CLEAR_OVERHEAD, encoded_cycles, groups
from qlif.golden.spec.random_model import random_model
from qlif.hw.encoder import EncodedNetwork

MNIST = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


def measure(model, frames: np.ndarray, *, lanes: int, gap: float, seed: int) -> list[int]:
    """Per frame, the cycles from the one that takes its last byte to the one ``done`` is high (both
    counted as one), fed with a gap before a byte at chance ``gap``; ``spikes.ready`` always high."""
    dut = EncodedNetwork(model=model, lanes=lanes)
    rng = np.random.default_rng(seed)
    latency = []

    async def bench(ctx):
        ctx.set(dut.spikes.ready, 1)
        for frame in frames:
            while ctx.get(dut.busy):
                await ctx.tick()
            for value in frame:
                while rng.random() < gap:
                    await ctx.tick()
                ctx.set(dut.frame.valid, 1)
                ctx.set(dut.frame.payload, int(value))
                while not (await ctx.tick().sample(dut.frame.ready))[2]:
                    pass
                ctx.set(dut.frame.valid, 0)
            cycles, done = 0, False
            while not done:
                done = (await ctx.tick().sample(dut.done))[2]
                cycles += 1
            latency.append(cycles)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return latency


def _case(sizes, timesteps, dataset, rate, lanes, samples, seed):
    model = replace(random_model(sizes, seed=seed, timesteps=timesteps, threshold="random"),
                    metadata={"dataset": dataset, "max_rate": rate})
    levels = 16 if dataset == "digits" else 255
    frames = np.random.default_rng(seed).integers(0, levels + 1, size=(samples, sizes[0])).astype(np.uint8)
    frames[0, 0] = levels            # input 0 spikes at step 0: the first token as early as it can be
    x = reference.frame_inputs(model, frames)
    cycles = reference.run(model, x, lanes=lanes).cycles
    return model, frames, cycles, encoded_cycles(model, lanes=lanes, inputs=x, cycles=cycles)


# (sizes, T, dataset, r, P, samples): the scan dominates (200 inputs at r = 1/8, G_0 = 2); the core dominates
# (G_0 = 32 a spike); the clear dominates the start (4 inputs, 64 groups); MNIST levels with phases and
# three layers.
CASES = {
    "scan": ([200, 8, 4], 8, "digits", "1/8", 4, 3),
    "core": ([64, 32, 10], 6, "digits", "1", 1, 2),
    "clear": ([4, 64, 3], 10, "digits", "1", 1, 2),
    "phases": ([30, 7, 9, 5], 6, "mnist", "2/3", 2, 3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_encoded_cycles_equal_the_rtl(name):
    sizes, timesteps, dataset, rate, lanes, samples = CASES[name]
    model, frames, cycles, want = _case(sizes, timesteps, dataset, rate, lanes, samples, seed=len(name))
    got = measure(model, frames, lanes=lanes, gap=0.2, seed=1)
    assert got == want.tolist()
    waits = want - cycles.sum(axis=1)     # beyond the counted cycles: the clear, the scan's waits
    start = max(groups(layer.n_out, lanes) for layer in model.layers) + CLEAR_OVERHEAD
    if name == "scan":
        # More than a scan per step: the core waits for the encoder at every step.
        assert (waits > timesteps * sizes[0] // 2).all()
    if name == "core":
        # The scan hides behind the core but for its start: the same small wait on every sample.
        assert (waits < start + 3 * timesteps).all()


@pytest.mark.slow
def test_encoded_cycles_mnist_784_44_10():
    # The wake-up report's ternary MNIST shape (T = 8, P = 4, r = 1) on real test images, where the
    # core waits for the 785-cycle scan (10 s).
    if not (MNIST / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST IDX files not found in {MNIST}")
    from qlif.golden.data.datasets import load_split

    model = replace(random_model([784, 44, 10], seed=1, timesteps=8, weight_bits=2, threshold="random"),
                    metadata={"dataset": "mnist"})
    frames = np.rint(load_split("mnist", data_dir=MNIST, test_count=4).x_test * 255).astype(np.uint8)
    x = reference.frame_inputs(model, frames)
    cycles = reference.run(model, x, lanes=4).cycles
    want = encoded_cycles(model, lanes=4, inputs=x, cycles=cycles)
    assert measure(model, frames, lanes=4, gap=0.0, seed=0) == want.tolist()
    assert (want - cycles.sum(axis=1) > 1000).all()


def test_encoded_cycles_checks_shapes():
    model, _, cycles, _ = _case([5, 3], 2, "digits", "1", 1, 1, seed=1)
    with pytest.raises(ValueError, match="inputs must be"):
        encoded_cycles(model, lanes=1, inputs=np.zeros((1, 2, 4), np.uint8), cycles=cycles)
    with pytest.raises(ValueError, match="lanes"):
        encoded_cycles(model, lanes=3, inputs=np.zeros((1, 2, 5), np.uint8), cycles=cycles)


def test_busy_holds_from_a_frame_taken_early_to_its_done():
    """A frame fed back to back is taken while the core runs the previous sample's last step (``frame.ready``
    is the encoder's, not the core's); ``busy`` must still stay high from then until that frame's
    ``done`` (it once fell when the clear coincided with the last ``step_done``), and every prediction
    must equal golden."""
    model = replace(random_model([4, 64, 3], seed=3, timesteps=2, threshold="random"),
                    metadata={"dataset": "digits"})
    frames = np.full((3, 4), 16, np.uint8)
    dut = EncodedNetwork(model=model, lanes=1)
    log = []

    async def bench(ctx):
        ctx.set(dut.spikes.ready, 1)
        for frame in frames:
            for value in frame:
                ctx.set(dut.frame.valid, 1)
                ctx.set(dut.frame.payload, int(value))
                while not (await ctx.tick().sample(dut.frame.ready))[2]:
                    pass
            ctx.set(dut.frame.valid, 0)
        for _ in range(2000):
            await ctx.tick()

    async def monitor(ctx):
        async for _clk, _rst, busy, done, pred in ctx.tick().sample(dut.busy, dut.done, dut.prediction):
            log.append((busy, done, pred))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_process(monitor)
    sim.run_until(3e-3)
    dones = [i for i, (_, done, _) in enumerate(log) if done]
    golden = reference.run(model, reference.frame_inputs(model, frames), lanes=1).prediction
    assert [log[i][2] for i in dones] == golden.tolist()
    first_busy = next(i for i, (busy, _, _) in enumerate(log) if busy)
    for start, end in zip([first_busy, *dones[:-1]], dones, strict=True):
        low = [i for i in range(start + 1, end) if not log[i][0]]
        assert not low, f"busy low for {len(low)} cycles before the done at cycle {end}"
