"""Code generation for the compiled design engine: forward Euler and its discrete adjoint.

The model is the design dynamics of :mod:`rdlab.design.dynamics` on a periodic grid of unit
spacing, every sample ``b`` of the batch with its own parameters::

    U   = X + dt·[S·v(X) + D∘∇²X + φ∘(x_feed − X)]        v_r = k_r ∏_i X_i^{R_ir}
    X'  = min(max(U, lo), hi)                              (lo, hi) = (0, c_max) or (−∞, ∞)

with ``φ`` the flow ``f`` or a per-step flow field. For one network structure, stencil,
flow mode and dtype, Python source text of ``numba.njit`` functions is written from the
network's reactant matrix ``R`` and stoichiometry ``S`` (unrolled monomials and sums, as the
fast engine's kernels are), ``exec``-ed and compiled:

* ``forward(traj, i0, n, …)`` — ``n`` steps from ``traj[i0]``, writing ``traj[i0 + 1 …]``.
* ``backward(traj, i_hi, n, lam, …)`` — ``n`` steps of the adjoint recursion backwards from
  ``λ_{t_hi}`` to ``λ_{t_hi − n}``, adding the loss's ``dL/dX_t`` where given and
  accumulating the parameter gradients.

**The reaction term.** Reactions sharing a reactant monomial ``M_K = ∏ X_i^{e_Ki}`` are
merged: ``dt·S·v = Σ_q a_q M_{K_q}`` over the *pairs* ``q = (species j, monomial K)`` some
reaction of ``K`` changes, with ``a_q = dt Σ_{r: K(r) = K} S_jr k_r`` (:meth:`AdjointPlan.
pack_rates`). Every divisor of a monomial is built too (each monomial is a parent times one
species), so the partials ``∂M_K/∂X_i = e_Ki M_{K/X_i}`` are exact polynomials.

**The adjoint of one step** (``g = λ_{t+1}`` masked by ``lo ≤ U ≤ hi``, the gradient of
:func:`torch.clamp`; ``U`` is recomputed from ``X_t`` with the same strict arithmetic as the
forward pass, so the mask is the forward's)::

    λ_t,i = g_i − dt·φ_i g_i + Σ_K W_K e_Ki M_{K/X_i} + dt·D_i (∇²g)_i       W_K = Σ_q a_q g_j

(the stencil is symmetric, so ``∇²ᵀ = ∇²``). Pass 1 computes everything but the last term
per cell and writes ``g``; pass 2 adds ``dt·D∘∇²g`` once all of ``g`` is known. The
parameter gradients are sums over cells of products of per-cell values (``M_K g_j`` for
``a_q``, ``g_i (∇²X)_i`` for ``D``, ``φ g_i`` for the feed, ``g_i`` and ``g_i X_i`` for the
flow): pass 1 stores the factors of a row in a per-thread scratch, and a separate reduction
(the only function compiled with ``fastmath``: re-association of a sum changes results by
rounding only) adds their row sums into ``acc (batch, ny, products)``. Per-cell flow-field
gradients ``dt·Σ_i g_i (x_feed,i − X_i)`` are written directly.

**Layout.** States, ``λ`` and ``g`` are ``(batch, species, ny, nx + 2)``: column ``x + 1``
holds cell ``x``, columns ``0`` and ``nx + 1`` the periodic ghosts ``X[nx − 1]`` and ``X[0]``
(so the x loop has contiguous neighbours and vectorises); the trajectory buffer is
``(steps, batch, species, ny, nx + 2)``. Flow fields, their gradients and the loss's
``dL/dX_t`` are unpadded ``(…, ny, nx)``.

Compiled functions are memoised per (structure, stencil, flow mode, dtype). The generated
module is written to a cache folder (:data:`CACHE_ENV`) and numba's ``cache=True`` keeps the
compiled code beside it, so each structure compiles once per machine, not once per process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdlab.chemistry.network import ReactionNetwork
from rdlab.errors import ParameterError
from rdlab.system import STENCILS

__all__ = ["CACHE_ENV", "FLOW_MODES", "AdjointKernels", "AdjointPlan", "compile_adjoint",
           "kernel_source", "module_source"]

#: How the flow enters a step: one ``f`` per sample, one field shared by all species, or one
#: field per species.
FLOW_MODES = ("constant", "shared", "species")


# ---------------------------------------------------------------------------- the plan
def _monomial_order(R: np.ndarray) -> list[tuple[int, ...]]:
    """Return every reactant monomial of ``R (S, R)`` and all its divisors, by slot.

    Slot 0 is the constant 1, slots ``1 … S`` the species, then higher degrees.
    """
    n_s = R.shape[0]
    needed: set[tuple[int, ...]] = set()
    stack = [tuple(int(c) for c in col) for col in R.T]
    while stack:
        m = stack.pop()
        if m in needed:
            continue
        needed.add(m)
        stack += [m[:i] + (m[i] - 1,) + m[i + 1:] for i in range(n_s) if m[i]]
    units = [tuple(int(i == j) for j in range(n_s)) for i in range(n_s)]
    higher = sorted((m for m in needed if sum(m) >= 2),
                    key=lambda m: (sum(m), tuple(-c for c in m)))
    return [(0,) * n_s, *units, *higher]


@dataclass(frozen=True)
class AdjointPlan:
    """The structure of the generated code for one network.

    Attributes
    ----------
    n_species : int
        ``S``.
    monomials : tuple of tuple of int
        Exponents of each monomial slot (slot 0: the constant, ``1 … S``: the species).
    reaction_monomial : tuple of int
        ``(R,)`` slot of each reaction's reactant monomial.
    pairs : tuple of tuple of int
        ``(species j, monomial slot K)`` for every monomial some reaction changes ``j`` by.
    pack_matrix : numpy.ndarray
        ``(P, R)``: ``S_jr`` where reaction ``r`` feeds pair ``q = (j, K(r))``, else 0, so
        that ``a = dt·rates @ pack_matrixᵀ``.
    weights : tuple of tuple of float
        The 3×3 stencil (rows ``y − 1, y, y + 1``; columns ``x − 1, x, x + 1``).
    """

    n_species: int
    monomials: tuple[tuple[int, ...], ...]
    reaction_monomial: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...]
    pack_matrix: np.ndarray
    weights: tuple[tuple[float, ...], ...]

    @classmethod
    def from_network(cls, network: ReactionNetwork, stencil: str = "9-point") -> AdjointPlan:
        """Return the plan of ``network`` with the named stencil.

        Parameters
        ----------
        network : ReactionNetwork
            Any mass-action network.
        stencil : str, default "9-point"
            A name of :data:`rdlab.system.STENCILS`; it must be point-symmetric.

        Returns
        -------
        AdjointPlan
            The plan.

        Raises
        ------
        ParameterError
            If the stencil is unknown or not symmetric.
        """
        if stencil not in STENCILS:
            raise ParameterError(f"unknown stencil {stencil!r}; choose one of "
                                 f"{sorted(STENCILS)}")
        w = np.asarray(STENCILS[stencil], dtype=float)
        if w.shape != (3, 3) or not np.array_equal(w, w[::-1, ::-1]):
            raise ParameterError(f"stencil {stencil!r} is not a symmetric 3×3 stencil")
        R = np.asarray(network.reactant_matrix, dtype=np.int64)
        St = np.asarray(network.stoichiometry, dtype=np.int64)
        order = _monomial_order(R)
        slot = {m: k for k, m in enumerate(order)}
        reaction_monomial = tuple(slot[tuple(int(c) for c in col)] for col in R.T)
        pairs = sorted({(j, reaction_monomial[r]) for r in range(R.shape[1])
                        for j in range(R.shape[0]) if St[j, r] != 0})
        index = {p: q for q, p in enumerate(pairs)}
        pack = np.zeros((len(pairs), R.shape[1]))
        for r, K in enumerate(reaction_monomial):
            for j in np.flatnonzero(St[:, r]):
                pack[index[(int(j), K)], r] = St[j, r]
        return cls(n_species=R.shape[0], monomials=tuple(order),
                   reaction_monomial=reaction_monomial, pairs=tuple(pairs), pack_matrix=pack,
                   weights=tuple(tuple(float(v) for v in row) for row in w))

    @property
    def n_pairs(self) -> int:
        """Number of (species, monomial) coefficients ``P``."""
        return len(self.pairs)

    def pack_rates(self, rates: np.ndarray, dt: float) -> np.ndarray:
        """Return the per-sample pair coefficients ``a (batch, P) = dt·rates @ pack_matrixᵀ``.

        Parameters
        ----------
        rates : numpy.ndarray
            ``(batch, R)`` rate constants.
        dt : float
            Time step (s).

        Returns
        -------
        numpy.ndarray
            ``(batch, P)`` float64.
        """
        return dt * (np.asarray(rates, dtype=float) @ self.pack_matrix.T)

    def unpack_rate_gradient(self, grad_pairs: np.ndarray, dt: float) -> np.ndarray:
        """Return ``dL/dk (batch, R)`` from ``dL/da (batch, P)`` (the transpose of packing).

        Parameters
        ----------
        grad_pairs : numpy.ndarray
            ``(batch, P)`` gradient with respect to the pair coefficients.
        dt : float
            Time step (s).

        Returns
        -------
        numpy.ndarray
            ``(batch, R)``.
        """
        return dt * (grad_pairs @ self.pack_matrix)

    # ------------------------------------------------------------------ scratch rows
    @property
    def scratch_rows(self) -> int:
        """Rows of the per-thread scratch: monomials, then ``g``, ``∇²X`` and ``φ`` rows."""
        return len(self.monomials) + 3 * self.n_species

    def row_g(self, i: int) -> int:
        """Return the scratch row of ``g_i``."""
        return len(self.monomials) + i

    def row_lap(self, i: int) -> int:
        """Return the scratch row of ``(∇²X)_i``."""
        return len(self.monomials) + self.n_species + i

    def row_phi(self, i: int) -> int:
        """Return the scratch row of ``dt·φ_i`` (one per species, also when shared)."""
        return len(self.monomials) + 2 * self.n_species + i

    def products(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the scratch-row pairs ``(u, v)`` whose products are summed per row.

        In order: one per pair ``q`` (``M_K g_j``: ``dL/da_q``), then per species
        ``g_i (∇²X)_i`` (``dL/d(dt·D_i)``), ``dt·φ_i g_i`` (``dL/dx_feed,i``), ``g_i``
        and ``g_i X_i`` (for ``dL/df``).
        """
        S = self.n_species
        u = [self.row_g(j) for j, _ in self.pairs]
        v = [K for _, K in self.pairs]
        for i in range(S):
            u += [self.row_g(i)] * 4
            v += [self.row_lap(i), self.row_phi(i), 0, 1 + i]
        return np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64)

    @property
    def n_products(self) -> int:
        """Number of accumulated products, ``P + 4S``."""
        return self.n_pairs + 4 * self.n_species


