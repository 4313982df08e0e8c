"""Discover: reaction networks from concentration time series.

A CRNN with partial-parameter freezing, catalysis mode, choice of the number of reactions
and Arrhenius rates.
"""

from rdlab.lazy_exports import lazy_exports

_EXPORTS = {
    "ReactionDiscovery": "rdlab.discover.estimator",
    "Mechanism": "rdlab.discover.mechanism",
    "ArrheniusRates": "rdlab.discover.mechanism",
    "ReactionData": "rdlab.discover.data",
    "generate": "rdlab.discover.data",
    "load": "rdlab.discover.data_files",
    "save": "rdlab.discover.data_files",
    "example": "rdlab.discover.examples",
    "DiscoverSettings": "rdlab.discover.workflow",
    "run_discovery": "rdlab.discover.workflow",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
