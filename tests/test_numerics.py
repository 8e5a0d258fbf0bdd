"""Number formats and rounding, against independent implementations.

Oracles: numpy's float16 and float32 casts and ml_dtypes' bfloat16 and float8
casts (bit for bit, on a million values per format), and a slow reference
written here in exact rational arithmetic (fractions.Fraction) for every
rounding mode, overflow mode and the generic and fixed-point formats.

ml_dtypes converts float64 to bfloat16 and float8 through float32, so it
rounds twice: 1 + 2**-8 + 2**-30 becomes 1 + 2**-8 in float32, a tie, and
then 1.0 in bfloat16, where the correctly rounded value is 1 + 2**-7. Our
quantize rounds once. The ml_dtypes oracle is therefore fed float32 values
rounded to odd (truncate, then set the last bit if anything was dropped):
float32 keeps at least 2 more bits than these targets in every binade they
reach, and rounding to odd then to the target equals rounding directly
(Boldo and Melquiond's theorem), so the last rounding, the one under test, is
ml_dtypes'. Values exact in float32 go to ml_dtypes unchanged as well.
"""

import math
import re
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpttsim.numerics import (
    NAMED_FORMATS,
    NumberFormat,
    codes,
    kernel,
    parse_format,
    quantize,
    quantize_block,
    quantize_value,
)

ROUNDINGS = codes.ROUNDING_NAMES
DETERMINISTIC = ("nearest-even", "toward-zero", "down", "up")

# Exact reference ------------------------------------------------------------------


def _floor_log2(a: Fraction) -> int:
    e = a.numerator.bit_length() - a.denominator.bit_length()
    return e - 1 if Fraction(2) ** e > a else e


def _magnitude_mode(rounding: str, negative: bool) -> str:
    if rounding == "down":
        return "away" if negative else "zero"
    if rounding == "up":
        return "zero" if negative else "away"
    return {"toward-zero": "zero", "nearest-even": "nearest"}.get(rounding, rounding)


def _round_magnitude(n: Fraction, mode: str, u: float, even) -> int:
    """n >= 0 rounded to an integer; even(k) says which tie candidate wins."""
    lo = math.floor(n)
    t = n - lo
    if mode == "nearest":
        if t == Fraction(1, 2):
            return lo if even(lo) else lo + 1
        return lo + (t > Fraction(1, 2))
    if mode == "zero":
        return lo
    if mode == "away":
        return lo + (t > 0)
    return lo + (Fraction(u) < t)  # stochastic


def ref_float(x: float, fmt: NumberFormat, rounding, overflow, u=0.0) -> float:
    """Round x to a float format in exact rational arithmetic."""
    m, emin = fmt.fraction_bits, fmt.emin
    largest = fmt.max_finite
    negative = math.copysign(1.0, x) < 0
    sign = -1.0 if negative else 1.0
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        if overflow == "saturate":
            return sign * largest
        return x if fmt.infinities else math.nan
    a = abs(Fraction(x))
    if a == 0:
        return x
    eb = max(_floor_log2(a), emin)
    q = Fraction(2) ** (eb - m)

    def index(v: Fraction) -> int:  # the encoding of v as an integer
        if v < Fraction(2) ** emin:
            return int(v / Fraction(2) ** (emin - m))
        ev = _floor_log2(v)
        return (ev - emin + 1) * 2**m + int(v / Fraction(2) ** (ev - m)) - 2**m

    mode = _magnitude_mode(rounding, negative)
    k = _round_magnitude(a / q, mode, u, lambda j: index(j * q) % 2 == 0)
    v = k * q
    if v > Fraction(largest):
        if overflow == "inf" and mode != "zero":
            return sign * math.inf if fmt.infinities else math.nan
        return sign * largest
    if 0 < v < Fraction(2) ** emin and not fmt.subnormals:
        v = Fraction(0)
    return sign * float(v)


