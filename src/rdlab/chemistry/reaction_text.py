"""Parsing and printing of the reaction text form.

One reaction per line::

    U + 2V -> 3V            : 1.0
    V -> 0                  : k = 0.06
    A <-> B                 : kf = 2.0, kr = 0.5
    2H + 2OH -> 2H2 + O2

* ``->`` is an irreversible reaction, ``<->`` (or ``<=>``) a reversible one, which becomes a
  forward/reverse pair of directed reactions.
* ``0`` (or ``∅``, or an empty side) is "nothing": ``V -> 0`` is an outflow, ``0 -> X`` a
  zero-order source.
* Species names start with a letter and may contain letters, digits and ``_`` (``H2``, ``O2``,
  ``X_1``); an optional integer coefficient stands before the name (``2H2`` is two ``H2``).
* After ``:`` come the rate constants, one per direction, each a finite number ≥ 0 or
  ``name = number`` (or a bare ``name``, to be given later). The name labels that rate
  constant for sweeps (``--k 0.04:0.07:7``); a name that reads as a number (``inf``,
  ``nan``) is refused. ``#`` starts a comment.
* A coefficient is at most :data:`MAX_COEFFICIENT` (mass-action orders beyond that are not
  chemistry, and overflow every engine).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rdlab.checks import parse_float
from rdlab.errors import NetworkError

_SPECIES = re.compile(r"^(?P<coef>[0-9]+)?\s*(?P<name>[A-Za-z][A-Za-z0-9_]*)$")
_RATE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_ARROWS = ("<->", "<=>", "->", "=>")
_NOTHING = {"0", "∅", ""}
#: Largest stoichiometric coefficient of a species on one side of a reaction.
MAX_COEFFICIENT = 100


@dataclass(frozen=True)
class ParsedReaction:
    """One line of reaction text, before species are indexed.

    Parameters
    ----------
    reactants : dict of str to int
        Species name → positive integer coefficient.
    products : dict of str to int
        Species name → positive integer coefficient.
    reversible : bool
        ``<->`` (a forward/reverse pair) rather than ``->``.
    rates : tuple of (float or None)
        The values given after ``:`` (``None`` where absent), one per direction.
    rate_names : tuple of (str or None)
        Their labels (``None`` where unnamed).
    """

    reactants: dict[str, int]
    products: dict[str, int]
    reversible: bool
    rates: tuple[float | None, ...]
    rate_names: tuple[str | None, ...]


def _parse_side(side: str, line: str) -> dict[str, int]:
    """Return one side of a reaction as species → coefficient."""
    side = side.strip()
    if side in _NOTHING:
        return {}
    terms: dict[str, int] = {}
    for raw in side.split("+"):
        term = raw.strip()
        if term in _NOTHING and term != "":
            continue
        if term.startswith("-"):
            raise NetworkError(f"negative stoichiometric coefficient in {term!r} of {line!r}")
        m = _SPECIES.match(term)
        if m is None:
            if re.match(r"^\d*\.\d+", term) or re.match(r"^\d+\.\d*", term):
                raise NetworkError(
                    f"non-integer stoichiometric coefficient in {term!r} of {line!r}: "
                    "mass-action coefficients must be whole numbers"
                )
            raise NetworkError(
                f"cannot read the term {term!r} in {line!r}: expected an optional whole "
                "number followed by a species name that starts with a letter (e.g. '2H2')"
            )
        digits = m["coef"]
        if digits is not None and len(digits) > 6:
            raise NetworkError(f"cannot read the coefficient {digits!r} in {term!r} of {line!r}"
                               f": use a whole number 1..{MAX_COEFFICIENT}")
        coef = int(digits) if digits is not None else 1
        if coef == 0:
            raise NetworkError(f"zero stoichiometric coefficient in {term!r} of {line!r}")
        terms[m["name"]] = terms.get(m["name"], 0) + coef
    too_big = {s: c for s, c in terms.items() if c > MAX_COEFFICIENT}
    if too_big:
        raise NetworkError(f"stoichiometric coefficient(s) {too_big} in {line!r} exceed "
                           f"{MAX_COEFFICIENT}")
    return terms


def _parse_number(text: str, line: str) -> float:
    """Return a rate constant's text as a finite float ≥ 0."""
    try:
        value = parse_float(text)
    except ValueError:
        raise NetworkError(f"rate constant {text!r} in {line!r} is not a number") from None
    if math.isnan(value):
        raise NetworkError(f"rate constant in {line!r} is NaN")
    if math.isinf(value):
        raise NetworkError(f"rate constant {text!r} in {line!r} is infinite; rates must be "
                           "finite numbers ≥ 0")
    if value < 0:
        raise NetworkError(f"rate constant {value} in {line!r} is negative")
    return value


