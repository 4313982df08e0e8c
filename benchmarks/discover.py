"""Reaction discovery benchmark: rdlab against pysindy from concentrations alone (issue 18).

**Comparison (the default run).** For every example, noise level and seed: the §4 sampling
(100 initial conditions, t = 0…1 by 0.1), *concentrations only* (derivatives dropped), with
multiplicative Gaussian noise ``c·(1 + level·ξ)`` on the concentrations (``--noise``, default
0 and 0.1 %). The same data go to every method; one table prints method × example × noise:
exact structure (seeds), exact sparsity pattern (seeds), max rate error (median and worst over
seeds), max coefficient error (median) and fit time (median, max).

Methods (``--methods``):

``rdlab``
    :class:`~rdlab.discover.estimator.ReactionDiscovery` on the concentrations with its
    defaults (trajectory fitting, issue 18; the noise level is not given, rdlab estimates
    it). HOOK: an rdlab whose ``fit`` refuses data without derivatives gets them estimated
    by spline (:func:`rdlab.discover.derivatives.estimate`, the path that failed before
    issue 18) with ``noise_level`` set, and the ``path`` column says which ran.
``rdlab-weak``
    The derivative-free weak-form proposal alone
    (:func:`rdlab.discover.weak_form.propose_from_integrals`: Simpson integrals between
    samples, rates refitted on the weak system) — the cheap first guess, not a final answer.
``sindy-fd``
    pysindy STLSQ on the monomial library with pysindy's finite-difference derivatives.
``sindy-weak``
    pysindy's weak-form library (``WeakPDELibrary``, K = ``--sindy-k`` subdomains per
    trajectory of half-width ``--sindy-h``, test-function degree 4) with STLSQ.

pysindy is optional (``pip install -e .[bench]``); without it its rows are skipped with a note.

Each finished fit is appended to ``--out``/``compare.jsonl`` as it ends; a rerun with the same
options resumes from it (``--fresh`` refits everything). Jobs run seed by seed, so an
interrupted run holds whole seeds.

**How structure and rates are judged (all methods alike).** Every method's result is read as
a monomial coefficient matrix ``W`` (row = monomial ``∏ u^a``, column = species; the truth has
``W[a] = Σ k ν`` over the reaction directions with reactant orders ``a``):

* *exact structure*: the reactions read off ``W`` by rdlab's library rule
  (:func:`rdlab.discover.library.reactions_from_coefficients`: each monomial row decomposed
  into reactions ``k ν`` with the monomial as reactants, ``ν`` rounded to integers, ``ν``/``−ν``
  merged into reversible pairs; catalytic form for the catalytic example) form a mechanism
  that :meth:`Mechanism.compare` finds equal to the truth (same integer rows up to order and
  sign, no extra reaction with a rate above 1e-6 of the smallest true rate). For rdlab rows
  the learned mechanism is compared directly;
* *max rate error*: the largest relative error of a true rate constant (``kf``, ``kr``) in
  that comparison; ``nan`` when the structure is not exact;
* *determined*: exact, or — for data that show only equilibria, where rdlab says so — the
  fitted rows span the true subspace and each row's ``kf/kr`` equals the truth's
  ``∏ K_i^a_i`` (row ``= Σ a_i V_i``) within 1 %: all that such data determine;
* *ident err*: for rdlab, the largest relative error of the rates and rate combinations
  (``kf_2/kr_2``) its fit reports as determined by the data (``report()["trajectory_fit"]
  ["identifiability"]``), each evaluated on the truth; a fast equilibrium's separate ``kf``
  and ``kr`` are then not counted, its ratio is. The other methods report no
  identifiability: their column repeats the max rate error;
* *pattern*: the non-zero entries of ``W`` are exactly the truth's;
* *coef. error*: ``max |W − W_true| / |W_true|`` over the truth's non-zero entries (a
  missing term counts 1).

Arrhenius data are compared at the reference temperature (300 K); a constant-coefficient
SINDy model cannot represent rates that vary with each sample's temperature, so its rows
there measure a best constant fit. pysindy's polynomial degree is the truth's largest reactant
order (≥ 2), capped so that the library has at most half as many columns as data points
(simplified GRI-3.0 needs order 4 but gets 2: it cannot be exact there). STLSQ is run per
species on unit-norm columns with the threshold ``--sindy-threshold`` (default 1e-2) relative
to that species' target norm — the same relative rule as rdlab's library — and ridge
``alpha = 1e-8`` (pysindy's default 0.05 shrinks every coefficient by several percent).

**Paper parts (``--paper``, derivative data).** Time-to-exact-stoichiometry with partial-
parameter freezing under a 120 s budget on one core, the no-freezing baseline, hydrogen
oxidation with derivative noise 1e-3 and 1e-4 (Table 4.6, Fig. 4.8), the n_r sweep of
Table 4.2 / Fig. 4.5, and catalysis. Prints tables; writes JSON and figures to --out.

    python benchmarks/discover.py [--examples ...] [--seeds 10] [--noise 0 1e-3] [--quick]
    python benchmarks/discover.py --methods sindy-fd sindy-weak --seeds 2
    python benchmarks/discover.py --paper --out runs/bench/discover
"""