def ref_fixed(x: float, w: int, f: int, rounding, overflow, u=0.0) -> float:
    """Round x to fixed<w>.<f> in exact integer arithmetic."""
    lo, hi = -(2 ** (w - 1)), 2 ** (w - 1) - 1
    if math.isnan(x):
        return math.nan
    if math.isinf(x):
        return math.ldexp(hi if x > 0 else lo, -f)
    n = Fraction(x) * 2**f
    mode = _magnitude_mode(rounding, x < 0)
    k = _round_magnitude(abs(n), mode, u, lambda j: j % 2 == 0)
    k = -k if x < 0 else k
    if k > hi or k < lo:
        k = (k - lo) % 2**w + lo if overflow == "wrap" else min(max(k, lo), hi)
    return math.ldexp(float(k), -f) + 0.0


# Test values ----------------------------------------------------------------------


def sample(fmt: NumberFormat, n: int, seed: int) -> np.ndarray:
    """Random signs, random significands, binades from below the smallest
    subnormal to above the largest finite value."""
    rng = np.random.default_rng(seed)
    lo = max(fmt.emin - fmt.fraction_bits - 10, -1074)
    hi = min(fmt.emax + 3, 1023)
    e = np.floor(rng.uniform(lo, hi + 1, n)).astype(np.int64)
    x = np.ldexp(1.0 + rng.random(n), e)
    return np.where(rng.random(n) < 0.5, -x, x)


def special_values(fmt: NumberFormat, seed: int = 0) -> np.ndarray:
    """Ties and their neighbours at several binades, the edges of the range."""
    rng = np.random.default_rng(seed)
    m, emin, emax = fmt.fraction_bits, fmt.emin, fmt.emax
    out = []
    if m < 52:
        for eb in sorted({emin, emin + 1, 0, emax}):
            # ties (2k+1) * 2**(eb-m-1) for k even and odd, normal and
            # subnormal significands
            k = np.concatenate(
                [rng.integers(2**m, 2 ** (m + 1), 40), rng.integers(0, 2**m, 40)]
            )
            k = np.concatenate([k, k[:1] + 1, [2**m - 1, 2 ** (m + 1) - 1]])
            out.append(np.ldexp((2 * k + 1).astype(np.float64), eb - m - 1))
    top = fmt.max_finite
    ulp_top = math.ldexp(1.0, emax - m)
    smallest = fmt.smallest
    edges = [
        top,
        top + ulp_top / 2,  # the overflow threshold of nearest-even
        top + ulp_top,
        2 * top,
        smallest,
        smallest / 2,
        smallest * 1.5,
        fmt.min_normal,
        fmt.min_normal - smallest / 2,
        1.0,
    ]
    edges = [v for v in edges if math.isfinite(v) and v > 0]
    out.append(np.array(edges))
    base = np.concatenate(out)
    with np.errstate(over="ignore"):
        up = np.nextafter(base, np.inf)
    base = np.concatenate([base, up, np.nextafter(base, 0.0)])
    base = np.concatenate([base, -base])
    return np.concatenate([base, [0.0, -0.0, np.inf, -np.inf, np.nan]])


def round_to_odd_float32(x: np.ndarray) -> np.ndarray:
    """x to float32 by truncation, the last bit set when anything was lost."""
    with np.errstate(over="ignore"):
        f = x.astype(np.float32)
    back = f.astype(np.float64)
    inexact = (back != x) & np.isfinite(x)
    bits = f.view(np.uint32).copy()
    bits[inexact & (np.abs(back) > np.abs(x))] -= 1  # one step toward zero
    bits[inexact] |= 1
    return bits.view(np.float32)


def assert_same_bits(ours: np.ndarray, oracle: np.ndarray, uint) -> None:
    """Ours (float64) cast to the oracle's dtype, compared bit for bit."""
    nan = np.isnan(oracle.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(ours), nan)
    with np.errstate(over="ignore"):
        mine = ours.astype(oracle.dtype).view(uint)
    bad = np.flatnonzero((mine != oracle.view(uint)) & ~nan)
    assert bad.size == 0, (ours[bad[:5]], oracle[bad[:5]])
    back = oracle.astype(np.float64)
    assert np.array_equal(back, ours, equal_nan=True)


