"""The wake-up report (``qlif wakeup-report``, :mod:`qlif.boards.sweep.wakeup_report`): its figures from
measured inputs, the command end to end on a tiny model whose slow measurements (the build, the wake-up
RTL's cycles, the activity simulation) come from its cache, the demo's ``wakeup`` fields, and bad input.

The cached build report here is a stub (a real wake-up build takes minutes); the figures checked are the
arithmetic of the report on it, which does not depend on where the counts came from."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from qlif.boards.flow.activity import Activity, MemoryActivity
from qlif.boards.flow.power import ICE40UP, SPRAM_SLEEP_SENSITIVITY
from qlif.boards.sweep.wakeup_report import (
    POWER_UP_S,
    RATES_HZ,
    SPRAM_ACCESSES_PER_CYCLE,
    SPRAM_SLEEP_DELAY_S,
    TAIL_MIN_S,
    TAIL_S,
    WakeupInputs,
    choose_clock,
    compute,
    load_cycles,
    model_key,
    spi_cycles,
    stamps,
    summary_fields,
)
from qlif.boards.tops.wakeup import HFOSC_FREQS
from qlif.cli import main
from qlif.golden.spec.model import save_model
from qlif.golden.spec.random_model import random_model

ACTIVITY = Activity(cycles=1000, ff_bits=200, ff_toggles=20_000, logic_bits=600, logic_toggles=60_000,
                    memories=(MemoryActivity("layer0.syn", 16, 256, 500, 0, 1, 0),), workload="stub")
#: A stub of a wake-up build's report: what :func:`qlif.boards.flow.power.Resources.from_report` and the
#: report read (a real one comes from ``qlif build --wakeup``).
REPORT = {"wakeup": True, "clk_mhz": 24.0, "lanes": 4, "device": "iCE40UP5K-SG48", "fmax_mhz": 40.2,
          "timing_met": True, "cells": {"SB_LUT4": 400, "SB_CARRY": 30, "SB_DFF": 250},
          "resources": {"ff": {"used": 250, "available": 5280}, "ebr": {"used": 4, "available": 30}},
          "bitstream": "stub.bin"}


def _inputs(*, cycles: float = 3000.0, fmax: float = 40.2, tail: bool = True) -> WakeupInputs:
    model = random_model([64, 16, 4], timesteps=4)
    frame, answered = spi_cycles(model)
    return WakeupInputs(model_name="tiny", sizes=(64, 16, 4), timesteps=4, lanes=4, device="iCE40UP5K-SG48",
                        resources={"luts": 400, "carries": 30, "ffs": 250, "ebr": 4, "spram": 0, "dsp": 0},
                        fmax_mhz=fmax, build_mhz=24.0, timing_met=True, cycles_mean=cycles, cycles_max=int(cycles),
                        cycle_samples=10, overhead_cycles=187, overhead_checked=[[2800, 3287]], tail=tail,
                        activity=ACTIVITY.to_json(), workload="stub", spi_cycles=frame, cipo_bits=answered)


def test_average_power_is_idle_plus_rate_times_energy():
    rep = compute(_inputs(), clk_mhz=24, clock_choice="test")
    assert rep.rates == RATES_HZ
    for rate, w in zip(rep.rates, rep.average_w, strict=True):
        assert w == pytest.approx(rep.idle_w + rate * rep.energy_j)
    # Idle: the stopped chip and the always-on LFOSC domain; it must lie between the blank device and a
    # running core.
    assert ICE40UP.static["iCE40UP5K"].value < rep.idle_w < rep.states.running_w
    assert rep.latency_s == pytest.approx(POWER_UP_S + 3000 / 24e6)
    # The energy: power_states' (compute and SPI) plus the HFOSC's power-up and the tail (clock into an
    # idle core), each positive.
    assert rep.energy_j > rep.states.energy_per_inference_j + ICE40UP.value("hfosc") * POWER_UP_S
    no_tail = compute(_inputs(tail=False), clk_mhz=24, clock_choice="test")
    assert no_tail.tail_s == 0 and rep.tail_s == POWER_UP_S
    assert no_tail.energy_j == pytest.approx(no_tail.states.energy_per_inference_j
                                             + ICE40UP.value("hfosc") * POWER_UP_S)
    assert no_tail.max_rate_hz > rep.max_rate_hz


def test_rates_beyond_the_build_are_marked_not_extrapolated():
    # 400,000 cycles at 6 MHz: 67 ms per inference, so 100/s cannot be sustained, 10/s can.
    rep = compute(_inputs(cycles=400_000), clk_mhz=6, clock_choice="test")
    assert 10 < rep.max_rate_hz < 100
    assert rep.at(100.0) is None and rep.at(10.0) is not None
    j = rep.to_json()
    assert [r["sustained"] for r in j["rates"]] == [True, True, True, False]
    assert [r["avg_power_uw"] is None for r in j["rates"]] == [False, False, False, True]


def test_clock_choice_lowest_energy_under_fmax():
    for tail in (False, True):
        inputs = _inputs(fmax=40.2, tail=tail)
        best = choose_clock(inputs)
        energies = {f / 1e6: compute(inputs, clk_mhz=f / 1e6, clock_choice="").energy_j for f in HFOSC_FREQS}
        assert best <= 40.2 and energies[best] == min(e for f, e in energies.items() if f <= 40.2)
        if not tail:
            # Without the tail, the sooner the HFOSC stops the better (race to idle): the fastest that meets.
            assert best == 24.0 and choose_clock(_inputs(fmax=50.0, tail=False)) == 48.0
        else:
            # The tail is a fixed time with the clock running: its cycles grow with the clock, and on this
            # short inference (3000 cycles, 7200 of tail at 24 MHz) outweigh the HFOSC's time.
            assert best == 6.0
    with pytest.raises(ValueError, match="under every SB_HFOSC"):
        choose_clock(_inputs(fmax=5.0))
    with pytest.raises(ValueError, match="SB_HFOSC frequency"):
        compute(inputs, clk_mhz=30, clock_choice="")
    with pytest.raises(ValueError, match="SCK"):
        compute(inputs, clk_mhz=24, clock_choice="", sck_hz=20e6)


def test_demo_fields():
    rep = compute(_inputs(), clk_mhz=24, clock_choice="test")
    fields = summary_fields(rep)
    assert fields["idle_power_uw"] == pytest.approx(rep.idle_w * 1e6)
    assert fields["avg_power_uw_at_1hz"] == pytest.approx((rep.idle_w + rep.energy_j) * 1e6)
    assert fields["avg_power_uw_at_10hz"] == pytest.approx((rep.idle_w + 10 * rep.energy_j) * 1e6)
    json.dumps(fields)     # report.json must take it
    from qlif.demo import render_markdown

    demo = {"network": [64, 16, 4], "timesteps": 4, "weight_bits": [4, 4], "membrane_bits": [8, 8], "lanes": 4,
            "dataset": "digits", "test_samples": 1, "float_accuracy": 1.0, "integer_accuracy": 1.0,
            "rtl_simulator": "verilator", "rtl_samples": 1, "rtl_match": 1.0, "rtl_match_samples": 1,
            "rtl_accuracy": 1.0, "mean_cycles_per_inference": 1.0, "max_cycles_per_inference": 1,
            "seconds": {}, "wakeup": fields}
    md = render_markdown(demo)
    assert f"| average power at 10 inferences/s | {fields['avg_power_uw_at_10hz']:.1f} uW |" in md
    assert f"| idle power | {fields['idle_power_uw']:.1f} uW |" in md


def _spram_inputs(**kw) -> WakeupInputs:
    """The tiny model's inputs as if its synapses (``layer0.syn``, read 500 times in 1000 cycles) were in four
    SPRAM blocks and took 1,584,640 cycles to load."""
    base = _inputs(**kw)
    return replace(base, resources={**base.resources, "spram": 4}, spram_memories=("layer0.syn",),
                   load_cycles=1_584_640)


def test_spram_access_sleep_and_load():
    clk = 6e6
    bram, rep = compute(_inputs(), clk_mhz=6, clock_choice=""), compute(_spram_inputs(), clk_mhz=6, clock_choice="")
    # Every SPRAM tile reads on every core edge (CHIPSELECT tied high), whatever the measured read enable;
    # the SPRAM memory leaves the block RAM's rates.
    dyn = rep.states.core.dynamic_w
    assert SPRAM_ACCESSES_PER_CYCLE == 1.0
    assert dyn["SPRAM"] == pytest.approx(4 * clk * ICE40UP.spram_access.value)
    assert bram.states.core.dynamic_w["SPRAM"] == 0 and dyn["block RAM"] == 0       # its only memory is in SPRAM
    assert rep.to_json()["spram"]["measured_enable_rate"] == pytest.approx(0.5)
    # Sleep: charged as included in static (0) by default; a user's figure adds exactly N x I x VCC to idle
    # and nothing to the energy; the sensitivity is the idle at SPRAM_SLEEP_SENSITIVITY.
    assert ICE40UP.value("spram_sleep") == 0 and rep.idle_parts["SPRAM asleep"] == 0
    leak = compute(_spram_inputs(), clk_mhz=6, clock_choice="", spram_sleep_ua=5.0)
    assert leak.idle_w - rep.idle_w == pytest.approx(4 * 5e-6 * ICE40UP.vcc.value)
    assert leak.energy_j == pytest.approx(rep.energy_j)
    assert rep.idle_sensitivity_w == pytest.approx(leak.idle_w) and SPRAM_SLEEP_SENSITIVITY.value == 5e-6
    assert bram.idle_sensitivity_w is None
    # Awake but unclocked for the power-up and SPRAM_SLEEP_DELAY_S after CLKHFEN fell (SLEEP one LFOSC cycle
    # later): charged at the standby figure, as asleep, so nothing above idle at any sleep figure; its cost
    # at the sensitivity beside it (4 blocks x 5 uA x VCC x 400 us).
    assert SPRAM_SLEEP_DELAY_S == pytest.approx(100e-6)
    for r in (rep, leak):
        assert dict((n, (w, t)) for n, w, t, _ in r.phases)["SPRAM awake"] == (0.0, SPRAM_SLEEP_DELAY_S)
    sp = rep.to_json()["spram"]
    assert sp["awake_unclocked_us"] == pytest.approx(400.0)
    assert sp["awake_unclocked_uj_at_sensitivity"] == pytest.approx(4 * 5e-6 * ICE40UP.vcc.value * 400e-6 * 1e6)
    assert bram.spram_awake_s == 0 and bram.to_json()["spram"]["awake_unclocked_uj_at_sensitivity"] is None
    # The load at power-up: once, apart; not in the average.
    assert rep.load_s == pytest.approx(1_584_640 / clk) and rep.load_j > 0
    assert rep.at(1.0) == pytest.approx(rep.idle_w + rep.energy_j)
    with pytest.raises(ValueError, match="SPRAM sleep current"):
        compute(_spram_inputs(), clk_mhz=6, clock_choice="", spram_sleep_ua=-1.0)


def test_load_cycles_of_the_784_500_10_plan():
    """16 cycles a byte of the SPRAM image and the flash's 4096-cycle wake-up: 784 x 500 x 2 bits at P = 8 is
    49,392 words of 16 bits (docs/power.md: 1.58 M cycles); a plan without SPRAM loads nothing."""
    from qlif.hw.memory import plan_memories

    big = random_model([784, 500, 10], timesteps=2, weight_bits=2, seed=0)
    assert load_cycles(plan_memories(big, 8, "iCE40UP5K").to_json()) == 16 * 49_392 * 2 + 4096
    assert load_cycles(plan_memories(random_model([64, 16, 4], timesteps=2), 4, "iCE40UP5K").to_json()) == 0


def test_json_recomputes_its_figures():
    for inputs, awake in ((_inputs(), []), (_spram_inputs(), ["SPRAM awake"])):
        j = compute(inputs, clk_mhz=12, clock_choice="").to_json()
        assert [p["phase"] for p in j["phases"]] == ["power-up", "compute", "tail", *awake, "SPI"]
        for p in j["phases"]:
            assert p["energy_uj"] == pytest.approx(p["power_above_idle_uw"] * p["duration_us"] * 1e-6)
        assert sum(p["energy_uj"] for p in j["phases"]) == pytest.approx(j["energy_per_inference_uj"])
        assert sum(j["idle_parts_uw"].values()) == pytest.approx(j["idle_power_uw"])
        for r in j["rates"]:
            assert r["avg_power_uw"] == pytest.approx(j["idle_power_uw"] + r["rate_hz"] * j["energy_per_inference_uj"])
        assert j["compute_us"] == pytest.approx(j["cycles_per_inference"] / 12)
        assert Activity.from_json(j["activity"]) == ACTIVITY       # the whole activity, memories included
        assert j["tail_range_us"] == [TAIL_MIN_S * 1e6, TAIL_S * 1e6] == [200.0, 300.0]


@pytest.mark.parametrize("spram", [pytest.param(False, marks=pytest.mark.slow, id="block-ram"),
                                   pytest.param(True, id="spram")])
def test_wakeup_rtl_edges_are_encoded_cycles_plus_frame_edges(spram):
    """The report's cycles: the wake-up RTL's core clock edges per frame (Icarus) equal the encoder's and
    core's exact cycles plus the top's per-frame edges, with the synapses in block RAM and in SPRAM."""
    from qlif.boards.tops.wakeup import frame_edges
    from qlif.golden.spec.coding import encode_frames, frame_levels_of, max_rate_of
    from qlif.golden.spec.cycles import encoded_cycles
    from qlif.golden.spec.reference import run
    from qlif.sim.wakeup_runner import run_wakeup

    model = replace(random_model([12, 16, 4], timesteps=8, seed=2, weight_bits=2), metadata={"dataset": "digits"})
    frames = np.random.default_rng(1).integers(0, 17, size=(2, model.n_in), dtype=np.uint8)
    stats = run_wakeup(model, frames, simulator="icarus", lanes=4, busy_frames=0, spram=spram)
    x = encode_frames(frames, model.timesteps, levels=frame_levels_of(model.metadata),
                      max_rate=max_rate_of(model.metadata))
    predicted = encoded_cycles(model, lanes=4, inputs=x, cycles=run(model, x, lanes=4).cycles) + frame_edges(12)
    assert [int(e) for e in stats["hf_edges"]] == predicted.tolist()


@pytest.fixture
def cached(tmp_path):
    """A tiny model whose build, cycles and activity are in the report's cache (stubs: no tool runs)."""
    model = random_model([64, 16, 4], timesteps=4)
    path = tmp_path / "tiny.json"
    save_model(model, path)
    folder = tmp_path / "cache" / f"tiny-{model_key(model, 4)}"
    (folder / "hfosc-24").mkdir(parents=True)
    st = stamps(model, lanes=4, activity_samples=8, check_samples=2, cycle_samples=200, simulator="icarus")
    (folder / "hfosc-24" / "report.json").write_text(json.dumps(REPORT))
    (folder / "hfosc-24" / "stamp.json").write_text(json.dumps(st["build"]))
    (folder / "cycles.json").write_text(json.dumps({"stamp": st["cycles"], "mean": 2987.0, "max": 3287,
                                                    "samples": 200, "frame_edges": 133,
                                                    "checked": [[3287, 3287]]}))
    (folder / "activity.json").write_text(json.dumps({"stamp": st["activity"], "activity": ACTIVITY.to_json()}))
    return path, tmp_path


