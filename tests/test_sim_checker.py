"""The checkers themselves, without a simulator: a checker that cannot fail proves nothing."""

from __future__ import annotations

import numpy as np
import pytest

from qlif.golden.spec import reference
from qlif.golden.spec.layouts import EOT
from qlif.golden.spec.model import Layer, Model
from qlif.hw.network import TRACE_WIDTH
from qlif.sim.compare import first_mismatch
from qlif.sim.monitors import StreamProtocolError
from qlif.sim.scoreboard import Mismatch, ReferenceModel, Scoreboard, StepTiming


def _model() -> Model:
    rng = np.random.default_rng(3)
    return Model(timesteps=4, layers=(
        Layer(rng.integers(-8, 8, (6, 5)), 4, 6, 3, 2, "subtract"),
        Layer(rng.integers(-2, 2, (5, 3)), 2, 4, 1, None, "zero"),
    ))


def _case(lanes: int = 1) -> ReferenceModel:
    x = (np.random.default_rng(4).random((2, 4, 6)) < 0.5).astype(np.uint8)
    return ReferenceModel(_model(), x, lanes=lanes)


def _copy(r: reference.Result) -> reference.Result:
    return reference.Result([a.copy() for a in r.spikes], [a.copy() for a in r.membranes], r.prediction.copy(),
                            r.cycles.copy())


def test_first_mismatch_equal_is_none():
    m = _case()
    assert first_mismatch(m.expected, _copy(m.expected)) is None


def test_first_mismatch_reports_first_membrane():
    m = _case()
    got = _copy(m.expected)
    got.membranes[1][1, 2, 2] += 1
    got.membranes[0][1, 3, 0] += 1        # later step: must not be the one reported
    got.cycles[1, 3] += 1
    want = m.expected.membranes[1][1, 2, 2]
    assert first_mismatch(m.expected, got) == (
        f"sample 1, t 2, layer 1, neuron 2: membrane expected {want}, got {want + 1}")


def test_first_mismatch_reports_spike_cycles_prediction_shape():
    m = _case()
    got = _copy(m.expected)
    got.spikes[0][0, 1, 4] ^= 1
    assert first_mismatch(m.expected, got).startswith("sample 0, t 1, layer 0, neuron 4: spike expected")
    got = _copy(m.expected)
    got.cycles[0, 3] = 0
    assert first_mismatch(m.expected, got) == (
        f"sample 0, t 3: step_cycles expected {m.expected.cycles[0, 3]}, got 0")
    got = _copy(m.expected)
    got.prediction[1] = got.prediction[1] + 1
    assert first_mismatch(m.expected, got).startswith("sample 1: prediction expected")
    got = _copy(m.expected)
    got.membranes[0] = got.membranes[0][:1]
    assert "shape" in first_mismatch(m.expected, got)


