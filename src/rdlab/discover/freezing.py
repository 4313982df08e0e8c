"""Partial-parameter freezing (Algorithm 1): which rows of V are ready to be frozen.

A row is ready when every entry lies within ε of an integer (eq. 3.4,
``d_int(v) = ‖v − ⌊v⌉‖∞ ≤ ε``; in catalytic form the orders must be too). A ready row that
rounds to zero, or to a row already frozen (or its negation, which is the same reversible
reaction), is not a new reaction: it is reported as ``"zero"`` or ``"duplicate"`` and stays
free, to be redrawn or, if it keeps coming back, dropped.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FREE", "FREEZE", "DUPLICATE", "ZERO", "integer_distance", "row_status"]

FREE, FREEZE, DUPLICATE, ZERO = "free", "freeze", "duplicate", "zero"


def integer_distance(rows: np.ndarray) -> np.ndarray:
    """Return ``max_k |v_k − round(v_k)|`` of each row.

    Parameters
    ----------
    rows : numpy.ndarray
        ``(n, n_s)``.

    Returns
    -------
    numpy.ndarray
        ``(n,)``.
    """
    rows = np.atleast_2d(rows)
    return np.max(np.abs(rows - np.round(rows)), axis=1)


def row_status(V: np.ndarray, orders: np.ndarray | None, frozen: np.ndarray,
               epsilon: float) -> list[str]:
    """Return the status of each row of one candidate.

    Rows are decided in order, so of two free rows that round to the same new reaction the
    first is frozen and the second is a duplicate.

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_r, n_s)`` current stoichiometry.
    orders : numpy.ndarray or None
        ``(n_r, n_s)`` orders, or ``None`` (V form).
    frozen : numpy.ndarray
        ``(n_r,)`` bool, rows already frozen (their status is ``"freeze"``).
    epsilon : float
        ε of eq. 3.4.

    Returns
    -------
    list of str
        One of :data:`FREE`, :data:`FREEZE`, :data:`DUPLICATE`, :data:`ZERO` per row.
    """
    status: list[str] = []
    kept: list[tuple[np.ndarray, np.ndarray | None]] = [
        (np.round(V[j]), None if orders is None else np.round(orders[j]))
        for j in range(V.shape[0]) if frozen[j]
    ]
    for j in range(V.shape[0]):
        if frozen[j]:
            status.append(FREEZE)
            continue
        d = integer_distance(V[j])[0]
        if orders is not None:
            d = max(d, integer_distance(orders[j])[0])
        if d > epsilon:
            status.append(FREE)
            continue
        v = np.round(V[j])
        o = None if orders is None else np.round(orders[j])
        if o is not None and np.any(o + v < 0):  # would consume more than it uses
            status.append(FREE)
            continue
        if not np.any(v):
            status.append(ZERO)
            continue
        dup = False
        for kv, ko in kept:
            if o is None:
                dup = np.array_equal(kv, v) or np.array_equal(kv, -v)
            else:
                dup = np.array_equal(kv, v) and np.array_equal(ko, o)
            if dup:
                break
        if dup:
            status.append(DUPLICATE)
            continue
        status.append(FREEZE)
        kept.append((v, o))
    return status
