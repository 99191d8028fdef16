"""UART bytes per inference and samples/s over the UART, before (spikes per step: SPIKES/STEP) and after
(one frame per sample: FRAME, encoded on chip), for the digits model and a 784-input MNIST model.

Three kinds of figure, each labelled in the output:

* **bytes** (measured): the host driver (:class:`~qlif.boards.host.driver.Board`) runs ``classify`` and
  ``classify_frames`` on the software board (:class:`~qlif.boards.host.emulator.BoardModel`, golden) and
  the bytes it writes and reads are counted; both runs' predictions are checked equal to golden.
* **samples/s at the board's baud** (computed): the driver pipelines requests, so a sample takes the
  longest of its request bytes on the line, its reply bytes on the line, and the board's work; the work
  is the core's cycles (``golden.spec.cycles``, = the RTL's ``step_cycles``) plus, on the frame path, the
  encoder's scan and load (at most ``T (n_in + 1) + n_in`` cycles, :class:`~qlif.hw.encoder.SpikeEncoder`),
  at ``--clk-mhz``.
* **RTL link bench** (``--rtl N``, measured, slow): the same driver, unchanged, against the Verilog of the
  RTL ``HostLink`` without and with the encoder (``qlif build`` and ``qlif build --encoder`` without a
  PLL: the core on the link's clock) through its UART pins, under cocotb and Verilator (the link bench of
  sim/cocotb_link.py and sim/cocotb_link_frames.py), at ``--clk-mhz`` and the first ``--baud``: N
  samples of the digits model, the simulated time from ``classify`` / ``classify_frames``' first byte to
  the last result (end to end: samples/s = N / that time) and between the first and the last result
  (the pipeline's steady state), next to the computed figure; predictions, counts and cycles are checked
  equal to golden by the bench.

    .venv/bin/python benchmarks/bench_link_frames.py [--samples 200] [--baud 115200] [--clk-mhz 12] [--rtl 4]

Models: ``--digits-model`` (default build/wakeup/digits.json) and ``--mnist-model`` (default
build/regress-mnist/mnist_e1_ptq4.json); a missing file is replaced by a random model of the same
shape (64-128-10 T=16, 784-500-10 T=8; bytes do not depend on the weights, cycles do: said in the
output). MNIST needs ../shared/data/mnist (skipped with the reason when absent).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from qlif.boards.host.driver import Board
from qlif.boards.host.emulator import BoardModel, EmulatedPort
from qlif.boards.protocol import UART_BITS_PER_BYTE
from qlif.golden.data.datasets import load_split
from qlif.golden.spec.coding import FRAME_LEVELS
from qlif.golden.spec.model import load_model
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import frame_inputs, run

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"


class CountingPort(EmulatedPort):
    """The software board's port, counting the bytes each way."""

    def __init__(self, board):
        super().__init__(board)
        self.sent = self.received = 0

    def write(self, data):
        self.sent += len(data)
        return super().write(data)

    def read(self, size=1):
        out = super().read(size)
        self.received += len(out)
        return out


def _model(path: str, sizes, timesteps: int, dataset: str):
    p = ROOT / path
    if p.exists():
        return load_model(p), str(path)
    model = random_model(sizes, timesteps=timesteps, seed=1, threshold="random")
    return replace(model, metadata={"dataset": dataset}), f"random {'-'.join(map(str, sizes))} (no {path})"


def _measure(model, frames: np.ndarray, lanes: int) -> dict:
    """Bytes per sample each way, both paths, from the driver on the software board; golden checked."""
    golden = run(model, frame_inputs(model, frames), lanes=lanes)
    out = {"cycles": float(golden.cycles.sum(axis=1).mean())}
    for path in ("steps", "frames"):
        port = CountingPort(BoardModel(model, lanes=lanes, encoder=True))
        board = Board(port)
        board.connect(model)
        port.sent = port.received = 0
        got = (board.classify(frame_inputs(model, frames)) if path == "steps" else board.classify_frames(frames))
        if got.prediction.tolist() != golden.prediction.tolist():
            raise SystemExit(f"bench: the {path} path disagrees with golden")
        out[path] = (port.sent / len(frames), port.received / len(frames))
    return out


def _seconds(model, m: dict, path: str, baud: float, clk: float) -> tuple[float, float, float]:
    """(seconds per sample, line seconds, board's work in seconds) for a pipelined run."""
    line = max(m[path]) * UART_BITS_PER_BYTE / baud
    work = (m["cycles"] + (model.timesteps * (model.n_in + 1) + model.n_in if path == "frames" else 0)) / clk
    return max(line, work), line, work


