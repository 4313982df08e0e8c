"""``python -m rdlab.cli``: the ``rdlab`` command."""

from rdlab.cli import app

app(prog_name="rdlab")
