"""Rate constants of a mechanism whose integer structure is known.

Once the stoichiometry is frozen, mass-action derivatives are *linear* in the rate constants:

    du/dt = Σ_i v_i (kf_i m_i(u) − kr_i w_i(u)),   m_i = ∏ u^{a_i},  w_i = ∏ u^{b_i}

so step 2 of Algorithm 1 (learning kf, kr with V fixed) is a non-negative least-squares
problem with the same objective as the paper's MSE, solved exactly by
:func:`scipy.optimize.nnls` instead of by 10⁶ Adam epochs (the paper remarks that SINDy-style
regression may be used here). With temperatures, ``k = A·exp(−Ea/(R T))`` is fitted by
bounded nonlinear least squares, started from per-temperature linear fits.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import least_squares, nnls

from rdlab.chemistry.kinetics import GAS_CONSTANT
from rdlab.errors import ParameterError

__all__ = ["fit_arrhenius", "fit_rates", "monomials", "point_weights", "refine_integers",
           "relative_errors"]


def monomials(orders: np.ndarray, log_u: np.ndarray) -> np.ndarray:
    """Return the monomials ``∏_j u_j^{orders_ij}``.

    Parameters
    ----------
    orders : numpy.ndarray
        ``(n_r, n_s)``.
    log_u : numpy.ndarray
        Log concentrations ``(N, n_s)``.

    Returns
    -------
    numpy.ndarray
        ``(N, n_r)``.
    """
    return np.exp(log_u @ orders.T)


def _columns(V, orders_f, orders_r, log_u) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Return the design matrix ``(N·n_s, n_directions)`` and each column's direction."""
    mf = monomials(orders_f, log_u)
    cols, which = [], []
    for i in range(V.shape[0]):
        if not np.any(V[i]):
            continue
        cols.append((mf[:, i:i + 1] * V[i][None, :]).reshape(-1))
        which.append((i, 0))
        if orders_r is not None:
            mr = np.exp(log_u @ orders_r[i])
            cols.append((-mr[:, None] * V[i][None, :]).reshape(-1))
            which.append((i, 1))
    if not cols:
        return np.zeros((log_u.shape[0] * V.shape[1], 0)), which
    return np.stack(cols, axis=1), which