def test_command_end_to_end_from_the_cache(cached, capsys):
    path, tmp = cached
    out = tmp / "out"
    assert main(["wakeup-report", str(path), "--clk-mhz", "24", "--cache-dir", str(tmp / "cache"),
                 "--out-dir", str(out)]) == 0
    text = capsys.readouterr().out
    assert "tiny (64-16-4" in text and "--clk-mhz" in text
    rows = list(csv.DictReader((out / "wakeup-power.csv").open()))
    assert [float(r["rate_hz"]) for r in rows] == list(RATES_HZ)
    doc = json.loads((out / "wakeup-power.json").read_text())[0]
    assert doc["cycles_per_inference"] == 2987.0 and doc["clk_mhz"] == 24.0
    assert doc["resources"]["luts"] == 400 and doc["resources"]["ebr"] == 4
    for r, row in zip(doc["rates"], rows, strict=True):
        assert float(row["avg_power_uw"]) == pytest.approx(r["avg_power_uw"], abs=0.06)
        assert r["avg_power_uw"] == pytest.approx(doc["idle_power_uw"] + r["rate_hz"] * doc["energy_per_inference_uj"])
    assert doc["provenance"]["model_sha256"] and doc["provenance"]["wakeup_verilog_sha256"]
    assert doc["provenance"]["commit"]
    assert (out / "wakeup-power.png").read_bytes()[:4] == b"\x89PNG"
    assert "| tiny | 10 |" in (out / "wakeup-power.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--clk-mhz", "30"], "SB_HFOSC frequency"),
    (["--sck-mhz", "20"], "--sck-mhz must be in (0, 12]"),
    (["--spram-sleep-ua", "-1"], "--spram-sleep-ua must be a non-negative"),
    (["--lanes", "4,8"], "--lanes gives 2 values for 1 models"),
])
def test_bad_options(cached, capsys, extra, message):
    path, tmp = cached
    with pytest.raises(SystemExit) as e:
        if main(["wakeup-report", str(path), "--cache-dir", str(tmp / "cache"), "--out-dir", str(tmp / "out"),
                 *extra]) == 2:
            raise SystemExit(2)
    assert e.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]      # argparse's usage lines come first
    assert last.startswith(("qlif: error:", "qlif wakeup-report: error:")) and message in last, err
    assert not (tmp / "out").exists()


