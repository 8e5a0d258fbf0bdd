"""Approximate inverse Jacobians for FPTT (``learning.fptt.inverse``).

Oracles: the exact solve itself (the exact method must be it, bit for bit);
numpy's dense algebra in float64 for the Neumann series, its limit and its
truncation error; numpy's float32 and ml_dtypes' bfloat16 for the rounding
under a bf16 profile; float64 BPTT for the gradient's bias.
"""

import ml_dtypes
import numpy as np
import pytest

import fpttsim
from fpttsim.cells import dispatch, jacobian
from fpttsim.config import load_profile, load_scenario
from fpttsim.config.scenario import INVERSE_METHODS, FpttConfig
from fpttsim.data import CopyTask
from fpttsim.errors import ConfigError
from fpttsim.learn import _kernels, window_gradient
from fpttsim.network import Network
from fpttsim.numerics.arithmetic import Arithmetic

KINDS = [jacobian.COMPLEX_DIAGONAL, jacobian.REAL_DIAGONAL, jacobian.DENSE]
N = 6  # units


def near_identity(kind, radius, rng):
    """A Jacobian of ``kind`` in its storage, with ``rho(I - J) = radius``.

    Returns the storage and the matrix acting on the state as stored (for
    the LRU, the real ``2N x 2N`` form of ``diag(lam)`` on ``[Re h, Im h]``).
    """
    if kind == jacobian.COMPLEX_DIAGONAL:
        # lam = 1 - radius e^{i phi}: |1 - lam| = radius for every unit
        phi = rng.uniform(0, 2 * np.pi, N)
        lam = 1 - radius * np.exp(1j * phi)
        lr, li = np.diag(lam.real), np.diag(lam.imag)
        return np.concatenate([lam.real, lam.imag]), np.block([[lr, -li], [li, lr]])
    if kind == jacobian.REAL_DIAGONAL:
        lam = 1 - radius * rng.choice([-1.0, 1.0], N)
        return lam, np.diag(lam)
    a = rng.normal(size=(N, N))
    a *= radius / np.max(np.abs(np.linalg.eigvals(a)))
    dense = np.eye(N) - a
    return dense.ravel().copy(), dense


def neumann(ar, kind, jac, x, terms):
    out = np.empty_like(x)
    lu = np.empty(x.size * x.size)
    done = jacobian.inverse_transpose(
        ar, kind, jac, x, out, lu, jacobian.NEUMANN, terms
    )
    assert done
    return out


# The kernel -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("profile", [None, "bf16-systolic"])
def test_the_exact_method_is_the_solve_to_the_bit(kind, profile):
    ar = None
    if profile is not None:
        ar = Arithmetic.from_profile(load_profile(profile), 0).ar
    rng = np.random.default_rng(1)
    jac, _ = near_identity(kind, 0.6, rng)
    x = rng.normal(size=2 * N if kind == jacobian.COMPLEX_DIAGONAL else N)
    solved, inverted = np.empty_like(x), np.empty_like(x)
    lu = np.empty(x.size * x.size)
    assert jacobian.solve_transpose(ar, kind, jac, x, solved, lu)
    assert jacobian.inverse_transpose(ar, kind, jac, x, inverted, lu, jacobian.EXACT, 1)
    np.testing.assert_array_equal(inverted, solved)