# Named formats against numpy and ml_dtypes ----------------------------------------

ORACLES = {
    "fp16": (np.float16, np.uint16),
    "fp32": (np.float32, np.uint32),
    "bf16": (ml_dtypes.bfloat16, np.uint16),
    "fp8-e4m3": (ml_dtypes.float8_e4m3fn, np.uint8),
    "fp8-e5m2": (ml_dtypes.float8_e5m2, np.uint8),
}


@pytest.mark.parametrize("name", list(ORACLES))
def test_named_format_fields_match_the_oracle_dtypes(name):
    fmt = parse_format(name)
    dtype = ORACLES[name][0]
    info = ml_dtypes.finfo(dtype) if name in ("bf16", "fp8-e4m3", "fp8-e5m2") else None
    info = info or np.finfo(dtype)
    assert fmt.max_finite == float(info.max)
    assert fmt.min_normal == float(info.smallest_normal)
    assert fmt.smallest == float(info.smallest_subnormal)
    assert fmt.bits == np.dtype(dtype).itemsize * 8
    assert fmt.fraction_bits == info.nmant
    assert fmt.exponent_bits == info.nexp


@pytest.mark.parametrize("name", list(ORACLES))
def test_nearest_even_matches_numpy_and_ml_dtypes_bit_for_bit(name):
    dtype, uint = ORACLES[name]
    fmt = parse_format(name)
    x = sample(fmt, 1_000_000, seed=len(name))
    with np.errstate(over="ignore"):
        x32 = x[:200_000].astype(np.float32).astype(np.float64)  # float32-exact
    x = np.concatenate([x, x32, special_values(fmt)])
    ours = quantize(x, fmt)
    if name in ("fp16", "fp32"):  # numpy casts float64 directly
        with np.errstate(over="ignore"):
            oracle = x.astype(dtype)
    else:
        oracle = round_to_odd_float32(x).astype(dtype)
    assert_same_bits(ours, oracle, uint)
    # on float32-exact values ml_dtypes' own cast is the oracle, no pre-rounding
    n = 1_000_000
    with np.errstate(over="ignore"):
        assert_same_bits(ours[n : n + x32.size], x32.astype(dtype), uint)


def test_direct_rounding_where_float32_would_double_round():
    # 1 + 2**-8 + 2**-30: float32 makes it the bf16 tie 1 + 2**-8 (to 1.0);
    # rounded once it is above the tie, so 1 + 2**-7
    x = np.array([1 + 2**-8 + 2**-30, -(1 + 2**-4 + 2**-40)])
    np.testing.assert_array_equal(quantize(x[:1], "bf16"), [1 + 2**-7])
    np.testing.assert_array_equal(quantize(x[1:], "fp8-e4m3"), [-(1 + 2**-3)])
    for name in ("bf16", "fp8-e4m3"):
        fmt = parse_format(name)
        expected = [ref_float(v, fmt, "nearest-even", "inf") for v in x]
        np.testing.assert_array_equal(quantize(x, fmt), expected)


# Every mode and generic formats against the exact reference -----------------------

GENERIC = [
    "tf32",
    "fp8-e4m3",
    "fp8-e5m2",
    "bf16-nosub",
    "e5m10-nosub",
    "e4m3",
    "e3m2-fn",
    "e2m1-fn",
    "e2m0",
    "e8m0-fn",
    "e11m40",
    "e11m51",
    "e5m52",
    "e10m3-nosub-sat",
    "e6m9-fn-nosub",
]


