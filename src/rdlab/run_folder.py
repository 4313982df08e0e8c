"""A run folder: ``config.yaml`` (enough to rerun), ``metrics.json``, figures, movies and data.

A one-shot command writes its run folder through :func:`staged_run_folder`: everything goes to
a hidden staging folder beside the target while the target's lock is held, and the staging
folder replaces the target only when the command has succeeded. So the folder always holds
one whole run — the config and the results it produced, or the previous run untouched —
and a failed command leaves no result files behind. Files and stores are written under
unique temporary names and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import xarray as xr
import yaml

from rdlab.atomic import atomic_folder, atomic_write_text
from rdlab.errors import OutputError
from rdlab.output_lock import check_not_in_store, hold

#: Written into every run folder rdlab creates; a folder with it may be replaced by a rerun.
MARKER = ".rdlab-run"
#: Files by which run folders written before the marker existed are recognised.
_KNOWN_RESULTS = ("config.yaml", "metrics.json", "report.json", "classification.zarr",
                  "index.html", "summary.json")
#: Files of a model folder (``rdlab classify train``, resumable, written in place): never replaced.
_MODEL_FILES = ("best.pt", "last.pt", "history.json")


class RunFolder:
    """The output folder of one command.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder; created (with its parents) if missing.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        """Return the path of the file ``name`` in the folder."""
        return self.path / name

    def write_config(self, config: dict, name: str = "config.yaml") -> Path:
        """Write ``config`` as YAML, atomically.

        Parameters
        ----------
        config : dict
            The run's configuration.
        name : str, default "config.yaml"
            The file name.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        return atomic_write_text(self.file(name),
                                 yaml.safe_dump(config, sort_keys=False, allow_unicode=True))

    def write_metrics(self, metrics: dict, name: str = "metrics.json") -> Path:
        """Write ``metrics`` as indented JSON, atomically.

        Parameters
        ----------
        metrics : dict
            The run's metrics (other values written as floats).
        name : str, default "metrics.json"
            The file name.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        return atomic_write_text(self.file(name),
                                 json.dumps(metrics, indent=2, default=float) + "\n")

    def write_dataset(self, ds: xr.Dataset, name: str = "data.zarr") -> Path:
        """Write ``ds`` as a zarr store (format 2, consolidated), one chunk per sample, atomically.

        Parameters
        ----------
        ds : xarray.Dataset
            The dataset.
        name : str, default "data.zarr"
            The store's folder name.

        Returns
        -------
        pathlib.Path
            The store written.
        """
        final = self.file(name)
        encoding = {}
        for var in ds.data_vars:
            dims = ds[var].dims
            encoding[var] = {"chunks": tuple(1 if d == "sample" else ds.sizes[d] for d in dims)}
        with atomic_folder(final) as tmp:
            # Zarr format 2: a stable specification that every zarr reader understands
            # (format 3 has no settled encoding yet for fixed-width strings such as species
            # names). Every chunk is written, so a missing chunk file always means damage.
            ds.to_zarr(tmp, mode="w", encoding=encoding, consolidated=True, zarr_format=2,
                       write_empty_chunks=True)
        return final


def open_dataset(path: str | Path) -> xr.Dataset:
    """Open a dataset written by :meth:`RunFolder.write_dataset`.

    Parameters
    ----------
    path : str or pathlib.Path
        The zarr store.

    Returns
    -------
    xarray.Dataset
        The dataset, opened lazily.
    """
    return xr.open_zarr(path, consolidated=True)


def is_replaceable(path: Path) -> bool:
    """Tell whether a rerun may replace ``path``.

    Parameters
    ----------
    path : pathlib.Path
        The output folder.

    Returns
    -------
    bool
        True when ``path`` is absent, an empty folder, or a run folder rdlab wrote (not a
        model folder).
    """
    if not path.exists():
        return True
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if names & set(_MODEL_FILES) and MARKER not in names:
        return False
    return not names or MARKER in names or bool(names & set(_KNOWN_RESULTS))


def _leftovers(final: Path, kind: str) -> list[Path]:
    """Return the hidden ``staging``/``replaced`` folders a run left beside ``final``."""
    return sorted(final.parent.glob(f".{final.name}.{kind}-*"))


def recover_run_folder(final: Path) -> None:
    """Tidy what a killed run left beside ``final``.

    The caller holds its lock, so nobody else uses these: staging folders are dropped; if
    ``final`` itself is missing because the kill fell between the two renames of
    :func:`_publish`, the previous run is put back.

    Parameters
    ----------
    final : pathlib.Path
        The run folder.
    """
    for staging in _leftovers(final, "staging"):
        shutil.rmtree(staging, ignore_errors=True)
    replaced = _leftovers(final, "replaced")
    if replaced and not final.exists():
        os.replace(replaced.pop(), final)
    for old in replaced:
        shutil.rmtree(old, ignore_errors=True)


