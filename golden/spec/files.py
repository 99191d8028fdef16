"""Where qlif writes, and how: the project's build tree and atomic file writers.

Every output file (models, stimuli, reports, sweep tables) is written atomically: to a temporary file
beside it, then renamed into place, so a failed or interrupted command leaves no partial output behind.
:data:`BUILD_ROOT` is the one tree that the YoWASP tools can see (they map the system temp folder
privately), so synthesis and simulation work folders live below it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["ROOT", "BUILD_ROOT", "write_atomic", "write_text", "write_npz", "write_npy"]

#: The project's source tree (the folder holding golden/, hw/, sim/, boards/).
ROOT = Path(__file__).resolve().parents[2]
#: Build products and work folders: bitstreams, simulator builds, sweep records, the YoWASP cache.
BUILD_ROOT = ROOT / "build"


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` atomically: ``write(f)`` fills ``.<name>.part`` beside it, which is then renamed into
    place (the folder is made if need be). Any file format with a writer that takes a binary file:
    ``write_atomic(p, lambda f: torch.save(obj, f))``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def write_npz(path: str | os.PathLike, arrays: dict) -> None:
    """Write an ``.npz`` atomically."""
    write_atomic(path, lambda f: np.savez(f, **arrays))


def write_npy(path: str | os.PathLike, array) -> None:
    """Write an ``.npy`` atomically."""
    write_atomic(path, lambda f: np.save(f, array))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file (UTF-8) atomically."""
    write_atomic(path, lambda f: f.write(text.encode()))