@pytest.mark.parametrize("name", GENERIC)
def test_every_rounding_and_overflow_mode_matches_the_exact_reference(name):
    fmt = parse_format(name)
    x = np.concatenate([sample(fmt, 300, seed=1), special_values(fmt, seed=2)])
    for rounding in ROUNDINGS:
        for overflow in ("inf", "saturate"):
            u = np.random.default_rng(7).random(x.size)
            ours = quantize(x, fmt, rounding, overflow, rng=np.random.default_rng(7))
            expected = np.array(
                [
                    ref_float(float(v), fmt, rounding, overflow, float(ui))
                    for v, ui in zip(x, u, strict=True)
                ]
            )
            diff = ~((ours == expected) | (np.isnan(ours) & np.isnan(expected)))
            diff |= np.signbit(ours) != np.signbit(expected)
            bad = np.flatnonzero(diff)
            assert bad.size == 0, (rounding, overflow, x[bad[:3]], ours[bad[:3]])


def test_float64_itself_is_an_identity_and_fp64_rounds_nothing():
    x = sample(parse_format("e11m52"), 10_000, seed=3)
    x = np.concatenate([x, special_values(parse_format("e11m52"))])
    for rounding in ROUNDINGS:
        out = quantize(x, "e11m52", rounding, rng=np.random.default_rng(0))
        np.testing.assert_array_equal(out, x)
    counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
    out = quantize(x, "fp64", counts=counts)
    assert np.array_equal(out, x, equal_nan=True)
    assert counts[codes.NAN] == counts.sum() == np.isnan(x).sum()


# Fixed point ------------------------------------------------------------------------

widths = st.integers(2, 53)
fractions_bits = st.integers(0, 64)
reals = st.floats(-1e30, 1e30, allow_nan=False, allow_subnormal=True)


def _scaled(x, w, f):
    """Bring x near the format's range, so that not every value saturates."""
    return math.ldexp(x, w - f - 20) if abs(x) > 1 else x


@settings(max_examples=300, deadline=None)
@given(widths, fractions_bits, reals, st.sampled_from(ROUNDINGS))
def test_fixed_point_matches_the_exact_reference(w, f, x, rounding):
    x = _scaled(x, w, f)
    u = float(np.random.default_rng(5).random(1)[0])
    for overflow in ("saturate", "wrap"):
        out = quantize(
            x, f"fixed{w}.{f}", rounding, overflow, rng=np.random.default_rng(5)
        )
        assert out == ref_fixed(x, w, f, rounding, overflow, u)
        assert not np.signbit(out) or out < 0  # no negative zero


@settings(max_examples=200, deadline=None)
@given(widths, fractions_bits, reals, reals, st.sampled_from(DETERMINISTIC))
def test_fixed_point_is_idempotent_monotone_and_bounded(w, f, x, y, rounding):
    x, y = sorted((_scaled(x, w, f), _scaled(y, w, f)))
    name = f"fixed{w}.{f}"
    qx, qy = quantize([x, y], name, rounding)
    assert qx <= qy
    np.testing.assert_array_equal(quantize([qx, qy], name, rounding), [qx, qy])
    step = math.ldexp(1.0, -f)
    lo, hi = -(2 ** (w - 1)) * step, (2 ** (w - 1) - 1) * step
    assert lo <= qx <= hi and lo <= qy <= hi
    if lo <= x <= hi:  # no saturation: the rounding error bounds hold
        err = Fraction(qx) - Fraction(x)
        if rounding == "nearest-even":
            assert abs(err) <= step / 2
        else:
            assert abs(err) < step
        if rounding == "down":
            assert err <= 0
        elif rounding == "up":
            assert err >= 0
        elif rounding == "toward-zero":
            assert abs(qx) <= abs(x) and (qx == 0 or (qx > 0) == (x > 0))


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 53), st.integers(0, 20), st.integers(-(2**60), 2**60))
def test_wrap_is_modular_on_the_grid(w, f, k):
    x = math.ldexp(float(k), -f)  # a grid value, maybe far out of range
    wrapped = quantize(x, f"fixed{w}.{f}", overflow="wrap")
    lo, hi = -(2 ** (w - 1)), 2 ** (w - 1) - 1
    kw = Fraction(float(wrapped[()])) * 2**f
    assert kw.denominator == 1 and lo <= kw <= hi
    # the wrapped value differs from x by a multiple of 2**(W-F)
    assert (Fraction(x) * 2**f - kw) % 2**w == 0


