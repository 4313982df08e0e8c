"""The command line's layout: the four jobs and the demo at the top, the seven Classify
commands under ``rdlab classify`` (``label`` when none is named), and the old top-level
names kept, hidden, for one release.
"""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

from rdlab.cli import app
from rdlab.cli.classify import MOVED

runner = CliRunner()

#: The commands of ``rdlab --help``, in order.
TOP = ["simulate", "classify", "design", "discover", "demo"]
CLASSIFY = ["dataset", "scan", "train", "evaluate", "saliency", "label", "paper"]


def _visible(group: click.Group) -> list[str]:
    ctx = click.Context(group)
    return [n for n in group.list_commands(ctx) if not group.get_command(ctx, n).hidden]


def test_rdlab_help_shows_exactly_the_jobs_and_the_demo():
    root = typer.main.get_command(app)
    assert _visible(root) == TOP
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = [line.split()[1] for line in result.output.splitlines()
              if line.startswith("│ ") and len(line.split()) > 1
              and line.split()[1] in {*TOP, *MOVED}]
    assert listed == TOP


def test_classify_help_lists_its_commands_and_names_the_default():
    group = typer.main.get_command(app).commands["classify"]
    assert _visible(group) == CLASSIFY
    result = runner.invoke(app, ["classify", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "default subcommand is label" in text
    assert all(f"│ {name} " in result.output for name in CLASSIFY)


@pytest.mark.parametrize("command", ["label", "evaluate", "saliency"])
def test_model_arguments_say_bundled_is_accepted(command):
    result = runner.invoke(app, ["classify", command, "--help"])
    assert result.exit_code == 0
    assert "'bundled'" in " ".join(result.output.split())


@pytest.mark.parametrize("args", [
    ["nope.zarr", "bundled", "--out", "c"],            # a scan that does not exist
    ["--out", "c", "nope.zarr", "bundled"],            # options first
    ["nope.zarr"],                                     # MODEL missing (the parser's refusal)
])
def test_classify_without_a_subcommand_name_is_label(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    implicit = runner.invoke(app, ["classify", *args])
    explicit = runner.invoke(app, ["classify", "label", *args])
    assert implicit.exit_code == explicit.exit_code == 2
    assert implicit.output == explicit.output
    assert "nope.zarr" in implicit.output or "Missing argument" in implicit.output
    assert [p for p in tmp_path.iterdir() if not p.name.endswith((".lock", ".owner"))] == []


#: A quick refusal of each moved command (exit 2 before anything is simulated or trained).
REFUSED = {
    "dataset": ["training", "--out", "x.zarr"],
    "scan": ["--k", "0.04:0.06:3", "--out", "s.zarr"],
    "train": ["nope.zarr", "val.zarr", "--out", "m"],
    "evaluate": ["nope.pt", "d.zarr", "--out", "e"],
    "saliency": ["nope.pt", "d.zarr", "--out", "s"],
    "paper": ["--mode", "fancy", "--out", "p"],
}


def test_old_top_level_names_note_the_new_one_and_run_the_same_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert set(REFUSED) == set(MOVED)
    for name, args in REFUSED.items():
        old = runner.invoke(app, [name, *args])
        new = runner.invoke(app, ["classify", name, *args])
        note = f"note: 'rdlab {name}' is now 'rdlab classify {name}'\n"
        assert old.exit_code == new.exit_code == 2, (name, old.output)
        assert old.stderr == note + new.stderr, name
        assert old.stdout == new.stdout, name
        assert new.stderr.startswith("error: ") and "note:" not in new.output
