"""Vector operations against the scalar arithmetic they stand for.

Oracle: the scalar operations of :mod:`fpttsim.numerics.arithmetic`, applied
one element at a time in index order. The vector operations must give the
same bits and count the same events, under every shipped profile and under
formats that have no fast path (stochastic rounding, directed float
rounding), on values that hit every special case.
"""

import numba
import numpy as np
import pytest

from fpttsim.config import load_profile, shipped_profiles
from fpttsim.numerics import codes
from fpttsim.numerics.arithmetic import (
    Arithmetic,
    add,
    mul,
    rnd,
    seed_stochastic_rounding,
)
from fpttsim.numerics.vector import vadd_to, vmac, vmac_to, vmul, vround


@numba.njit
def scalar_mac(ar, q, out, a, x, sign):
    for k in range(out.shape[0]):
        s = add(ar, out[k], sign * mul(ar, a[k], x))
        out[k] = s if q < 0 else rnd(ar, q, s)


@numba.njit
def scalar_mul(ar, out, a, x):
    for k in range(out.shape[0]):
        out[k] = mul(ar, a[k], x)


@numba.njit
def scalar_add_to(ar, q, out, b):
    for k in range(out.shape[0]):
        out[k] = rnd(ar, q, add(ar, out[k], b[k]))


@numba.njit
def scalar_round(ar, q, out):
    for k in range(out.shape[0]):
        out[k] = rnd(ar, q, out[k])


def arithmetics():
    """Every shipped profile, and uniform formats without a fast path."""
    cases = [
        (name, Arithmetic.from_profile(load_profile(name)))
        for name in shipped_profiles()
    ]
    for fmt, rounding in [
        ("bf16", "stochastic"),
        ("fixed16.10", "stochastic"),
        ("fp16", "up"),
        ("fixed12.8", "up"),
        ("fixed12.8-wrap", "nearest-even"),
        ("fp8-e4m3", "nearest-even"),
    ]:
        uniform = Arithmetic([(fmt, rounding, None)] * codes.N_QUANTITIES, seed=3)
        cases.append((f"{fmt} {rounding}", uniform))
    return cases


CASES = arithmetics()


def values(rng, n, scale):
    """Normal values with zeros, tiny, huge, NaN and infinite ones mixed in."""
    v = rng.normal(size=n) * scale
    special = [0.0, -0.0, 1e-300, -5e-8, 3e-5, 1e5, -7e9, np.nan, np.inf, -np.inf]
    where = rng.choice(n, size=len(special), replace=False)
    v[where] = special
    return v


def assert_same(arith, out, vector_op, scalar_op):
    """Both operations on copies of ``out``: same bits, same events."""
    vec, ref = arith.fresh(), arith.fresh()
    got, want = out.copy(), out.copy()
    seed_stochastic_rounding(5)  # the same draws for stochastic rounding
    vector_op(vec.ar, got)
    seed_stochastic_rounding(5)
    scalar_op(ref.ar, want)
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    np.testing.assert_array_equal(vec.counts, ref.counts)


@pytest.mark.parametrize("name, arith", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("special", [False, True], ids=["normal", "special"])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("scale", [1e-3, 0.3, 40.0])
def test_vector_operations_equal_the_scalar_ones(name, arith, special, layout, scale):
    rng = np.random.default_rng(11)
    n = 37  # not a multiple of any vector width
    tmp = np.empty(n)
    out = rng.normal(size=n) * scale
    base = rng.normal(size=2 * n) * scale
    if special:
        out = values(rng, n, scale)
        base[::2] = values(rng, n, scale)
    a = base[::2] if layout == "strided" else base[:n]
    x = float(rng.normal()) * scale
    q = codes.ERROR
    pairs = [
        (
            lambda ar, o: vmac(ar, o, a, x, -1.0, tmp),
            lambda ar, o: scalar_mac(ar, -1, o, a, x, -1.0),
        ),
        (
            lambda ar, o: vmac_to(ar, q, o, a, x, 1.0, tmp),
            lambda ar, o: scalar_mac(ar, q, o, a, x, 1.0),
        ),
        (
            lambda ar, o: vmul(ar, o, a, x, tmp),
            lambda ar, o: scalar_mul(ar, o, a, x),
        ),
        (
            lambda ar, o: vadd_to(ar, q, o, a, tmp),
            lambda ar, o: scalar_add_to(ar, q, o, a),
        ),
        (
            lambda ar, o: vround(ar, q, o, tmp),
            lambda ar, o: scalar_round(ar, q, o),
        ),
    ]
    for vector_op, scalar_op in pairs:
        assert_same(arith, out, vector_op, scalar_op)


def test_special_values_are_counted_as_events():
    # the comparison above would pass vacuously if no event ever happened
    arith = Arithmetic.from_profile(load_profile("fp16-edge-npu"))
    out = values(np.random.default_rng(0), 37, 1.0)
    vround(arith.ar, codes.ERROR, out, np.empty(37))
    events = arith.events()["error"]
    assert events["nan"] == 1
    assert events["overflow_to_inf"] >= 1


def test_flushes_and_subnormal_results_are_counted():
    # fp16's smallest normal is 2^-14: products of 1e-3 x 1e-3 are subnormal,
    # 1e-9 x 1e-3 flushes to zero; every lane here leaves the fast path
    arith = Arithmetic.from_profile(load_profile("fp16-edge-npu"))
    a = np.array([1e-3, 2e-3, 3e-3, 1e-9] * 4)
    vmul(arith.ar, np.empty(16), a, 1e-3, np.empty(16))
    assert arith.events()["product"] == {"flushed_to_zero": 4, "subnormal": 12}


def test_float64_everywhere_is_plain_arithmetic():
    rng = np.random.default_rng(2)
    out, a = rng.normal(size=9), rng.normal(size=9)
    want = out - a * 0.7
    vmac(None, out, a, 0.7, -1.0, np.empty(9))
    np.testing.assert_array_equal(out, want)
