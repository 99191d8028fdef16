"""The cycle model: how many clock cycles the RTL spends on each timestep (docs/architecture.md).

The RTL is event-driven and sequential over layers, so its cycle count is a closed formula of the
number of input events of every layer at that step. The cocotb scoreboard compares this figure with
the cycles the RTL counts, every timestep; they must be equal.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LANES", "groups", "cycle_model"]

#: Supported lane counts P (synapses per cycle). Powers of two, so a neuron address is {group, lane}.
LANES = (1, 2, 4, 8, 16)

#: Fixed cycles per layer per step (phase changes and the read pipeline); set by the RTL, see
#: docs/architecture.md.
LAYER_OVERHEAD = 2
#: Fixed cycles per step (accepting the end-of-step token and signalling completion).
STEP_OVERHEAD = 1


def groups(n_neurons: int, lanes: int) -> int:
    """Number of P-wide neuron groups G = ceil(n / P): the cycles one event or one fire pass takes."""
    return -(-n_neurons // lanes)


def cycle_model(model, *, lanes: int, layer_inputs: list[np.ndarray],
                layer_spikes: list[np.ndarray]) -> np.ndarray:
    """Cycles per sample and step (int64 [S, T]).

    ``layer_inputs[l]`` is layer ``l``'s input spikes (uint8 [S, T, n_in_l]) and ``layer_spikes[l]`` its
    output spikes (uint8 [S, T, n_out_l]).
    """
    if lanes not in LANES:
        raise ValueError(f"lanes must be one of {LANES}, not {lanes!r}")
    total = np.full(layer_inputs[0].shape[:2], STEP_OVERHEAD, dtype=np.int64)
    for layer, x in zip(model.layers, layer_inputs, strict=True):
        g = groups(layer.n_out, lanes)
        events = x.sum(axis=2, dtype=np.int64)
        total += (events + 1) * g + LAYER_OVERHEAD
    return total
