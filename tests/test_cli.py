"""The `qlif` command line: outputs, and one-line errors with exit code 2 and no partial files."""

import json
import subprocess
import sys

import numpy as np
import pytest

from qlif.cli import main
from qlif.golden.spec.model import Model, save_model
from qlif.golden.spec.reference import run

DOC = {"format": "qlif-model", "version": 1, "timesteps": 5, "layers": [
    {"weights": [[1, -2, 3], [3, 0, -1], [2, 2, 2], [-4, 5, 1]], "weight_bits": 4, "membrane_bits": 6,
     "threshold": 3, "leak_shift": 2, "reset": "subtract", "codebook": None},
    {"weights": [[1, -1], [-1, 1], [1, 1]], "weight_bits": 1, "membrane_bits": 4, "threshold": 1,
     "leak_shift": None, "reset": "zero", "codebook": None}]}


@pytest.fixture
def files(tmp_path):
    model = Model.from_json(DOC)
    save_model(model, tmp_path / "m.json")
    x = (np.random.default_rng(0).random((6, 5, 4)) < 0.5).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    return tmp_path, model, x


def test_golden_writes_the_contract_arrays(files):
    tmp, model, x = files
    assert main(["golden", str(tmp / "m.json"), "--inputs", str(tmp / "x.npy"), "--out", str(tmp / "g.npz"),
                 "--lanes", "2"]) == 0
    g = np.load(tmp / "g.npz")
    ref = run(model, x, lanes=2)
    assert sorted(g.files) == sorted(ref.to_npz_dict())
    assert g["layer0_spikes"].dtype == np.uint8 and g["layer1_membrane"].dtype == np.int32
    assert g["layer0_spikes"].shape == (6, 5, 3) and g["cycles"].shape == (6, 5)
    np.testing.assert_array_equal(g["prediction"], ref.prediction)
    np.testing.assert_array_equal(g["cycles"], ref.cycles)


def _bad(tmp, name, edit):
    doc = json.loads(json.dumps(DOC))
    edit(doc)
    (tmp / name).write_text(json.dumps(doc))
    return tmp / name


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["layers"][0].update(threshold=40), "layers[0].threshold"),
    (lambda d: d["layers"][0].update(membrane_bits=20), "layers[0].membrane_bits"),
    (lambda d: d["layers"][0]["weights"][1].__setitem__(0, 9), "layers[0].weights[1][0]"),
    (lambda d: d["layers"][1].pop("reset"), "layers[1].reset: is missing"),
])
def test_bad_model_is_one_line_exit_2_no_output(files, edit, words):
    tmp, _, _ = files
    path = _bad(tmp, "bad.json", edit)
    proc = subprocess.run([sys.executable, "-m", "qlif.cli", "golden", str(path), "--inputs",
                           str(tmp / "x.npy"), "--out", str(tmp / "out.npz")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in proc.stderr
    assert not list(tmp.glob("*out.npz*"))


def test_malformed_json_and_bad_stimuli(files, capsys):
    tmp, _, _ = files
    (tmp / "broken.json").write_text("{not json")
    assert main(["golden", str(tmp / "broken.json"), "--inputs", str(tmp / "x.npy"),
                 "--out", str(tmp / "o.npz")]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    np.save(tmp / "wrong.npy", np.zeros((2, 5, 7), dtype=np.uint8))
    assert main(["golden", str(tmp / "m.json"), "--inputs", str(tmp / "wrong.npy"),
                 "--out", str(tmp / "o.npz")]) == 2
    assert "inputs: shape (2, 5, 7) does not match" in capsys.readouterr().err
    np.save(tmp / "twos.npy", np.full((2, 5, 4), 2, dtype=np.uint8))
    assert main(["golden", str(tmp / "m.json"), "--inputs", str(tmp / "twos.npy"),
                 "--out", str(tmp / "o.npz")]) == 2
    assert "0 or 1" in capsys.readouterr().err
    assert main(["golden", str(tmp / "m.json"), "--inputs", str(tmp / "none.npy"),
                 "--out", str(tmp / "o.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert not (tmp / "o.npz").exists()


def test_bad_lanes_is_a_usage_error(files):
    tmp, _, _ = files
    with pytest.raises(SystemExit) as info:
        main(["golden", str(tmp / "m.json"), "--inputs", str(tmp / "x.npy"), "--out", "o.npz",
              "--lanes", "3"])
    assert info.value.code == 2


def test_help_lists_every_subcommand():
    out = subprocess.run([sys.executable, "-m", "qlif.cli", "--help"], capture_output=True, text=True).stdout
    for name in ("golden", "sim", "train", "quantize", "eval", "verilog", "build", "demo", "stimuli"):
        assert name in out


@pytest.mark.parametrize("argv, words", [
    (["--out-dir", "/tmp/qlif-outside"], "out_dir must lie inside"),
    (["--seed", "-1", "--out-dir", "build/test-cli-seed"], "seed must be a non-negative integer"),
])
def test_build_bad_option_is_one_line_exit_2(files, capsys, argv, words):
    tmp, _, _ = files
    assert main(["build", str(tmp / "m.json"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qlif: error: build:") and words in err and "\n" not in err


def test_build_bad_clock_is_a_usage_error(files):
    tmp, _, _ = files
    for mhz in ("abc", "0", "-5"):
        with pytest.raises(SystemExit) as e:
            main(["build", str(tmp / "m.json"), "--clk-mhz", mhz])
        assert e.value.code == 2


def test_demo_report_names_each_clock():
    from qlif.demo import render_markdown

    clocks = {"core_clk": {"fmax_mhz": 52.5, "constraint_mhz": 50.25},
              "clk": {"fmax_mhz": 36.6, "constraint_mhz": 12.0}}
    hw = {"device": "iCE40UP5K", "seed": 1, "fmax_mhz": 52.5, "clk_mhz": 50.25, "pll": True, "clocks": clocks,
          "timing_met": True, "resources": {"LC": {"used": 3245, "available": 5280}}, "bitstream": "x.bin"}
    report = {"network": [64, 128, 10], "timesteps": 16, "weight_bits": [4, 4], "membrane_bits": [11, 11],
              "lanes": 4, "dataset": "digits", "test_samples": 450, "float_accuracy": 0.97,
              "integer_accuracy": 0.975, "rtl_simulator": "verilator", "rtl_samples": 200,
              "rtl_match_samples": 200, "rtl_match": 1.0, "rtl_accuracy": 0.98, "mean_cycles_per_inference": 11768,
              "max_cycles_per_inference": 14000, "hardware": hw, "latency_us_at_fmax": 11768 / 52.5,
              "latency_us_at_clock": 11768 / 50.25, "seconds": {"train": 1.0}}
    md = render_markdown(report)
    assert "| core Fmax (nextpnr, iCE40UP5K, seed 1) | 52.5 MHz (clock 50.25 MHz from the PLL) |" in md
    assert "clock `clk`: Fmax / constraint | 36.6 / 12.00 MHz" in md and "| timing | met |" in md
    assert "224.2 us" in md and "234.2 us" in md
    hw["timing_met"] = False
    assert "**NOT met**" in render_markdown(report)