# ---------------------------------------------------------------------------- source text
def _lit(v: float) -> str:
    """Return a typed literal (``_T`` is the kernel's float type)."""
    return f"_T({float(v)!r})"


def _lap_expr(weights, arr: str, i: int) -> str:
    """Return the stencil sum of species ``i`` of the padded 3-d array ``arr`` at (y, x)."""
    rows, cols = ("ym", "y", "yp"), ("x - 1", "x", "x + 1")
    groups: dict[float, list[str]] = {}
    for a in range(3):
        for c in range(3):
            if weights[a][c] != 0.0:
                groups.setdefault(weights[a][c], []).append(f"{arr}[{i}, {rows[a]}, {cols[c]}]")
    return " + ".join(f"{_lit(w)} * ({' + '.join(terms)})" for w, terms in groups.items())


def _monomial_names(plan: AdjointPlan) -> list[str]:
    """Return the expression naming each monomial slot (``1``, ``c_i``, ``m_K``)."""
    return [_lit(1.0)] + [f"c{i}" for i in range(plan.n_species)] + \
        [f"m{k}" for k in range(plan.n_species + 1, len(plan.monomials))]


def _state_lines(plan: AdjointPlan, mode: str) -> list[str]:
    """Return the per-cell lines computing ``c, l, m, φ`` and the unclipped ``U``."""
    S, names = plan.n_species, _monomial_names(plan)
    lines = [f"c{i} = Xb[{i}, y, x]" for i in range(S)]
    lines += [f"l{i} = {_lap_expr(plan.weights, 'Xb', i)}" for i in range(S)]
    slot = {m: k for k, m in enumerate(plan.monomials)}
    for k in range(S + 1, len(plan.monomials)):
        m = plan.monomials[k]
        i = max(j for j in range(S) if m[j])
        parent = slot[m[:i] + (m[i] - 1,) + m[i + 1:]]
        lines.append(f"m{k} = {names[parent]} * c{i}")
    if mode == "shared":
        lines.append("ph = dt * Fb[0, y, x - 1]")
    elif mode == "species":
        lines += [f"ph{i} = dt * Fb[{i}, y, x - 1]" for i in range(S)]
    for i in range(S):
        terms = [f"a{q} * {names[K]}" if K else f"a{q}"
                 for q, (j, K) in enumerate(plan.pairs) if j == i]
        reac = " + ".join(terms) if terms else _lit(0.0)
        lines.append(f"u{i} = c{i} + {_phi(mode, i)} * (fd{i} - c{i}) + dd{i} * l{i} "
                     f"+ ({reac})")
    return lines


