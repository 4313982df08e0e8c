"""Memory a run will need, estimated before it starts, and refused when it cannot fit.

A run holds its snapshots in memory (``snapshots × samples × species × cells``) plus a few
working copies of the state, so a grid or a sweep too big for the machine is refused up
front, naming the estimate and the limit, instead of swapping for an hour or dying in the
middle. The limit is :data:`MEMORY_FRACTION` of the memory available now (``psutil``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

from rdlab.errors import ParameterError

#: Share of the currently available memory (``psutil.virtual_memory().available``) a run
#: may plan to use.
MEMORY_FRACTION = 0.8
#: Seconds one reading of the available memory is reused: a design optimisation asks
#: before every roll-out, a few hundred times a second, and a reading costs about 0.1 ms.
MEMORY_READING_SECONDS = 1.0
#: The last reading: (time.monotonic() when read, bytes available).
_last_reading: tuple[float, int] = (float("-inf"), 0)
#: Working copies of the state besides the snapshots: the float64 initial state, the
#: engine's two states (current and next) and one more for pictures and checks.
WORKING_STATES = 4


@dataclass(frozen=True)
class RunSize:
    """The sizes that set a run's memory.

    Parameters
    ----------
    samples : int
        Number of samples.
    species : int
        Number of species.
    cells : int
        Number of grid cells (1 when well-mixed).
    snapshots : int
        Number of snapshots kept.
    itemsize : int
        Bytes per value of the run's dtype.
    reactions : int, default 0
        Number of directed reactions.
    per_reaction : bool, default False
        The engine holds one rate field per reaction (numpy, torch).
    """

    samples: int
    species: int
    cells: int
    snapshots: int
    itemsize: int
    reactions: int = 0
    per_reaction: bool = False  # engines that hold one rate field per reaction (numpy, torch)

    @property
    def state_bytes(self) -> int:
        """Bytes of one state of the whole batch."""
        return self.samples * self.species * self.cells * self.itemsize

    @property
    def bytes(self) -> int:
        """Estimated bytes of the run: snapshots, working copies, initial state, rate fields."""
        total = self.state_bytes * (self.snapshots + WORKING_STATES)
        total += self.samples * self.species * self.cells * 8  # float64 initial state
        if self.per_reaction:
            total += self.samples * self.reactions * self.cells * self.itemsize
        return total

    def describe(self) -> str:
        """Return the product behind the estimate, in words, for messages."""
        return (f"{self.samples:,} sample(s) × {self.species} species × {self.cells:,} "
                f"cells × ({self.snapshots:,} snapshots + {WORKING_STATES} working copies) × "
                f"{self.itemsize} bytes")


def human_bytes(n: float) -> str:
    """Return a number of bytes in words (``"1.5 GiB"``).

    Parameters
    ----------
    n : float
        Bytes.

    Returns
    -------
    str
        Whole bytes below 1 KiB, otherwise one decimal in KiB … PiB.
    """
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"  # pragma: no cover


def memory_limit() -> int:
    """Return the bytes a run may plan to use: :data:`MEMORY_FRACTION` of the available memory.

    The available memory is read at most once every :data:`MEMORY_READING_SECONDS`.
    """
    global _last_reading
    now = time.monotonic()
    if now - _last_reading[0] > MEMORY_READING_SECONDS:
        _last_reading = (now, psutil.virtual_memory().available)
    return int(_last_reading[1] * MEMORY_FRACTION)


def check_memory(size: RunSize, limit: int | None = None) -> int:
    """Refuse a run whose memory estimate exceeds the limit.

    Parameters
    ----------
    size : RunSize
        The run's sizes.
    limit : int, optional
        Bytes allowed (default :func:`memory_limit`).

    Returns
    -------
    int
        The estimate, in bytes.

    Raises
    ------
    ParameterError
        When ``size`` needs more than ``limit`` bytes, naming both.
    """
    need = size.bytes
    limit = memory_limit() if limit is None else limit
    if need > limit:
        raise ParameterError(
            f"this run needs about {human_bytes(need)} of memory ({size.describe()}), more "
            f"than the limit of {human_bytes(limit)} ({MEMORY_FRACTION:.0%} of the memory "
            "available now); use a smaller grid, fewer samples or snapshots, or float32")
    return need
