"""Which rate constants (or combinations) a data set determines.

At a least-squares optimum with residuals of noise σ and Jacobian ``J = ∂r/∂θ`` (``θ = ln k``),
the covariance of ``θ`` is ``σ² (JᵀJ)⁻¹``. With the SVD ``J = U diag(s) Wᵀ`` the combination
``w_k · θ`` along each right singular vector has the standard error ``σ / s_k``.

Threshold rule: singular direction ``k`` is **identifiable** when

* ``σ / s_k ≤ max_standard_error`` (default :data:`MAX_STANDARD_ERROR`, 0.02: the
  combination is known to 2 % in ``k``, so that a fit stays within 5 % of the truth at 2.5
  standard errors),
  with ``σ = max(noise, NOISE_FLOOR)`` (noise-free data are taken at the solver's precision,
  so that a direction the data only see at the 1e-10 level is not called measured), and
* ``s_k ≥ 1e-10 · s_max`` (numerical rank).

A reaction that equilibrates much faster than the sampling leaves only ``ln kf − ln kr`` in
the data: ``ln kf + ln kr`` is a singular direction with ``s ≈ 0``. Readable names are found by
projecting onto the identifiable subspace: a single parameter (``kf_2``), a ratio
(``kf_3/kr_3``) or a product (``kf_1*kr_2``) lies in it when its unit vector does to 1e-3;
what remains is reported as the singular vector itself (``kf_1^0.71 kr_1^-0.71``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MAX_STANDARD_ERROR", "Identifiability", "analyse"]

#: Largest standard error of ``ln k`` of a combination called identifiable.
MAX_STANDARD_ERROR = 0.02
#: Relative numerical rank cut of the singular values.
_RANK_CUT = 1e-10
#: A unit vector lies in the identifiable subspace when its projection is this close to 1.
_IN_SUBSPACE = 1e-3


@dataclass
class Identifiability:
    """What the data determine, in log-rate space.

    Attributes
    ----------
    names : list of str
        Parameter names (``kf_1``, ``kr_1``, ``Ea_kf_1`` …).
    singular_values : numpy.ndarray
        ``(p,)`` of the weighted Jacobian, descending.
    identifiable : numpy.ndarray
        ``(p,)`` bool: each parameter alone is identifiable.
    standard_errors : numpy.ndarray
        ``(p,)`` standard error of each ``ln`` parameter (``inf`` when not identifiable).
    combinations : list of dict
        Identifiable combinations: ``{"name", "coefficients" {name: c}, "value",
        "standard_error"}``; ``value`` is ``exp(Σ c θ)`` (a rate, ratio or product).
    unidentifiable : list of dict
        The singular directions the data do not determine: ``{"coefficients",
        "standard_error"}``.
    sigma : float
        The noise level used.
    """

    names: list[str]
    singular_values: np.ndarray
    identifiable: np.ndarray
    standard_errors: np.ndarray
    combinations: list[dict] = field(default_factory=list)
    unidentifiable: list[dict] = field(default_factory=list)
    sigma: float = 0.0

    @property
    def rank(self) -> int:
        """Number of identifiable directions."""
        return len(self.singular_values) - len(self.unidentifiable)

    def to_dict(self) -> dict:
        """Return a JSON-ready dict.

        Returns
        -------
        dict
            ``rank``, ``n_parameters``, ``identifiable`` (names), ``standard_errors``,
            ``combinations``, ``unidentifiable``, ``sigma``.
        """
        se = {n: (float(e) if np.isfinite(e) else None)
              for n, e in zip(self.names, self.standard_errors)}
        return {"rank": self.rank, "n_parameters": len(self.names),
                "identifiable": [n for n, ok in zip(self.names, self.identifiable) if ok],
                "standard_errors": se, "combinations": self.combinations,
                "unidentifiable": self.unidentifiable, "sigma": self.sigma}


def _label(coefs: dict[str, float]) -> str:
    """Return ``a/b``, ``a*b``, ``a`` or ``a^0.71 b^-0.71`` for the coefficients."""
    pos = [n for n, c in coefs.items() if c > 0]
    neg = [n for n, c in coefs.items() if c < 0]
    if all(abs(abs(c) - 1.0) < 1e-12 for c in coefs.values()):
        top = "*".join(pos) or "1"
        return top + ("/" + "/".join(neg) if neg else "")
    return " ".join(f"{n}^{c:.2g}" for n, c in coefs.items())


def _candidates(p: int) -> list[np.ndarray]:
    """Return single parameters, then ratios, then products (as ±1 vectors)."""
    out = [np.eye(p)[j] for j in range(p)]
    for i in range(p):
        for j in range(i + 1, p):
            for sign in (-1.0, 1.0):
                c = np.zeros(p)
                c[i], c[j] = 1.0, sign
                out.append(c)
    return out


def analyse(jacobian: np.ndarray, names: list[str], theta: np.ndarray, sigma: float,
            max_standard_error: float = MAX_STANDARD_ERROR) -> Identifiability:
    """Return what ``jacobian`` (residuals by ``ln`` parameters) determines.

    Parameters
    ----------
    jacobian : numpy.ndarray
        ``(m, p)`` ``∂r/∂θ`` at the optimum (``r`` relative residuals).
    names : list of str
        ``p`` parameter names.
    theta : numpy.ndarray
        ``(p,)`` parameters at the optimum (for the combinations' values).
    sigma : float
        Noise level of the residuals (> 0).
    max_standard_error : float, default MAX_STANDARD_ERROR
        Largest standard error of an identifiable combination (see the module docstring).

    Returns
    -------
    Identifiability
        The analysis.
    """
    J = np.nan_to_num(np.asarray(jacobian, float))
    p = J.shape[1]
    _, s, Wt = np.linalg.svd(J, full_matrices=False) if J.size else (None, np.zeros(0),
                                                                      np.zeros((0, p)))
    s_max = float(s[0]) if s.size else 0.0
    with np.errstate(divide="ignore"):
        se_dir = np.where(s > 0, sigma / s, np.inf)
    good = (se_dir <= max_standard_error) & (s >= _RANK_CUT * s_max)
    W = Wt.T  # (p, p): columns are singular directions
    Q = W[:, good]
    inv_s = np.where(good, 1.0 / np.where(s > 0, s, 1.0), 0.0)
    combos, covered = [], np.zeros((p, 0))
    for c in _candidates(p):
        u = c / np.linalg.norm(c)
        if np.linalg.norm(Q.T @ u) < 1.0 - _IN_SUBSPACE:
            continue
        if covered.shape[1] and np.linalg.matrix_rank(np.column_stack([covered, u]),
                                                      tol=1e-6) == covered.shape[1]:
            continue  # already implied by the ones found
        covered = np.column_stack([covered, u])
        coefs = {names[j]: float(c[j]) for j in range(p) if c[j]}
        se = sigma * float(np.linalg.norm(inv_s * (W.T @ c)))
        combos.append({"name": _label(coefs), "coefficients": coefs,
                       "value": float(np.exp(np.clip(c @ theta, -700, 700))),
                       "standard_error": se})
    for k in np.flatnonzero(good):  # identifiable directions no readable name covers
        if covered.shape[1] and np.linalg.norm(
                covered @ np.linalg.lstsq(covered, W[:, k], rcond=None)[0] - W[:, k]) < 1e-3:
            continue
        coefs = {names[j]: float(W[j, k]) for j in range(p) if abs(W[j, k]) > 1e-3}
        combos.append({"name": _label(coefs), "coefficients": coefs,
                       "value": float(np.exp(np.clip(W[:, k] @ theta, -700, 700))),
                       "standard_error": float(se_dir[k])})
        covered = np.column_stack([covered, W[:, k]])
    single = np.array([np.linalg.norm(Q.T @ np.eye(p)[j]) >= 1.0 - _IN_SUBSPACE
                       for j in range(p)], bool)
    se_par = np.where(single, sigma * np.linalg.norm(W * inv_s[None, :], axis=1), np.inf)
    bad = [{"coefficients": {names[j]: float(W[j, k]) for j in range(p)
                             if abs(W[j, k]) > 1e-3},
            "standard_error": float(se_dir[k]) if np.isfinite(se_dir[k]) else None}
           for k in np.flatnonzero(~good)]
    return Identifiability(list(names), s, single, se_par, combos, bad, float(sigma))
