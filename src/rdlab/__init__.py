"""rdlab: reaction networks and reaction-diffusion systems.

The common names are here, imported on first use: ``rdlab.ReactionNetwork``,
``rdlab.System``, ``rdlab.Grid``, ``rdlab.simulate(system, x0, dt=..., n_steps=...)`` (the
one front door; ``rdlab.simulate`` is also the package of engines and trackers),
``rdlab.ReactionDiscovery`` and ``rdlab.DesignConfig``. Each job's own names are in its
package: :mod:`rdlab.classify`, :mod:`rdlab.design`, :mod:`rdlab.discover`.
"""

from rdlab.lazy_exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "ReactionNetwork": "rdlab.chemistry.network",
    "preset_network": "rdlab.chemistry.presets",
    "System": "rdlab.system",
    "Grid": "rdlab.system",
    "simulate": "rdlab.simulate",  # the package, callable as its front door
    "ReactionDiscovery": "rdlab.discover.estimator",
    "DesignConfig": "rdlab.design.config",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
