"""How the system *evolves*: engines (fast, torch, numpy reference, ode) behind one front door,
with trackers for everything that happens during a run.

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
    if name in _FROM_API:
        from rdlab.simulate import api

        return getattr(api, name)
    raise AttributeError(f"module 'rdlab.simulate' has no attribute {name!r}")


class _FrontDoorModule(types.ModuleType):
    """``rdlab.simulate(...)`` is ``rdlab.simulate.simulate(...)``: the package is callable
    as its front door, so ``import rdlab; rdlab.simulate(system, x0, ...)`` works.
    """

    def __call__(self, *args, **kwargs):
        return __getattr__("simulate")(*args, **kwargs)


sys.modules[__name__].__class__ = _FrontDoorModule
