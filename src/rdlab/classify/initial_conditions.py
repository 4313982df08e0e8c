"""Initial states of the Gray–Scott pattern runs (the CNN paper's recipe).

Geometry (for the paper's 128² grid; other sizes scale the positions by ``size/128``):

1. A centre (sx, sy) ∈ [0.1, 0.9]² is drawn, pairs redrawn until the chessboard distance
   max(|sx − ½|, |sy − ½|) lies in [0.2, 0.4].
2. U = 1, V = 0 everywhere; square A, rows and columns [55, 75), gets U = 0.5, V = 0.25.
3. Square B, rows [cx − 9, cx + 11) and columns [cy − 9, cy + 11) with cx = round(128·sx),
   cy = round(128·sy), gets the same values; square C, square B moved by +6 rows and +9
   columns, gets U = 0.99, V = 0.01 and overwrites B where they overlap. Slices are clipped at
   the edge, not wrapped.
4. U and V are rotated by an integer angle in [0, 88] degrees about the centre
   (``scipy.ndimage.rotate``, cubic spline without prefilter, periodic "wrap" boundary, same
   shape).
5. The field is shifted periodically.

Two modes:

``"legacy"``
    Reproduces the reference code's draws from ``numpy.random.RandomState(seed)`` call by call,
    so a seed gives the identical field. Quirks it keeps on purpose:

    * the multiplicative noise has amplitude 0: two 128×128 standard-normal arrays are drawn
      (first for U, then V) and have no effect, but they advance the stream;
    * the angle comes from ``randint(0, 89)``: 0 … 88 degrees;
    * the x-shift ``int(128·rand())`` is drawn and lost (the reference overwrites the rolled
      array), so only the roll along axis 0 by ``int(128·rand())`` is applied.

``"default"``
    The same geometry drawn from ``numpy.random.Generator(PCG64(seed))``, no dead draws, and
    both periodic shifts applied deliberately (rows and columns, each uniform in 0 … size−1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from rdlab.errors import ParameterError

#: The initial-condition modes.
MODES = ("default", "legacy")
#: Grid size the recipe's pixel positions are written for.
REFERENCE_SIZE = 128


def _place_squares(size: int, sx: float, sy: float) -> np.ndarray:
    """Return U, V ``(2, size, size)`` with squares A, B and C (positions scaled to ``size``)."""
    s = size / REFERENCE_SIZE

    def px(v: float) -> int:
        return int(round(v * s))

    state = np.zeros((2, size, size))
    state[0] = 1.0
    a0, a1 = px(55), px(75)
    state[0, a0:a1, a0:a1] = 0.5
    state[1, a0:a1, a0:a1] = 0.25
    cx, cy = round(size * sx), round(size * sy)
    r0, r1, c0, c1 = cx - px(9), cx + px(11), cy - px(9), cy + px(11)
    state[0, r0:r1, c0:c1] = 0.5
    state[1, r0:r1, c0:c1] = 0.25
    dr, dc = px(6), px(9)
    state[0, r0 + dr:r1 + dr, c0 + dc:c1 + dc] = 0.99
    state[1, r0 + dr:r1 + dr, c0 + dc:c1 + dc] = 0.01
    return state


def _accepted(sx: float, sy: float) -> bool:
    return 0.2 <= max(abs(sx - 0.5), abs(sy - 0.5)) <= 0.4


def _rotate(state: np.ndarray, angle: int) -> np.ndarray:
    return np.stack([ndimage.rotate(c, angle, reshape=False, mode="wrap", prefilter=False)
                     for c in state])


def gray_scott_initial_state(seed: int, mode: str = "default", size: int = 128) -> np.ndarray:
    """Return the initial (U, V) of one pattern run.

    Parameters
    ----------
    seed : int
        Non-negative integer; the same seed and mode give the same field.
    mode : {"default", "legacy"}
        See the module docstring.
    size : int, default 128
        Grid side in cells (≥ 32; the recipe is written for 128).

    Returns
    -------
    numpy.ndarray
        The state ``(2, size, size)`` float64.

    Raises
    ------
    ParameterError
        For an unknown mode, a negative or non-integer seed, or a size below 32.
    """
    if mode not in MODES:
        raise ParameterError(f"initial-condition mode must be one of {MODES}, got {mode!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 32:
        raise ParameterError(f"size must be an integer ≥ 32, got {size!r}")
    size = int(size)
    if mode == "legacy":
        rs = np.random.RandomState(int(seed))
        while True:
            sx = 0.1 + 0.8 * rs.rand()
            sy = 0.1 + 0.8 * rs.rand()
            if _accepted(sx, sy):
                break
        state = _place_squares(size, sx, sy)
        rs.randn(size, size)  # U "noise" of amplitude 0: drawn, no effect
        rs.randn(size, size)  # V "noise"
        angle = int(rs.randint(0, 89))
        state = _rotate(state, angle)
        int(rs.rand() * size)  # the x-shift, lost in the reference
        y_shift = int(rs.rand() * size)
        return np.roll(state, y_shift, axis=1)  # axis 0 of each (y, x) field
    rng = np.random.default_rng(int(seed))
    while True:
        sx, sy = 0.1 + 0.8 * rng.random(2)
        if _accepted(sx, sy):
            break
    state = _place_squares(size, float(sx), float(sy))
    angle = int(rng.integers(0, 89))
    state = _rotate(state, angle)
    shift = rng.integers(0, size, 2)
    return np.roll(state, (int(shift[0]), int(shift[1])), axis=(1, 2))


def gray_scott_initial_batch(seeds: Sequence[int], mode: str = "default",
                             size: int = 128) -> np.ndarray:
    """Return the initial states for several seeds.

    Parameters
    ----------
    seeds : sequence of int
        Non-negative seeds, at least one.
    mode : {"default", "legacy"}
        See the module docstring.
    size : int, default 128
        Grid side in cells (≥ 32).

    Returns
    -------
    numpy.ndarray
        The states ``(len(seeds), 2, size, size)`` float64.

    Raises
    ------
    ParameterError
        For an empty list of seeds, or a bad seed, mode or size.
    """
    seeds = list(seeds)
    if not seeds:
        raise ParameterError("need at least one seed, got an empty list")
    return np.stack([gray_scott_initial_state(s, mode, size) for s in seeds])
