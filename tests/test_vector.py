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
from fpttsim.numerics.vector import vmac, vmac_to, vround


@numba.njit
def scalar_mac(ar, q, out, a, x, sign):
    for k in range(out.shape[0]):
        s = add(ar, out[k], sign * mul(ar, a[k], x))
        out[k] = s if q < 0 else rnd(ar, q, s)


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


@pytest.mark.parametrize("name, arith", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("special", [False, True], ids=["normal", "special"])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_vector_operations_equal_the_scalar_ones(name, arith, special, layout):
    rng = np.random.default_rng(11)
    n = 37  # not a multiple of any vector width
    for scale in (1e-3, 0.3, 40.0):
        out = rng.normal(size=n) * scale
        base = rng.normal(size=2 * n) * scale
        if special:
            out = values(rng, n, scale)
            base[::2] = values(rng, n, scale)
        a = base[::2] if layout == "strided" else base[:n]
        x = float(rng.normal()) * scale
        for sign in (1.0, -1.0):
            for q in (-1, codes.GRADIENT, codes.STATE):
                vec, ref = arith.fresh(), arith.fresh()
                got, want = out.copy(), out.copy()
                seed_stochastic_rounding(5)
                if q < 0:
                    vmac(vec.ar, got, a, x, sign, np.empty(n))
                else:
                    vmac_to(vec.ar, q, got, a, x, sign, np.empty(n))
                seed_stochastic_rounding(5)
                scalar_mac(ref.ar, q, want, a, x, sign)
                np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
                np.testing.assert_array_equal(vec.counts, ref.counts)

        vec, ref = arith.fresh(), arith.fresh()
        got, want = out.copy(), out.copy()
        seed_stochastic_rounding(5)
        vround(vec.ar, codes.ERROR, got, np.empty(n))
        seed_stochastic_rounding(5)
        scalar_round(ref.ar, codes.ERROR, want)
        np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
        np.testing.assert_array_equal(vec.counts, ref.counts)


def test_special_values_are_counted_as_events():
    # the comparison above would pass vacuously if no event ever happened
    arith = Arithmetic.from_profile(load_profile("fp16-edge-npu"))
    out = values(np.random.default_rng(0), 37, 1.0)
    vround(arith.ar, codes.ERROR, out, np.empty(37))
    events = arith.events()["error"]
    assert events["nan"] == 1
    assert events["overflow_to_inf"] >= 1


def test_float64_everywhere_is_plain_arithmetic():
    rng = np.random.default_rng(2)
    out, a = rng.normal(size=9), rng.normal(size=9)
    want = out - a * 0.7
    vmac(None, out, a, 0.7, -1.0, np.empty(9))
    np.testing.assert_array_equal(out, want)
