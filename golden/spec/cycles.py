"""The cycle model: how many clock cycles the RTL spends on each timestep (docs/architecture.md).

The RTL is event-driven and sequential over layers, so its cycle count is a closed formula of the
number of input events of every layer at that step and the number of output spikes::

    cycles = STEP_OVERHEAD + Z + sum over layers l of ((E_l + 1) * G_l + LAYER_OVERHEAD)

with ``E_l`` the input events (spikes) of layer ``l``, ``G_l = ceil(n_out_l / P)`` and ``Z`` the spikes of
the output layer. Each event takes ``G_l`` cycles (one P-wide group per cycle); the cycle taking the
end-of-step token (or, for ``l > 0``, noticing the queue is empty) also issues the first group of the
fire pass, which takes ``G_l`` cycles plus four for its last group to pass the pipeline's stages B, C,
D and E (memory read, fire test, write-back, spike mask out); the output layer's spikes then leave one
per cycle, followed by the eot token and one cycle in which the argmax pipeline settles. The cocotb
scoreboard compares this figure with the cycles the RTL counts, every timestep; they must be equal.

With the on-chip encoder (:class:`qlif.hw.encoder.EncodedNetwork`) the core also waits for its input
tokens, which ``step_cycles`` leaves out: :func:`encoded_cycles` is the sample's whole latency, from the
frame's last byte to ``done``, by the encoder's and the core's handshake (docs/architecture.md,
"On-chip encoder").
"""

from __future__ import annotations

import numpy as np

__all__ = ["LANES", "check_lanes", "LAYER_OVERHEAD", "STEP_OVERHEAD", "groups", "cycle_model",
           "ENCODER_SCAN_START", "CLEAR_OVERHEAD", "encoded_cycles"]

#: Supported lane counts P (synapses per cycle). Powers of two, so a neuron address is {group, lane}.
LANES = (1, 2, 4, 8, 16, 32, 64)


def check_lanes(lanes) -> int:
    """``lanes`` if it is one of :data:`LANES`, else ``ValueError``: the one check of P that the RTL, the
    link, the board tops and the command line share."""
    if isinstance(lanes, bool) or lanes not in LANES:
        raise ValueError(f"lanes must be one of {', '.join(map(str, LANES))}, not {lanes!r}")
    return lanes


#: Fixed cycles per layer per step: the fire pipeline's last group in stages B, C, D and E
#: (docs/architecture.md).
LAYER_OVERHEAD = 4
#: Fixed cycles per step: the eot token of the ``spikes`` stream and the argmax's last update.
STEP_OVERHEAD = 2


