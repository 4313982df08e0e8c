"""How the system *evolves*: engines (fast, torch, numpy reference, ode) behind one front door."""

from rdlab.simulate.api import ENGINES, simulate, snapshot_schedule

__all__ = ["ENGINES", "simulate", "snapshot_schedule"]
