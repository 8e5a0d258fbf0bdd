"""The engine in the device's arithmetic: every stored value rounded.

Oracles: the float64 engine (for the exact formats, to the last bit), the
public quantize function (every stored result must be representable), and
the ordering of precisions (more bits, better gradients).
"""

import numba
import numpy as np
import pytest

from fpttsim.data import CopyTask
from fpttsim.gradcheck import compare
from fpttsim.learn import window_gradient
from fpttsim.network import Network
from fpttsim.numerics import codes, quantize
from fpttsim.numerics.arithmetic import Arithmetic, rnd


def uniform(fmt, rounding="nearest-even", **overrides):
    """The same format for every quantity, with some quantities replaced."""
    formats = [(fmt, rounding, None)] * codes.N_QUANTITIES
    for name, value in overrides.items():
        formats[codes.QUANTITY_NAMES.index(name)] = value
    return Arithmetic(formats)


def setup(cell="lru", layers=1, length=30, seed=0):
    task = CopyTask(length, symbols=3, alphabet=4)
    net = Network(cell, layers, 8, 8, 16, task.input_size, task.output_size, task.loss)
    rng = np.random.default_rng(seed)
    theta = net.initialise(rng, 0.9, 0.999)
    return net, theta, task.sample(rng)


class _ExactThroughRows(Arithmetic):
    """Exact formats, but handed to the kernels as rows like any profile."""

    @property
    def ar(self):
        return self.table


@pytest.mark.parametrize("cell", ["lru", "diagonal", "rnn", "gru"])
@pytest.mark.parametrize("algorithm", ["bptt", "fptt", "spatial"])
def test_exact_formats_reproduce_the_float64_engine_bit_for_bit(cell, algorithm):
    # two compiled specialisations (with and without rounding code) must
    # compute the same numbers when nothing is rounded
    net, theta, window = setup(cell, layers=2)
    plain = window_gradient(net, theta, window, algorithm)
    rows = _ExactThroughRows([("fp64", "nearest-even", None)] * codes.N_QUANTITIES)
    through = window_gradient(net, theta, window, algorithm, arithmetic=rows)
    assert np.array_equal(plain.grad, through.grad)
    assert plain.loss == through.loss


@pytest.mark.parametrize("fmt", ["bf16", "fp16", "fixed16.10"])
def test_stored_gradients_are_representable(fmt):
    net, theta, window = setup()
    arith = uniform(fmt)
    theta = arith.round(codes.WEIGHTS, theta)
    grad = window_gradient(net, theta, window, "fptt", arithmetic=arith).grad
    assert np.array_equal(quantize(grad, fmt), grad)
    assert np.any(grad != 0)


@pytest.mark.parametrize("cell", ["lru", "gru"])
def test_fewer_bits_give_worse_fptt_gradients(cell):
    net, theta, window = setup(cell, length=40)
    reference = window_gradient(net, theta, window, "bptt").grad
    cosines = {}
    for fmt in ["fp64", "fp32", "bf16"]:
        arith = uniform(fmt)
        weights = arith.round(codes.WEIGHTS, theta)
        exact = window_gradient(net, weights, window, "bptt").grad
        grad = window_gradient(net, weights, window, "fptt", arithmetic=arith).grad
        cosines[fmt] = compare(grad, exact)[0]
    assert cosines["fp64"] > cosines["fp32"] > cosines["bf16"]
    assert cosines["fp64"] > 1 - 1e-12
    assert np.isfinite(reference).all()


def test_narrow_activations_saturate_and_are_counted():
    net, theta, window = setup()
    # normalised activations reach beyond 2 in magnitude, and fixed4.2 holds
    # [-2, 1.75]: saturation must be counted there, and nowhere else
    arith = uniform("fp64", activation=("fixed4.2", "nearest-even", "saturate"))
    result = window_gradient(net, theta, window, "bptt", arithmetic=arith)
    events = arith.events()
    assert events["activation"]["saturated"] > 0
    assert set(events) == {"activation"}  # nothing else is rounded
    assert np.isfinite(result.grad).all()


def test_stochastic_rounding_is_reproducible_from_the_seed():
    net, theta, window = setup()

    def run(seed):
        formats = [("bf16", "stochastic", None)] * codes.N_QUANTITIES
        arith = Arithmetic(formats, seed=seed)
        return window_gradient(net, theta, window, "fptt", arithmetic=arith).grad

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


# The common-case rounding inside kernels against the public quantize ---------


@numba.njit
def _round_each(ar, quantity, x, out):
    for i in range(x.size):
        out[i] = rnd(ar, quantity, x[i])


@pytest.mark.parametrize(
    "fmt, rounding, overflow",
    [
        ("bf16", "nearest-even", None),
        ("fp16", "nearest-even", None),
        ("fp32", "nearest-even", None),
        ("fp8-e4m3", "nearest-even", None),
        ("fp8-e5m2", "nearest-even", "saturate"),
        ("e5m10-nosub", "nearest-even", None),
        ("bf16", "toward-zero", None),
        ("fixed16.15", "down", "saturate"),
        ("fixed16.8", "nearest-even", "wrap"),
        ("fixed24.20", "toward-zero", "saturate"),
        ("fixed8.4", "up", "saturate"),
    ],
)
def test_kernel_rounding_equals_quantize_bit_for_bit(fmt, rounding, overflow):
    # rnd takes a fast path for normal and in-range values and hands the
    # rest to the full rounding: both must give quantize's bits and events
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 1.0], 100_000) * 2.0 ** rng.uniform(-40, 20, 100_000)
    x[:10] = 0.0
    x[10:20] = -0.0
    x[20:23] = [np.nan, np.inf, -np.inf]
    arith = Arithmetic([(fmt, rounding, overflow)] * codes.N_QUANTITIES)
    out = np.empty_like(x)
    _round_each(arith.ar, codes.STATE, x, out)
    counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
    expected = quantize(x, fmt, rounding=rounding, overflow=overflow, counts=counts)
    assert np.array_equal(out.view(np.int64), expected.view(np.int64))
    assert np.array_equal(arith.counts[codes.STATE], counts)
