"""Exceptions raised by rdlab. Each message names the offending value."""


class RdlabError(Exception):
    """Base class of every error rdlab raises on purpose."""


class NetworkError(RdlabError, ValueError):
    """Malformed reaction text, unknown species, bad stoichiometry."""


class ParameterError(RdlabError, ValueError):
    """A parameter of the wrong shape, sign or value (NaN, negative rate, ...)."""


class StabilityError(RdlabError, ValueError):
    """An explicit time step beyond the stability limit of the chosen stencil."""


class SimulationError(RdlabError, RuntimeError):
    """A run that produced NaN/Inf or ran away; names the step and the sample."""
