"""Initial states on a grid: uniform, uniform plus perturbation squares, random.

All return float64 arrays of shape ``(batch, species, y, x)`` for a
:class:`~rdlab.system.System`.
Randomness comes from a ``numpy.random.Generator``: same seed, same state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rdlab.errors import ParameterError
from rdlab.smoothing import smooth_periodic
from rdlab.system import System


def species_vector(system: System, values: Mapping[str, float] | Sequence[float] | float,
                   what: str) -> np.ndarray:
    """Return per-species values from a mapping, a sequence or a scalar.

    Parameters
    ----------
    system : System
        The system (its species).
    values : Mapping of str to float, sequence of float or float
        A mapping species → value (missing species 0), one value per species, or one for
        all.
    what : str
        What the values are, for messages.

    Returns
    -------
    numpy.ndarray
        Shape ``(species,)``.

    Raises
    ------
    ParameterError
        For an unknown species, a wrong count, or a value negative or not finite.
    """
    n = system.n_species
    if isinstance(values, Mapping):
        out = np.zeros(n)
        for name, v in values.items():
            if name not in system.network.species:
                raise ParameterError(f"{what}: unknown species {name!r}; species are "
                                     f"{list(system.network.species)}")
            out[system.network.species.index(name)] = v
    else:
        out = np.broadcast_to(np.asarray(values, dtype=float), (n,)).copy() \
            if np.ndim(values) == 0 else np.asarray(values, dtype=float)
        if out.shape != (n,):
            raise ParameterError(f"{what} has {out.size} values for {n} species")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
        raise ParameterError(f"{what} must be finite and ≥ 0, got {out.tolist()}")
    return out


def _grid_shape(system: System) -> tuple[int, int]:
    """Return the grid shape, refusing a well-mixed system."""
    if system.grid is None:
        raise ParameterError("this initial condition needs a grid; the system is well-mixed")
    return system.grid.shape


def uniform(system: System, values: Mapping[str, float] | Sequence[float] | float | None = None
            ) -> np.ndarray:
    """Return the same concentrations everywhere.

    Parameters
    ----------
    system : System
        The system, with a grid.
    values : Mapping of str to float, sequence of float or float, optional
        The concentrations (see :func:`species_vector`); default: each sample's feed.

    Returns
    -------
    numpy.ndarray
        ``(batch, species, y, x)``, float64.

    Raises
    ------
    ParameterError
        If the system is well-mixed or the values are invalid.
    """
    ny, nx = _grid_shape(system)
    if values is None:
        base = system.feed
    else:
        base = np.broadcast_to(species_vector(system, values, "uniform state"),
                               (system.batch_size, system.n_species))
    return np.ascontiguousarray(
        np.broadcast_to(base[:, :, None, None], (*base.shape, ny, nx)), dtype=float
    )


def with_squares(
    system: System,
    rng: np.random.Generator,
    base: Mapping[str, float] | Sequence[float] | float | None = None,
    square: Mapping[str, float] | Sequence[float] | float = 0.5,
    n_squares: int = 1,
    size: int | None = None,
    noise: float = 0.0,
    centred_first: bool = True,
) -> np.ndarray:
    """Return a uniform state with perturbation squares and optional noise.

    This is the classic Gray–Scott start (U=1, V=0 with squares at U=0.5, V=0.25).

    Parameters
    ----------
    system : System
        The system, with a grid.
    rng : numpy.random.Generator
        Places of the squares and the noise.
    base : Mapping of str to float, sequence of float or float, optional
        The uniform background (see :func:`uniform`; default each sample's feed).
    square : Mapping of str to float, sequence of float or float, default 0.5
        Concentrations inside the squares.
    n_squares : int, default 1
        Number of squares per sample, from 0 to the number of cells.
    size : int, optional
        Side of a square in cells (periodic wrap); default an eighth of the shorter grid
        side (16 cells on 128²).
    noise : float, default 0.0
        Multiplicative noise ``× (1 + noise·N(0,1))``, clipped at 0.
    centred_first : bool, default True
        Centre the first square; the rest go to random places (independent per sample).

    Returns
    -------
    numpy.ndarray
        ``(batch, species, y, x)``, float64.

    Raises
    ------
    ParameterError
        If the system is well-mixed, or ``n_squares``, ``size``, ``noise`` or a
        concentration is out of range.
    """
    ny, nx = _grid_shape(system)
    if size is None:
        size = max(1, min(ny, nx) // 8)
    if not isinstance(n_squares, (int, np.integer)) or not 0 <= n_squares <= ny * nx:
        raise ParameterError(f"n_squares must be a whole number from 0 to {ny * nx} (the "
                             f"grid's cells), got {n_squares!r}")
    if not isinstance(size, (int, np.integer)) or not 1 <= size <= min(ny, nx):
        raise ParameterError(f"square size must be a whole number in 1..{min(ny, nx)}, "
                             f"got {size!r}")
    if not np.isfinite(noise) or noise < 0:
        raise ParameterError(f"noise must be ≥ 0, got {noise!r}")
    state = uniform(system, base)
    sq = species_vector(system, square, "square concentrations")
    for b in range(system.batch_size):
        for s in range(n_squares):
            if s == 0 and centred_first:
                y0, x0 = (ny - size) // 2, (nx - size) // 2
            else:
                y0, x0 = int(rng.integers(ny)), int(rng.integers(nx))
            rows = np.arange(y0, y0 + size) % ny
            cols = np.arange(x0, x0 + size) % nx
            state[b][:, rows[:, None], cols[None, :]] = sq[:, None, None]
    if noise > 0:
        state *= 1.0 + noise * rng.standard_normal(state.shape)
        np.clip(state, 0.0, None, out=state)
    return state


def random_uniform(system: System, rng: np.random.Generator, low: float = 0.0,
                   high: float = 1.0, smooth: float = 0.0) -> np.ndarray:
    """Return independent U(low, high) values per cell and species, optionally smoothed.

    Parameters
    ----------
    system : System
        The system, with a grid.
    rng : numpy.random.Generator
        The random numbers.
    low, high : float, default 0.0, 1.0
        The range, ``0 ≤ low ≤ high``.
    smooth : float, default 0.0
        Width in cells of a periodic Gaussian smoothing (then rescaled back to
        [low, high]); 0 for none.

    Returns
    -------
    numpy.ndarray
        ``(batch, species, y, x)``, float64.

    Raises
    ------
    ParameterError
        If the system is well-mixed or the range is invalid.
    """
    ny, nx = _grid_shape(system)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high < low:
        raise ParameterError(f"random state needs 0 ≤ low ≤ high, got low={low}, high={high}")
    state = rng.uniform(low, high, size=(system.batch_size, system.n_species, ny, nx))
    if smooth > 0:
        state = smooth_periodic(state, smooth)
        lo = state.min(axis=(-2, -1), keepdims=True)
        hi = state.max(axis=(-2, -1), keepdims=True)
        state = low + (high - low) * (state - lo) / np.maximum(hi - lo, 1e-300)
    return state
