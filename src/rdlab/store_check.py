"""What a reader or a resumed run may trust in a zarr store (format 2, a local folder).

A store is opened only when it is a folder with its metadata (``.zgroup``, ``.zattrs``,
``.zmetadata`` and each variable's ``.zarray``); anything else is a :class:`DataError`
naming the path, not a zarr traceback. Rows of a variable are trusted only when every chunk
file that holds them exists (zarr reads a missing chunk as its fill value: NaN frames, or a
silent 0 for an integer), has the length its blosc header gives, decompresses, and — for
floating-point data — holds finite values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from rdlab.errors import DataError

_GROUP_FILES = (".zgroup", ".zattrs", ".zmetadata")
#: Bytes of a blosc frame's header; its last 4 hold the compressed size (little-endian).
_BLOSC_HEADER = 16


def open_store(path: str | Path, what: str, repair: str) -> xr.Dataset:
    """Open the zarr store at ``path`` (lazily), refusing one that is not whole.

    Parameters
    ----------
    path : str or pathlib.Path
        The store.
    what : str
        What it should be, for messages.
    repair : str
        How to get a good one, for messages.

    Returns
    -------
    xarray.Dataset
        The dataset, opened lazily.

    Raises
    ------
    DataError
        Naming ``what`` it should be when the path is missing, a file, a folder of another
        kind, or a store whose metadata is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} {str(path)!r} does not exist")
    if not path.is_dir():
        raise DataError(f"{what} {str(path)!r} is a file, not a zarr store (a folder)")
    present = [name for name in _GROUP_FILES if (path / name).is_file()]
    if not present and not any((p / ".zarray").is_file() for p in path.iterdir()
                               if p.is_dir()):
        raise DataError(f"{what} {str(path)!r} is not a zarr store (no .zgroup, .zattrs or "
                        ".zmetadata in it)")
    missing = [name for name in _GROUP_FILES if name not in present]
    if missing:
        raise DataError(f"{what} {str(path)!r} is damaged: its metadata "
                        f"{', '.join(missing)} is missing; {repair}")
    try:
        ds = xr.open_zarr(path, consolidated=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse the metadata
        raise DataError(f"{what} {str(path)!r} is damaged: its metadata cannot be read "
                        f"({type(exc).__name__}: {_first_line(exc)}); {repair}") from None
    lost = [name for name in ds.variables if not (path / str(name) / ".zarray").is_file()]
    if lost:
        raise DataError(f"{what} {str(path)!r} is damaged: the metadata (.zarray) of "
                        f"{', '.join(map(str, lost))} is missing; {repair}")
    return ds


def _first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


class ArrayCheck:
    """Checks rows (ranges along the first axis) of one variable of a store.

    Parameters
    ----------
    path : str or pathlib.Path
        The store.
    name : str
        The variable; its ``.zarray`` metadata must exist.
    """

    def __init__(self, path: str | Path, name: str):
        self.path = Path(path)
        self.name = name
        self.folder = self.path / name
        meta = json.loads((self.folder / ".zarray").read_text())
        self.shape = tuple(meta["shape"])
        self.chunks = tuple(meta["chunks"])
        self.separator = meta.get("dimension_separator") or "."
        self.floating = np.dtype(meta["dtype"]).kind in "fc"
        self.blosc = (meta.get("compressor") or {}).get("id") == "blosc"
        self._array = None

    def _chunk_files(self, start: int, stop: int) -> list[Path]:
        """Return the chunk files that hold rows ``start:stop``."""
        if not self.shape:
            return [self.folder / "0"]
        first, last = start // self.chunks[0], (stop - 1) // self.chunks[0]
        rest = [range(-(-size // chunk)) for size, chunk in zip(self.shape[1:],
                                                                  self.chunks[1:],
                                                                  strict=True)]
        grid = np.stack(np.meshgrid(*(range(first, last + 1), *rest), indexing="ij"),
                        axis=-1).reshape(-1, len(self.shape))
        return [self.folder / self.separator.join(map(str, idx)) for idx in grid]

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Read rows ``start:stop`` (all rows by default).

        Parameters
        ----------
        start : int, default 0
            First row.
        stop : int, optional
            End row (exclusive); default the last.

        Returns
        -------
        numpy.ndarray
            The rows.
        """
        import zarr

        if self._array is None:
            self._array = zarr.open_array(str(self.folder), mode="r", zarr_format=2)
        stop = self.shape[0] if stop is None and self.shape else stop
        return np.asarray(self._array[start:stop] if self.shape else self._array[...])

    def missing(self, start: int = 0, stop: int | None = None) -> bool:
        """Tell whether a chunk file holding rows ``start:stop`` does not exist.

        Parameters
        ----------
        start : int, default 0
            First row.
        stop : int, optional
            End row (exclusive); default the last.

        Returns
        -------
        bool
            True when one is missing.
        """
        stop = (self.shape[0] if self.shape else 1) if stop is None else stop
        return stop > start and any(not p.is_file() for p in self._chunk_files(start, stop))

    def truncated(self, start: int = 0, stop: int | None = None) -> bool:
        """Tell whether a chunk file (of those present) holding rows ``start:stop`` is cut.

        Parameters
        ----------
        start : int, default 0
            First row.
        stop : int, optional
            End row (exclusive); default the last.

        Returns
        -------
        bool
            True when a blosc chunk is shorter or longer than its header says.
        """
        stop = (self.shape[0] if self.shape else 1) if stop is None else stop
        return self.blosc and any(_blosc_truncated(p) for p in self._chunk_files(start, stop)
                                  if p.is_file())

    def problem(self, start: int = 0, stop: int | None = None) -> str | None:
        """Return why rows ``start:stop`` cannot be trusted.

        Parameters
        ----------
        start : int, default 0
            First row.
        stop : int, optional
            End row (exclusive); default the last.

        Returns
        -------
        str or None
            A missing, truncated or unreadable chunk, or non-finite floating-point values;
            ``None`` when the rows can be trusted.
        """
        stop = (self.shape[0] if self.shape else 1) if stop is None else stop
        if stop <= start:
            return None
        if self.missing(start, stop):
            return "a chunk file is missing"
        if self.truncated(start, stop):
            return "a chunk file is truncated"
        try:
            values = self.read(start, stop)
        except Exception as exc:  # noqa: BLE001 - truncated or garbled chunk
            return f"a chunk cannot be read ({type(exc).__name__}: {_first_line(exc)})"
        if self.floating and not np.isfinite(values).all():
            return "it holds NaN or infinite values"
        return None


def _blosc_truncated(path: Path) -> bool:
    """Tell whether a blosc chunk file is shorter or longer than its header says.

    Blosc may decode a truncated buffer without an error, reading past its end, so a read
    alone does not reliably find one.
    """
    size = path.stat().st_size
    if size < _BLOSC_HEADER:
        return True
    with open(path, "rb") as fh:
        header = fh.read(_BLOSC_HEADER)
    return int.from_bytes(header[12:16], "little") != size


def describe_rows(start: int, stop: int) -> str:
    """Return rows ``start:stop`` in words (``sample 3``, ``samples 4–7``)."""
    return f"sample {start}" if stop - start == 1 else f"samples {start}–{stop - 1}"


def summarise(damage: list[tuple[str, int, int, str]], limit: int = 4) -> str:
    """Return damaged blocks as one line, the first ``limit`` named.

    Parameters
    ----------
    damage : list of tuple of (str, int, int, str)
        ``[(variable, start, stop, why), …]``.
    limit : int, default 4
        How many blocks to name; the rest are counted.

    Returns
    -------
    str
        The summary.
    """
    parts = [f"{var} of {describe_rows(a, b)} ({why})" for var, a, b, why in damage[:limit]]
    if len(damage) > limit:
        parts.append(f"and {len(damage) - limit} more blocks")
    return "; ".join(parts)