def _rtl(model, frames: np.ndarray, lanes: int, clk: float, baud: int) -> dict:
    """Per path: (end-to-end seconds per sample, steady-state seconds per sample, wall seconds) on the RTL
    link bench under Verilator at ``clk`` and ``baud`` (the bench checks golden)."""
    from qlif.sim.link_frames import run_link_frames
    from qlif.sim.link_runner import run_link

    out = {}
    for path in ("steps", "frames"):
        wall = time.perf_counter()
        if path == "steps":
            stats = run_link(model, frame_inputs(model, frames), test="host_driver", simulator="verilator",
                             lanes=lanes, clk_freq=clk, baud=baud)
        else:
            stats = run_link_frames(model, frames, simulator="verilator", lanes=lanes, clk_freq=clk, baud=baud)
        t = np.asarray(stats["classify_ns"]) * 1e-9          # classify's start, then each result
        out[path] = ((t[-1] - t[0]) / len(frames), (t[-1] - t[1]) / (len(frames) - 1), time.perf_counter() - wall)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--baud", default="115200,1000000,3000000", help="line rates, comma-separated")
    ap.add_argument("--clk-mhz", type=float, default=12.0)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--digits-model", default="build/wakeup/digits.json")
    ap.add_argument("--mnist-model", default="build/regress-mnist/mnist_e1_ptq4.json")
    ap.add_argument("--rtl", type=int, default=0,
                    help="digits samples on the RTL link bench at --clk-mhz and the first --baud, at least 2 (minutes)")
    args = ap.parse_args(argv)
    clk = args.clk_mhz * 1e6
    if args.rtl == 1:
        ap.error("--rtl needs at least 2 samples (the time between the first and the last result)")
    bauds = [float(b) for b in args.baud.split(",")]

    cases = []
    model, name = _model(args.digits_model, [64, 128, 10], 16, "digits")
    cases.append(("digits", model, name, load_split("digits").x_test[:args.samples]))
    if (MNIST_DIR / "t10k-images-idx3-ubyte").exists() or (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        model, name = _model(args.mnist_model, [784, 500, 10], 8, "mnist")
        cases.append(("mnist", model, name, load_split("mnist", data_dir=MNIST_DIR, test_count=args.samples).x_test))
    else:
        print(f"mnist: skipped (no MNIST test images in {MNIST_DIR})")

    print(f"P = {args.lanes}, core at {args.clk_mhz:g} MHz; bytes per inference measured (driver on the software "
          f"board), samples/s computed (pipelined: max(line each way, board's work))")
    print(f"{'model':<8} {'path':<7} {'to board':>9} {'from board':>10} {'baud':>8} {'line ms':>8} {'work ms':>8} "
          f"{'samples/s':>9} {'bound':>5}")
    for label, model, name, images in cases:
        # The data sets' intensities are pixel / L exactly (float32): the pixels back, as `qlif golden --frames`.
        frames = np.rint(np.asarray(images).reshape(len(images), -1) * FRAME_LEVELS[label]).astype(np.uint8)
        m = _measure(model, frames, args.lanes)
        print(f"{label}: {name}, {model.n_in}-...-{model.n_out}, T = {model.timesteps}, {len(frames)} test samples, "
              f"core {m['cycles']:.0f} cycles per sample")
        for baud in bauds:
            for path in ("steps", "frames"):
                secs, line, work = _seconds(model, m, path, baud, clk)
                print(f"{'':<8} {path:<7} {m[path][0]:>9.1f} {m[path][1]:>10.1f} {baud:>8.0f} {1e3 * line:>8.2f} "
                      f"{1e3 * work:>8.2f} {1 / secs:>9.1f} {'link' if line >= work else 'board':>5}")
        if label == "digits" and args.rtl:
            baud = int(bauds[0])
            got = _rtl(model, frames[:args.rtl], args.lanes, clk, baud)
            sub = _measure(model, frames[:args.rtl], args.lanes)
            print(f"digits on the RTL link bench (Verilator, the Verilog of HostLink without / with the encoder, "
                  f"the core on the link's {args.clk_mhz:g} MHz clock, {baud} baud, {args.rtl} samples; "
                  f"measured in simulated time):")
            for path in ("steps", "frames"):
                secs = _seconds(model, sub, path, baud, clk)[0]
                total, steady, wall = got[path]
                print(f"{'':<8} {path:<7} end to end {1e3 * total:.2f} ms per sample ({1 / total:.1f} samples/s), "
                      f"steady state {1e3 * steady:.2f} ms ({1 / steady:.1f}/s); computed {1e3 * secs:.2f} ms "
                      f"({1 / secs:.1f}/s); {wall:.0f} s wall")


if __name__ == "__main__":
    main()
