"""Shared pieces of the ``qlif`` command line: the user-error type, atomic writers, argument types.

Every subcommand lives with the package it drives (``qlif.commands.golden``, ``qlif.commands.hw``,
``qlif.commands.sim``, ``qlif.commands.boards``) and registers itself on the parser of
:mod:`qlif.cli`; these helpers keep their behaviour the same: a user error is a :class:`CLIError` (one
line, exit status 2). Output files are written with the atomic writers of :mod:`qlif.golden.spec.files`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

__all__ = ["CLIError", "AddCommand", "load_inputs", "load_stimuli", "stimuli_args", "load_model_arg", "lanes_arg",
           "mhz_arg", "positive_arg"]


class CLIError(Exception):
    """A user error: printed as one line ``qlif: error: ...``, exit status 2."""


#: ``add(name, func, help) -> parser``: how a package registers one subcommand (see :mod:`qlif.cli`).
AddCommand = Callable[[str, Callable, str], argparse.ArgumentParser]


def load_inputs(path: str | os.PathLike):
    """Read a stimuli ``.npy``; shape and values are checked against the model by the caller."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise CLIError(f"{path}: no such file") from None
    except (ValueError, OSError) as e:
        raise CLIError(f"{path}: not a readable .npy array ({e})") from None


def stimuli_args(sp: argparse.ArgumentParser) -> None:
    """``--inputs`` (spike trains) or ``--frames`` (one intensity per input, encoded as on chip): one of them."""
    group = sp.add_mutually_exclusive_group(required=True)
    group.add_argument("--inputs", help="stimuli .npy, uint8 [samples, T, n_in] of 0/1")
    group.add_argument("--frames", help="frames .npy, uint8 [samples, n_in] of 0..L (the model's frame levels), "
                                        "rate-coded as the on-chip encoder does (docs/semantics.md)")


def load_stimuli(model, args):
    """The frames of ``args.frames`` (or None) and the stimuli (uint8 [S, T, n_in]) of ``args.inputs`` or
    those the on-chip encoder makes of the frames; a bad file is a one-line error naming what is wrong."""
    from qlif.golden.spec.reference import check_inputs, frame_inputs

    if args.frames is not None:
        frames = load_inputs(args.frames)
        return frames, frame_inputs(model, frames)
    return None, check_inputs(model, load_inputs(args.inputs))


def load_model_arg(path):
    """Load a model file named on the command line (a ``ModelError`` names the field and why)."""
    from qlif.golden.spec.model import load_model

    return load_model(path)


def lanes_arg(value: str) -> int:
    """argparse type: lanes P, one of :data:`qlif.golden.spec.cycles.LANES` (checked by
    :func:`~qlif.golden.spec.cycles.check_lanes`)."""
    from qlif.golden.spec.cycles import check_lanes

    try:
        lanes = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"lanes must be an integer, not {value!r}") from None
    try:
        return check_lanes(lanes)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def mhz_arg(value: str) -> float:
    """argparse type: a clock frequency in MHz, a positive finite number."""
    try:
        mhz = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a frequency in MHz, not {value!r}") from None
    if not 0 < mhz < 1000:
        raise argparse.ArgumentTypeError(f"must be a frequency in MHz in (0, 1000), not {value}")
    return mhz


def _int_at_least(value: str, lowest: int, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, not {value!r}") from None
    if n < lowest:
        raise argparse.ArgumentTypeError(f"must be {what}, not {n}")
    return n


def positive_arg(value: str) -> int:
    """argparse type: a positive integer."""
    return _int_at_least(value, 1, "a positive integer")


def count_arg(value: str) -> int:
    """argparse type: a whole number, 0 or more."""
    return _int_at_least(value, 0, "a whole number, 0 or more")