@pytest.mark.parametrize("kind", KINDS)
def test_one_term_is_two_minus_the_transpose(kind):
    rng = np.random.default_rng(2)
    jac, dense = near_identity(kind, 0.3, rng)
    x = rng.normal(size=dense.shape[0])
    expected = 2 * x - dense.T @ x
    np.testing.assert_allclose(
        neumann(None, kind, jac, x, 1), expected, rtol=1e-14, atol=1e-14
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_series_converges_to_the_inverse_when_i_minus_j_contracts(kind):
    rng = np.random.default_rng(3)
    jac, dense = near_identity(kind, 0.5, rng)
    x = rng.normal(size=dense.shape[0])
    exact = np.linalg.solve(dense.T, x)
    # 0.5^61 ~ 4e-19 of truncation left, below float64's rounding
    np.testing.assert_allclose(
        neumann(None, kind, jac, x, 60), exact, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("radius", [0.5, 1.5])
def test_the_bias_is_the_analytic_truncation_error(kind, radius):
    # J^{-T} x - sum_{i<=m} (I - J^T)^i x = (I - J^T)^{m+1} J^{-T} x, an
    # identity whatever rho(I - J): beyond 1 the bias grows with m
    rng = np.random.default_rng(4)
    jac, dense = near_identity(kind, radius, rng)
    x = rng.normal(size=dense.shape[0])
    exact = np.linalg.solve(dense.T, x)
    step = np.eye(dense.shape[0]) - dense.T
    biases = []
    for m in (1, 2, 3, 5):
        bias = exact - neumann(None, kind, jac, x, m)
        analytic = np.linalg.matrix_power(step, m + 1) @ exact
        scale = max(1.0, np.linalg.norm(analytic))
        np.testing.assert_allclose(bias, analytic, rtol=0, atol=1e-12 * scale)
        biases.append(np.linalg.norm(bias))
    growing = radius > 1
    assert (np.diff(biases) > 0).all() == growing
    assert (np.diff(biases) < 0).all() == (not growing)


def bf16(values):
    """``values`` (float32) rounded to bfloat16, back as float32."""
    return np.asarray(values, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def neumann_in_bf16(kind, jac, x, terms):
    """The iteration as bf16-systolic computes it, in numpy float32 and ml_dtypes.

    Errors and Jacobians are bf16, products and sums fp32 (a bf16 product is
    exact in fp32), each operation rounded on its own: numpy's float32
    arithmetic rounds every operation to nearest-even.
    """
    x = np.asarray(x, np.float32)
    lam = np.asarray(jac, np.float32)
    y = x.copy()
    for _ in range(terms):
        if kind == jacobian.COMPLEX_DIAGONAL:
            yr, yi, lr, li = y[:N], y[N:], lam[:N], lam[N:]
            sr = (yr - lr * yr) - li * yi
            si = (yi - lr * yi) + li * yr
            s = np.concatenate([sr, si])
        elif kind == jacobian.REAL_DIAGONAL:
            s = y - lam * y
        else:
            s = y.copy()
            for i in range(N):  # (J^T y)_j summed over i in order
                s = s - lam[i * N : (i + 1) * N] * y[i]
        y = bf16(x + s)
    return y.astype(np.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_under_bf16_every_iterate_is_rounded_as_the_device_would(kind):
    ar = Arithmetic.from_profile(load_profile("bf16-systolic"), 0).ar
    rng = np.random.default_rng(5)
    jac, dense = near_identity(kind, 0.3, rng)
    # the device holds J and the error in bf16
    jac = bf16(jac).astype(np.float64)
    x = bf16(rng.normal(size=dense.shape[0])).astype(np.float64)
    out = neumann(ar, kind, jac, x, 4)
    np.testing.assert_array_equal(bf16(out).astype(np.float64), out)
    np.testing.assert_array_equal(out, neumann_in_bf16(kind, jac, x, 4))
    assert not np.array_equal(out, neumann(None, kind, jac, x, 4))


def test_the_configuration_numbers_methods_as_the_kernel_does():
    assert INVERSE_METHODS.index("exact") == jacobian.EXACT
    assert INVERSE_METHODS.index("neumann") == jacobian.NEUMANN
    assert FpttConfig().inverse_code == jacobian.EXACT
    assert FpttConfig(inverse="neumann", terms=3).inverse_code == jacobian.NEUMANN


# The gradient -----------------------------------------------------------------


def test_both_passes_take_the_series_and_the_product_stays_exact():
    """Two steps of ``h_t = lam h_{t-1} + x_t``, derived by hand.

    With one term ``J^{-T}`` becomes ``a = 2 - lam``. Warm-up: ``d_1 = 0``,
    ``d_2 = -a g_1``, ``P = lam^2``, so ``delta_0 = lam^2 (g_2 + a g_1)``.
    Error pass: ``d_1 = a delta_0``, ``d_2 = a (a delta_0 - g_1)``; the
    residual ``d_2 - g_2`` is zero only for ``a = 1 / lam``.
    """
    lam, g1, g2 = 0.8, 0.37, -0.21
    a = 2 - lam
    theta = np.array([np.log(-np.log(lam)), 0.0, 1.0])  # nu_log, gamma_log, B
    v = np.ones((2, 1))
    g = np.array([[0.0], [g1], [g2]])
    delta0, jac_prod, residual = np.empty(1), np.empty(1), np.empty(1)
    method = (jacobian.NEUMANN, 1)
    status, _ = _kernels.fptt_warmup(
        None, dispatch.DIAGONAL, theta, v, g, delta0, jac_prod, *method
    )
    assert status == 0
    assert jac_prod[0] == pytest.approx(lam**2, rel=1e-15)
    expected = lam**2 * (g2 + a * g1)
    assert delta0[0] == pytest.approx(expected, rel=1e-14)
    status, _ = _kernels.fptt_error_pass(
        None,
        dispatch.DIAGONAL,
        theta,
        v,
        g,
        delta0,
        np.zeros(3),
        np.zeros((2, 1)),
        residual,
        *method,
    )
    assert status == 0
    end = a * (a * expected - g1)
    assert residual[0] == pytest.approx(end - g2, rel=1e-13)
    assert abs(residual[0]) > 1e-3


def setup(cell, r_min, seed=0):
    task = CopyTask(50, symbols=3, alphabet=4)
    net = Network(cell, 1, 6, 5, 7, task.input_size, task.output_size, task.loss)
    rng = np.random.default_rng(seed)
    theta = net.initialise(rng, r_min, 0.999)
    return net, theta, task.sample(rng)


def bias(net, theta, window, exact, method):
    grad = window_gradient(net, theta, window, "fptt", fptt=method).grad
    return np.linalg.norm(grad - exact) / np.linalg.norm(exact)


@pytest.mark.parametrize(("cell", "r_min"), [("diagonal", 0.99), ("gru", 0.9)])
def test_the_bias_falls_as_terms_grow_on_near_identity_jacobians(cell, r_min):
    net, theta, window = setup(cell, r_min)
    exact = window_gradient(net, theta, window, "bptt").grad
    assert bias(net, theta, window, exact, FpttConfig(inverse="exact")) <= 1e-8
    biases = [
        bias(net, theta, window, exact, FpttConfig(inverse="neumann", terms=m))
        for m in (1, 2, 4)
    ]
    # J is near I (1 - |lam| <= 0.01 for the diagonal cell, 1 - z <= 0.1 for
    # the GRU's gates), yet one term's bias is visible over 50 steps; a step's
    # bias after m terms goes as rho(I - J)^(m+1), and rho(I - J) < 0.1 here,
    # so going from 1 to 2 and from 2 to 4 terms cuts it tenfold at least
    assert biases[0] > 1e-5
    assert biases[0] > 10 * biases[1] > 100 * biases[2]
    # enough terms leave no truncation: both passes use the same series
    many = FpttConfig(inverse="neumann", terms=40)
    assert bias(net, theta, window, exact, many) <= 1e-8


def test_segments_and_refinement_take_the_same_series():
    net, theta, window = setup("diagonal", 0.99)
    exact = window_gradient(net, theta, window, "bptt").grad
    one = FpttConfig(segments=4, inverse="neumann")
    refined = FpttConfig(segments=4, refine=1, inverse="neumann")
    many = FpttConfig(segments=4, inverse="neumann", terms=40)
    assert bias(net, theta, window, exact, one) > 1e-5
    assert bias(net, theta, window, exact, refined) > 1e-5
    assert bias(net, theta, window, exact, many) <= 1e-8


# Configuration, gradcheck, study ------------------------------------------------


def test_a_scenario_chooses_the_inverse():
    scenario = load_scenario(
        "gradcheck-diagonal",
        {"learning.fptt.inverse": "neumann", "learning.fptt.terms": 3},
    )
    assert scenario.learning.fptt.inverse == "neumann"
    assert scenario.learning.fptt.terms == 3


def test_a_bad_inverse_names_the_key(tmp_path):
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "name: demo\n"
        "task: {kind: copy, length: 20}\n"
        "model: {cell: diagonal}\n"
        "learning:\n"
        "  fptt:\n"
        "    inverse: newton\n"
    )
    with pytest.raises(ConfigError, match="expected one of 'exact', 'neumann'") as info:
        load_scenario(path)
    assert (info.value.line, info.value.key) == (6, "learning.fptt.inverse")


def test_terms_without_the_series_name_the_key():
    with pytest.raises(ConfigError, match="terms = 4 with inverse exact") as info:
        load_scenario("gradcheck-diagonal", {"learning.fptt.terms": 4})
    assert info.value.key == "learning.fptt.terms"
    with pytest.raises(ConfigError, match="expected a number >= 1, got 0"):
        load_scenario(
            "gradcheck-diagonal",
            {"learning.fptt.inverse": "neumann", "learning.fptt.terms": 0},
        )


def test_gradcheck_measures_an_approximate_inverse_without_failing_it():
    result = fpttsim.gradcheck(
        "gradcheck-diagonal", {"learning.fptt.inverse": "neumann"}
    )
    check = result.algorithms["fptt"]
    assert not check.exact and check.passed is None
    assert 1e-6 < check.rel_error < 1
    assert result.passed


def test_the_study_sees_the_bias():
    def cosine(overrides):
        result = fpttsim.gradient_quality(
            "gradcheck-diagonal",
            overrides,
            r_min=(0.9,),
            lengths=(50,),
            profiles=("fp64",),
            seeds=1,
            workers=1,
        )
        return result.rows[0]["cosine"]

    exact = cosine({})
    one = cosine({"learning.fptt.inverse": "neumann"})
    eight = cosine({"learning.fptt.inverse": "neumann", "learning.fptt.terms": 8})
    assert one < eight < exact
