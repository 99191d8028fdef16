"""`qlif sweep-hw`: option checks, the table arithmetic on known task results, and one small real sweep
(two UP5K builds and two activity simulations) that also resumes from its records."""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from qlif.boards.flow.activity import Activity, MemoryActivity
from qlif.boards.flow.power import ICE40UP
from qlif.boards.host.driver import Board
from qlif.boards.host.emulator import BoardModel, EmulatedPort
from qlif.boards.protocol import MAX_WORDS, inference_bytes
from qlif.boards.sweep import closure, execute
from qlif.boards.sweep.config import DEFAULT_TARGET_MHZ, SweepConfig, default_boards, device_of
from qlif.boards.sweep.execute import jsonable, plan
from qlif.boards.sweep.render import csv_text, markdown
from qlif.boards.sweep.rows import COLUMNS, critical_path_text, only_unrun
from qlif.boards.sweep.rows import rows as table_rows
from qlif.boards.sweep.sweep import run_sweep
from qlif.cli import main
from qlif.golden.spec.files import BUILD_ROOT, ROOT
from qlif.golden.spec.random_model import random_model

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["--weight-bits", "3"], "weight bits: 3 is not one of 1, 2, 4, 8"),
    (["--membrane-bits", "4,17"], "membrane bits: 17 is not one of"),
    (["--membrane-bits", "8,8"], "repeats a value"),
    (["--lanes", "3"], "lanes: 3 is not one of"),
    (["--boards", "nope"], "boards: 'nope' is not one of"),
    (["--sizes", "10,4"], "must start with 64"),
    (["--clk-mhz", "icebreaker"], "--clk-mhz takes BOARD=MHZ"),
    (["--clk-mhz", "ulx9=50"], "clock target for 'ulx9', which is not swept"),
    (["--work-dir", "/tmp/qlif-sweep"], "must lie inside"),
    (["--name", "a/b"], "name must be"),
])
def test_bad_options_exit_2_in_one_line(argv, message, capsys, tmp_path):
    out = tmp_path / "results"
    assert main(["sweep-hw", "--boards", "icebreaker", *argv, "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qlif: error: sweep-hw: ") and message in err[0]
    assert not out.exists()                  # nothing written



def _work_dir(prefix: str) -> Path:
    """A fresh folder inside BUILD_ROOT (where the YoWASP tools can see), made even on a fresh clone."""
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=BUILD_ROOT))

def test_malformed_list_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep-hw", "--weight-bits", "1,x"])
    assert e.value.code == 2 and "comma-separated list of integers" in capsys.readouterr().err


def test_default_boards_follow_the_board_table():
    boards = default_boards()
    assert boards[0] == "icebreaker"
    # An ECP5-85F board is swept as soon as the board table has one (none is required).
    assert all(b in ("icebreaker",) or device_of(b).upper().startswith("LFE5U") for b in boards)


def test_config_targets():
    config = SweepConfig(boards=("icebreaker",), target_mhz={"icebreaker": 33.0})
    config.check()
    assert config.target("icebreaker") == 33.0
    assert SweepConfig(boards=("icebreaker",)).target("icebreaker") == DEFAULT_TARGET_MHZ["ice40up"]


def _report(lc: int, fmax: float) -> dict:
    return {
        "device": "iCE40UP5K-SG48", "fmax_mhz": fmax,
        "critical_path": {"sources": [f"/somewhere/qlif/boards/link/host_link.py:{int(fmax)}",
                                      "/share/ice40/cells_map.v:4",
                                      "/work/main/hw/network.py:310.5-312.7"]},
        "resources": {"lc": {"used": lc, "available": 5280}, "ff": {"used": 600, "available": 5280},
                      "ebr": {"used": 14, "available": 30}, "spram": {"used": 0, "available": 4},
                      "dsp": {"used": 0, "available": 8}},
        "cells": {"SB_LUT4": lc - 400, "SB_CARRY": 300, "SB_DFFE": 600},
    }


KNOWN_CONFIG = SweepConfig(boards=("icebreaker",), weight_bits=(4, 8), membrane_bits=(8,), seeds=(1, 2, 3))


def _known_results() -> dict:
    act = Activity(cycles=10_000, ff_bits=300, ff_toggles=300_000, logic_bits=1000, logic_toggles=500_000,
                   memories=(MemoryActivity("layer0.syn", 16, 2048, 10_000, 0, 1, 0),))
    return {
        "w4-k8-p4": ({"activity": act.to_json(), "cycles_mean": 12_000.0, "cycles_max": 15_000}, None),
        "icebreaker-w4-k8-p4-s1": ({"report": _report(1500, 40.0)}, None),
        "icebreaker-w4-k8-p4-s2": ({"report": _report(1500, 44.0)}, None),
        "icebreaker-w4-k8-p4-s3": ({"report": _report(1500, 41.0)}, None),
        "w8-k8-p4": ({"activity": act.to_json(), "cycles_mean": 12_000.0, "cycles_max": 15_000}, None),
        "icebreaker-w8-k8-p4-s1": (None, "RuntimeError: build failed in nextpnr"),
    }


