"""Concentration data as a long CSV: one row per (sample, time).

Columns: ``sample`` (any label), ``time``, optional ``temperature`` (K, one value per
sample), one column per species and optional ``dX/dt`` columns (the derivative of species
``X``). Each sample keeps its own times; rows of a sample must be in strictly increasing
time order. Anything else is refused with a :class:`~rdlab.errors.DataError` that names the
file, the line and the column.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from rdlab.atomic import atomic_write_text
from rdlab.checks import parse_float
from rdlab.discover.data import NEGATIVE_TOLERANCE, ReactionData
from rdlab.errors import DataError, ParameterError

__all__ = ["read_csv", "write_csv"]

_RESERVED = ("sample", "time", "temperature")


def _derivative_of(column: str) -> str | None:
    """Return ``'A'`` for a column ``'dA/dt'``, else ``None``."""
    if column.startswith("d") and column.endswith("/dt") and len(column) > 4:
        return column[1:-3]
    return None


def write_csv(data: ReactionData, path: Path) -> Path:
    """Write ``data`` as a long CSV (17 significant digits, so it reads back exactly).

    Parameters
    ----------
    data : ReactionData
        The data.
    path : Path
        The CSV file.

    Returns
    -------
    Path
        The path written.
    """
    n, n_t, n_s = data.concentrations.shape
    header = ["sample", "time"]
    if data.temperatures is not None:
        header.append("temperature")
    header += list(data.species)
    if data.derivatives is not None:
        header += [f"d{s}/dt" for s in data.species]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    times = data.sample_times
    for s in range(n):
        for i in range(n_t):
            row = [s, times[s, i]]
            if data.temperatures is not None:
                row.append(data.temperatures[s])
            row += list(data.concentrations[s, i])
            if data.derivatives is not None:
                row += list(data.derivatives[s, i])
            writer.writerow([v if isinstance(v, int) else f"{float(v):.17g}" for v in row])
    return atomic_write_text(path, buf.getvalue())


def _text(path: Path) -> str:
    """Return the text of ``path``, refusing a file that is not readable UTF-8 CSV text."""
    if path.exists() and not path.is_file() and not path.is_dir():
        # a device or FIFO (e.g. a link to /dev/zero) would be read until memory runs out
        raise DataError(f"{str(path)!r} is not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise DataError(f"{str(path)!r} is empty: a CSV needs a header line (sample, time, "
                        "species...) and data rows")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{str(path)!r} is a binary file, not a CSV text file (NUL byte at "
                        f"offset {nul})")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{str(path)!r} is not a UTF-8 text CSV file (byte "
                        f"0x{raw[exc.start]:02x} at offset {exc.start})") from None


class _Table:
    """The cells of a CSV, column by column, with the line number of every row."""

    def __init__(self, path: Path):
        self.path = path
        reader = csv.reader(io.StringIO(_text(path), newline=""))
        try:
            header = next(reader, [])
            self.header = [h.strip() for h in header]
            self._check_header()
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # blank line
                if len(row) != len(self.header):
                    raise DataError(f"{self.where(reader.line_num)}: {len(row)} fields, the "
                                    f"header has {len(self.header)} ({', '.join(self.header)})")
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise DataError(f"{self.where(reader.line_num)}: not valid CSV ({exc})") from None
        if not rows:
            raise DataError(f"{str(path)!r} has a header but no data rows")
        self.lines = np.asarray(lines)
        self._columns = {name: [row[j].strip() for row in rows]
                         for j, name in enumerate(self.header)}

    def where(self, line: int, column: str | None = None) -> str:
        """Return ``path:line`` (and the column, if given) for error messages."""
        col = f", column {column!r}" if column is not None else ""
        return f"{str(self.path)!r}, line {line}{col}"

    def _check_header(self) -> None:
        """Refuse a header with unnamed or repeated columns, or without the required ones."""
        if not any(self.header):
            raise DataError(f"{self.where(1)}: the first line must be the header (sample, "
                            "time, one column per species)")
        for j, name in enumerate(self.header):
            if not name:
                raise DataError(f"{self.where(1)}: column {j + 1} has no name")
        seen = set()
        for name in self.header:
            if name in seen:
                raise DataError(f"{self.where(1)}: column {name!r} appears twice")
            seen.add(name)
        for name in ("sample", "time"):
            if name not in self.header:
                raise DataError(f"{self.where(1)}: a {name!r} column is needed; the columns "
                                f"are {self.header}")

    def labels(self, column: str) -> list[str]:
        """Return the column as non-empty strings."""
        cells = self._columns[column]
        for cell, line in zip(cells, self.lines):
            if not cell:
                raise DataError(f"{self.where(line, column)}: empty cell")
        return cells

    def numbers(self, column: str, *, finite: bool = True,
                minimum: float | None = None, positive: bool = False) -> np.ndarray:
        """Return the column as floats.

        A cell that is not a number (or not finite, below ``minimum``, not positive) is refused,
        naming its line.
        """
        cells = self._columns[column]
        try:
            if any("_" in cell for cell in cells):
                raise ValueError("an underscore")  # Python reads '0_5' as 5; numbers don't
            values = np.array(cells, dtype=float)
        except ValueError:
            for cell, line in zip(cells, self.lines):
                try:
                    parse_float(cell)
                except ValueError:
                    what = "an empty cell" if not cell else f"{cell!r}"
                    raise DataError(f"{self.where(line, column)}: {what} is not a "
                                    "number") from None
            raise  # pragma: no cover - numpy and float() disagree
        bad = np.flatnonzero(~np.isfinite(values)) if finite else np.array([], int)
        if bad.size:
            i = bad[0]
            raise DataError(f"{self.where(self.lines[i], column)}: {cells[i]!r} is not a "
                            "finite number")
        if minimum is not None and np.any(values < minimum):
            i = int(np.argmax(values < minimum))
            raise DataError(f"{self.where(self.lines[i], column)}: {cells[i]} is negative")
        if positive and np.any(values <= 0):
            i = int(np.argmax(values <= 0))
            raise DataError(f"{self.where(self.lines[i], column)}: {cells[i]} is not "
                            "positive")
        return values


def _samples(table: _Table) -> dict[str, np.ndarray]:
    """Return the row indices of each sample, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(table.labels("sample")):
        groups.setdefault(label, []).append(i)
    return {label: np.asarray(rows) for label, rows in groups.items()}


