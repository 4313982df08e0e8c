"""The zarr store of a pattern dataset or scan, written block by block and resumable.

Layout (xarray, zarr format 2, one chunk per block of samples):

* ``frames (sample, channel, y, x)`` float32 — U at the snapshot times;
* ``stopped_step (sample,)`` int64 — step of an early stop (homogeneous steady state), −1 if
  the run went to the end;
* ``done (sample,)`` bool — set only after the block's frames are written, so a crash leaves
  at most the blocks in flight undone;
* coordinates ``k``, ``f`` (float64), ``seed``, ``label`` (int64, −1 = unknown) on ``sample``,
  ``time`` and ``step`` on ``channel``;
* attributes: ``kind``, ``name``, ``classes`` (JSON list of class symbols), ``settings``
  (JSON of :class:`~rdlab.classify.pattern_runs.PatternRunSettings`), ``rdlab_version``.

Rerunning with the same table and settings continues where it stopped; a store holding a
different table or settings is refused. What a rerun or a reader trusts is verified
(:func:`check_blocks`): a block marked done whose chunks are missing, truncated or not finite
is re-simulated by a rerun and refused by readers (:func:`open_patterns`), naming the
variable and samples. The empty store is created under a temporary name and renamed into
place, so a kill never leaves a store without its metadata.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

import rdlab
from rdlab import store_check
from rdlab.atomic import atomic_folder
from rdlab.classify.pattern_runs import PatternRunSettings
from rdlab.errors import DataError, ParameterError


def _template(k, f, seed, label, settings: PatternRunSettings, classes: list[str],
              name: str, kind: str, block: int) -> xr.Dataset:
    n, c, s = len(k), settings.n_channels, settings.size
    steps = np.asarray(settings.snapshot_steps, dtype=np.int64)
    return xr.Dataset(
        {
            "frames": (("sample", "channel", "y", "x"),
                       da.zeros((n, c, s, s), dtype=np.float32, chunks=(block, c, s, s))),
            "stopped_step": ("sample", da.full(n, -1, dtype=np.int64, chunks=block)),
            "done": ("sample", da.zeros(n, dtype=bool, chunks=block)),
        },
        coords={
            "k": ("sample", np.asarray(k, dtype=np.float64)),
            "f": ("sample", np.asarray(f, dtype=np.float64)),
            "seed": ("sample", np.asarray(seed, dtype=np.int64)),
            "label": ("sample", np.asarray(label, dtype=np.int64)),
            "step": ("channel", steps),
            "time": ("channel", steps * settings.dt),
        },
        attrs={
            "kind": kind, "name": name, "classes": json.dumps(classes, ensure_ascii=False),
            "settings": json.dumps(settings.to_dict()), "block": block,
            "rdlab_version": rdlab.__version__,
        },
    )


KINDS = ("pattern-dataset", "scan")
#: Coordinates checked whole before a store is trusted.
_COORDS = ("k", "f", "seed", "label", "step", "time")


def _repair_hint(path: Path, ds: xr.Dataset | None = None) -> str:
    """Return how to get a good store back: the command that writes it."""
    attrs = ds.attrs if ds is not None else {}
    if attrs.get("kind") == "scan":
        command = "`rdlab classify scan`"
    elif attrs.get("name"):
        command = f"`rdlab classify dataset {attrs['name']}`"
    else:
        command = "the command that wrote it"
    return f"rerun {command} with the same options and --out {str(path)!r}"


def _open(path: Path) -> xr.Dataset:
    """Open an existing pattern store, refusing anything else with a :class:`DataError`."""
    ds = store_check.open_store(
        path, "pattern store",
        "remove it and rerun the command that wrote it (without its metadata the store "
        "cannot be repaired)")
    if ds.attrs.get("kind") not in KINDS or not {"frames", "done", "stopped_step"} <= set(
            ds.variables):
        raise DataError(f"{str(path)!r} is a zarr store but not a pattern store (written by "
                        "`rdlab classify dataset` or `rdlab classify scan`)")
    for name in _COORDS:
        why = store_check.ArrayCheck(path, name).problem()
        if why is not None:
            raise DataError(f"pattern store {str(path)!r} is damaged: its coordinate {name!r} "
                            f"cannot be trusted ({why}); remove it and rerun "
                            f"{_repair_hint(path, ds).removeprefix('rerun ')}")
    return ds


def is_store_folder(path: Path) -> bool:
    """Return whether ``path`` exists and is not an empty folder (something to open, not create).

    Parameters
    ----------
    path : Path
        The store path.

    Returns
    -------
    bool
        True when there is something to open.
    """
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def open_existing(path: str | Path, k, f, seed, settings: PatternRunSettings) -> xr.Dataset:
    """Open the store at ``path``, checking that it holds this table and these settings.

    Parameters
    ----------
    path : str or Path
        The store.
    k, f : array_like
        Kill and feed rates of the table.
    seed : array_like
        Seeds of the table.
    settings : PatternRunSettings
        The run settings.

    Returns
    -------
    xarray.Dataset
        The opened store (lazy).

    Raises
    ------
    DataError
        When ``path`` is not a pattern store, or its coordinates cannot be trusted.
    ParameterError
        When it holds a different table or different settings.
    """
    path = Path(path)
    ds = _open(path)
    same = (ds.attrs.get("settings") == json.dumps(settings.to_dict())
            and ds.sizes["sample"] == len(k)
            and np.array_equal(ds["k"].values, np.asarray(k, dtype=np.float64))
            and np.array_equal(ds["f"].values, np.asarray(f, dtype=np.float64))
            and np.array_equal(ds["seed"].values, np.asarray(seed, dtype=np.int64)))
    if not same:
        raise ParameterError(
            f"{path} holds a different table or different settings than this command "
            "asks for; remove it or choose another output path")
    return ds


def create(path: str | Path, k, f, seed, label, settings: PatternRunSettings,
           classes: list[str], name: str, kind: str = "pattern-dataset",
           block: int = 8) -> xr.Dataset:
    """Create the empty store at ``path`` whole or not at all.

    It is written under a unique temporary name beside ``path`` and renamed into place (a
    kill leaves no half store).

    Parameters
    ----------
    path : str or Path
        The store.
    k, f : array_like
        Kill and feed rates, one per sample.
    seed : array_like
        Seeds, one per sample.
    label : array_like of int
        Class labels as indices into ``classes`` (−1 for the points of a scan).
    settings : PatternRunSettings
        The run settings (stored as JSON).
    classes : list of str
        Class symbols.
    name : str
        Name of the dataset or scan.
    kind : {"pattern-dataset", "scan"}
        Kind of store.
    block : int, default 8
        Samples per chunk.

    Returns
    -------
    xarray.Dataset
        The opened store (lazy).
    """
    path = Path(path)
    tmpl = _template(k, f, seed, label, settings, classes, name, kind, block)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        shutil.rmtree(stale, ignore_errors=True)  # a killed creation (we hold the lock)
    with atomic_folder(path) as tmp:  # renamed onto nothing or an empty folder
        # every chunk is written, even one equal to the fill value, so that a missing chunk
        # file always means damage (zarr would read it back as the fill value)
        tmpl.to_zarr(tmp, mode="w", compute=False, consolidated=True, zarr_format=2,
                     write_empty_chunks=True)
        # the lazily-created arrays hold no chunks yet: write the fill values explicitly
        xr.Dataset({"done": tmpl["done"], "stopped_step": tmpl["stopped_step"]}).drop_vars(
            list(tmpl.coords), errors="ignore").to_zarr(tmp, mode="r+", zarr_format=2,
                                                        write_empty_chunks=True)
    return xr.open_zarr(path, consolidated=True)


def open_or_create(path: str | Path, k, f, seed, label, settings: PatternRunSettings,
                   classes: list[str], name: str, kind: str = "pattern-dataset",
                   block: int = 8) -> xr.Dataset:
    """Open the store at ``path`` (checking it holds this table and settings) or create it empty.

    Parameters
    ----------
    path : str or Path
        The store.
    k, f : array_like
        Kill and feed rates, one per sample.
    seed : array_like
        Seeds, one per sample.
    label : array_like of int
        Class labels as indices into ``classes`` (−1 for the points of a scan).
    settings : PatternRunSettings
        The run settings.
    classes : list of str
        Class symbols.
    name : str
        Name of the dataset or scan.
    kind : {"pattern-dataset", "scan"}
        Kind of store.
    block : int, default 8
        Samples per chunk.

    Returns
    -------
    xarray.Dataset
        The opened dataset (lazy).

    Raises
    ------
    DataError
        When ``path`` holds something that is not a pattern store.
    ParameterError
        When it holds a different table or different settings.
    """
    path = Path(path)
    if is_store_folder(path):
        return open_existing(path, k, f, seed, settings)
    return create(path, k, f, seed, label, settings, classes, name, kind, block)


def pending_blocks(ds: xr.Dataset) -> list[tuple[int, int]]:
    """Return the blocks not yet done, by their flags alone.

    See :func:`check_blocks` for what a resumed run trusts.

    Parameters
    ----------
    ds : xarray.Dataset
        The store.

    Returns
    -------
    list of tuple of int
        ``[(start, stop), …]``.
    """
    done = ds["done"].values
    block = int(ds.attrs["block"])
    n = done.size
    return [(a, min(a + block, n)) for a in range(0, n, block)
            if not done[a:min(a + block, n)].all()]


@dataclass
class BlockCheck:
    """The blocks of a store.

    Parameters
    ----------
    pending : list of tuple of int
        ``(start, stop)`` of the blocks to simulate (not done, or damaged).
    damaged : list of tuple
        The damaged ones among them, ``(variable, start, stop, why)``.
    """

    pending: list[tuple[int, int]] = field(default_factory=list)
    damaged: list[tuple[str, int, int, str]] = field(default_factory=list)


def check_blocks(path: str | Path, ds: xr.Dataset) -> BlockCheck:
    """Find which blocks are truly done.

    A block counts as done only when its ``done`` flags are readable and all set, and its
    ``frames`` and ``stopped_step`` chunks exist, decompress and (frames) are finite; every
    other block is pending, and a flagged one that fails is listed as damaged.

    Parameters
    ----------
    path : str or Path
        The store.
    ds : xarray.Dataset
        The opened store.

    Returns
    -------
    BlockCheck
        The pending and damaged blocks.

    Raises
    ------
    DataError
        When the frames are chunked otherwise than the store's attributes say.
    """
    path = Path(path)
    block = int(ds.attrs["block"])
    n = int(ds.sizes["sample"])
    checks = {name: store_check.ArrayCheck(path, name)
              for name in ("done", "frames", "stopped_step")}
    if checks["frames"].chunks[0] != min(block, n):
        raise DataError(f"pattern store {str(path)!r} is damaged: its frames are chunked by "
                        f"{checks['frames'].chunks[0]} samples, its attributes say {block}")
    result = BlockCheck()
    for a in range(0, n, block):
        b = min(a + block, n)
        if checks["done"].missing(a, b):  # all False: older stores have no such chunk
            result.pending.append((a, b))
            continue
        why = checks["done"].problem(a, b)
        if why is not None:
            result.pending.append((a, b))
            result.damaged.append(("done", a, b, why))
            continue
        if not checks["done"].read(a, b).all():
            result.pending.append((a, b))
            continue
        for name in ("frames", "stopped_step"):
            why = checks[name].problem(a, b)
            if why is not None:
                result.pending.append((a, b))
                result.damaged.append((name, a, b, why))
                break
    return result


def write_block(path: str | Path, start: int, frames: np.ndarray, stopped: np.ndarray) -> None:
    """Write one finished block: data first, then its ``done`` flags.

    Parameters
    ----------
    path : str or Path
        The store.
    start : int
        Index of the block's first sample.
    frames : numpy.ndarray
        ``(n, channel, y, x)`` float32.
    stopped : numpy.ndarray
        ``(n,)`` int64: the early-stop step of each sample, or −1.
    """
    stop = start + frames.shape[0]
    region = {"sample": slice(start, stop)}
    xr.Dataset({
        "frames": (("sample", "channel", "y", "x"), frames.astype(np.float32)),
        "stopped_step": ("sample", stopped.astype(np.int64)),
    }).to_zarr(path, region=region, zarr_format=2, write_empty_chunks=True)
    xr.Dataset({"done": ("sample", np.ones(stop - start, dtype=bool))}).to_zarr(
        path, region=region, zarr_format=2, write_empty_chunks=True)


def open_patterns(path: str | Path, require_complete: bool = True) -> xr.Dataset:
    """Open a pattern store for reading.

    Parameters
    ----------
    path : str or Path
        The store.
    require_complete : bool, default True
        Also refuse a store with unfinished blocks and verify every block (see
        :func:`check_blocks`): a damaged one is refused naming the variable and samples, so
        no reader ever sees a missing chunk as NaN frames.

    Returns
    -------
    xarray.Dataset
        The store (lazy).

    Raises
    ------
    DataError
        Naming the store, for a missing path, a file, a folder that is not a pattern store, a
        store with missing metadata, and (with ``require_complete``) an incomplete or
        damaged store.
    """
    path = Path(path)
    ds = _open(path)
    if require_complete:
        check = check_blocks(path, ds)
        if check.damaged:
            raise DataError(f"pattern store {str(path)!r} is damaged: "
                            f"{store_check.summarise(check.damaged)}; "
                            f"{_repair_hint(path, ds)} to re-simulate them")
        if check.pending:
            missing = sum(b - a for a, b in check.pending)
            raise DataError(f"pattern store {str(path)!r} is incomplete ({missing} of "
                            f"{ds.sizes['sample']} samples missing); {_repair_hint(path, ds)} "
                            "to finish it")
    return ds


def class_list(ds: xr.Dataset) -> list[str]:
    """Return the class symbols stored with a pattern dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        The store.

    Returns
    -------
    list of str
        The class symbols, in label order.
    """
    return list(json.loads(ds.attrs["classes"]))
