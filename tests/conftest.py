"""Session set-up for every test process (pytest-xdist workers included): the RTL mutant of ``QLIF_MUTANT``.

scripts/mutation.py (``make mutation``) runs the RTL tests once per mutant of :mod:`qlif.sim.mutants`
with ``QLIF_MUTANT`` set. The mutant is installed in ``pytest_configure``, before any test module is
collected, so no Verilog is generated and no Amaranth simulation built without it. Without the variable
this file does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

import pytest

_UNDO = pytest.StashKey[Callable[[], None]]()
#: Seconds one test may run with a mutant installed (``QLIF_MUTANT_TIMEOUT``; the slowest RTL test takes
#: under 40 s on the clean RTL, builds included). A mutant can hang a design (a queue that never drains
#: never ends the step), and the Amaranth harness has no watchdog: the test fails instead, by name.
HANG_SECONDS = float(os.environ.get("QLIF_MUTANT_TIMEOUT", "300"))


def pytest_configure(config: pytest.Config) -> None:
    name = os.environ.get("QLIF_MUTANT")
    if not name:
        return
    from qlif.golden.spec.files import BUILD_ROOT
    from qlif.sim import runner
    from qlif.sim.mutants import apply

    config.stash[_UNDO] = apply(name)
    # The simulator builds of mutants (a Verilator build is up to ~150 MB, a new one per design and
    # mutant) go to a folder of their own, which scripts/mutation.py empties after each mutant; the
    # clean builds in build/sim stay as they are. (The build key, a hash of the Verilog text, already
    # keeps a mutant from reusing a clean build.)
    runner.DEFAULT_BUILD_DIR = BUILD_ROOT / "mutation" / "sim"


def pytest_unconfigure(config: pytest.Config) -> None:
    undo = config.stash.get(_UNDO, None)
    if undo is not None:
        undo()


def pytest_report_header(config: pytest.Config) -> str | None:
    name = os.environ.get("QLIF_MUTANT")
    return f"qlif RTL mutant: {name} (sim/mutants.py)" if name else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """With a mutant installed, a test that runs over :data:`HANG_SECONDS` fails (SIGALRM; a simulator
    subprocess is killed by ``subprocess.run`` as the exception passes)."""
    name = os.environ.get("QLIF_MUTANT")
    if not name or threading.current_thread() is not threading.main_thread():
        return (yield)

    def expire(signum, frame):
        raise TimeoutError(f"{item.nodeid} ran over {HANG_SECONDS:.0f} s with mutant {name}: the RTL hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