from __future__ import annotations

import argparse
import functools
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

EXAMPLES = ["stiff", "michaelis-menten", "michaelis-menten-arrhenius", "hydrogen-oxidation",
            "zeldovich", "gri30-simplified", "autocatalytic"]


def _one(args):
    name, seed, budget, extra = args
    import torch

    torch.set_num_threads(1)
    from rdlab.discover.data import generate
    from rdlab.discover.estimator import ReactionDiscovery
    from rdlab.discover.examples import example

    ex = example(name)
    t = time.perf_counter()
    data = generate(ex.mechanism, seed=seed, temperature_range=ex.temperature_range)
    if extra.get("noise"):
        data = data.with_noise(extra["noise"], seed=seed)
    t_data = time.perf_counter() - t
    params = {"catalytic": ex.catalytic, "time_budget_s": budget, "seed": seed,
              "noise_level": extra.get("noise", 0.0)}
    params.update(extra.get("estimator", {}))
    params.setdefault("warm_start", extra.get("warm_start", True))
    est = ReactionDiscovery(extra.get("n_reactions", ex.n_reactions), **params).fit(data)
    cmp = est.mechanism_.compare(ex.mechanism)
    return {"example": name, "seed": seed, "data_seconds": t_data,
            "fit_seconds": est.fit_seconds_, "time_to_structure": est.time_to_structure_,
            "converged": est.converged_, "exact": cmp["exact"],
            "max_rate_error": cmp["max_rate_error"], "validation_error": est.validation_error_,
            "max_species_error": float(np.max(est.species_errors_)),
            "epochs": est.n_epochs_, "restarts": est.restarts_, "warm_start": est.warm_start_,
            "rates_within_1pct": bool(cmp["exact"] and cmp["max_rate_error"] < 1e-2),
            "matched": cmp["matched"], "table": est.mechanism_.table(),
            "mechanism": est.mechanism_.to_dict()}


#: the worker's BLAS/OpenMP thread limit (kept referenced for the worker's lifetime)
_LIMITS = []


def _one_core() -> None:
    """Hold a worker to one thread, so a fit's time is one core's (no BLAS threads that
    the other worker's core would pay for)."""
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=1))


def _pool(jobs, workers):
    with ProcessPoolExecutor(workers, initializer=_one_core) as pool:
        return list(pool.map(_one, jobs))


def _duration(text: str) -> float:
    """A ``--time-budget`` value in seconds (rdlab's parser; argparse reports the error)."""
    from rdlab.checks import parse_duration
    from rdlab.errors import ParameterError

    try:
        return parse_duration(text, "--time-budget")
    except ParameterError as err:
        raise argparse.ArgumentTypeError(str(err)) from None



METHODS = ["rdlab", "rdlab-weak", "sindy-fd", "sindy-weak"]


def _have_pysindy() -> bool:
    try:
        import pysindy  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=4)
def _exact_data(name: str, seed: int):
    """The §4 data of example ``name`` (cached: every method of a worker reuses them)."""
    from rdlab.discover.data import generate
    from rdlab.discover.examples import example

    ex = example(name)
    return generate(ex.mechanism, seed=seed, temperature_range=ex.temperature_range)


def _concentration_data(ex, seed: int, noise: float):
    """The §4 data of ``ex`` without derivatives, with multiplicative concentration noise."""
    from rdlab.discover.data import ReactionData

    d = _exact_data(ex.name, seed)
    c = d.concentrations
    if noise > 0:
        xi = np.random.default_rng(10_000 + seed).standard_normal(c.shape)
        c = c * (1.0 + noise * xi)
    return ReactionData(d.species, d.times, np.maximum(c, 0.0), None, d.temperatures)