def _check_times(table: _Table, groups: dict[str, np.ndarray], time: np.ndarray) -> None:
    """Refuse times that are not strictly increasing within a sample (rows in file order)."""
    for label, rows in groups.items():
        t = time[rows]
        steps = np.diff(t)
        if np.any(steps <= 0):
            j = int(np.argmax(steps <= 0))
            a, b = table.lines[rows[j]], table.lines[rows[j + 1]]
            if t[j + 1] == t[j]:
                why = f"time {t[j]:g} appears twice (lines {a} and {b})"
            else:
                why = f"time {t[j + 1]:g} comes after time {t[j]:g} on line {a}"
            raise DataError(f"{table.where(b, 'time')}: sample {label!r}: {why}; the rows of "
                            "a sample must be in strictly increasing time order")


def _same_length(table: _Table, groups: dict[str, np.ndarray]) -> int:
    """Return the number of times per sample, refusing samples of different lengths."""
    first, rows0 = next(iter(groups.items()))
    for label, rows in groups.items():
        if rows.size != rows0.size:
            raise DataError(
                f"{str(table.path)!r}: sample {label!r} has {rows.size} times but sample "
                f"{first!r} has {rows0.size}; rdlab discover needs the same number of times "
                "in every sample (the times themselves may differ from sample to sample)")
    return int(rows0.size)


def _temperatures(table: _Table, groups: dict[str, np.ndarray]) -> np.ndarray | None:
    """Return one temperature per sample, or ``None`` without a temperature column."""
    if "temperature" not in table.header:
        return None
    T = table.numbers("temperature", positive=True)
    out = []
    for label, rows in groups.items():
        differs = np.flatnonzero(T[rows] != T[rows[0]])
        if differs.size:
            i = rows[differs[0]]
            raise DataError(f"{table.where(table.lines[i], 'temperature')}: sample {label!r} "
                            f"changes temperature ({T[i]:g} K, was {T[rows[0]]:g} K); one "
                            "temperature per sample")
        out.append(T[rows[0]])
    return np.asarray(out)


def read_csv(path: Path) -> ReactionData:
    """Read a long CSV (see the module docstring) into :class:`ReactionData`.

    Parameters
    ----------
    path : Path
        The CSV file.

    Returns
    -------
    ReactionData
        The data.

    Raises
    ------
    DataError
        Naming the file, line and column of what is wrong.
    """
    table = _Table(path)
    dcols = {c: _derivative_of(c) for c in table.header if _derivative_of(c) is not None}
    species = [c for c in table.header if c not in _RESERVED and c not in dcols]
    if not species:
        raise DataError(f"{table.where(1)}: no species columns (columns besides sample, time, "
                        f"temperature and dX/dt); the columns are {table.header}")
    for col, name in dcols.items():
        if name not in species:
            raise DataError(f"{table.where(1, col)}: derivative of {name!r}, which has no "
                            "concentration column")
    if dcols and len(dcols) != len(species):
        missing = [s for s in species if f"d{s}/dt" not in dcols]
        raise DataError(f"{table.where(1)}: derivative columns missing for {missing} (give "
                        "dX/dt for every species or for none)")
    groups = _samples(table)
    time = table.numbers("time")
    conc = np.stack([table.numbers(s, minimum=-NEGATIVE_TOLERANCE) for s in species], axis=1)
    deriv = (np.stack([table.numbers(f"d{s}/dt") for s in species], axis=1) if dcols
             else None)
    T = _temperatures(table, groups)
    _check_times(table, groups, time)
    n_t = _same_length(table, groups)
    order = np.concatenate(list(groups.values()))
    shape = (len(groups), n_t, len(species))
    try:
        return ReactionData(tuple(species), time[order].reshape(shape[:2]),
                            conc[order].reshape(shape),
                            None if deriv is None else deriv[order].reshape(shape), T)
    except ParameterError as exc:
        raise DataError(f"{str(path)!r}: {exc}") from None
