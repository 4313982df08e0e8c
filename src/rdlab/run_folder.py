"""A run folder: ``config.yaml`` (enough to rerun), ``metrics.json``, figures, movies and data.

Datasets are written to a temporary zarr store and renamed into place, so a crash never
leaves a half-written store under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import xarray as xr
import yaml


class RunFolder:
    """The output folder of one command."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict, name: str = "config.yaml") -> Path:
        path = self.file(name)
        path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        return path

    def write_metrics(self, metrics: dict, name: str = "metrics.json") -> Path:
        path = self.file(name)
        path.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
        return path

    def write_dataset(self, ds: xr.Dataset, name: str = "data.zarr") -> Path:
        """Write ``ds`` as a zarr store, one chunk per sample, atomically."""
        final = self.file(name)
        tmp = self.file(f".{name}.partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        encoding = {}
        for var in ds.data_vars:
            dims = ds[var].dims
            encoding[var] = {"chunks": tuple(1 if d == "sample" else ds.sizes[d] for d in dims)}
        # Zarr format 2: a stable specification that every zarr reader understands (format 3
        # has no settled encoding yet for fixed-width strings such as species names).
        ds.to_zarr(tmp, mode="w", encoding=encoding, consolidated=True, zarr_format=2)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final


def open_dataset(path: str | Path) -> xr.Dataset:
    """Open a dataset written by :meth:`RunFolder.write_dataset`."""
    return xr.open_zarr(path, consolidated=True)