def _true_coefficients(mech, E: np.ndarray) -> np.ndarray:
    """``W (n_monomials, n_s)`` of the truth at its reference temperature (rows of ``E``)."""
    kf, kr = mech.rates_at(mech.reference_temperature)
    return _coefficients(mech.V, mech.orders, kf, kr, E)


def _coefficients(V, orders, kf, kr, E: np.ndarray) -> np.ndarray | None:
    """``W`` of a mechanism on the monomials ``E``; None when a monomial is missing."""
    W = np.zeros_like(E, dtype=float)
    for i, nu in enumerate(np.asarray(V, dtype=float)):
        dirs = [(orders[i] if orders is not None else np.maximum(0, -nu), kf[i] * nu)]
        if orders is None:
            dirs.append((np.maximum(0, nu), -kr[i] * nu))
        for a, w in dirs:
            if not np.any(w):
                continue
            row = np.flatnonzero(np.all(E == a, axis=1))
            if row.size == 0:
                return None
            W[row[0]] += w
    return W


def _judge(ex, V, orders, kf, kr, E: np.ndarray) -> dict:
    """Exact structure, rate error, pattern and coefficient error of a learned mechanism."""
    from rdlab.discover.mechanism import Mechanism

    W_true = _true_coefficients(ex.mechanism, E)
    out = {"exact": False, "max_rate_error": float("nan"), "pattern": False,
           "coef_error": 1.0, "rows_found": 0, "rows_extra": 0}
    W = None if V is None else _coefficients(V, orders, kf, kr, E)
    if W is not None:
        nz = W_true != 0
        out["pattern"] = bool(np.array_equal(np.abs(W) > 0, nz))
        out["coef_error"] = float(np.max(np.abs(W - W_true)[nz] / np.abs(W_true[nz])))
    if V is None or len(V) == 0:
        return out
    try:
        learned = Mechanism(ex.mechanism.species, np.asarray(V, dtype=float), kf, kr,
                            orders=orders)
        cmp = learned.compare(ex.mechanism)
    except Exception as err:  # an invalid read-off (e.g. negative products) is not exact
        out["note"] = f"not a valid mechanism: {err}"
        return out
    out["exact"] = bool(cmp["exact"])
    if cmp["exact"]:
        out["max_rate_error"] = float(cmp["max_rate_error"])
    # the truth's reactions the learned mechanism has, and the others it keeps
    out["rows_found"] = sum(m["learned"] is not None for m in cmp["matched"])
    out["rows_extra"] = len(cmp["extra_reactions"])
    return out


def _sindy_degree(ex, n_points: int) -> int:
    """The truth's largest reactant order (≥ 2), capped at ≤ n_points/2 library columns."""
    from rdlab.discover.library import monomial_exponents

    m = ex.mechanism
    orders = m.orders if m.orders is not None else np.concatenate(
        [np.maximum(0, -m.V), np.maximum(0, m.V)])
    degree = max(2, int(orders.sum(axis=1).max()))
    while degree > 2 and len(monomial_exponents(m.n_species, degree)) > n_points // 2:
        degree -= 1
    return degree


def _stlsq(Theta: np.ndarray, Y: np.ndarray, threshold: float) -> np.ndarray:
    """pysindy STLSQ per species on unit-norm columns; returns ``W (n_features, n_s)``."""
    import pysindy as ps

    W = np.zeros((Theta.shape[1], Y.shape[1]))
    for s in range(Y.shape[1]):
        y_norm = float(np.linalg.norm(Y[:, s]))
        if y_norm == 0.0:
            continue
        opt = ps.STLSQ(threshold=threshold, alpha=1e-8, normalize_columns=True, max_iter=50)
        opt.fit(Theta, Y[:, s:s + 1] / y_norm)
        W[:, s] = np.asarray(opt.coef_).reshape(-1) * y_norm
    return W