def _words(m: ReferenceModel, s: int, t: int,
           result: reference.Result | None = None) -> list[tuple[int, int, int, int]]:
    """The trace words a correct design shows at sample s, step t (lanes beyond n_out zero)."""
    r = result or m.expected
    words = []
    for l, (spk, mem) in enumerate(zip(r.spikes, r.membranes, strict=True)):
        n = spk.shape[2]
        for g in range(-(-n // m.lanes)):
            sbits = vbits = 0
            for lane in range(m.lanes):
                i = g * m.lanes + lane
                if i < n:
                    sbits |= int(spk[s, t, i]) << lane
                    vbits |= (int(mem[s, t, i]) & ((1 << TRACE_WIDTH) - 1)) << (TRACE_WIDTH * lane)
            words.append((l, g, sbits, vbits))
    return words


def _score_all(sb: Scoreboard, m: ReferenceModel, result: reference.Result | None = None) -> None:
    r = result or m.expected
    for s in range(m.samples):
        for t in range(m.model.timesteps):
            sb.step(s, t, _words(m, s, t, r)[::-1], np.flatnonzero(r.spikes[-1][s, t]).tolist(),
                    int(r.cycles[s, t]))
        width = m.model.timesteps.bit_length()
        counts = sum(int(c) << (width * i) for i, c in enumerate(r.spikes[-1][s].sum(axis=0)))
        sb.sample_done(s, int(r.prediction[s]), 0, counts)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_scoreboard_decodes_trace_words(lanes):
    m = _case(lanes)
    sb = Scoreboard(m, strict=True)
    _score_all(sb, m)
    assert sb.mismatch is None
    assert first_mismatch(m.expected, sb.result()) is None


def test_scoreboard_strict_and_lenient():
    m = _case()
    bad = _copy(m.expected)
    bad.membranes[0][0, 1, 3] -= 1
    with pytest.raises(Mismatch, match="sample 0, t 1, layer 0, neuron 3: membrane"):
        _score_all(Scoreboard(m, strict=True), m, bad)
    sb = Scoreboard(m, strict=False)
    _score_all(sb, m, bad)
    assert sb.mismatch.startswith("sample 0, t 1, layer 0, neuron 3: membrane")
    assert first_mismatch(m.expected, sb.result()) == sb.mismatch


def test_scoreboard_protocol_faults():
    m = _case(lanes=2)
    tokens = np.flatnonzero(m.expected.spikes[-1][0, 0]).tolist()
    words = _words(m, 0, 0)
    cyc = int(m.expected.cycles[0, 0])
    with pytest.raises(StreamProtocolError, match="never showed layer 1 group 1"):
        Scoreboard(m, strict=False).step(0, 0, words[:-1], tokens, cyc)
    with pytest.raises(StreamProtocolError, match="twice"):
        Scoreboard(m, strict=False).step(0, 0, words + words[-1:], tokens, cyc)
    with pytest.raises(StreamProtocolError, match="spikes stream sent"):
        Scoreboard(m, strict=False).step(0, 0, words, [*tokens, EOT - 1], cyc)
    # Layer 0 has 5 neurons in 3 groups of 2: lane 1 of group 2 lies beyond them and must read zero.
    padded = [(l, g, s | (2 if (l, g) == (0, 2) else 0), v) for l, g, s, v in words]
    with pytest.raises(StreamProtocolError, match="beyond the 5 neurons"):
        Scoreboard(m, strict=False).step(0, 0, padded, tokens, cyc)
    with pytest.raises(StreamProtocolError, match="error flags"):
        Scoreboard(m, strict=False).sample_done(0, 0, 2, 0)


def _timing(cycles: int, *, stalls: int = 0, gaps: int = 0, dropped: int = 0) -> StepTiming:
    """Port events of a step that took ``cycles`` counted cycles, as the cycle model delimits them."""
    first = 100
    done = first + 1 + cycles + stalls + gaps
    return StepTiming(first_token=first, eot=done - 2, done=done, stalls=stalls, gaps=gaps, dropped=dropped)


def _step(sb: Scoreboard, m: ReferenceModel, cycles: int, timing: StepTiming) -> None:
    sb.step(0, 1, _words(m, 0, 1), np.flatnonzero(m.expected.spikes[-1][0, 1]).tolist(), cycles, timing)


def test_measured_cycles_are_compared_with_the_model_and_the_counter():
    m = _case()
    model = int(m.expected.cycles[0, 1])
    sb = Scoreboard(m, strict=True)
    _step(sb, m, model, _timing(model, stalls=5))               # spikes.ready stalls are left out
    assert sb.measured_cycles[0, 1] == model and sb.measured_exact[0, 1]
    # A counter that agrees with the model cannot hide a design (or a model) that does something else.
    with pytest.raises(Mismatch, match=rf"sample 0, t 1: cycles measured {model + 1}, cycle model {model} "
                                       rf"\(step_cycles {model}; first events token taken at cycle 100"):
        _step(Scoreboard(m, strict=True), m, model, _timing(model + 1))
    sb = Scoreboard(m, strict=False)
    with pytest.raises(StreamProtocolError, match=rf"step_cycles says {model}, but the ports show {model - 1}"):
        _step(sb, m, model, _timing(model - 1))
    assert sb.mismatch.startswith(f"sample 0, t 1: cycles measured {model - 1}, cycle model {model}")
    # A counter that disagrees with both is a mismatch (reported first) and a protocol fault.
    with pytest.raises(Mismatch, match=rf"step_cycles expected {model}, got {model + 1}"):
        _step(Scoreboard(m, strict=True), m, model + 1, _timing(model))
    with pytest.raises(StreamProtocolError, match=rf"step_cycles says {model + 1}, but the ports show {model}"):
        _step(Scoreboard(m, strict=False), m, model + 1, _timing(model))


def test_measured_cycles_with_waits_for_events_are_bounded():
    """Waits for events.valid and dropped tokens are not visible at the ports: a step with events gaps or
    invalid tokens may measure up to that many cycles more than the model, no fewer, no more."""
    m = _case()
    model = int(m.expected.cycles[0, 1])
    for extra in (0, 3, 5):
        sb = Scoreboard(m, strict=True)
        _step(sb, m, model, StepTiming(first_token=0, eot=model + extra - 1, done=model + extra + 1, stalls=0,
                                       gaps=3, dropped=2))
        assert sb.measured_cycles[0, 1] == model + extra and not sb.measured_exact[0, 1]
    for extra in (-1, 6):
        with pytest.raises(Mismatch, match=rf"cycles measured {model + extra}, cycle model {model}..{model + 5}"):
            _step(Scoreboard(m, strict=True), m, model,
                  StepTiming(first_token=0, eot=model + extra - 1, done=model + extra + 1, stalls=0, gaps=3,
                             dropped=2))


def test_step_done_must_follow_the_spikes_eot_by_two_cycles():
    m = _case()
    model = int(m.expected.cycles[0, 1])
    t = _timing(model)
    late = StepTiming(first_token=t.first_token, eot=t.eot - 1, done=t.done, stalls=0, gaps=0, dropped=0)
    with pytest.raises(StreamProtocolError, match="3 cycles after the spikes eot handshake"):
        _step(Scoreboard(m, strict=False), m, model, late)


def test_reference_model_counts_the_tokens_to_drop():
    import random

    m = ReferenceModel(_model(), _case().x, lanes=1, bad_tokens=random.Random(1))
    for s in range(m.samples):
        tokens = m.tokens(s)
        good = int(m.x[s].sum())
        assert len(m.dropped[s]) == m.model.timesteps
        assert sum(m.dropped[s]) == len(tokens) - good - m.model.timesteps
    assert sum(map(sum, m.dropped)) > 0
    assert _case().dropped == [[0] * 4, [0] * 4]
