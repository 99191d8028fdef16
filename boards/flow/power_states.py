"""Power states of a duty-cycled build: running, clock stopped, and idle with an always-on part (clocked
by the LFOSC or by an SPI host's SCK), and the average power against an inference rate (the wake-up
report's figures, docs/power.md "Power states"). Every state's power is
:func:`qlif.boards.flow.power.estimate_power` of the parts that run in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qlif.boards.flow.activity import Activity
from qlif.boards.flow.power import (
    FamilyModel,
    PowerEstimate,
    Resources,
    check_positive,
    estimate_power,
    family_of,
    static_power,
)

__all__ = ["CLOCK_SOURCES", "AlwaysOn", "DutyCycle", "PowerStates", "power_states"]


#: Clock sources of :class:`DutyCycle`: the HFOSC, the PLL fed by the HFOSC, a board oscillator.
CLOCK_SOURCES = ("hfosc", "pll", "external")


@dataclass(frozen=True)
class AlwaysOn:
    """The part of a build that stays clocked while the core's clock is stopped.

    Parameters
    ----------
    resources : Resources
        What it uses (its LCs are also inside the build's :class:`Resources`: the static terms count
        them once, there).
    activity : Activity
        Its switching activity while clocked.
    clock : str
        ``"lfosc"``: clocked by the 10 kHz LFOSC all the time; ``"spi"``: by an SPI host's SCK, only
        while a frame goes in or a result comes out (no clock, and no oscillator, in between).
    clk_hz : float
        Its clock while clocked (Hz): the LFOSC's 10 kHz, or the SPI host's SCK.
    cycles_per_inference : float
        SPI: SCK cycles per inference (the frame in and the result out, command bytes included).
        LFOSC: 0 (its cycles are paid by the idle power).
    """

    resources: Resources
    activity: Activity
    clock: str
    clk_hz: float
    cycles_per_inference: float = 0.0

    def __post_init__(self):
        if self.clock not in ("lfosc", "spi"):
            raise ValueError(f"clock must be 'lfosc' or 'spi', not {self.clock!r}")
        check_positive("clk_hz", self.clk_hz)
        check_positive("cycles_per_inference", self.cycles_per_inference, zero=True)


@dataclass(frozen=True)
class DutyCycle:
    """A build that wakes for each inference and stops its core clock in between.

    Parameters
    ----------
    device : str
        As build reports name it (``iCE40UP5K-SG48``).
    resources : Resources
        The whole build.
    activity : Activity
        The core's activity while an inference runs.
    clk_hz : float
        The core's clock while running (Hz).
    cycles_per_inference : float
        Core clock cycles from the frame's end to the result.
    clock_source : str
        ``"hfosc"`` (the SB_HFOSC, enabled for each inference), ``"pll"`` (the PLL fed by the HFOSC,
        both on only for each inference) or ``"external"`` (a board oscillator, gated: no start-up).
    always_on : AlwaysOn or None
        The part clocked while idle, if any.
    startup_s : float or None
        Seconds the clock takes to start, counted as running time (the design draws running power
        while it waits): default the family's ``hfosc_startup`` for ``hfosc`` and ``pll`` (a PLL's
        lock time comes on top: pass it here when you know it), 0 for ``external``.
    io_toggles_per_inference : float
        Output pin transitions per inference (the wake pin, SPI's CIPO).
    spram_memories, spram_rate
        As :func:`estimate_power`'s: the memories in SPRAM, and its accesses per block and cycle.
    """

    device: str
    resources: Resources
    activity: Activity
    clk_hz: float
    cycles_per_inference: float
    clock_source: str = "hfosc"
    always_on: AlwaysOn | None = None
    startup_s: float | None = None
    io_toggles_per_inference: float = 0.0
    spram_memories: tuple = ()
    spram_rate: float | None = None

    def __post_init__(self):
        if self.clock_source not in CLOCK_SOURCES:
            raise ValueError(f"clock_source must be one of {', '.join(CLOCK_SOURCES)}, not {self.clock_source!r}")
        check_positive("clk_hz", self.clk_hz)
        check_positive("cycles_per_inference", self.cycles_per_inference, zero=True)
        check_positive("io_toggles_per_inference", self.io_toggles_per_inference, zero=True)
        if self.startup_s is not None:
            check_positive("startup_s", self.startup_s, zero=True)


@dataclass(frozen=True)
class PowerStates:
    """The power of a :class:`DutyCycle` build in each state (W), and per inference (J, s).

    ``running_w``: the whole chip while an inference runs (always-on part included). ``stopped_w``: the
    core's clock and its oscillator off, nothing clocked (static power and the configured design's
    leakage). ``idle_w``: stopped, plus the always-on part between inferences. ``active_s``: start-up
    plus ``cycles / clk_hz``. ``energy_per_inference_j``: the energy above ``idle_w`` that one inference
    costs, ``(running_w - idle_w) * active_s`` plus the always-on part's SPI cycles.
    """

    running_w: float
    stopped_w: float
    idle_w: float
    active_s: float
    energy_per_inference_j: float
    core: PowerEstimate

    @property
    def max_rate_hz(self) -> float:
        """Inferences per second with no idle time left (1 / ``active_s``)."""
        return math.inf if self.active_s == 0 else 1.0 / self.active_s

    def average_w(self, rate_hz: float) -> float:
        """Average power (W) at ``rate_hz`` inferences per second: ``idle_w + rate_hz * energy_per_inference_j``.

        Raises ``ValueError`` for a rate beyond :attr:`max_rate_hz` (the build cannot keep up).
        """
        check_positive("rate_hz", rate_hz, zero=True)
        if rate_hz > self.max_rate_hz:
            raise ValueError(f"rate_hz {rate_hz:g} exceeds what the build can run ({self.max_rate_hz:g} per s)")
        return self.idle_w + rate_hz * self.energy_per_inference_j

    def to_json(self) -> dict:
        return {"running_w": self.running_w, "stopped_w": self.stopped_w, "idle_w": self.idle_w,
                "active_s": self.active_s, "energy_per_inference_j": self.energy_per_inference_j,
                "max_rate_hz": self.max_rate_hz, "core": self.core.to_json()}


def power_states(duty: DutyCycle, *, model: FamilyModel | None = None) -> PowerStates:
    """The power of ``duty``'s build running, stopped and idle, and its energy per inference.

    Units: W, J, s. The running state is :func:`estimate_power` at ``clk_hz`` (with the HFOSC's own
    power for ``hfosc`` and ``pll``, the PLL's for ``pll``, the output toggles at the inference's
    rate of them); the stopped state :func:`static_power`; idle adds the LFOSC and the always-on part
    at its clock (an SPI always-on part draws nothing between transfers: its cycles are charged per
    inference, at the energy per cycle of its dynamic power).
    """
    if not isinstance(duty, DutyCycle):
        raise TypeError(f"duty must be a DutyCycle, not {duty!r}")
    fam = model or family_of(duty.device)
    startup = duty.startup_s
    if startup is None:
        startup = fam.value("hfosc_startup") if duty.clock_source != "external" else 0.0
    run_s = duty.cycles_per_inference / duty.clk_hz
    core = estimate_power(device=duty.device, resources=duty.resources, activity=duty.activity,
                          clk_hz=duty.clk_hz, pll=duty.clock_source == "pll",
                          oscillator=None if duty.clock_source == "external" else "hfosc",
                          io_toggles_per_s=duty.io_toggles_per_inference / run_s if run_s else 0.0,
                          spram_memories=duty.spram_memories, spram_rate=duty.spram_rate, model=fam)
    stopped = sum(static_power(device=duty.device, resources=duty.resources, model=fam))
    ao_idle_w = ao_energy = 0.0
    if duty.always_on is not None:
        ao = duty.always_on
        est = estimate_power(device=duty.device, resources=ao.resources, activity=ao.activity, clk_hz=ao.clk_hz,
                             oscillator="lfosc" if ao.clock == "lfosc" else None, model=fam)
        clocked = est.total_w - est.static_w          # its clock's, flip-flops' and logic's, and the LFOSC's
        if ao.clock == "lfosc":
            ao_idle_w = clocked
        else:
            ao_energy = clocked / ao.clk_hz * ao.cycles_per_inference
    idle = stopped + ao_idle_w
    running = core.total_w + ao_idle_w
    active = startup + run_s
    return PowerStates(running_w=running, stopped_w=stopped, idle_w=idle, active_s=active,
                       energy_per_inference_j=(running - idle) * active + ao_energy, core=core)
