"""The contract every refused command keeps, checked in-process for speed.

A bad input must end with exit status 2, one message that names the culprit, no Python
traceback, and no file written or changed under the working folder (only what was there
before). :func:`assert_refused` checks all four; the ``bad_inputs`` tables of the
``test_bad_inputs_*`` modules feed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from rdlab.cli import app


@dataclass(frozen=True)
class Bad:
    """One bad invocation: ``args`` after ``rdlab``, a regex the error line must match, and
    files to create first (name → text or bytes) so the input exists."""

    id: str
    args: tuple[str, ...]
    match: str
    files: tuple[tuple[str, str | bytes], ...] = ()


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (lock bookkeeping aside) with its size and mtime."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith((".lock", ".owner")):
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
        elif p.is_dir():
            out[str(p.relative_to(root)) + "/"] = (0, 0)
    return out


def make_files(root: Path, files) -> None:
    for name, content in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def assert_refused(args, root: Path, match: str) -> str:
    """Run ``rdlab ARGS`` in ``root`` (the current folder) and check the refusal contract.
    Returns the error message."""
    before = snapshot(root)
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
    out = result.output  # stdout and stderr together
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), (
        f"rdlab {' '.join(map(str, args))} raised {type(exc).__name__}: {exc}\n{out}")
    assert "Traceback" not in out, out
    assert result.exit_code == 2, f"exit {result.exit_code}, expected 2:\n{out}"
    lines = [ln.strip(" │╭╰─") for ln in out.splitlines()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    if errors:  # rdlab's own refusals: exactly one line
        assert len(errors) == 1, out
        message = errors[0]
    else:  # refused by the option parser (click): its boxed "Invalid value ..." message
        message = " ".join(ln for ln in lines if ln)
        assert re.search(r"Invalid value|No such option|Missing|requires an argument|"
                         r"Got unexpected", message), out
    assert re.search(match, message, re.IGNORECASE), (
        f"message does not name the culprit ({match!r}):\n{message}")
    after = snapshot(root)
    assert after == before, (
        f"files changed: added {sorted(set(after) - set(before))}, removed "
        f"{sorted(set(before) - set(after))}, modified "
        f"{sorted(k for k in set(after) & set(before) if after[k] != before[k])}")
    return message
