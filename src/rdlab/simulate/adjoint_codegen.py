"""Code generation for the compiled design engine: forward Euler and its discrete adjoint.

The model is the design dynamics of :mod:`rdlab.design.dynamics` on a periodic grid of unit
spacing, every sample ``b`` of the batch with its own parameters::

    U   = X + dt·[S·v(X) + D∘∇²X + φ∘(x_feed − X)]        v_r = k_r ∏_i X_i^{R_ir}
    X'  = min(max(U, lo), hi)                              (lo, hi) = (0, c_max) or (−∞, ∞)

with ``φ`` the flow ``f`` or a per-step flow field. For one network structure, stencil,
flow mode and dtype, *cell programs* are written from the network's reactant matrix ``R``
and stoichiometry ``S`` (unrolled monomials and sums, as the fast engine's kernels are) and
compiled by :mod:`rdlab.simulate.simd_codegen` into explicit-SIMD row kernels (LLVM vectors
of 16 float32 / 8 float64 cells with AVX-512, strict IEEE arithmetic in the program's order);
small ``numba.njit`` drivers, generated as Python source, run them:

* ``forward(traj, masks, i0, n, …)`` — ``n`` steps from ``traj[i0]``, writing
  ``traj[i0 + 1 …]`` and each step's clip mask ``masks[i0 …]`` (one bit per cell and
  species, ``(steps, batch, species, ny, mask_bytes)`` uint8).
* ``backward(traj, masks, i_hi, n, lam, …)`` — ``n`` steps of the adjoint recursion backwards from
  ``λ_{t_hi}`` to ``λ_{t_hi − n}``, adding the loss's ``dL/dX_t`` where given and
  accumulating the parameter gradients.

Each runs one parallel region per call, the samples spread over numba's threads, every
sample taking all its steps in one task (for at least as many samples as threads);
``forward_rows`` / ``backward_rows`` take the samples one after the other and share each
step's rows out to the threads, one band of consecutive rows (forward) or of row blocks
(backward) per thread (for fewer samples than threads, e.g. one: a parallel region of a
few µs per step, about 1.5× faster on two idle cores, but every step waits for the
slowest thread, so on an oversubscribed machine one thread does better); they take the
number of threads as their last argument. Inside a parallel region every array view is
taken afresh: views handed into the region from outside it made the row kernels about
twice as slow (64², 5 species, AVX-512: forward 0.84 against 0.45 ms for 64 steps).
``forward_serial`` / ``backward_serial`` run on the calling thread.

**The reaction term.** Reactions sharing a reactant monomial ``M_K = ∏ X_i^{e_Ki}`` are
merged: ``dt·S·v = Σ_q a_q M_{K_q}`` over the *pairs* ``q = (species j, monomial K)`` some
reaction of ``K`` changes, with ``a_q = dt Σ_{r: K(r) = K} S_jr k_r`` (:meth:`AdjointPlan.
pack_rates`). Every divisor of a monomial is built too (each monomial is a parent times one
species), so the partials ``∂M_K/∂X_i = e_Ki M_{K/X_i}`` are exact polynomials.

**The adjoint of one step** (``g = λ_{t+1}`` masked by ``lo ≤ U ≤ hi``, the gradient of
:func:`torch.clamp`, stored as bits by the forward pass)::

    λ_t,i = g_i − dt·φ_i g_i + Σ_K W_K e_Ki M_{K/X_i} + dt·D_i (∇²g)_i       W_K = Σ_q a_q g_j

(the stencil is symmetric, so ``∇²ᵀ = ∇²``). Pass 1 computes everything but the last term
per cell and writes ``g``; pass 2 adds ``dt·D∘∇²g`` once all of ``g`` is known (and the
loss's ``dL/dX_t``, in the same pass). The parameter gradients are sums over cells of
products of per-cell values (``M_K g_j`` for ``a_q``, ``g_i (∇²X)_i`` for ``D``, ``φ g_i``
for the feed, ``g_i`` and ``g_i X_i`` for the flow). All but the diffusion ones are summed,
after pass 1, by *product kernels* (:func:`product_programs`): each takes a group of at most
:data:`GROUP_SUMS` products, keeps their per-lane sums in vector registers over the whole
grid (rebuilding its monomials from ``X``, reading ``g`` back) and adds them, widened, into
the pass's float64 sums ``(products, VL)`` — some 150 sums no longer read and written at every
chunk; the groups are independent, so the threads share them out. Pass 2 adds
``X_i (∇²g)_i``, whose sum over the periodic grid equals ``Σ g_i (∇²X)_i``, into per-lane
sums ``A (products, VL)`` in the kernel dtype, added into the float64 sums after each step.
The lanes are added up at the end of the pass (these sums may differ from a cell-by-cell sum
by rounding). Per-cell flow-field gradients ``dt·Σ_i g_i (x_feed,i − X_i)`` are written
directly by pass 1.

**Register pressure** (AVX2 has 16 vector registers): the cell programs build each monomial
just before its terms, depth first from its parent (:func:`_monomial_tree`), and add the
terms to per-species sums at once (the forward's reaction sums, pass 1's ``λ``), so that
about a dozen values stay alive instead of every monomial (spilled to the stack at every
chunk otherwise); stores come last in pass 1 (an earlier store might alias ``X`` and would
pin its loads before it).

**Layout.** States, ``λ``, ``g``, flow fields and their gradients are ``(…, ny, nxp)``
with ``nxp = ⌈nx / VL⌉·VL + 2`` (:func:`padded_width`): column ``x + 1`` holds cell ``x``,
columns ``0`` and ``nx + 1`` the periodic ghosts ``X[nx − 1]`` and ``X[0]``, the columns after
them zeros (vectors of ``VL`` cells run over them); the trajectory buffer is ``(steps, batch,
species, ny, nxp)``. The loss's ``dL/dX_t`` is read unpadded (cell ``x`` in column ``x``,
``⌈nx / VL⌉·VL`` columns), so the caller's array serves as it is when ``VL`` divides ``nx``.

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
from rdlab.simulate import simd_codegen
from rdlab.simulate.fast_codegen import VECTOR_BYTES, lanes
from rdlab.simulate.simd_codegen import RowProgram, SumProgram, mask_bytes
from rdlab.system import STENCILS

__all__ = ["CACHE_ENV", "FLOW_MODES", "GROUP_SUMS", "ROW_BLOCK", "AdjointKernels", "AdjointPlan",
           "compile_adjoint", "kernel_source", "mask_bytes", "module_source", "padded_width",
           "product_programs", "programs"]

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

    def pack(self, rates: np.ndarray, dd: np.ndarray, feed: np.ndarray, phc: np.ndarray,
             lo: float, hi: float, dt: float, dtype) -> np.ndarray:
        """Return each sample's coefficient row of the kernels.

        Parameters
        ----------
        rates : numpy.ndarray
            ``(batch, R)`` rate constants.
        dd : numpy.ndarray
            ``(batch, S)``: ``dt·D``.
        feed : numpy.ndarray
            ``(batch, S)`` feed concentrations.
        phc : numpy.ndarray
            ``(batch,)``: ``dt·f``.
        lo, hi : float
            The clip bounds (``±inf`` without the clip).
        dt : float
            Time step (s).
        dtype : numpy dtype
            The kernels' dtype.

        Returns
        -------
        numpy.ndarray
            ``(batch, P + 2S + 4)``: ``a``, ``dt·D``, feed, ``dt·f``, ``lo``, ``hi``, ``dt``.
        """
        B = len(rates)
        rest = np.broadcast_to(np.array([lo, hi, dt]), (B, 3))
        row = np.concatenate([self.pack_rates(rates, dt), dd, feed, np.reshape(phc, (B, 1)),
                              rest], axis=1)
        return np.ascontiguousarray(row, dtype=dtype)

    @property
    def n_products(self) -> int:
        """Number of accumulated products, ``P + 4S``.

        ``dL/da_q`` for each pair, then per species ``g·∇²X``, ``dt·φ·g``, ``g`` and ``g·X``.
        """
        return self.n_pairs + 4 * self.n_species


# ---------------------------------------------------------------------------- cell programs
def _lit(v: float) -> str:
    """Return a number literal of a cell program."""
    return repr(float(v))


def _lap_expr(weights, arr: str, i: int) -> str:
    """Return the stencil sum of row ``i`` of the padded 3-d array ``arr`` at (y, x)."""
    rows, cols = ("ym", "y", "yp"), ("x - 1", "x", "x + 1")
    groups: dict[float, list[str]] = {}
    for a in range(3):
        for c in range(3):
            if weights[a][c] != 0.0:
                groups.setdefault(weights[a][c], []).append(f"{arr}[{i}, {rows[a]}, {cols[c]}]")
    return " + ".join(f"{_lit(w)} * ({' + '.join(terms)})" for w, terms in groups.items())


def _tree_sum(terms: list[str]) -> str:
    """Return the sum of ``terms`` as up to four interleaved chains added pairwise.

    Independent chains let consecutive additions overlap (one long chain waits on each
    addition's latency); the grouping is fixed by the text, so every kernel evaluating it
    rounds the same way.
    """
    n = max(1, min(4, len(terms) // 4))
    chains = [" + ".join(terms[c::n]) for c in range(n)]
    while len(chains) > 1:
        chains = [f"({chains[q]}) + ({chains[q + 1]})" if q + 1 < len(chains) else chains[q]
                  for q in range(0, len(chains), 2)]
    return chains[0]


def _monomial_names(plan: AdjointPlan) -> list[str]:
    """Return the expression naming each monomial slot (``1.0``, ``c_i``, ``m_K``)."""
    return [_lit(1.0)] + [f"c{i}" for i in range(plan.n_species)] + \
        [f"m{k}" for k in range(plan.n_species + 1, len(plan.monomials))]


def _cell_lines(plan: AdjointPlan, mode: str) -> list[str]:
    """Return the cell lines loading ``c`` and building every monomial ``m`` and ``dt·φ``."""
    S, names = plan.n_species, _monomial_names(plan)
    lines = [f"c{i} = X[{i}, y, x]" for i in range(S)]
    slot = {m: k for k, m in enumerate(plan.monomials)}
    for k in range(S + 1, len(plan.monomials)):
        m = plan.monomials[k]
        i = max(j for j in range(S) if m[j])
        parent = slot[m[:i] + (m[i] - 1,) + m[i + 1:]]
        lines.append(f"m{k} = {names[parent]} * c{i}")
    if mode == "constant":
        lines.append("ph = phc")
    elif mode == "shared":
        lines.append("ph = dt * F[0, y, x]")
    else:
        lines += [f"ph{i} = dt * F[{i}, y, x]" for i in range(S)]
    return lines


def _monomial_tree(plan: AdjointPlan) -> list[tuple[int, int, int]]:
    """Return ``(slot, parent slot, species)`` of every monomial of degree ≥ 2, depth first.

    Monomial ``K`` is its parent (``K`` less its last species) times that species; each
    parent is followed at once by its children, so that a cell program building them in
    this order keeps only one monomial per degree alive.
    """
    S = plan.n_species
    slot = {m: k for k, m in enumerate(plan.monomials)}
    children: dict[int, list[tuple[int, int]]] = {}
    for k in range(S + 1, len(plan.monomials)):
        m = plan.monomials[k]
        i = max(j for j in range(S) if m[j])
        children.setdefault(slot[m[:i] + (m[i] - 1,) + m[i + 1:]], []).append((k, i))
    out: list[tuple[int, int, int]] = []
    stack = [(k, 0, 0) for k in reversed(range(1, S + 1))]
    while stack:
        k, parent, i = stack.pop()
        if parent:
            out.append((k, parent, i))
        stack += [(c, k, j) for c, j in reversed(children.get(k, []))]
    return out


def _state_lines(plan: AdjointPlan, mode: str) -> list[str]:
    """Return the cell lines computing the unclipped ``U`` (as ``u0 …``).

    The reaction sums ``r_j`` are accumulated monomial by monomial, each monomial built
    (:func:`_monomial_tree`) just before its terms: some 12 values stay alive (the species,
    the sums, a monomial or two), within the 16 vector registers of AVX2, where building
    every monomial first spills most of them to the stack at every chunk.
    """
    S, names = plan.n_species, _monomial_names(plan)
    lines = [f"c{i} = X[{i}, y, x]" for i in range(S)]
    lines += _cell_lines(plan, mode)[-(S if mode == "species" else 1):]  # dt·φ
    started: set[int] = set()
    by_monomial: dict[int, list[tuple[int, int]]] = {}
    for q, (j, K) in enumerate(plan.pairs):
        by_monomial.setdefault(K, []).append((q, j))

    def terms(K: int) -> None:
        for q, j in by_monomial.get(K, []):
            term = f"a{q} * {names[K]}" if K else f"a{q}"
            lines.append(f"r{j} = r{j} + {term}" if j in started else f"r{j} = {term}")
            started.add(j)

    for K in range(S + 1):
        terms(K)
    for k, parent, i in _monomial_tree(plan):
        lines.append(f"m{k} = {names[parent]} * c{i}")
        terms(k)
    for i in range(S):
        reac = f"r{i}" if i in started else _lit(0.0)
        lines += [f"l{i} = {_lap_expr(plan.weights, 'X', i)}",
                  f"u{i} = c{i} + {_phi(mode, i)} * (fd{i} - c{i}) + dd{i} * l{i} + ({reac})"]
    return lines


def _phi(mode: str, i: int) -> str:
    """Return the name of ``dt·φ_i`` in the cell code."""
    return f"ph{i}" if mode == "species" else "ph"


def _params(plan: AdjointPlan) -> tuple[str, ...]:
    """Return the names of a sample's coefficient row (see :meth:`AdjointPlan.pack`)."""
    S = plan.n_species
    return (*(f"a{q}" for q in range(plan.n_pairs)), *(f"dd{i}" for i in range(S)),
            *(f"fd{i}" for i in range(S)), "phc", "lo", "hi", "dt")


def _forward_program(plan: AdjointPlan, mode: str) -> RowProgram:
    """Return the cell program of one Euler step (``X`` → ``Y``)."""
    lines = []
    for line in _state_lines(plan, mode):
        lines.append(line)
        if line.startswith("u"):  # stored at once: u is not kept alive
            i = line[1:line.index(" ")]
            lines += [f"Y[{i}, y, x] = clip(u{i})", f"M[{i}, y] = inside(u{i})"]
    return RowProgram(arrays=(("X", 3), ("Y", 3), ("F", 3), ("M", 3)), params=_params(plan),
                      lines=tuple(lines), bits=("M",), contract=True)


def _lambda_lines(plan: AdjointPlan, mode: str) -> list[str]:
    """Return the cell lines loading ``c``, ``dt·φ``, ``g`` and computing ``λ`` less diffusion.

    Monomial by monomial (:func:`_monomial_tree`): ``W_K`` is formed and added at once to
    every ``λ_i`` it reaches, ``e_Ki W_K M_{K/i}`` (``e W_K`` as ``W_K + W_K …``, an
    addition instead of a multiplication); a divisor ``M_{K/i}`` is the monomial's parent,
    a species, or rebuilt from two species. About 15 values stay alive (``c``, ``g``, the
    sums ``o``), where forming every monomial and every ``W_K`` first spills most of them.
    """
    S, names = plan.n_species, _monomial_names(plan)
    lines = [f"c{i} = X[{i}, y, x]" for i in range(S)]
    lines += _cell_lines(plan, mode)[-(S if mode == "species" else 1):]  # dt·φ
    lines += [f"g{i} = pick(M[{i}, y], L[{i}, y, x])" for i in range(S)]
    lines += [f"o{i} = g{i} - {_phi(mode, i)} * g{i}" for i in range(S)]
    by_monomial: dict[int, list[tuple[int, int]]] = {}
    for q, (j, K) in enumerate(plan.pairs):
        by_monomial.setdefault(K, []).append((q, j))
    slot = {m: k for k, m in enumerate(plan.monomials)}

    def divisor(m: tuple[int, ...], live: dict[int, str]) -> str:
        k = slot.get(m)
        if k is not None and k in live:
            return live[k]
        factors = [f"c{j}" for j in range(S) for _ in range(m[j])]
        return " * ".join(factors) if factors else _lit(1.0)

    def visit(K: int, live: dict[int, str]) -> None:
        if K == 0 or K not in by_monomial:
            return
        lines.append(f"w{K} = " + _tree_sum([f"a{q} * g{j}" for q, j in by_monomial[K]]))
        m = plan.monomials[K]
        for i in range(S):
            if m[i]:
                coef = " + ".join([f"w{K}"] * m[i])
                div = divisor(m[:i] + (m[i] - 1,) + m[i + 1:], live)
                term = f"({coef})" if div == _lit(1.0) else f"({coef}) * ({div})"
                lines.append(f"o{i} = o{i} + {term}")

    units = {k: f"c{k - 1}" for k in range(1, S + 1)}
    for K in range(1, S + 1):
        visit(K, units)
    for k, parent, i in _monomial_tree(plan):
        pname = names[parent]
        lines.append(f"m{k} = {pname} * c{i}")
        visit(k, {**units, parent: pname})
    # stored last: a store before a load of X could alias it, so X would be loaded early
    lines += [f"G[{i}, y, x] = g{i}" for i in range(S)]
    lines += [f"O[{i}, y, x] = o{i}" for i in range(S)]
    return lines


def _flow_gradient_lines(plan: AdjointPlan, mode: str) -> list[str]:
    """Return the cell lines writing the per-cell flow-field gradients ``GF`` (noisy flow)."""
    S = plan.n_species
    if mode == "shared":
        return ["GF[0, y, x] = dt * (" + " + ".join(
            f"g{i} * (fd{i} - c{i})" for i in range(S)) + ")"]
    if mode == "species":
        return [f"GF[{i}, y, x] = dt * (g{i} * (fd{i} - c{i}))" for i in range(S)]
    return []


#: Rows per block of a step: the row split's unit of work, and of the diffusion sums.
ROW_BLOCK = 4

#: Most sums one product kernel keeps in vector registers, besides the group's monomials
#: and a few loaded values: 10 of AVX2's 16 registers, 20 of AVX-512's 32 (measured on the
#: kitchen sink, 5 species, 64², float32: the backward pass 1.4 ms with 10 sums a group,
#: 1.2 ms with 20 or 24, 1.25 ms with 32, on 2 AVX-512 cores).
GROUP_SUMS = 20 if VECTOR_BYTES == 64 else 10


def _product_groups(plan: AdjointPlan, mode: str) -> list[tuple[str, ...]]:
    """Return the statements of each product kernel (:func:`product_programs`).

    Product ``p`` (:attr:`AdjointPlan.n_products`) is summed over the step's cells: ``g_j M_K``
    per pair, then per species ``dt·φ_i g_i``, ``g_i`` and ``g_i X_i`` (``g_i (∇²X)_i`` is
    pass 2's). A group takes the pairs of a few monomials, each monomial (rebuilt from ``X``)
    zeroed in the lanes past the row's end (``inrow``), or a few species' sums with ``g``
    zeroed there; ``g`` is read back from pass 1's ``G``.
    """
    names = _monomial_names(plan)
    head = _cell_lines(plan, mode)  # unused values are dropped by the compiler
    by_monomial: dict[int, list[tuple[int, int]]] = {}
    for q, (j, K) in enumerate(plan.pairs):
        by_monomial.setdefault(K, []).append((q, j))
    chunks: list[list[str]] = []
    count = GROUP_SUMS
    for K, members in sorted(by_monomial.items()):
        if count + len(members) > GROUP_SUMS:
            chunks.append([])
            count = 0
        chunks[-1].append(f"k{K} = {names[K]} * W[0, x]")
        chunks[-1] += [f"S[{q}] += G[{j}, y, x] * k{K}" for q, j in members]
        count += len(members)
    per_group = max(1, GROUP_SUMS // 3)
    for i0 in range(0, plan.n_species, per_group):
        lines = []
        for i in range(i0, min(plan.n_species, i0 + per_group)):
            p = plan.n_pairs + 4 * i
            lines += [f"h{i} = G[{i}, y, x] * W[0, x]", f"S[{p + 1}] += h{i} * {_phi(mode, i)}",
                      f"S[{p + 2}] += h{i}", f"S[{p + 3}] += h{i} * c{i}"]
        chunks.append(lines)
    return [tuple(head + c) for c in chunks]


def product_programs(plan: AdjointPlan, mode: str) -> list[SumProgram]:
    """Return the kernels summing a step's parameter-gradient products, one per group.

    Each keeps its few sums in vector registers over the whole grid, reading ``X``, pass 1's
    ``g`` (``G``) and the flow field ``F``, and adds them into the step's float64 sums; the
    groups are independent, so the threads share them out.

    Parameters
    ----------
    plan : AdjointPlan
        The network's plan.
    mode : str
        One of :data:`FLOW_MODES`.

    Returns
    -------
    list of SumProgram
        One program of one group each (at most :data:`GROUP_SUMS` sums, or one monomial's
        pairs).
    """
    return [SumProgram(arrays=(("X", 3), ("G", 3), ("F", 3), ("W", 2)), params=_params(plan),
                       groups=(lines,)) for lines in _product_groups(plan, mode)]


def _adjoint_program(plan: AdjointPlan, mode: str) -> RowProgram:
    """Return pass 1 of the adjoint step: ``g``, ``λ`` less diffusion, and column sums.

    The clip's mask is the forward pass's (its bit array ``M``), so ``U`` is not recomputed.
    """
    lines = _lambda_lines(plan, mode)
    lines += _flow_gradient_lines(plan, mode)
    return RowProgram(arrays=(("X", 3), ("L", 3), ("G", 3), ("O", 3), ("F", 3), ("GF", 3),
                              ("M", 3)), params=_params(plan), lines=tuple(lines),
                      bits=("M",), contract=True)


def _diffusion_program(plan: AdjointPlan, inject: bool) -> RowProgram:
    """Return pass 2 of the adjoint step: ``λ_t += dt·D∘∇²g`` (then ``+= dL/dX_t``).

    The loss's ``I = dL/dX_t`` is unpadded: cell ``x`` in column ``x`` (not ``x + 1``), at
    least ``⌈nx / VL⌉·VL`` columns.

    It also adds ``X_i (∇²g)_i`` into the per-lane sums ``A[i]`` (one per species, a set
    per block of rows): over the periodic grid it equals ``Σ g_i (∇²X)_i`` (the stencil is
    symmetric), the gradient of ``D_i``.
    """
    lines = []
    for i in range(plan.n_species):
        tail = f" + I[{i}, y, x - 1]" if inject else ""
        lines += [f"q{i} = {_lap_expr(plan.weights, 'G', i)}",
                  f"O[{i}, y, x] = O[{i}, y, x] + dd{i} * q{i}{tail}",
                  f"A[{i}, 0] = A[{i}, 0] + inrow(X[{i}, y, x]) * q{i}"]
    return RowProgram(arrays=(("G", 3), ("O", 3), ("X", 3), ("I", 3), ("A", 2)),
                      params=_params(plan), lines=tuple(lines), contract=True)


_DRIVERS = '''
def _rows(y, ny):
    return y - 1 if y > 0 else ny - 1, y + 1 if y < ny - 1 else 0


def _ghosts(Y, y, nx):
    for i in range(Y.shape[0]):
        Y[i, y, 0] = Y[i, y, nx]
        Y[i, y, nx + 1] = Y[i, y, 1]
        for c in range(nx + 2, Y.shape[2]):
            Y[i, y, c] = _T(0.0)


def _copy(dst, src):
    # element by element: numba compiles a slice assignment (dst[...] = src) with its
    # broadcasting checks and their messages for ~15 s, the whole rest of a driver for less
    for i in range(dst.shape[0]):
        for y in range(dst.shape[1]):
            for x in range(dst.shape[2]):
                dst[i, y, x] = src[i, y, x]


def _forward_sample(traj, masks, b, i0, n, F, t0, fsel, pb, nx):
    ny = traj.shape[3]
    for k in range(n):
        X = traj[i0 + k, b]
        Y = traj[i0 + k + 1, b]
        Mk = masks[i0 + k, b]
        Ft = F[(t0 + k) * fsel]
        Fb = Ft[min(b, Ft.shape[0] - 1)]
        for y in range(ny):
            ym, yp = _rows(y, ny)
            _fwd_cells(X, Y, Fb, Mk, pb, y, ym, yp, nx)
            _ghosts(Y, y, nx)


def forward_serial(traj, masks, i0, n, F, t0, fsel, prm, nx):
    for q in range(traj.shape[1]):
        b = np.int64(q)
        _forward_sample(traj, masks, b, i0, n, F, t0, fsel, prm[b], nx)


def forward(traj, masks, i0, n, F, t0, fsel, prm, nx):
    for q in prange(traj.shape[1]):
        b = np.int64(q)
        _forward_sample(traj, masks, b, i0, n, F, t0, fsel, prm[b], nx)


def _block(q, ny):
    # rows of block q: blocks of _RB rows, whatever the threads (so the diffusion sums, kept
    # per block, add up in the same order on any number of threads)
    return q * _RB, min(ny, (q + 1) * _RB)


def forward_rows(traj, masks, i0, n, F, t0, fsel, prm, nx, threads):
    # one parallel region per step, one band of consecutive rows per thread. The views are
    # taken inside the region: handed in from outside (numba passes them to the region's
    # function as arguments) they made the row kernel 1.9× slower (64², 5 species).
    ny = traj.shape[3]
    nb = max(1, min(threads, ny))
    for s_ in range(traj.shape[1]):
        for k in range(n):
            for q in prange(nb):
                b = np.int64(s_)
                X = traj[i0 + k, b]
                Y = traj[i0 + k + 1, b]
                Mk = masks[i0 + k, b]
                Ft = F[(t0 + k) * fsel]
                Fb = Ft[min(b, Ft.shape[0] - 1)]
                pb = prm[b]
                for y in range(q * ny // nb, (q + 1) * ny // nb):
                    ym, yp = _rows(y, ny)
                    _fwd_cells(X, Y, Fb, Mk, pb, y, ym, yp, nx)
                    _ghosts(Y, y, nx)


def _flush(A, acc):
    # each row block's diffusion sums (kernel dtype), in block order, into the pass's float64
    # ones (product P + 4i of species i), A zeroed again
    for q in range(A.shape[0]):
        for i in range(A.shape[1]):
            for x in range(A.shape[2]):
                acc[_P + 4 * i, x] += A[q, i, x]
                A[q, i, x] = _T(0.0)


def _adjoint_step(X, Mk, src, dst, Gb, Fb, GFb, Ab, ab, Ib, inject, W, pb, nx):
    ny = X.shape[1]
    for y in range(ny):
        ym, yp = _rows(y, ny)
        _adj_cells(X, src, Gb, dst, Fb, GFb, Mk, pb, y, ym, yp, nx)
        _ghosts(Gb, y, nx)
    _sums(0, 1, X, Gb, Fb, W, pb, ab, nx)
    for q in range(Ab.shape[0]):
        y0, y1 = _block(q, ny)
        for y in range(y0, y1):
            ym, yp = _rows(y, ny)
            if inject:
                _dif_inj_cells(Gb, dst, X, Ib, Ab[q], pb, y, ym, yp, nx)
            else:
                _dif_cells(Gb, dst, X, Ib, Ab[q], pb, y, ym, yp, nx)
    _flush(Ab, ab)


def _backward_sample(traj, masks, b, i_hi, n, t_hi, lam, tmp, G, A, acc, F, fsel, GF, gsel,
                     slots, inj, W, pb, nx):
    src = lam[b]
    dst = tmp[b]
    for k in range(n):
        t = t_hi - 1 - k
        Ft = F[t * fsel]
        s_ = slots[t]
        _adjoint_step(traj[i_hi - 1 - k, b], masks[i_hi - 1 - k, b], src, dst, G[0, b],
                      Ft[min(b, Ft.shape[0] - 1)], GF[t * gsel, b], A[b], acc[b],
                      inj[max(s_, 0), b], s_ >= 0, W, pb, nx)
        src, dst = dst, src
    if n % 2 == 1:
        _copy(lam[b], src)


def backward_serial(traj, masks, i_hi, n, t_hi, lam, tmp, G, A, acc, F, fsel, GF, gsel,
                    slots, inj, W, prm, nx):
    for q in range(traj.shape[1]):
        b = np.int64(q)
        _backward_sample(traj, masks, b, i_hi, n, t_hi, lam, tmp, G, A, acc, F, fsel, GF, gsel,
                         slots, inj, W, prm[b], nx)


def backward(traj, masks, i_hi, n, t_hi, lam, tmp, G, A, acc, F, fsel, GF, gsel, slots, inj,
             W, prm, nx):
    for q in prange(traj.shape[1]):
        b = np.int64(q)
        _backward_sample(traj, masks, b, i_hi, n, t_hi, lam, tmp, G, A, acc, F, fsel, GF, gsel,
                         slots, inj, W, prm[b], nx)


def _pass1_rows(traj, masks, b, i_hi, k, t_hi, bufs, G, F, fsel, GF, gsel, pb, y0, y1, nx):
    # pass 1 of step k (t = t_hi - 1 - k) on rows y0 … y1 - 1: λ from bufs[k % 2] into
    # bufs[1 - k % 2], g into G[k % 2]
    t = t_hi - 1 - k
    X = traj[i_hi - 1 - k, b]
    Ft = F[t * fsel]
    Fb = Ft[min(b, Ft.shape[0] - 1)]
    Gb = G[k % 2, b]
    ny = X.shape[1]
    for y in range(y0, y1):
        ym, yp = _rows(y, ny)
        _adj_cells(X, bufs[k % 2], Gb, bufs[1 - k % 2], Fb, GF[t * gsel, b], masks[i_hi - 1 - k, b],
                   pb, y, ym, yp, nx)
        _ghosts(Gb, y, nx)


def _pass2_rows(traj, b, i_hi, k, t_hi, bufs, G, Ab, ab, F, fsel, slots, inj, W, pb, q, nblk,
                nx):
    # pass 2 of step k on the rows of block q, then the product kernels of block q
    t = t_hi - 1 - k
    X = traj[i_hi - 1 - k, b]
    Gb = G[k % 2, b]
    dst = bufs[1 - k % 2]
    s_ = slots[t]
    Ib = inj[max(s_, 0), b]
    ny = X.shape[1]
    y0, y1 = _block(q, ny)
    for y in range(y0, y1):
        ym, yp = _rows(y, ny)
        if s_ >= 0:
            _dif_inj_cells(Gb, dst, X, Ib, Ab, pb, y, ym, yp, nx)
        else:
            _dif_cells(Gb, dst, X, Ib, Ab, pb, y, ym, yp, nx)
    Ft = F[t * fsel]
    _sums(q, nblk, X, Gb, Ft[min(b, Ft.shape[0] - 1)], W, pb, ab, nx)


def backward_rows(traj, masks, i_hi, n, t_hi, lam, tmp, G, A, acc, F, fsel, GF, gsel, slots,
                  inj, W, prm, nx, threads):
    # One parallel region per step, rows in blocks: region r finishes step r - 1 (pass 2 on
    # the block's rows, its share of the product kernels) and starts step r (pass 1 on the
    # same rows, which read only the λ rows the block has just completed; g goes to the other
    # G buffer, since the product kernels still read this step's).
    nblk = A.shape[1]
    nb = max(1, min(threads, nblk))
    ny = traj.shape[3]
    for s_ in range(traj.shape[1]):
        for r in range(n + 1):
            for p in prange(nb):
                # views taken inside the region, as in forward_rows
                b = np.int64(s_)
                pb = prm[b]
                bufs = (lam[b], tmp[b])
                for q in range(p * nblk // nb, (p + 1) * nblk // nb):
                    if r >= 1:
                        _pass2_rows(traj, b, i_hi, r - 1, t_hi, bufs, G, A[b, q], acc[b], F,
                                    fsel, slots, inj, W, pb, q, nblk, nx)
                    if r < n:
                        y0, y1 = _block(q, ny)
                        _pass1_rows(traj, masks, b, i_hi, r, t_hi, bufs, G, F, fsel, GF, gsel,
                                    pb, y0, y1, nx)
            _flush(A[s_], acc[s_])
        if n % 2 == 1:
            _copy(lam[s_], tmp[s_])
'''


def programs(plan: AdjointPlan, mode: str) -> dict[str, RowProgram]:
    """Return the cell programs of ``plan`` and flow ``mode``, by kernel name.

    Parameters
    ----------
    plan : AdjointPlan
        The network's plan.
    mode : str
        One of :data:`FLOW_MODES`.

    Returns
    -------
    dict of str to RowProgram
        ``_fwd_cells`` (one Euler step), ``_adj_cells`` (pass 1 of the adjoint step, with
        its column sums), ``_dif_cells`` (pass 2, with the diffusion sums) and
        ``_dif_inj_cells`` (pass 2 adding the loss's ``dL/dX_t`` too).

    Raises
    ------
    ParameterError
        For an unknown flow mode.
    """
    if mode not in FLOW_MODES:
        raise ParameterError(f"unknown flow mode {mode!r}; choose one of {FLOW_MODES}")
    return {"_fwd_cells": _forward_program(plan, mode),
            "_adj_cells": _adjoint_program(plan, mode),
            "_dif_cells": _diffusion_program(plan, False),
            "_dif_inj_cells": _diffusion_program(plan, True)}


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
        Source building the row kernels from their cell programs
        (:func:`rdlab.simulate.simd_codegen.make_row_kernel`) and defining the drivers
        ``forward`` and ``backward`` (``_T`` and ``prange`` are globals).
    """
    text = [f"{name} = make_row_kernel({prog!r})" for name, prog in programs(plan, mode).items()]
    sums = product_programs(plan, mode)
    text += [f"_sum{g} = make_sum_kernel({prog!r})" for g, prog in enumerate(sums)]
    text += ["", "", "def _sums(q, nblk, X, G, F, W, pb, out, nx):",
             "    # block q's share of the product kernels, spread evenly over the blocks (so over",
             "    # threads taking consecutive blocks); all of them for q = 0, nblk = 1"]
    text += [f"    if {g} * nblk // {len(sums)} == q:\n        _sum{g}(X, G, F, W, pb, out, nx)"
             for g in range(len(sums))]
    text += ["", f"_P = {plan.n_pairs}", f"_RB = {ROW_BLOCK}"]
    return "\n".join(text) + "\n\n" + _DRIVERS


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
        The numba drivers (see the module docstring): one parallel region per call, the
        samples spread over numba's threads.
    forward_serial, backward_serial : callable
        The same on the calling thread only (for one sample: a parallel region would only
        wait for idle threads).
    forward_rows, backward_rows : callable
        The samples one after the other, each step's rows spread over numba's threads in
        blocks (one parallel region per step and adjoint pass: for fewer samples than
        threads).
    source : str
        The generated source.
    """

    plan: AdjointPlan
    mode: str
    dtype: np.dtype
    forward: object
    backward: object
    forward_serial: object
    backward_serial: object
    forward_rows: object
    backward_rows: object
    source: str


_JIT = 'error_model="numpy", boundscheck=False, cache=_DISK'
_MODULE_HEAD = """# Generated by rdlab.simulate.adjoint_codegen; do not edit.
# Row kernels by rdlab.simulate.simd_codegen {emitter}, {vector} SIMD bytes
import numba
import numpy as np
from numba import prange

from rdlab.simulate.simd_codegen import (RowProgram, SumProgram, make_row_kernel,
                                          make_sum_kernel)

_T = np.{dtype}
_DISK = {disk}
"""
_MODULE_TAIL = f"""
_rows = numba.njit(inline="always", {_JIT})(_rows)
_sums = numba.njit({_JIT})(_sums)
_ghosts = numba.njit(inline="always", {_JIT})(_ghosts)
_copy = numba.njit(inline="always", {_JIT})(_copy)
_flush = numba.njit(inline="always", {_JIT})(_flush)
_adjoint_step = numba.njit(inline="always", {_JIT})(_adjoint_step)
_forward_sample = numba.njit(inline="always", {_JIT})(_forward_sample)
_backward_sample = numba.njit(inline="always", {_JIT})(_backward_sample)
_pass1_rows = numba.njit(inline="always", {_JIT})(_pass1_rows)
_pass2_rows = numba.njit(inline="always", {_JIT})(_pass2_rows)
forward = numba.njit(parallel=True, {_JIT})(forward)
backward = numba.njit(parallel=True, {_JIT})(backward)
forward_serial = numba.njit({_JIT})(forward_serial)
backward_serial = numba.njit({_JIT})(backward_serial)
_block = numba.njit(inline="always", {_JIT})(_block)
forward_rows = numba.njit(parallel=True, {_JIT})(forward_rows)
backward_rows = numba.njit(parallel=True, {_JIT})(backward_rows)
"""
_CACHE: dict = {}
_LOCK = threading.Lock()


def _structure_key(network: ReactionNetwork, stencil: str, mode: str, dtype) -> tuple:
    """Return the memo key: structure, stencil, flow mode and dtype."""
    R = np.asarray(network.reactant_matrix, dtype=np.int64)
    St = np.asarray(network.stoichiometry, dtype=np.int64)
    return (R.shape, R.tobytes(), St.tobytes(), stencil, mode, np.dtype(dtype).name,
            VECTOR_BYTES)

#: Environment variable naming the folder of generated kernel modules (numba caches their
#: compiled code beside them); ``off`` compiles in memory only. Default: ``rdlab/kernels``
#: under ``$XDG_CACHE_HOME`` (``~/.cache``).
CACHE_ENV = "RDLAB_KERNEL_CACHE"


def _emitter_version() -> str:
    """Return a digest of the SIMD emitter's source (part of the generated module's key)."""
    return hashlib.sha256(Path(simd_codegen.__file__).read_bytes()).hexdigest()[:12]


def padded_width(nx: int, dtype) -> int:
    """Return the row length of the kernels' arrays: ``⌈nx / VL⌉·VL + 2`` columns.

    Parameters
    ----------
    nx : int
        Cells per row.
    dtype : numpy dtype
        float32 or float64 (sets the vector length ``VL``).

    Returns
    -------
    int
        Columns: the left ghost, the cells, padding, the right ghost.
    """
    vl = lanes(dtype)
    return -(-nx // vl) * vl + 2


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
                               emitter=_emitter_version(), vector=VECTOR_BYTES)
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
        folder = _cache_dir()
        source = module_source(plan, mode, dtype, disk=folder is not None)
        digest = hashlib.sha256(source.encode()).hexdigest()[:20]
        module = _load_module(source, f"rdlab_adjoint_{digest}", folder)
        kernels = AdjointKernels(plan=plan, mode=mode, dtype=dtype, forward=module.forward,
                                 backward=module.backward, forward_serial=module.forward_serial,
                                 backward_serial=module.backward_serial,
                                 forward_rows=module.forward_rows,
                                 backward_rows=module.backward_rows, source=source)
        _CACHE[key] = kernels
        return kernels