def _phi(mode: str, i: int) -> str:
    """Return the name of ``dt·φ_i`` in the cell code."""
    return f"ph{i}" if mode == "species" else "ph"


def _row_head(plan: AdjointPlan, mode: str) -> list[str]:
    """Return the lines loading a sample's coefficients and the row's neighbours."""
    S = plan.n_species
    lines = ["ny = Xb.shape[1]", "nx = Xb.shape[2] - 2",
             "ym = y - 1 if y > 0 else ny - 1", "yp = y + 1 if y < ny - 1 else 0"]
    lines += [f"a{q} = a[b, {q}]" for q in range(plan.n_pairs)]
    lines += [f"dd{i} = dd[b, {i}]" for i in range(S)]
    lines += [f"fd{i} = feed[b, {i}]" for i in range(S)]
    if mode == "constant":
        lines.append("ph = phc[b]")
    return lines


def _ghost_lines(plan: AdjointPlan, arr: str) -> list[str]:
    """Return the lines writing the periodic ghost columns of row ``y`` of ``arr``."""
    out = []
    for i in range(plan.n_species):
        out += [f"{arr}[{i}, y, 0] = {arr}[{i}, y, nx]",
                f"{arr}[{i}, y, nx + 1] = {arr}[{i}, y, 1]"]
    return out


