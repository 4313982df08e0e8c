"""Code generation for the fast engine: a numba kernel written for one reaction network.

Two pieces are generated from the network's reactant matrix ``R`` and stoichiometry ``S``:

* **The row kernel** — a numba ``@intrinsic`` that emits LLVM IR with explicit SIMD vectors
  (``<8 x double>`` / ``<16 x float>`` with AVX-512) for one output row of the grid. Each
  vector of cells is loaded *aligned*; the x−1 / x+1 neighbours come from lane shifts of the
  previous / next vector kept in registers (no unaligned loads, no modulo in the x loop). The
  9-point stencil is evaluated separably: ``v = up + 2·centre + down`` per column, then
  ``V = v(x−1) + 2·v(x) + v(x+1)`` so that ``∇²X·dx² = V/4 − 4X``. The reaction terms are
  unrolled products (``x0*x1*x1``) shared between reactions with the same reactants, each
  added to the species it changes with one fused multiply-add; first-order reactions are
  folded into a linear matrix and zero-order ones into a constant.
* **The driver** — Python source text of a ``numba.njit(parallel=True)`` function, built
  for the network and ``exec``-ed: ``prange`` over samples, each sample running all its steps
  while its grid stays in cache; steps are taken ``depth`` at a time in a row wavefront
  (temporal blocking: intermediate time levels live only in a three-row ring per level), and
  the sample is checked for NaN/Inf/runaway values every ``check_every`` steps.

Compiled kernels are memoised per (network structure, stencil); numba then compiles once per
dtype. Nothing is cached on disk (``cache=False``): the generated code has no source file.

Internal state layout (per buffer): ``(batch, ny, species, nxp)``; each row holds ``VL`` pad
cells, the ``nx`` cells, padding up to a multiple of ``VL``, then ``VL`` pad cells, with the
periodic ghosts ``X[nx−1]`` just before the first cell and ``X[0]`` just after the last.
``VL`` is the number of lanes of one SIMD vector (``VECTOR_BYTES / itemsize``).
"""

from __future__ import annotations

import os
import platform
import threading
from dataclasses import dataclass

import numpy as np

from rdlab.chemistry.network import ReactionNetwork

__all__ = [
    "VECTOR_BYTES",
    "KernelPlan",
    "compile_kernel",
    "driver_source",
    "lanes",
]


#: Environment variable forcing the SIMD width in bytes (16, 32 or 64), e.g. to test the
#: SSE/AVX2 code paths on an AVX-512 machine.
SIMD_BYTES_ENV = "RDLAB_SIMD_BYTES"


def _vector_bytes() -> int:
    forced = os.environ.get(SIMD_BYTES_ENV)
    if forced:
        if forced not in ("16", "32", "64"):
            raise ValueError(f"{SIMD_BYTES_ENV}={forced!r}: use 16, 32 or 64")
        return int(forced)
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
    except Exception:  # pragma: no cover - exotic hosts
        return 16
    if features.get("avx512f", False):
        return 64
    if features.get("avx", False):
        return 32
    return 16


#: Bytes of one SIMD vector the row kernel is written for (64 with AVX-512).
VECTOR_BYTES = _vector_bytes()

