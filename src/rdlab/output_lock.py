"""One writer per output: an exclusive lock (``filelock``) on every run folder or store.

The lock lives beside the output, ``<parent>/.<name>.lock``, so that a folder can be swapped
in whole while its lock is held. Who holds it (pid, host, command, start time) is written to
``<parent>/.<name>.owner`` once the lock is taken, and named in the error a second writer
gets. The operating system releases the lock when its process dies, even on ``kill -9``: a
stale owner file never blocks anyone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from rdlab.errors import OutputError


def lock_path(output: str | Path) -> Path:
    """Return the lock file of an output: ``<parent>/.<name>.lock``.

    Parameters
    ----------
    output : str or pathlib.Path
        A run folder or store.

    Returns
    -------
    pathlib.Path
        The lock file beside it.
    """
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


def _owner_path(output: Path) -> Path:
    """Return the owner file of an output: ``<parent>/.<name>.owner``."""
    return output.with_name(f".{output.name}.owner")


def _describe_owner(output: Path) -> str:
    """Describe the process holding an output's lock, from its owner file."""
    try:
        info = json.loads(_owner_path(output).read_text())
        return (f"process {info['pid']} on {info['host']} ({info['command']!r}, started "
                f"{info['started']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


#: Files that mark a folder as a zarr store (format 2 or 3).
_ZARR_MARKS = (".zgroup", ".zarray", "zarr.json")


def check_not_in_store(output: str | Path) -> None:
    """Refuse an output inside an existing zarr store.

    It would become part of the store's tree.

    Parameters
    ----------
    output : str or pathlib.Path
        The output path.

    Raises
    ------
    OutputError
        If a folder above ``output`` is a zarr store, naming the store.
    """
    for parent in Path(output).resolve().parents:
        if any((parent / mark).is_file() for mark in _ZARR_MARKS):
            raise OutputError(f"cannot write {str(output)!r}: it lies inside the zarr store "
                              f"{str(parent)!r}; choose an output outside it")


def check_output_parent(output: str | Path) -> Path:
    """Create ``output``'s parent folder.

    Parameters
    ----------
    output : str or pathlib.Path
        The output path.

    Returns
    -------
    pathlib.Path
        ``output``.

    Raises
    ------
    OutputError
        Naming why not: not a folder name, inside a zarr store, under a file, or a parent
        that cannot be created or written.
    """
    output = Path(output)
    if str(output).strip() in ("", "."):
        raise OutputError(f"output path {str(output)!r} is not a folder name")
    check_not_in_store(output)
    parent = output.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write {str(output)!r}: {str(parent)!r} is a file, not a "
                          "folder") from None
    except OSError as exc:
        raise OutputError(f"cannot create the folder {str(parent)!r} for {str(output)!r}: "
                          f"{exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {str(output)!r}: the folder {str(parent)!r} is not "
                          "writable")
    return output


@contextlib.contextmanager
def hold(output: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock on ``output`` (a folder or store) for the block.

    Re-entrant within one process (a command that locks its folder may call code that locks
    it again).

    Parameters
    ----------
    output : str or pathlib.Path
        The folder or store.
    command : str, optional
        The command named in the owner file (default: this process's command line).

    Yields
    ------
    pathlib.Path
        ``output``.

    Raises
    ------
    OutputError
        At once (no waiting) when another process holds the lock, naming that process; or
        when the lock cannot be made, or the parent folder cannot be written.
    """
    output = check_output_parent(output)
    lock = FileLock(lock_path(output), timeout=0, is_singleton=True)
    try:
        lock.acquire()
    except Timeout:
        try:  # filelock also times out when the lock file cannot be made at all
            os.close(os.open(lock_path(output), os.O_RDWR | os.O_CREAT, 0o644))
        except OSError as exc:
            raise OutputError(f"cannot lock {str(output)!r}: {exc.strerror or exc}") from None
        raise OutputError(f"{str(output)!r} is being written by {_describe_owner(output)}; "
                          "wait for it to finish or choose another output") from None
    except OSError as exc:
        raise OutputError(f"cannot lock {str(output)!r}: {exc.strerror or exc}") from None
    owner = _owner_path(output)
    first = lock.lock_counter == 1
    try:
        if first:
            with contextlib.suppress(OSError):
                owner.write_text(json.dumps({
                    "pid": os.getpid(), "host": socket.gethostname(),
                    "command": command or " ".join(Path(a).name if i == 0 else a
                                                   for i, a in enumerate(sys.argv)),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S")}))
        yield output
    finally:
        if first:
            with contextlib.suppress(OSError):
                owner.unlink()
        lock.release()
