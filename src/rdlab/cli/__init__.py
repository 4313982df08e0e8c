"""The ``rdlab`` command line: one module per job.

``rdlab simulate`` (:mod:`rdlab.cli.simulate`), ``rdlab classify …``
(:mod:`rdlab.cli.classify`, a group of seven subcommands), ``rdlab design``
(:mod:`rdlab.cli.design`), ``rdlab discover`` (:mod:`rdlab.cli.discover`) and ``rdlab demo``
(:mod:`rdlab.cli.demo`). Every command reports a refused input as one ``error:`` line and
exit status 2 (:func:`rdlab.cli.errors.fail`).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click
import typer
from typer.core import TyperGroup

from rdlab.cli import classify, demo, design, discover, simulate

#: The commands of ``rdlab --help``, in this order: the four jobs, then the tour.
JOBS = ("simulate", "classify", "design", "discover", "demo")


class JobsGroup(TyperGroup):
    """The ``rdlab`` group: lists the jobs in :data:`JOBS` order (hidden names last)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return the command names, the jobs first in :data:`JOBS` order.

        Parameters
        ----------
        ctx
            The group's context.

        Returns
        -------
        list of str
            Every command name, the jobs first.
        """
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: JOBS.index(n) if n in JOBS else len(JOBS))


app = typer.Typer(
    cls=JobsGroup,
    help="rdlab: reaction networks and reaction–diffusion systems — simulate, classify, "
    "design, discover.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _terminate(signum: int, frame: FrameType | None) -> None:
    """End the process as an exception does, with status 128 + the signal number."""
    raise SystemExit(128 + signum)


@app.callback()
def _on_start() -> None:
    """Make SIGTERM end rdlab the way Ctrl-C does."""
    # SIGTERM (kill, a batch system's time limit) ends rdlab like Ctrl-C does: by an
    # exception, so that staging folders, temporary stores and owner files are removed on
    # the way out instead of being left beside the outputs until the next run.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    simulate.simulate)
app.add_typer(classify.app)
app.command()(design.design)
app.command()(discover.discover)
app.command()(demo.demo)
classify.add_moved_commands(app)

__all__ = ["app"]
