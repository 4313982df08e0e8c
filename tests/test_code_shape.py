"""House rules the code itself can be held to: short functions, one docstring style."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "rdlab"
#: Generated-source builders: their length is the kernel text they emit.
CODE_GENERATORS = {"simulate/fast_codegen.py", "simulate/adjoint_codegen.py"}
MAX_LINES = 80


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Count a function's lines from its signature to its end, without its docstring."""
    total = node.end_lineno - node.lineno + 1
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        total -= body[0].end_lineno - body[0].lineno + 1
    return total


def _long_functions() -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in CODE_GENERATORS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _code_lines(node)
                if n > MAX_LINES:
                    out.append(f"{rel}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_is_longer_than_80_lines_outside_the_code_generators():
    assert not _long_functions(), "\n".join(_long_functions())


def test_the_rule_counts_code_not_docstrings():
    src = "def f():\n    '''Doc.\n\n    More.\n    '''\n" + "    x = 1\n" * 80
    node = ast.parse(src).body[0]
    assert _code_lines(node) == 81  # the signature and 80 statements
    assert _code_lines(ast.parse("def g():\n    return 1\n").body[0]) == 2


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_docstrings_follow_numpydoc():
    """Every module, class and public function of the package passes ruff's pydocstyle
    rules with the numpy convention (the API reference is built with the numpy parser)."""
    result = subprocess.run(["ruff", "check", "--no-cache", "--select", "D", "--quiet",
                             str(SRC)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]


def _private_reach_ins() -> list[str]:
    """List imports of another module's private names, and ``module._name`` uses of an
    imported rdlab module."""
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        tree = ast.parse(path.read_text(), filename=rel)
        modules = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rdlab"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        out.append(f"{rel}:{node.lineno} imports {node.module}.{alias.name}")
                    modules.add(alias.asname or alias.name)  # may be a module
            elif isinstance(node, ast.Import):
                modules.update(a.asname for a in node.names
                               if a.name.startswith("rdlab") and a.asname)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in modules and node.attr.startswith("_") \
                    and not node.attr.startswith("__"):
                out.append(f"{rel}:{node.lineno} uses {node.value.id}.{node.attr}")
    return out


def test_no_module_reaches_into_another_modules_private_names():
    assert not _private_reach_ins(), "\n".join(_private_reach_ins())
