"""Atomic file writes: write a uniquely named temporary file beside the target, then rename.

A reader (or a resumed run) sees the old file or the new one, never half of one, and two
writers never share a temporary name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary file beside ``path``; rename it to ``path`` on success."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are as readable as usual
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _read_umask() -> int:
    """Return the process's umask (by setting it and setting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Read once at import (reading it means setting it, which is not thread-safe later).
_UMASK = _read_umask()


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that killed atomic writes left in ``folder``.

    A process killed (SIGKILL, power loss) between creating its temporary file and the
    rename leaves ``.<name>.<random>.tmp`` behind; the target itself is intact. Call this
    only while holding the folder's lock (:mod:`rdlab.output_lock`): a live writer's
    temporary file looks the same.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder (nothing happens if it does not exist).

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.glob(".*.tmp")):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary path, then rename it to ``path``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write.
    write : callable
        ``write(tmp)`` writes the content to the temporary path ``tmp``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with _temporary_beside(path) as tmp:
        write(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write.
    text : str
        Its content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The file to write.
    data : bytes
        Its content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a fresh, uniquely named temporary folder beside ``path`` (e.g. for a zarr store).

    When the block succeeds it replaces ``path`` (an older folder there is removed first),
    when it fails it is removed. Stale temporaries of a killed writer are the caller's to
    tidy (it holds the output's lock): their names match ``.<name>.*.partial``.

    Parameters
    ----------
    path : str or pathlib.Path
        The folder to write.

    Yields
    ------
    pathlib.Path
        The temporary folder to fill.
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """Save ``obj`` with ``torch.save`` to ``path`` atomically.

    Parameters
    ----------
    obj : Any
        What to save (a state dict, a checkpoint).
    path : str or pathlib.Path
        The file to write.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
