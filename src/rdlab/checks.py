"""Value checks shared across layers.

Each raises :class:`~rdlab.errors.ParameterError` naming the offending value.
"""

from __future__ import annotations

import math
import re

from rdlab.errors import ParameterError

__all__ = ["nonnegative_number", "parse_duration", "parse_float", "positive_number",
           "time_budget_option", "torch_device"]

#: Seconds per unit of a duration (:func:`parse_duration`).
DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_float(value) -> float:
    """Return ``float(value)``, except that text with an underscore is refused.

    Python reads ``"0_04"`` as 4.0, a typo of 0.04 that would otherwise run silently.

    Parameters
    ----------
    value : Any
        A number or its text.

    Returns
    -------
    float
        The value.

    Raises
    ------
    ValueError
        For text with an underscore, or anything ``float`` refuses.
    """
    if isinstance(value, str) and "_" in value:
        raise ValueError(f"could not convert string to float: {value!r}")
    return float(value)


def nonnegative_number(value, what: str) -> float:
    """Return ``value`` as a finite float ≥ 0.

    Parameters
    ----------
    value : Any
        The value given.
    what : str
        What it is, for messages.

    Returns
    -------
    float
        The value.

    Raises
    ------
    ParameterError
        Naming ``what`` and the value if it is not a finite number ≥ 0.
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a number ≥ 0, got {value!r}") from None
    if not math.isfinite(x) or x < 0:
        raise ParameterError(f"{what} must be a finite number ≥ 0, got {value!r}")
    return x


def positive_number(value, what: str) -> float:
    """Return ``value`` as a finite float > 0.

    Parameters
    ----------
    value : Any
        The value given.
    what : str
        What it is, for messages.

    Returns
    -------
    float
        The value.

    Raises
    ------
    ParameterError
        Naming ``what`` and the value if it is not a positive finite number.
    """
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a positive finite number, got {value!r}") from None
    if not math.isfinite(x) or x <= 0:
        raise ParameterError(f"{what} must be a positive finite number, got {value!r}")
    return x


def parse_duration(text, what: str) -> float:
    """Return a duration written with a unit in seconds.

    Parameters
    ----------
    text : str
        ``"90s"``, ``"20m"``, ``"1.5h"`` (seconds, minutes, hours; spaces and case
        ignored).
    what : str
        What it is, for messages.

    Returns
    -------
    float
        Seconds, finite and > 0.

    Raises
    ------
    ParameterError
        Naming ``what`` and the value, for a bare number (is ``90`` seconds or minutes?),
        another unit, zero, a negative, NaN or infinity.
    """
    raw = str(text).strip()
    match = re.fullmatch(r"(.*?)\s*([A-Za-z])", raw)
    if match is None and raw:
        raise ParameterError(f"{what} needs a unit: write {raw}s, {raw}m or {raw}h (seconds, "
                             f"minutes, hours), got {raw!r}")
    number, unit = (match.group(1).strip(), match.group(2).lower()) if match else ("", "s")
    if unit not in DURATION_UNITS:
        raise ParameterError(f"{what} must be a duration with the unit s, m or h (e.g. 90s, "
                             f"20m, 1.5h), got {raw!r}")
    try:
        value = parse_float(number)
    except ValueError:
        raise ParameterError(f"{what} must be a duration such as 90s, 20m or 1.5h, got "
                             f"{raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ParameterError(f"{what} must be a positive finite duration (e.g. 90s, 20m, "
                             f"1.5h), got {raw!r}")
    return value * DURATION_UNITS[unit]


def time_budget_option(time_budget: str | None, old: float | None = None,
                       old_name: str = "", old_unit: str = "s") -> float | None:
    """Return the seconds of a command's time budget.

    Parameters
    ----------
    time_budget : str or None
        The ``--time-budget DURATION`` given (:func:`parse_duration`).
    old : float, optional
        The value of the deprecated hidden option ``old_name``, a bare number of
        ``old_unit``.
    old_name : str, default ""
        Its name (as ``--budget`` and ``--minutes``), for messages.
    old_unit : str, default "s"
        Its unit: ``"s"`` or ``"m"``.

    Returns
    -------
    float or None
        Seconds; ``None`` when neither is given.

    Raises
    ------
    ParameterError
        When both are given, or for a bad value, naming the option and the value.
    """
    if old is not None:
        if time_budget is not None:
            raise ParameterError(f"give --time-budget or {old_name} (its old name), not both")
        if not math.isfinite(old) or old <= 0:
            word = {"s": "seconds", "m": "minutes", "h": "hours"}[old_unit]
            raise ParameterError(f"{old_name} must be a positive finite number of {word}, got "
                                 f"{old:g}")
        return old * DURATION_UNITS[old_unit]
    if time_budget is None:
        return None
    return parse_duration(time_budget, "--time-budget")


def torch_device(value, what: str):
    """Return ``value`` as a :class:`torch.device` that exists on this machine.

    Parameters
    ----------
    value : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    what : str
        What it is, for messages.

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    ParameterError
        Naming ``what`` and the value, for a text that is not a device, another type than
        cpu or cuda, or a CUDA device this machine does not have.
    """
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
