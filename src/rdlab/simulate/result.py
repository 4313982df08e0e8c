"""Simulation results as xarray datasets with dims ``sample, time, species, y, x``."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

import rdlab
from rdlab.system import System

#: Name of the concentration variable in every trajectory dataset.
CONCENTRATION = "concentration"


def trajectory_dataset(system: System, snapshots: np.ndarray, times: np.ndarray,
                       steps: np.ndarray | None = None, config: dict | None = None,
                       seed: int | None = None) -> xr.Dataset:
    """Wrap ``snapshots`` of shape ``(time, batch, species, *spatial)`` as a dataset.

    Parameters
    ----------
    system : System
        The system run.
    snapshots : numpy.ndarray
        Shape ``(time, batch, species, *spatial)``.
    times : numpy.ndarray
        Model time of each snapshot.
    steps : numpy.ndarray, optional
        Step of each snapshot.
    config : dict, optional
        The run's configuration, stored as JSON.
    seed : int, optional
        The run's seed (stored as −1 when ``None``).

    Returns
    -------
    xarray.Dataset
        The variable ``concentration`` of dims ``sample, time, species[, y, x]``.
        Coordinates: ``time`` (model time units), ``step`` (on ``time``, when given),
        ``species``, ``y``/``x`` (cell centres in length units), and on ``sample`` the flow
        ``f`` plus every swept parameter. Attributes: the full config (JSON), the system,
        seed and rdlab version.
    """
    data = np.moveaxis(snapshots, 1, 0)  # (sample, time, species, ...)
    dims = ["sample", "time", "species"]
    coords: dict = {
        "sample": np.arange(system.batch_size),
        "time": np.asarray(times, dtype=float),
        "species": list(system.network.species),
    }
    if system.grid is not None:
        dims += ["y", "x"]
        coords["y"] = (np.arange(system.grid.ny) + 0.5) * system.grid.dx
        coords["x"] = (np.arange(system.grid.nx) + 0.5) * system.grid.dx
    if steps is not None:
        coords["step"] = ("time", np.asarray(steps, dtype=np.int64))
    coords["f"] = ("sample", system.flow)
    for name, values in system.coords.items():
        coords[name] = ("sample", np.asarray(values, dtype=float))
    ds = xr.Dataset({CONCENTRATION: (dims, data)}, coords=coords)
    ds[CONCENTRATION].attrs["units"] = "arbitrary concentration units"
    ds["time"].attrs["units"] = "model time units"
    ds.attrs["rdlab_version"] = rdlab.__version__
    ds.attrs["seed"] = -1 if seed is None else int(seed)
    ds.attrs["config"] = json.dumps(config or {}, default=_json_default)
    ds.attrs["system"] = json.dumps(system.describe(), default=_json_default)
    return ds


def _json_default(obj):
    """Return NumPy values as plain data for JSON, anything else as text."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
