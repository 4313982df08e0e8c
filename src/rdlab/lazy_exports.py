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
    """Return the module ``__getattr__`` and ``__dir__`` of a package with lazy exports.

    Parameters
    ----------
    package : str
        The package's dotted name.
    names : dict of str to str
        Public name → module that defines it
        (``{"ReactionDiscovery": "rdlab.discover.estimator"}``); a name mapped to
        ``f"{package}.{name}"`` is a subpackage exported under its own name.

    Returns
    -------
    tuple of (callable, callable)
        ``(__getattr__, __dir__)``; ``__getattr__`` raises ``AttributeError`` for other
        names.
    """

    def __getattr__(name: str) -> object:
        """Import and return the public ``name``."""
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if module == f"{package}.{name}":  # a subpackage exported under its own name
            return importlib.import_module(module)
        return getattr(importlib.import_module(module), name)

    def __dir__() -> list[str]:
        """List the public names."""
        return sorted(names)

    return __getattr__, __dir__
