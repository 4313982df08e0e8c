"""Mass-action kinetics and temperature dependence — the rate law, defined once.

Array conventions: concentrations ``(batch, species, *spatial)``, rate constants
``(batch, reactions)``, rates ``(batch, reactions, *spatial)``. ``spatial`` is ``()`` for a
well-mixed reactor and ``(y, x)`` on a grid.
"""

from __future__ import annotations

import numpy as np

from rdlab.errors import ParameterError

#: Molar gas constant, J / (mol K).
GAS_CONSTANT = 8.314462618


def mass_action_rates(reactant_matrix: np.ndarray, conc: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Return the reaction rates ``v_r = k_r ∏_i X_i^{R_ir}`` (``0^0 = 1``).

    Parameters
    ----------
    reactant_matrix : numpy.ndarray
        ``R``, ``(n_species, n_reactions)``.
    conc : numpy.ndarray
        Concentrations ``(batch, n_species, *spatial)``.
    k : numpy.ndarray
        Rate constants ``(batch, n_reactions)``.

    Returns
    -------
    numpy.ndarray
        ``(batch, n_reactions, *spatial)``.
    """
    R = np.asarray(reactant_matrix)
    n_s, n_r = R.shape
    spatial = conc.shape[2:]
    k_b = k.reshape(k.shape + (1,) * len(spatial))
    v = np.empty((conc.shape[0], n_r, *spatial), dtype=np.result_type(conc, k))
    for r in range(n_r):
        term = k_b[:, r].copy()
        for i in range(n_s):
            for _ in range(int(R[i, r])):
                term = term * conc[:, i]
        v[:, r] = term
    return v


def mass_action_jacobian(
    reactant_matrix: np.ndarray, conc: np.ndarray, k: np.ndarray
) -> np.ndarray:
    """Return the rates' Jacobian ``∂v_r/∂X_i = k_r R_ir X_i^{R_ir − 1} ∏_{j≠i} X_j^{R_jr}``.

    Exact also at ``X_i = 0``.

    Parameters
    ----------
    reactant_matrix : numpy.ndarray
        ``R``, ``(n_species, n_reactions)``.
    conc : numpy.ndarray
        Concentrations ``(batch, n_species)``.
    k : numpy.ndarray
        Rate constants ``(batch, n_reactions)``.

    Returns
    -------
    numpy.ndarray
        ``(batch, n_reactions, n_species)``.
    """
    R = np.asarray(reactant_matrix)
    n_s, n_r = R.shape
    J = np.zeros((conc.shape[0], n_r, n_s), dtype=np.result_type(conc, k))
    for r in range(n_r):
        for i in range(n_s):
            if R[i, r] == 0:
                continue
            term = k[:, r] * R[i, r] * conc[:, i] ** (R[i, r] - 1)
            for j in range(n_s):
                if j != i and R[j, r]:
                    term = term * conc[:, j] ** R[j, r]
            J[:, r, i] = term
    return J


def arrhenius(
    prefactor: np.ndarray | float,
    activation_energy: np.ndarray | float,
    temperature: np.ndarray | float,
    gas_constant: float = GAS_CONSTANT,
) -> np.ndarray:
    """Return the Arrhenius rate constant ``k = A·exp(−Ea / (R T))``.

    Broadcasts like numpy.

    Parameters
    ----------
    prefactor : numpy.ndarray or float
        ``A``, in the units of ``k``; ≥ 0.
    activation_energy : numpy.ndarray or float
        ``Ea``, in J/mol.
    temperature : numpy.ndarray or float
        ``T``, in K; > 0.
    gas_constant : float, default GAS_CONSTANT
        ``R``, in J / (mol K).

    Returns
    -------
    numpy.ndarray
        ``k``.

    Raises
    ------
    ParameterError
        If an argument contains NaN, a temperature is not positive or a prefactor negative.
    """
    A = np.asarray(prefactor, dtype=float)
    Ea = np.asarray(activation_energy, dtype=float)
    T = np.asarray(temperature, dtype=float)
    for name, value in (("prefactor", A), ("activation_energy", Ea), ("temperature", T)):
        if np.any(np.isnan(value)):
            raise ParameterError(f"Arrhenius {name} contains NaN: {value}")
    if np.any(T <= 0):
        raise ParameterError(f"temperature must be positive (kelvin), got {T}")
    if np.any(A < 0):
        raise ParameterError(f"Arrhenius prefactor must be non-negative, got {A}")
    return A * np.exp(-Ea / (gas_constant * T))
