"""Functional coverage of the RTL runs, measured from what each run did (cocotb-coverage).

Every RTL run, in the Amaranth simulator (:func:`qlif.sim.harness.simulate`) or on the Verilog
(:func:`qlif.sim.runner.run_rtl`), can leave an **observation**: what the run showed at the ports and in
the trace, not what its generator meant it to do. :func:`observe` derives it from the measured
:class:`~qlif.golden.spec.reference.Result` (the RTL's own membranes and spikes, step by step), the
stimuli and the port events the bench recorded (``valid`` gaps, ``ready`` stalls, invalid tokens sent,
the cycles at which ``events`` tokens were taken). With the environment variable ``QLIF_COVERAGE_DIR``
set, each run appends its observation as one JSON line to ``<dir>/<pid>.jsonl`` (so pytest-xdist
workers and sweep processes never share a file); :func:`collect` samples the files into cocotb-coverage's
``coverage_db`` and :func:`report` prints the table and ends with ``coverpoints hit: H/N``.

Coverpoints (docs/verification.md, "Functional coverage", says what each bin means):

* per layer: ``b``, ``k``, ``lam``, ``reset``, ``codebook``, ``partial_group``, ``theta`` (a spike with
  theta = 0 and with theta at its maximum), ``integrate_saturation`` (a partial sum of contract step 3
  clipped at the top or the bottom), ``subtract_reset`` (to a negative value, and to its floor -theta at
  the largest theta: the lowest value a subtract reset can reach, see below);
* per run: ``P``, ``forwarding`` (layer 0 integrating one group again 1, 2 or 3 cycles after the last
  time, G <= 3), ``input_step`` (an empty step, an all-ones step), ``argmax`` (a tie won by the lower
  index after a higher one reached the maximum first; an overtake), ``bad_token`` (each kind the bench
  sends), ``events_gap`` and ``spikes_backpressure`` (1 cycle and >= 8 cycles), ``clear`` (a clear after
  a sample that left a membrane nonzero, and the next sample equal to the golden model).

A subtract reset cannot reach the membrane's bottom bound: it acts on a neuron that spiked, so
``v > theta >= 0``, and the leak keeps ``leak(v) = v - (v >> lam) >= 0``; the result ``leak(v) - theta``
is therefore at least ``-theta >= -(2^(k-1) - 2) = v_min + 2``. The bin covers that floor instead
(``lam = 0`` makes ``leak(v) = 0``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from cocotb_coverage.coverage import CoverPoint, coverage_db

from qlif.golden.spec.cycles import LANES, groups
from qlif.golden.spec.layouts import EOT
from qlif.golden.spec.model import Layer, Model
from qlif.golden.spec.reference import Result

__all__ = ["ENV", "BAD_TOKENS", "argmax_moves", "observe", "record", "collect", "report", "main"]

#: The environment variable naming the folder where runs leave their observations.
ENV = "QLIF_COVERAGE_DIR"

#: The kinds of invalid ``events`` token the Verilog bench sends (:class:`qlif.sim.scoreboard.ReferenceModel`).
BAD_TOKENS = ("out of range, first in the step", "out of range, after an address", "largest address, before eot",
              "repeat of the previous address", "below the previous address")

#: Pause lengths that count as short and long, for ``events`` gaps and ``spikes`` backpressure.
SHORT, LONG = 1, 8


def argmax_moves(out_spikes: np.ndarray) -> set[str]:
    """What the prediction went through in one sample (``out_spikes``: uint8 [T, n_out]), replaying the
    counts spike by spike in the order the hardware counts them (step, then ascending neuron):
    ``"tie"``, a lower neuron ties the maximum that a higher one (the argmax) reached first;
    ``"lower overtakes"``, a lower neuron passes the (nonzero) maximum it shared with a higher one;
    ``"higher overtakes"``, a higher neuron passes the (nonzero) maximum of the lower argmax."""
    counts = np.zeros(out_spikes.shape[1], np.int64)
    best, moves = 0, set()
    for step in out_spikes:
        for i in (int(i) for i in np.flatnonzero(step)):
            top = int(counts.max())
            counts[i] += 1
            if counts[i] == top and i < best:
                moves.add("tie")
            elif counts[i] > top > 0 and i > best:
                moves.add("higher overtakes")
            elif counts[i] > top > 0 and (counts[i + 1:] == top).any():
                moves.add("lower overtakes")
            if counts[i] > top or (counts[i] == top and i < best):
                best = i
    return moves


def _pre_integration(layer: Layer, v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Contract steps 1-2 on measured values: the next step's pre-integration membranes (int64)."""
    v, s = v.astype(np.int64), s.astype(np.int64)
    u = v if layer.leak_shift is None else v - (v >> layer.leak_shift)
    if layer.reset == "subtract":
        return np.clip(u - layer.threshold * s, layer.v_min, layer.v_max)
    return np.where(s, 0, u)


