"""Run the :class:`~qlif.hw.network.Network` RTL in Amaranth's simulator and record what the golden model does.

Three testbenches, one per port group: a driver (``clear`` and ``events``), a sink (``spikes``, with
optional backpressure) and a monitor (``trace``, ``step_done``, ``step_cycles``, ``prediction``). The
result has the layout of :class:`qlif.golden.spec.reference.Result`, so tests read
``assert rtl == golden``. With ``QLIF_WAVES=1`` each simulation writes a VCD into :data:`WAVES_DIR`
and prints its path (docs/verification.md, "Waveforms").
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from qlif.golden.spec.cycles import groups
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import Model
from qlif.golden.spec.reference import Result, check_inputs, frame_inputs
from qlif.hw.flash import POWER_DOWN, READ, RELEASE_POWER_DOWN
from qlif.hw.memory import MemoryPlan, spram_image
from qlif.hw.network import Network
from qlif.sim import coverage
from qlif.sim.waves import waves_requested

__all__ = ["RtlRun", "WAVES_DIR", "simulate", "simulate_tokens", "simulate_frames", "spi_flash"]

#: Where simulations write their VCDs when ``QLIF_WAVES`` is set (and not ``0``).
WAVES_DIR = BUILD_ROOT / "sim" / "amaranth"


@dataclass
class RtlRun:
    """What one RTL simulation recorded, per sample ``S`` and step ``T``."""

    result: Result                  # trace spikes/membranes per layer, prediction port, step_cycles
    stream_spikes: np.ndarray       # uint8 [S, T, n_out]: the ``spikes`` stream (1 where its address came)
    stream_ordered: bool            # every step's spikes stream was strictly ascending and ended by eot
    integrate_cycles: np.ndarray    # int64 [S, T]: counted cycles of integrate phases (all layers)
    trace_counts: np.ndarray        # int64 [S, T, L]: trace entries per layer (must be G_l each)
    padding_zero: bool              # trace lanes past n_out always read 0
    errors: np.ndarray              # int64 [S]: the error port at the sample's last step_done
    counts: np.ndarray              # int64 [S, n_out]: the counts port at the sample's last step_done
    total_cycles: int               # simulated clock cycles, waits included
    taken: list[list[int]]          # per step (samples in order), the cycle each address token was taken
    gap_runs: list[int]             # lengths of the runs of cycles events.valid was held low (stalls)
    stall_runs: list[int]           # lengths of the runs of cycles spikes.valid waited on ready


def simulate(model: Model, x: np.ndarray, *, lanes: int, stall: float = 0.0, seed: int = 0,
             memory: MemoryPlan | None = None) -> RtlRun:
    """Simulate stimuli ``x`` (uint8 [S, T, n_in]); ``stall`` is the chance per cycle of a gap on
    ``events.valid`` and of ``spikes.ready`` low. With a ``memory`` plan that puts synapses in SPRAM,
    a model of the SPI flash serves their weights to the core's loader first."""
    x = check_inputs(model, x)
    samples = [[list(np.flatnonzero(step)) for step in sample] for sample in x]
    run = simulate_tokens(model, samples, lanes=lanes, stall=stall, seed=seed, memory=memory)
    # Every token is valid here: the cycles between a step's consecutive tokens are layer 0's distances.
    coverage.record(coverage.observe(
        model, x, lanes, run.result, gap_runs=run.gap_runs, stall_runs=run.stall_runs,
        forwarding=[b - a for step in run.taken for a, b in zip(step, step[1:], strict=False)]))
    return run


def simulate_tokens(model: Model, samples: list[list[list[int]]], *, lanes: int, stall: float = 0.0,
                    seed: int = 0, memory: MemoryPlan | None = None) -> RtlRun:
    """Simulate raw address lists ``samples[s][t]`` (they may break the rules, to test ``error``).

    Every sample starts with a ``clear``; every step ends with an eot token.
    """
    if not 0.0 <= stall < 1.0:
        raise ValueError(f"stall must be in [0, 1), not {stall!r}")
    n_steps = len(samples[0]) if samples else 0
    if any(len(sample) != n_steps for sample in samples):
        raise ValueError("samples must all have the same number of steps")
    dut = Network(model=model, lanes=lanes, memory=memory)

    async def feed(ctx, rng, taken, gap_runs):
        now = 0                     # the driver's own cycle count: one per tick it awaits
        for sample in samples:
            while not ctx.get(dut.idle):
                await ctx.tick()
                now += 1
            ctx.set(dut.clear, 1)
            await ctx.tick()
            now += 1
            ctx.set(dut.clear, 0)
            for step in sample:
                taken.append([])
                for addr, eot in [*((int(a), 0) for a in step), (0, 1)]:
                    gap = 0
                    while stall and rng.random() < stall:
                        await ctx.tick()
                        gap += 1
                    if gap:
                        gap_runs.append(gap)
                    now += gap
                    ctx.set(dut.events.valid, 1)
                    ctx.set(dut.events.payload, {"addr": addr, "eot": eot})
                    while not (await ctx.tick().sample(dut.events.ready))[2]:
                        now += 1
                    if not eot:
                        taken[-1].append(now)
                    now += 1
                    ctx.set(dut.events.valid, 0)

    return _simulate(model, dut, feed, len(samples), n_steps, lanes=lanes, stall=stall, seed=seed, memory=memory)


