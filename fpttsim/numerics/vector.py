r"""The device's arithmetic over whole vectors, at close to float64 speed.

:mod:`.arithmetic` rounds one scalar at a time, which keeps every kernel
exact but stops the compiler from using vector instructions: each rounding
is a call with a branch on its format. The operations here do the same
arithmetic over a vector at once, in two steps:

1. a *fast pass* computes every lane with the common-case rounding of
   :func:`.arithmetic.rnd` (a float result rounded to nearest-even by bit
   operations, or to the grid of the smallest subnormal when it is tiny; an
   in-range fixed-point result), written without branches so that the loop
   vectorises. It counts the events it can see there (flushes to zero and
   subnormal results) and marks with NaN the lanes that left the common case
   (any other event, or a NaN): the fast pass never yields a NaN itself;
2. the lanes that hit it are stored; those that left it are computed again
   by the scalar operations, from their untouched inputs, so that every
   event is counted and every special case rounded exactly as
   :mod:`.arithmetic` does.

The results are therefore those of the scalar operations, bit for bit (a test
checks it, events included); only the time differs. Formats whose rounding
has no fast case (stochastic rounding, directed rounding of floats) always
take the scalar path. The fast pass has one loop per family of formats
(float, fixed point, or a mix) so that each loop stays short enough to
vectorise. With ``ar`` None (float64 everywhere) the operations are plain
loops, inlined into their callers.

Operations (``out`` is updated in place; ``tmp`` is scratch of at least
``out``'s length; ``sign`` is +1.0 or -1.0)::

    vmac(ar, out, a, x, sign, tmp)       out[k] = add(out[k], sign * mul(a[k], x))
    vmac_to(ar, q, out, a, x, sign, tmp)  the same, then rnd(q, .), as accumulate
    vmul(ar, out, a, x, tmp)              out[k] = mul(a[k], x)
    vadd_to(ar, q, out, b, tmp)           out[k] = rnd(q, add(out[k], b[k]))
    vround(ar, q, out, tmp)               out[k] = rnd(q, out[k])
"""

from __future__ import annotations

import numba
import numpy as np

from fpttsim.numerics import codes
from fpttsim.numerics._jit import kernel
from fpttsim.numerics.arithmetic import (
    _A,
    _B,
    _C,
    _D,
    _E,
    _EXACT_MODE,
    _F,
    _FIXED_DOWN,
    _FIXED_TOWARD_ZERO,
    _FIXED_UP,
    _FULL,
    _G,
    _MODE,
    _NEAREST_FLOAT,
    add,
    mul,
    rnd,
)
from fpttsim.numerics.quantize import _ABS, _SIGN, _bits_float, _float_bits

# Inlined at Numba's level. The lane functions, into the vector loops: a call
# would keep the loop scalar. The public operations, into their callers: in
# float64 their plain loop then costs no call (a call per row made the dense
# cells' float64 steps about 10 % slower), and under a profile the inlined
# part is only a call to the rounded loop. All are small, so compile time
# stays short.
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


_FLOATS, _FIXED, _MIXED, _SLOW = 0, 1, 2, 3


@_inline
def _consts(ar, q):
    """``q``'s mode and fast-path constants, as :func:`.arithmetic.rnd` and
    this module read them; integer constants as int64.
    """  # noqa: D205
    return (
        ar[q, _MODE],
        ar[q, _A],
        ar[q, _B],
        ar[q, _C],
        _float_bits(ar[q, _A]),
        _float_bits(ar[q, _B]),
        _float_bits(ar[q, _C]),
        _float_bits(ar[q, _D]),
        ar[q, _E],
        ar[q, _F],
        ar[q, _G],
    )


@_inline
def _family(c):
    """The family of fast loop a format's constants ``c`` can use."""
    mode = c[0]
    if mode == _NEAREST_FLOAT:
        return _FLOATS
    if mode == _FULL:
        return _SLOW
    if mode == _EXACT_MODE:
        return _MIXED
    return _FIXED


@_inline
def _join(f1, f2):
    """The loop two formats of families ``f1`` and ``f2`` use together."""
    if f1 == _SLOW or f2 == _SLOW:
        return _SLOW
    return f1 if f1 == f2 else _MIXED


@_inline
def _float_lane(x, c):
    """Nearest-even on the float64 bits, or on the grid of the smallest
    subnormal for a tiny value; NaN where the fast path misses.
    """  # noqa: D205
    dropped, half, low, high, tiny_scale, tiny_unit = c[4:10]
    bits = _float_bits(x)
    mag = bits & _ABS
    kept = ((mag + half + ((mag >> dropped) & 1)) >> dropped) << dropped
    tiny = mag < low
    # exact scalings by powers of two around an integer rounding
    y = (
        np.rint(x * tiny_scale) * tiny_unit
        if tiny
        else _bits_float(kept | (bits & _SIGN))
    )
    hit = (mag <= high) & ((not tiny) | (tiny_scale != 0.0) | (mag == 0))
    return y if hit else np.nan