def test_fixed_point_edges_counted_exactly():
    counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
    x = [100.0, -100.0, 7.96875, -8.0, 0.01, -0.01, np.nan, np.inf, -0.0, 8.5]
    out = quantize(x, "fixed8.4", counts=counts)
    expected = [7.9375, -8.0, 7.9375, -8.0, 0.0, 0.0, np.nan, 7.9375, 0.0, 7.9375]
    np.testing.assert_array_equal(out, expected)
    assert not np.signbit(out[5]) and not np.signbit(out[8])
    # saturated: +-100, 7.96875 (127.5 is a tie, to even 128), inf, 8.5
    assert counts.tolist() == [5, 0, 0, 1, 2, 0]

    counts[:] = 0
    out = quantize([100.0, -100.0, np.inf, 1e300, 8.0], "fixed8.4-wrap", counts=counts)
    # 100 * 16 = 1600 = 6 * 256 + 64 -> 64/16; -1600 -> -64/16; 1e300 * 16 is
    # a multiple of 2**64 -> 0; 8 * 16 = 128 -> -128 -> -8
    np.testing.assert_array_equal(out, [4.0, -4.0, 7.9375, 0.0, -8.0])
    assert counts.tolist() == [1, 4, 0, 0, 0, 0]


def test_fixed_point_64_bits_wraps_in_exact_integer_arithmetic():
    # 2**70 + 2**63 + 2**20 in fixed64.0: modulo 2**64 it is 2**63 + 2**20,
    # which is -2**63 + 2**20 in two's complement
    x = 2.0**70 + 2.0**63 + 2.0**20
    out = quantize(x, "fixed64.0", overflow="wrap")
    assert out == -(2.0**63) + 2.0**20


# Stochastic rounding ----------------------------------------------------------------


def test_stochastic_rounding_is_reproducible_from_the_seed():
    x = sample(parse_format("bf16"), 10_000, seed=4)
    a = quantize(x, "bf16", "stochastic", rng=np.random.default_rng(11))
    b = quantize(x, "bf16", "stochastic", rng=np.random.default_rng(11))
    c = quantize(x, "bf16", "stochastic", rng=np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("name", "x"),
    [
        ("bf16", 1 + 0.3 * 2**-7),
        ("bf16", -(2.0**-130) * 1.7),  # subnormal grid
        ("fp8-e4m3", 2**-11),  # below the smallest subnormal, quarter of it
        ("fp16", 1000.123),
        ("fixed8.4", -1.2345),
        ("fixed16.3-shared", 0.04),  # the block grid is 2**-3: t = 0.32
    ],
)
def test_stochastic_rounding_is_unbiased(name, x):
    # q takes the two neighbours l < x < l + s, the upper with probability
    # p = (x - l) / s, so E[q] = x and sd(q) = s * sqrt(p (1 - p)). The mean of
    # n = 200000 draws has standard error s * sqrt(p (1 - p) / n); a fixed seed
    # makes the test deterministic, and 5 standard errors (two-sided
    # probability 6e-7 for a normal mean) keep it far from a chance failure.
    n = 200_000
    q = quantize(np.full(n, x), name, "stochastic", rng=np.random.default_rng(1))
    lo, hi = np.unique(q)
    p = (x - lo) / (hi - lo)
    se = (hi - lo) * math.sqrt(p * (1 - p) / n)
    assert abs(q.mean() - x) < 5 * se


# Events ------------------------------------------------------------------------


def _counts(x, name, rounding="nearest-even", overflow=None) -> list[int]:
    counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
    quantize(x, name, rounding, overflow, counts=counts)
    return counts.tolist()


