"""Compile a straight-line per-cell program into an explicit-SIMD row kernel (numba intrinsic).

A *cell program* is a few lines of Python-like text, one statement a line, describing what
happens at one cell ``x`` of a grid row ``y``::

    c0 = X[0, y, x]
    l0 = 0.25 * (X[0, ym, x - 1] + X[0, ym, x + 1]) + ...
    Y[0, y, x] = clip(c0 + dd0 * l0)
    A[3, x] += g0 * c0

Names are per-cell values (assigned earlier in the program) or per-sample scalars (the
``params``, read from one coefficient row ``prm`` and broadcast). Array references are
``A[i, r, x + d]`` (3-d arrays ``(rows, ny, nxp)``, ``r`` one of ``y``, ``ym``, ``yp``,
``d`` in ``−1, 0, 1``) or ``A[p, x]`` (2-d arrays ``(rows, nxp)``); ``x`` is the padded
column (cells sit in columns ``1 … nx``). ``A[p, 0]`` (a number as the column) is the same
``VL`` values of a 2-d array at every chunk: per-lane accumulators. Expressions use ``+``,
``−``, ``*``, number literals, ``clip(u)`` (``min(max(u, lo), hi)``), ``keep(u, v)`` (``v``
where ``lo ≤ u ≤ hi``, else 0: the gradient of the clip) and ``inrow(v)`` (``v``, 0 in the
lanes past the row's last cell).

:func:`make_row_kernel` turns a program into a numba ``@intrinsic`` that emits LLVM IR over
vectors of :func:`rdlab.simulate.fast_codegen.lanes` cells (``<16 x float>`` with AVX-512):
``kernel(*arrays, prm, y, ym, yp, nx)`` runs the program for the cells ``1 … nx`` of row ``y``
in chunks of ``VL`` cells. Every operation is an IEEE ``fadd``/``fsub``/``fmul`` in the
program's order (no re-association); unless the program allows contraction into fused
multiply-adds, the results equal those of the same expressions evaluated one cell at a time.
Rows are read and written up to the next multiple of ``VL`` cells: arrays need
``nxp ≥ ⌈nx / VL⌉·VL + 2`` columns. Arrays whose dtype is float64 while the kernel's is
float32 (accumulators) receive the values widened to float64.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from rdlab.simulate.fast_codegen import VECTOR_BYTES

__all__ = ["RowProgram", "SumProgram", "make_row_kernel", "make_sum_kernel", "mask_bytes"]

_ROWS = ("y", "ym", "yp")


@dataclass(frozen=True)
class RowProgram:
    """A cell program and the interface of its kernel.

    Attributes
    ----------
    arrays : tuple of tuple of (str, int)
        ``(name, ndim)`` of each array argument, in argument order (ndim 3 or 2).
    params : tuple of str
        Names of the per-sample scalars, in the order of the coefficient row ``prm``.
    lines : tuple of str
        The statements.
    bits : tuple of str, default ()
        Names of the arrays (3-d, uint8) holding one bit per cell: ``M[i, r] = inside(u)``
        stores whether ``lo ≤ u ≤ hi`` for the chunk's cells, ``pick(M[i, r], v)`` reads
        it back (``v`` where set, else 0); a row holds :func:`mask_bytes` bytes.
    contract : bool, default False
        Let LLVM fuse a multiplication and the addition using it into one fused multiply-add
        (one rounding instead of two): faster, and the same in every run, but no longer the
        program's plain IEEE result.
    """

    arrays: tuple[tuple[str, int], ...]
    params: tuple[str, ...]
    lines: tuple[str, ...]
    bits: tuple[str, ...] = ()
    contract: bool = False


@dataclass(frozen=True)
class SumProgram:
    """Groups of cell programs whose ``S[p] += expr`` lines are summed over a whole grid.

    Attributes
    ----------
    arrays : tuple of tuple of (str, int)
        ``(name, 3)`` of each array argument, in argument order.
    params : tuple of str
        Names of the per-sample scalars, in the order of the coefficient row ``prm``.
    groups : tuple of tuple of str
        Each group's statements; its sums stay in vector registers over all rows, so a
        group should hold at most about 24 of them.
    """

    arrays: tuple[tuple[str, int], ...]
    params: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]


class _Emitter:
    """Emit one chunk of the program as vector IR (one instance per kernel compilation)."""

    def __init__(self, builder, T, VL: int, rows: dict, params: dict):
        from llvmlite import ir

        self.ir, self.b, self.T, self.VL = ir, builder, T, VL
        self.VT = ir.VectorType(T, VL)
        self.rows = rows  # (array, index, row name) -> (row pointer, element type)
        self.env = dict(params)
        self.x = None
        self.k = None  # the chunk's index along the row
        self.bits: tuple[str, ...] = ()
        self.flags: tuple[str, ...] = ()  # fast-math flags of the arithmetic
        self.sums: dict = {}  # sum index -> current vector accumulator (sum kernels)
        self.nx = None  # the row's cell count (``inrow`` masks the lanes past it)
        self.lazy = None  # (pointer to the coefficient row, name -> index) of row kernels

    def splat(self, value):
        """Return ``value`` (a scalar of the kernel type) broadcast to a vector."""
        ir = self.ir
        i32 = ir.IntType(32)
        v = self.b.insert_element(ir.Constant(self.VT, ir.Undefined), value, ir.Constant(i32, 0))
        return self.b.shuffle_vector(v, ir.Constant(self.VT, ir.Undefined),
                                     ir.Constant(ir.VectorType(i32, self.VL), [0] * self.VL))

    def name(self, name: str):
        """Return a named value; a per-sample scalar is loaded and broadcast where first used.

        Loaded in the loop body rather than once before it, the coefficients become
        broadcast memory operands of the arithmetic instead of vectors spilled to the stack
        (a network has more of them than there are vector registers).
        """
        if name not in self.env:
            prm, index = self.lazy
            ptr = self.b.gep(prm, [self.ir.Constant(self.ir.IntType(64), index[name])])
            self.env[name] = self.splat(self.b.load(ptr))
        return self.env[name]

    def splat_int(self, value):
        """Return the i64 ``value`` broadcast to a vector."""
        ir = self.ir
        i32, vt = ir.IntType(32), ir.VectorType(ir.IntType(64), self.VL)
        v = self.b.insert_element(ir.Constant(vt, ir.Undefined), value, ir.Constant(i32, 0))
        return self.b.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                     ir.Constant(ir.VectorType(i32, self.VL), [0] * self.VL))

    def const(self, v: float):
        """Return the constant vector ``v``."""
        return self.ir.Constant(self.VT, [self.ir.Constant(self.T, float(v))] * self.VL)

    def address(self, node: ast.Subscript):
        """Return the vector pointer and element type of an array reference."""
        name = node.value.id
        idx = node.slice.elts
        row = idx[1].id if len(idx) == 3 else None
        base, elem = self.rows[(name, idx[0].value, row)]
        if isinstance(idx[-1], ast.Constant):  # a fixed column: the same VL values every chunk
            col = self.ir.Constant(self.x.type, idx[-1].value)
        else:
            off = _offset(idx[-1])
            col = self.x if off == 0 else self.b.add(self.x, self.ir.Constant(self.x.type, off))
        ptr = self.b.gep(base, [col])
        return self.b.bitcast(ptr, self.ir.VectorType(elem, self.VL).as_pointer()), elem

    def load(self, node: ast.Subscript):
        """Return the loaded vector (in the array's element type)."""
        ptr, elem = self.address(node)
        return self.b.load(ptr, align=_size(elem))

    def value(self, node):
        """Return the vector value of an expression."""
        b = self.b
        if isinstance(node, ast.Constant):
            return self.const(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            if isinstance(node.operand, ast.Constant):
                return self.const(-node.operand.value)
            return b.fsub(self.const(-0.0), self.value(node.operand))
        if isinstance(node, ast.BinOp):
            op = {ast.Add: b.fadd, ast.Sub: b.fsub, ast.Mult: b.fmul}[type(node.op)]
            return op(self.value(node.left), self.value(node.right), flags=self.flags)
        if isinstance(node, ast.Subscript):
            return self.load(node)
        if isinstance(node, ast.Call) and node.func.id == "pick":
            return self.b.select(self.load_bits(node.args[0]), self.value(node.args[1]),
                                 self.const(0.0))
        if isinstance(node, ast.Call):
            return self.call(node.func.id, [self.value(a) for a in node.args])
        raise ValueError(f"unsupported expression {ast.dump(node)}")

    def call(self, fn: str, args):
        """Return ``clip(u)``, ``keep(u, v)`` or ``inrow(v)`` (``v``, 0 past the row's end)."""
        b, lo, hi = self.b, self.name("lo"), self.name("hi")
        if fn == "inrow":
            ir = self.ir
            i64v = ir.VectorType(ir.IntType(64), self.VL)
            col = b.add(self.splat_int(self.x), ir.Constant(i64v, list(range(self.VL))))
            valid = b.icmp_signed("<=", col, self.splat_int(self.nx))
            return b.select(valid, args[0], self.const(0.0))
        if fn == "clip":
            u = args[0]
            u = b.select(b.fcmp_ordered("<", u, lo), lo, u)
            return b.select(b.fcmp_ordered(">", u, hi), hi, u)
        if fn == "keep":
            u, v = args
            inside = b.and_(b.fcmp_ordered(">=", u, lo), b.fcmp_ordered("<=", u, hi))
            return b.select(inside, v, self.const(0.0))
        raise ValueError(f"unknown function {fn!r}")

    def bits_address(self, node: ast.Subscript):
        """Return the pointer to this chunk's bits of a bit-array reference."""
        idx = node.slice.elts
        base, _ = self.rows[(node.value.id, idx[0].value, idx[1].id)]
        width = _bits_width(self.VL)
        ptr = self.b.gep(base, [self.b.mul(self.k, self.ir.Constant(self.k.type, width))])
        return self.b.bitcast(ptr, self.ir.IntType(8 * width).as_pointer())

    def load_bits(self, node: ast.Subscript):
        """Return the ``<VL x i1>`` mask stored at a bit-array reference."""
        word = self.b.load(self.bits_address(node), align=1)
        word = self.b.trunc(word, self.ir.IntType(self.VL)) if word.type.width > self.VL \
            else word
        return self.b.bitcast(word, self.ir.VectorType(self.ir.IntType(1), self.VL))

    def store_bits(self, target: ast.Subscript, u) -> None:
        """Store whether ``lo ≤ u ≤ hi`` lane by lane at a bit-array reference."""
        b, lo, hi = self.b, self.name("lo"), self.name("hi")
        inside = b.and_(b.fcmp_ordered(">=", u, lo), b.fcmp_ordered("<=", u, hi))
        word = b.bitcast(inside, self.ir.IntType(self.VL))
        ptr = self.bits_address(target)
        if ptr.type.pointee.width > self.VL:
            word = b.zext(word, ptr.type.pointee)
        b.store(word, ptr, align=1)

    def store(self, target: ast.Subscript, value, add: bool) -> None:
        """Store (or add) ``value`` into an array reference, widening it if needed."""
        ptr, elem = self.address(target)
        if elem != self.T:
            value = self.b.fpext(value, self.ir.VectorType(elem, self.VL))
        if add:
            value = self.b.fadd(self.b.load(ptr, align=_size(elem)), value)
        self.b.store(value, ptr, align=_size(elem))

    def run(self, statements) -> None:
        """Emit every statement for the chunk starting at column ``self.x``."""
        for st in statements:
            if isinstance(st, ast.Assign) and isinstance(st.targets[0], ast.Name):
                self.env[st.targets[0].id] = self.value(st.value)
            elif isinstance(st, ast.Assign) and st.targets[0].value.id in self.bits:
                self.store_bits(st.targets[0], self.value(st.value.args[0]))
            elif isinstance(st, ast.Assign):
                self.store(st.targets[0], self.value(st.value), add=False)
            elif (isinstance(st, ast.AugAssign) and isinstance(st.op, ast.Add)
                  and st.target.value.id == "S"):
                p = st.target.slice.value
                self.sums[p] = self.b.fadd(self.sums[p], self.value(st.value), flags=self.flags)
            elif isinstance(st, ast.AugAssign) and isinstance(st.op, ast.Add):
                self.store(st.target, self.value(st.value), add=True)
            else:
                raise ValueError(f"unsupported statement {ast.dump(st)}")


def _offset(node) -> int:
    """Return ``d`` of a column index ``x + d`` (``x`` alone: 0)."""
    if isinstance(node, ast.Name):
        return 0
    sign = 1 if isinstance(node.op, ast.Add) else -1
    return sign * int(node.right.value)


def _bits_width(VL: int) -> int:
    """Return the bytes of one chunk's mask (one bit per lane, at least a byte)."""
    return max(1, VL // 8)


def mask_bytes(nx: int, dtype) -> int:
    """Return the bytes per row of a bit array for ``nx`` cells of ``dtype`` kernels.

    Parameters
    ----------
    nx : int
        Cells per row.
    dtype : numpy dtype
        The kernels' float dtype (sets the vector length ``VL``).

    Returns
    -------
    int
        ``⌈nx / VL⌉`` chunks of ``max(1, VL / 8)`` bytes.
    """
    import numpy as np

    VL = VECTOR_BYTES // np.dtype(dtype).itemsize
    return -(-nx // VL) * _bits_width(VL)


def _size(elem) -> int:
    """Return the byte size of a float or double IR type."""
    return 8 if str(elem) == "double" else 4


def _references(statements) -> list[tuple[str, int, str | None]]:
    """Return every distinct ``(array, index, row name)`` the statements read or write."""
    seen: dict = {}
    for st in statements:
        for node in ast.walk(st):
            if isinstance(node, ast.Subscript) and node.value.id != "S":
                idx = node.slice.elts
                row = (idx[1].id if isinstance(idx[1], ast.Name) and idx[1].id in _ROWS
                       else None)
                key = (node.value.id, idx[0].value, row)
                seen[key] = None
    return list(seen)


def _row_pointers(context, builder, program: RowProgram, sig, args, refs, rowvals) -> dict:
    """Return ``(array, index, row) -> (pointer to column 0, element type)``."""
    from llvmlite import ir

    out = {}
    arrays = {}
    for q, (name, _) in enumerate(program.arrays):
        arrays[name] = (context.make_array(sig.args[q])(context, builder, args[q]),
                        context.get_value_type(sig.args[q].dtype))
    i64 = ir.IntType(64)
    for name, index, row in refs:
        arr, elem = arrays[name]
        ncol = builder.extract_value(arr.shape, arr.shape.type.count - 1)
        if row is None:
            first = ir.Constant(i64, index)
        else:
            ny = builder.extract_value(arr.shape, 1)
            first = builder.add(builder.mul(ir.Constant(i64, index), ny), rowvals[row])
        out[(name, index, row)] = (builder.gep(arr.data, [builder.mul(first, ncol)]), elem)
    return out


def _param_vectors(context, builder, emitter: _Emitter, program: RowProgram, sig, prm) -> dict:
    """Return each per-sample scalar broadcast to a vector."""
    from llvmlite import ir

    arr = context.make_array(sig)(context, builder, prm)
    out = {}
    for q, name in enumerate(program.params):
        value = builder.load(builder.gep(arr.data, [ir.Constant(ir.IntType(64), q)]))
        out[name] = emitter.splat(value)
    return out


def _codegen(program: RowProgram, statements, refs):
    """Return the intrinsic's code generator for ``program``."""
    from llvmlite import ir
    from numba import types

    n = len(program.arrays)

    def codegen(context, builder, sig, args):
        T = context.get_value_type(sig.args[n].dtype)
        VL = VECTOR_BYTES // _size(T)
        i64 = ir.IntType(64)
        ints = [context.cast(builder, args[q], sig.args[q], types.int64)
                for q in range(n + 1, n + 5)]
        rowvals = dict(zip(_ROWS, ints[:3]))
        rows = _row_pointers(context, builder, program, sig, args, refs, rowvals)
        em = _Emitter(builder, T, VL, rows, {})
        em.bits = program.bits
        em.flags = ("contract",) if program.contract else ()
        em.nx = ints[3]
        em.lazy = (context.make_array(sig.args[n])(context, builder, args[n]).data,
                   {name: q for q, name in enumerate(program.params)})
        n_chunks = builder.sdiv(builder.add(ints[3], ir.Constant(i64, VL - 1)),
                               ir.Constant(i64, VL))
        entry = builder.block
        loop = builder.append_basic_block("cells")
        done = builder.append_basic_block("cells_done")
        builder.cbranch(builder.icmp_signed(">", n_chunks, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        k = builder.phi(i64)
        k.add_incoming(ir.Constant(i64, 0), entry)
        em.k = k
        em.x = builder.add(builder.mul(k, ir.Constant(i64, VL)), ir.Constant(i64, 1))
        em.run(statements)
        k_next = builder.add(k, ir.Constant(i64, 1))
        k.add_incoming(k_next, builder.block)
        builder.cbranch(builder.icmp_signed("<", k_next, n_chunks), loop, done)
        builder.position_at_end(done)
        return context.get_dummy_value()

    return codegen


def make_row_kernel(program: RowProgram):
    """Return the numba intrinsic running ``program`` over one row.

    Parameters
    ----------
    program : RowProgram
        The cell program.

    Returns
    -------
    numba intrinsic
        ``kernel(*arrays, prm, y, ym, yp, nx)``: C-contiguous float arrays of the program's
        dimensions, ``prm`` the 1-d coefficient row (the kernel's dtype), then integers.
    """
    from numba import types
    from numba.extending import intrinsic

    statements = ast.parse("\n".join(program.lines)).body
    refs = _references(statements)
    n = len(program.arrays)
    codegen = _codegen(program, statements, refs)

    def typer(typingctx, *args):
        arrays, prm = args[:n], args[n]
        for arr, (name, ndim) in zip((*arrays, prm), (*program.arrays, ("prm", 1))):
            kinds = (types.uint8,) if name in program.bits else (types.float32, types.float64)
            if not (isinstance(arr, types.Array) and arr.layout == "C" and arr.ndim == ndim
                    and arr.dtype in kinds):
                return None
        if not all(isinstance(i, types.Integer) for i in args[n + 1:]):
            return None
        return types.void(*args), codegen

    # numba's intrinsics need an explicit argument list
    names = [f"a{q}" for q in range(n + 5)]
    space = {"typer": typer}
    exec(f"def kernel(typingctx, {', '.join(names)}):\n"
         f"    return typer(typingctx, {', '.join(names)})\n", space)
    return intrinsic(space["kernel"])


def _sum_group(context, builder, program, sig, args, em: _Emitter, lines, ny, nx) -> None:
    """Emit the loop nest of one group: rows × chunks, sums in registers, then ``out[p] +=``."""
    from llvmlite import ir

    i64 = ir.IntType(64)
    statements = ast.parse("\n".join(lines)).body
    refs = _references(statements)
    keys = sorted({st.target.slice.value for st in statements if isinstance(st, ast.AugAssign)})
    zero, one = ir.Constant(i64, 0), ir.Constant(i64, 1)
    pre = builder.block
    row_head, chunk, row_end, after = (builder.append_basic_block(f"sum_{n}") for n in
                                       ("row", "chunk", "row_end", "after"))
    builder.branch(row_head)
    builder.position_at_end(row_head)
    y = builder.phi(i64)
    y.add_incoming(zero, pre)
    row_acc = {p: builder.phi(em.VT) for p in keys}
    for ph in row_acc.values():
        ph.add_incoming(em.const(0.0), pre)
    ym = builder.select(builder.icmp_signed(">", y, zero), builder.sub(y, one),
                        builder.sub(ny, one))
    yp = builder.select(builder.icmp_signed("<", y, builder.sub(ny, one)), builder.add(y, one),
                        zero)
    em.rows = _row_pointers(context, builder, program, sig, args, refs,
                            {"y": y, "ym": ym, "yp": yp})
    builder.branch(chunk)
    builder.position_at_end(chunk)
    k = builder.phi(i64)
    k.add_incoming(zero, row_head)
    chunk_acc = {p: builder.phi(em.VT) for p in keys}
    for p, ph in chunk_acc.items():
        ph.add_incoming(row_acc[p], row_head)
    em.x = builder.add(builder.mul(k, ir.Constant(i64, em.VL)), one)
    em.sums = dict(chunk_acc)
    em.run(statements)
    k_next = builder.add(k, one)
    k.add_incoming(k_next, builder.block)
    for p, ph in chunk_acc.items():
        ph.add_incoming(em.sums[p], builder.block)
    n_chunks = builder.sdiv(builder.add(nx, ir.Constant(i64, em.VL - 1)),
                            ir.Constant(i64, em.VL))
    builder.cbranch(builder.icmp_signed("<", k_next, n_chunks), chunk, row_end)
    builder.position_at_end(row_end)
    y_next = builder.add(y, one)
    y.add_incoming(y_next, row_end)
    for p, ph in row_acc.items():
        ph.add_incoming(em.sums[p], row_end)
    builder.cbranch(builder.icmp_signed("<", y_next, ny), row_head, after)
    builder.position_at_end(after)
    _flush(builder, em, sig, args, len(program.arrays) + 1, context)


def _flush(builder, em: _Emitter, sig, args, q: int, context) -> None:
    """Add each vector sum, widened to float64, into its row ``out[p, :VL]``."""
    from llvmlite import ir

    out = context.make_array(sig.args[q])(context, builder, args[q])
    vd = ir.VectorType(ir.DoubleType(), em.VL)
    for p, vec in em.sums.items():
        ptr = builder.bitcast(builder.gep(out.data, [ir.Constant(ir.IntType(64), p * em.VL)]),
                              vd.as_pointer())
        wide = vec if vec.type == vd else builder.fpext(vec, vd)
        builder.store(builder.fadd(builder.load(ptr, align=8), wide), ptr, align=8)


def make_sum_kernel(program: SumProgram):
    """Return the numba intrinsic summing ``program``'s products over a grid.

    ``kernel(*arrays, prm, out, nx)`` runs each group over rows ``0 … ny − 1`` (``ny`` from
    the first array) and cells ``1 … nx``, keeping its sums in vector registers, one lane
    per cell column modulo ``VL``, and adds those lanes into the C-contiguous float64 array
    ``out (sums, VL)``; the caller adds up the lanes. Arithmetic may be contracted to fused
    multiply-adds and cells are summed in another order: the totals equal a cell-by-cell
    sum up to rounding. Lines should mask values with ``inrow`` so that cells
    past ``nx`` add nothing.

    Parameters
    ----------
    program : SumProgram
        The groups.

    Returns
    -------
    numba intrinsic
        The kernel.
    """
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    n = len(program.arrays)

    def codegen(context, builder, sig, args):
        T = context.get_value_type(sig.args[n].dtype)
        em = _Emitter(builder, T, VECTOR_BYTES // _size(T), {}, {})
        em.flags = ("contract",)
        em.env.update(_param_vectors(context, builder, em, program, sig.args[n], args[n]))
        first = context.make_array(sig.args[0])(context, builder, args[0])
        ny = builder.extract_value(first.shape, 1)
        em.nx = context.cast(builder, args[n + 2], sig.args[n + 2], types.int64)
        for lines in program.groups:
            _sum_group(context, builder, program, sig, args, em, lines, ny, em.nx)
        return context.get_dummy_value()

    def typer(typingctx, *args):
        for arr in (*args[:n], args[n]):
            if not (isinstance(arr, types.Array) and arr.layout == "C"
                    and arr.dtype in (types.float32, types.float64)):
                return None
        if not (isinstance(args[n + 1], types.Array) and args[n + 1].dtype == types.float64
                and isinstance(args[n + 2], types.Integer)):
            return None
        return types.void(*args), codegen

    del ir
    names = [f"a{q}" for q in range(n + 3)]
    space = {"typer": typer}
    exec(f"def kernel(typingctx, {', '.join(names)}):\n"
         f"    return typer(typingctx, {', '.join(names)})\n", space)
    return intrinsic(space["kernel"])
