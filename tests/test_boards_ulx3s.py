"""The ULX3S (ECP5) top, the ECP5 PLL search, the board registry, and one small real ECP5 build."""

from __future__ import annotations

import pytest

from qlif.boards.flow.build import build
from qlif.boards.flow.reports import CORE_CLOCK_NET, parse_reports
from qlif.boards.tops.pll import ECP5PLLConfig, ecp5_pll_config
from qlif.boards.tops.registry import BOARDS, family
from qlif.boards.tops.ulx3s import PLATFORMS, ULX3STop
from qlif.golden.spec.files import BUILD_ROOT
from qlif.golden.spec.random_model import random_model

#: A trimmed ``nextpnr-ecp5 --report`` document.
NEXTPNR_REPORT = {
    "utilization": {
        "TRELLIS_COMB": {"available": 83640, "used": 2364}, "TRELLIS_FF": {"available": 83640, "used": 1151},
        "TRELLIS_RAMW": {"available": 10455, "used": 12}, "DP16KD": {"available": 208, "used": 2},
        "MULT18X18D": {"available": 156, "used": 0}, "TRELLIS_IO": {"available": 365, "used": 6},
        "DCCA": {"available": 56, "used": 1}, "EHXPLLL": {"available": 4, "used": 1},
        "GSR": {"available": 1, "used": 1},
    },
    "fmax": {"$glbnet$link.clk": {"achieved": 99.53, "constraint": 100.0}},
    "critical_paths": [],
}
YOSYS_STAT = {"design": {"num_cells": 4000, "num_cells_by_type": {"LUT4": 2300, "TRELLIS_FF": 1151, "CCU2C": 90,
                                                                  "DP16KD": 2}}}


def test_parse_ecp5_report():
    report = parse_reports(NEXTPNR_REPORT, YOSYS_STAT)
    assert report["family"] == "ecp5"
    util = report["resources"]
    assert util["lut"] == {"used": 2364, "available": 83640}
    assert util["ff"] == {"used": 1151, "available": 83640}
    assert util["ebr"] == {"used": 2, "available": 208} and util["pll"]["used"] == 1
    assert "lc" not in util and "GSR" not in util
    assert not report["timing_met"] and report["fmax_mhz"] == 99.53 and report["critical_path"] is None


def test_parse_two_clocks():
    """A build with a PLL: the core's clock and the link's (the oscillator), each against its own constraint;
    ``fmax_mhz`` is the named clock's, found by the end of nextpnr-ecp5's hierarchical net name."""
    doc = {**NEXTPNR_REPORT, "fmax": {"$glbnet$clk": {"achieved": 111.4, "constraint": 25.0},
                                      "$glbnet$link.network.core_clk": {"achieved": 104.2, "constraint": 100.0}}}
    report = parse_reports(doc, YOSYS_STAT, clock=CORE_CLOCK_NET)
    assert report["fmax_mhz"] == 104.2 and report["timing_met"] and len(report["clocks"]) == 2
    assert parse_reports(doc, YOSYS_STAT)["fmax_mhz"] == 104.2         # the slowest without a name
    slow_link = {**doc, "fmax": {**doc["fmax"], "$glbnet$clk": {"achieved": 24.0, "constraint": 25.0}}}
    assert not parse_reports(slow_link, YOSYS_STAT, clock=CORE_CLOCK_NET)["timing_met"]
    with pytest.raises(ValueError, match="clock must name one of the report's clocks"):
        parse_reports(doc, YOSYS_STAT, clock="clk_core")


@pytest.mark.parametrize("f_out, expect", [
    # Exact settings, and among them the highest VCO (lowest jitter).
    (100e6, ECP5PLLConfig(clki_div=1, clkfb_div=4, clkop_div=8, f_out=100e6, f_vco=800e6)),
    (50e6, ECP5PLLConfig(clki_div=1, clkfb_div=2, clkop_div=16, f_out=50e6, f_vco=800e6)),
    (125e6, ECP5PLLConfig(clki_div=1, clkfb_div=5, clkop_div=6, f_out=125e6, f_vco=750e6)),
])
def test_ecp5_pll_config(f_out, expect):
    cfg = ecp5_pll_config(f_in=25e6, f_out=f_out)
    assert cfg == expect
    assert cfg.f_out == pytest.approx(25e6 * cfg.clkfb_div / cfg.clki_div)
    assert 400e6 <= cfg.f_vco <= 800e6


