"""Value checks shared across layers; each raises :class:`~rdlab.errors.ParameterError`
naming the offending value."""

from __future__ import annotations

import math

from rdlab.errors import ParameterError

__all__ = ["nonnegative_number"]


def nonnegative_number(value, what: str) -> float:
    """``value`` as a finite float ≥ 0, or a ParameterError naming ``what`` and the value."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a number ≥ 0, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ParameterError(f"{what} must be a finite number ≥ 0, got {value!r}")
    return x