def _sindy(method: str, ex, data, seed: int, opts: dict):
    """Fit with pysindy; return the read-off ``(V, orders, kf, kr)`` and the monomials."""
    import pysindy as ps

    from rdlab.discover.library import reactions_from_coefficients

    t = data.times
    xs = [c for c in data.concentrations]
    degree = _sindy_degree(ex, data.concentrations.shape[0] * t.size)
    poly = ps.PolynomialLibrary(degree=degree, include_bias=False)
    np.random.seed(seed)  # noqa: NPY002 (the weak library draws subdomains from it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "sindy-fd":
            fd = ps.FiniteDifference()
            Theta = poly.fit_transform(np.concatenate(xs))
            Y = np.concatenate([fd(x, t) for x in xs])
            E = np.asarray(poly.powers_, dtype=float)
        else:
            lib = ps.WeakPDELibrary(function_library=poly, spatiotemporal_grid=t,
                                    K=opts["sindy_k"], H_xt=[opts["sindy_h"]], p=4)
            lib.fit(xs)
            Theta = np.concatenate([np.asarray(a) for a in lib.transform(xs)])
            Y = np.concatenate([np.asarray(lib.convert_u_dot_integral(x)) for x in xs])
            E = np.asarray(lib.function_library.powers_, dtype=float)
    W = _stlsq(Theta, Y, opts["sindy_threshold"])
    prop = reactions_from_coefficients(W, E, catalytic=ex.catalytic)
    if prop is None:
        return (None, None, None, None), E
    return (prop.V, prop.orders, prop.kf, prop.kr), E


def _rdlab(ex, data, seed: int, noise: float, budget: float, shooting: bool = False,
           subspace: bool = True):
    """ReactionDiscovery on the concentrations (hook: spline derivatives until it can)."""
    import torch

    from rdlab.discover.estimator import ReactionDiscovery
    from rdlab.errors import ParameterError

    torch.set_num_threads(1)
    est = ReactionDiscovery(ex.n_reactions, catalytic=ex.catalytic, time_budget_s=budget,
                            seed=seed, shooting=shooting, subspace=subspace)
    try:  # the trajectory-fitting path (target "auto"); the noise level is left to estimate
        est.fit(data)
        path = f"concentrations ({est.get_params().get('target', '?')})"
    except ParameterError:  # an rdlab whose fit needs derivatives
        from rdlab.discover.derivatives import estimate

        est.set_params(noise_level=noise)
        est.fit(estimate(data, "spline"))
        path = "spline derivatives"
    m = est.mechanism_
    kf, kr = m.rates_at(m.reference_temperature)
    rep = est.report()
    shot = rep.get("shooting")
    fit = rep.get("trajectory_fit") or {}
    if shot:
        path += f", shooting {shot['epochs']} steps {shot['tried']} tried"
        path += " (accepted)" if shot["accepted"] else ""
    sub = rep.get("subspace")
    if sub:
        if sub.get("all_rows"):
            path += f", all rows kept {sub['all_rows'].get('kept', '?')}"
        if "rank" in sub:
            path += f", subspace rank {sub['rank']} {sub['screened']} screened"
        path += " (accepted)" if (sub.get("verified") or {}).get("accepted") else ""
    if fit.get("timed_out"):
        path += ", trajectory fit timed out"
    if rep.get("equilibrium_only"):
        path += " (equilibrium only)"
    if rep.get("equally_good"):
        path += f", {len(rep['equally_good'])} equally good"
    return ((m.V, m.orders, kf, kr), path, getattr(est, "trajectory_fit_", None),
            bool(est.converged_))


def _equilibrium_error(ex, fit) -> float:
    """Largest relative error of the equilibrium constants of an equilibrium-only fit.

    Each fitted row ``v`` must lie in the span of the true rows, ``v = Σ a_i V_i``; its
    ``kf/kr`` is then compared with ``∏ K_i^a_i`` of the truth. NaN when a row lies outside
    the true subspace or the fitted rows do not span it.
    """
    truth, m = ex.mechanism, fit.mechanism
    V_t = np.asarray(truth.V, float)
    kf_t, kr_t = truth.rates_at(truth.reference_temperature)
    if np.any(kf_t <= 0) or np.any(kr_t <= 0):
        return float("nan")
    kf, kr = m.rates_at(m.reference_temperature)
    live = (kf > 0) & (kr > 0)
    V = np.asarray(m.V, float)[live]
    if np.linalg.matrix_rank(V) != np.linalg.matrix_rank(V_t):
        return float("nan")
    errs = []
    for v, K in zip(V, kf[live] / kr[live]):
        a, *_ = np.linalg.lstsq(V_t.T, v, rcond=None)
        if np.max(np.abs(V_t.T @ a - v)) > 1e-6:
            return float("nan")
        errs.append(abs(K / float(np.exp(a @ (np.log(kf_t) - np.log(kr_t)))) - 1.0))
    return max(errs, default=float("nan"))