_FLAGS = ("contract", "reassoc", "nsz", "arcp")  # no nnan/ninf: blow-ups must stay visible
_IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def lanes(dtype) -> int:
    """Return the SIMD lanes (cells per vector) of the row kernel for ``dtype``.

    Parameters
    ----------
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    int
        :data:`VECTOR_BYTES` divided by the item size.
    """
    return VECTOR_BYTES // np.dtype(dtype).itemsize


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class KernelPlan:
    """The structure of the generated code for one network.

    Which reactions are constant, linear or polynomial, and where each coefficient sits in
    the per-sample parameter row
    ``[c0 (S), c1 (S), dq (S), linear off-diagonal terms, polynomial terms]``. Build it with
    :meth:`from_network`.

    Attributes
    ----------
    n_species : int
        Number of species ``S``.
    zero_order : tuple of int
        Reactions of order 0.
    first_order : tuple of tuple of (int, int)
        ``(reaction, reactant species)`` of the first-order reactions.
    higher_order : tuple of tuple of (int, int)
        ``(reaction, monomial index)`` of the reactions of order ≥ 2.
    monomials : tuple of tuple of int
        The exponent of each species in each distinct monomial.
    linear_terms : tuple of tuple of (int, int)
        ``(species i, species j)``, ``i != j``: off-diagonal linear terms.
    monomial_terms : tuple of tuple of (int, int)
        ``(species i, monomial index)``: polynomial terms.
    stoichiometry : tuple of tuple of int
        ``S = P − R``, ``(n_species, n_reactions)``.
    """

    n_species: int
    zero_order: tuple[int, ...]
    first_order: tuple[tuple[int, int], ...]  # (reaction, reactant species)
    higher_order: tuple[tuple[int, int], ...]  # (reaction, monomial index)
    monomials: tuple[tuple[int, ...], ...]  # exponent of each species
    linear_terms: tuple[tuple[int, int], ...]  # (species i, species j), i != j
    monomial_terms: tuple[tuple[int, int], ...]  # (species i, monomial index)
    stoichiometry: tuple[tuple[int, ...], ...]

    @classmethod
    def from_network(cls, network: ReactionNetwork) -> KernelPlan:
        """Plan the kernel of a network.

        Parameters
        ----------
        network : ReactionNetwork
            The network.

        Returns
        -------
        KernelPlan
            Its plan.
        """
        R = np.asarray(network.reactant_matrix, dtype=np.int64)
        St = np.asarray(network.stoichiometry, dtype=np.int64)
        n_s, n_r = R.shape
        zero, first, higher, monomials = [], [], [], []
        linear, mono_terms = set(), set()
        for r in range(n_r):
            order = int(R[:, r].sum())
            changed = [i for i in range(n_s) if St[i, r] != 0]
            if order == 0:
                zero.append(r)
            elif order == 1:
                j = int(np.argmax(R[:, r]))
                first.append((r, j))
                linear.update((i, j) for i in changed if i != j)
            else:
                mono = tuple(int(e) for e in R[:, r])
                if mono not in monomials:
                    monomials.append(mono)
                m = monomials.index(mono)
                higher.append((r, m))
                mono_terms.update((i, m) for i in changed)
        return cls(
            n_species=n_s,
            zero_order=tuple(zero),
            first_order=tuple(first),
            higher_order=tuple(higher),
            monomials=tuple(monomials),
            linear_terms=tuple(sorted(linear)),
            monomial_terms=tuple(sorted(mono_terms, key=lambda t: (t[1], t[0]))),
            stoichiometry=tuple(tuple(int(v) for v in row) for row in St),
        )

    def update_text(self, stencil: str) -> str:
        """Return the per-cell update the row kernel computes, as readable text.

        Species are ``x0..``; ``c0, c1, dq, L, P`` are the sample's coefficients from
        :meth:`pack`.

        Parameters
        ----------
        stencil : str
            ``"5-point"`` or ``"9-point"``.

        Returns
        -------
        str
            One line for the stencil, one per monomial and one per species.
        """
        lap = ("V = v(x-1) + 2 v(x) + v(x+1), v = X(y-1) + 2 X(y) + X(y+1)"
               if stencil == "9-point" else "E = X(y-1) + X(y+1) + X(x-1) + X(x+1)")
        name = "V" if stencil == "9-point" else "E"
        lines = [f"stencil {stencil}: {name}_i from {lap}"]
        for m, mono in enumerate(self.monomials):
            factors = "*".join(f"x{i}" for i, e in enumerate(mono) for _ in range(e))
            lines.append(f"m{m} = {factors}")
        for i in range(self.n_species):
            terms = [f"c0[{i}]", f"c1[{i}]*x{i}", f"dq[{i}]*{name}{i}"]
            terms += [f"L[{q}]*x{j}" for q, (k, j) in enumerate(self.linear_terms) if k == i]
            terms += [f"P[{q}]*m{m}" for q, (k, m) in enumerate(self.monomial_terms) if k == i]
            lines.append(f"x{i}' = " + " + ".join(terms))
        return "\n".join(lines)

    @property
    def n_parameters(self) -> int:
        """Length of a sample's coefficient row."""
        return 3 * self.n_species + len(self.linear_terms) + len(self.monomial_terms)

    def pack(self, rates: np.ndarray, diffusion: np.ndarray, flow: np.ndarray,
             feed: np.ndarray, dt: float, dx: float | None, stencil: str) -> np.ndarray:
        """Return the per-sample coefficients of one Euler step.

        ``X_i ← c0_i + c1_i·X_i + dq_i·(stencil sum) + Σ_j L_ij X_j + Σ_m C_im ∏ X^m``,
        everything already multiplied by ``dt``.

        Parameters
        ----------
        rates : numpy.ndarray
            ``(batch, n_reactions)`` rate constants.
        diffusion : numpy.ndarray
            ``(batch, n_species)`` diffusion coefficients.
        flow : numpy.ndarray
            ``(batch,)`` flow rates.
        feed : numpy.ndarray
            ``(batch, n_species)`` feed concentrations.
        dt : float
            Time step.
        dx : float or None
            Grid spacing; ``None`` means no diffusion.
        stencil : str
            ``"5-point"`` or ``"9-point"``.

        Returns
        -------
        numpy.ndarray
            Shape ``(batch, n_parameters)``, float64, C-contiguous.
        """
        St = np.asarray(self.stoichiometry, dtype=float)
        n_s = self.n_species
        batch = rates.shape[0]
        f = flow[:, None]
        c0 = dt * f * feed
        for r in self.zero_order:
            c0 = c0 + dt * St[:, r][None, :] * rates[:, r:r + 1]
        a = np.zeros((batch, n_s)) if dx is None else dt * diffusion / dx**2
        c1 = 1.0 - dt * f - 4.0 * a
        dq = a / 4.0 if stencil == "9-point" else a
        lin_index = {t: q for q, t in enumerate(self.linear_terms)}
        lin = np.zeros((batch, len(self.linear_terms)))
        for r, j in self.first_order:
            for i in range(n_s):
                if St[i, r] == 0:
                    continue
                term = dt * St[i, r] * rates[:, r]
                if i == j:
                    c1[:, i] += term
                else:
                    lin[:, lin_index[(i, j)]] += term
        mono_index = {t: q for q, t in enumerate(self.monomial_terms)}
        poly = np.zeros((batch, len(self.monomial_terms)))
        for r, m in self.higher_order:
            for i in range(n_s):
                if St[i, r] != 0:
                    poly[:, mono_index[(i, m)]] += dt * St[i, r] * rates[:, r]
        return np.ascontiguousarray(np.concatenate([c0, c1, dq, lin, poly], axis=1))


