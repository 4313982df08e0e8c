"""Concentration data on disk: a long CSV (:mod:`rdlab.discover.csv_data`) or a zarr store.

The zarr store holds ``concentration`` ``(sample, time, species)``, optional ``derivative``
(same dims) and ``temperature`` ``(sample,)``, the species names as the attribute
``species``, and the times as the ``time`` coordinate when all samples share them, else as
the variable ``times`` ``(sample, time)``. :func:`load` refuses anything it cannot read as
that — a file of another kind, a folder that is no zarr store, a store without its metadata
or with damaged chunks — with a :class:`~rdlab.errors.DataError` naming the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rdlab import store_check
from rdlab.atomic import atomic_folder
from rdlab.discover.csv_data import read_csv, write_csv
from rdlab.discover.data import ReactionData
from rdlab.errors import DataError, RdlabError

__all__ = ["load", "save"]

#: Files at the top of a zarr store (format 2: .zgroup/.zmetadata; format 3: zarr.json).
_ZARR_METADATA = (".zgroup", ".zmetadata", "zarr.json")
_DIMS = ("sample", "time", "species")


def save(data: ReactionData, path: str | Path) -> Path:
    """Write ``data`` to ``*.csv`` (one row per sample and time) or otherwise a zarr store.

    Written atomically (a unique temporary name, renamed into place).

    Parameters
    ----------
    data : ReactionData
        The data.
    path : str or Path
        The file or store.

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return write_csv(data, path)
    return _write_zarr(data, path)


def _write_zarr(data: ReactionData, path: Path) -> Path:
    """Write ``data`` as a zarr store at ``path`` (atomically)."""
    import xarray as xr

    ds = xr.Dataset(
        {"concentration": (_DIMS, data.concentrations)},
        attrs={"species": list(data.species)},  # names as an attribute: zarr v3 has no
    )                                           # portable string dtype
    if data.shared_times:
        ds = ds.assign_coords(time=data.times)
    else:
        ds["times"] = (("sample", "time"), np.asarray(data.times))
    if data.derivatives is not None:
        ds["derivative"] = (_DIMS, data.derivatives)
    if data.temperatures is not None:
        ds["temperature"] = (("sample",), data.temperatures)
    with atomic_folder(path) as tmp:
        ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True, write_empty_chunks=True)
    return path


def load(path: str | Path) -> ReactionData:
    """Read a CSV file (``*.csv``) or a zarr store (a folder) written by :func:`save` or by hand.

    See :mod:`rdlab.discover.csv_data` for the CSV columns.

    Parameters
    ----------
    path : str or Path
        The file or store.

    Returns
    -------
    ReactionData
        The data.

    Raises
    ------
    DataError
        When the path does not exist, is neither a CSV file nor a zarr store, or its
        contents are damaged or incomplete.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {str(path)!r} does not exist")
    if path.is_dir():
        return _read_zarr(path)
    if path.suffix.lower() == ".csv":
        return read_csv(path)
    kind = f"a {path.suffix} file" if path.suffix else "a file without the .csv suffix"
    raise DataError(f"{str(path)!r} is {kind}; rdlab discover reads concentrations from a "
                    ".csv file or a zarr store (a folder)")


def _read_zarr(path: Path) -> ReactionData:
    """Open the zarr store at ``path`` and read it, refusing what is not a readable store."""
    try:
        names = {p.name for p in path.iterdir()}
    except OSError as exc:
        raise DataError(f"cannot read the folder {str(path)!r}: {exc.strerror or exc}"
                        ) from None
    if not names & set(_ZARR_METADATA):
        raise DataError(f"{str(path)!r} is a folder but not a zarr store (no .zgroup, "
                        ".zmetadata or zarr.json metadata)")
    try:
        return _zarr_data(path)
    except DataError:
        raise
    except RdlabError as exc:
        hint = " (a damaged or missing chunk?)" if " is nan" in str(exc) else ""
        raise DataError(f"zarr store {str(path)!r}: {exc}{hint}") from None
    except Exception as exc:  # zarr/xarray raise many kinds for damaged stores
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"cannot read the zarr store {str(path)!r}: {type(exc).__name__}"
                        f"{': ' + first if first else ''}") from None


def _zarr_data(path: Path) -> ReactionData:
    """Read :class:`ReactionData` out of the zarr store at ``path``."""
    import xarray as xr

    ds = xr.open_zarr(path)
    for name in ds.variables:  # zarr reads a missing chunk as its fill value: check first
        if (path / str(name) / ".zarray").is_file():
            why = store_check.ArrayCheck(path, str(name)).problem()
            if why is not None:
                raise DataError(f"zarr store {str(path)!r} is damaged: {name}: {why}")
    if "concentration" not in ds:
        raise DataError(f"zarr store {str(path)!r} has no 'concentration' variable (its "
                        f"variables: {sorted(map(str, ds.data_vars))})")
    if set(ds["concentration"].dims) != set(_DIMS):
        raise DataError(f"zarr store {str(path)!r}: 'concentration' has dimensions "
                        f"{ds['concentration'].dims}, expected {_DIMS}")
    c = ds["concentration"].transpose(*_DIMS).values
    deriv = (ds["derivative"].transpose(*_DIMS).values if "derivative" in ds else None)
    T = ds["temperature"].values if "temperature" in ds else None
    species = ds.attrs.get("species")
    if species is None and "species" in ds.coords:
        species = [str(s) for s in ds["species"].values]
    if species is None:
        raise DataError(f"zarr store {str(path)!r} has no species names (attribute "
                        "'species')")
    if "times" in ds:
        times = ds["times"].transpose("sample", "time").values
    elif "time" in ds.coords:
        times = ds["time"].values
    else:
        raise DataError(f"zarr store {str(path)!r} has no times (a 'time' coordinate or a "
                        "'times' variable)")
    return ReactionData(tuple(species), times, c, deriv, T)