def _fn(name: str, args: str, head: list[str], body: list[str], tail: list[str]) -> str:
    """Return a function's source: ``head``, a loop over the cells of the row, ``tail``."""
    text = [f"def {name}({args}):"] + [f"    {h}" for h in head]
    text += ["    for x in range(1, nx + 1):"] + [f"        {line}" for line in body]
    text += [f"    {t}" for t in tail]
    return "\n".join(text) + "\n"


def _forward_row(plan: AdjointPlan, mode: str) -> str:
    """Return the source of ``_fwd_row``: one Euler step of row ``y`` of sample ``b``."""
    body = _state_lines(plan, mode)
    body += [f"Yb[{i}, y, x] = min(max(u{i}, lo), hi)" for i in range(plan.n_species)]
    return _fn("_fwd_row", "Xb, Yb, Fb, b, y, a, dd, phc, feed, lo, hi, dt",
               _row_head(plan, mode), body, _ghost_lines(plan, "Yb"))


def _adjoint_lines(plan: AdjointPlan, mode: str) -> list[str]:
    """Return the per-cell lines of pass 1 after the state: ``g``, ``W``, ``λ``, scratch."""
    S, names = plan.n_species, _monomial_names(plan)
    zero = _lit(0.0)
    lines = [f"g{i} = Lb[{i}, y, x] if (u{i} >= lo and u{i} <= hi) else {zero}"
             for i in range(S)]
    lines += [f"Gb[{i}, y, x] = g{i}" for i in range(S)]
    used = sorted({K for _, K in plan.pairs if K > 0})
    for K in used:
        lines.append(f"w{K} = " + " + ".join(f"a{q} * g{j}" for q, (j, KK) in
                                            enumerate(plan.pairs) if KK == K))
    slot = {m: k for k, m in enumerate(plan.monomials)}
    for i in range(S):
        terms = [f"g{i}", f"- {_phi(mode, i)} * g{i}"]
        for K in used:
            e = plan.monomials[K][i]
            if e:
                m = plan.monomials[K]
                div = names[slot[m[:i] + (e - 1,) + m[i + 1:]]]
                coef = "" if e == 1 else f"{_lit(e)} * "
                terms.append(f"+ {coef}w{K} * {div}")
        lines.append(f"Ob[{i}, y, x] = " + " ".join(terms))
    lines += [f"Sc[{k}, x] = m{k}" for k in range(S + 1, len(plan.monomials))]
    lines += [f"Sc[{1 + i}, x] = c{i}" for i in range(S)]
    lines += [f"Sc[{plan.row_g(i)}, x] = g{i}" for i in range(S)]
    lines += [f"Sc[{plan.row_lap(i)}, x] = l{i}" for i in range(S)]
    lines += [f"Sc[{plan.row_phi(i)}, x] = {_phi(mode, i)}" for i in range(S)]
    if mode == "shared":
        lines.append("GFb[0, y, x - 1] = dt * (" + " + ".join(
            f"g{i} * (fd{i} - c{i})" for i in range(S)) + ")")
    elif mode == "species":
        lines += [f"GFb[{i}, y, x - 1] = dt * (g{i} * (fd{i} - c{i}))" for i in range(S)]
    return lines


