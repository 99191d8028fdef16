"""Where qlif writes, and how: the project's build tree and atomic file writers.

Every output file (models, stimuli, reports, sweep tables) is written atomically: to a temporary file
beside it, then renamed into place, so a failed or interrupted command leaves no partial output behind.
:data:`BUILD_ROOT` is the one tree that the YoWASP tools can see (they map the system temp folder
privately), so synthesis and simulation work folders live below it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["ROOT", "BUILD_ROOT", "write_text", "write_npz", "write_npy"]

#: The project's source tree (the folder holding golden/, hw/, sim/, boards/).
ROOT = Path(__file__).resolve().parents[2]
#: Build products and work folders: bitstreams, simulator builds, sweep records, the YoWASP cache.
BUILD_ROOT = ROOT / "build"


def _atomic_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.part")


def write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """Write an ``.npz`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    tmp = _atomic_path(path)
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def write_npy(path: str | os.PathLike, array) -> None:
    """Write an ``.npy`` atomically."""
    path = Path(path)
    tmp = _atomic_path(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    path = Path(path)
    tmp = _atomic_path(path)
    tmp.write_text(text)
    os.replace(tmp, path)
