r"""The device's arithmetic over whole vectors, at close to float64 speed.

:mod:`.arithmetic` rounds one scalar at a time, which keeps every kernel
exact but stops the compiler from using vector instructions: each rounding
is a call with a branch on its format. The operations here do the same
arithmetic over a vector at once, in two steps:

1. a *fast pass* computes every lane with the common-case rounding of
   :func:`.arithmetic.rnd` (a normal float result rounded to nearest-even by
   bit operations, or an in-range fixed-point result), written without
   branches so that the loop vectorises, and marks with NaN the lanes that
   left the common case (an event, a zero from a nonzero value, a NaN): the
   fast pass never yields a NaN itself;
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
    _EXACT_MODE,
    _FIXED_DOWN,
    _FIXED_TOWARD_ZERO,
    _FIXED_UP,
    _FULL,
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
    """``q``'s mode and common-case constants, as :func:`.arithmetic.rnd` reads
    them; integer constants as int64.
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
    """Nearest-even on the float64 bits; NaN where the common case misses."""
    dropped, half, low, high = c[4], c[5], c[6], c[7]
    bits = _float_bits(x)
    mag = bits & _ABS
    kept = ((mag + half + ((mag >> dropped) & 1)) >> dropped) << dropped
    hit = (mag == 0) | ((mag >= low) & (mag <= high))
    return _bits_float(kept | (bits & _SIGN)) if hit else np.nan


@_inline
def _fixed_lane(x, c):
    """An integer count of units ``2^-F``; NaN where the common case misses."""
    mode, scale, unit, limit = c[0], c[1], c[2], c[3]
    s = x * scale  # exact: a power of two
    k = np.rint(s)
    if mode == _FIXED_DOWN:
        k = np.floor(s)
    elif mode == _FIXED_TOWARD_ZERO:
        k = np.trunc(s)
    elif mode == _FIXED_UP:
        k = np.ceil(s)
    hit = (k >= -limit) & (k < limit) & ((k != 0.0) | (x == 0.0))
    return k * unit + 0.0 if hit else np.nan  # a fixed-point zero has no sign


@_inline
def _lane(x, c):
    """Either lane, chosen by the format; NaN where the common case misses."""
    if c[0] == _EXACT_MODE:
        return x if x == x else np.nan
    if c[0] == _NEAREST_FLOAT:
        return _float_lane(x, c)
    return _fixed_lane(x, c)


@_inline
def _store_hits(out, tmp, n):
    """Store the lanes of ``tmp`` that hit the common case into ``out``; True
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
    if ar is None:  # never called so; lets float64 callers compile
        return
    n = out.shape[0]
    cp = _consts(ar, codes.PRODUCT)
    cs = _consts(ar, codes.ACCUMULATOR)
    family = _join(_family(cp), _family(cs))
    if family == _SLOW:
        for k in range(n):
            out[k] = add(ar, out[k], sign * mul(ar, a[k], x))
        return

    if family == _FLOATS:
        for k in range(n):
            tmp[k] = _float_lane(out[k] + sign * _float_lane(a[k] * x, cp), cs)
    elif family == _FIXED:
        for k in range(n):
            tmp[k] = _fixed_lane(out[k] + sign * _fixed_lane(a[k] * x, cp), cs)
    else:
        for k in range(n):
            tmp[k] = _lane(out[k] + sign * _lane(a[k] * x, cp), cs)
    if _store_hits(out, tmp, n):
        for k in range(n):
            if tmp[k] != tmp[k]:
                out[k] = add(ar, out[k], sign * mul(ar, a[k], x))


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
    if ar is None:  # never called so; lets float64 callers compile
        return
    n = out.shape[0]
    cp = _consts(ar, codes.PRODUCT)
    cs = _consts(ar, codes.ACCUMULATOR)
    cq = _consts(ar, q)
    family = _join(_join(_family(cp), _family(cs)), _family(cq))
    if family == _SLOW:
        for k in range(n):
            out[k] = rnd(ar, q, add(ar, out[k], sign * mul(ar, a[k], x)))
        return

    if family == _FLOATS:
        for k in range(n):
            s = out[k] + sign * _float_lane(a[k] * x, cp)
            tmp[k] = _float_lane(_float_lane(s, cs), cq)
    elif family == _FIXED:
        for k in range(n):
            s = out[k] + sign * _fixed_lane(a[k] * x, cp)
            tmp[k] = _fixed_lane(_fixed_lane(s, cs), cq)
    else:
        for k in range(n):
            tmp[k] = _lane(_lane(out[k] + sign * _lane(a[k] * x, cp), cs), cq)
    if _store_hits(out, tmp, n):
        for k in range(n):
            if tmp[k] != tmp[k]:
                out[k] = rnd(ar, q, add(ar, out[k], sign * mul(ar, a[k], x)))


@_inline
def vround(ar, q, out, tmp):
    """``out[k] = rnd(q, out[k])`` for every ``k``."""
    if ar is not None:
        _vround(ar, q, out, tmp)


@kernel
def _vround(ar, q, out, tmp):
    if ar is None:  # never called so; lets float64 callers compile
        return
    n = out.shape[0]
    cq = _consts(ar, q)
    family = _family(cq)
    if family == _SLOW:
        for k in range(n):
            out[k] = rnd(ar, q, out[k])
        return

    if family == _FLOATS:
        for k in range(n):
            tmp[k] = _float_lane(out[k], cq)
    else:
        for k in range(n):
            tmp[k] = _lane(out[k], cq)
    if _store_hits(out, tmp, n):
        for k in range(n):
            if tmp[k] != tmp[k]:
                out[k] = rnd(ar, q, out[k])


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
    if ar is None:  # never called so; lets float64 callers compile
        return
    n = out.shape[0]
    cp = _consts(ar, codes.PRODUCT)
    family = _family(cp)
    if family == _SLOW:
        for k in range(n):
            out[k] = mul(ar, a[k], x)
        return

    if family == _FLOATS:
        for k in range(n):
            tmp[k] = _float_lane(a[k] * x, cp)
    else:
        for k in range(n):
            tmp[k] = _lane(a[k] * x, cp)
    if _store_hits(out, tmp, n):
        for k in range(n):
            if tmp[k] != tmp[k]:
                out[k] = mul(ar, a[k], x)


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
    if ar is None:  # never called so; lets float64 callers compile
        return
    n = out.shape[0]
    cs = _consts(ar, codes.ACCUMULATOR)
    cq = _consts(ar, q)
    family = _join(_family(cs), _family(cq))
    if family == _SLOW:
        for k in range(n):
            out[k] = rnd(ar, q, add(ar, out[k], b[k]))
        return

    if family == _FLOATS:
        for k in range(n):
            tmp[k] = _float_lane(_float_lane(out[k] + b[k], cs), cq)
    elif family == _FIXED:
        for k in range(n):
            tmp[k] = _fixed_lane(_fixed_lane(out[k] + b[k], cs), cq)
    else:
        for k in range(n):
            tmp[k] = _lane(_lane(out[k] + b[k], cs), cq)
    if _store_hits(out, tmp, n):
        for k in range(n):
            if tmp[k] != tmp[k]:
                out[k] = rnd(ar, q, add(ar, out[k], b[k]))
