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
"""

from __future__ import annotations

import numpy as np

__all__ = ["LANES", "check_lanes", "LAYER_OVERHEAD", "STEP_OVERHEAD", "groups", "cycle_model"]

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
