"""How every ``rdlab`` command reports an :class:`~rdlab.errors.RdlabError`."""

import typer


def fail(exc: Exception) -> None:
    """Print ``error: <message>`` in red on stderr and exit with status 2."""
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)