def _adjoint_row(plan: AdjointPlan, mode: str) -> str:
    """Return the source of ``_adj_row``: pass 1 of the adjoint for row ``y`` of ``b``."""
    body = _state_lines(plan, mode) + _adjoint_lines(plan, mode)
    tail = _ghost_lines(plan, "Gb") + ["_reduce(Sc, pu, pv, acc_row, nx)"]
    return _fn("_adj_row", "Xb, Lb, Gb, Ob, Sc, Fb, GFb, acc_row, pu, pv, b, y, a, dd, phc, "
               "feed, lo, hi, dt", _row_head(plan, mode), body, tail)


def _diffusion_row(plan: AdjointPlan) -> str:
    """Return the source of ``_dif_row``: pass 2, ``λ_t += dt·D∘∇²g (+ dL/dX_t)``."""
    S = plan.n_species
    head = ["ny = Gb.shape[1]", "nx = Gb.shape[2] - 2",
            "ym = y - 1 if y > 0 else ny - 1", "yp = y + 1 if y < ny - 1 else 0"]
    head += [f"dd{i} = dd[b, {i}]" for i in range(S)]
    body = [f"Ob[{i}, y, x] += dd{i} * ({_lap_expr(plan.weights, 'Gb', i)})"
            for i in range(S)]
    tail = ["if inject:"] + [f"    for x in range(1, nx + 1):\n"
                             f"            Ob[{i}, y, x] += Ib[{i}, y, x - 1]" for i in range(S)]
    return _fn("_dif_row", "Gb, Ob, Ib, inject, b, y, dd", head, body, tail)


