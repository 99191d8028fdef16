"""The one switch for waveforms: ``QLIF_WAVES=1`` (docs/verification.md, "Waveforms").

Every simulation reads it here: the cocotb runs (FST from Icarus, VCD from Verilator, in the run folder),
the Amaranth harness (a VCD per run under ``build/sim/amaranth``), and the activity measurement, which
switches it on for its own runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["WAVES_ENV", "waves_requested", "waves_on"]

#: The environment variable: set and not ``0`` means waveforms are written.
WAVES_ENV = "QLIF_WAVES"


def waves_requested() -> bool:
    """Waveforms were asked for (:data:`WAVES_ENV` set, and not ``0``)."""
    return os.environ.get(WAVES_ENV, "") not in ("", "0")


@contextlib.contextmanager
def waves_on() -> Iterator[None]:
    """Waveforms on for the simulations run inside the block; the variable is restored after it."""
    saved = os.environ.get(WAVES_ENV)
    os.environ[WAVES_ENV] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(WAVES_ENV, None)
        else:
            os.environ[WAVES_ENV] = saved
