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


class OutputError(RdlabError, OSError):
    """An output that cannot be written.

    Locked by another run, a file where a folder is expected, a read-only or missing root,
    a folder that is not rdlab's to replace.
    """


class DataError(RdlabError, ValueError):
    """An input file or store that cannot be read as what it claims to be.

    Damaged chunks, missing metadata, text in a number column, unsorted times.
    """