def _identifiable_error(ex, fit) -> float:
    """Largest relative error of the rate combinations ``fit`` reports as identifiable.

    Each combination ``exp(Σ c θ)`` over the fitted ``ln kf_j``, ``ln kr_j`` (and
    ``ε = Ea/(R T_ref)``) is evaluated on the truth, row ``j`` matched to its true row (the
    directions swapped for a negated row). NaN when a fitted row has no true match.
    """
    truth, m = ex.mechanism, fit.mechanism
    T_ref = m.reference_temperature
    kf_t, kr_t = truth.rates_at(T_ref if T_ref is not None else truth.reference_temperature)
    arr = truth.arrhenius
    theta = {}
    for j in range(m.n_reactions):
        for i in range(truth.n_reactions):
            for sign, dirs in ((1.0, ("f", "r")), (-1.0, ("r", "f"))):
                if not np.allclose(m.V[j], sign * truth.V[i], atol=1e-6):
                    continue
                for name, d in zip(("kf", "kr"), dirs):
                    k = (kf_t if d == "f" else kr_t)[i]
                    theta[f"{name}_{j + 1}"] = np.log(k) if k > 0 else -np.inf
                    if arr is not None and T_ref is not None:
                        e = (arr.energy_f if d == "f" else arr.energy_r)[i]
                        theta[f"eps_{name}_{j + 1}"] = e / (arr.gas_constant * T_ref)
    errs = []
    for combo in fit.identifiability.combinations:
        coefs = combo["coefficients"]
        if any(n not in theta for n in coefs):
            return float("nan")
        true = float(np.exp(np.clip(sum(c * theta[n] for n, c in coefs.items()), -700, 700)))
        errs.append(abs(combo["value"] - true) / true if true > 0 else float("inf"))
    return max(errs, default=float("nan"))


def _compare_one(job) -> dict:
    """One method on one example, seed and noise level."""
    method, name, seed, noise, opts = job
    from rdlab.discover.examples import example
    from rdlab.discover.library import monomial_exponents

    ex = example(name)
    data = _concentration_data(ex, seed, noise)
    E = monomial_exponents(ex.mechanism.n_species, 2)
    path, fit, converged = "", None, None
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        if method == "rdlab":
            learned, path, fit, converged = _rdlab(ex, data, seed, noise, opts["budget"],
                                                   opts["shooting"], opts["subspace"])
        elif method == "rdlab-weak":
            from rdlab.discover.weak_form import propose_from_integrals

            p = propose_from_integrals(data, ex.n_reactions, catalytic=ex.catalytic,
                                       tolerance=max(1e-2, 10 * noise))
            learned = (None,) * 4 if p is None else (p.V, p.orders, p.kf, p.kr)
        else:
            learned, E = _sindy(method, ex, data, seed, opts)
        error = ""
    except Exception as err:  # a method that crashes scores as not exact, with the reason
        learned, error = (None,) * 4, f"{type(err).__name__}: {err}"
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # judge on a library that holds the true and the learned monomials too
    E = _union(_union(E, ex.mechanism.V, ex.mechanism.orders), *learned[:2])
    row = {"method": method, "example": name, "seed": seed, "noise": noise,
           "seconds": seconds, "cpu_seconds": cpu, "path": path, "error": error,
           "converged": converged}
    row.update(_judge(ex, *learned, E))
    # rdlab says which rates the data determine; the other methods give every rate as measured
    row["identifiable_error"] = (_identifiable_error(ex, fit) if fit is not None and row["exact"]
                                 else row["max_rate_error"])
    # data that show only equilibria determine the subspace and its equilibrium constants:
    # rdlab's answer there is judged on those
    equilibrium = fit is not None and "(equilibrium only)" in path
    row["equilibrium_error"] = _equilibrium_error(ex, fit) if equilibrium else float("nan")
    row["determined"] = bool(row["exact"] or row["equilibrium_error"] < 1e-2)
    return row


def _union(E: np.ndarray, V, orders) -> np.ndarray:
    """``E`` plus the reactant monomials of the mechanism ``V`` (orders) not in it."""
    if V is None:
        return E
    V = np.asarray(V, dtype=float)
    extra = [orders] if orders is not None else [np.maximum(0, -V), np.maximum(0, V)]
    rows = [E] + [a[np.any(a > 0, axis=1)] for a in extra]
    return np.unique(np.concatenate(rows), axis=0)


def _rows_column(rs: list[dict], example_name: str) -> str:
    """Median true reactions found of the truth's, and the median of other reactions kept."""
    from rdlab.discover.examples import example

    found = [r["rows_found"] for r in rs if "rows_found" in r]
    if not found:
        return "-"
    extra = np.median([r["rows_extra"] for r in rs if "rows_found" in r])
    return f"{np.median(found):g}/{example(example_name).mechanism.n_reactions}+{extra:g}"