def groups(n_neurons: int, lanes: int) -> int:
    """Number of P-wide neuron groups G = ceil(n / P): the cycles one event or one fire pass takes."""
    return -(-n_neurons // lanes)


def cycle_model(model, *, lanes: int, layer_inputs: list[np.ndarray],
                layer_spikes: list[np.ndarray]) -> np.ndarray:
    """Cycles per sample and step (int64 [S, T]).

    ``layer_inputs[l]`` is layer ``l``'s input spikes (uint8 [S, T, n_in_l]) and ``layer_spikes[l]`` its
    output spikes (uint8 [S, T, n_out_l]). Waiting for input tokens or for ``spikes.ready`` is not
    counted (the RTL leaves those cycles out of ``step_cycles``).
    """
    check_lanes(lanes)
    total = STEP_OVERHEAD + layer_spikes[-1].sum(axis=2, dtype=np.int64)
    for layer, x in zip(model.layers, layer_inputs, strict=True):
        g = groups(layer.n_out, lanes)
        events = x.sum(axis=2, dtype=np.int64)
        total += (events + 1) * g + LAYER_OVERHEAD
    return total


#: Cycles from a frame's last byte to input 0 of step 0 in the encoder's stage X (clear taken, RUN,
#: its word read); a token leaves X into the ``events`` register, valid one cycle later.
ENCODER_SCAN_START = 3
#: Cycles beyond ``max G_l`` from a frame's last byte to the first cycle the core can take a token,
#: counted from the cycle after the last byte: 1, the clear request (encoder in CLEAR, core idle); 2, the
#: core's ``clearing`` register; 2 .. G + 1, the ``G`` clear groups issued; G + 2 .. G + 4, the layer's
#: stages B, C and D (``LAYER_OVERHEAD - 1``: a clear has no stage E); G + 5, ``cleared``; G + 6,
#: ``accepting`` set again. It holds only for a core that is idle (not loading SPRAM weights, not
#: finishing a previous sample) when the last byte is taken: :func:`encoded_cycles` assumes that.
CLEAR_OVERHEAD = 6


def encoded_cycles(model, *, lanes: int, inputs: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    """Cycles per sample of the core fed by the on-chip encoder (int64 [S]): from the cycle that takes the
    frame's last byte to the one ``done`` is high, both counted as one (the frame's ``n_in`` bytes before
    it are not), with ``spikes.ready`` always high and the core's synapses loaded.

    ``inputs`` is layer 0's input spikes (uint8 [S, T, n_in], the encoded frames) and ``cycles`` the
    cycle model of the same samples (:func:`cycle_model`, int64 [S, T]).

    The encoder scans slot ``p = t * (n_in + 1) + j`` (input ``j`` of step ``t``, ``j = n_in`` the eot)
    in its stage X one slot a cycle; a slot without a token moves on at once, a token's slot waits there
    while the ``events`` register still holds the previous token. So token ``k`` (the spiking inputs and
    eots of all steps in order) leaves X at ``x_k = max(x_{k-1} + p_k - p_{k-1}, take_{k-1})``
    (``x_0 = ENCODER_SCAN_START + p_0``) and is valid at ``x_k + 1``. The core takes it at
    ``take_k = max(x_k + 1, a_t, issue_{k-2} + 1)``: not before its step's start ``a_t`` (the eot of
    the previous step closes ``events`` until the core's DONE) nor while its two-entry input queue is
    full; layer 0 issues it at ``issue_k = max(take_k + 1, issue_{k-1} + G_0)``. The step's eot issues
    the fire pass; the step's remaining ``cycles[s, t] - (E_0 * G_0 + 1)`` counted cycles then end in
    DONE at ``d_t``, the next step starts at ``a_{t+1} = d_t + 1`` and ``done`` is high at ``d_{T-1} + 1``.
    The first step starts at ``a_0 = max G_l + CLEAR_OVERHEAD`` (the clear). The core thus waits for the
    encoder when a step's scan (``n_in + 1`` cycles, less the slots it ran ahead while the core finished
    the previous step) outlasts layer 0's events (``E_0 * G_0``): a small first layer and many inputs.
    """
    check_lanes(lanes)
    inputs = np.asarray(inputs)
    cycles = np.asarray(cycles)
    n, steps = model.n_in, model.timesteps
    if inputs.ndim != 3 or inputs.shape[1:] != (steps, n) or cycles.shape != inputs.shape[:2]:
        raise ValueError(f"inputs must be [S, {steps}, {n}] and cycles [S, {steps}], not "
                         f"{list(inputs.shape)} and {list(cycles.shape)}")
    g0 = groups(model.layers[0].n_out, lanes)
    start = max(groups(layer.n_out, lanes) for layer in model.layers) + CLEAR_OVERHEAD
    out = np.zeros(inputs.shape[0], np.int64)
    for s in range(inputs.shape[0]):
        # x: when the last token left stage X, p its slot, take: when the core took it.
        x, p, take, a = ENCODER_SCAN_START - 1, -1, 0, start
        for t in range(steps):
            slots = [*np.flatnonzero(inputs[s, t]).tolist(), n]
            issue: list[int] = []
            for k, j in enumerate(slots):
                slot = t * (n + 1) + j
                x = max(x + slot - p, take)
                p = slot
                take = max(x + 1, a, issue[k - 2] + 1 if k >= 2 else 0)
                issue.append(max(take + 1, issue[k - 1] + g0 if k else 0))
            a = issue[-1] + int(cycles[s, t]) - ((len(slots) - 1) * g0 + 1) + 1
        out[s] = a
    return out