def fit_rates(V: np.ndarray, orders_f: np.ndarray, orders_r: np.ndarray | None,
              log_u: np.ndarray, du: np.ndarray, species_weights: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit least-squares rates ``kf, kr ≥ 0`` for integer ``V`` and orders.

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_r, n_s)`` stoichiometry.
    orders_f : numpy.ndarray
        ``(n_r, n_s)`` forward orders.
    orders_r : numpy.ndarray or None
        ``(n_r, n_s)`` reverse orders; ``None`` for irreversible (catalytic-form) reactions:
        ``kr`` is then 0.
    log_u : numpy.ndarray
        ``(N, n_s)`` log concentrations.
    du : numpy.ndarray
        ``(N, n_s)`` derivatives.
    species_weights : numpy.ndarray or None, optional
        Weights of the residuals, ``(n_s,)`` per species or ``(N, n_s)`` per point (default
        1; see :func:`point_weights`).

    Returns
    -------
    kf, kr : numpy.ndarray
        Each ``(n_r,)``.
    residual : float
        The weighted residual norm relative to ‖w·du‖.
    """
    A, which = _columns(V, orders_f, orders_r, log_u)
    kf = np.zeros(V.shape[0])
    kr = np.zeros(V.shape[0])
    w = np.ones(V.shape[1]) if species_weights is None else np.asarray(species_weights)
    w = np.broadcast_to(w, du.shape)
    y = (du * w).reshape(-1)
    y_norm = max(float(np.linalg.norm(y)), 1e-300)
    if not which:
        return kf, kr, float(np.linalg.norm(y)) / y_norm
    A = A * w.reshape(-1)[:, None]
    scale = np.linalg.norm(A, axis=0)
    keep = scale > 0
    x = np.zeros(A.shape[1])
    res = float(np.linalg.norm(y))
    if keep.any():
        sol, res = nnls(A[:, keep] / scale[keep], y, maxiter=50 * A.shape[1])
        x[keep] = sol / scale[keep]
    for (i, d), value in zip(which, x):
        (kf if d == 0 else kr)[i] = value
    return kf, kr, float(res) / y_norm


def refine_integers(V: np.ndarray, orders: np.ndarray | None, log_u: np.ndarray,
                    du: np.ndarray, species_weights: np.ndarray | None = None,
                    max_coefficient: int = 3, max_sweeps: int = 20,
                    deadline: float | None = None,
                    ) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Search integer structures locally around a frozen structure.

    PPF freezes rows that are near integers; a row frozen one unit off cannot move again.
    Here every coefficient of V (and of the orders in catalytic form) is tried one unit up
    and down, with the rates re-fitted exactly (:func:`fit_rates`) for each trial; the
    single best change of a sweep is kept, until no change lowers the residual or the
    ``deadline`` passes.

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_r, n_s)`` integer stoichiometry.
    orders : numpy.ndarray or None
        ``(n_r, n_s)`` orders in catalytic form, else ``None``.
    log_u : numpy.ndarray
        ``(N, n_s)`` log concentrations.
    du : numpy.ndarray
        ``(N, n_s)`` derivatives.
    species_weights : numpy.ndarray or None, optional
        Weights of the residuals (see :func:`fit_rates`).
    max_coefficient : int, default 3
        Largest absolute coefficient tried.
    max_sweeps : int, default 20
        Most sweeps.
    deadline : float or None, optional
        A :func:`time.perf_counter` value.

    Returns
    -------
    V : numpy.ndarray
        The refined stoichiometry.
    orders : numpy.ndarray or None
        The refined orders.
    residual : float
        Its relative residual.
    """
    def residual(V_, O_):
        if O_ is None:
            of, orr = np.maximum(0.0, -V_), np.maximum(0.0, V_)
        else:
            if np.any(O_ + V_ < 0):
                return np.inf
            of, orr = O_, None
        return fit_rates(V_, of, orr, log_u, du, species_weights)[2]

    V = np.round(V).astype(float)
    orders = None if orders is None else np.round(orders).astype(float)
    best = residual(V, orders)
    for _ in range(max_sweeps):
        move = None  # best single change of this sweep (steepest descent on the lattice)
        for target in ("V", "orders") if orders is not None else ("V",):
            M = V if target == "V" else orders
            for i in range(M.shape[0]):
                if deadline is not None and time.perf_counter() > deadline:
                    return V, orders, best
                for k in range(M.shape[1]):
                    for step in (-1.0, 1.0):
                        old = M[i, k]
                        new = old + step
                        if abs(new) > max_coefficient or (target == "orders" and new < 0):
                            continue
                        M[i, k] = new
                        r = residual(V, orders)
                        M[i, k] = old
                        if r < best * (1.0 - 1e-9) and (move is None or r < move[0]):
                            move = (r, target, i, k, new)
        if move is None:
            break
        best, target, i, k, new = move
        (V if target == "V" else orders)[i, k] = new
    return V, orders, best