def _layer_facts(layer: Layer, inputs: np.ndarray, v: np.ndarray, s: np.ndarray, lanes: int) -> dict:
    """What one layer did: ``inputs`` uint8 [S, T, n_in] (the stimuli or the previous layer's measured
    spikes), ``v`` and ``s`` its measured membranes and spikes [S, T, n_out]."""
    top = (1 << (layer.membrane_bits - 1)) - 2
    w = layer.weights.astype(np.int64)
    sat_top = sat_bottom = False
    # Contract step 3 replayed from the measured state of the step before: did a partial sum leave the
    # register? (Vectorised over samples, in ascending input order like the contract.)
    n_samples, n_steps, _ = inputs.shape
    pre = np.zeros((n_samples, layer.n_out), np.int64)
    for t in range(n_steps):
        if t:
            pre = _pre_integration(layer, v[:, t - 1], s[:, t - 1])
        u = pre.copy()
        for j in np.flatnonzero(inputs[:, t].any(axis=0)):
            hit = inputs[:, t, j].astype(bool)
            u[hit] += w[j]
            sat_top |= bool((u[hit] > layer.v_max).any())
            sat_bottom |= bool((u[hit] < layer.v_min).any())
            u = np.clip(u, layer.v_min, layer.v_max)
    spiked = s.astype(bool)
    after = _pre_integration(layer, v, s)[spiked]        # reset results of the neurons that spiked
    book = layer.codebook
    return {
        "b": layer.weight_bits, "k": layer.membrane_bits,
        "lam": "null" if layer.leak_shift is None else layer.leak_shift,
        "reset": layer.reset,
        "codebook": ("default" if book is None else
                     "custom with extremes" if {-(1 << 15), 1 << 15} <= set(book) else "custom"),
        "partial_group": layer.n_out % lanes != 0,
        "theta": sorted({*(["0, spiking"] if layer.threshold == 0 and spiked.any() else []),
                         *(["max, spiking"] if layer.threshold == top and spiked.any() else [])}),
        "integrate_saturation": [name for name, hit in (("top", sat_top), ("bottom", sat_bottom)) if hit],
        "subtract_reset": [] if layer.reset != "subtract" or not after.size else
        [name for name, hit in (("to a negative value", (after < 0).any()),
                                ("to its floor -theta at theta max",
                                 layer.threshold == top and (after == -top).any())) if hit],
    }


def observe(model: Model, x: np.ndarray, lanes: int, got: Result, *, gap_runs: Iterable[int] = (),
            stall_runs: Iterable[int] = (), bad_tokens: Iterable[str] = (),
            forwarding: Iterable[int] = ()) -> dict:
    """One run's observation (JSON-ready): layer facts from the measured ``got`` and stimuli ``x``, run
    facts from the port events the bench recorded.

    Parameters
    ----------
    gap_runs, stall_runs : iterable of int
        Lengths of the runs of cycles in which the bench held ``events.valid`` low between tokens, and
        in which ``spikes.valid`` was high while the bench held ``ready`` low.
    bad_tokens : iterable of str
        The kinds (:data:`BAD_TOKENS`) of invalid tokens the core took and dropped.
    forwarding : iterable of int
        Cycles between consecutive valid ``events`` tokens of a step that the core took (layer 0 then
        integrates each group again after that many cycles).
    """
    layers, inputs = [], x
    for l, layer in enumerate(model.layers):
        layers.append(_layer_facts(layer, inputs, got.membranes[l], got.spikes[l], lanes))
        inputs = got.spikes[l]
    steps = x.reshape(-1, x.shape[-1])
    moves = set().union(*(argmax_moves(sample) for sample in got.spikes[-1]))
    # A clear between samples that had something to clear: some membrane nonzero at a sample's last step.
    left = [any(v[s, -1].any() for v in got.membranes) for s in range(x.shape[0] - 1)]
    g0 = groups(model.layers[0].n_out, lanes)
    gap_runs, stall_runs = list(gap_runs), list(stall_runs)
    return {
        "P": lanes,
        "layers": layers,
        "forwarding": sorted({int(d) for d in forwarding if g0 <= d <= 3}),
        "input_step": [name for name, hit in (("empty", (steps.sum(axis=1) == 0).any()),
                                              ("all ones", (steps.sum(axis=1) == steps.shape[1]).any())) if hit],
        "argmax": sorted({*(["tie won by the lower index"] if "tie" in moves else []),
                          *(["overtake"] if moves & {"lower overtakes", "higher overtakes"} else [])}),
        "bad_token": sorted(set(bad_tokens)),
        "events_gap": _pause_bins(gap_runs),
        "spikes_backpressure": _pause_bins(stall_runs),
        "clear": ["after a sample left a membrane"] if any(left) else [],
    }