def test_ecp5_pll_config_near_and_refused():
    cfg = ecp5_pll_config(f_in=25e6, f_out=111e6)
    assert abs(cfg.f_out - 111e6) <= 0.01 * 111e6
    with pytest.raises(ValueError, match="3.125..400 MHz"):
        ecp5_pll_config(f_in=25e6, f_out=500e6)


def test_registry():
    """Board names are data: every entry builds a top for its platform, of the family it claims."""
    assert {"icebreaker", "icesugar", "ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f", "ecpix5-45f",
            "ecpix5-85f"} <= set(BOARDS)
    assert {family(spec[0]) for spec in BOARDS.values()} == {"ice40", "ecp5"}
    assert BOARDS["ulx3s-85f"][0].device == "LFE5U-85F"
    for name, spec in BOARDS.items():
        assert issubclass(spec.platform, spec.top.platform_cls), name
        assert set(spec.top.pins()) == {"uart", "ok", "fault", "wake"}, name


def test_pins_and_pll():
    """UART on the FT231X, ok/fault/wake on LEDs 0, 1, 7; with clk_freq an EHXPLLL from the 25 MHz pin."""
    model = random_model([8, 4], timesteps=2)
    plan = PLATFORMS["85f"]().build(ULX3STop(model=model, lanes=2), name="top", do_build=False,
                                    debug_verilog=False)
    lpf = plan.files["top.lpf"]
    for site in ("M1", "L4", "B2", "C2", "H3", "G2"):
        assert f'SITE "{site}"' in lpf
    assert 'FREQUENCY PORT "clk25_0__io" 25000000' in lpf
    top = ULX3STop(model=model, lanes=2, clk_freq=100e6)
    assert top.clk_freq == 100e6 and top.pll.clkop_div == 8
    rtlil = PLATFORMS["85f"]().build(top, name="top", do_build=False, debug_verilog=False).files["top.il"]
    assert "cell \\EHXPLLL" in rtlil and "parameter \\CLKFB_DIV 4" in rtlil


@pytest.mark.synth
def test_ecp5_build():
    """A real Yosys/nextpnr-ecp5/ecppack run for a 16-8-4 model on the ULX3S-85F at the 25 MHz oscillator."""
    model = random_model([16, 8, 4], timesteps=4, seed=3)
    out = BUILD_ROOT / "test-synth-ulx3s"
    report = build(model, board="ulx3s-85f", lanes=4, out_dir=out, name="tiny", progress=None)
    with open(report["bitstream"], "rb") as f:
        head = f.read(64)
    assert report["bitstream"].endswith(".bit") and head.startswith(b"\xff\x00")   # ecppack's comment header
    util = report["resources"]
    assert report["family"] == "ecp5" and util["lut"]["available"] == 83640 and util["ebr"]["available"] == 208
    assert 100 < util["lut"]["used"] < 10000 and util["ebr"]["used"] >= 1
    assert util["io"]["used"] == 6                  # clock, UART rx/tx, three LEDs
    assert report["timing_met"] and report["clocks"] and all(
        c["constraint_mhz"] == pytest.approx(25.0) for c in report["clocks"].values())
    assert (out / "report.md").read_text().startswith("# qlif build: ulx3s-85f (LFE5U-85F-BG381)")


def test_abc9_failures_are_recognised(tmp_path):
    """The two ways Yosys 0.70's ABC9 fails (build() then maps the LUTs with classic ABC), and others not."""
    from qlif.boards.flow.build import abc9_failure

    (tmp_path / "q.rpt").write_text("Executing ABC_OPS_REINTEGRATE pass\nERROR: Assert `GetSize(x)' failed\n")
    assert abc9_failure(tmp_path, "q")
    (tmp_path / "q.rpt").write_text("ERROR: syntax error\n")
    assert not abc9_failure(tmp_path, "q")
    (tmp_path / "q.tim").write_text("ERROR: Net 'a[3]' is multiply driven by cell ports b.Q and c.Q\n")
    assert abc9_failure(tmp_path, "q")
