"""How the system *evolves*: engines (fast, torch, numpy reference, ode) behind one front door,
with trackers for everything that happens during a run."""

from rdlab.simulate.api import ENGINES, simulate, snapshot_schedule
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
