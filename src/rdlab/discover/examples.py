"""The mechanisms of the reaction-discovery paper (§4), plus a catalytic one it cannot express.

Rates are those of the paper and its reference code (see ``shared/reference``). Each example
is a :class:`~rdlab.discover.mechanism.Mechanism` in V form, written the way the paper writes
the reaction (the printed tables use the normalised form, see
:meth:`Mechanism.normalised`).

Every example is one :class:`ExampleEntry` in :data:`EXAMPLES` (name, mechanism builder,
description, catalytic flag, temperature range); :func:`example`, ``rdlab discover
--example`` (its help and its unknown-example error) and the tests read it, so adding an
example is one entry here (or :func:`register_example` at run time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rdlab.chemistry.kinetics import GAS_CONSTANT
from rdlab.discover.mechanism import ArrheniusRates, Mechanism
from rdlab.errors import ParameterError
from rdlab.registry import Registry

__all__ = ["EXAMPLES", "Example", "ExampleEntry", "example", "example_help", "register_example"]


@dataclass(frozen=True)
class Example:
    """A named example: the true mechanism and how its data are made.

    Parameters
    ----------
    name : str
        The example's name.
    mechanism : Mechanism
        The true mechanism.
    description : str
        One line of text.
    temperature_range : tuple of float or None, optional
        ``(low, high)`` in K for Arrhenius examples (one uniform temperature per initial
        condition), else ``None``.
    catalytic : bool, default False
        Fit in catalysis mode (orders learned separately from stoichiometry).
    """

    name: str
    mechanism: Mechanism
    description: str
    temperature_range: tuple[float, float] | None = None
    catalytic: bool = False

    @property
    def n_reactions(self) -> int:
        """The number of reactions to propose (the true one)."""
        return self.mechanism.n_reactions


@dataclass(frozen=True)
class ExampleEntry:
    """One registered example; calling the entry builds the :class:`Example`.

    Parameters
    ----------
    name : str
        The example's name.
    build : callable
        Builder of its true mechanism (called afresh for every :class:`Example`, so no two
        runs share arrays).
    description : str
        One line of text.
    temperature_range : tuple of float or None, optional
        ``(low, high)`` in K, or ``None``.
    catalytic : bool, default False
        Fit in catalysis mode.
    """

    name: str
    build: Callable[[], Mechanism]
    description: str
    temperature_range: tuple[float, float] | None = None
    catalytic: bool = False

    def __call__(self) -> Example:
        """Build the :class:`Example`."""
        return Example(self.name, self.build(), self.description,
                       temperature_range=self.temperature_range, catalytic=self.catalytic)


def _stiff() -> Mechanism:
    return Mechanism.from_rows(
        ["F", "R", "P"],
        [({"F": -1, "R": 1}, 1.0, 1.0), ({"R": -1, "P": 1}, 1e3, 1e3)],
    )


def _michaelis_menten() -> Mechanism:
    return Mechanism.from_rows(
        ["E", "S", "ES", "P"],
        [({"E": -1, "S": -1, "ES": 1}, 1e6, 1e3), ({"ES": -1, "E": 1, "P": 1}, 10.0, 0.0)],
    )


def _michaelis_menten_arrhenius() -> Mechanism:
    rows = [({"E": -1, "S": -1, "ES": 1}, 0.0, 0.0), ({"ES": -1, "E": 1, "P": 1}, 0.0, 0.0)]
    arr = ArrheniusRates(prefactor_f=np.array([1.0, 1e3]), prefactor_r=np.array([4.0, 0.0]),
                         energy_f=np.array([1600.0, 2240.0]), energy_r=np.array([3680.0, 0.0]),
                         gas_constant=GAS_CONSTANT)
    kf, kr = arr.rates(300.0)
    base = Mechanism.from_rows(["E", "S", "ES", "P"], rows)
    return Mechanism(base.species, base.V, kf, kr, arrhenius=arr, reference_temperature=300.0)


def _hydrogen_oxidation() -> Mechanism:
    return Mechanism.from_rows(
        ["H2", "O2", "H2O", "H", "O", "OH"],
        [
            ({"H2": -1, "H": 2}, 2.0, 216.0),
            ({"O2": -1, "O": 2}, 1.0, 337.5),
            ({"H2O": -1, "H": 1, "OH": 1}, 1.0, 1400.0),
            ({"H2": -1, "O": -1, "H": 1, "OH": 1}, 1e3, 10800.0),
            ({"O2": -1, "H": -1, "O": 1, "OH": 1}, 1e3, 33750.0),
            # the paper's text prints this kf as k1+; the reference code uses 1e2
            ({"H2": -1, "O": -1, "H2O": 1}, 1e2, 0.7714285714285716),
        ],
    )


def _zeldovich() -> Mechanism:
    # species order chosen to reproduce the columns of Table 4.7
    return Mechanism.from_rows(
        ["N2", "O", "NO", "N", "O2", "OH", "H"],
        [
            ({"N2": -1, "O": -1, "NO": 1, "N": 1}, 5.019e5, 3.298e10),
            ({"N": -1, "O2": -1, "NO": 1, "O": 1}, 3.782e6, 3.679e3),
            ({"N": -1, "OH": -1, "NO": 1, "H": 1}, 6.111e10, 4.732e7),
        ],
    )


def _gri30() -> Mechanism:
    species = ["CH4", "H", "CH3", "H2", "CH2O", "OH", "CO", "C2H6", "C2H4", "C2H2", "O2",
               "CO2", "H2O", "HO2", "H2O2", "N2"]
    rows = [
        ({"CH4": -1, "H": -1, "CH3": 1, "H2": 1}, 5.088e0),
        ({"CH2O": -1, "H2": -1, "CH3": 1, "OH": 1}, 1.891e0),
        ({"CH2O": -1, "CO": 1, "H2": 1}, 2.607e0),
        ({"C2H6": -1, "C2H4": 1, "H2": 1}, 6.268e0),
        ({"C2H4": -1, "OH": -1, "CH3": 1, "CO": 1, "H2": 1}, 5.446e0),
        ({"CO": -2, "H2": -1, "C2H2": 1, "O2": 1}, 1.283e1),
        ({"CO": -1, "OH": -1, "H": -1, "CO2": 1, "H2": 1}, 1.349e0),
        ({"H": -1, "OH": -1, "H2O": 1}, 5.264e3),
        ({"H": -2, "OH": -2, "H2": 2, "O2": 1}, 3.268e1),
        ({"H2": -1, "H": 2}, 4.873e3),
        ({"H2": -1, "O2": -1, "HO2": 1, "H": 1}, 2.978e2),
        ({"H2O2": -1, "H": -1, "H2": 1, "HO2": 1}, 5.227e3),
    ]
    return Mechanism.from_rows(species, [(r, k, 0.0) for r, k in rows])


def _autocatalytic() -> Mechanism:
    orders = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    V = np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0]])
    return Mechanism(("X", "Y", "Z"), V, [2.0, 1.0], [0.0, 0.0], orders=orders)


#: The examples by name, in the order help texts list them.
EXAMPLES: Registry[ExampleEntry] = Registry("example", ParameterError, ((e.name, e) for e in (
    ExampleEntry("stiff", _stiff,
                 "Example 4.1: F ⇌ R (1, 1), R ⇌ P (1e3, 1e3); eigenvalues −2000, −1.5, 0"),
    ExampleEntry("michaelis-menten", _michaelis_menten,
                 "Example 4.2: E + S ⇌ ES (1e6, 1e3), ES → E + P (kcat 10, irreversible)"),
    ExampleEntry("michaelis-menten-arrhenius", _michaelis_menten_arrhenius,
                 "Example 4.2 with Arrhenius rates (A 1, 4, 1e3; Ea 1600, 3680, 2240 J/mol; "
                 f"R {GAS_CONSTANT} J/(mol K)), T ~ U[200, 400] K per initial condition",
                 temperature_range=(200.0, 400.0)),
    ExampleEntry("hydrogen-oxidation", _hydrogen_oxidation,
                 "Example 4.3: six reversible steps, rates 0.77 … 33750"),
    ExampleEntry("zeldovich", _zeldovich,
                 "Example 4.4: extended Zeldovich mechanism at T = 3000 K (eq. 4.9); species "
                 "order [N2, O, NO, N, O2, OH, H] as in Table 4.7"),
    ExampleEntry("gri30-simplified", _gri30,
                 "Example 4.5: simplified GRI-3.0, 12 irreversible reactions (eq. 4.10, "
                 "Table 4.8). The 15 reacting species plus inert N2 make the paper's 16"),
    ExampleEntry("autocatalytic", _autocatalytic,
                 "Beyond the paper: X + Y → 2Y (k 2), Y → Z (k 1). The first step is "
                 "catalysed by Y (order 1, net stoichiometry 0 in Y's reactant role), which "
                 "the V-matrix model cannot express", catalytic=True),
)))


def register_example(entry: ExampleEntry) -> ExampleEntry:
    """Add ``entry`` to :data:`EXAMPLES`.

    Parameters
    ----------
    entry : ExampleEntry
        The example.

    Returns
    -------
    ExampleEntry
        ``entry``.

    Raises
    ------
    ValueError
        When a different entry of the same name is registered.
    """
    return EXAMPLES.add(entry.name, entry)


def example(name: str) -> Example:
    """Return the example called ``name``, built afresh.

    Parameters
    ----------
    name : str
        One of :data:`EXAMPLES`.

    Returns
    -------
    Example
        The example.

    Raises
    ------
    ParameterError
        For an unknown name.
    """
    return EXAMPLES.lookup(name)()


def example_help() -> str:
    """Return the example names for help texts, in registry order.

    Returns
    -------
    str
        The names, comma-separated.
    """
    return ", ".join(EXAMPLES)
