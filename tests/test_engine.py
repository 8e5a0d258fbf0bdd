"""The learning engine against independent computations of the same gradient.

The oracle chain: BPTT is checked against central finite differences of the
loss; FPTT, RTRL and the pass schedule are checked against BPTT; the cells'
Jacobians against finite differences of their step.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpttsim.cells import CELL_NAMES, CellSpec, dispatch, jacobian
from fpttsim.data import AddingTask, CopyTask, Window
from fpttsim.errors import ConfigError, NumericalError
from fpttsim.learn import (  # noqa: I001
    Optimizer,
    _kernels,
    check_algorithm,
    engine,
    layer_modes,
    window_gradient,
    window_loss,
)
from fpttsim.network import Network

# Float64 everywhere, for kernels called directly
EXACT = engine.reference_arithmetic().ar

# Near the edge of stability: the slowest modes forget 0.1 % per step.
R_MIN, R_MAX = 0.95, 0.999


def rel_error(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def setup(cell, layers, length, seed=0, task=None, hidden=6):
    task = task or CopyTask(max(length, 7), symbols=3, alphabet=4)
    net = Network(
        cell, layers, hidden, 5, 7, task.input_size, task.output_size, task.loss
    )
    rng = np.random.default_rng(seed)
    theta = net.initialise(rng, R_MIN, R_MAX)
    window = task.sample(rng)
    if length < window.inputs.shape[0]:
        # keep the last `length` steps, where the copy task's targets are
        window = Window(
            window.inputs[-length:], window.targets[-length:], window.mask[-length:]
        )
    return net, theta, window


# FPTT in float64 -------------------------------------------------------------


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("length", [1, 2, 50])
def test_fptt_equals_bptt(cell, layers, length):
    net, theta, window = setup(cell, layers, length)
    bptt = window_gradient(net, theta, window, "bptt")
    fptt = window_gradient(net, theta, window, "fptt")
    # In exact arithmetic they are equal; float64 rounding amplified by the
    # inverse Jacobians over 50 steps stays many orders below 1e-8 here.
    assert rel_error(fptt.grad, bptt.grad) <= 1e-8
    assert fptt.loss == bptt.loss
    assert [d.mode for d in fptt.layers] == ["fptt"] * layers


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_fptt_equals_bptt_on_regression(cell):
    task = AddingTask(50)
    net, theta, window = setup(cell, 2, 50, task=task)
    bptt = window_gradient(net, theta, window, "bptt")
    fptt = window_gradient(net, theta, window, "fptt")
    assert rel_error(fptt.grad, bptt.grad) <= 1e-8


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_residual_vanishes_in_float64(cell):
    net, theta, window = setup(cell, 2, 50)
    fptt = window_gradient(net, theta, window, "fptt")
    for d in fptt.layers:
        assert d.residual_relative < 1e-10
        assert d.delta_peak > 0 and d.jac_prod_norm > 0


def test_initial_error_has_the_right_sign():
    """One step of a scalar leaky integrator: delta_0 = lam g_1 (fptt.md §3).

    h_1 = lam h_0 + gamma b x_1, the warm-up leaves delta'_1 = 0 and P = lam,
    so (D) gives delta_0 = P (g_1 - 0) = lam g_1; the post's erratum would
    give -lam g_1.
    """
    lam, g1 = 0.8, 0.37
    theta = np.array([math.log(-math.log(lam)), 0.0, 1.0])  # nu_log, gamma_log, B
    v = np.ones((1, 1))
    g = np.array([[0.0], [g1]])
    delta0 = np.empty(1)
    jac_prod = np.empty(1)
    status, _ = _kernels.fptt_warmup(
        EXACT, dispatch.DIAGONAL, theta, v, g, delta0, jac_prod, jacobian.EXACT, 1
    )
    assert status == 0
    assert jac_prod[0] == pytest.approx(lam, rel=1e-15)
    assert delta0[0] == pytest.approx(lam * g1, rel=1e-15)


# BPTT against finite differences ------------------------------------------


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("layers", [1, 2])
def test_bptt_equals_finite_differences(cell, layers):
    net, theta, window = setup(cell, layers, 12, seed=3)
    grad = window_gradient(net, theta, window, "bptt").grad
    rng = np.random.default_rng(1)
    analytic, numeric = [], []
    eps = 1e-5  # truncation O(eps^2) ~ 1e-10, rounding ~1e-16 / eps ~ 1e-11
    for _ in range(4):
        u = rng.normal(size=net.size)
        u /= np.linalg.norm(u)
        analytic.append(grad @ u)
        plus = window_loss(net, theta + eps * u, window)
        minus = window_loss(net, theta - eps * u, window)
        numeric.append((plus - minus) / (2 * eps))
    assert rel_error(np.array(numeric), np.array(analytic)) <= 1e-6


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_every_parameter_array_matches_finite_differences(cell):
    """Coordinate-wise differences on a few entries of every named array."""
    net, theta, window = setup(cell, 2, 6, seed=5)
    grad = window_gradient(net, theta, window, "bptt").grad
    eps = 1e-6
    for array in net.arrays:
        for index in (array.offset, array.offset + array.size - 1):
            step = np.zeros(net.size)
            step[index] = eps
            numeric = (
                window_loss(net, theta + step, window)
                - window_loss(net, theta - step, window)
            ) / (2 * eps)
            assert numeric == pytest.approx(grad[index], rel=1e-5, abs=1e-9), array.name


# RTRL and the pass schedule -------------------------------------------------


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("length", [1, 30])
def test_rtrl_equals_bptt(cell, length):
    net, theta, window = setup(cell, 1, length)
    bptt = window_gradient(net, theta, window, "bptt")
    rtrl = window_gradient(net, theta, window, "rtrl")
    assert rel_error(rtrl.grad, bptt.grad) <= 1e-10


def test_rtrl_refuses_stacked_layers_and_large_memory():
    net, _, _ = setup("lru", 2, 5)
    with pytest.raises(ConfigError, match="one recurrent layer") as info:
        check_algorithm(net, "rtrl", 10**9)
    assert info.value.key == "learning.algorithm"
    net, _, _ = setup("gru", 1, 5, hidden=8)
    # S = 8 states times M = 3*8*8 + 3*8*6 + 3*8 = 360 parameters, float64
    with pytest.raises(ConfigError, match="23,040 bytes"):
        check_algorithm(net, "rtrl", 23_039)
    check_algorithm(net, "rtrl", 23_040)


def test_one_pass_is_spatial_backpropagation():
    net, theta, window = setup("lru", 3, 30)
    fptt = window_gradient(net, theta, window, "fptt", passes=1)
    spatial = window_gradient(net, theta, window, "spatial")
    assert np.array_equal(fptt.grad, spatial.grad)
    assert [d.mode for d in fptt.layers] == ["spatial"] * 3


@pytest.mark.parametrize("cell", ["lru", "gru"])
@pytest.mark.parametrize("passes", [2, 3])
def test_fewer_passes_leave_lower_layers_spatial(cell, passes, monkeypatch):
    """Top ``passes - 1`` layers get BPTT's gradient, the rest spatial BP's.

    The reference runs BPTT on the top layers and spatial BP below, so that
    the lower layers see the same errors from above.
    """
    net, theta, window = setup(cell, 3, 40)
    fptt = window_gradient(net, theta, window, "fptt", passes=passes)
    exact_layers = passes - 1
    assert layer_modes(net, "fptt", passes) == (
        ["spatial"] * (3 - exact_layers) + ["fptt"] * exact_layers
    )
    bptt = window_gradient(net, theta, window, "bptt")
    hybrid_modes = ["spatial"] * (3 - exact_layers) + ["bptt"] * exact_layers
    monkeypatch.setattr(engine, "layer_modes", lambda *args: hybrid_modes)
    hybrid = window_gradient(net, theta, window, "fptt")

    assert rel_error(fptt.grad, hybrid.grad) <= 1e-10
    for layer in range(3):
        cell_slice = net.cell_slices[layer]
        if layer >= 3 - exact_layers:
            assert rel_error(fptt.grad[cell_slice], bptt.grad[cell_slice]) <= 1e-10
        else:
            # lower layers differ from BPTT: they got no temporal credit
            assert rel_error(fptt.grad[cell_slice], bptt.grad[cell_slice]) > 1e-3


def test_pass_budget_is_validated():
    net, _, _ = setup("lru", 2, 5)
    with pytest.raises(ConfigError, match="between 1 and layers \\+ 1 = 3"):
        layer_modes(net, "fptt", 4)
    with pytest.raises(ConfigError, match="expected one of"):
        layer_modes(net, "adjoint", None)


# Numerical dead ends --------------------------------------------------------


def test_singular_jacobian_is_a_clear_error():
    net, theta, window = setup("rnn", 2, 10)
    w = net.arrays[0]  # layer1.cell.W
    assert w.name == "layer1.cell.W"
    theta[w.slice] = 0.0  # J = diag(1 - h^2) W = 0
    with pytest.raises(NumericalError, match="layer 1 \\(rnn\\) is singular at step 1"):
        window_gradient(net, theta, window, "fptt")
    # BPTT does not invert J and is unaffected
    assert np.all(np.isfinite(window_gradient(net, theta, window, "bptt").grad))


def test_underflowing_eigenvalue_is_a_clear_error():
    net, theta, window = setup("lru", 1, 10)
    theta[net.arrays[0].offset] = 800.0  # lam = exp(-exp(800)) = 0
    with pytest.raises(NumericalError, match="eigenvalue underflowed"):
        window_gradient(net, theta, window, "fptt")


# Cells: Jacobians and inverse-transpose solves ------------------------------


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_jacobian_matches_finite_differences_of_the_step(cell):
    spec = CellSpec(cell, 5, 3)
    rng = np.random.default_rng(7)
    theta = np.concatenate(
        [np.ravel(p) for p in spec.initialise(rng, 0.5, 0.9, math.pi)]
    )
    s = spec.state_size
    h_prev = 0.5 * rng.normal(size=s)
    v = rng.normal(size=3)
    h = np.empty(s)
    dispatch.step(EXACT, spec.code, theta, h_prev, v, h)
    jac = np.empty(spec.jacobian_size)
    dispatch.jacobian(
        EXACT, spec.code, theta, h_prev, v, h, jac, np.empty(s), np.empty(s)
    )
    dense = _as_dense(spec, jac)

    eps = 1e-6
    numeric = np.empty((s, s))
    for j in range(s):
        plus, minus = np.empty(s), np.empty(s)
        dispatch.step(EXACT, spec.code, theta, h_prev + eps * np.eye(s)[j], v, plus)
        dispatch.step(EXACT, spec.code, theta, h_prev - eps * np.eye(s)[j], v, minus)
        numeric[:, j] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(dense, numeric, rtol=1e-7, atol=1e-9)

    # J^{-T} x solves J^T y = x
    x = rng.normal(size=s)
    y = np.empty(s)
    lu = np.empty(s * s)
    assert jacobian.solve_transpose(EXACT, spec.jacobian_kind, jac, x, y, lu)
    np.testing.assert_allclose(dense.T @ y, x, rtol=1e-12, atol=1e-12)

    # P J^T, applied to x, equals the dense product
    prod = np.empty(spec.jacobian_size)
    jacobian.prod_init(spec.jacobian_kind, prod)
    jacobian.prod_update(
        EXACT, spec.jacobian_kind, prod, jac, np.empty(spec.jacobian_size)
    )
    jacobian.prod_update(
        EXACT, spec.jacobian_kind, prod, jac, np.empty(spec.jacobian_size)
    )
    out = np.empty(s)
    jacobian.prod_apply(EXACT, spec.jacobian_kind, prod, x, out)
    np.testing.assert_allclose(out, dense.T @ dense.T @ x, rtol=1e-12, atol=1e-12)


def _as_dense(spec, jac):
    """The Jacobian as an (S, S) matrix, whatever its storage."""
    s = spec.state_size
    if spec.jacobian_kind == jacobian.DENSE:
        return jac.reshape(s, s)
    if spec.jacobian_kind == jacobian.REAL_DIAGONAL:
        return np.diag(jac)
    n = s // 2
    lr, li = np.diag(jac[:n]), np.diag(jac[n:])
    # lam * (a + ib) = (lr a - li b) + i (li a + lr b)
    return np.block([[lr, -li], [li, lr]])


def test_lru_initialisation_lies_on_the_ring():
    spec = CellSpec("lru", 2000, 3)
    nu_log, theta_log, gamma_log, _ = spec.initialise(
        np.random.default_rng(0), 0.4, 0.9, 0.5
    )
    modulus = np.exp(-np.exp(nu_log))
    assert modulus.min() >= 0.4 and modulus.max() <= 0.9
    # uniform on the ring's area: |lam|^2 is uniform on [r_min^2, r_max^2]
    assert np.mean(modulus**2) == pytest.approx((0.4**2 + 0.9**2) / 2, rel=0.02)
    assert np.exp(theta_log).max() <= 0.5
    np.testing.assert_allclose(np.exp(gamma_log), np.sqrt(1 - modulus**2))


# Network layout and optimiser -------------------------------------------------


def test_layout_covers_the_vector_once():
    net = Network("gru", 3, 4, 6, 8, 5, 3, "ce")
    covered = np.zeros(net.size, dtype=int)
    for array in net.arrays:
        covered[array.slice] += 1
    assert np.all(covered == 1)
    assert len({a.name for a in net.arrays}) == len(net.arrays)
    assert net.recurrent_mask().sum() == sum(s.stop - s.start for s in net.cell_slices)


def test_adam_first_step_moves_by_the_learning_rate():
    # m_hat = g and v_hat = g^2 after one step, so the update is lr g / (|g| + eps)
    opt = Optimizer("adam", 3, lr=0.01)
    theta = np.zeros(3)
    opt.step(theta, np.array([2.0, -0.5, 0.0]))
    np.testing.assert_allclose(theta, [-0.01, 0.01, 0.0], rtol=1e-7)


def test_clipping_bounds_the_update_of_sgd():
    opt = Optimizer("sgd", 2, lr=1.0, clip=1.0)
    theta = np.zeros(2)
    norm = opt.step(theta, np.array([3.0, 4.0]))
    assert norm == 5.0
    np.testing.assert_allclose(theta, [-0.6, -0.8])


# Properties over sizes and seeds --------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    cell=st.sampled_from(CELL_NAMES),
    layers=st.integers(1, 3),
    hidden=st.integers(1, 6),
    length=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_gradients_have_the_network_shape_and_agree(cell, layers, hidden, length, seed):
    net, theta, window = setup(cell, layers, length, seed=seed, hidden=hidden)
    bptt = window_gradient(net, theta, window, "bptt")
    assert bptt.grad.shape == (net.size,) and np.all(np.isfinite(bptt.grad))
    for algorithm in ("fptt", "spatial"):
        result = window_gradient(net, theta, window, algorithm)
        assert result.grad.shape == (net.size,)
        assert result.loss == bptt.loss
    # short windows keep FPTT's amplification small for every cell
    fptt = window_gradient(net, theta, window, "fptt")
    assert rel_error(fptt.grad, bptt.grad) <= 1e-8


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_same_seed_same_gradient(seed):
    a = setup("lru", 2, 10, seed=seed)
    b = setup("lru", 2, 10, seed=seed)
    ga = window_gradient(*a, "fptt").grad
    gb = window_gradient(*b, "fptt").grad
    assert np.array_equal(ga, gb)