def test_float_events_counted_exactly():
    # codes order: saturated, wrapped, overflow_to_inf, nan, flushed, subnormal
    tiny = 2.0**-12  # below half of e4m3's smallest subnormal 2**-9
    x = [1e6, -np.inf, np.nan, tiny, -tiny, 2.0**-9, 3 * 2.0**-9, 1.0, -0.0]
    # e4m3 has no infinities: 1e6 -> NaN (overflow and NaN), -inf -> NaN
    assert _counts(x, "fp8-e4m3") == [0, 0, 1, 3, 2, 2]
    assert _counts(x, "fp8-e4m3", overflow="saturate") == [2, 0, 0, 1, 2, 2]
    # e5m2's normal range reaches 2**-14: nothing flushed or subnormal
    assert _counts(x, "fp8-e5m2") == [0, 0, 1, 1, 0, 0]
    assert _counts(x, "e4m3-nosub") == [0, 0, 1, 1, 4, 0]
    # toward zero never overflows to infinity: clamped to the largest value
    assert _counts([1e6, -1e6], "fp16", "toward-zero") == [2, 0, 0, 0, 0, 0]
    # down: +1e6 to the largest value, -1e6 to -inf; up the mirror
    out = quantize([1e6, -1e6], "fp16", "down")
    np.testing.assert_array_equal(out, [65504.0, -np.inf])
    out = quantize([1e6, -1e6], "fp16", "up")
    np.testing.assert_array_equal(out, [np.inf, -65504.0])
    assert _counts([1e6, -1e6], "fp16", "up") == [1, 0, 1, 0, 0, 0]


def test_signed_zero_infinities_and_nan_pass_as_documented():
    x = np.array([-0.0, 0.0, np.inf, -np.inf, np.nan, -1e-300])
    out = quantize(x, "fp16")
    np.testing.assert_array_equal(np.signbit(out), [1, 0, 0, 1, 0, 1])
    np.testing.assert_array_equal(out[:4], [0.0, 0.0, np.inf, -np.inf])
    assert np.isnan(out[4])
    sat = quantize(x, "e4m3-sat")
    np.testing.assert_array_equal(sat[2:4], [240.0, -240.0])


def test_quantize_value_is_callable_from_a_compiled_kernel():
    @kernel
    def rounded_sum(x, row, counts):
        s = 0.0
        for v in x:
            s += quantize_value(v, row, 0.0, counts)
        return s

    x = np.array([1 + 2**-9, 1.5 * 2.0**-130, 1e40, np.nan])
    row = parse_format("bf16").row("nearest-even", "saturate")
    counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
    expected = quantize(x[:3], "bf16", overflow="saturate").sum()
    assert rounded_sum(x[:3], row, counts) == expected
    assert counts.tolist() == [1, 0, 0, 0, 0, 1]
    assert math.isnan(rounded_sum(x, row, counts))
    assert counts[codes.NAN] == 1


def test_shapes_and_scalars():
    x = np.arange(24.0).reshape(2, 3, 4)[:, ::2] / 7  # not contiguous
    out = quantize(x, "bf16")
    assert out.shape == x.shape and out.dtype == np.float64
    assert quantize(0.1, "fp16").shape == ()
    assert quantize(0.1, "fp16") == np.float16(0.1)


# Shared exponent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "exponent"),
    [
        ([0.5, -0.25], -7),  # the finest grid, 2**-F, holds them
        ([3.0, 0.1], -5),  # 127 * 2**-6 < 3 <= 127 * 2**-5
        ([127.0], 0),
        ([-127.5], 1),
        ([0.0, 0.0], -7),
        ([np.inf, 1.0], -6),  # infinities do not choose the exponent
    ],
)
def test_block_exponent_is_the_smallest_that_fits(x, exponent):
    values, e = quantize_block(x, "fixed8.7-shared")
    assert e == exponent
    finite = np.isfinite(values)
    k = np.asarray(values)[finite] * 2.0**-e
    np.testing.assert_array_equal(k, np.round(k))
    assert np.all(np.abs(k) <= 127)


