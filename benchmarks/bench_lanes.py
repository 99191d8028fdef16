"""Synaptic operations per cycle against the lane count P, measured on the RTL in simulation.

Run: ``python benchmarks/bench_lanes.py``. One layer of 64 neurons (a multiple of 16, so every lane
count divides it) takes random input spikes; for each P the Amaranth simulation counts the cycles the
core spends in its integrate phase (``Network.integrating``, the end-of-step cycle included) and the
synaptic operations done (input events x neurons). The event-driven design should reach at least
0.9 * P operations per cycle.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from qlif.golden.spec.cycles import LANES
from qlif.golden.spec.model import Layer, Model
from qlif.golden.spec.reference import run
from qlif.sim.harness import simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=32, help="input neurons (default 32)")
    parser.add_argument("--neurons", type=int, default=64, help="output neurons, a multiple of 16 (default 64)")
    parser.add_argument("--steps", type=int, default=4, help="timesteps (default 4)")
    parser.add_argument("--density", type=float, default=0.5, help="input spike probability (default 0.5)")
    args = parser.parse_args()
    if args.neurons % 16:
        parser.error(f"--neurons must be a multiple of 16, not {args.neurons}")
    rng = np.random.default_rng(0)
    model = Model(timesteps=args.steps, layers=(Layer(
        weights=rng.integers(-8, 8, (args.inputs, args.neurons)), weight_bits=4, membrane_bits=8,
        threshold=20, leak_shift=3, reset="subtract"),))
    x = (rng.random((1, args.steps, args.inputs)) < args.density).astype(np.uint8)
    events = int(x.sum())
    ops = events * args.neurons
    print(f"{args.inputs} -> {args.neurons} neurons, {args.steps} steps, {events} input events, {ops} synaptic ops")
    print(f"{'P':>3} {'integrate cycles':>17} {'ops/cycle':>10} {'ratio to P':>11} {'step cycles':>12}"
          f" {'matches golden':>15} {'sim s':>6}")
    for lanes in LANES:
        start = time.perf_counter()
        rtl = simulate(model, x, lanes=lanes)
        gold = run(model, x, lanes=lanes)
        same = (np.array_equal(rtl.result.cycles, gold.cycles)
                and np.array_equal(rtl.result.membranes[0], gold.membranes[0]))
        cycles = int(rtl.integrate_cycles.sum())
        rate = ops / cycles
        print(f"{lanes:>3} {cycles:>17} {rate:>10.2f} {rate / lanes:>11.3f} {int(rtl.result.cycles.sum()):>12}"
              f" {str(same):>15} {time.perf_counter() - start:>6.1f}")


if __name__ == "__main__":
    main()
