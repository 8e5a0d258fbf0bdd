"""The device's step-by-step schedule against the layer-by-layer engine.

Both compute every operation on the same numbers in the same order, so under
a deterministic rounding the gradients, losses and diagnostics agree to the
bit; the layer-by-layer engine is itself checked against BPTT and finite
differences in test_engine.py.
"""

import dataclasses

import numpy as np
import pytest

from fpttsim.cells import CELL_NAMES
from fpttsim.config import load_profile
from fpttsim.config.scenario import FpttConfig
from fpttsim.data import CopyTask, SineTask
from fpttsim.errors import ConfigError, NumericalError
from fpttsim.learn import Optimizer, stream_gradient, stream_online, window_gradient
from fpttsim.network import Network
from fpttsim.numerics import codes
from fpttsim.numerics.arithmetic import Arithmetic

# fp64, a float profile and the fixed-point one, all rounding deterministically
PROFILES = ["fp64-reference", "bf16-systolic", "loihi2"]


def setup(cell, layers, task, profile, seed=0):
    net = Network(cell, layers, 6, 5, 7, task.input_size, task.output_size, task.loss)
    rng = np.random.default_rng(seed)
    theta = net.initialise(rng, 0.95, 0.999)
    arith = Arithmetic.from_profile(load_profile(profile))
    theta = arith.round_blocks(codes.WEIGHTS, theta, net.stored_weights())
    return net, theta, task.sample(rng), arith