# ---------------------------------------------------------------------------- IR pieces
def _make_ftz():
    """Return intrinsics that switch a thread's x86 MXCSR to FTZ/DAZ and restore it.

    The first switches to flush-to-zero / denormals-are-zero, returning the old value; the
    second restores it. Sub-normal numbers (e.g. an activator decaying towards 0 in the
    background) otherwise cost ~100 cycles per operation.
    """
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    if not _IS_X86:
        @njit(inline="always")
        def ftz_on():
            return np.uint32(0)

        @njit(inline="always")
        def ftz_restore(old):
            return None

        return ftz_on, ftz_restore

    def _mxcsr(builder, name, ptr):
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
        builder.call(fn, [builder.bitcast(ptr, i8p)])

    @intrinsic
    def ftz_on(typingctx):
        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            slot = cgutils.alloca_once(builder, i32)
            _mxcsr(builder, "llvm.x86.sse.stmxcsr", slot)
            old = builder.load(slot)
            builder.store(builder.or_(old, ir.Constant(i32, 0x8040)), slot)
            _mxcsr(builder, "llvm.x86.sse.ldmxcsr", slot)
            return old

        return types.uint32(), codegen

    @intrinsic
    def ftz_restore(typingctx, old):
        def codegen(context, builder, signature, args):
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            _mxcsr(builder, "llvm.x86.sse.ldmxcsr", slot)
            return context.get_dummy_value()

        return types.void(types.uint32), codegen

    return ftz_on, ftz_restore


_FTZ = None
_FTZ_LOCK = threading.Lock()


def _ftz():
    global _FTZ
    with _FTZ_LOCK:
        if _FTZ is None:
            _FTZ = _make_ftz()
    return _FTZ