def test_rows_from_known_results():
    """Median Fmax over seeds, latency = cycles / Fmax, energy = power x latency, errors kept."""
    config = KNOWN_CONFIG
    rows = table_rows(config, _known_results())
    ok, bad = rows
    assert (ok["fmax_median_mhz"], ok["fmax_min_mhz"], ok["fmax_max_mhz"], ok["seeds"]) == (41.0, 40.0, 44.0, 3)
    assert ok["logic_used"] == 1500 and ok["logic_unit"] == "LC" and ok["ebr_available"] == 30
    assert ok["latency_us"] == pytest.approx(12_000 / 41.0, abs=0.01)
    assert ok["ff_rate"] == pytest.approx(0.1) and ok["logic_rate"] == pytest.approx(0.05)
    assert ok["energy_uj"] == pytest.approx(ok["power_mw"] * ok["latency_us"] / 1000, rel=1e-3)
    assert ok["power_mw"] == pytest.approx(ok["static_mw"] + ok["dynamic_mw"], abs=2e-3)
    assert ok["energy_per_cycle_pj"] == pytest.approx(ok["power_mw"] / 41.0 * 1e3, rel=1e-3)
    assert ok["error"] == ""
    assert ok["critical_path"] == "boards/link/host_link.py:41 -> hw/network.py:310"      # of the median build
    # At the 12 MHz oscillator without the PLL: less power, latency cycles / 12 MHz.
    assert ok["osc_mhz"] == 12.0 and ok["power_osc_mw"] < ok["power_mw"]
    assert ok["energy_osc_uj"] == pytest.approx(ok["power_osc_mw"] * 12_000 / 12.0 / 1000, rel=1e-3)
    no_sources = {"critical_path": {"from": "link.sender.fsm_state_SB_DFFESR_Q_2_D_SB_LUT4_O_LC",
                                    "to": "link.sender.bytes__valid_SB_DFFESR_Q_DFFLC", "sources": []}}
    assert critical_path_text(no_sources) == "link.sender.fsm_state -> link.sender.bytes__valid"
    assert critical_path_text({}) == ""
    assert "seed 1: RuntimeError: build failed in nextpnr" in bad["error"] and "seed 2: not run" in bad["error"]
    assert bad["fmax_median_mhz"] == "" and bad["energy_uj"] == ""
    text = csv_text(rows)
    parsed = list(csv.DictReader(text.splitlines()))
    assert list(parsed[0]) == COLUMNS and parsed[0]["fmax_median_mhz"] == "41.0"
    md = markdown(config, rows, [], 60.0, 2, 5, 8)
    assert "| 4 | 8 | 4 | 1500 | 600 | 14 |" in md and "41.0 (40.0-44.0)" in md
    assert "estimates, not measurements" in md and "failed: " in md and "## Errors" in md


class _CountingPort:
    """A port that counts the bytes each way."""

    def __init__(self, port):
        self.port, self.sent, self.received = port, 0, 0

    def write(self, data: bytes) -> int:
        self.sent += len(data)
        return self.port.write(data)

    def read(self, size: int) -> bytes:
        data = self.port.read(size)
        self.received += len(data)
        return data

    def pause(self, seconds: float) -> None:
        self.port.pause(seconds)


def test_uart_bytes_per_inference_are_what_the_driver_sends():
    """The sweep's UART figure, ``protocol.inference_bytes``, is what the driver sends to the software board
    and reads back per sample: RESET, the step frames (several for a step of more than MAX_WORDS inputs),
    RESULT, and a reply to each."""
    model = random_model([300, 8, 3], timesteps=4, seed=1)
    rate = np.array([0.0, 0.2, 0.9])[:, None, None]           # no input, one frame per step, three
    x = (np.random.default_rng(0).random((3, 4, 300)) < rate).astype(np.uint8)
    assert x[2].sum(axis=1).min() > 2 * MAX_WORDS
    port = _CountingPort(EmulatedPort(BoardModel(model, lanes=4)))
    board = Board(port)
    board.connect(model)
    for sample in x:
        port.sent = port.received = 0
        board.classify(sample[None])
        assert (port.sent, port.received) == inference_bytes(sample.sum(axis=1), n_out=model.n_out)