def _pause_bins(runs: Sequence[int]) -> list[str]:
    return [name for name, hit in ((f"{SHORT} cycle", SHORT in runs),
                                   (f">= {LONG} cycles", any(r >= LONG for r in runs))) if hit]


def bad_token_kind(token: int, previous: int | None, n_in: int, next_token: int | None) -> str:
    """The :data:`BAD_TOKENS` kind of an invalid token (``previous``: the step's last valid address)."""
    if token >= n_in:
        if previous is None:
            return BAD_TOKENS[0]
        return BAD_TOKENS[2] if token == EOT - 1 and next_token == EOT else BAD_TOKENS[1]
    return BAD_TOKENS[3] if token == previous else BAD_TOKENS[4]


def record(observation: dict) -> None:
    """Append ``observation`` to this process's file in ``$QLIF_COVERAGE_DIR`` (nothing when unset)."""
    where = os.environ.get(ENV)
    if not where:
        return
    folder = Path(where)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{os.getpid()}.jsonl", "a") as f:      # one line per run, appended whole
        f.write(json.dumps(observation) + "\n")


# --- cocotb-coverage: the coverpoints and their sampling ---

def _has(values, bin_) -> bool:
    return bin_ in values


#: (coverpoint, bins, per layer?): every bin is hit when the observation's list or value holds it.
COVERPOINTS: tuple[tuple[str, tuple, bool], ...] = (
    ("b", (1, 2, 4, 8), True),
    ("k", tuple(range(2, 17)), True),
    ("lam", ("null", *range(16)), True),
    ("reset", ("subtract", "zero"), True),
    ("codebook", ("default", "custom", "custom with extremes"), True),
    ("partial_group", (True,), True),
    ("theta", ("0, spiking", "max, spiking"), True),
    ("integrate_saturation", ("top", "bottom"), True),
    ("subtract_reset", ("to a negative value", "to its floor -theta at theta max"), True),
    ("P", LANES, False),
    ("forwarding", (1, 2, 3), False),
    ("input_step", ("empty", "all ones"), False),
    ("argmax", ("tie won by the lower index", "overtake"), False),
    ("bad_token", BAD_TOKENS, False),
    ("events_gap", (f"{SHORT} cycle", f">= {LONG} cycles"), False),
    ("spikes_backpressure", (f"{SHORT} cycle", f">= {LONG} cycles"), False),
    ("clear", ("after a sample left a membrane",), False),
)


def _sampler(per_layer: bool):
    """A function that samples every coverpoint of one kind (layer or run) from a facts dict."""
    def sample(facts: dict) -> None:
        pass
    for name, bins, layer in COVERPOINTS:
        if layer is per_layer:
            sample = CoverPoint(f"qlif.{'layer' if layer else 'run'}.{name}", bins=list(bins), inj=False,
                                xf=lambda facts, name=name: _as_list(facts[name]), rel=_has)(sample)
    return sample


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


_sample_layer = _sampler(True)
_sample_run = _sampler(False)


def collect(folder: str | os.PathLike) -> int:
    """Sample every observation in ``folder``'s ``*.jsonl`` files into ``coverage_db``; return how many."""
    runs = 0
    for path in sorted(Path(folder).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            observation = json.loads(line)
            for facts in observation["layers"]:
                _sample_layer(facts)
            _sample_run(observation)
            runs += 1
    return runs


def report(log=print) -> tuple[int, int]:
    """Print one line per coverpoint (bins hit / bins, and the bins missed), then ``bins hit: h/n`` and
    ``coverpoints hit: H/N``; return (H, N)."""
    hit = total = bins_hit = bins_total = 0
    for name, bins, layer in COVERPOINTS:
        point = coverage_db[f"qlif.{'layer' if layer else 'run'}.{name}"]
        detail = point.detailed_coverage
        missed = [str(b) for b in bins if detail[b] < 1]
        covered = len(bins) - len(missed)
        log(f"  {'layer' if layer else 'run':5} {name:22} {covered:3}/{len(bins):<3}"
            + (f"  missed: {', '.join(missed)}" if missed else ""))
        hit += not missed
        total += 1
        bins_hit += covered
        bins_total += len(bins)
    log(f"bins hit: {bins_hit}/{bins_total}")
    log(f"coverpoints hit: {hit}/{total}")
    return hit, total


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qlif.sim.coverage DIR``: the coverage of the observations in DIR."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m qlif.sim.coverage", description=main.__doc__)
    parser.add_argument("folder", help="the folder that runs wrote with QLIF_COVERAGE_DIR set")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        print(f"qlif: no coverage folder {args.folder}", file=sys.stderr)
        return 2
    runs = collect(args.folder)
    print(f"functional coverage of {runs} RTL runs ({args.folder}):")
    hit, total = report()
    return 0 if hit == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
