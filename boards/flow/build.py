"""Bitstream builds with the YoWASP open toolchain.

:func:`build` elaborates a board top (:data:`qlif.boards.tops.registry.BOARDS`) for a model, runs Yosys
(``synth_ice40`` or ``synth_ecp5``), nextpnr and icepack/ecppack through Amaranth's build plan with the
tools of :mod:`qlif.boards.flow.tools`, and returns the report of
:func:`qlif.boards.flow.reports.parse_reports` with what was built. Every build writes ``report.json`` and
``report.md`` next to its bitstream. On the command line: ``qlif build``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from qlif.boards.flow.reports import CORE_CLOCK_NET, parse_reports, report_markdown, summary, timing_misses
from qlif.boards.flow.tools import tool_env
from qlif.boards.protocol import DEFAULT_BAUD
from qlif.boards.tops.registry import BOARDS, WAKEUP_BOARDS, family
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.model import Model
from qlif.hw.flash import DEFAULT_OFFSET as FLASH_OFFSET
from qlif.hw.memory import spram_image

__all__ = ["build", "build_seeds", "build_plan", "flow_options", "abc9_failure"]

#: Build stages and the product each one writes last, per family.
_STAGES = {
    "ice40": [("yosys synthesis", "{name}.json"), ("nextpnr place and route", "{name}.asc"),
              ("icepack", "{name}.bin")],
    "ecp5": [("yosys synthesis", "{name}.json"), ("nextpnr place and route", "{name}.config"),
             ("ecppack", "{name}.bit")],
}


def _run_plan(script: Path, cwd: Path, env: dict[str, str], stages: list[tuple[str, str]],
              progress: Callable[[str], None] | None) -> None:
    """Run the build script, reporting each stage (a stage is done when its output file appears)."""
    t0 = time.monotonic()

    def advance(stage: int) -> int:
        while stage < len(stages) and (cwd / stages[stage][1]).exists():
            if progress:
                progress(f"{stages[stage][0]} done ({time.monotonic() - t0:.0f} s)")
                if stage + 1 < len(stages):
                    progress(f"{stages[stage + 1][0]} ...")
            stage += 1
        return stage

    with subprocess.Popen(["sh", script.name], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        if progress:
            progress(f"{stages[0][0]} ...")
        stage = 0
        while proc.poll() is None:
            time.sleep(0.5)
            stage = advance(stage)
        output = proc.stdout.read()
    stage = advance(stage)
    if proc.returncode:
        failed = stages[min(stage, len(stages) - 1)][0]
        raise RuntimeError(f"build failed in {failed} (exit {proc.returncode}); logs in {cwd}:\n{output[-3000:]}")
    if progress:
        progress(f"build done ({time.monotonic() - t0:.0f} s)")


def _stderr(line: str) -> None:
    print(f"[qlif.boards] {line}", file=sys.stderr, flush=True)


def build(model: Model, *, board: str = "icebreaker", lanes: int = 4, baud: int = DEFAULT_BAUD,
          clk_freq: float | None = None, out_dir: str | os.PathLike | None = None, name: str = "qlif",
          seed: int = 1, progress: Callable[[str], None] | None = _stderr, synth_opts: str = "",
          separate_clocks: bool = True, wakeup: bool = False, encoder: bool = False) -> dict:
    """Build the bitstream of ``model`` for ``board`` and return its report (also ``report.json`` and
    ``report.md`` in the build directory).

    Parameters
    ----------
    model : qlif.golden.spec.model.Model
    board : str
        A key of :data:`BOARDS`.
    lanes : int
        P of the core.
    baud : int
        UART baud rate of the host link.
    clk_freq : float or None
        Clock of the design in Hz: ``None`` for the board oscillator, else made by the board's PLL
        (the nearest reachable frequency within 1 %). It is also the timing constraint: nextpnr works
        only as hard as it asks, so build near the target to learn what the design reaches.
    out_dir : path or None
        Build directory; default ``build/<board>-<name>`` under :data:`BUILD_ROOT`. It must lie inside
        :data:`BUILD_ROOT`, the only tree the YoWASP tools can see.
    name : str
        Base name of the products (``<name>.bin`` or ``<name>.bit`` ...).
    seed : int
        nextpnr placer seed (builds are reproducible for a given seed).
    progress : callable or None
        Called with one line per stage (default: printed to stderr); ``None`` is silent.
    synth_opts : str
        Extra options of Yosys' ``synth_ice40`` / ``synth_ecp5`` (e.g. ``-nolutram``).
    separate_clocks : bool
        With ``clk_freq``: the core on the PLL's clock and the host link on the oscillator (default), or
        both on the PLL's (``False``: no clock-domain crossing; packs better on a nearly full iCE40).
    wakeup : bool
        The wake-up build of :data:`WAKEUP_BOARDS` (:mod:`qlif.boards.tops.wakeup`): frames over SPI, the
        core on ``SB_HFOSC`` gated off while idle; ``clk_freq`` is then the oscillator's (48, 24, 12 or
        6 MHz; ``None``: 12), ``baud`` and ``separate_clocks`` do not apply.
    encoder : bool
        The host link with the on-chip encoder (:class:`~qlif.boards.tops.top.BoardTop`'s ``encoder``:
        ``FRAME`` requests). The wake-up build always has it; there ``True`` changes nothing.

    Returns
    -------
    dict
        :func:`parse_reports` plus ``bitstream`` (its absolute path), ``board``, ``device``, ``lanes``,
        ``baud``, ``clk_mhz`` (the core's clock, which is also its timing constraint; ``fmax_mhz`` is the
        core clock's Fmax), ``link_clk_mhz`` (the host link's: the board oscillator, or the PLL's with
        ``separate_clocks=False``), ``pll`` (bool: the core runs from the PLL), ``separate_clocks`` (bool:
        the core in a clock domain of its own), ``encoder`` (bool: the on-chip encoder is in), ``seed``,
        ``pins`` (signal -> board resource), ``model`` (layer sizes, timesteps, bit widths), ``wall_s``
        (seconds the tools took) and ``files`` (absolute paths of the bitstream, the two JSON reports, the
        logs and ``report.md``).
    """
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(sorted(BOARDS))}, not {board!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier (it names HDL modules and files), not {name!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    out = Path(out_dir) if out_dir is not None else BUILD_ROOT / f"{board}-{name}"
    out = out.resolve()
    if not out.is_relative_to(BUILD_ROOT.resolve()):
        raise ValueError(f"out_dir must lie inside {BUILD_ROOT} (YoWASP sees only that tree), not {str(out)!r}")
    if wakeup and board not in WAKEUP_BOARDS:
        raise ValueError(f"--wakeup is built for {', '.join(sorted(WAKEUP_BOARDS))}, not {board!r}")
    spec = (WAKEUP_BOARDS if wakeup else BOARDS)[board]
    fam = family(spec.platform)
    top = spec.top(model=model, lanes=lanes, baud=baud, clk_freq=clk_freq, device=spec.platform.device,
                   separate_clocks=separate_clocks, **({} if wakeup else {"encoder": encoder}))
    platform = spec.platform()
    plan = top.memory

    ext = "bin" if fam == "ice40" else "bit"
    files = {"bitstream": out / f"{name}.{ext}", "nextpnr_report": out / f"{name}.report.json",
             "yosys_stat": out / f"{name}.stat.json", "yosys_log": out / f"{name}.rpt",
             "nextpnr_log": out / f"{name}.tim", "report_json": out / "report.json",
             "report_md": out / "report.md"}
    if plan.uses_spram:
        # SPRAM is not in the bitstream: its weights go to the flash, loaded by the core at start-up.
        files["weights"] = out / f"{name}.weights.bin"
        files["flash_image"] = out / f"{name}.flash.bin"
    stages = [(stage, product.format(name=name)) for stage, product in _STAGES[fam]]
    # No stale product may pass for a fresh one (the stage outputs also mark progress).
    for path in [*files.values(), *(out / product for _, product in stages)]:
        path.unlink(missing_ok=True)
    if progress:
        progress(f"elaborating {board} top ({'-'.join(str(n) for n in _sizes(model))}, P={lanes}, "
                 f"{top.clk_freq / 1e6:.2f} MHz)")
    t0 = time.monotonic()
    mapper = "abc9"
    try:
        _run_flow(top, spec.platform(), out, name, seed, synth_opts, fam, stages, progress, abc9=True)
    except RuntimeError as e:
        # Yosys 0.70's ABC9 fails on some netlists (an assertion when it reintegrates the mapped design,
        # or flip-flops it leaves driving one net, which nextpnr refuses): map the LUTs with classic ABC.
        if fam != "ecp5" or not abc9_failure(out, name):
            raise
        if progress:
            progress(f"ABC9 failed ({e.args[0].splitlines()[0]}); again with classic ABC")
        mapper = "abc"
        _run_flow(top, spec.platform(), out, name, seed, synth_opts, fam, stages, progress, abc9=False)
    wall = time.monotonic() - t0
    if plan.uses_spram:
        _write_flash_image(files, spram_image(model, lanes, plan))

    report = {
        "bitstream": str(files["bitstream"]),
        "board": board,
        "description": spec.description,
        "device": f"{platform.device}-{platform.package}",
        "lanes": lanes,
        "baud": baud,
        "clk_mhz": top.clk_freq / 1e6,
        "link_clk_mhz": top.link_freq / 1e6,
        "pll": clk_freq is not None,
        "separate_clocks": top.separate_clocks,
        "wakeup": wakeup,
        "encoder": wakeup or encoder,
        "seed": seed,
        "synth_opts": synth_opts,
        "lut_mapper": mapper,
        "pins": top.pins(),
        "memory": plan.to_json(),
        "model": {"sizes": _sizes(model), "timesteps": model.timesteps,
                  "weight_bits": [layer.weight_bits for layer in model.layers],
                  "membrane_bits": [layer.membrane_bits for layer in model.layers]},
        **parse_reports(files["nextpnr_report"], files["yosys_stat"],
                        clock=CORE_CLOCK_NET if top.pll is not None else None),
        "wall_s": round(wall, 1),
        "files": {k: str(v) for k, v in files.items()},
    }
    files["report_json"].write_text(json.dumps(report, indent=2) + "\n")
    files["report_md"].write_text(report_markdown(report))
    if progress and not report["timing_met"]:
        progress(f"TIMING NOT MET: {timing_misses(report)}; the bitstream may not work")
    return report


def _write_flash_image(files: dict[str, Path], weights: bytes) -> None:
    """Write the SPRAM weights and the flash image (the bitstream, then the weights at the flash offset)."""
    bitstream = files["bitstream"].read_bytes()
    if len(bitstream) > FLASH_OFFSET:
        raise RuntimeError(f"the bitstream ({len(bitstream)} bytes) overlaps the weights at {FLASH_OFFSET:#x}")
    files["weights"].write_bytes(weights)
    files["flash_image"].write_bytes(bitstream + b"\xff" * (FLASH_OFFSET - len(bitstream)) + weights)


def build_seeds(model: Model, seeds: list[int], *, out_dir: str | os.PathLike, **options) -> list[dict]:
    """Build ``model`` once per nextpnr seed (into ``out_dir/seed<N>``), one after the other, and return the
    reports in seed order. Prints each build's stages (prefixed ``[seed N]``) and one line per seed: every
    clock's Fmax against its constraint, whether timing is met, the resources, the wall time. ``options``
    go to :func:`build` (``board``, ``lanes``, ``clk_freq``, ``separate_clocks`` ...)."""
    reports = []
    for seed in seeds:
        t0 = time.monotonic()
        report = build(model, seed=seed, out_dir=Path(out_dir) / f"seed{seed}",
                       progress=lambda line, s=seed: print(f"  [seed {s}] {line}", flush=True), **options)
        print(f"seed {seed}: {summary(report)}; {time.monotonic() - t0:.0f} s wall", flush=True)
        reports.append(report)
    return reports


def _run_flow(top, platform, out: Path, name: str, seed: int, synth_opts: str, fam: str, stages, progress,
              *, abc9: bool) -> None:
    """Extract Amaranth's build plan (:func:`build_plan`) into ``out`` and run it."""
    plan = build_plan(top, platform, name, seed, synth_opts, fam, abc9=abc9)
    plan.extract(out)
    for _, product in stages:
        (out / product).unlink(missing_ok=True)
    _run_plan(out / f"{plan.script}.sh", out, tool_env(), stages, progress)


