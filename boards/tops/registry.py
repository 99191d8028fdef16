"""The buildable boards: name -> platform, top and a line for people.

``qlif build --board NAME``, the sweeps and the benchmarks take their board names from :data:`BOARDS`;
:func:`family` tells an iCE40 platform from an ECP5 one (the flow picks its tools and report keys by it).
"""

from __future__ import annotations

from typing import NamedTuple

from amaranth.build import Platform
from amaranth.vendor import LatticeECP5Platform, LatticeICE40Platform

from qlif.boards.tops import ecpix5, ulx3s
from qlif.boards.tops.icebreaker import ICEBreakerPlatform, ICEBreakerTop
from qlif.boards.tops.icesugar import ICESugarPlatform, ICESugarTop
from qlif.boards.tops.top import BoardTop
from qlif.boards.tops.wakeup import ICEBreakerWakeupTop, WakeupPlatform

__all__ = ["BoardSpec", "BOARDS", "WAKEUP_BOARDS", "family"]


class BoardSpec(NamedTuple):
    """A buildable board: the ``amaranth-boards`` platform class, the top, and a line for people."""

    platform: type[Platform]
    top: type[BoardTop] | type[ICEBreakerWakeupTop]
    description: str


#: Board name -> :class:`BoardSpec` (``BOARDS[name][0]`` is the platform class, ``[1]`` the top).
BOARDS: dict[str, BoardSpec] = {
    "icebreaker": BoardSpec(ICEBreakerPlatform, ICEBreakerTop, "1BitSquared iCEBreaker, iCE40UP5K-SG48"),
    "icesugar": BoardSpec(ICESugarPlatform, ICESugarTop, "MuseLab iCESugar 1.5, iCE40UP5K-SG48"),
    **{f"ulx3s-{size}": BoardSpec(platform, ulx3s.ULX3STop, f"Radiona ULX3S, {platform.device}-{platform.package}")
       for size, platform in ulx3s.PLATFORMS.items()},
    **{f"ecpix5-{size}": BoardSpec(platform, ecpix5.ECPIX5Top,
                                   f"LambdaConcept ECPIX-5, {platform.device}-{platform.package}")
       for size, platform in ecpix5.PLATFORMS.items()},
}

#: The boards of the wake-up build (``qlif build --wakeup``: SPI frames, the core on a gated SB_HFOSC;
#: :mod:`qlif.boards.tops.wakeup`), by the same names.
WAKEUP_BOARDS: dict[str, BoardSpec] = {
    "icebreaker": BoardSpec(WakeupPlatform, ICEBreakerWakeupTop,
                            "1BitSquared iCEBreaker, iCE40UP5K-SG48: wake-up build (SPI on PMOD1B)"),
}


def family(platform: Platform | type[Platform]) -> str:
    """``"ice40"`` or ``"ecp5"``: the FPGA family of a platform (instance or class)."""
    cls = platform if isinstance(platform, type) else type(platform)
    if issubclass(cls, LatticeICE40Platform):
        return "ice40"
    if issubclass(cls, LatticeECP5Platform):
        return "ecp5"
    raise ValueError(f"platform must be an iCE40 or ECP5 platform, not {cls.__name__}")
