"""A command group with a default subcommand (``rdlab classify SCAN MODEL`` runs ``label``)."""

from __future__ import annotations

import click
from typer.core import TyperGroup


class DefaultCommandGroup(TyperGroup):
    """A typer group that runs :attr:`default_command` when no subcommand is named.

    When the first argument is neither a subcommand name nor a help option, the default
    subcommand's name is put in front of the arguments, so ``GROUP ARGS…`` means
    ``GROUP DEFAULT ARGS…``. Subclasses set :attr:`default_command`.
    """

    #: Name of the subcommand run when the first argument names none.
    default_command: str = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Put the default subcommand's name in front of ``args`` when they name none.

        Parameters
        ----------
        ctx
            The group's context.
        args
            The arguments after the group's name.

        Returns
        -------
        list of str
            The arguments left for the subcommand, as :meth:`click.Group.parse_args`
            returns them.
        """
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)