def build_plan(top, platform, name: str, seed: int, synth_opts: str, fam: str, *, abc9: bool):
    """Amaranth's build plan of ``top`` with the flow's tool options (:func:`flow_options`; ``platform``:
    a fresh instance, a platform builds once); :mod:`qlif.sim.gate` takes its Yosys script from here."""
    return platform.build(top, name=name, do_build=False,
                          debug_verilog=False,     # needs a native Yosys; the RTLIL is what gets synthesised
                          **flow_options(name, seed, synth_opts, fam, abc9=abc9))


def flow_options(name: str, seed: int, synth_opts: str, fam: str, *, abc9: bool) -> dict[str, str]:
    """The flow's options of Amaranth's Lattice toolchain templates (what :func:`build_plan` adds to the
    platform's defaults). ``abc9=False`` (ECP5): synthesis stops before its ABC9 LUT mapping, classic
    ``abc -lut 4`` maps the LUTs, then synthesis goes on."""
    after = f"tee -q -o {name}.stat.json stat -json"
    if not abc9:
        synth_opts = f"{synth_opts} -run :map_luts".strip()
        after = (f"techmap -map +/lattice/latches_map.v; abc -lut 4 -dress; clean; "
                 f"synth_ecp5 -run map_cells: -top {name}; {after}")
    options = {
        "synth_opts": synth_opts,
        "script_after_synth": after,
        # A design that misses its clock still gets its report (and timing_met says so).
        "nextpnr_opts": f"--report {name}.report.json --seed {seed} --timing-allow-fail",
    }
    if fam == "ecp5":
        options["ecppack_opts"] = "--compress"     # smaller and faster to load; same configuration
    return options


def abc9_failure(out: Path, name: str) -> bool:
    """The build failed the way Yosys 0.70's ABC9 does (its log, or nextpnr's, says so)."""
    rpt = out / f"{name}.rpt"
    tim = out / f"{name}.tim"
    yosys = rpt.read_text(errors="replace") if rpt.exists() else ""
    nextpnr = tim.read_text(errors="replace") if tim.exists() else ""
    return (("ABC_OPS_REINTEGRATE" in yosys and "Assert" in yosys)
            or ("is multiply driven by cell ports" in nextpnr))


def _sizes(model: Model) -> list[int]:
    return [model.n_in, *(layer.n_out for layer in model.layers)]