def simulate_frames(model: Model, frames: np.ndarray, *, lanes: int, stall: float = 0.0, seed: int = 0,
                    memory: MemoryPlan | None = None) -> RtlRun:
    """Simulate the core with the on-chip encoder (:class:`~qlif.hw.encoder.EncodedNetwork`) on frames
    (integers [S, n_in], checked by :func:`~qlif.golden.spec.reference.frame_inputs`): each sample's frame
    goes in byte by byte (``stall``: the chance per cycle of a gap on ``frame.valid`` and of
    ``spikes.ready`` low), then the next waits for ``busy`` to fall. ``taken`` stays empty (the events
    are inside)."""
    from qlif.hw.encoder import EncodedNetwork

    if not 0.0 <= stall < 1.0:
        raise ValueError(f"stall must be in [0, 1), not {stall!r}")
    frames = np.asarray(frames)
    frame_inputs(model, frames)     # the checks (a ModelError naming what is wrong)
    dut = EncodedNetwork(model=model, lanes=lanes, memory=memory)

    async def feed(ctx, rng, taken, gap_runs):
        for frame in frames:
            while ctx.get(dut.busy):
                await ctx.tick()
            for value in frame:
                gap = 0
                while stall and rng.random() < stall:
                    await ctx.tick()
                    gap += 1
                if gap:
                    gap_runs.append(gap)
                ctx.set(dut.frame.valid, 1)
                ctx.set(dut.frame.payload, int(value))
                while not (await ctx.tick().sample(dut.frame.ready))[2]:
                    pass
                ctx.set(dut.frame.valid, 0)
            taken.extend([] for _ in range(model.timesteps))

    return _simulate(model, dut, feed, frames.shape[0], model.timesteps, lanes=lanes, stall=stall, seed=seed,
                     memory=memory)


def _simulate(model: Model, dut, feed, n_samples: int, n_steps: int, *, lanes: int, stall: float, seed: int,
              memory: MemoryPlan | None) -> RtlRun:
    """Run ``dut`` (a :class:`Network` or an :class:`~qlif.hw.encoder.EncodedNetwork`) with the testbench
    ``feed(ctx, rng, taken, gap_runs)`` driving its input, a sink on ``spikes`` and a monitor."""
    rng = np.random.default_rng(seed)
    n_layers = len(model.layers)
    width = [groups(layer.n_out, lanes) * lanes for layer in model.layers]
    spikes = [np.zeros((n_samples, n_steps, w), np.uint8) for w in width]
    membranes = [np.zeros((n_samples, n_steps, w), np.int32) for w in width]
    out = np.zeros((n_samples, n_steps, model.n_out), np.uint8)
    cycles = np.zeros((n_samples, n_steps), np.int64)
    integ = np.zeros((n_samples, n_steps), np.int64)
    trace_counts = np.zeros((n_samples, n_steps, n_layers), np.int64)
    prediction = np.zeros(n_samples, np.int64)
    errors = np.zeros(n_samples, np.int64)
    counts = np.zeros((n_samples, model.n_out), np.int64)
    state = {"done": 0, "ordered": True, "padding_zero": True, "cycles": 0}
    total = n_samples * n_steps
    taken, gap_runs, stall_runs = [], [], []

    async def driver(ctx):
        await feed(ctx, rng, taken, gap_runs)
        while state["done"] < total:
            await ctx.tick()

    async def sink(ctx):
        seen = {"step": 0, "last": -1}
        waited = 0
        while True:
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.spikes.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.spikes.valid, dut.spikes.payload)
            if valid and not ready:
                waited += 1
            elif waited:
                stall_runs.append(waited)
                waited = 0
            if not (valid and ready):
                continue
            s, t = divmod(seen["step"], n_steps)
            if payload.eot:
                seen["step"] += 1
                seen["last"] = -1
                continue
            addr = int(payload.addr)
            if addr <= seen["last"] or addr >= model.n_out:
                state["ordered"] = False
            else:
                out[s, t, addr] = 1
            seen["last"] = addr

    # A watchdog: a step that takes this many cycles has hung (a broken design, a mutant). Ten times the
    # longest legal step: every input spiking (n_in events of G cycles) and the fire pass, per layer.
    budget = 10 * sum(layer.n_in * groups(layer.n_out, lanes) + groups(layer.n_out, lanes) + 8
                      for layer in model.layers) + 1000
    image = spram_image(model, lanes, memory) if memory is not None and memory.uses_spram else None
    # Before the first step the loader reads the synapses from the flash model: a few SPI clock
    # cycles of the core per bit, far less than 64.
    first_budget = budget + (64 * 8 * len(image) if image is not None else 0)

    async def monitor(ctx):
        tr = dut.trace
        waited = 0
        async for (_, _, valid, layer, group, sp, mem, done, step_cycles, integrating, pred, err,
                   cnt) in ctx.tick().sample(
                tr.valid, tr.payload.layer, tr.payload.group, tr.payload.spikes, tr.payload.membrane, dut.step_done,
                dut.step_cycles, dut.integrating, dut.prediction, dut.error, dut.counts):
            state["cycles"] += 1
            waited = 0 if done else waited + 1
            if waited > (budget if state["done"] else first_budget) and state["done"] < total:
                s, t = divmod(state["done"], n_steps)
                raise RuntimeError(f"sample {s}, t {t}: no step_done within {waited - 1} cycles (the design "
                                   f"hangs)")
            if done and state["done"] < total:
                s, t = divmod(state["done"], n_steps)
                cycles[s, t] = step_cycles
                if t == n_steps - 1:
                    prediction[s] = pred
                    errors[s] = err
                    counts[s] = [int(cnt[i]) for i in range(model.n_out)]
                state["done"] += 1
            # The step_done cycle already belongs to the next step (it may take the next first token).
            if state["done"] >= total:
                continue
            s, t = divmod(state["done"], n_steps)
            integ[s, t] += integrating
            if valid:
                trace_counts[s, t, layer] += 1
                base = group * lanes
                for i in range(lanes):
                    spikes[layer][s, t, base + i] = (sp >> i) & 1
                    membranes[layer][s, t, base + i] = mem[i]
                    if base + i >= model.layers[layer].n_out and ((sp >> i) & 1 or mem[i]):
                        state["padding_zero"] = False

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    if memory is not None and memory.uses_spram:
        sim.add_testbench(spi_flash(dut.flash, image, offset=dut.flash_offset),
                          background=True)
    sim.add_testbench(driver)
    sim.add_testbench(sink, background=True)
    sim.add_testbench(monitor, background=True)
    if waves_requested():     # the switch of the cocotb runs too
        WAVES_DIR.mkdir(parents=True, exist_ok=True)
        fd, vcd = tempfile.mkstemp(prefix="run-", suffix=".vcd", dir=WAVES_DIR)
        os.close(fd)
        print(f"qlif: waveform {vcd}", file=sys.stderr)
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    result = Result(
        spikes=[s[..., :layer.n_out] for s, layer in zip(spikes, model.layers, strict=True)],
        membranes=[v[..., :layer.n_out] for v, layer in zip(membranes, model.layers, strict=True)],
        prediction=prediction,
        cycles=cycles,
    )
    return RtlRun(result=result, stream_spikes=out, stream_ordered=state["ordered"], integrate_cycles=integ,
                  trace_counts=trace_counts, padding_zero=state["padding_zero"], errors=errors,
                  counts=counts, total_cycles=state["cycles"], taken=taken, gap_runs=gap_runs,
                  stall_runs=stall_runs)


