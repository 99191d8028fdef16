"""``qlif`` subcommands of the boards package: build, run, wakeup-report."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from qlif.clitools import AddCommand, CLIError, count_arg, lanes_arg, load_inputs, load_model_arg, mhz_arg, positive_arg
from qlif.golden.spec.files import write_npz

__all__ = ["register"]


def _build_model(args):
    """The model of ``qlif build``: the model file, or a random model of ``--random`` sizes."""
    if (args.model is None) == (args.random is None):
        raise CLIError("build: give a model file or --random SIZES (one of them)")
    if args.model is not None:
        return load_model_arg(args.model)
    from qlif.golden.spec.random_model import random_model

    try:
        sizes = [int(n) for n in args.random.split(",")]
    except ValueError:
        raise CLIError(f"build: --random must list layer sizes, e.g. 64,128,10, not {args.random!r}") from None
    try:
        return random_model(sizes, timesteps=args.timesteps, weight_bits=args.weight_bits,
                            membrane_bits=args.membrane_bits)
    except ValueError as e:       # too few sizes, or widths the model file refuses (a ModelError says which)
        raise CLIError(f"build: --random {args.random}: {e}") from None


def cmd_build(args) -> int:
    from qlif.boards.flow.build import build
    from qlif.boards.flow.reports import summary

    model = _build_model(args)
    try:
        report = build(model, board=args.board, lanes=args.lanes, baud=args.baud, out_dir=Path(args.out_dir),
                       name=args.name, seed=args.seed, clk_freq=None if args.clk_mhz is None else args.clk_mhz * 1e6,
                       separate_clocks=not args.one_clock, wakeup=args.wakeup, encoder=args.encoder)
    except ValueError as e:       # a bad option, or a model that fits no memory of the device (with numbers)
        raise CLIError(f"build: {e}") from None
    except RuntimeError as e:     # a tool failed: the stage, its exit status and the end of its log
        raise CLIError(f"build: {e}") from None
    encoder = " with the on-chip encoder" if report["encoder"] else ""
    print(f"build: {args.board}{encoder}: bitstream {report['bitstream']}; {summary(report)}; "
          f"report {report['files']['report_md']}")
    return 0     # a missed clock is reported (the summary line and the build's TIMING NOT MET line), not an error


def _load_labels(path: str, n_samples: int, n_out: int):
    import numpy as np

    labels = load_inputs(path)
    if labels.shape != (n_samples,) or labels.dtype.kind not in "iu":
        raise CLIError(f"{path}: labels must be an integer array [{n_samples}] (one per sample), not "
                       f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_out):
        raise CLIError(f"{path}: labels must be classes 0..{n_out - 1}")
    return labels.astype(np.int64)


def _open(args, model):
    from qlif.boards.host.driver import open_board

    try:
        return open_board(args.port, baud=args.baud, timeout=args.timeout, model=model)
    except ValueError as e:        # a bad baud rate or emu:// URL
        raise CLIError(f"--port {args.port}: {e}") from None
    except Exception as e:         # serial.SerialException: no such port, busy, no permission
        code = getattr(e, "errno", None)
        reason = os.strerror(code) if isinstance(code, int) else str(e) or type(e).__name__
        raise CLIError(f"cannot open port {args.port}: {reason}") from None


def cmd_run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from qlif.boards.host.driver import Board, BoardTimeout, LinkError
    from qlif.golden.spec.reference import check_inputs, run

    model = load_model_arg(args.model)
    x = check_inputs(model, load_inputs(args.inputs))
    labels = _load_labels(args.labels, len(x), model.n_out) if args.labels else None
    port = _open(args, model)
    t0 = time.monotonic()
    try:
        board = Board(port, retries=args.retries)
        status = board.connect(model)
        with tqdm(total=len(x), desc="run", unit="sample", file=sys.stderr, disable=args.quiet or None) as bar:
            got = board.classify(x, progress=lambda n: bar.update(n - bar.n))
        counters = board.status().counters
    except BoardTimeout as e:
        print(f"qlif: error: {args.port}: {e} (waited {args.timeout} s per read; is the board programmed with "
              f"the bitstream of {args.model}, and its UART at {args.baud} baud?)", file=sys.stderr)
        return 1
    except LinkError as e:
        print(f"qlif: error: {args.port}: {e}", file=sys.stderr)
        return 1
    finally:
        close = getattr(port, "close", None)
        if close:
            close()
    seconds = time.monotonic() - t0

    golden = run(model, x, lanes=status.lanes)
    same = got.prediction == golden.prediction
    same_cycles = got.cycles == golden.cycles.sum(axis=1)
    if args.out:
        write_npz(args.out, {**got.to_npz_dict(), "golden_prediction": golden.prediction,
                             "golden_cycles": golden.cycles.sum(axis=1)})
    per = 1e3 * seconds / max(1, len(x))
    print(f"run: {len(x)} samples on {args.port} in {seconds:.2f} s ({per:.1f} ms per sample, "
          f"{int(got.cycles.mean()) if len(x) else 0} core cycles per sample, P={status.lanes})")
    print(f"run: predictions equal the integer model on {int(same.sum())}/{len(x)} samples, core cycles the "
          f"cycle model on {int(same_cycles.sum())}/{len(x)}")
    if labels is not None:
        correct = int((got.prediction == labels).sum())
        print(f"run: accuracy {100 * correct / max(1, len(x)):.2f}% ({correct}/{len(x)})")
    errors = {k: v for k, v in counters.items() if k != "frames_ok" and v}
    if got.retries or errors:
        print(f"run: {got.retries} samples sent again after line errors; board counters {errors}", file=sys.stderr)
    if not same.all():
        s = int(np.flatnonzero(~same)[0])
        print(f"qlif: error: the board differs from the integer model: sample {s} predicted "
              f"{got.prediction[s]}, expected {golden.prediction[s]}", file=sys.stderr)
        return 1
    return 0


def _seconds_arg(value: str) -> float:
    import argparse

    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {value!r}")
    return seconds


def cmd_wakeup_report(args) -> int:
    from qlif.boards.sweep.wakeup_render import table, write_all
    from qlif.boards.sweep.wakeup_report import compute, gather, model_key, test_frames
    from qlif.golden.data.split import DataError

    models = [(Path(path).stem, load_model_arg(path)) for path in args.models]
    names = [name for name, _ in models]
    if len(set(names)) != len(names):
        raise CLIError(f"wakeup-report: two models named {sorted(n for n in names if names.count(n) > 1)[0]!r} "
                       "(the file names label the rows)")
    if args.spram_sleep_ua is not None and not 0 <= args.spram_sleep_ua < 1e6:
        raise CLIError(f"wakeup-report: --spram-sleep-ua must be a non-negative current in uA, "
                       f"not {args.spram_sleep_ua:g}")
    if not 0 < args.sck_mhz <= 12:
        raise CLIError(f"wakeup-report: --sck-mhz must be in (0, 12] (the SPI target's constraint), "
                       f"not {args.sck_mhz:g}")
    cache = Path(args.cache_dir)

    def progress(line: str) -> None:
        print(f"wakeup-report: {line}", file=sys.stderr, flush=True)

    if len(args.lanes) not in (1, len(models)):
        raise CLIError(f"wakeup-report: --lanes gives {len(args.lanes)} values for {len(models)} models "
                       "(one for all, or one each)")
    reports = []
    for (name, model), lanes in zip(models, args.lanes * len(models) if len(args.lanes) == 1 else args.lanes,
                                    strict=True):
        try:
            from qlif.boards.tops.wakeup import WakeupCore, WakeupPlatform
            from qlif.hw.memory import plan_memories

            # The wake-up build's own checks (a model too big for the device), before any run.
            WakeupCore.check(model=model, lanes=lanes, core_freq=(args.clk_mhz or 12) * 1e6,
                             memory=plan_memories(model, lanes, WakeupPlatform.device))
            frames, workload = test_frames(model, data_dir=args.data_dir)
        except (ValueError, DataError) as e:     # SPRAM, a frequency, no data: the model cannot be reported
            raise CLIError(f"wakeup-report: {name}: {e}") from None
        try:
            inputs, mhz, choice = gather(model, name=name, lanes=lanes, clk_mhz=args.clk_mhz,
                                         folder=cache / f"{name}-{model_key(model, lanes)}", frames=frames,
                                         workload=workload, activity_samples=args.activity_samples,
                                         check_samples=args.check_samples, cycle_samples=args.cycle_samples,
                                         rebuild=args.rebuild, progress=progress)
        except (ValueError, RuntimeError) as e:   # no SB_HFOSC frequency met; a tool failed (its log's end)
            raise CLIError(f"wakeup-report: {name}: {e}") from None
        reports.append(compute(inputs, clk_mhz=mhz, clock_choice=choice, sck_hz=args.sck_mhz * 1e6,
                               spram_sleep_ua=args.spram_sleep_ua))
    command = "qlif wakeup-report " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["wakeup-report"] else ""
    files = write_all(reports, Path(args.out_dir), args.name, command=command)
    print(table(reports), end="")
    print(f"wakeup-report: {', '.join(str(p) for p in files.values())}")
    return 0


def _hfosc_mhz(value: str) -> float:
    import argparse

    from qlif.boards.tops.wakeup import HFOSC_FREQS

    mhz = mhz_arg(value)
    if mhz * 1e6 not in HFOSC_FREQS:
        choices = ", ".join(f"{f / 1e6:g}" for f in HFOSC_FREQS)
        raise argparse.ArgumentTypeError(f"must be an SB_HFOSC frequency ({choices} MHz), not {value}")
    return mhz


def register(add: AddCommand) -> None:
    """Add this package's subcommands to the ``qlif`` parser."""
    from qlif.boards.host.driver import DEFAULT_TIMEOUT
    from qlif.boards.protocol import DEFAULT_BAUD
    from qlif.boards.tops.registry import BOARDS

    sp = add("build", cmd_build, "synthesise, place and route a bitstream with a report")
    sp.add_argument("model", nargs="?", help="model file (qlif-model JSON); or --random")
    sp.add_argument("--random", metavar="SIZES", help="instead of a model file: a random model of these layer "
                                                      "sizes, e.g. 64,128,10")
    sp.add_argument("--timesteps", type=positive_arg, default=8, help="with --random (default 8)")
    sp.add_argument("--weight-bits", type=int, default=4, help="with --random (default 4)")
    sp.add_argument("--membrane-bits", type=int, default=8, help="with --random (default 8)")
    sp.add_argument("--board", choices=sorted(BOARDS), default="icebreaker")
    sp.add_argument("--lanes", type=lanes_arg, default=4)
    sp.add_argument("--baud", type=positive_arg, default=DEFAULT_BAUD,
                    help=f"UART baud rate of the host link (default {DEFAULT_BAUD})")
    sp.add_argument("--out-dir", default="build/board", help="build folder, inside the project's build/")
    sp.add_argument("--name", default="qlif", help="base name of the products (<name>.bin ...; default qlif)")
    sp.add_argument("--clk-mhz", type=mhz_arg, default=None,
                    help="core clock made by the board's PLL, also the timing constraint (default: the board "
                         "oscillator for everything)")
    sp.add_argument("--one-clock", action="store_true",
                    help="with --clk-mhz: the host link on the PLL clock too (no clock-domain crossing; packs "
                         "better on a nearly full iCE40)")
    sp.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    sp.add_argument("--encoder", action="store_true",
                    help="the on-chip spike encoder behind the UART: the host sends one frame per sample (FRAME, "
                         "docs/host-protocol.md) instead of every step's spikes")
    sp.add_argument("--wakeup", action="store_true",
                    help="the wake-up build (icebreaker): frames over SPI, the core on the UP5K's SB_HFOSC, stopped "
                         "while idle; --clk-mhz is then the oscillator's, 48, 24, 12 (default) or 6")

    sp = add("run", cmd_run, "classify stimuli on a board over its UART (docs/host-protocol.md)")
    sp.add_argument("model", help="the model file the board's bitstream was built from (checked against it)")
    sp.add_argument("--port", required=True,
                    help="serial port (/dev/ttyUSB1, COM5), a pyserial URL, or emu:// for a software board")
    sp.add_argument("--inputs", required=True, help="stimuli .npy, uint8 [S, T, n_in] of 0/1")
    sp.add_argument("--labels", help="true classes .npy, int [S]: print the accuracy")
    sp.add_argument("--out", help="results .npz: prediction, counts, cycles, wake (and the golden ones)")
    sp.add_argument("--baud", type=positive_arg, default=DEFAULT_BAUD, help=f"default {DEFAULT_BAUD}")
    sp.add_argument("--timeout", type=_seconds_arg, default=DEFAULT_TIMEOUT,
                    help=f"seconds to wait for a reply (default {DEFAULT_TIMEOUT})")
    sp.add_argument("--retries", type=int, default=3, help="resends of a sample after a line error (default 3)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")

    sp = add("wakeup-report", cmd_wakeup_report,
             "average power of the UP5K wake-up build against the inference rate (0.1 to 100 per s): table, CSV, "
             "PNG, JSON (docs/power.md, Wake-up power)")
    sp.add_argument("models", nargs="+", metavar="MODEL", help="model file(s) (qlif-model JSON); one row set each")
    sp.add_argument("--lanes", type=lambda v: [lanes_arg(p) for p in v.split(",")], default=[4],
                    help="lanes P: one for every model, or a comma-separated list, one per model (default 4)")
    sp.add_argument("--clk-mhz", type=_hfosc_mhz, default=None,
                    help="the SB_HFOSC frequency (48, 24, 12 or 6); default: the lowest energy per inference of "
                         "those the build meets timing at (one build at 48 MHz gives Fmax)")
    sp.add_argument("--sck-mhz", type=float, default=1.0, help="the SPI host's SCK (default 1; at most 12)")
    sp.add_argument("--data-dir", help="folder of the MNIST IDX files (a model whose metadata names mnist)")
    sp.add_argument("--activity-samples", type=positive_arg, default=8,
                    help="test samples of the activity simulation (Verilator with waveforms; default 8)")
    sp.add_argument("--check-samples", type=count_arg, default=2,
                    help="frames of the wake-up RTL simulation that checks the cycles (encoded_cycles + the "
                         "top's per-frame edges) against its clock edges (default 2; 0: no check)")
    sp.add_argument("--spram-sleep-ua", type=float, default=None,
                    help="current (uA) of each sleeping SPRAM block beyond the blank chip's static power "
                         "(default: 0, the power model's assumption; docs/power.md, SPRAM)")
    sp.add_argument("--cycle-samples", type=positive_arg, default=200,
                    help="test samples the golden cycle model is averaged over (default 200)")
    sp.add_argument("--cache-dir", default="build/wakeup-report",
                    help="builds, cycles and activity are kept here, per model (default build/wakeup-report)")
    sp.add_argument("--rebuild", action="store_true", help="measure again, ignoring the cache")
    sp.add_argument("--out-dir", default="build/wakeup-report", help="where NAME.csv/.json/.png/.md go")
    sp.add_argument("--name", default="wakeup-power", help="base name of the outputs (default wakeup-power)")
