"""Design: differentiable inverse design of reaction–diffusion networks (the Dense-RDN paper).

A dense reaction network, its diffusion coefficients, flow drive and a generator of initial
conditions are optimised together against a behaviour written as a loss.
"""

from rdlab.lazy_exports import lazy_exports

_EXPORTS = {
    "DesignConfig": "rdlab.design.config",
    "load_config": "rdlab.design.config",
    "bundled_configs": "rdlab.design.config",
    "run_design": "rdlab.design.run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