_DRIVERS = '''
def _reduce(Sc, pu, pv, acc_row, nx):
    for p in range(pu.shape[0]):
        u = Sc[pu[p]]
        v = Sc[pv[p]]
        s = _T(0.0)
        for x in range(1, nx + 1):
            s += u[x] * v[x]
        acc_row[p] += s


def forward(traj, i0, n, F, t0, fsel, a, dd, phc, feed, lo, hi, dt):
    B = traj.shape[1]
    ny = traj.shape[3]
    for k in range(n):
        X = traj[i0 + k]
        Y = traj[i0 + k + 1]
        Ft = F[(t0 + k) * fsel]
        nbf = Ft.shape[0]
        for q in prange(B * ny):
            b = q // ny
            y = q - b * ny
            _fwd_row(X[b], Y[b], Ft[b if nbf > 1 else 0], b, y, a, dd, phc, feed, lo, hi, dt)


def backward(traj, i_hi, n, t_hi, lam, tmp, G, scratch, acc, F, fsel, GF, gsel, slots, inj,
             pu, pv, a, dd, phc, feed, lo, hi, dt):
    B = traj.shape[1]
    ny = traj.shape[3]
    src = lam
    dst = tmp
    for k in range(n):
        t = t_hi - 1 - k
        X = traj[i_hi - 1 - k]
        Ft = F[t * fsel]
        GFt = GF[t * gsel]
        nbf = Ft.shape[0]
        for q in prange(B * ny):
            b = q // ny
            y = q - b * ny
            Sc = scratch[get_thread_id()]
            _adj_row(X[b], src[b], G[b], dst[b], Sc, Ft[b if nbf > 1 else 0], GFt[b],
                     acc[b, y], pu, pv, b, y, a, dd, phc, feed, lo, hi, dt)
        s_ = slots[t]
        It = inj[max(s_, 0)]
        for q in prange(B * ny):
            b = q // ny
            y = q - b * ny
            _dif_row(G[b], dst[b], It[b], s_ >= 0, b, y, dd)
        src, dst = dst, src
    if n % 2 == 1:
        lam[:] = src
'''


def kernel_source(plan: AdjointPlan, mode: str) -> str:
    """Return the Python source of the kernels for ``plan`` and flow ``mode``.

    Parameters
    ----------
    plan : AdjointPlan
        The network's plan.
    mode : str
        One of :data:`FLOW_MODES`.

    Returns
    -------
    str
        Source defining ``_fwd_row``, ``_adj_row``, ``_dif_row``, ``_reduce``, ``forward``
        and ``backward`` (``_T``, ``prange`` and ``get_thread_id`` are globals).
    """
    if mode not in FLOW_MODES:
        raise ParameterError(f"unknown flow mode {mode!r}; choose one of {FLOW_MODES}")
    return "\n\n".join([_forward_row(plan, mode), _adjoint_row(plan, mode),
                        _diffusion_row(plan), _DRIVERS])


# ---------------------------------------------------------------------------- compiling
@dataclass(frozen=True)
class AdjointKernels:
    """The compiled kernels of one network structure, stencil, flow mode and dtype.

    Attributes
    ----------
    plan : AdjointPlan
        The structure they were generated from.
    mode : str
        The flow mode (:data:`FLOW_MODES`).
    dtype : numpy.dtype
        float32 or float64: every array passed must have it.
    forward, backward : callable
        The numba drivers (see the module docstring).
    source : str
        The generated source.
    """

    plan: AdjointPlan
    mode: str
    dtype: np.dtype
    forward: object
    backward: object
    source: str


_JIT = 'error_model="numpy", boundscheck=False, cache=_DISK'
_MODULE_HEAD = """# Generated by rdlab.simulate.adjoint_codegen; do not edit.
# Compiled with LLVM options {options}
import numba
import numpy as np
from numba import get_thread_id, prange

_T = np.{dtype}
_DISK = {disk}
"""
_MODULE_TAIL = f"""
_fwd_row = numba.njit({_JIT})(_fwd_row)
_adj_row = numba.njit({_JIT})(_adj_row)
_dif_row = numba.njit({_JIT})(_dif_row)
_reduce = numba.njit(fastmath={{"reassoc", "contract"}}, {_JIT})(_reduce)
forward = numba.njit(parallel=True, {_JIT})(forward)
backward = numba.njit(parallel=True, {_JIT})(backward)
"""
_CACHE: dict = {}
_LOCK = threading.Lock()


def _structure_key(network: ReactionNetwork, stencil: str, mode: str, dtype) -> tuple:
    """Return the memo key: structure, stencil, flow mode and dtype."""
    R = np.asarray(network.reactant_matrix, dtype=np.int64)
    St = np.asarray(network.stoichiometry, dtype=np.int64)
    return (R.shape, R.tobytes(), St.tobytes(), stencil, mode, np.dtype(dtype).name)