def _silent_column(rs: list[dict]) -> str:
    """Runs that reported convergence with a structure that is not determined ("-": the
    method does not say whether it converged)."""
    said = [r for r in rs if r.get("converged") is not None]
    if not said:
        return "-"
    return str(sum(r["converged"] and not r.get("determined", r["exact"]) for r in said))


def _compare_table(runs: list[dict], methods, examples, levels) -> str:
    """The method × example × noise table."""
    head = (f"{'method':11s} {'example':27s} {'noise':>6s} {'exact':>6s} {'pattern':>7s} "
            f"{'determined':>10s} "
            f"{'rate err med':>12s} {'worst':>9s} {'ident err':>9s} {'coef err':>9s} "
            f"{'true rows':>9s} {'silent':>6s} {'time med':>8s} {'max':>6s} {'cpu med':>7s}  path")
    lines = [head, "-" * len(head)]
    for m in methods:
        for n in examples:
            for lvl in levels:
                rs = [r for r in runs if (r["method"], r["example"], r["noise"]) == (m, n, lvl)]
                if not rs:
                    continue
                ok = [r["max_rate_error"] for r in rs if r["exact"]]
                ident = [r["identifiable_error"] for r in rs if r["exact"]]
                times = [r["seconds"] for r in rs]
                path = ",".join(sorted({r["path"] for r in rs if r["path"]}))
                errs = sorted({r["error"] for r in rs if r["error"]})
                lines.append(
                    f"{m:11s} {n:27s} {lvl:6.0e} {sum(r['exact'] for r in rs):>2d}/{len(rs):<3d}"
                    f" {sum(r['pattern'] for r in rs):>3d}/{len(rs):<3d}"
                    f" {sum(r.get('determined', r['exact']) for r in rs):>6d}/{len(rs):<3d}"
                    f" {np.median(ok) if ok else float('nan'):12.2e}"
                    f" {max(ok) if ok else float('nan'):9.2e}"
                    f" {max(ident) if ident else float('nan'):9.2e}"
                    f" {np.median([r['coef_error'] for r in rs]):9.2e}"
                    f" {_rows_column(rs, n):>9s} {_silent_column(rs):>6s}"
                    f" {np.median(times):8.2f} {max(times):6.1f}"
                    f" {np.median([r.get('cpu_seconds', np.nan) for r in rs]):7.1f}  {path}"
                    + (f"  ERROR: {errs[0][:60]}" if errs else ""))
    return "\n".join(lines)


def _compare(a) -> list[dict]:
    """Run and print the comparison; return its rows."""
    methods = list(a.methods)
    if not _have_pysindy() and any(m.startswith("sindy") for m in methods):
        print("note: pysindy is not installed (pip install -e .[bench]): its rows are skipped")
        methods = [m for m in methods if not m.startswith("sindy")]
    opts = {"budget": a.budget, "sindy_threshold": a.sindy_threshold, "sindy_k": a.sindy_k,
            "sindy_h": a.sindy_h, "shooting": a.shooting,
            "subspace": a.subspace}
    # seed-major, so that an interrupted run holds whole seeds; a worker's consecutive jobs
    # share data
    jobs = [(m, n, s, lvl, opts) for s in range(1, a.seeds + 1) for n in a.examples
            for lvl in a.noise for m in methods]
    log = a.out / "compare.jsonl"  # one row per finished fit: a rerun resumes from it
    done = {} if a.fresh else _finished_rows(log, opts)
    runs = [done[_job_key(j)] for j in jobs if _job_key(j) in done]
    jobs = [j for j in jobs if _job_key(j) not in done]
    if runs:
        print(f"resumed {len(runs)} finished fits from {log} (--fresh to redo them)")
    t = time.perf_counter()
    with ProcessPoolExecutor(a.workers, initializer=_one_core) as pool, \
            log.open("a") as sink:
        for r in pool.map(_compare_one, jobs):  # one progress line per fit, in job order
            runs.append(r)
            sink.write(json.dumps({**r, "opts": opts}, default=float) + "\n")
            sink.flush()
            print(f"[{len(runs)}/{len(jobs)}] {r['method']} {r['example']} noise "
                  f"{r['noise']:g} seed {r['seed']}: exact {r['exact']}, rate error "
                  f"{r['max_rate_error']:.2e} (identifiable {r['identifiable_error']:.2e}), "
                  f"{r['seconds']:.1f} s (cpu {r['cpu_seconds']:.1f} s)"
                  f" {r['path']} {r['error'][:80]}",
                  flush=True)
    print(f"\n== concentrations only, §4 sampling (100 trajectories, t = 0…1 by 0.1), "
          f"{a.seeds} seed(s), {a.workers} worker(s), {time.perf_counter() - t:.0f} s")
    print(_compare_table(runs, methods, a.examples, a.noise))
    return runs


