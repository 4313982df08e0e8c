"""The layer order of docs/architecture.md, enforced by parsing every import.

Data flows one way: infrastructure → chemistry → system → simulate → viz → the jobs →
the commands. A module may import only from lower layers (or its own package); the four
jobs never import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rdlab

SRC = Path(rdlab.__file__).parent

#: Top-level module or package of rdlab → its layer (lower numbers are lower layers).
LAYERS: dict[str, int] = {
    "errors": 0, "lazy_exports": 0, "registry": 1,
    "checks": 1, "atomic": 1, "output_lock": 2, "settings": 2, "store_check": 1,
    "run_folder": 3, "training_loop": 3, "dask_cluster": 3, "heap_settings": 1,
    "torch_determinism": 1,
    "chemistry": 4,
    "system": 5, "smoothing": 5, "initial": 6,
    "simulate": 7,
    "viz": 8,
    # the four jobs, side by side
    "simulate_job": 9, "classify": 9, "design": 9, "discover": 9,
    "demo": 10,
    "cli": 11,  # one module per job: rdlab simulate | classify … | design | discover | demo
    "__init__": 12,  # the top package names public things from every layer (lazily)
}
#: Units that form one job together (they may import each other).
JOBS = {"simulate_job": "simulate_job", "classify": "classify", "design": "design",
        "discover": "discover"}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, 'file:line') for every rdlab import."""
    found = []
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        here = _unit(module.removesuffix(".__init__")) or "__init__"  # rdlab itself
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "rdlab":
                    targets = [a.name for a in node.names]
                elif node.module.startswith("rdlab."):
                    targets = [_unit(node.module)]
            elif isinstance(node, ast.Import):
                targets = [_unit(a.name) for a in node.names if a.name.startswith("rdlab.")]
            where = f"{path.relative_to(SRC.parent)}:{node.lineno}" if targets else ""
            found += [(here, t, where) for t in targets if t and t != here]
    return found


def test_every_module_has_a_layer():
    units = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__")
             or (p.is_dir() and (p / "__init__.py").exists())}
    assert units - set(LAYERS) == set(), "give the new module a layer here and in the docs"


def _violations(imports) -> list[str]:
    return [f"{where}: {a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})"
            for a, b, where in imports
            if LAYERS[b] > LAYERS[a] or (LAYERS[b] == LAYERS[a]
                                         and JOBS.get(a, a) != JOBS.get(b, b))]


def test_imports_go_down_the_layers():
    bad = _violations(_imports())
    assert not bad, "\n".join(bad)


def test_the_rule_finds_upward_and_sideways_imports():
    rows = [("chemistry", "simulate", "x.py:1"), ("design", "discover", "y.py:2"),
            ("classify", "classify", "z.py:3"), ("design", "viz", "w.py:4")]
    assert len(_violations(rows)) == 2  # the first two; a job's own parts and viz are fine


def test_packages_export_their_public_names_lazily():
    """``import rdlab`` stays light; the public names resolve on first use, and
    ``rdlab.simulate`` is both the engines' package and the front door."""
    import subprocess
    import sys

    code = ("import sys, rdlab, rdlab.discover, rdlab.design, rdlab.classify, rdlab.simulate_job; "
            "print(sorted(m for m in ('torch', 'xarray', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"

    import rdlab.classify
    import rdlab.design
    import rdlab.discover
    import rdlab.simulate_job
    from rdlab.simulate.api import simulate

    for package in (rdlab, rdlab.discover, rdlab.design, rdlab.classify, rdlab.simulate_job):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    assert rdlab.ReactionDiscovery.__module__ == "rdlab.discover.estimator"
    assert callable(rdlab.simulate) and rdlab.simulate.simulate is simulate