@_inline
def _fixed_lane(x, c):
    """An integer count of units ``2^-F``; NaN where the fast path misses."""
    mode, scale, unit, limit = c[0], c[1], c[2], c[3]
    s = x * scale  # exact: a power of two
    k = np.rint(s)
    if mode == _FIXED_DOWN:
        k = np.floor(s)
    elif mode == _FIXED_TOWARD_ZERO:
        k = np.trunc(s)
    elif mode == _FIXED_UP:
        k = np.ceil(s)
    hit = (k >= -limit) & (k < limit)
    return k * unit + 0.0 if hit else np.nan  # a fixed-point zero has no sign


@_inline
def _any_lane(x, c):
    """The fast path of any format, chosen by its mode; NaN where it misses."""
    if c[0] == _EXACT_MODE:
        return x if x == x else np.nan
    if c[0] == _NEAREST_FLOAT:
        return _float_lane(x, c)
    return _fixed_lane(x, c)


@_inline
def _flushed(x, y):
    """1 if the rounding of a nonzero ``x`` gave zero."""
    return int((y == 0.0) & (x != 0.0))


@_inline
def _subnormal(y, c):
    """1 if ``y`` is a subnormal value of ``c``'s format."""
    return int((y != 0.0) & (abs(y) < c[10]))


@_inline
def _count(ar, q, flushed, subnormal):
    """Add events counted by a fast pass to ``q``'s counters."""
    ar[q, codes.N_FIELDS + codes.FLUSHED_TO_ZERO] += flushed
    ar[q, codes.N_FIELDS + codes.SUBNORMAL] += subnormal


@_inline
def _store_hits(out, tmp, n):
    """Store the lanes of ``tmp`` that hit the fast path into ``out``; True
    if any missed (those lanes of ``out`` keep their value).
    """  # noqa: D205
    misses = 0
    for k in range(n):
        hit = tmp[k] == tmp[k]
        out[k] = tmp[k] if hit else out[k]
        misses += not hit
    return misses != 0


@kernel
def columns(theta, start, rows, cols):
    """The columns of the ``(rows, cols)`` matrix stored row-major at
    ``theta[start:]``, copied into the rows of a contiguous array, so that the
    vector operations read them at unit stride (a strided read keeps them from
    vectorising).
    """  # noqa: D205
    return theta[start : start + rows * cols].reshape(rows, cols).T.copy()


# Fast passes. Each takes the lane function of its loop's family as an
# argument: a distinct function is a distinct type to Numba, so each family
# gets a loop of its own, with no branch on the format inside.


@_inline
def _mac_pass(out, a, x, sign, tmp, cp, cs, cq, lane, store):
    """``tmp[k] = [rnd(q,] add(out[k], sign * mul(a[k], x))[)]`` by the fast
    path, the final rounding to ``cq`` only if ``store``; returns the events
    it counted (flushes and subnormals of the product, the sum and the stored
    value), over the lanes that hit.
    """  # noqa: D205
    fp = sp = fs = ss = fq = sq = 0
    for k in range(out.shape[0]):
        p0 = a[k] * x
        p = lane(p0, cp)
        s0 = out[k] + sign * p
        s = lane(s0, cs)
        y = lane(s, cq) if store else s
        tmp[k] = y
        hit = int(y == y)
        fp += _flushed(p0, p) * hit
        sp += _subnormal(p, cp) * hit
        fs += _flushed(s0, s) * hit
        ss += _subnormal(s, cs) * hit
        fq += _flushed(s, y) * hit
        sq += _subnormal(y, cq) * hit
    return fp, sp, fs, ss, fq, sq


@_inline
def _store_pass(out, b, tmp, cs, cq, lane, add_b):
    """``tmp[k] = rnd(q, [add(]out[k][, b[k])])`` by the fast path, the sum
    only if ``add_b``; returns the events it counted over the lanes that hit.
    """  # noqa: D205
    fs = ss = fq = sq = 0
    for k in range(out.shape[0]):
        s0 = out[k] + b[k] if add_b else out[k]
        s = lane(s0, cs) if add_b else s0
        y = lane(s, cq)
        tmp[k] = y
        hit = int(y == y)
        fs += _flushed(s0, s) * hit
        ss += _subnormal(s, cs) * hit
        fq += _flushed(s, y) * hit
        sq += _subnormal(y, cq) * hit
    return fs, ss, fq, sq