def _job_key(job) -> tuple:
    """``(method, example, seed, noise)`` of a comparison job."""
    return tuple(job[:4])


def _finished_rows(log: Path, opts: dict) -> dict:
    """Rows of ``log`` (compare.jsonl) fitted with the same options, by job key."""
    if not log.exists():
        return {}
    rows = {}
    for line in log.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:  # a line cut by an interruption
            continue
        if r.pop("opts", None) == opts:
            rows[(r["method"], r["example"], r["seed"], r["noise"])] = r
    return rows


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/bench/discover"))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--time-budget", dest="budget", type=_duration, default=120.0,
                    metavar="DURATION", help="time budget of each fit: 90s, 20m, 1.5h")
    ap.add_argument("--budget", dest="budget", type=float, help=argparse.SUPPRESS)  # old name
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--examples", nargs="*", default=EXAMPLES)
    ap.add_argument("--methods", nargs="*", default=METHODS, choices=METHODS)
    ap.add_argument("--noise", nargs="*", type=float, default=[0.0, 1e-3],
                    help="multiplicative Gaussian noise levels on the concentrations")
    ap.add_argument("--shooting", action="store_true",
                    help="rdlab: also train the CRNN through the integrator by multiple "
                         "shooting (ReactionDiscovery(shooting=True))")
    ap.add_argument("--no-subspace", dest="subspace", action="store_false",
                    help="rdlab: skip the search of the data's stoichiometric subspace "
                         "(ReactionDiscovery(subspace=False); on by default)")
    ap.add_argument("--fresh", action="store_true",
                    help="refit every job instead of resuming from --out/compare.jsonl")
    ap.add_argument("--quick", action="store_true",
                    help="1 seed, 30 s budget per rdlab fit")
    ap.add_argument("--sindy-threshold", type=float, default=1e-2,
                    help="STLSQ threshold relative to each species' target norm")
    ap.add_argument("--sindy-k", type=int, default=20,
                    help="weak-form subdomains per trajectory")
    ap.add_argument("--sindy-h", type=float, default=0.25,
                    help="weak-form subdomain half-width (time units)")
    ap.add_argument("--paper", action="store_true",
                    help="also run the paper's derivative-data parts (see --skip)")
    ap.add_argument("--no-warm-start", action="store_true",
                    help="paper parts: run the CRNN from the paper's random start only (no "
                         "sparse-regression proposal)")
    ap.add_argument("--skip", nargs="*", default=[],
                    help="parts to skip: compare success baseline noise sweep catalysis")
    a = ap.parse_args()
    if a.quick:
        a.seeds, a.budget = 1, 30.0
    return a


def main() -> None:
    a = _parse()
    a.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    t_all = time.perf_counter()
    if "compare" not in a.skip:
        results["compare"] = _compare(a)
        (a.out / "compare.json").write_text(json.dumps(results["compare"], indent=1,
                                                        default=float))
    if a.paper:
        _paper(a, results)
    print(f"\ntotal wall time {time.perf_counter() - t_all:.0f} s")
    (a.out / "results.json").write_text(json.dumps(results, indent=1, default=float))


