"""How the system *evolves*: engines behind one front door, trackers for what happens in a run.

The engines are fast, torch, the numpy reference and ode.

The front door (:func:`simulate`, which needs xarray) is imported on first use, so that the
registry (:mod:`rdlab.simulate.engines`) is cheap to read, e.g. for the CLI's help.
"""

import sys
import types

from rdlab.simulate.engines import (
    Capabilities,
    Engine,
    available_engines,
    get_engine,
    register_engine,
)
from rdlab.simulate.trackers import (
    CallbackTracker,
    ProgressBar,
    RunawayGuard,
    RunView,
    Storage,
    Tracker,
)

__all__ = ["ENGINES", "CallbackTracker", "Capabilities", "Engine", "ProgressBar",
           "RunView", "RunawayGuard", "Storage", "Tracker", "available_engines", "get_engine",
           "register_engine", "simulate", "snapshot_schedule"]

_FROM_API = ("ENGINES", "simulate", "snapshot_schedule")


def __getattr__(name: str):
    """Import the front door's names (:mod:`rdlab.simulate.api`) on first use."""
    if name in _FROM_API:
        from rdlab.simulate import api

        return getattr(api, name)
    raise AttributeError(f"module 'rdlab.simulate' has no attribute {name!r}")


class _FrontDoorModule(types.ModuleType):
    """The package, callable as its front door.

    ``rdlab.simulate(...)`` is ``rdlab.simulate.simulate(...)``, so
    ``import rdlab; rdlab.simulate(system, x0, ...)`` works.
    """

    def __call__(self, *args, **kwargs):
        """Call :func:`rdlab.simulate.simulate`."""
        return __getattr__("simulate")(*args, **kwargs)


sys.modules[__name__].__class__ = _FrontDoorModule