def test_block_exponent_cap_near_the_float64_limit():
    # (2**52 - 1) * 2**972 = 2**1024 - 2**972 is the largest fixed53 block
    # value float64 holds; its largest value, 2**1024 - 2**971, saturates
    counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
    big = np.finfo(np.float64).max
    values, e = quantize_block([big, -1.0], "fixed53.0-shared", counts=counts)
    assert e == 972
    np.testing.assert_array_equal(values, [math.ldexp(2.0**52 - 1, 972), 0.0])
    assert counts.tolist() == [1, 0, 0, 0, 1, 0]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 32),
    st.integers(0, 20),
    st.lists(st.floats(-1e6, 1e6, allow_subnormal=False), min_size=1, max_size=20),
    st.sampled_from(ROUNDINGS),
)
def test_block_rounds_to_its_own_fixed_point_grid(w, f, xs, rounding):
    values, e = quantize_block(
        xs, f"fixed{w}.{f}-shared", rounding, rng=np.random.default_rng(0)
    )
    largest = 2 ** (w - 1) - 1
    amax = max(abs(v) for v in xs)
    assert e >= -f and Fraction(amax) <= largest * Fraction(2) ** e
    if e > -f:  # one less would not do
        assert Fraction(amax) > largest * Fraction(2) ** (e - 1)
    u = np.random.default_rng(0).random(len(xs))
    expected = [
        ref_fixed(v, w, -e, rounding, "saturate", ui)
        for v, ui in zip(xs, u, strict=True)
    ]
    np.testing.assert_array_equal(values, expected)
    same = quantize(xs, f"fixed{w}.{f}-shared", rounding, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(same, values)


# Format names and rows ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("fp64", dict(kind="exact", bits=64, default_overflow="inf")),
        ("tf32", dict(kind="float", bits=19, max_finite=(2 - 2**-10) * 2.0**127)),
        ("fp8-e4m3", dict(infinities=False, max_finite=448.0, emin=-6)),
        ("e4m3", dict(infinities=True, max_finite=240.0)),
        ("E5M2-NoSub", dict(subnormals=False, smallest=2.0**-14)),
        # not OCP FP4 (no NaN, largest 6): the all-ones code here is NaN
        ("e2m1-fn", dict(max_finite=4.0, smallest=0.5)),
        ("e8m0-fn", dict(max_finite=2.0**127, bits=9)),
        ("bf16-sat", dict(default_overflow="saturate")),
        ("fixed16.12", dict(kind="fixed", bits=16, max_finite=8 - 2**-12)),
        ("fixed8.10", dict(max_finite=127 / 1024, min_normal=2**-10)),
        ("fixed8.7-shared", dict(shared_exponent=True, has_nan=False)),
        ("fixed8.7-wrap", dict(default_overflow="wrap", emin=-7)),
    ],
)
def test_parse_format_fields(name, fields):
    fmt = parse_format(name)
    assert fmt.name == name.lower()
    for key, value in fields.items():
        assert getattr(fmt, key) == value, key


def test_format_row_fields():
    row = parse_format("fp8-e4m3").row("up", "saturate")
    assert row.shape == (codes.N_FIELDS,) and row.dtype == np.float64
    assert row[codes.KIND] == codes.FLOAT
    assert row[codes.ROUNDING] == codes.UP
    assert row[codes.OVERFLOW] == codes.SATURATE
    assert row[codes.FRACTION_BITS] == 3 and row[codes.EMIN] == -6
    assert row[codes.MAX_FINITE] == 448.0 and row[codes.TOTAL_BITS] == 8
    assert (row[codes.SUBNORMALS], row[codes.INFINITIES], row[codes.HAS_NAN]) == (
        1,
        0,
        1,
    )
    fixed = parse_format("fixed12.4").row()
    assert fixed[codes.KIND] == codes.FIXED
    assert fixed[codes.OVERFLOW] == codes.SATURATE and fixed[codes.HAS_NAN] == 0
    assert parse_format("fp16").row()[codes.OVERFLOW] == codes.INF
    assert parse_format("fp64").row()[codes.KIND] == codes.EXACT
    assert set(NAMED_FORMATS) >= {"fp64", "fp32", "tf32", "bf16", "fp16"}


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("fp12", "unknown format"),
        ("e1m3", "exponent_bits must be 2..11"),
        ("e12m3", "exponent_bits must be 2..11"),
        ("e5m53", "fraction_bits must be 0..52"),
        ("e11m4-fn", "11 exponent bits"),
        ("fp8-e4m3-fn", "'fn' given twice or implied"),
        ("e5m2-nosub-nosub", "'nosub' given twice"),
        ("e5m2-wrap", "unknown flag 'wrap'"),
        ("fp64-nosub", "unknown format"),
        ("fixed1.0", "total_bits of fixed point must be 2..64"),
        ("fixed65.3", "total_bits of fixed point must be 2..64"),
        ("fixed8.65", "fraction_bits of fixed point must be 0..64"),
        ("fixed8", "unknown format"),
        ("fixed8.4-sat", "unknown flag 'sat'"),
    ],
)
def test_bad_format_names_give_the_grammar(name, match):
    with pytest.raises(ValueError, match=re.escape(match)) as err:
        parse_format(name)
    message = str(err.value)
    assert f"format name {name!r} is not valid" in message
    assert "fixedW.F[-shared][-wrap]" in message and "fp8-e4m3" in message