def spi_flash(port, image: bytes, *, offset: int):
    """An Amaranth testbench: a SPI NOR flash (mode 0) on ``port`` (:class:`~qlif.hw.flash.FlashSignature`)
    holding ``image`` at byte ``offset``, answering the read (``0x03``), release-from-power-down
    (``0xAB``) and deep power-down (``0xB9``) commands the loader sends; any other command, another start
    address, or a command other than ``0xAB`` while powered down fails."""

    async def testbench(ctx):
        prev_sck, prev_cs = 0, 0
        bits = shift = data_bit = 0
        address = None
        asleep = True                            # as the iCE40's configuration leaves it
        while True:
            # Values after the clock edge: the flash reacts to SCK within the cycle, as a real one does
            # (its output delay is a fraction of a clock period).
            await ctx.tick()
            sck, cs, copi = ctx.get(port.sck), ctx.get(port.cs), ctx.get(port.copi)
            if cs and not prev_cs:               # selected: a new command
                bits, shift, address, data_bit = 0, 0, None, 0
            if cs and sck and not prev_sck and address is None:   # rising SCK: copi sampled
                bits += 1
                shift = (shift << 1) | copi
                if bits == 8 and shift not in (READ, RELEASE_POWER_DOWN, POWER_DOWN):
                    raise AssertionError(f"flash: unknown command {shift:#04x}")
                if bits == 8 and asleep and shift != RELEASE_POWER_DOWN:
                    raise AssertionError(f"flash: command {shift:#04x} while in deep power-down")
                if bits == 8:
                    asleep = shift == POWER_DOWN
                if bits == 32 and shift >> 24 == READ:
                    address = shift & 0xFFFFFF
                    if address != offset:
                        raise AssertionError(f"flash: read from {address:#x}, image at {offset:#x}")
            if cs and prev_sck and not sck and address is not None:   # falling SCK: the next bit out
                byte_index, bit = divmod(data_bit, 8)
                # Past the image an erased flash reads ones (the SCK fall after the last bit gets here).
                byte = image[byte_index] if byte_index < len(image) else 0xFF
                ctx.set(port.cipo, (byte >> (7 - bit)) & 1)
                data_bit += 1
            prev_sck, prev_cs = sck, cs

    return testbench
