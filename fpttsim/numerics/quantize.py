r"""Rounding float64 values to a number format, as a device stores them.

:func:`quantize_value` is the scalar kernel every other compiled kernel calls;
:func:`quantize` and :func:`quantize_block` round whole arrays.

Floats
    ``x`` is rounded to ``M + 1`` significant bits at its binade, with the
    binade floored at EMIN so that values below the smallest normal number
    fall on the subnormal grid ``2**(EMIN - M)`` (gradual underflow). The
    exponent is unbounded above while rounding; a rounded magnitude above the
    largest finite value is an overflow:

    - overflow ``"inf"`` follows IEEE 754: nearest-even and stochastic
      rounding overflow to infinity, toward-zero to the largest finite value,
      ``down`` sends large positives to the largest value and large negatives
      to ``-inf``, ``up`` the mirror. A format without infinities gives NaN
      wherever IEEE 754 gives an infinity (ml_dtypes' ``float8_e4m3fn`` does
      the same);
    - overflow ``"saturate"`` clamps to ``±max_finite``.

    Without subnormals, a value is rounded as if they existed and a subnormal
    result becomes a zero of the same sign, whatever the rounding mode (as
    flush-to-zero hardware does). Zeros keep their sign, NaN stays NaN, an
    infinity stays one (``"inf"`` mode, format with infinities), becomes NaN
    (``"inf"`` mode, format without) or ``±max_finite`` (``"saturate"``).
    Nearest-even breaks a tie toward the even encoding, which for formats
    with no fraction bits is the even biased exponent.

Fixed point ``fixedW.F``
    ``x * 2**F`` is rounded to an integer ``k``; ``k`` outside
    ``[-2**(W-1), 2**(W-1) - 1]`` is clamped (``"saturate"``) or taken modulo
    ``2**W`` into that range (``"wrap"``, two's complement, in exact int64
    arithmetic). The result is ``k * 2**-F``; a zero is always ``+0.0``.
    NaN gives NaN (counted) although the format cannot hold it; an infinity
    saturates in either mode, having no residue to wrap.

Stochastic rounding rounds a magnitude away from zero when ``u < t``, ``t``
the distance from the smaller candidate in units of the grid step, so it
rounds up or down with probability equal to its distance from the other side
and is unbiased.

Events counted (:mod:`.codes`): SATURATED, a result clamped to
``±max_finite`` by overflow (also an infinite input saturated); WRAPPED, an
overflow wrapped; OVERFLOW_TO_INF, a finite value that overflowed to an
infinity, or to NaN in a format without; NAN, any NaN result (passed on or
produced); FLUSHED_TO_ZERO, a nonzero value that became zero; SUBNORMAL, a
nonzero subnormal result.

Not supported
-------------
Fixed point wider than 53 bits: the integer is exact, its conversion to
float64 rounds (see :mod:`.formats`). Stochastic rounding uses ``u`` at 53
bits' resolution, as numpy draws it.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from fpttsim.numerics import codes
from fpttsim.numerics._jit import kernel
from fpttsim.numerics.formats import NumberFormat, parse_format

# Fields of a float64's bit pattern, as int64
_ABS = 0x7FFFFFFFFFFFFFFF
_SIGN = -0x8000000000000000
_INF_BITS = 0x7FF0000000000000
_FRACTION = (1 << 52) - 1
_IMPLICIT = 1 << 52
_TWO_63 = 2.0**63

# What a rounding mode does to a magnitude, once the sign is known
_NEAREST = 0
_TOWARD_ZERO = 1
_AWAY = 2
_RANDOM = 3

# Scalar kernels return their events as a bit mask (1 << event code), which
# the caller adds to its counters: an array argument would cost each call two
# atomic reference-count updates
_SATURATED = 1 << codes.SATURATED
_WRAPPED = 1 << codes.WRAPPED
_OVERFLOW_TO_INF = 1 << codes.OVERFLOW_TO_INF
_NAN = 1 << codes.NAN
_FLUSHED = 1 << codes.FLUSHED_TO_ZERO
_SUBNORMAL = 1 << codes.SUBNORMAL


# numba has no scalar reinterpret cast: these two are single LLVM bitcasts,
# inlined into the kernels that call them
@intrinsic
def _float_bits(typingctx, x):
    """The bit pattern of a float64, as int64 (a register move, no memory)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _bits_float(typingctx, bits):
    """The float64 whose bit pattern is the int64 ``bits``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@kernel
def _pow2(k):
    """``2.0**k`` for a normal power, -1022 <= k <= 1023, built from its bits."""
    return _bits_float((k + 1023) << 52)


@kernel
def _magnitude_mode(rounding, negative):
    """What ``rounding`` does to the magnitude of a value of this sign."""
    if rounding == codes.NEAREST_EVEN:
        return _NEAREST
    if rounding == codes.STOCHASTIC:
        return _RANDOM
    if rounding == codes.DOWN:
        return _AWAY if negative else _TOWARD_ZERO
    if rounding == codes.UP:
        return _TOWARD_ZERO if negative else _AWAY
    return _TOWARD_ZERO


# Floats -----------------------------------------------------------------------


@kernel
def _round_bits(a, d, mode, u, parity_bits):
    """The bit pattern ``a`` of a magnitude with its ``d`` low bits rounded off.

    1 <= d <= 52. A carry out of the fraction field increments the exponent
    field, which is the correctly rounded value of the next binade. The
    kept part's lowest bit, for ties to even, is read from ``parity_bits``.
    """
    mask = (1 << d) - 1
    if mode == _NEAREST:
        odd = (parity_bits >> d) & 1
        return (a + (mask >> 1) + odd) & ~mask
    if mode == _TOWARD_ZERO:
        return a & ~mask
    if mode == _AWAY:
        return (a + mask) & ~mask
    # away iff floor(u * 2**d) < (a & mask), i.e. iff u < t
    return (a + mask - np.int64(u * _pow2(d))) & ~mask


@kernel
def _round_tiny(magnitude, qe, mode, u):
    """Bits of 0 or the grid step ``2**qe``, for a magnitude below the step."""
    t = math.ldexp(magnitude, -qe)  # exact: a scaling up
    if mode == _NEAREST:
        away = t > 0.5  # a tie goes to zero, the even encoding
    elif mode == _TOWARD_ZERO:
        away = False
    elif mode == _AWAY:
        away = t > 0.0
    else:
        away = u < t
    return _float_bits(math.ldexp(1.0, qe)) if away else 0


@kernel
def _float_overflow(negative, mode, max_bits, infinities, overflow):
    """Result and events of a finite value rounded beyond the largest one."""
    if overflow == codes.INF and mode != _TOWARD_ZERO:
        if not infinities:
            return np.nan, _OVERFLOW_TO_INF | _NAN
        y, events = np.inf, _OVERFLOW_TO_INF
    else:
        y, events = _bits_float(max_bits), _SATURATED
    return (-y if negative else y), events


@kernel
def _float_special(x, a, max_bits, infinities, overflow):
    """Result and events of an infinity or a NaN (magnitude bits ``a``)."""
    if a > _INF_BITS:
        return x, _NAN
    if overflow == codes.INF:
        if infinities:
            return x, 0
        return np.nan, _NAN
    y = _bits_float(max_bits)
    return (-y if x < 0 else y), _SATURATED


@kernel
def _round_float(
    x, m, emin, max_bits, normal_bits, subnormals, infinities, rnd, ovf, u
):
    """``x`` rounded to a float with ``m`` fraction bits, and its events."""
    bits = _float_bits(x)
    a = bits & _ABS
    negative = bits < 0
    if a >= _INF_BITS:
        return _float_special(x, a, max_bits, infinities, ovf)
    mode = _magnitude_mode(rnd, negative)

    # binade of x (float64's subnormals share the smallest normal's), floored
    # at the format's smallest normal binade: d float64 fraction bits go
    ex = max(a >> 52, 1) - 1023
    eb = max(ex, emin)
    d = 52 - m + eb - ex
    if d <= 0:
        r = a
    elif d <= 52:
        # below emin the kept part's lowest bit is the implicit one when d = 52
        parity_bits = a | _IMPLICIT if ex < emin else a
        r = _round_bits(a, d, mode, u, parity_bits)
    else:
        r = _round_tiny(abs(x), eb - m, mode, u)

    if r > max_bits:
        return _float_overflow(negative, mode, max_bits, infinities, ovf)
    events = 0
    if r < normal_bits:
        if r == 0:
            if a != 0:
                events = _FLUSHED
        elif subnormals:
            events = _SUBNORMAL
        else:
            r = 0
            events = _FLUSHED
    y = _bits_float(r)
    return (-y if negative else y), events


# Fixed point --------------------------------------------------------------------


@kernel
def _wrap(k, negative, w):
    """``±k`` (k a nonnegative integral float) modulo ``2**w``, as int64."""
    if k < _TWO_63:
        v = np.int64(k)
    else:
        # k = significand * 2**ek with ek >= 11: only its low 64 bits matter
        kb = _float_bits(k)
        ek = (kb >> 52) - 1075
        v = ((kb & _FRACTION) | _IMPLICIT) << ek if ek < 64 else np.int64(0)
    if negative:
        v = -v
    shift = 64 - w  # sign-extend bit w - 1: two's complement of width w
    return (v << shift) >> shift


@kernel
def _round_fixed(x, f, w, rnd, ovf, u):
    """``x`` rounded to ``w``-bit fixed point, ``f`` bits after the point."""
    if x != x:
        return x, _NAN
    negative = x < 0
    mode = _magnitude_mode(rnd, negative)
    s = abs(x) * _pow2(f)  # exact unless it overflows (or is tiny, see AWAY)

    if mode == _NEAREST:
        k = np.rint(s)
    elif mode == _TOWARD_ZERO:
        k = np.floor(s)
    elif mode == _AWAY:
        k = np.ceil(s)
        if k == 0.0 and x != 0.0:
            k = 1.0  # s may have underflowed to zero when f < 0
    else:
        k = np.floor(s)
        if u < s - k:
            k += 1.0

    events = 0
    limit = _pow2(w - 1)
    if k >= limit and not (negative and k == limit):
        if ovf == codes.WRAP and s != np.inf:
            y = np.float64(_wrap(k, negative, w)) * _pow2(-f)
            return y + 0.0, _WRAPPED
        events = _SATURATED
        k = limit if negative else limit - 1.0
    elif k == 0.0 and x != 0.0:
        events = _FLUSHED
    y = k * _pow2(-f)
    # + 0.0 turns -0.0 into +0.0: two's complement has one zero
    return (-y if negative else y) + 0.0, events


# Dispatch -------------------------------------------------------------------------


@kernel
def _add_events(counts, events):
    """Add the events of the mask ``events`` to ``counts``."""
    for code in range(codes.N_EVENTS):
        if events & (1 << code):
            counts[code] += 1


@kernel
def _round_value(x, row, u):
    """``x`` rounded to the format in ``row``, and its events as a mask."""
    kind = row[codes.KIND]
    rnd = np.int64(row[codes.ROUNDING])
    ovf = np.int64(row[codes.OVERFLOW])
    if kind == codes.FLOAT:
        emin = np.int64(row[codes.EMIN])
        return _round_float(
            x,
            np.int64(row[codes.FRACTION_BITS]),
            emin,
            _float_bits(row[codes.MAX_FINITE]),
            (emin + 1023) << 52,
            row[codes.SUBNORMALS] != 0.0,
            row[codes.INFINITIES] != 0.0,
            rnd,
            ovf,
            u,
        )
    if kind == codes.FIXED:
        f = np.int64(row[codes.FRACTION_BITS])
        w = np.int64(row[codes.TOTAL_BITS])
        return _round_fixed(x, f, w, rnd, ovf, u)
    return x, (_NAN if x != x else 0)


@kernel
def quantize_value(x, row, u, counts):
    """``x`` rounded to the format in ``row``; events added to ``counts``.

    Scalar kernel for other compiled kernels: no allocation, no Python
    objects.

    Parameters
    ----------
    x : float64
        The value.
    row : float64[:]
        A format row (:meth:`.NumberFormat.row`), which carries the rounding
        and overflow modes.
    u : float64
        Uniform draw in [0, 1), used only by stochastic rounding.
    counts : int64[:]
        Event counters, length :data:`.codes.N_EVENTS`, incremented in place.

    Returns
    -------
    float64
        The rounded value (the module docstring gives the rules). The exact
        kind returns ``x`` unchanged and counts only NaN.
    """
    y, events = _round_value(x, row, u)
    if events:
        _add_events(counts, events)
    return y


@kernel
def _addend(a, bits, rnd, d, mask, u):
    """What rounding adds to the magnitude bits ``a`` before ``d`` bits go."""
    if rnd == codes.NEAREST_EVEN:
        return (mask >> 1) + ((a >> d) & 1)
    if rnd == codes.UP:
        return mask & ~(bits >> 63)  # positive values only
    if rnd == codes.DOWN:
        return mask & (bits >> 63)  # negative values only
    if rnd == codes.STOCHASTIC:
        return mask - np.int64(u * _pow2(d))
    return np.int64(0)


@kernel
def _float_array(x, row, u, counts, out):
    """:func:`_round_float` over an array, with a fast path for normal values.

    The fast path rounds a zero or a value of the format's normal range whose
    result stays in range, in a few branch-free integer operations; every
    other value (subnormal, overflowing, infinite, NaN) goes the full way.
    """
    m = np.int64(row[codes.FRACTION_BITS])
    emin = np.int64(row[codes.EMIN])
    max_bits = _float_bits(row[codes.MAX_FINITE])
    normal_bits = (emin + 1023) << 52
    sub = row[codes.SUBNORMALS] != 0.0
    inf = row[codes.INFINITIES] != 0.0
    rnd = np.int64(row[codes.ROUNDING])
    ovf = np.int64(row[codes.OVERFLOW])
    random = u.size > 0
    # for m = 52 (d = 0) the fast path would add a tie bit; send all the slow way
    d = 52 - m
    mask = (np.int64(1) << d) - 1
    low = normal_bits if d > 0 else _INF_BITS
    # pass 1, branch-free so that it vectorises: the fast result everywhere
    slow = 0
    for i in range(x.size):
        ui = u[i] if random else 0.0
        bits = _float_bits(x[i])
        a = bits & _ABS
        r = (a + _addend(a, bits, rnd, d, mask, ui)) & ~mask
        # a NaN's payload may carry r past the sign bit: test a as well
        slow += ((a < low) & (a != 0)) | (r > max_bits) | (a >= _INF_BITS)
        out[i] = _bits_float(r | (bits & _SIGN))
    if slow == 0:
        return
    # pass 2: the values the fast path does not cover, again in full
    for i in range(x.size):
        ui = u[i] if random else 0.0
        bits = _float_bits(x[i])
        a = bits & _ABS
        r = (a + _addend(a, bits, rnd, d, mask, ui)) & ~mask
        if (a < low and a != 0) or r > max_bits or a >= _INF_BITS:
            out[i], events = _round_float(
                x[i], m, emin, max_bits, normal_bits, sub, inf, rnd, ovf, ui
            )
            if events:
                _add_events(counts, events)


@kernel
def _quantize_array(x, row, u, counts, out):
    """``out[i] = quantize_value(x[i], row, u[i] or 0, counts)``, 1-D arrays.

    The row is unpacked once, outside the loop.
    """
    kind = row[codes.KIND]
    rnd = np.int64(row[codes.ROUNDING])
    ovf = np.int64(row[codes.OVERFLOW])
    random = u.size > 0
    if kind == codes.FLOAT:
        _float_array(x, row, u, counts, out)
    elif kind == codes.FIXED:
        f = np.int64(row[codes.FRACTION_BITS])
        w = np.int64(row[codes.TOTAL_BITS])
        for i in range(x.size):
            ui = u[i] if random else 0.0
            out[i], events = _round_fixed(x[i], f, w, rnd, ovf, ui)
            if events:
                _add_events(counts, events)
    else:
        for i in range(x.size):
            if x[i] != x[i]:
                counts[codes.NAN] += 1
            out[i] = x[i]


# Public functions -------------------------------------------------------------------


def quantize(
    x,
    fmt,
    rounding: str = "nearest-even",
    overflow: str | None = None,
    rng: np.random.Generator | None = None,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """``x`` rounded to a number format, as a device would store it.

    Parameters
    ----------
    x : array_like
        Real values, converted to float64.
    fmt : NumberFormat or str
        The format, or its name (:func:`.parse_format`). A format with a
        shared exponent rounds all of ``x`` as one block
        (:func:`quantize_block`).
    rounding : str
        One of :data:`.codes.ROUNDING_NAMES`.
    overflow : str or None
        One of :data:`.codes.OVERFLOW_NAMES`; None means the format's
        default. Floats cannot ``"wrap"``; fixed point has no ``"inf"``.
    rng : numpy.random.Generator, optional
        Required by stochastic rounding, which draws ``x.size`` uniforms from
        it (so the result is reproducible from its seed); unused otherwise.
    counts : numpy.ndarray, optional
        int64 array of length :data:`.codes.N_EVENTS`; events are added to it
        in place.

    Returns
    -------
    numpy.ndarray
        Float64 array of ``x``'s shape (0-d for a scalar) whose values are
        all representable in the format (see the module docstring for the
        exceptions of fixed point wider than 53 bits).

    Raises
    ------
    ValueError
        For an unknown format or mode, a mode the format cannot use, a
        missing generator, or a malformed ``counts``.
    TypeError
        For a format that is neither a name nor a :class:`.NumberFormat`,
        complex ``x``, or an ``rng`` that is not a numpy Generator.
    """
    fmt = _as_format(fmt)
    if fmt.shared_exponent:
        return quantize_block(x, fmt, rounding, overflow, rng, counts)[0]
    row = fmt.row(rounding, overflow)
    values = _as_values(x)
    counts = _as_counts(counts)
    u = _uniforms(rounding, rng, values.size)
    out = np.empty(values.shape, dtype=np.float64)
    _quantize_array(values.reshape(-1), row, u, counts, out.reshape(-1))
    return out


@kernel
def block_row(row, x):
    """Make ``row`` the format of the block ``x`` sharing one exponent.

    ``row`` holds ``fixedW.F-shared``; on return it is ``fixedW.(-e)`` with
    ``e`` the smallest integer, at least ``-F``, such that every finite
    ``|x_i| <= (2^(W-1) - 1) 2^e`` (see :func:`quantize_block`). Returns
    ``e``.
    """
    w = np.int64(row[codes.TOTAL_BITS])
    largest = 2.0 ** (w - 1) - 1.0  # 2^(W-1) for W > 53 (Not supported)
    amax = 0.0
    for i in range(x.shape[0]):
        if math.isfinite(x[i]):
            amax = max(amax, abs(x[i]))
    exponent = -np.int64(row[codes.FRACTION_BITS])
    if amax > 0.0:
        # amax < 2^k, so k - (W - 1) is the smallest candidate, or one more
        candidate = np.int64(math.frexp(amax)[1]) - (w - 1)
        if amax > math.ldexp(largest, candidate):
            candidate += 1
        # 2^-e must be normal and (2^(W-1) - 1) 2^e finite
        exponent = min(max(exponent, candidate), 1022, 1025 - w)
    row[codes.FRACTION_BITS] = -exponent
    row[codes.EMIN] = exponent
    row[codes.MAX_FINITE] = math.ldexp(largest, exponent)
    return exponent


def quantize_block(
    x,
    fmt,
    rounding: str = "nearest-even",
    overflow: str | None = None,
    rng: np.random.Generator | None = None,
    counts: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """``x`` as one block of fixed-point values sharing an exponent.

    For ``fixedW.F-shared`` the block is stored as W-bit two's-complement
    integers ``m_i`` and one exponent ``e``, standing for ``m_i * 2**e``.
    ``e`` is the smallest integer, and at least ``-F``, with
    ``max_i |x_i| <= (2**(W-1) - 1) * 2**e`` over the finite ``x_i``, so no
    finite value overflows whatever the rounding; then ``x`` is rounded to
    ``fixedW.(-e)`` (:func:`quantize`). An all-zero block gets ``e = -F``.

    Parameters
    ----------
    x : array_like
        The block's values.
    fmt : NumberFormat or str
        A fixed-point format with a shared exponent, e.g. ``"fixed8.7-shared"``.
    rounding, overflow, rng, counts
        As for :func:`quantize`; overflow only matters for infinite values.

    Returns
    -------
    values : numpy.ndarray
        The rounded values ``m_i * 2**e``, float64, shaped like ``x``.
    exponent : int
        ``e``.

    Raises
    ------
    ValueError
        If ``fmt`` is not fixed point with a shared exponent, and as
        :func:`quantize`.

    Not supported
    -------------
    ``e`` is capped at ``min(1022, 1025 - W)``, so that ``2**-e`` is a normal
    float64 and the largest value is finite: a block within a factor 2 of
    float64's largest value may saturate (counted). W > 53 as in
    :func:`quantize`.
    """
    fmt = _as_format(fmt)
    if fmt.kind != "fixed" or not fmt.shared_exponent:
        raise ValueError(
            f"quantize_block needs a fixed-point format with a shared exponent, "
            f"got {fmt.name!r}; add '-shared' to a fixed-point name, e.g. "
            "'fixed8.7-shared'"
        )
    row = fmt.row(rounding, overflow)
    values = _as_values(x)
    counts = _as_counts(counts)
    u = _uniforms(rounding, rng, values.size)
    exponent = int(block_row(row, values.reshape(-1)))
    out = np.empty(values.shape, dtype=np.float64)
    _quantize_array(values.reshape(-1), row, u, counts, out.reshape(-1))
    return out, exponent


def _as_format(fmt) -> NumberFormat:
    if isinstance(fmt, NumberFormat):
        return fmt
    if isinstance(fmt, str):
        return parse_format(fmt)
    raise TypeError(
        f"fmt must be a NumberFormat or a format name, got {type(fmt).__name__}; "
        "e.g. 'bf16' or parse_format('bf16')"
    )


def _as_values(x) -> np.ndarray:
    values = np.asarray(x)
    if np.iscomplexobj(values):
        raise TypeError(
            f"x must be real, got dtype {values.dtype}; round the real and "
            "imaginary parts separately"
        )
    return np.asarray(values, dtype=np.float64, order="C")  # keeps 0-d


def _as_counts(counts) -> np.ndarray:
    if counts is None:
        return np.zeros(codes.N_EVENTS, dtype=np.int64)
    ok = (
        isinstance(counts, np.ndarray)
        and counts.dtype == np.int64
        and counts.shape == (codes.N_EVENTS,)
        and counts.flags.writeable
    )
    if not ok:
        got = (
            f"{counts.dtype} array of shape {counts.shape}"
            if isinstance(counts, np.ndarray)
            else type(counts).__name__
        )
        raise ValueError(
            f"counts must be a writeable int64 array of shape ({codes.N_EVENTS},) "
            f"(one counter per event of codes.EVENT_NAMES), got {got}; use "
            f"np.zeros({codes.N_EVENTS}, dtype=np.int64)"
        )
    return counts


def _uniforms(rounding: str, rng, size: int) -> np.ndarray:
    if rounding != "stochastic":
        return np.empty(0, dtype=np.float64)
    if rng is None:
        raise ValueError(
            "rounding 'stochastic' needs rng, a numpy Generator to draw from, "
            "got None; pass rng=np.random.default_rng(seed)"
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}; "
            "use np.random.default_rng(seed)"
        )
    return rng.random(size)