def make_rows_intrinsic(plan: KernelPlan, stencil: str):
    """Return the row kernel for ``plan``, a numba intrinsic generated as LLVM IR.

    The kernel::

        rows(w, src0, src_mod, dst0, dst_mod, r_begin, r_end, prm, nx)

    takes one Euler step for rows ``r`` in ``[r_begin, r_end)``: output row
    ``dst0 + r mod dst_mod`` of the C-contiguous ``(rows, species, nxp)`` array ``w`` (all
    species, periodic ghosts included) from input rows ``src0 + (r + d) mod src_mod``,
    ``d = −1, 0, 1``. ``prm`` is the sample's coefficient row (:meth:`KernelPlan.pack`).

    Parameters
    ----------
    plan : KernelPlan
        The network's plan.
    stencil : str
        ``"5-point"`` or ``"9-point"``.

    Returns
    -------
    numba intrinsic
        The ``rows`` kernel.
    """
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    nine = stencil == "9-point"
    n_s = plan.n_species
    n_lin = len(plan.linear_terms)
    carried_width = 3 if nine else 2
    # Coefficients: with few of them, broadcast once per call and kept in registers; with
    # many (dense networks), re-loaded in the loop body where LLVM folds them into the
    # arithmetic as broadcast memory operands (it cannot hoist them: the stores to `w` might
    # alias `prm`) instead of spilling vectors to the stack.
    hoist = plan.n_parameters + carried_width * n_s <= 24

    @intrinsic
    def rows(typingctx, w, src0, src_mod, dst0, dst_mod, r_begin, r_end, prm, nx):
        if not (isinstance(w, types.Array) and w.layout == "C" and w.ndim == 3):
            return None
        if not (isinstance(prm, types.Array) and prm.layout == "C" and prm.ndim == 1):
            return None
        if w.dtype != prm.dtype or w.dtype not in (types.float32, types.float64):
            return None
        ints = (src0, src_mod, dst0, dst_mod, r_begin, r_end, nx)
        if not all(isinstance(i, types.Integer) for i in ints):
            return None

        def codegen(context, builder, signature, args):
            dtype = signature.args[0].dtype
            T = context.get_value_type(dtype)
            itemsize = 8 if dtype == types.float64 else 4
            VL = VECTOR_BYTES // itemsize
            i64, i32 = ir.IntType(64), ir.IntType(32)
            VT = ir.VectorType(T, VL)
            VTP = VT.as_pointer()

            def const(v):
                return ir.Constant(i64, v)

            a_w = context.make_array(signature.args[0])(context, builder, args[0])
            a_prm = context.make_array(signature.args[7])(context, builder, args[7])
            s0, s_mod, d0, d_mod, r_lo, r_hi, n_x = (
                context.cast(builder, args[q], signature.args[q], types.int64)
                for q in (1, 2, 3, 4, 5, 6, 8))
            nxp = builder.extract_value(a_w.shape, 2)

            def add(a, b):
                return builder.fadd(a, b, flags=_FLAGS)

            def mul(a, b):
                return builder.fmul(a, b, flags=_FLAGS)

            undef = ir.Constant(VT, ir.Undefined)
            zeros_mask = ir.Constant(ir.VectorType(i32, VL), [0] * VL)

            def splat(x):
                v = builder.insert_element(undef, x, ir.Constant(i32, 0))
                return builder.shuffle_vector(v, undef, zeros_mask)

            two = ir.Constant(VT, [ir.Constant(T, 2.0)] * VL)
            left_mask = ir.Constant(ir.VectorType(i32, VL), list(range(VL - 1, 2 * VL - 1)))
            right_mask = ir.Constant(ir.VectorType(i32, VL), list(range(1, VL + 1)))

            def param(q):
                return splat(builder.load(builder.gep(a_prm.data, [const(q)])))

            def params():
                c0 = [param(i) for i in range(n_s)]
                c1 = [param(n_s + i) for i in range(n_s)]
                dq = [param(2 * n_s + i) for i in range(n_s)]
                lin = [param(3 * n_s + q) for q in range(n_lin)]
                poly = [param(3 * n_s + n_lin + q) for q in range(len(plan.monomial_terms))]
                return c0, c1, dq, lin, poly

            hoisted = params() if hoist else None
            vlc = const(VL)
            n_chunks = builder.sdiv(builder.add(n_x, const(VL - 1)), vlc)
            last = builder.add(n_x, const(VL - 1))
            right = builder.add(n_x, vlc)

            def wrap(r, mod):  # r mod `mod`, non-negative
                q = builder.srem(r, mod)
                return builder.add(q, builder.select(builder.icmp_signed("<", q, const(0)),
                                                     mod, const(0)))

            def bases(row):
                first = builder.mul(row, const(n_s))
                return [builder.gep(a_w.data, [builder.mul(builder.add(first, const(s)), nxp)])
                        for s in range(n_s)]

            entry = builder.block
            row_head = builder.append_basic_block("rd_row_head")
            loop = builder.append_basic_block("rd_row_loop")
            row_end = builder.append_basic_block("rd_row_end")
            done = builder.append_basic_block("rd_rows_done")
            builder.cbranch(builder.icmp_signed("<", r_lo, r_hi), row_head, done)

            # ---- per row: addresses and the first vectors
            builder.position_at_end(row_head)
            r = builder.phi(i64)
            r.add_incoming(r_lo, entry)
            b_m = bases(builder.add(s0, wrap(builder.sub(r, const(1)), s_mod)))
            b_c = bases(builder.add(s0, wrap(r, s_mod)))
            b_p = bases(builder.add(s0, wrap(builder.add(r, const(1)), s_mod)))
            b_out = bases(builder.add(d0, wrap(r, d_mod)))

            def vload(base, off):
                ptr = builder.bitcast(builder.gep(base, [off]), VTP)
                return builder.load(ptr, align=itemsize)

            def column(s, off):  # vertical [1, 2, 1] sum of the three input rows
                return add(add(vload(b_m[s], off), vload(b_p[s], off)),
                           mul(two, vload(b_c[s], off)))

            carried_init = []
            for s in range(n_s):
                if nine:
                    carried_init += [column(s, const(0)), column(s, vlc), vload(b_c[s], vlc)]
                else:
                    carried_init += [vload(b_c[s], const(0)), vload(b_c[s], vlc)]
            builder.branch(loop)

            # ---- along the row, one vector of cells per iteration
            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(const(0), row_head)
            phis = []
            for v in carried_init:
                ph = builder.phi(VT)
                ph.add_incoming(v, row_head)
                phis.append(ph)
            off_c = builder.mul(builder.add(k, const(1)), vlc)
            off_n = builder.add(off_c, vlc)
            X, lap, carried_next = [], [], []
            for s in range(n_s):
                group = phis[carried_width * s:carried_width * (s + 1)]
                if nine:
                    v_prev, v_cur, c_cur = group
                    v_next = column(s, off_n)
                    c_next = vload(b_c[s], off_n)
                    sides = add(builder.shuffle_vector(v_prev, v_cur, left_mask),
                                builder.shuffle_vector(v_cur, v_next, right_mask))
                    lap.append(add(sides, mul(two, v_cur)))
                    carried_next += [v_cur, v_next, c_next]
                else:
                    c_prev, c_cur = group
                    c_next = vload(b_c[s], off_n)
                    sides = add(builder.shuffle_vector(c_prev, c_cur, left_mask),
                                builder.shuffle_vector(c_cur, c_next, right_mask))
                    lap.append(add(add(vload(b_m[s], off_c), vload(b_p[s], off_c)), sides))
                    carried_next += [c_cur, c_next]
                X.append(c_cur)
            # polynomial reaction terms: products built from shared prefixes
            prefix: dict[tuple[int, ...], ir.Value] = {}

            def product(factors: tuple[int, ...]):
                if factors not in prefix:
                    prefix[factors] = (X[factors[0]] if len(factors) == 1
                                       else mul(product(factors[:-1]), X[factors[-1]]))
                return prefix[factors]

            monos = [product(tuple(i for i, e in enumerate(mono) for _ in range(e)))
                     for mono in plan.monomials]
            c0, c1, dq, lin, poly = hoisted if hoist else params()
            # each species' new value: c0 + c1·X + dq·lap + Σ linear + Σ polynomial terms,
            # summed in up to four independent chains of about four fused multiply-adds
            # each (shorter dependency chains; one chain when there are few terms)
            terms: list[list] = [[(c1[i], X[i]), (dq[i], lap[i])] for i in range(n_s)]
            for q, (i, j) in enumerate(plan.linear_terms):
                terms[i].append((lin[q], X[j]))
            for q, (i, mi) in enumerate(plan.monomial_terms):
                terms[i].append((poly[q], monos[mi]))
            for i in range(n_s):
                chains = [c0[i]]
                n_chains = max(1, min(4, len(terms[i]) // 4))
                for q, (coef, val) in enumerate(terms[i]):
                    c = q % n_chains
                    if c == len(chains):
                        chains.append(mul(coef, val))
                    else:
                        chains[c] = add(chains[c], mul(coef, val))
                while len(chains) > 1:
                    chains = [add(chains[q], chains[q + 1]) if q + 1 < len(chains)
                              else chains[q] for q in range(0, len(chains), 2)]
                ptr = builder.bitcast(builder.gep(b_out[i], [off_c]), VTP)
                builder.store(chains[0], ptr, align=itemsize)
            k_next = builder.add(k, const(1))
            body_end = builder.block
            k.add_incoming(k_next, body_end)
            for ph, v in zip(phis, carried_next):
                ph.add_incoming(v, body_end)
            builder.cbranch(builder.icmp_signed("<", k_next, n_chunks), loop, row_end)

            # ---- periodic ghosts: X[-1] = X[nx-1] just left of the cells, X[nx] = X[0]
            # right of them (cells nx+1.. of the last vector hold values nobody reads)
            builder.position_at_end(row_end)
            for s in range(n_s):
                base = b_out[s]
                builder.store(builder.load(builder.gep(base, [last])),
                              builder.gep(base, [const(VL - 1)]))
                builder.store(builder.load(builder.gep(base, [vlc])),
                              builder.gep(base, [right]))
            r_next = builder.add(r, const(1))
            r.add_incoming(r_next, row_end)
            builder.cbranch(builder.icmp_signed("<", r_next, r_hi), row_head, done)
            builder.position_at_end(done)
            return context.get_dummy_value()

        sig = types.void(w, src0, src_mod, dst0, dst_mod, r_begin, r_end, prm, nx)
        return sig, codegen

    return rows


# ---------------------------------------------------------------------------- the driver
_DRIVER_TEMPLATE = '''
def _pass(w, a0, b0, ring0, prm, depth, ny, nx):
    # `depth` Euler steps from rows a0.. of `w` into rows b0... One step: a plain sweep.
    # Several: a wavefront over the rows: level j (the state after j steps) of row r needs
    # rows r-1..r+1 of level j-1; the levels between live in 3-row rings at ring0 + 3(j-1).
    n_i = 1 if depth == 1 else ny + 2 * depth - 2
    for it in range(n_i):
        i = it + 1 - depth
        for j in range(1, depth + 1):
            r = i - j + 1
            if depth == 1:
                r_begin, r_end = 0, ny
            elif r < j - depth or r > ny - 1 + depth - j:
                continue
            else:
                r_begin, r_end = r, r + 1
            if j == 1:
                src0, src_mod = a0, ny
            else:
                src0, src_mod = ring0 + 3 * (j - 2), 3
            if j == depth:
                dst0, dst_mod = b0, ny
            else:
                dst0, dst_mod = ring0 + 3 * (j - 1), 3
            _rows(w, src0, src_mod, dst0, dst_mod, r_begin, r_end, prm, nx)


def kernel(bufs, prm, status, n_steps, step0, check_every, depth, ny, nx, vl, limit):
    # bufs (batch, 2*ny + 3*rings, species, nxp): the two states of each sample, then its
    # rings. status[b] = [first bad step or -1, last good checked step, current state 0/1]
    batch = bufs.shape[0]
    for b in prange(batch):
        if status[b, 0] < 0:
            old = _ftz_on()
            w = bufs[b]
            pb = prm[b]
            cur = status[b, 2]
            t = 0
            while t < n_steps:
                k = min(depth, n_steps - t, check_every - (step0 + t) % check_every)
                _pass(w, cur * ny, (1 - cur) * ny, 2 * ny, pb, k, ny, nx)
                cur = 1 - cur
                t += k
                if (step0 + t) % check_every == 0 or t == n_steps:
                    if _bad(w, cur * ny, ny, nx, limit):
                        status[b, 0] = step0 + t
                        break
                    status[b, 1] = step0 + t
            status[b, 2] = cur
            _ftz_restore(old)
'''


def _make_bad_intrinsic():
    """Return the intrinsic ``bad(w, r0, ny, nx, limit) -> bool``.

    It tells whether rows ``r0 .. r0+ny`` of ``w`` (padded layout, cells ``VL .. VL+nx`` of
    each species row) hold NaN, ±Inf or a value beyond ±limit. Vector compares (ordered
    ``|x| <= limit``, so NaN counts as bad), lanes past ``nx`` masked out; no fast-math
    flags.
    """
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def bad(typingctx, w, r0, ny, nx, limit):
        if not (isinstance(w, types.Array) and w.layout == "C" and w.ndim == 3
                and w.dtype in (types.float32, types.float64)):
            return None
        if not all(isinstance(i, types.Integer) for i in (r0, ny, nx)):
            return None
        if not isinstance(limit, types.Float):
            return None

        def codegen(context, builder, signature, args):
            dtype = signature.args[0].dtype
            T = context.get_value_type(dtype)
            itemsize = 8 if dtype == types.float64 else 4
            VL = VECTOR_BYTES // itemsize
            i64, i32, i1 = ir.IntType(64), ir.IntType(32), ir.IntType(1)
            VT = ir.VectorType(T, VL)
            MT = ir.VectorType(i1, VL)
            IT = ir.VectorType(i64, VL)

            def const(v):
                return ir.Constant(i64, v)

            a_w = context.make_array(signature.args[0])(context, builder, args[0])
            row0, n_y, n_x = (context.cast(builder, args[q], signature.args[q], types.int64)
                              for q in (1, 2, 3))
            lim = context.cast(builder, args[4], signature.args[4], dtype)
            n_s = builder.extract_value(a_w.shape, 1)
            nxp = builder.extract_value(a_w.shape, 2)
            undef = ir.Constant(VT, ir.Undefined)
            lim_v = builder.shuffle_vector(
                builder.insert_element(undef, lim, ir.Constant(i32, 0)), undef,
                ir.Constant(ir.VectorType(i32, VL), [0] * VL))
            lanes_v = ir.Constant(IT, list(range(VL)))
            fabs = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(VT, [VT]),
                f"llvm.fabs.v{VL}f{8 * itemsize}")
            first = builder.mul(row0, n_s)
            n_rows = builder.mul(n_y, n_s)
            n_chunks = builder.sdiv(builder.add(n_x, const(VL - 1)), const(VL))
            entry = builder.block
            outer = builder.append_basic_block("rd_bad_row")
            inner = builder.append_basic_block("rd_bad_chunk")
            outer_end = builder.append_basic_block("rd_bad_row_end")
            done = builder.append_basic_block("rd_bad_done")
            zero_mask = ir.Constant(MT, [0] * VL)
            builder.cbranch(builder.icmp_signed("<", const(0), n_rows), outer, done)

            builder.position_at_end(outer)
            q = builder.phi(i64)
            q.add_incoming(const(0), entry)
            acc_o = builder.phi(MT)
            acc_o.add_incoming(zero_mask, entry)
            base = builder.gep(a_w.data, [builder.mul(builder.add(first, q), nxp)])
            builder.branch(inner)

            builder.position_at_end(inner)
            k = builder.phi(i64)
            k.add_incoming(const(0), outer)
            acc = builder.phi(MT)
            acc.add_incoming(acc_o, outer)
            off = builder.mul(builder.add(k, const(1)), const(VL))
            ptr = builder.bitcast(builder.gep(base, [off]), VT.as_pointer())
            v = builder.load(ptr, align=itemsize)
            ok = builder.fcmp_ordered("<=", builder.call(fabs, [v]), lim_v)
            remaining = builder.sub(n_x, builder.mul(k, const(VL)))
            rem_v = builder.shuffle_vector(
                builder.insert_element(ir.Constant(IT, ir.Undefined), remaining,
                                       ir.Constant(i32, 0)),
                ir.Constant(IT, ir.Undefined), ir.Constant(ir.VectorType(i32, VL), [0] * VL))
            valid = builder.icmp_signed("<", lanes_v, rem_v)
            acc_next = builder.or_(acc, builder.and_(builder.not_(ok), valid))
            k_next = builder.add(k, const(1))
            k.add_incoming(k_next, inner)
            acc.add_incoming(acc_next, inner)
            builder.cbranch(builder.icmp_signed("<", k_next, n_chunks), inner, outer_end)

            builder.position_at_end(outer_end)
            q_next = builder.add(q, const(1))
            q.add_incoming(q_next, outer_end)
            acc_o.add_incoming(acc_next, outer_end)
            builder.cbranch(builder.icmp_signed("<", q_next, n_rows), outer, done)

            builder.position_at_end(done)
            result = builder.phi(MT)
            result.add_incoming(zero_mask, entry)
            result.add_incoming(acc_next, outer_end)
            bits = builder.bitcast(result, ir.IntType(VL))
            return builder.icmp_unsigned("!=", bits, ir.Constant(ir.IntType(VL), 0))

        return types.boolean(w, r0, ny, nx, limit), codegen

    return bad


_BAD = None


def driver_source(plan: KernelPlan, stencil: str) -> str:
    """Return the Python source of the numba driver for ``plan``.

    The driver holds the time and row loops, which call the generated ``_rows`` kernel; its
    header comment spells out the per-cell update.

    Parameters
    ----------
    plan : KernelPlan
        The network's plan.
    stencil : str
        ``"5-point"`` or ``"9-point"``.

    Returns
    -------
    str
        The source.
    """
    header = "".join(f"# {line}\n" for line in plan.update_text(stencil).splitlines())
    return "# rdlab fast-engine driver; per-cell update of the row kernel:\n" + header + \
        _DRIVER_TEMPLATE


_JIT_OPTIONS = dict(fastmath=set(_FLAGS), error_model="numpy", boundscheck=False, cache=False)
_KERNELS: dict = {}
_KERNELS_LOCK = threading.Lock()


def _structure_key(network: ReactionNetwork, stencil: str) -> tuple:
    """Return the memo key of a kernel: the network's structure, stencil and vector size."""
    R = np.asarray(network.reactant_matrix, dtype=np.int64)
    St = np.asarray(network.stoichiometry, dtype=np.int64)
    return (R.shape, R.tobytes(), St.tobytes(), stencil, VECTOR_BYTES)


def compile_kernel(network: ReactionNetwork, stencil: str):
    """Return the plan and the compiled kernel for a network and stencil.

    Memoised on the network's structure (rates are run-time parameters).

    Parameters
    ----------
    network : ReactionNetwork
        The network.
    stencil : str
        ``'5-point'`` or ``'9-point'``.

    Returns
    -------
    tuple
        ``(plan, kernel)``: the :class:`KernelPlan` and a numba dispatcher, which compiles
        on first use for each dtype.
    """
    global _BAD
    import numba

    key = _structure_key(network, stencil)
    with _KERNELS_LOCK:
        hit = _KERNELS.get(key)
        if hit is not None:
            return hit
        plan = KernelPlan.from_network(network)
        if _BAD is None:
            _BAD = _make_bad_intrinsic()
        ftz_on, ftz_restore = _ftz()
        namespace = {
            "np": np,
            "prange": numba.prange,
            "_rows": make_rows_intrinsic(plan, stencil),
            "_bad": _BAD,
            "_ftz_on": ftz_on,
            "_ftz_restore": ftz_restore,
        }
        source = driver_source(plan, stencil)
        exec(compile(source, f"<rdlab.fast kernel {len(_KERNELS)}>", "exec"), namespace)
        namespace["_pass"] = numba.njit(**_JIT_OPTIONS)(namespace["_pass"])
        kernel = numba.njit(parallel=True, **_JIT_OPTIONS)(namespace["kernel"])
        _KERNELS[key] = (plan, kernel)
        return plan, kernel