def same_bits(a, b):
    """Equal to the bit, NaN for NaN (a NaN's sign and payload mean nothing)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    a, b = np.where(np.isnan(a), 0.0, a), np.where(np.isnan(b), 0.0, b)
    return np.array_equal(a.view(np.int64), b.view(np.int64))


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize(
    ("layers", "algorithm", "passes"),
    [(1, "fptt", None), (3, "fptt", None), (3, "fptt", 2), (2, "spatial", None)],
)
def test_same_gradient_as_the_engine(cell, profile, layers, algorithm, passes):
    task = CopyTask(12, symbols=2, alphabet=3) if layers != 2 else SineTask(9)
    net, theta, window, arith = setup(cell, layers, task, profile)
    expected = window_gradient(net, theta, window, algorithm, passes, arith)
    got = stream_gradient(net, theta, window, algorithm, passes, arith)

    assert same_bits(got.grad, expected.grad)
    assert same_bits(got.loss, expected.loss)
    assert (got.correct, got.counted) == (expected.correct, expected.counted)
    for mine, theirs in zip(got.layers, expected.layers, strict=True):
        assert mine.mode == theirs.mode
        for f in dataclasses.fields(mine)[1:]:
            assert same_bits(getattr(mine, f.name), getattr(theirs, f.name)), f.name


SHOOTING = [
    FpttConfig(segments=3),
    FpttConfig(segments=3, refine=2),
    # with a tolerance, some segments stop probing early and others do not
    FpttConfig(segments=2, refine=3, until=1e-3),
    FpttConfig(refine=1, inverse="neumann", terms=2),
]


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("fptt", SHOOTING, ids=str)
def test_segments_and_refinement_as_the_engine_runs_them(cell, profile, layers, fptt):
    # the device's probes replay the segment with every layer, the engine's
    # replay one layer: the same recursion on the same numbers
    net, theta, window, arith = setup(cell, layers, CopyTask(12, 2, 3), profile)
    expected = window_gradient(net, theta, window, "fptt", None, arith, fptt=fptt)
    got = stream_gradient(net, theta, window, "fptt", None, arith, fptt=fptt)

    assert same_bits(got.grad, expected.grad)
    assert same_bits(got.loss, expected.loss)
    for mine, theirs in zip(got.layers, expected.layers, strict=True):
        for f in dataclasses.fields(mine)[1:]:
            assert same_bits(getattr(mine, f.name), getattr(theirs, f.name)), f.name


def test_gradient_is_exact_in_float64():
    # the schedule's own check: FPTT on the device equals BPTT to rounding
    net, theta, window, arith = setup("lru", 3, CopyTask(20), "fp64-reference")
    fptt = stream_gradient(net, theta, window, "fptt", arithmetic=arith).grad
    bptt = window_gradient(net, theta, window, "bptt", arithmetic=arith).grad
    assert np.linalg.norm(fptt - bptt) <= 1e-9 * np.linalg.norm(bptt)


def test_fewer_passes_leave_the_lower_layers_spatial():
    net, theta, window, arith = setup("rnn", 3, CopyTask(15), "fp64-reference")
    two = stream_gradient(net, theta, window, "fptt", 2, arith)
    spatial = stream_gradient(net, theta, window, "spatial", arithmetic=arith)
    bptt = window_gradient(net, theta, window, "bptt", arithmetic=arith)
    top = net.cell_slices[2]
    bottom = net.cell_slices[0]
    # the top layer has exact temporal credit, the bottom one does not
    assert np.allclose(two.grad[top], bptt.grad[top], rtol=1e-9, atol=1e-12)
    assert not np.allclose(two.grad[bottom], bptt.grad[bottom], rtol=1e-3)
    assert [d.mode for d in two.layers] == ["spatial", "spatial", "fptt"]
    # and the readout sees the same errors whatever the layers below do
    out = net.readout_slice
    assert same_bits(two.grad[out], spatial.grad[out])


def test_singular_jacobian_names_layer_and_pass():
    net, theta, window, arith = setup("rnn", 2, CopyTask(10), "fp64-reference")
    theta[net.groups()["layer2.cell.W"]] = 0.0  # J = diag(1 - h^2) W = 0
    with pytest.raises(NumericalError, match="warm-up pass: .* layer 2 \\(rnn\\)"):
        stream_gradient(net, theta, window, "fptt", arithmetic=arith)


def test_refuses_algorithms_that_store_the_window():
    net, theta, window, arith = setup("lru", 1, CopyTask(10), "fp64-reference")
    with pytest.raises(ConfigError, match="runs fptt and spatial, got 'bptt'"):
        stream_gradient(net, theta, window, "bptt", arithmetic=arith)


# The truly online variant -------------------------------------------------------


def sgd(net, lr):
    return Optimizer("sgd", net.size, lr)


def test_online_with_one_update_per_window_is_fptt_and_then_a_step():
    net, theta, window, arith = setup("lru", 1, CopyTask(12, 2, 3), "fp64-reference")
    exact = stream_gradient(net, theta, window, "fptt", arithmetic=arith)
    expected = theta.copy()
    sgd(net, 0.05).step(expected, exact.grad)

    online = theta.copy()
    got, updates = stream_online(net, online, window, sgd(net, 0.05), 12, arith)
    assert updates == 1
    # every gradient added in the error pass, with unchanged parameters: the
    # same numbers in the same order as the exact schedule's
    assert same_bits(got.grad, exact.grad)
    assert same_bits(got.loss, exact.loss)
    assert same_bits(online, expected)


def test_online_updates_during_the_error_pass_change_what_follows():
    net, theta, window, arith = setup("rnn", 1, CopyTask(12, 2, 3), "fp64-reference")
    once, steps = theta.copy(), theta.copy()
    stream_online(net, once, window, sgd(net, 0.05), 12, arith)
    got, updates = stream_online(net, steps, window, sgd(net, 0.05), 1, arith)
    assert updates == 12
    assert not np.allclose(steps, once)
    # the later steps' gradients were taken at updated parameters: their sum
    # is no longer the window's gradient
    exact = stream_gradient(net, theta, window, "fptt", arithmetic=arith)
    assert not np.allclose(got.grad, exact.grad, rtol=1e-6)
    # but the first update used the initial parameters, so a tiny rate
    # gives back the exact gradient
    tiny = theta.copy()
    near, _ = stream_online(net, tiny, window, sgd(net, 1e-12), 1, arith)
    np.testing.assert_allclose(near.grad, exact.grad, rtol=1e-6, atol=1e-12)


def test_online_refuses_stacked_layers():
    net, theta, window, arith = setup("lru", 2, CopyTask(12, 2, 3), "fp64-reference")
    with pytest.raises(ConfigError, match="online updates run on one recurrent"):
        stream_online(net, theta, window, sgd(net, 0.1), 1, arith)