def test_records_are_keyed_by_the_sources_builds_depend_on():
    files = {p.relative_to(BUILD_ROOT.parent).as_posix() for p in closure.source_closure()}
    assert {"boards/flow/build.py", "boards/tops/icebreaker.py", "hw/network.py", "hw/layer.py", "golden/spec/model.py",
            "sim/runner.py", "sim/tb.py", "sim/cocotb_network.py"} <= files
    assert not {"boards/sweep/sweep.py", "boards/flow/power.py", "golden/training/train.py"} & files
    tmp = _work_dir("test-hash-")
    try:
        (tmp / "a.py").write_text("x = 1\n")
        first = closure.hash_files([tmp / "a.py"])
        assert closure.hash_files([tmp / "a.py"]) == first
        (tmp / "a.py").write_text("x = 2\n")
        assert closure.hash_files([tmp / "a.py"]) != first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_partial_outputs_say_so():
    rows = table_rows(KNOWN_CONFIG, {k: v for k, v in _known_results().items() if k.startswith(("w4", "ice"))})
    md = markdown(KNOWN_CONFIG, rows, [], 60.0, 2, 5, 8, missing=3)
    assert "**Partial results**" in md and "3 of 8 tasks are not finished" in md
    assert "| 8 | 8 | 4 | failed: activity: not run; seed 1: RuntimeError" in md    # a real failure stays one
    unrun = table_rows(KNOWN_CONFIG, {})
    assert only_unrun(unrun[0]["error"]) and not only_unrun(rows[1]["error"])
    assert "| 4 | 8 | 4 | not run yet |" in markdown(KNOWN_CONFIG, unrun, [], 1.0, 2, 8, 8, missing=8)


