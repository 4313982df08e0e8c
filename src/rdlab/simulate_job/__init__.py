"""Simulate (the first job): a run's config, and one ``rdlab simulate`` run as a run folder.

The config is :class:`SimulationSpec` (``config.yaml`` ↔ System + initial state); the run
folder holds data, pictures and a movie.
"""

from rdlab.lazy_exports import lazy_exports

_EXPORTS = {
    "SimulationSpec": "rdlab.simulate_job.spec",
    "parse_grid": "rdlab.simulate_job.spec",
    "parse_values": "rdlab.simulate_job.spec",
    "run_simulation": "rdlab.simulate_job.run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
