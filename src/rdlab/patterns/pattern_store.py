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
  (JSON of :class:`~rdlab.patterns.pattern_runs.PatternRunSettings`), ``rdlab_version``.

Rerunning with the same table and settings continues where it stopped; a store holding a
different table or settings is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr

import rdlab
from rdlab.errors import ParameterError
from rdlab.patterns.pattern_runs import PatternRunSettings


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


def open_or_create(path: str | Path, k, f, seed, label, settings: PatternRunSettings,
                   classes: list[str], name: str, kind: str = "pattern-dataset",
                   block: int = 8) -> xr.Dataset:
    """Open the store at ``path`` (checking it holds this table and settings) or create it
    empty. Returns the opened dataset (lazy)."""
    path = Path(path)
    if path.exists():
        ds = xr.open_zarr(path, consolidated=True)
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
    tmpl = _template(k, f, seed, label, settings, classes, name, kind, block)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpl.to_zarr(path, mode="w-", compute=False, consolidated=True, zarr_format=2)
    # the lazily-created arrays hold no chunks yet: write the fill values explicitly
    xr.Dataset({"done": tmpl["done"], "stopped_step": tmpl["stopped_step"]}).drop_vars(
        list(tmpl.coords), errors="ignore").to_zarr(path, mode="r+", zarr_format=2)
    return xr.open_zarr(path, consolidated=True)


def pending_blocks(ds: xr.Dataset) -> list[tuple[int, int]]:
    """``[(start, stop), …]`` of the blocks not yet done."""
    done = ds["done"].values
    block = int(ds.attrs["block"])
    n = done.size
    return [(a, min(a + block, n)) for a in range(0, n, block)
            if not done[a:min(a + block, n)].all()]


def write_block(path: str | Path, start: int, frames: np.ndarray, stopped: np.ndarray) -> None:
    """Write one finished block: data first, then its ``done`` flags."""
    stop = start + frames.shape[0]
    region = {"sample": slice(start, stop)}
    xr.Dataset({
        "frames": (("sample", "channel", "y", "x"), frames.astype(np.float32)),
        "stopped_step": ("sample", stopped.astype(np.int64)),
    }).to_zarr(path, region=region, zarr_format=2)
    xr.Dataset({"done": ("sample", np.ones(stop - start, dtype=bool))}).to_zarr(
        path, region=region, zarr_format=2)


def open_patterns(path: str | Path, require_complete: bool = True) -> xr.Dataset:
    """Open a pattern store; with ``require_complete`` refuse one with unfinished blocks."""
    path = Path(path)
    if not path.exists():
        raise ParameterError(f"pattern store {path} does not exist")
    ds = xr.open_zarr(path, consolidated=True)
    if require_complete and not bool(ds["done"].values.all()):
        missing = int((~ds["done"].values).sum())
        raise ParameterError(f"{path} is incomplete ({missing} of {ds.sizes['sample']} samples "
                             "missing); rerun the command that writes it to finish it")
    return ds


def class_list(ds: xr.Dataset) -> list[str]:
    """The class symbols stored with a pattern dataset."""
    return list(json.loads(ds.attrs["classes"]))