#: Environment variable naming the folder of generated kernel modules (numba caches their
#: compiled code beside them); ``off`` compiles in memory only. Default: ``rdlab/kernels``
#: under ``$XDG_CACHE_HOME`` (``~/.cache``).
CACHE_ENV = "RDLAB_KERNEL_CACHE"


#: LLVM's limits on the run-time alias checks of a vectorised loop, raised (defaults 8 and
#: 128) so that a row loop reading and writing many species rows still vectorises. They are
#: process-wide ``llvmlite`` options; they change which loops vectorise, never results.
LLVM_OPTIONS = ("-runtime-memory-check-threshold=4000", "-vectorize-memory-check-threshold=4000")
_OPTIONS_SET = False


def _set_llvm_options() -> None:
    """Raise LLVM's alias-check limits once per process (see :data:`LLVM_OPTIONS`)."""
    global _OPTIONS_SET
    if not _OPTIONS_SET:
        import llvmlite.binding as llvm

        for option in LLVM_OPTIONS:
            llvm.set_option("", option)
        _OPTIONS_SET = True


def _cache_dir() -> Path | None:
    """Return the folder for generated modules, or ``None`` when disk caching is off."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rdlab" / "kernels"


def module_source(plan: AdjointPlan, mode: str, dtype, disk: bool = True) -> str:
    """Return the source of a module holding the kernels, jitted (with ``cache`` if ``disk``).

    Parameters
    ----------
    plan : AdjointPlan
        The network's plan.
    mode : str
        One of :data:`FLOW_MODES`.
    dtype : numpy dtype
        float32 or float64 (the kernels' ``_T``).
    disk : bool, default True
        Whether numba caches the compiled code beside the module file.

    Returns
    -------
    str
        Python source.
    """
    head = _MODULE_HEAD.format(dtype=np.dtype(dtype).name, disk=bool(disk),
                               options=" ".join(LLVM_OPTIONS))
    return head + "\n\n" + kernel_source(plan, mode) + _MODULE_TAIL


def _load_module(source: str, name: str, folder: Path | None):
    """Import ``source`` as a module, from a file in ``folder`` when it is writable.

    The file is kept, so numba's on-disk cache applies on later runs; with ``folder`` ``None``
    or unwritable the module lives in memory only.
    """
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}.py"
            if not path.exists() or path.read_text() != source:
                tmp = folder / f".{name}.{os.getpid()}.tmp"
                tmp.write_text(source)
                os.replace(tmp, path)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # numba's cache re-imports it by name
            spec.loader.exec_module(module)
            return module
        except OSError:
            source = source.replace("_DISK = True", "_DISK = False")
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def compile_adjoint(network: ReactionNetwork, stencil: str = "9-point",
                    mode: str = "constant", dtype=np.float64) -> AdjointKernels:
    """Return the kernels for ``network`` (memoised on its structure, not its rates).

    The generated module is written to the kernel cache folder (:data:`CACHE_ENV`) and
    numba caches the compiled code beside it, so a structure compiles once per machine.

    Parameters
    ----------
    network : ReactionNetwork
        The reaction network; only ``R`` and ``S`` shape the code.
    stencil : str, default "9-point"
        A symmetric stencil of :data:`rdlab.system.STENCILS`.
    mode : str, default "constant"
        Flow mode, one of :data:`FLOW_MODES`.
    dtype : numpy dtype, default float64
        float32 or float64.

    Returns
    -------
    AdjointKernels
        numba dispatchers; they compile (or load from the cache) on first call.

    Raises
    ------
    ParameterError
        For an unknown stencil or mode, or another dtype.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"the compiled design engine runs in float32 or float64, not "
                             f"{dtype}")
    key = _structure_key(network, stencil, mode, dtype)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        plan = AdjointPlan.from_network(network, stencil)
        _set_llvm_options()
        folder = _cache_dir()
        source = module_source(plan, mode, dtype, disk=folder is not None)
        digest = hashlib.sha256(source.encode()).hexdigest()[:20]
        module = _load_module(source, f"rdlab_adjoint_{digest}", folder)
        kernels = AdjointKernels(plan=plan, mode=mode, dtype=dtype, forward=module.forward,
                                 backward=module.backward, source=source)
        _CACHE[key] = kernels
        return kernels