@_inline
def _mac(ar, q, out, a, x, sign, tmp, store):
    """The rounded ``vmac`` (``store`` False) or ``vmac_to`` (True)."""
    n = out.shape[0]
    cp = _consts(ar, codes.PRODUCT)
    cs = _consts(ar, codes.ACCUMULATOR)
    cq = _consts(ar, q)
    family = _join(_family(cp), _family(cs))
    if store:
        family = _join(family, _family(cq))
    if family != _SLOW:
        if family == _FLOATS:
            e = _mac_pass(out, a, x, sign, tmp, cp, cs, cq, _float_lane, store)
        elif family == _FIXED:
            e = _mac_pass(out, a, x, sign, tmp, cp, cs, cq, _fixed_lane, store)
        else:
            e = _mac_pass(out, a, x, sign, tmp, cp, cs, cq, _any_lane, store)
        _count(ar, codes.PRODUCT, e[0], e[1])
        _count(ar, codes.ACCUMULATOR, e[2], e[3])
        if store:
            _count(ar, q, e[4], e[5])
        if not _store_hits(out, tmp, n):
            return
    for k in range(n):
        if family == _SLOW or tmp[k] != tmp[k]:
            s = add(ar, out[k], sign * mul(ar, a[k], x))
            out[k] = rnd(ar, q, s) if store else s


@_inline
def _store(ar, q, out, b, tmp, add_b):
    """The rounded ``vadd_to`` (``add_b`` True) or ``vround`` (False)."""
    n = out.shape[0]
    cs = _consts(ar, codes.ACCUMULATOR)
    cq = _consts(ar, q)
    family = _family(cq)
    if add_b:
        family = _join(family, _family(cs))
    if family != _SLOW:
        if family == _FLOATS:
            e = _store_pass(out, b, tmp, cs, cq, _float_lane, add_b)
        elif family == _FIXED:
            e = _store_pass(out, b, tmp, cs, cq, _fixed_lane, add_b)
        else:
            e = _store_pass(out, b, tmp, cs, cq, _any_lane, add_b)
        if add_b:
            _count(ar, codes.ACCUMULATOR, e[0], e[1])
        _count(ar, q, e[2], e[3])
        if not _store_hits(out, tmp, n):
            return
    for k in range(n):
        if family == _SLOW or tmp[k] != tmp[k]:
            s = add(ar, out[k], b[k]) if add_b else out[k]
            out[k] = rnd(ar, q, s)


@_inline
def vmac(ar, out, a, x, sign, tmp):
    """``out[k] = add(out[k], sign * mul(a[k], x))`` for every ``k``."""
    if ar is None:
        for k in range(out.shape[0]):
            out[k] = out[k] + sign * (a[k] * x)
    else:
        _vmac(ar, out, a, x, sign, tmp)


@kernel
def _vmac(ar, out, a, x, sign, tmp):
    if ar is not None:  # never called with None; lets float64 callers compile
        _mac(ar, codes.ACCUMULATOR, out, a, x, sign, tmp, False)


@_inline
def vmac_to(ar, q, out, a, x, sign, tmp):
    """``out[k] = rnd(q, add(out[k], sign * mul(a[k], x)))`` for every ``k``."""
    if ar is None:
        for k in range(out.shape[0]):
            out[k] = out[k] + sign * (a[k] * x)
    else:
        _vmac_to(ar, q, out, a, x, sign, tmp)


@kernel
def _vmac_to(ar, q, out, a, x, sign, tmp):
    if ar is not None:  # never called with None; lets float64 callers compile
        _mac(ar, q, out, a, x, sign, tmp, True)


@_inline
def vmul(ar, out, a, x, tmp):
    """``out[k] = mul(a[k], x)`` for every ``k``."""
    if ar is None:
        for k in range(out.shape[0]):
            out[k] = a[k] * x
    else:
        _vmul(ar, out, a, x, tmp)


@kernel
def _vmul(ar, out, a, x, tmp):
    if ar is not None:  # never called with None; lets float64 callers compile
        # mul(a, x) is a * x, exact in float64, rounded to the product format
        for k in range(out.shape[0]):
            out[k] = a[k] * x
        _store(ar, codes.PRODUCT, out, out, tmp, False)


@_inline
def vadd_to(ar, q, out, b, tmp):
    """``out[k] = rnd(q, add(out[k], b[k]))`` for every ``k``."""
    if ar is None:
        for k in range(out.shape[0]):
            out[k] = out[k] + b[k]
    else:
        _vadd_to(ar, q, out, b, tmp)


@kernel
def _vadd_to(ar, q, out, b, tmp):
    if ar is not None:  # never called with None; lets float64 callers compile
        _store(ar, q, out, b, tmp, True)


@_inline
def vround(ar, q, out, tmp):
    """``out[k] = rnd(q, out[k])`` for every ``k``."""
    if ar is not None:
        _vround(ar, q, out, tmp)


@kernel
def _vround(ar, q, out, tmp):
    if ar is not None:  # never called with None; lets float64 callers compile
        _store(ar, q, out, out, tmp, False)