def point_weights(du: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    """Return the weights ``1/(|du| + δ_s)`` with ``δ_s = floor·max|du_s|``.

    The overall max is used for a species that never moves. Residuals become relative errors
    point by point, which is also the right weighting for multiplicative noise.

    Parameters
    ----------
    du : numpy.ndarray
        ``(N, n_s)`` derivatives.
    floor : float, default 1e-6
        Relative floor δ.

    Returns
    -------
    numpy.ndarray
        ``(N, n_s)``.
    """
    scale = np.max(np.abs(du), axis=0)
    scale = np.where(scale > 0, scale, max(float(np.max(np.abs(du))), 1e-300))
    return 1.0 / (np.abs(du) + floor * scale)


def relative_errors(pred: np.ndarray, du: np.ndarray) -> tuple[float, np.ndarray]:
    """Return the paper's relative L2 error and the point-wise relative error per species.

    E is dominated by the largest derivatives (the fast transients); the per-species
    point-wise measure also sees a slow reaction that is missing or wrong on the slow
    manifold, and equals the noise level for multiplicative noise.

    Parameters
    ----------
    pred : numpy.ndarray
        ``(N, n_s)`` predicted derivatives.
    du : numpy.ndarray
        ``(N, n_s)`` measured derivatives.

    Returns
    -------
    E : float
        ``‖pred − du‖/‖du‖``.
    per_species : numpy.ndarray
        ``(n_s,)``: the RMS of ``(pred − du)/(|du| + δ_s)`` (:func:`point_weights`).
    """
    total = float(np.linalg.norm(pred - du) / max(np.linalg.norm(du), 1e-300))
    rel = (pred - du) * point_weights(du)
    per = np.sqrt(np.mean(rel * rel, axis=0))
    return total, per


def fit_arrhenius(V: np.ndarray, orders_f: np.ndarray, orders_r: np.ndarray | None,
                  log_u: np.ndarray, du: np.ndarray, temperature: np.ndarray,
                  gas_constant: float = GAS_CONSTANT) -> dict[str, np.ndarray]:
    """Fit Arrhenius parameters ``A ≥ 0`` and ``Ea`` (J/mol) of each direction.

    Start: rates fitted separately at each distinct temperature, then ``ln k`` against
    ``1/T`` by linear regression; then all parameters together by bounded least squares.

    Parameters
    ----------
    V : numpy.ndarray
        ``(n_r, n_s)`` stoichiometry.
    orders_f : numpy.ndarray
        ``(n_r, n_s)`` forward orders.
    orders_r : numpy.ndarray or None
        ``(n_r, n_s)`` reverse orders, or ``None`` for irreversible reactions.
    log_u : numpy.ndarray
        ``(N, n_s)`` log concentrations.
    du : numpy.ndarray
        ``(N, n_s)`` derivatives.
    temperature : numpy.ndarray
        ``(N,)`` K, data at several temperatures.
    gas_constant : float, default GAS_CONSTANT
        R in J/(mol K).

    Returns
    -------
    dict of str to numpy.ndarray
        ``{"Af", "Ar", "Ef", "Er"}``, each ``(n_r,)`` (reverse entries 0 when ``orders_r``
        is None).

    Raises
    ------
    ParameterError
        When there is not one temperature per point.
    """
    T = np.asarray(temperature, dtype=float)
    if T.shape != (log_u.shape[0],):
        raise ParameterError(f"need one temperature per point ({log_u.shape[0]}), got {T.shape}")
    A_full, which = _columns(V, orders_f, orders_r, log_u)
    n_dir = len(which)
    n_s = V.shape[1]
    temps = np.unique(T)
    ks = np.full((temps.size, n_dir), np.nan)
    for t_i, t in enumerate(temps):
        rows = np.repeat(T == t, n_s)
        A = A_full[rows]
        scale = np.linalg.norm(A, axis=0)
        ok = scale > 0
        if ok.sum() and rows.sum() >= ok.sum():
            sol, _ = nnls(A[:, ok] / scale[ok], du[T == t].reshape(-1), maxiter=50 * n_dir)
            ks[t_i, ok] = sol / scale[ok]
    inv = 1.0 / (gas_constant * temps)
    lnA0 = np.full(n_dir, -30.0)
    Ea0 = np.zeros(n_dir)
    for d in range(n_dir):
        good = np.isfinite(ks[:, d]) & (ks[:, d] > 0)
        typical = np.nanmedian(ks[:, d]) if np.isfinite(ks[:, d]).any() else 0.0
        if good.sum() >= 3 and typical > 0:
            slope, icept = np.polyfit(inv[good], np.log(ks[good, d]), 1)
            lnA0[d], Ea0[d] = icept, -slope
    x_inv = 1.0 / (gas_constant * T)
    y = du.reshape(-1)

    def model(p):
        lnA, Ea = p[:n_dir], p[n_dir:]
        k = np.exp(np.minimum(lnA[None, :] - Ea[None, :] * x_inv[:, None], 700.0))
        return (A_full * np.repeat(k, n_s, axis=0)).sum(axis=1)

    w = point_weights(du).reshape(-1)
    start = np.concatenate([lnA0, Ea0])
    with np.errstate(all="ignore"):  # a poor candidate structure may overflow on the way
        try:
            sol = least_squares(lambda p: np.nan_to_num((model(p) - y) * w, posinf=1e300,
                                                        neginf=-1e300),
                                start, x_scale="jac", xtol=1e-15, ftol=1e-15, gtol=1e-15,
                                max_nfev=2000)
            x = sol.x if np.all(np.isfinite(sol.x)) else start
        except (ValueError, np.linalg.LinAlgError):
            x = start
    lnA, Ea = x[:n_dir], x[n_dir:]
    out = {key: np.zeros(V.shape[0]) for key in ("Af", "Ar", "Ef", "Er")}
    for (i, d), la, ea in zip(which, lnA, Ea):
        prefactor = float(np.exp(min(la, 700.0))) if la > -25 else 0.0
        out["Af" if d == 0 else "Ar"][i] = prefactor
        out["Ef" if d == 0 else "Er"][i] = float(ea) if prefactor > 0 else 0.0
    return out