def test_bad_models(tmp_path, capsys):
    # No such file; a model too big for the UP5K's SPRAM at P = 4; an MNIST model and no data.
    big = random_model([784, 500, 10], timesteps=2, weight_bits=2)
    save_model(big, tmp_path / "big.json")
    mnist = random_model([784, 16, 10], timesteps=2)
    mnist = type(mnist).from_json({**mnist.to_json(), "metadata": {"dataset": "mnist"}})
    save_model(mnist, tmp_path / "mn.json")
    for args, message in ((["nope.json"], "nope.json"), ([str(tmp_path / "big.json")], "SPRAM"),
                          ([str(tmp_path / "mn.json")], "data")):
        assert main(["wakeup-report", *args, "--out-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("qlif: error:") and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    assert math.isfinite(compute(_inputs(), clk_mhz=24, clock_choice="").energy_j)


@pytest.mark.slow
def test_real_build_and_simulations_of_a_tiny_model(tmp_path, capsys):
    """Everything measured for real on a tiny model: the wake-up build (Yosys, nextpnr), the wake-up RTL's
    cycles (Icarus), the core's activity (Verilator); then the same command served from its cache."""
    from qlif.golden.spec.coding import encode_frames, frame_levels_of, max_rate_of
    from qlif.golden.spec.files import BUILD_ROOT
    from qlif.golden.spec.reference import run

    model = random_model([64, 16, 4], timesteps=4, seed=3)
    save_model(model, tmp_path / "tiny.json")
    cache = BUILD_ROOT / "test-wakeup-report"
    args = ["wakeup-report", str(tmp_path / "tiny.json"), "--clk-mhz", "12", "--cache-dir", str(cache),
            "--out-dir", str(tmp_path / "out"), "--cycle-samples", "20", "--activity-samples", "2"]
    assert main([*args, "--rebuild"]) == 0
    doc = json.loads((tmp_path / "out" / "wakeup-power.json").read_text())[0]
    build_report = json.loads((cache / f"tiny-{model_key(model, 4)}" / "hfosc-12" / "report.json").read_text())
    assert doc["resources"]["ebr"] == build_report["resources"]["ebr"]["used"]
    assert doc["fmax_mhz"] == build_report["fmax_mhz"] and doc["timing_met"]
    # The cycles: the golden cycle model's mean on the first 20 test frames, plus what the RTL measured.
    from qlif.boards.sweep.wakeup_report import test_frames

    frames, _ = test_frames(model)
    x = encode_frames(frames[:20], model.timesteps, levels=frame_levels_of(model.metadata),
                      max_rate=max_rate_of(model.metadata))
    from qlif.boards.tops.wakeup import frame_edges
    from qlif.golden.spec.cycles import encoded_cycles

    predicted = encoded_cycles(model, lanes=4, inputs=x, cycles=run(model, x, lanes=4).cycles) + frame_edges(64)
    assert doc["cycles_per_inference"] == pytest.approx(predicted.mean())
    assert doc["overhead_checked"] == [[p, p] for p in predicted[:2].tolist()]      # the RTL's edges, equal
    assert doc["overhead_cycles"] == frame_edges(64) == 2 * 64 + 5
    assert all(r["sustained"] for r in doc["rates"])
    capsys.readouterr()
    assert main(args) == 0
    assert "cached" in capsys.readouterr().err
