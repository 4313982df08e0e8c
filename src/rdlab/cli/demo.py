"""``rdlab demo``: the tour of the four jobs, written as an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rdlab.cli.errors import fail, write_error
from rdlab.errors import RdlabError


def demo(
    out: Annotated[Path, typer.Option(help="Report folder.")] = Path("runs/demo"),
    quick: Annotated[bool, typer.Option(help="Shorter runs (for tests).")] = False,
) -> None:
    """Take a tour of the four jobs, written as an HTML report.

    A Gray–Scott gallery of pattern classes, a 5-species dense network, a labelled (k, f)
    scan, a discovered mechanism and a designed pattern. The report folder changes only
    when the whole tour succeeds.
    """
    from rdlab.demo import run_demo

    try:
        report = run_demo(out, quick=quick)
    except RdlabError as exc:
        fail(exc)
    except OSError as exc:
        fail(write_error(exc, out))
    typer.echo(f"open {report}")
