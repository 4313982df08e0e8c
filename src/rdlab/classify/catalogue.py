"""The Gray–Scott pattern classes and labelled (k, f) tables of the CNN paper.

The data lie in ``patterns/data/gray_scott_classes.yaml`` (package data): the class order of
each training pass (15 classes in pass 1, 16 in pass 2 with π) and the five labelled sets
``train``, ``val``, ``test`` (pass 1) and ``train2``, ``val2`` (pass 2). Each set is a table of
rows ``[class_key, k, f, count]``; :func:`dataset_table` expands it to one
:class:`SampleSpec` per simulation, with the seed rule of the reference code,
``seed = index + m·N + 1`` (index 0-based in table order, N samples in the set, m = 2 for
train/train2, 1 for val/val2, 3 for test).

k and f are the dimensionless Gray–Scott kill and feed rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from rdlab.errors import ParameterError

__all__ = [
    "SETS",
    "PASSES",
    "PatternClass",
    "SampleSpec",
    "classes",
    "dataset_table",
    "set_pass",
]

#: Names of the labelled sets, in the order of the reference code.
SETS: tuple[str, ...] = ("train", "val", "test", "train2", "val2")

#: Valid training passes (1: 15 classes; 2: 16 classes, π added).
PASSES: tuple[int, ...] = (1, 2)

_DATA_FILE = "gray_scott_classes.yaml"


@dataclass(frozen=True)
class PatternClass:
    """One pattern class.

    Parameters
    ----------
    key : str
        ASCII identifier used as the sample label (``"alpha"`` … ``"nu"``, ``"pi"``, ``"L"``,
        ``"H"``).
    symbol : str
        Display symbol (``"α"`` … ``"ν"``, ``"π"``, ``"L"``, ``"H"``).
    description : str
        One line of text.
    """

    key: str
    symbol: str
    description: str


@dataclass(frozen=True)
class SampleSpec:
    """One labelled simulation of a set.

    Parameters
    ----------
    index : int
        0-based position in the set's table.
    label : str
        Class key (see :class:`PatternClass`).
    k, f : float
        Kill and feed rates (dimensionless).
    seed : int
        The initial-condition seed.
    """

    index: int
    label: str
    k: float
    f: float
    seed: int


@cache
def _data() -> dict[str, Any]:
    """Return the parsed YAML file (read once)."""
    text = resources.files("rdlab.classify").joinpath("data", _DATA_FILE).read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "classes" not in data or "sets" not in data:
        raise ParameterError(f"{_DATA_FILE}: expected top-level keys 'classes' and 'sets'")
    return data


def _check_pass(pass_: int) -> int:
    if isinstance(pass_, bool) or pass_ not in PASSES:
        raise ParameterError(f"unknown pass {pass_!r}; valid passes: {', '.join(map(str, PASSES))}")
    return int(pass_)


def _check_set(name: str) -> str:
    if name not in SETS:
        raise ParameterError(f"unknown set {name!r}; valid sets: {', '.join(SETS)}")
    return name


@cache
def _classes(pass_: int) -> tuple[PatternClass, ...]:
    entries = _data()["classes"][f"pass{pass_}"]
    return tuple(PatternClass(str(e["key"]), str(e["symbol"]), str(e["description"]))
                 for e in entries)


def classes(pass_: int = 1) -> list[PatternClass]:
    """Return the pattern classes of a training pass, in label order (label i is element i).

    Parameters
    ----------
    pass_ : int, default 1
        1 (15 classes: α … ν, L, H) or 2 (16 classes: α … ν, π, L, H).

    Returns
    -------
    list of PatternClass
        The classes in label order.

    Raises
    ------
    ParameterError
        For any other pass.
    """
    return list(_classes(_check_pass(pass_)))


def set_pass(name: str) -> int:
    """Return the training pass (1 or 2) whose class list labels the set ``name``.

    Parameters
    ----------
    name : str
        One of :data:`SETS`.

    Returns
    -------
    int
        The pass, 1 or 2.

    Raises
    ------
    ParameterError
        For a name not in :data:`SETS`.
    """
    return int(_data()["sets"][_check_set(name)]["pass"])


def _rows(name: str) -> list[list[Any]]:
    """Return the rows ``[class_key, k, f, count]`` of a set, following ``same_as`` links."""
    sets = _data()["sets"]
    entry, seen = sets[name], [name]
    while "rows" not in entry:
        other = entry["same_as"]
        if other in seen or other not in sets:
            raise ParameterError(f"{_DATA_FILE}: set {name!r} has a bad same_as chain {seen}")
        seen.append(other)
        entry = sets[other]
    return entry["rows"]


@cache
def _table(name: str) -> tuple[SampleSpec, ...]:
    entry = _data()["sets"][name]
    keys = {c.key for c in _classes(int(entry["pass"]))}
    rows = _rows(name)
    n = sum(int(r[3]) for r in rows)
    offset = round(entry["m"] * n) + 1
    out: list[SampleSpec] = []
    for key, k, f, count in rows:
        if key not in keys:
            raise ParameterError(f"{_DATA_FILE}: set {name!r} has unknown class {key!r}")
        for _ in range(int(count)):
            i = len(out)
            out.append(SampleSpec(index=i, label=str(key), k=float(k), f=float(f),
                                  seed=i + offset))
    return tuple(out)


def dataset_table(name: str) -> list[SampleSpec]:
    """Return the samples of a labelled set, rows expanded in table order.

    Parameters
    ----------
    name : str
        One of :data:`SETS`.

    Returns
    -------
    list of SampleSpec
        N samples (750 for train/val/test, 1645 for train2/val2) with
        ``seed = index + m·N + 1``: train 1501–2250, val 751–1500, test 2251–3000,
        train2 3291–4935, val2 1646–3290.

    Raises
    ------
    ParameterError
        For a name not in :data:`SETS`.
    """
    return list(_table(_check_set(name)))