def test_format_type_errors():
    with pytest.raises(TypeError, match="format name must be a str, got int"):
        parse_format(16)
    with pytest.raises(TypeError, match="fmt must be a NumberFormat or a format name"):
        quantize([1.0], 16)
    with pytest.raises(ValueError, match="NumberFormat kind must be one of"):
        NumberFormat("x", "posit")
    with pytest.raises(ValueError, match="fixed point cannot hold NaN"):
        NumberFormat("x", "fixed", fraction_bits=3, total_bits=8)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(rounding="nearest"), ValueError, "rounding must be one of"),
        (dict(overflow="clip"), ValueError, "overflow must be one of"),
        (dict(overflow="wrap"), ValueError, "'wrap' is for fixed point only"),
        (dict(rounding="stochastic"), ValueError, "'stochastic' needs rng"),
        (dict(rounding="stochastic", rng=3), TypeError, "rng must be a numpy"),
        (dict(counts=np.zeros(6)), ValueError, "counts must be a writeable int64"),
        (dict(counts=[0] * 6), ValueError, "got list; use np.zeros"),
    ],
)
def test_quantize_argument_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        quantize([1.0], "bf16", **kwargs)


def test_mode_and_block_errors():
    with pytest.raises(ValueError, match="'inf' needs infinities; fixed-point"):
        quantize([1.0], "fixed8.4", overflow="inf")
    with pytest.raises(TypeError, match="x must be real, got dtype complex128"):
        quantize([1j], "bf16")
    with pytest.raises(ValueError, match="quantize_block needs a fixed-point format"):
        quantize_block([1.0], "fixed8.4")
    with pytest.raises(ValueError, match="add '-shared'"):
        quantize_block([1.0], "bf16")


@kernel
def _map_quantize_value(x, row, u, counts):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = quantize_value(x[i], row, u[i], counts)
    return out


@pytest.mark.parametrize(
    "name", ["bf16", "fp8-e4m3", "e5m10-nosub", "e2m0", "e11m52", "fixed12.5", "fp64"]
)
def test_scalar_kernel_agrees_with_the_array_path(name):
    # quantize's loop takes a fast path for normal values; quantize_value
    # always goes the full way: both must give the same values and events
    fmt = parse_format(name)
    probe = fmt if fmt.kind == "float" else parse_format("e8m10")
    x = np.concatenate([sample(probe, 20_000, seed=9), special_values(probe)])
    for rounding in ROUNDINGS:
        for overflow in ("saturate", fmt.default_overflow):
            u = np.random.default_rng(3).random(x.size)
            a = np.zeros(codes.N_EVENTS, dtype=np.int64)
            b = np.zeros(codes.N_EVENTS, dtype=np.int64)
            expected = quantize(
                x, fmt, rounding, overflow, rng=np.random.default_rng(3), counts=a
            )
            got = _map_quantize_value(x, fmt.row(rounding, overflow), u, b)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))
            np.testing.assert_array_equal(got, expected)
            assert a.tolist() == b.tolist()