def _is_float(text: str) -> bool:
    """Tell whether ``text`` reads as a number."""
    try:
        parse_float(text)
    except ValueError:
        return False
    return True


def _parse_rates(text: str, n: int, line: str) -> tuple[tuple, tuple]:
    """Return the ``n`` rate values and names given after ``:``."""
    if text is None or not text.strip():
        return (None,) * n, (None,) * n
    items = [item.strip() for item in text.split(",")]
    if len(items) != n:
        raise NetworkError(
            f"{line!r} has {len(items)} rate constant(s) but needs {n} "
            f"({'forward and reverse' if n == 2 else 'one'})"
        )
    values: list[float | None] = []
    names: list[str | None] = []
    for item in items:
        if "=" in item:
            name, _, number = (part.strip() for part in item.partition("="))
            if not _RATE_NAME.match(name):
                raise NetworkError(f"rate name {name!r} in {line!r} is not a valid identifier")
            if _is_float(name):
                raise NetworkError(f"rate name {name!r} in {line!r} reads as a number; "
                                   "choose another name")
            names.append(name)
            values.append(_parse_number(number, line) if number else None)
        elif _RATE_NAME.match(item) and not _is_float(item):
            names.append(item)
            values.append(None)
        else:
            names.append(None)
            values.append(_parse_number(item, line))
    return tuple(values), tuple(names)


def parse_reaction(line: str) -> ParsedReaction:
    """Parse one reaction line (see the module docstring for the grammar).

    Parameters
    ----------
    line : str
        One reaction, without a comment.

    Returns
    -------
    ParsedReaction
        The reaction.

    Raises
    ------
    NetworkError
        For a line without an arrow or with several, a term or rate constant that cannot be
        read, a reaction that changes nothing, or the wrong number of rate constants.
    """
    body, _, rate_text = line.partition(":")
    for arrow in _ARROWS:
        if arrow in body:
            left, _, right = body.partition(arrow)
            reversible = arrow in ("<->", "<=>")
            break
    else:
        raise NetworkError(f"no arrow ('->' or '<->') in reaction {line.strip()!r}")
    if any(a in right for a in _ARROWS):
        raise NetworkError(f"more than one arrow in reaction {line.strip()!r}")
    reactants = _parse_side(left, line.strip())
    products = _parse_side(right, line.strip())
    if reactants == products:
        raise NetworkError(f"reaction {line.strip()!r} does not change anything")
    rates, names = _parse_rates(rate_text if ":" in line else None, 2 if reversible else 1,
                                line.strip())
    return ParsedReaction(reactants, products, reversible, rates, names)


def parse_lines(text: str | list[str] | tuple[str, ...]) -> list[ParsedReaction]:
    """Parse a block of reaction text (or a list of lines).

    Parameters
    ----------
    text : str, list of str or tuple of str
        One text block or its lines; blank lines and ``#`` comments are skipped.

    Returns
    -------
    list of ParsedReaction
        One per reaction line.

    Raises
    ------
    NetworkError
        If a line is not text or not a valid reaction, or no reaction is given.
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    parsed = []
    for line in lines:
        if not isinstance(line, str):
            raise NetworkError(f"reaction must be text, got {line!r}")
        line = line.split("#", 1)[0].strip()
        if line:
            parsed.append(parse_reaction(line))
    if not parsed:
        raise NetworkError("no reactions given")
    return parsed


def format_side(terms: dict[str, int]) -> str:
    """Return one side of a reaction as text.

    Parameters
    ----------
    terms : dict of str to int
        Species → coefficient.

    Returns
    -------
    str
        ``{'U': 1, 'V': 2}`` gives ``'U + 2V'``; empty gives ``'0'``.
    """
    if not terms:
        return "0"
    return " + ".join(f"{c if c != 1 else ''}{s}" for s, c in terms.items())


def format_rate(value: float | None, name: str | None) -> str:
    """Return a rate constant as written after ``:``.

    Parameters
    ----------
    value : float or None
        The rate constant, if given.
    name : str or None
        Its label, if any.

    Returns
    -------
    str
        ``name = value``, ``name`` or ``value``.
    """
    if name is not None and value is not None:
        return f"{name} = {value!r}"
    if name is not None:
        return name
    return repr(value)