def test_table_only_from_records(tmp_path):
    """--table-only writes the outputs from the records of one design, whichever, and refuses a mix."""
    work = _work_dir("test-sweep-records-")
    try:
        with pytest.raises(ValueError, match="no records"):
            run_sweep(KNOWN_CONFIG, out_dir=tmp_path, work_dir=work, table_only=True, log=lambda _: None)
        config = KNOWN_CONFIG
        cfg = {"sizes": list(config.sizes), "timesteps": config.timesteps, "samples": config.samples,
               "model_seed": config.model_seed, "dataset": config.dataset, "data_dir": config.data_dir}
        known = _known_results()
        (work / "records").mkdir()
        for task in plan(config, work, cfg):
            result, error = known.get(task.key, (None, "no record"))
            if error is None:
                stamp = {"design": "0123abcd", "cfg": cfg, "args": jsonable(task.args[2:])}
                task.record.write_text(json.dumps({"stamp": stamp, "seconds": 100.0, "result": result}))
        rows = run_sweep(config, out_dir=tmp_path, work_dir=work, table_only=True, log=lambda _: None)
        expected = table_rows(config, {**known, "icebreaker-w8-k8-p4-s1": (None, "no record")})
        assert [r["fmax_median_mhz"] for r in rows] == [41.0, ""]
        assert rows[0] == expected[0] and "seed 1: no record" in rows[1]["error"]
        md = (tmp_path / "hw-sweep.md").read_text()
        assert "design 0123abcd" in md and "took 0.1 h of worker time" in md
        # A record of another design: refused.
        task = plan(config, work, cfg)[1]
        doc = json.loads(task.record.read_text())
        doc["stamp"]["design"] = "ffff0000"
        task.record.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match="2 different designs"):
            run_sweep(config, out_dir=tmp_path, work_dir=work, table_only=True, log=lambda _: None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.synth
def test_small_sweep_builds_and_resumes(tmp_path, monkeypatch):
    """Two weight widths x one membrane width x one seed on the UP5K, really built and simulated; then the
    same sweep again comes entirely from its records."""
    # Other work may edit the RTL while this runs; the resume must not depend on that.
    monkeypatch.setattr(closure, "design_hash", lambda: "fixed")
    config = SweepConfig(boards=("icebreaker",), weight_bits=(2, 8), membrane_bits=(8,), lanes=(4,), seeds=(1,),
                         sizes=(64, 16, 10), timesteps=2, samples=1)
    work = _work_dir("test-sweep-hw-")
    try:
        lines: list[str] = []
        rows = run_sweep(config, out_dir=tmp_path, work_dir=work, jobs=2, progress=False, log=lines.append)
        assert [r["error"] for r in rows] == ["", ""]
        w2, w8 = rows
        for r in rows:
            assert r["device"] == "iCE40UP5K-SG48" and r["logic_available"] == 5280
            assert 100 < r["logic_used"] < 5280 and r["ebr_used"] >= 2      # synapses in block RAM, + link FIFO
            assert 12 < r["fmax_median_mhz"] < 200 and r["seeds"] == 1
            assert r["cycles_mean"] > 0 and r["latency_us"] == pytest.approx(
                r["cycles_mean"] / r["fmax_median_mhz"], rel=1e-2)
            assert 0 < r["ff_rate"] < 1 and 0 < r["logic_rate"] < 1 and r["ebr_read_rate"] > 0
            # The blank device's static power, plus a configured design's leakage (docs/power.md).
            blank_mw = 1e3 * (ICE40UP.static["iCE40UP5K"].value + ICE40UP.static_aux["iCE40UP5K"].value)
            assert blank_mw < r["static_mw"] < blank_mw + 0.03 and r["power_mw"] > r["static_mw"]
            assert r["energy_uj"] > 0
        # 8-bit synapses are four times as wide as 2-bit ones: more logic to decode and add them.
        assert w8["logic_used"] > w2["logic_used"] and w8["ebr_used"] >= w2["ebr_used"]
        table = list(csv.DictReader((tmp_path / "hw-sweep.csv").read_text().splitlines()))
        assert [(t["weight_bits"], t["membrane_bits"]) for t in table] == [("2", "8"), ("8", "8")]
        md = (tmp_path / "hw-sweep.md").read_text()
        assert "## icebreaker (iCE40UP5K-SG48)" in md and "estimates, not measurements" in md
        link = md.split("[docs/power.md](")[1].split(")")[0]
        assert (tmp_path / link).resolve() == ROOT / "docs" / "power.md"
        for plot in ("resources", "fmax", "energy"):
            assert (tmp_path / f"hw-sweep-{plot}.png").read_bytes().startswith(PNG)
            assert f"hw-sweep-{plot}.png" in md
        # Resume: every task comes from its record, nothing is rebuilt.
        lines.clear()
        again = run_sweep(config, out_dir=tmp_path, work_dir=work, jobs=2, progress=False, log=lines.append)
        assert any("4 of 4 tasks already done" in line for line in lines)
        assert again == rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_unreachable_scheduler_is_one_line_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(execute, "CONNECT_TIMEOUT", 1)
    work = _work_dir("test-sweep-scheduler-")
    try:
        argv = ["sweep-hw", "--boards", "icebreaker", "--weight-bits", "4", "--membrane-bits", "8", "--seeds", "1",
                "--out-dir", str(tmp_path / "results"), "--work-dir", str(work), "--no-progress"]
        assert main([*argv, "--scheduler", "tcp://127.0.0.1:1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("qlif: error: sweep-hw: cannot reach the Dask scheduler at "
                                                   "'tcp://127.0.0.1:1'")
        assert main([*argv, "--scheduler", "no-port"]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
        assert not (tmp_path / "results").exists() and not (work / "records").exists()     # nothing written
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _known_task(kind: str, args: tuple):
    """Stands in for a build or an activity run (known results, in no time)."""
    board, (b, k, p), seed = (None, args[2:5], None) if kind == "activity" else (args[2], args[3:6], args[6])
    key = f"w{b}-k{k}-p{p}" if kind == "activity" else f"{board}-w{b}-k{k}-p{p}-s{seed}"
    result, error = _known_results()[key]
    return result, error, 1.0


def test_sweep_on_an_existing_cluster(tmp_path, monkeypatch):
    """--scheduler ADDRESS runs the tasks on that cluster (one started here, its worker a thread of this
    process, so that the tasks can be stood in for); a second run comes from the records."""
    from distributed import LocalCluster

    monkeypatch.setattr(closure, "design_hash", lambda: "fixed")
    monkeypatch.setattr(execute, "run_task", _known_task)
    work = _work_dir("test-sweep-cluster-")
    argv = ["sweep-hw", "--boards", "icebreaker", "--weight-bits", "4", "--membrane-bits", "8", "--seeds", "3",
            "--out-dir", str(tmp_path), "--work-dir", str(work), "--no-progress"]
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            assert main([*argv, "--scheduler", cluster.scheduler_address]) == 0
            first = (tmp_path / "hw-sweep.csv").read_text()
            assert len(list((work / "records").iterdir())) == 4
            monkeypatch.setattr(execute, "run_task", None)          # nothing runs again
            assert main([*argv, "--scheduler", cluster.scheduler_address]) == 0
        table = list(csv.DictReader(first.splitlines()))
        assert [(t["weight_bits"], t["fmax_median_mhz"], t["error"]) for t in table] == [("4", "41.0", "")]
        assert (tmp_path / "hw-sweep.csv").read_text() == first
    finally:
        shutil.rmtree(work, ignore_errors=True)
