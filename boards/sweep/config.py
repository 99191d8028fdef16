"""What a hardware sweep covers: :class:`SweepConfig`, its defaults, and the facts of the swept boards."""

from __future__ import annotations

from dataclasses import dataclass, field

from qlif.boards.flow.power import family_of
from qlif.boards.tops.registry import BOARDS
from qlif.golden.data.datasets import DATASET_INPUTS
from qlif.golden.spec.cycles import LANES
from qlif.golden.spec.model import MEMBRANE_BITS, WEIGHT_BITS

__all__ = ["GRID_WEIGHT_BITS", "GRID_MEMBRANE_BITS", "DEFAULT_TARGET_MHZ", "SweepConfig", "default_boards", "device_of",
           "oscillator_hz"]

#: The sweep's default grid: every legal weight width, and four membrane widths spanning the useful ones.
GRID_WEIGHT_BITS = WEIGHT_BITS
GRID_MEMBRANE_BITS = (4, 8, 12, 16)
#: Clock constraint of the builds, by device family: above what the design reaches, so that nextpnr
#: works for the highest Fmax (its Fmax depends on the constraint, see docs/boards.md).
DEFAULT_TARGET_MHZ = {"ice40up": 60.0, "ecp5": 125.0}


@dataclass(frozen=True)
class SweepConfig:
    """What to sweep: every board x weight bits x membrane bits x lanes, each built with every seed.

    Parameters
    ----------
    boards : tuple of str
        Names in :data:`qlif.boards.tops.registry.BOARDS`.
    weight_bits, membrane_bits, lanes : tuple of int
        The widths b, k and the lanes P swept.
    seeds : tuple of int
        nextpnr seeds per build; Fmax is their median.
    sizes : tuple of int
        Layer sizes of the random network, inputs first.
    timesteps, samples : int
        T, and the test samples simulated for the switching activity.
    model_seed : int
        Seed of :func:`qlif.golden.spec.random_model.random_model`.
    dataset, data_dir : str, str or None
        The workload: ``digits`` or ``mnist`` (from ``data_dir``).
    target_mhz : dict
        Board -> clock constraint in MHz; a board not named gets its family's :data:`DEFAULT_TARGET_MHZ`.
    """

    boards: tuple[str, ...] = ()
    weight_bits: tuple[int, ...] = GRID_WEIGHT_BITS
    membrane_bits: tuple[int, ...] = GRID_MEMBRANE_BITS
    lanes: tuple[int, ...] = (4,)
    seeds: tuple[int, ...] = (1, 2, 3)
    sizes: tuple[int, ...] = (64, 128, 10)
    timesteps: int = 16
    samples: int = 8
    model_seed: int = 0
    dataset: str = "digits"
    data_dir: str | None = None
    target_mhz: dict = field(default_factory=dict)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        def ints(name, values, allowed):
            if not values:
                raise ValueError(f"{name}: give at least one value")
            for v in values:
                if v not in allowed:
                    raise ValueError(f"{name}: {v!r} is not one of {', '.join(map(str, allowed))}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: {list(values)} repeats a value")

        if not self.boards:
            raise ValueError("boards: give at least one board")
        for board in self.boards:
            if board not in BOARDS:
                raise ValueError(f"boards: {board!r} is not one of {', '.join(sorted(BOARDS))}")
        ints("weight bits", self.weight_bits, WEIGHT_BITS)
        ints("membrane bits", self.membrane_bits, list(MEMBRANE_BITS))
        ints("lanes", self.lanes, LANES)
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds) \
                or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: must be distinct non-negative integers, not {list(self.seeds)}")
        if len(self.sizes) < 2 or any(n < 1 for n in self.sizes):
            raise ValueError(f"sizes: need the inputs and at least one layer, all positive, not {list(self.sizes)}")
        if self.timesteps < 1 or self.samples < 1:
            raise ValueError("timesteps and samples must be positive")
        for board, mhz in self.target_mhz.items():
            if board not in self.boards:
                raise ValueError(f"clock target for {board!r}, which is not swept")
            if not mhz > 0:
                raise ValueError(f"clock target for {board!r} must be positive, not {mhz!r}")
        n_in = DATASET_INPUTS.get(self.dataset)
        if n_in is None:
            raise ValueError(f"dataset must be one of {', '.join(DATASET_INPUTS)}, not {self.dataset!r}")
        if self.sizes[0] != n_in:
            raise ValueError(f"sizes: the {self.dataset} workload has {n_in} inputs, so sizes must start "
                             f"with {n_in}, not {self.sizes[0]}")

    def target(self, board: str) -> float:
        """Clock constraint (MHz) of ``board``'s builds."""
        if board in self.target_mhz:
            return float(self.target_mhz[board])
        return DEFAULT_TARGET_MHZ[family_of(device_of(board)).family]

    def workload(self) -> dict:
        """The fields the tasks need, as plain data (what a worker gets, and what a record is stamped with)."""
        return {"sizes": list(self.sizes), "timesteps": self.timesteps, "samples": self.samples,
                "model_seed": self.model_seed, "dataset": self.dataset, "data_dir": self.data_dir}


def device_of(board: str) -> str:
    """The FPGA part of ``board`` (``iCE40UP5K-SG48``)."""
    return str(BOARDS[board].platform.device)


def oscillator_hz(board: str) -> float:
    """The frequency of ``board``'s oscillator, the clock without a PLL."""
    return float(BOARDS[board].platform().default_clk_frequency)


def default_boards() -> tuple[str, ...]:
    """The iCE40 UP5K board and every ECP5-85F board of :data:`qlif.boards.tops.registry.BOARDS`, as they exist."""
    up5k = [b for b in BOARDS if device_of(b).upper().startswith("ICE40UP5K")]
    ecp5 = [b for b in BOARDS if device_of(b).upper().startswith(("LFE5U-85", "LFE5UM-85", "LFE5UM5G-85"))]
    return tuple(up5k[:1] + ecp5[:1])
