"""Checking the bench's observations: the golden :class:`ReferenceModel` of a run, the :class:`StepTiming`
that turns the events stamped at the ports into a step's measured cycles, and the :class:`Scoreboard`
that compares every step with the golden model and the cycle model."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from qlif.golden.spec import reference
from qlif.golden.spec.cycles import groups
from qlif.golden.spec.layouts import EOT
from qlif.golden.spec.model import Model
from qlif.hw.network import TRACE_WIDTH
from qlif.sim.compare import prediction_mismatch, step_mismatch
from qlif.sim.coverage import bad_token_kind
from qlif.sim.monitors import StreamProtocolError

__all__ = ["Mismatch", "StepTiming", "ReferenceModel", "Scoreboard"]


class Mismatch(AssertionError):
    """The design computed something the golden model does not (raised only by a strict scoreboard)."""


@dataclass(frozen=True)
class StepTiming:
    """The events at the ports that delimit a step, in clock cycles (:func:`cycle`, falling edges).

    The cycle model (docs/architecture.md, "Cycle model"; ``golden/spec/cycles.py``) counts from the
    cycle the step's first ``events`` token leaves the input queue (the one after it was taken) to
    ``DONE``, the cycle before ``step_done``, leaving out the cycles spent waiting for ``spikes.ready``
    in ``OUT`` (``spikes.valid`` is high in every ``OUT`` cycle and only there, so these are the cycles
    with ``valid`` high and ``ready`` low) and those spent waiting for ``events.valid`` or dropping an
    invalid token. The last two cannot be seen at the ports: each wait for a token follows a cycle in
    which the driver held ``valid`` low (``ready`` is high while the input queue is not full), and each
    drop costs at most one cycle. So :attr:`cycles` is exact when the step had neither (:attr:`slack` 0),
    and otherwise exceeds the model's figure by at most :attr:`slack`.
    """

    first_token: int    # the step's first events token was accepted at the end of this cycle
    eot: int            # the spikes eot token was accepted at the end of this cycle
    done: int           # step_done was high in this cycle
    stalls: int         # cycles of the step with spikes.valid high and spikes.ready low
    gaps: int           # cycles the driver held events.valid low between the step's first and eot tokens
    dropped: int        # invalid tokens of the step (dropped by the core)

    @property
    def cycles(self) -> int:
        """The step's cycles as the model counts them, from ``first_token + 1`` to ``done - 1``, less
        the ``spikes`` stalls (and, where :attr:`slack` > 0, up to :attr:`slack` waits for tokens)."""
        return self.done - self.first_token - 1 - self.stalls

    @property
    def slack(self) -> int:
        """How many cycles of waiting for ``events`` (not counted by the model) :attr:`cycles` may hold."""
        return self.gaps + self.dropped

    def describe(self) -> str:
        """Where the figure comes from, for a failure message."""
        text = (f"first events token taken at cycle {self.first_token}, step_done at cycle {self.done}, "
                f"less {self.stalls} cycles of spikes.ready low")
        if self.slack:
            text += (f"; up to {self.slack} more may be waits for events ({self.gaps} events.valid gap "
                     f"cycles, {self.dropped} dropped tokens)")
        return text


class ReferenceModel:
    """The golden model of one run: expected results and the ``events`` tokens of every step.

    With ``bad_tokens`` (a seeded ``random.Random``), some steps also carry tokens the core must drop
    and flag: an address ``>= n_in`` (error bit 0) or a repeat of the step's previous address (not
    strictly ascending, bit 1). Dropped tokens change no state and no cycle count, so the expected
    results stay those of the clean stimuli; :attr:`expected_error` holds the flags each sample must
    end with.
    """

    def __init__(self, model: Model, x: np.ndarray, *, lanes: int, bad_tokens: random.Random | None = None):
        self.model = model
        self.x = reference.check_inputs(model, x)
        self.lanes = lanes
        self.expected = reference.run(model, self.x, lanes=lanes)
        self._tokens: list[list[int]] = []
        #: Invalid tokens per sample and step (each may cost the core one uncounted cycle).
        self.dropped: list[list[int]] = []
        self.expected_error: list[int] = []
        for s in range(self.samples):
            tokens, error = self._sample_tokens(s, bad_tokens)
            self._tokens.append(tokens)
            self.expected_error.append(error)
            self.dropped.append(self._dropped(s))

    @property
    def samples(self) -> int:
        return self.x.shape[0]

    def valid(self, s: int) -> list[bool]:
        """Per token of sample ``s``: an address the core integrates (not an eot, not one it must drop)."""
        out, low = [], 0
        for tok in self._tokens[s]:
            good = tok != EOT and low <= tok < self.model.n_in
            out.append(good)
            low = 0 if tok == EOT else tok + 1 if good else low
        return out

    def bad_kinds(self, s: int) -> list[str]:
        """The kinds (:data:`qlif.sim.coverage.BAD_TOKENS`) of the invalid tokens of sample ``s``."""
        tokens, kinds, previous = self._tokens[s], [], None
        for i, (tok, good) in enumerate(zip(tokens, self.valid(s), strict=True)):
            if tok == EOT:
                previous = None
            elif good:
                previous = tok
            else:
                kinds.append(bad_token_kind(tok, previous, self.model.n_in,
                                            tokens[i + 1] if i + 1 < len(tokens) else None))
        return kinds

    def _dropped(self, s: int) -> list[int]:
        """Per step, the tokens the core must drop: out of range, or not above the previous good one."""
        out, bad = [], 0
        for tok, good in zip(self._tokens[s], self.valid(s), strict=True):
            if tok == EOT:
                out.append(bad)
                bad = 0
            elif not good:
                bad += 1
        return out

    def _sample_tokens(self, s: int, rng: random.Random | None) -> tuple[list[int], int]:
        out: list[int] = []
        error = 0
        n_in = self.model.n_in
        # With 2^TOKEN_ADDR_BITS inputs every address is in range.
        oor = rng is not None and n_in < EOT
        for t in range(self.model.timesteps):
            if oor and rng.random() < 0.1:
                out.append(rng.randrange(n_in, min(n_in + 300, EOT)))   # before any address of the step
                error |= 1
            for a in (int(a) for a in np.flatnonzero(self.x[s, t])):
                out.append(a)
                if rng is not None and rng.random() < 0.15:
                    if oor and rng.random() < 0.5:
                        out.append(rng.randrange(n_in, min(n_in + 300, EOT)))
                        error |= 1
                    else:
                        out.append(rng.randrange(0, a + 1))   # not above the previous address
                        error |= 2
            if oor and rng.random() < 0.1:
                out.append(EOT - 1)   # the largest address, right before eot
                error |= 1
            out.append(EOT)
        return out, error

    def tokens(self, s: int) -> list[int]:
        """All ``events`` tokens of sample ``s``: per step the ascending input addresses, then eot."""
        return self._tokens[s]


class Scoreboard:
    """Turns raw trace words into per-layer arrays, records them, and compares each step with the reference.

    Protocol faults (a trace group missing or repeated, output tokens that disagree with the trace's own
    output spikes, nonzero padding lanes) raise :class:`StreamProtocolError` at once. A difference from the
    golden model is kept as :attr:`mismatch` (the first one) and raised as :class:`Mismatch` only when
    ``strict``.

    Cycles are checked three ways when a step comes with its :class:`StepTiming`: ``step_cycles`` against
    the golden cycle model (a mismatch), the cycles measured at the ports against the model (a
    mismatch), and ``step_cycles`` against the measured cycles (a protocol fault: the counter breaks its
    port contract, and only this makes a lenient run fail when the counter agrees with a wrong model,
    since the measured :class:`Result` carries ``step_cycles``). Measured figures are in
    :attr:`measured_cycles` (-1: not measured) and whether each was exact in :attr:`measured_exact`.
    """

    def __init__(self, model: ReferenceModel, *, strict: bool):
        self._m = model
        self.strict = strict
        self.mismatch: str | None = None
        qm, lanes = model.model, model.lanes
        shape = (model.samples, qm.timesteps)
        self.spikes = [np.zeros((*shape, layer.n_out), np.uint8) for layer in qm.layers]
        self.membranes = [np.zeros((*shape, layer.n_out), np.int32) for layer in qm.layers]
        self.cycles = np.zeros(shape, np.int64)
        self.measured_cycles = np.full(shape, -1, np.int64)
        self.measured_exact = np.zeros(shape, bool)
        self.prediction = np.full(model.samples, -1, np.int64)
        self._groups = [groups(layer.n_out, lanes) for layer in qm.layers]

    def _fail(self, msg: str) -> None:
        self.mismatch = self.mismatch or msg
        if self.strict:
            raise Mismatch(msg)

    def step(self, s: int, t: int, trace: list[tuple[int, int, int, int]], tokens: list[int],
             cycles: int, timing: StepTiming | None = None) -> None:
        """Score step ``t`` of sample ``s`` from its trace words, output tokens, ``step_cycles`` and (if
        given) the port events that delimit it."""
        lanes = self._m.lanes
        seen = [np.zeros(g, bool) for g in self._groups]
        for layer, group, spk, mem in trace:
            if layer >= len(seen) or group >= len(seen[layer]):
                raise StreamProtocolError(f"sample {s}, t {t}: trace names layer {layer} group {group}, "
                                          f"which does not exist")
            if seen[layer][group]:
                raise StreamProtocolError(f"sample {s}, t {t}: trace shows layer {layer} group {group} twice")
            seen[layer][group] = True
            n_out = self.spikes[layer].shape[2]
            for lane in range(lanes):
                i = group * lanes + lane
                raw = (mem >> (TRACE_WIDTH * lane)) & ((1 << TRACE_WIDTH) - 1)
                v = raw - (1 << TRACE_WIDTH) if raw >> (TRACE_WIDTH - 1) else raw
                bit = (spk >> lane) & 1
                if i < n_out:
                    self.membranes[layer][s, t, i] = v
                    self.spikes[layer][s, t, i] = bit
                elif v or bit:
                    raise StreamProtocolError(f"sample {s}, t {t}: trace layer {layer} group {group} lane {lane} "
                                              f"lies beyond the {n_out} neurons but shows v={v}, s={bit}")
        for layer, got in enumerate(seen):
            if not got.all():
                raise StreamProtocolError(f"sample {s}, t {t}: trace never showed layer {layer} group "
                                          f"{int(np.flatnonzero(~got)[0])}")
        self.cycles[s, t] = cycles
        msg = step_mismatch(self._m.expected, s, t, [x[s, t] for x in self.spikes],
                            [x[s, t] for x in self.membranes], cycles)
        if msg is not None:
            self._fail(msg)
        if timing is not None:
            self._timing(s, t, cycles, timing)
        # The output tokens are checked against the RTL's own trace: the measured Result then speaks for
        # them too, so a comparison of Results (first_mismatch) loses nothing.
        own = np.flatnonzero(self.spikes[-1][s, t]).tolist()
        if tokens != own:
            raise StreamProtocolError(f"sample {s}, t {t}: spikes stream sent addresses {tokens}, but the trace "
                                      f"shows output spikes at {own}")

    def _timing(self, s: int, t: int, cycles: int, timing: StepTiming) -> None:
        """Compare the cycles measured at the ports with the cycle model and with ``step_cycles``."""
        if timing.done - timing.eot != 2:
            raise StreamProtocolError(f"sample {s}, t {t}: step_done at cycle {timing.done}, "
                                      f"{timing.done - timing.eot} cycles after the spikes eot handshake "
                                      f"(cycle {timing.eot}), not 2")
        got, slack = timing.cycles, timing.slack
        self.measured_cycles[s, t] = got
        self.measured_exact[s, t] = slack == 0
        model = int(self._m.expected.cycles[s, t])
        if not model <= got <= model + slack:
            want = f"{model}" if slack == 0 else f"{model}..{model + slack}"
            self._fail(f"sample {s}, t {t}: cycles measured {got}, cycle model {want} (step_cycles {cycles}; "
                       f"{timing.describe()})")
        if not cycles <= got <= cycles + slack:
            raise StreamProtocolError(f"sample {s}, t {t}: step_cycles says {cycles}, but the ports show "
                                      f"{got} cycles ({timing.describe()})")

    def sample_done(self, s: int, prediction: int, error: int, counts: int) -> None:
        """Score the end of sample ``s`` from the ``prediction``, ``error`` and (packed) ``counts`` ports.

        The counters must equal the output spikes the trace showed; the prediction is compared with the
        golden model.
        """
        if error != self._m.expected_error[s]:
            raise StreamProtocolError(f"sample {s}: error flags {error:#04b}, expected "
                                      f"{self._m.expected_error[s]:#04b} from the invalid tokens sent")
        own = self.spikes[-1][s].sum(axis=0, dtype=np.int64)
        width = self._m.model.timesteps.bit_length()
        got = [(counts >> (width * i)) & ((1 << width) - 1) for i in range(len(own))]
        if got != own.tolist():
            raise StreamProtocolError(f"sample {s}: counts port shows {got}, but the trace shows output spike "
                                      f"counts {own.tolist()}")
        self.prediction[s] = prediction
        msg = prediction_mismatch(self._m.expected, s, prediction)
        if msg is not None:
            self._fail(msg)

    def result(self) -> reference.Result:
        """What was measured, as a golden :class:`~qlif.golden.spec.reference.Result`."""
        return reference.Result(spikes=self.spikes, membranes=self.membranes, prediction=self.prediction,
                                cycles=self.cycles)
