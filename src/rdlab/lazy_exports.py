"""Public names of a package, imported on first use (PEP 562).

``import rdlab`` and ``import rdlab.discover`` stay cheap (no torch, xarray or numba until a
name that needs them is used), while ``from rdlab.discover import ReactionDiscovery`` and
``rdlab.System`` work as users expect.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``names`` map to the modules
    that define them (``{"ReactionDiscovery": "rdlab.discover.estimator"}``).
    """

    def __getattr__(name: str) -> object:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if module == f"{package}.{name}":  # a subpackage exported under its own name
            return importlib.import_module(module)
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        return sorted(names)

    return __getattr__, __dir__
