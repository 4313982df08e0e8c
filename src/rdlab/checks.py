"""Value checks shared across layers; each raises :class:`~rdlab.errors.ParameterError`
naming the offending value."""

from __future__ import annotations

import math

from rdlab.errors import ParameterError

__all__ = ["nonnegative_number", "parse_float", "positive_number", "torch_device"]


def parse_float(value) -> float:
    """``float(value)``, except that text with an underscore is refused (ValueError):
    Python reads ``"0_04"`` as 4.0, a typo of 0.04 that would otherwise run silently."""
    if isinstance(value, str) and "_" in value:
        raise ValueError(f"could not convert string to float: {value!r}")
    return float(value)


def nonnegative_number(value, what: str) -> float:
    """``value`` as a finite float ≥ 0, or a ParameterError naming ``what`` and the value."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a number ≥ 0, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ParameterError(f"{what} must be a finite number ≥ 0, got {value!r}")
    return x


def positive_number(value, what: str) -> float:
    """``value`` as a finite float > 0, or a ParameterError naming ``what`` and the value."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise ParameterError(f"{what} must be a positive finite number, got {value!r}")
    return x


def torch_device(value, what: str):
    """``value`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) as a :class:`torch.device` that
    exists on this machine, or a ParameterError naming ``what`` and the value."""
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"{what} {value!r} is not a torch device: {exc}") from None
    if device.type not in ("cpu", "cuda"):
        raise ParameterError(f"{what} {value!r}: only cpu and cuda devices are supported")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"{what} {value!r}: no CUDA GPU is available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParameterError(f"{what} {value!r}: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
    return device