def _paper(a, results: dict) -> None:
    """The paper's parts on derivative data (the benchmark before issue 18)."""

    if "success" not in a.skip:
        runs = _pool([(n, s, a.budget, {"warm_start": not a.no_warm_start})
                      for n in a.examples for s in range(1, a.seeds + 1)], a.workers)
        results["success"] = runs
        start = "random start only" if a.no_warm_start else "sparse-regression warm start"
        print(f"\n== time-to-exact-stoichiometry (PPF, {start}, budget "
              f"{a.budget:.0f} s, 1 core per run, {a.seeds} seeds)")
        print(f"{'example':28s} {'exact+1%':>8s} {'flagged':>8s} {'median s':>9s} {'max s':>7s}"
              f" {'max rate err':>12s}")
        for n in a.examples:
            rs = [r for r in runs if r["example"] == n]
            ok = [r for r in rs if r["rates_within_1pct"]]
            times = [r["time_to_structure"] for r in ok]
            silent = [r for r in rs if r["converged"] and not r["exact"]]
            flagged = sum(not r["converged"] for r in rs)
            print(f"{n:28s} {len(ok):>4d}/{len(rs):<3d} {flagged:>8d} "
                  f"{np.median(times) if times else float('nan'):9.1f} "
                  f"{max(times) if times else float('nan'):7.1f} "
                  f"{max((r['max_rate_error'] for r in ok), default=float('nan')):12.2e}"
                  + (f"   SILENT WRONG: {len(silent)}" if silent else ""))
        (a.out / "success.json").write_text(json.dumps(runs, indent=1, default=float))

    if "baseline" not in a.skip:
        base = _pool([(n, 1, 60.0, {"estimator": {"freezing": False, "population": 1}})
                      for n in ("stiff", "michaelis-menten", "hydrogen-oxidation")], a.workers)
        results["baseline"] = base
        print("\n== without freezing (60 s each, seed 1): the paper's baseline")
        for r in base:
            print(f"-- {r['example']}: exact {r['exact']}, converged {r['converged']}, "
                  f"validation E {r['validation_error']:.2e}, epochs {r['epochs']}")
            print(r["table"])

    if "noise" not in a.skip:
        from rdlab.discover.examples import example
        from rdlab.discover.mechanism import Mechanism
        from rdlab.discover.workflow import trajectory_check
        from rdlab.viz.discover_figures import save_trajectory_comparison

        noisy = _pool([("hydrogen-oxidation", 1, a.budget, {"noise": lvl})
                       for lvl in (1e-3, 1e-4)], a.workers)
        results["noise"] = noisy
        truth = example("hydrogen-oxidation").mechanism
        print("\n== hydrogen oxidation with derivative noise (Table 4.6)")
        for lvl, r in zip((1e-3, 1e-4), noisy):
            print(f"-- noise {lvl:g}: exact stoichiometry {r['exact']}, converged "
                  f"{r['converged']}, time {r['fit_seconds']:.1f} s")
            print("   reaction   kf         kf rel.err   kr         kr rel.err")
            for m in r["matched"]:
                if m["learned"] is None:
                    print(f"   {m['reaction'] + 1}: not found")
                    continue
                print(f"   {m['reaction'] + 1}        {m['kf']:.4e} {m['kf_error']:.3e}    "
                      f"{m['kr']:.4e} {m['kr_error']:.3e}")
            learned = Mechanism.from_dict(r["mechanism"])
            chk = trajectory_check(learned, truth, None, t_end=10.0, n_times=100)
            r["trajectory_error"] = chk["relative_error"]
            print(f"   trajectory error on [0, 10] (100 points): {chk['relative_error']:.3e}")
            save_trajectory_comparison(a.out / f"hydrogen_noise_{lvl:g}.png", chk["times"],
                                       chk["reference"], chk["learned"], truth.species,
                                       title=f"hydrogen oxidation, noise {lvl:g}: learned "
                                             f"(dashed) vs true")

    if "sweep" not in a.skip:
        from rdlab.discover.data import generate
        from rdlab.discover.examples import example
        from rdlab.discover.selection import sweep_reactions
        from rdlab.viz.discover_figures import save_reaction_sweep

        t = time.perf_counter()
        sw = sweep_reactions(generate(example("stiff").mechanism, seed=1), (1, 2, 3, 4),
                             time_budget_s=60.0, seed=1)
        results["sweep"] = sw.to_dict()
        print(f"\n== n_r sweep, stiff example (Table 4.2 / Fig. 4.5), "
              f"{time.perf_counter() - t:.0f} s")
        print(sw.table())
        for n, f in zip(sw.n_reactions, sw.fits):
            print(f"-- n_r = {n}\n{f.mechanism_.table()}")
        save_reaction_sweep(a.out / "sweep_stiff.png", sw.n_reactions, sw.train_error,
                            sw.validation_error, chosen=sw.chosen, title="stiff example")

    if "catalysis" not in a.skip:
        cat = _pool([("autocatalytic", 1, 30.0, {"estimator": {"catalytic": False}}),
                     ("autocatalytic", 1, 30.0, {})], a.workers)
        results["catalysis"] = cat
        print("\n== catalysis: X + Y -> 2Y, Y -> Z")
        for label, r in zip(("V form (paper)", "catalytic form"), cat):
            print(f"-- {label}: exact {r['exact']}, converged {r['converged']}, largest "
                  f"species error {r['max_species_error']:.2e}")
            print(r["table"])


if __name__ == "__main__":
    main()