def _publish(staging: Path, final: Path) -> None:
    """Mark ``staging`` as rdlab's and rename it to ``final``, replacing the previous run."""
    (staging / MARKER).write_text("written by rdlab; a rerun may replace this folder\n")
    if final.exists():
        old = final.with_name(f".{final.name}.replaced-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)


def check_apart(output: str | Path, inputs=()) -> None:
    """Refuse an output that is one of the command's inputs, lies inside one, or holds one.

    Replacing it would delete the input.

    Parameters
    ----------
    output : str or pathlib.Path
        The output folder.
    inputs : iterable of (str or pathlib.Path or None), default ()
        The command's inputs; ``None`` entries are skipped.

    Raises
    ------
    OutputError
        Naming both the output and the input.
    """
    out = Path(output).resolve()
    for given in inputs:
        if given is None:
            continue
        inp = Path(given).resolve()
        if out == inp:
            raise OutputError(f"--out {str(output)!r} is the input {str(given)!r}; choose "
                              "another output folder")
        if inp in out.parents:
            raise OutputError(f"--out {str(output)!r} lies inside the input {str(given)!r}; "
                              "choose an output folder outside it")
        if out in inp.parents:
            raise OutputError(f"--out {str(output)!r} holds the input {str(given)!r} "
                              "(replacing it would delete the input); choose another "
                              "output folder")


def check_run_folder(final: str | Path, inputs=()) -> Path:
    """Refuse, without creating anything, an output that cannot become a run folder.

    Parameters
    ----------
    final : str or pathlib.Path
        The output folder.
    inputs : iterable of (str or pathlib.Path or None), default ()
        The command's inputs.

    Returns
    -------
    pathlib.Path
        ``final``.

    Raises
    ------
    OutputError
        Naming the path, for an empty name, an existing file, a foreign non-empty folder or
        a model folder, one of the command's ``inputs`` (or inside or around one), a path
        inside a zarr store, or a path under a file or an unwritable folder.
    """
    final = Path(final)
    if str(final).strip() in ("", "."):
        raise OutputError(f"--out {str(final)!r} is not a folder name")
    check_apart(final, inputs)
    check_not_in_store(final)
    if final.exists() and not final.is_dir():
        raise OutputError(f"--out {str(final)!r} is an existing file, not a folder")
    if final.is_dir() and MARKER not in {p.name for p in final.iterdir()} \
            and {p.name for p in final.iterdir()} & set(_MODEL_FILES):
        raise OutputError(f"--out {str(final)!r} is a model folder of `rdlab classify train` "
                          "(replacing it would delete the model); choose another output "
                          "folder")
    if not is_replaceable(final):
        raise OutputError(f"--out {str(final)!r} is a non-empty folder that rdlab did not "
                          "write; choose a new or empty folder")
    parent = final.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {str(final)!r}: {str(parent)!r} is a file, not a "
                          "folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {str(final)!r}: the folder {str(parent)!r} is not "
                          "writable")
    return final


@contextlib.contextmanager
def staged_run_folder(final: str | Path, command: str | None = None, inputs=()
                      ) -> Iterator[RunFolder]:
    """Write a run folder in a hidden staging folder and publish it on success.

    Lock ``final``, yield a :class:`RunFolder` in a hidden staging folder beside it, and on
    success replace ``final`` with it; on any error (or interruption) remove the staging
    folder and leave ``final`` as it was. Code inside the block must write through the
    yielded folder (``folder.path``), never to ``final`` directly.

    Parameters
    ----------
    final : str or pathlib.Path
        The run folder.
    command : str, optional
        The command named in the lock's owner file.
    inputs : iterable of (str or pathlib.Path or None), default ()
        The command's inputs, which the output must stay apart from.

    Yields
    ------
    RunFolder
        The staging folder.

    Raises
    ------
    OutputError
        If ``final`` is locked by another process or cannot become a run folder
        (:func:`check_run_folder`), or the staging folder cannot be made.
    """
    final = Path(final)
    with hold(final, command):
        recover_run_folder(final)
        check_run_folder(final, inputs)
        staging = final.with_name(f".{final.name}.staging-{uuid.uuid4().hex[:8]}")
        try:
            staging.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write into {str(final.parent)!r}: "
                              f"{exc.strerror or exc}") from None
        try:
            yield RunFolder(staging)
            _publish(staging, final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
