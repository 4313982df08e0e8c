"""Option grammar of the commands.

``NAME=VALUE`` pairs, species values, leftover ``--NAME VALUE`` parameters, and which
options the user gave.

Each parser refuses a malformed value with a :class:`~rdlab.errors.ParameterError` naming it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import typer

from rdlab.checks import parse_float
from rdlab.errors import ParameterError


def parse_assignment(text: str, what: str) -> tuple[str, str]:
    """Split ``"NAME=VALUE"`` into ``(NAME, VALUE)``, both stripped.

    Parameters
    ----------
    text
        The text given on the command line.
    what
        The option it came from (e.g. ``"--set"``), named in the error.

    Returns
    -------
    tuple of str
        The name and the value.

    Raises
    ------
    ParameterError
        When ``text`` has no ``=`` or no name before it.
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ParameterError(f"{what} {text!r} is not of the form NAME=VALUE")
    return name.strip(), value.strip()


def parse_species_values(text: str | None, what: str) -> dict[str, float] | None:
    """Read ``"U=0.5,V=0.25"`` as ``{"U": 0.5, "V": 0.25}``: finite numbers, each name once.

    Parameters
    ----------
    text
        Comma-separated ``NAME=VALUE`` pairs, or None.
    what
        The option it came from (e.g. ``"--square"``), named in the error.

    Returns
    -------
    dict or None
        Species name → value; None when ``text`` is None.

    Raises
    ------
    ParameterError
        When a pair is malformed, a value is not a finite number, or a name is given twice.
    """
    if text is None:
        return None
    out: dict[str, float] = {}
    for item in text.split(","):
        name, value = parse_assignment(item, what)
        if name in out:
            raise ParameterError(f"{what}: {name!r} is given twice in {text!r}")
        try:
            number = parse_float(value)
        except ValueError:
            raise ParameterError(f"{what}: {value!r} for {name!r} is not a number") from None
        if not math.isfinite(number):
            raise ParameterError(f"{what}: {value!r} for {name!r} is not a finite number")
        out[name] = number
    return out


def add_parameter(params: dict[str, str], name: str, value: str, how: str) -> None:
    """Add ``name = value`` to ``params``, refusing a parameter given twice.

    Parameters
    ----------
    params
        Parameters read so far (name → text); changed in place.
    name, value
        The parameter and its value as given.
    how
        How it was given (``"--set"``, ``"--f"``), named in the error.

    Raises
    ------
    ParameterError
        When ``name`` is already in ``params``.
    """
    if name in params:
        raise ParameterError(f"parameter {name!r} is given twice ({how}); give each once")
    params[name] = value


def extra_parameters(args: list[str], params: dict[str, str] | None = None) -> dict[str, str]:
    """Read ``--f 0.02:0.06:9 --k 0.05`` (or ``--f=...``) left over by the option parser.

    Parameters
    ----------
    args
        The leftover arguments, in order.
    params
        Parameters read so far (name → text), added to in place; default: a new dict.

    Returns
    -------
    dict
        ``params`` with the leftover parameters added.

    Raises
    ------
    ParameterError
        On an argument that is not ``--NAME``, a ``--NAME`` without a value, or a
        parameter given twice.
    """
    params = {} if params is None else params
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ParameterError(f"unexpected argument {arg!r}")
        name, eq, value = arg[2:].partition("=")
        if not name:
            raise ParameterError(f"unexpected argument {arg!r}")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ParameterError(f"parameter --{name} needs a value")
            value = args[i + 1]
            i += 1
        add_parameter(params, name, value, f"--{name}")
        i += 1
    return params


def given(ctx: typer.Context, names: Iterable[str]) -> list[str]:
    """Return the options among ``names`` that were given on the command line.

    Parameters
    ----------
    ctx
        The command's context.
    names
        Parameter names (Python names, e.g. ``"n_species"``).

    Returns
    -------
    list of str
        Those of ``names`` the user typed (not defaults or environment values).
    """
    # compared by name: typer may bring its own copy of click's ParameterSource
    return [n for n in names
            if getattr(ctx.get_parameter_source(n), "name", None) == "COMMANDLINE"]
