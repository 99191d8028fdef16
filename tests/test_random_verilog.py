"""Constrained-random designs on the generated Verilog, under Icarus and Verilator.

Default suite: 10 designs per simulator, different seeds in each (``SEED_BASE``). ``-m slow``: 50 under
Icarus and 200 under Verilator. Any design reruns alone with ``qlif random-design SEED --simulator SIM``.
"""

from __future__ import annotations

import pytest

from qlif.sim.campaign import SEED_BASE, check_design

DEFAULT = {"icarus": 10, "verilator": 10}
SLOW = {"icarus": 50, "verilator": 200}


def _seeds(counts: dict[str, int]) -> list[tuple[str, int]]:
    return [(sim, SEED_BASE[sim] + i) for sim, n in counts.items() for i in range(n)]


@pytest.mark.parametrize(("simulator", "seed"), _seeds(DEFAULT))
def test_verilog(simulator, seed):
    check_design(seed, simulator)


@pytest.mark.slow
@pytest.mark.parametrize(("simulator", "seed"), _seeds(SLOW))
def test_verilog_slow(simulator, seed):
    check_design(seed, simulator)
