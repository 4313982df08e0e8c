"""One ``rdlab simulate`` run: resolve the spec, simulate, write the run folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rdlab import viz
from rdlab.errors import ParameterError
from rdlab.run_folder import RunFolder, check_run_folder, staged_run_folder
from rdlab.simulate import simulate
from rdlab.simulate.result import CONCENTRATION
from rdlab.simulate_job.spec import SimulationSpec
from rdlab.viz import frames
from rdlab.viz.frames import FFmpegNotFoundError


def run_simulation(spec: SimulationSpec, out: str | Path, progress: bool = True) -> dict:
    """Simulate ``spec`` and write the run folder ``out``.

    Everything that can be checked is checked before the simulation starts and before
    anything is written: the spec (types, sizes, memory, time step), the output folder and
    the movie writer. The folder is then written through
    :func:`~rdlab.run_folder.staged_run_folder`, so ``out`` changes only when the run has
    succeeded (config and results together), is locked against a second writer, and a
    failed or interrupted run leaves the previous contents as they were.

    Parameters
    ----------
    spec : SimulationSpec
        What to simulate; resolved (and so completed) in place.
    out : str or pathlib.Path
        The run folder: config.yaml, data.zarr, pictures, movie, metrics.json.
    progress : bool, default True
        Show a progress bar.

    Returns
    -------
    dict
        The metrics written to metrics.json.

    Raises
    ------
    ParameterError
        For a spec that cannot run (see :meth:`SimulationSpec.resolve`).
    StabilityError
        If the time step is unstable for a stepping engine.
    OutputError
        If ``out`` cannot become a run folder or is locked by another run.
    FFmpegNotFoundError
        If an mp4 movie is asked for and ffmpeg is not found.
    SimulationError
        If the run blows up.
    """
    out = Path(out)
    check_run_folder(out)
    system, state0 = spec.resolve()
    if spec.engine != "ode":
        system.check_time_step(spec.dt)
    if system.grid is not None and spec.movie == "mp4" and not frames.ffmpeg_available():
        raise FFmpegNotFoundError(
            "--movie mp4 needs the ffmpeg executable, which was not found; use --movie gif "
            "(Pillow only) or --movie none")
    with staged_run_folder(out) as folder:
        return _run_into(spec, system, state0, folder, progress)


def snapshot_steps(steps: int, snapshots: int) -> np.ndarray:
    """Return evenly spaced snapshot steps from 0 to ``steps``, both ends included.

    Parameters
    ----------
    steps : int
        Number of steps of the run.
    snapshots : int
        Number of snapshots wanted, ≥ 2.

    Returns
    -------
    numpy.ndarray
        The steps, unique: at most ``steps + 1`` of them.

    Raises
    ------
    ParameterError
        If ``snapshots`` is below 2.
    """
    if snapshots < 2:
        raise ParameterError(f"snapshots must be at least 2, got {snapshots!r}")
    return np.unique(np.linspace(0, steps, min(snapshots, steps + 1)).round().astype(int))


def _run_into(spec: SimulationSpec, system, state0, folder: RunFolder, progress: bool) -> dict:
    """Simulate and write config, data, pictures and metrics into ``folder``."""
    folder.write_config(spec.to_dict())
    steps = snapshot_steps(int(spec.steps), int(spec.snapshots))
    t0 = time.perf_counter()
    ds = simulate(system, state0, dt=spec.dt, n_steps=spec.steps, snapshot_steps=steps,
                  engine=spec.engine, dtype=spec.dtype, seed=spec.seed, progress=progress,
                  config=spec.to_dict(), runaway_limit=spec.runaway_limit)
    wall = time.perf_counter() - t0
    folder.write_dataset(ds)
    cells = int(np.prod(system.grid.shape)) if system.grid is not None else 1
    metrics: dict = {
        "samples": system.batch_size,
        "steps": spec.steps,
        "snapshots": int(steps.size),
        "wall_seconds": wall,
        "cell_updates_per_second": cells * spec.steps * system.batch_size / max(wall, 1e-9),
        "final_mean": {s: float(ds[CONCENTRATION].isel(time=-1).sel(species=s).mean())
                       for s in system.network.species},
    }
    if system.grid is not None:
        metrics.update(_pictures(ds, system, folder, spec))
    else:
        metrics["figures"] = [viz.save_time_series(
            folder.file("time_series.png"), ds[CONCENTRATION].values, ds["time"].values,
            list(system.network.species), title=spec.name).name]
    folder.write_metrics(metrics)
    return metrics


def _pictures(ds, system, folder: RunFolder, spec: SimulationSpec) -> dict:
    """Write last_frame.png or montage.png, the movie, and PCA→RGB for > 3 species."""
    species = list(system.network.species)
    data = ds[CONCENTRATION].values  # (sample, time, species, y, x)
    last = data[:, -1]
    figures = []
    out: dict = {}
    show = _species_to_show(species)
    if system.batch_size == 1:
        figures.append(viz.save_png(folder.file("last_frame.png"), last[0],
                                    f"{spec.name}, t = {float(ds.time[-1]):g}",
                                    species_names=species, species_to_show=show))
    else:
        coords = {name: np.asarray(v) for name, v in system.coords.items()}
        figures.append(_montage(folder.file("montage.png"), last, coords, species, show))
    if spec.movie != "none":
        labels = [f"t = {t:g}" for t in ds.time.values]
        figures.append(viz.save_movie(folder.file(f"movie.{spec.movie}"), data[0], species,
                                      show, frame_labels=labels))
    if len(species) > 3:
        rgb, pca = viz.pca_rgb(data[0])
        share = float(np.sum(pca.explained_variance_ratio))
        figures.append(viz.save_png(folder.file("pca_rgb.png"), rgb[-1],
                                    f"PCA→RGB, explained variance {share:.1%}", kind="image"))
        out["pca_explained_variance_ratio"] = [float(v) for v in pca.explained_variance_ratio]
    out["figures"] = [Path(f).name for f in figures]
    return out


def _species_to_show(species: list[str]) -> str:
    """Return the species drawn in single-species pictures.

    PCA for more than 3 species, else V (or V1, Y) for Gray–Scott-like networks (the
    autocatalyst), else the first species.
    """
    if len(species) > 3:
        return "pca"
    for name in ("V", "V1", "Y"):
        if name in species:
            return name
    return species[0]


def _montage(path: Path, last: np.ndarray, coords: dict, species, show) -> Path:
    """Write the last frames of a sweep as a montage (a 2-D grid for two crossed sweeps)."""
    names = list(coords)
    if len(names) == 2:
        a, b = names
        va, vb = np.unique(coords[a]), np.unique(coords[b])
        if va.size * vb.size == last.shape[0]:
            return viz.save_sweep_montage(path, last, a, va, b, vb, species_names=species,
                                          species_to_show=show)
    labels = [", ".join(f"{n}={coords[n][i]:.4g}" for n in names) or f"sample {i}"
              for i in range(last.shape[0])]
    return viz.save_montage(path, last, labels, species_names=species, species_to_show=show)
