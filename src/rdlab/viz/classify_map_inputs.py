"""Checks of what a (k, f) class map is drawn from.

Class symbols, point coordinates, labels and probabilities are checked alike for the
static phase map and the HTML explorer. Each check raises
:class:`~rdlab.errors.ParameterError` naming the bad value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rdlab.errors import ParameterError

#: Tolerance on the row sums of class probabilities.
PROBABILITY_SUM_TOL = 1e-3


def check_classes(classes: Sequence[str]) -> list[str]:
    """Return the class symbols as a list of strings.

    Parameters
    ----------
    classes : sequence of str
        The class symbols.

    Returns
    -------
    list of str
        The symbols.

    Raises
    ------
    ParameterError
        For a string, an empty sequence or repeated symbols.
    """
    if isinstance(classes, str):
        raise ParameterError(f"classes must be a sequence of symbols, got the string {classes!r}")
    names = [str(c) for c in classes]
    if not names:
        raise ParameterError("classes is empty")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ParameterError(f"duplicate class symbols {dup!r} in classes {names!r}")
    return names


def check_positive_ints(**values: object) -> None:
    """Raise :class:`ParameterError` naming the first value that is not an integer ≥ 1.

    Parameters
    ----------
    **values
        The values to check, by name.

    Raises
    ------
    ParameterError
        Naming the first bad value.
    """
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ParameterError(f"{name} must be a positive integer, got {v!r}")


def check_coords(k: np.ndarray | Sequence[float], f: np.ndarray | Sequence[float],
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``k, f`` as finite float64 ``(n,)`` arrays of the same length ``n ≥ 1``.

    Parameters
    ----------
    k, f : array_like of float
        The coordinates of the points.

    Returns
    -------
    k, f : numpy.ndarray
        ``(n,)`` float64 each.

    Raises
    ------
    ParameterError
        For values that are not numbers, not 1-D, empty, not finite, or of different
        lengths.
    """
    out = []
    for name, v in (("k", k), ("f", f)):
        try:
            a = np.asarray(v, dtype=float)
        except (TypeError, ValueError):
            raise ParameterError(f"{name} must be numbers, got {v!r}") from None
        if a.ndim != 1:
            raise ParameterError(f"{name} must be 1-D (one value per point), got shape {a.shape}")
        if a.size == 0:
            raise ParameterError(f"{name} is empty: no point to draw")
        bad = np.flatnonzero(~np.isfinite(a))
        if bad.size:
            raise ParameterError(
                f"{name}[{bad[0]}] = {float(a[bad[0]])} is not finite "
                f"({bad.size} non-finite in all)"
            )
        out.append(a)
    if out[0].shape != out[1].shape:
        raise ParameterError(f"length mismatch: {out[0].size} k values but {out[1].size} f values")
    return out[0], out[1]


def check_labels(labels: np.ndarray | Sequence[int], n: int, n_classes: int) -> np.ndarray:
    """Return ``labels`` as int64 ``(n,)`` with values in ``[-1, n_classes)``.

    Parameters
    ----------
    labels : array_like of int
        Class index per point, −1 for unclassified.
    n : int
        Number of points.
    n_classes : int
        Number of classes.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64.

    Raises
    ------
    ParameterError
        For labels that are not 1-D integers, of another length, or out of range.
    """
    raw = np.asarray(labels)
    if raw.ndim != 1:
        raise ParameterError(f"labels must be 1-D, got shape {raw.shape}")
    if raw.size != n:
        raise ParameterError(f"length mismatch: {raw.size} labels for {n} points")
    if raw.size and not np.issubdtype(raw.dtype, np.integer):
        as_float = (np.asarray(raw, dtype=float) if np.issubdtype(raw.dtype, np.number)
                    else np.array([np.nan]))
        bad = np.flatnonzero(~np.isfinite(as_float) | (as_float != np.round(as_float)))
        if bad.size:
            raise ParameterError(f"labels must be integers, got {raw.flat[bad[0]].item()!r} "
                                 f"(dtype {raw.dtype})")
    lab = raw.astype(np.int64)
    bad = np.flatnonzero((lab < -1) | (lab >= n_classes))
    if bad.size:
        raise ParameterError(
            f"label {int(lab[bad[0]])} at index {bad[0]} is out of range: expected −1 "
            f"(unclassified) or 0…{n_classes - 1} for {n_classes} classes"
        )
    return lab


def check_probabilities(probabilities: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    """Return probabilities as float64 ``(n, n_classes)``, finite, in [0, 1], rows summing to 1.

    Parameters
    ----------
    probabilities : numpy.ndarray
        Class probabilities per point.
    n : int
        Number of points.
    n_classes : int
        Number of classes.

    Returns
    -------
    numpy.ndarray
        ``(n, n_classes)`` float64.

    Raises
    ------
    ParameterError
        For another shape, a non-finite value or one outside [0, 1], or a row that does not
        sum to 1 within :data:`PROBABILITY_SUM_TOL`.
    """
    p = np.asarray(probabilities, dtype=float)
    if p.shape != (n, n_classes):
        raise ParameterError(
            f"probabilities must have shape (n_points, n_classes) = ({n}, {n_classes}), "
            f"got {p.shape}"
        )
    bad = np.argwhere(~np.isfinite(p))
    if bad.size:
        i, j = bad[0]
        raise ParameterError(f"probabilities[{i}, {j}] = {float(p[i, j])} is not finite")
    bad = np.argwhere((p < -PROBABILITY_SUM_TOL) | (p > 1.0 + PROBABILITY_SUM_TOL))
    if bad.size:
        i, j = bad[0]
        raise ParameterError(f"probabilities[{i}, {j}] = {float(p[i, j])} is outside [0, 1]")
    sums = p.sum(axis=1)
    bad_rows = np.flatnonzero(np.abs(sums - 1.0) > PROBABILITY_SUM_TOL)
    if bad_rows.size:
        i = bad_rows[0]
        raise ParameterError(
            f"probabilities row {i} sums to {float(sums[i])}, not 1 (tolerance "
            f"{PROBABILITY_SUM_TOL}); {bad_rows.size} such rows"
        )
    return np.clip(p, 0.0, 1.0)
