"""Non-temporal ("streaming") stores and prefetches for numba loops, as intrinsics: the
tools of the stencil benchmark's variants (bench_stencil.py), not used by pympc.
 A plain store of a line the
cache does not hold reads the line from memory first (write-allocate): a stencil that
streams one field in and one out moves 24 bytes per point instead of 16. A non-temporal
store writes the line without reading it, as ``memcpy`` does for large copies. numba has
no such store, so :func:`ftcs2_vec` writes one vector of the 2-D update in LLVM IR: the
same IEEE operations in the same order as the scalar loop, lane by lane (no fused
multiply-add: no fast-math flags), and a store marked ``!nontemporal``.

Each intrinsic computes ``LANES`` consecutive points starting at ``k``; the output address
of point ``k`` must be aligned to the vector's size (the caller peels scalar points until it
is). Off x86-64 the store is a plain aligned vector store (the same values).
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8
"""Points per vector: 64 bytes (one cache line) of float64, 32 of float32."""

_X86 = platform.machine().lower() in ("x86_64", "amd64")


def _ptr(context, builder, aty, arr, k):
    # address of arr[k] of a 1-D array with unit stride (the caller's views are rows)
    data = context.make_array(aty)(context, builder, arr).data
    return builder.gep(data, [k])


def _load(context, builder, aty, arr, k, vt):
    # an unaligned vector load, widened to float64 (the loops compute in float64)
    p = builder.bitcast(_ptr(context, builder, aty, arr, k), ir.PointerType(ir.VectorType(vt, LANES)))
    v = builder.load(p, align=aty.dtype.bitwidth // 8)
    return v if aty.dtype == types.float64 else builder.fpext(v, ir.VectorType(ir.DoubleType(), LANES))


def _splat(builder, x):
    vt = ir.VectorType(ir.DoubleType(), LANES)
    v = builder.insert_element(ir.Constant(vt, ir.Undefined), x, ir.IntType(32)(0))
    return builder.shuffle_vector(v, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


def _store_nt(context, builder, aty, arr, k, val, vt):
    if aty.dtype != types.float64:
        val = builder.fptrunc(val, ir.VectorType(vt, LANES))
    p = builder.bitcast(_ptr(context, builder, aty, arr, k), ir.PointerType(ir.VectorType(vt, LANES)))
    st = builder.store(val, p, align=LANES * aty.dtype.bitwidth // 8)
    if _X86:
        st.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))


def _elem(aty):
    return ir.DoubleType() if aty.dtype == types.float64 else ir.FloatType()


@intrinsic
def ftcs2_vec(typingctx, o, uc, uw, ue, um, up, k, r0, r1):
    """o[k:k+LANES] = c + (r0 (um - 2c + up) + r1 (uw - 2c + ue)), c = uc[k:k+LANES]."""
    sig = types.void(o, uc, uw, ue, um, up, types.intp, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        ao, auc, auw, aue, aum, aup, kk, rr0, rr1 = args
        aty = signature.args[1]
        vt = _elem(aty)
        kk = context.cast(builder, kk, signature.args[6], types.intp)
        c, w, e, m, p = (_load(context, builder, aty, a, kk, vt) for a in (auc, auw, aue, aum, aup))
        two_c = builder.fmul(_splat(builder, ir.Constant(ir.DoubleType(), 2.0)), c)
        t0 = builder.fmul(_splat(builder, rr0), builder.fadd(builder.fsub(m, two_c), p))
        t1 = builder.fmul(_splat(builder, rr1), builder.fadd(builder.fsub(w, two_c), e))
        _store_nt(context, builder, signature.args[0], ao, kk, builder.fadd(c, builder.fadd(t0, t1)), _elem(signature.args[0]))
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def copy_vec(typingctx, o, a, k):
    """o[k:k+LANES] = a[k:k+LANES], stored non-temporally (the benchmark's copy loop)."""
    sig = types.void(o, a, types.intp)

    def codegen(context, builder, signature, args):
        ao, aa, kk = args
        aty = signature.args[1]
        vt = _elem(aty)
        p = builder.bitcast(_ptr(context, builder, aty, aa, kk), ir.PointerType(ir.VectorType(vt, LANES)))
        v = builder.load(p, align=aty.dtype.bitwidth // 8)
        q = builder.bitcast(_ptr(context, builder, signature.args[0], ao, kk), ir.PointerType(ir.VectorType(vt, LANES)))
        st = builder.store(v, q, align=LANES * aty.dtype.bitwidth // 8)
        if _X86:
            st.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def store_fence(typingctx):
    """Orders the streaming stores before whatever follows (another rank or thread may
    read the field next): ``sfence`` on x86-64, nothing elsewhere."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse.sfence")
            builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def address(typingctx, a, k):
    """The address of a[k], as an integer (for the alignment peel)."""
    sig = types.intp(a, types.intp)

    def codegen(context, builder, signature, args):
        aa, kk = args
        return builder.ptrtoint(_ptr(context, builder, signature.args[0], aa, kk), ir.IntType(64))
    return sig, codegen



def _prefetcher(rw):
    @intrinsic
    def pf(typingctx, a, k):
        sig = types.void(a, types.intp)

        def codegen(context, builder, signature, args):
            aa, kk = args
            i32 = ir.IntType(32)
            i8p = ir.IntType(8).as_pointer()
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            p = builder.bitcast(_ptr(context, builder, signature.args[0], aa, kk), i8p)
            builder.call(fn, [p, i32(rw), i32(3), i32(1)])
            return context.get_dummy_value()
        return sig, codegen
    return pf


prefetch = _prefetcher(0)
"""prefetch(a, k): a hint that a[k]'s cache line is read soon (``llvm.prefetch``)."""
prefetchw = _prefetcher(1)
"""prefetchw(a, k): a hint that a[k]'s cache line is written soon."""
