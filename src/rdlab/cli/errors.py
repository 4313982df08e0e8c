"""How every ``rdlab`` command reports an :class:`~rdlab.errors.RdlabError`."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer

from rdlab.errors import OutputError


def fail(exc: Exception) -> NoReturn:
    """Print ``error: <message>`` in red on stderr and exit with status 2.

    Parameters
    ----------
    exc
        The error to report; its message names the bad value.

    Raises
    ------
    typer.Exit
        Always, with exit code 2.
    """
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def write_error(exc: OSError, out: Path | None) -> OutputError:
    """Turn an operating-system error while writing (e.g. a full disk) into an OutputError.

    Parameters
    ----------
    exc
        The error raised by the operating system.
    out
        The output folder, named when ``exc`` names no file.

    Returns
    -------
    OutputError
        ``cannot write '<file>': <reason>``.
    """
    return OutputError(f"cannot write {str(exc.filename or out)!r}: {exc.strerror or exc}")
