"""The optimiser: AdamW and SGD in the device's formats, schedule, masks."""

import math
import textwrap

import numba
import numpy as np
import pytest

from fpttsim.config import load_profile, load_scenario
from fpttsim.errors import ConfigError
from fpttsim.learn import (
    ADAMW,
    Optimizer,
    clip_gradient,
    lr_at,
    optimizer_step,
    parameter_multipliers,
    round_weights,
)
from fpttsim.network import RECURRENT_ARRAYS, Network
from fpttsim.numerics import codes, quantize, quantize_block
from fpttsim.numerics.arithmetic import Arithmetic

BETAS = (0.9, 0.999)
EPS = 1e-8


def small_net(cell: str = "lru") -> Network:
    return Network(cell, 2, 3, 4, 5, 2, 3, "ce")


def gradients(size: int, steps: int, seed: int = 0, scale: float = 0.3):
    rng = np.random.default_rng(seed)
    return [scale * rng.normal(size=size) for _ in range(steps)]


def stepped(opt: Optimizer, theta0, grads) -> np.ndarray:
    """``theta0`` after one update per gradient (a copy)."""
    theta = np.array(theta0, dtype=np.float64)
    for g in grads:
        opt.step(theta, g)
    return theta


def arithmetic(profile: str, seed: int = 0) -> Arithmetic:
    return Arithmetic.from_profile(load_profile(profile), seed)


def formats(**overrides) -> list[tuple]:
    """One (format, rounding, overflow) per quantity: fp64 but the overrides."""
    out = [("fp64", "nearest-even", None)] * codes.N_QUANTITIES
    for name, fmt in overrides.items():
        out[codes.QUANTITY_NAMES.index(name)] = fmt
    return out


# Independent float64 references ---------------------------------------------


def numpy_adamw(theta, grads, lr, wd, clip, lr_scale, decay_mask):
    """AdamW as a framework writes it: decay by scaling, then the Adam step."""
    theta = theta.copy()
    m = np.zeros_like(theta)
    v = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        norm = np.sqrt(np.sum(g**2))
        if norm > clip:
            g = g * clip / norm
        rate = lr * lr_scale
        theta *= 1.0 - rate * wd * decay_mask
        m = BETAS[0] * m + (1 - BETAS[0]) * g
        v = BETAS[1] * v + (1 - BETAS[1]) * g**2
        m_hat = m / (1 - BETAS[0] ** t)
        v_hat = v / (1 - BETAS[1] ** t)
        theta -= rate * m_hat / (np.sqrt(v_hat) + EPS)
    return theta


def numpy_sgd(theta, grads, lr, wd, clip, momentum, lr_scale, decay_mask):
    theta = theta.copy()
    buf = np.zeros_like(theta)
    for g in grads:
        norm = np.sqrt(np.sum(g**2))
        if norm > clip:
            g = g * clip / norm
        buf = momentum * buf + g
        theta -= lr * lr_scale * (buf + wd * decay_mask * theta)
    return theta


# float64 against the references: the same operations in another order (the
# norm's sum, decay by scaling), so they agree to a few ulps per step; 1e-12
# relative over 6 steps leaves three orders of magnitude of margin.


def test_float64_adamw_matches_numpy_with_masks_decay_and_clipping():
    net = small_net()
    rng = np.random.default_rng(1)
    theta0 = rng.normal(size=net.size)
    grads = gradients(net.size, 6, seed=2, scale=1.0)  # norms ~ 9: clipped
    lr_scale, decay_mask = parameter_multipliers(net, 0.25)
    opt = Optimizer(
        "adam",
        net.size,
        0.01,
        weight_decay=0.1,
        clip=2.0,
        lr_scale=lr_scale,
        decay_mask=decay_mask,
        weight_blocks=net.stored_weights(),
    )
    theta = stepped(opt, theta0, grads)
    expected = numpy_adamw(theta0, grads, 0.01, 0.1, 2.0, lr_scale, decay_mask)
    np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=0)
    assert not np.allclose(theta, theta0)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_float64_sgd_matches_numpy_with_momentum(momentum):
    net = small_net("gru")
    theta0 = np.random.default_rng(3).normal(size=net.size)
    grads = gradients(net.size, 6, seed=4, scale=1.0)
    lr_scale, decay_mask = parameter_multipliers(net, 0.5)
    opt = Optimizer(
        "sgd",
        net.size,
        0.05,
        weight_decay=0.01,
        clip=3.0,
        momentum=momentum,
        lr_scale=lr_scale,
        decay_mask=decay_mask,
    )
    theta = stepped(opt, theta0, grads)
    expected = numpy_sgd(theta0, grads, 0.05, 0.01, 3.0, momentum, lr_scale, decay_mask)
    np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=0)


def test_momentum_changes_the_path():
    # without momentum the second update would be -lr g2 alone
    opt = Optimizer("sgd", 1, 1.0, momentum=0.5)
    theta = np.zeros(1)
    opt.step(theta, np.array([1.0]))
    opt.step(theta, np.array([1.0]))
    assert theta[0] == -(1.0 + 1.5)


# Clipping ----------------------------------------------------------------------


def test_clipping_engages_exactly_above_the_bound():
    # |(3, 4)| = 5 exactly: at the bound the gradient stays, just below it scales
    grad = np.array([3.0, 4.0])
    assert clip_gradient(None, grad, 5.0) == 5.0
    assert grad.tolist() == [3.0, 4.0]
    below = math.nextafter(5.0, 0.0)
    assert clip_gradient(None, grad, below) == 5.0
    np.testing.assert_allclose(grad, [3.0 * below / 5.0, 4.0 * below / 5.0])
    assert np.hypot(*grad) <= 5.0


def test_clipped_gradient_and_norm_are_in_the_gradients_format():
    ar = Arithmetic(formats(gradient=("bf16", "nearest-even", None)))
    grad = quantize(np.linspace(-3.0, 5.0, 17), "bf16")
    exact = np.linalg.norm(grad)
    norm = clip_gradient(ar.table, grad, 1.0)
    # bf16 keeps 8 significant bits: the norm within 2^-8 of the exact one,
    # the clipped gradient's within two such roundings of the bound
    assert quantize(norm, "bf16") == norm
    assert norm == pytest.approx(exact, rel=2**-8)
    np.testing.assert_array_equal(quantize(grad, "bf16"), grad)
    assert np.linalg.norm(grad) == pytest.approx(1.0, rel=2**-7)


def test_the_caller_gradient_is_left_alone():
    opt = Optimizer("sgd", 2, lr=1.0, clip=1.0)
    grad = np.array([3.0, 4.0])
    opt.step(np.zeros(2), grad)
    assert grad.tolist() == [3.0, 4.0]


# Recurrent parameters ------------------------------------------------------------


@pytest.mark.parametrize("cell", sorted(RECURRENT_ARRAYS))
def test_recurrent_parameters_are_the_named_cell_arrays(cell):
    net = small_net(cell)
    mask = net.recurrent_parameters()
    expected = np.zeros(net.size, dtype=bool)
    for array in net.arrays:
        layer_cell, _, name = array.name.rpartition(".")
        if layer_cell.endswith(".cell") and name in RECURRENT_ARRAYS[cell]:
            expected[array.slice] = True
    assert np.array_equal(mask, expected)
    assert mask.any() and not mask.all()


def test_recurrent_parameters_get_the_factor_and_no_decay():
    # one SGD step: delta = -lr s (g + wd d theta), with (s, d) = (0.1, 0) on
    # recurrent parameters and (1, 1) elsewhere
    net = small_net()
    lr_scale, decay_mask = parameter_multipliers(net, 0.1)
    recurrent = net.recurrent_parameters()
    opt = Optimizer(
        "sgd",
        net.size,
        0.5,
        weight_decay=0.2,
        lr_scale=lr_scale,
        decay_mask=decay_mask,
    )
    theta0 = np.random.default_rng(5).normal(size=net.size)
    grad = np.random.default_rng(6).normal(size=net.size)
    theta = theta0.copy()
    opt.step(theta, grad)
    delta = theta - theta0
    np.testing.assert_allclose(delta[recurrent], -0.05 * grad[recurrent], rtol=1e-12)
    other = ~recurrent
    np.testing.assert_allclose(
        delta[other], -0.5 * (grad[other] + 0.2 * theta0[other]), rtol=1e-9
    )


# Schedule ------------------------------------------------------------------------


def test_warmup_ramps_linearly_from_zero():
    # update k + 1 of a warm-up over W updates runs at lr (k + 1) / W
    for step in range(1, 5):
        assert lr_at(step, 0.2, 1, 4, 10, 0.0) == pytest.approx(0.2 * step / 4)
    assert lr_at(4, 0.2, 0, 4, 10, 0.0) == 0.2
    assert lr_at(7, 0.2, 0, 4, 10, 0.0) == 0.2  # constant after the ramp


def test_cosine_against_its_closed_form():
    lr, lr_min, warmup, horizon = 0.3, 0.01, 5, 45
    for step in range(warmup + 1, horizon + 5):
        p = min((step - 1 - warmup) / (horizon - warmup), 1.0)
        expected = lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * p))
        assert lr_at(step, lr, 1, warmup, horizon, lr_min) == pytest.approx(expected)
    assert lr_at(warmup + 1, lr, 1, warmup, horizon, lr_min) == lr  # p = 0
    assert lr_at(warmup + 21, lr, 1, warmup, horizon, lr_min) == pytest.approx(
        (lr + lr_min) / 2
    )
    assert lr_at(horizon + 1, lr, 1, warmup, horizon, lr_min) == pytest.approx(lr_min)
    assert lr_at(horizon, lr, 1, warmup, horizon, lr_min) > lr_min  # last update
    assert lr_at(horizon + 9, lr, 1, warmup, horizon, lr_min) == pytest.approx(lr_min)


def test_optimizer_steps_along_its_schedule():
    # SGD on g = 1 moves theta by exactly the rate of each update
    opt = Optimizer("sgd", 1, 1.0, schedule="cosine", warmup=2, horizon=6)
    theta = np.zeros(1)
    moves = []
    for _ in range(8):
        before = theta[0]
        opt.step(theta, np.ones(1))
        moves.append(before - theta[0])
    expected = [lr_at(k, 1.0, 1, 2, 6, 0.0) for k in range(1, 9)]
    # the moves are differences of values near 5: exact to a few ulps of 5
    np.testing.assert_allclose(moves, expected, rtol=1e-14)
    assert moves[:3] == [0.5, 1.0, 1.0]


# Reduced precision -----------------------------------------------------------------


def weights_representable(arith: Arithmetic, theta, blocks) -> bool:
    fmt = arith.formats[codes.WEIGHTS]
    for block in blocks:
        values = theta[block]
        if fmt.shared_exponent:
            stored = quantize_block(values, fmt)[0]
        else:
            stored = quantize(values, fmt)
        if not np.array_equal(stored, values):
            return False
    return True


@pytest.mark.parametrize("profile", ["bf16-systolic", "loihi2"])
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_stored_moments_and_weights_are_in_their_formats(profile, kind):
    net = small_net()
    arith = arithmetic(profile)
    blocks = net.stored_weights()
    lr_scale, decay_mask = parameter_multipliers(net, 0.5)
    opt = Optimizer(
        kind,
        net.size,
        0.01,
        weight_decay=0.01,
        clip=1.0,
        arithmetic=arith,
        momentum=0.9 if kind == "sgd" else 0.0,
        lr_scale=lr_scale,
        decay_mask=decay_mask,
        weight_blocks=blocks,
    )
    theta = np.random.default_rng(7).normal(size=net.size) * 0.5
    theta = arith.round_blocks(codes.WEIGHTS, theta, blocks)
    start = theta.copy()
    for g in gradients(net.size, 4, seed=8):
        g = arith.round(codes.GRADIENT, g)
        opt.step(theta, g)
    state = opt.state_dict()
    optimizer_format = arith.formats[codes.OPTIMIZER]
    for key in ("m", "v"):
        assert np.array_equal(quantize(state[key], optimizer_format), state[key])
    assert state["m"].size == net.size and np.any(state["m"] != 0)
    assert weights_representable(arith, theta, blocks)
    assert not np.array_equal(theta, start)


def previous_python_step(arith, opt_state, theta, grad, lr, wd, blocks):
    """The float64 update of the previous Python optimiser (no clipping), with
    the moments and then the weights rounded as it did.
    """
    opt_state["t"] += 1
    t = opt_state["t"]
    b1, b2 = BETAS
    theta = theta - lr * wd * theta
    m = b1 * opt_state["m"] + (1.0 - b1) * grad
    v = b2 * opt_state["v"] + (1.0 - b2) * grad * grad
    opt_state["m"] = m = arith.round(codes.OPTIMIZER, m)
    opt_state["v"] = v = arith.round(codes.OPTIMIZER, v)
    m_hat = m / (1.0 - b1**t)
    v_hat = v / (1.0 - b2**t)
    theta = theta - lr * m_hat / (np.sqrt(v_hat) + EPS)
    return arith.round_blocks(codes.WEIGHTS, theta, blocks)


@pytest.mark.parametrize(
    "weights, optimizer_state",
    [
        (("bf16", "nearest-even", None), ("bf16", "nearest-even", None)),
        (("fixed8.7-shared", "toward-zero", None), ("fixed24.16", "down", None)),
    ],
)
def test_kernel_gives_the_previous_paths_bits_where_the_models_agree(
    weights, optimizer_state
):
    # products and sums exact, as the previous path computed them: only the
    # stored moments and weights are rounded, so the bits must agree
    net = small_net()
    blocks = net.stored_weights()
    spec = formats(weights=weights, optimizer_state=optimizer_state)
    ours, previous = Arithmetic(spec), Arithmetic(spec)
    raw = np.random.default_rng(9).normal(size=net.size)
    theta0 = ours.round_blocks(codes.WEIGHTS, raw, blocks)
    previous.round_blocks(codes.WEIGHTS, raw, blocks)  # the same counts
    opt = Optimizer("adam", net.size, 0.01, 0.02, arithmetic=ours, weight_blocks=blocks)
    theta = theta0.copy()
    expected = theta0.copy()
    state = {"t": 0, "m": np.zeros(net.size), "v": np.zeros(net.size)}
    for g in gradients(net.size, 5, seed=10):
        opt.step(theta, g)
        expected = previous_python_step(
            previous, state, expected, g, 0.01, 0.02, blocks
        )
    assert np.array_equal(theta.view(np.int64), expected.view(np.int64))
    assert np.array_equal(opt.m.view(np.int64), state["m"].view(np.int64))
    # and the same events, shared blocks' included
    assert np.array_equal(ours.counts, previous.counts)


@pytest.mark.parametrize("profile", ["bf16-systolic", "loihi2", "fp8-h100"])
def test_round_weights_gives_round_blocks_bits_and_events(profile):
    net = small_net()
    blocks = net.stored_weights()
    rng = np.random.default_rng(11)
    values = rng.normal(size=net.size) * np.resize([1e-6, 3.0, 500.0], net.size)
    values[blocks[0].start] = np.inf  # a saturation or an infinity kept
    values[blocks[1].start : blocks[1].stop] = 0.0  # an all-zero shared block
    values[blocks[2].start] = 1e-45  # below every format's grid: flushed
    ours, python = arithmetic(profile), arithmetic(profile)
    theta = values.copy()
    pairs = np.array([(b.start, b.stop) for b in blocks], dtype=np.int64)
    shared = ours.formats[codes.WEIGHTS].shared_exponent
    round_weights(ours.table, theta, pairs, shared)
    expected = python.round_blocks(codes.WEIGHTS, values, blocks)
    assert np.array_equal(theta.view(np.int64), expected.view(np.int64))
    events = python.counts[codes.WEIGHTS]
    if shared:  # round_blocks does not count a shared block's events
        events = np.zeros(codes.N_EVENTS, dtype=np.int64)
        fmt = ours.formats[codes.WEIGHTS]
        for block in blocks:
            quantize_block(values[block], fmt, "toward-zero", counts=events)
    assert np.array_equal(ours.counts[codes.WEIGHTS], events)
    assert events.sum() > 0 and ours.counts.sum() == events.sum()


def test_stochastic_weight_rounding_is_reproducible_from_the_seed():
    net = small_net()
    spec = formats(weights=("fixed8.7-shared", "stochastic", None))

    def run(seed):
        arith = Arithmetic(spec, seed)
        opt = Optimizer(
            "adam",
            net.size,
            0.01,
            arithmetic=arith,
            weight_blocks=net.stored_weights(),
        )
        theta = np.random.default_rng(12).normal(size=net.size)
        for g in gradients(net.size, 3, seed=13):
            opt.step(theta, g)
        return theta

    first, again, other = run(0), run(0), run(1)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert weights_representable(Arithmetic(spec), first, net.stored_weights())


# Compiled callers and checkpoints ----------------------------------------------------


@numba.njit
def device_loop(ar, theta, grads, m, v, lr_scale, decay_mask, blocks, shared):
    """A stand-in for a compiled event loop: schedule and update per window."""
    norms = np.empty(grads.shape[0])
    for k in range(grads.shape[0]):
        step = k + 1
        lr = lr_at(step, 0.01, 1, 1, grads.shape[0], 0.001)
        norms[k] = optimizer_step(
            ar,
            ADAMW,
            theta,
            grads[k].copy(),
            m,
            v,
            lr_scale,
            decay_mask,
            blocks,
            shared,
            step,
            lr,
            BETAS[0],
            BETAS[1],
            EPS,
            0.0,
            0.01,
            1.0,
        )
    return norms


@pytest.mark.parametrize("profile", [None, "bf16-systolic"])
def test_the_update_runs_inside_a_compiled_loop(profile):
    net = small_net()
    arith = arithmetic(profile) if profile else None
    ar = arith.table if arith else None
    blocks = net.stored_weights()
    lr_scale, decay_mask = parameter_multipliers(net, 0.5)
    grads = np.array(gradients(net.size, 4, seed=14, scale=1.0))
    theta0 = np.random.default_rng(15).normal(size=net.size)

    opt = Optimizer(  # the Python front end with the loop's settings
        "adam",
        net.size,
        0.01,
        0.01,
        1.0,
        arithmetic=arithmetic(profile) if profile else None,
        schedule="cosine",
        warmup=1,
        lr_min=0.001,
        horizon=4,
        lr_scale=lr_scale,
        decay_mask=decay_mask,
        weight_blocks=blocks,
    )
    expected = theta0.copy()
    norms = [opt.step(expected, g) for g in grads]

    theta = theta0.copy()
    pairs = opt.blocks
    m, v = np.zeros(net.size), np.zeros(net.size)
    got = device_loop(ar, theta, grads, m, v, lr_scale, decay_mask, pairs, False)
    assert np.array_equal(theta, expected)
    assert np.array_equal(m, opt.m) and np.array_equal(v, opt.v)
    assert got.tolist() == norms
    assert max(norms) > 1.0  # clipping took part


@pytest.mark.parametrize("kind, momentum", [("adam", 0.0), ("sgd", 0.9)])
def test_state_dict_round_trip_gives_the_same_next_step(kind, momentum):
    net = small_net()
    settings = dict(
        weight_decay=0.01,
        clip=1.0,
        momentum=momentum,
        schedule="cosine",
        horizon=10,
        weight_blocks=net.stored_weights(),
    )
    first = Optimizer(kind, net.size, 0.01, arithmetic=arithmetic("loihi2"), **settings)
    theta = np.random.default_rng(16).normal(size=net.size) * 0.3
    grads = gradients(net.size, 4, seed=17)
    for g in grads[:3]:
        first.step(theta, g)
    saved = first.state_dict()
    assert isinstance(saved["steps"], int) and saved["steps"] == 3
    assert all(isinstance(saved[k], np.ndarray) for k in ("m", "v"))

    second = Optimizer(
        kind, net.size, 0.01, arithmetic=arithmetic("loihi2"), **settings
    )
    second.load_state_dict(saved)
    resumed = theta.copy()
    first.step(theta, grads[3])
    second.step(resumed, grads[3])
    assert np.array_equal(theta.view(np.int64), resumed.view(np.int64))
    assert np.array_equal(first.m, second.m) and np.array_equal(first.v, second.v)


def test_load_state_dict_rejects_another_shape():
    opt = Optimizer("adam", 3, 0.01)
    with pytest.raises(ValueError, match=r"state 'm' has shape \(2,\).*has \(3,\)"):
        opt.load_state_dict({"steps": 1, "m": np.zeros(2), "v": np.zeros(3)})


def test_optimizer_arguments_are_checked():
    with pytest.raises(ValueError, match="needs horizon"):
        Optimizer("adam", 2, 0.1, schedule="cosine")
    with pytest.raises(ValueError, match="momentum is SGD's, got momentum=0.9"):
        Optimizer("adam", 2, 0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"lr_scale must hold .* shape \(2,\)"):
        Optimizer("adam", 2, 0.1, lr_scale=np.ones(3))


# Scenario keys ---------------------------------------------------------------------

SCENARIO = """\
name: demo
task: {kind: copy, length: 50}
model: {cell: lru, hidden: 8}
learning:
  optimizer: sgd
  lr: 0.01
"""


def load(tmp_path, extra: str):
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO + textwrap.indent(extra, "  "), encoding="utf-8")
    return load_scenario(path)


def test_new_learning_keys_default_to_the_previous_behaviour(tmp_path):
    learning = load(tmp_path, "").learning
    assert (learning.schedule, learning.warmup, learning.lr_min) == ("constant", 0, 0)
    assert (learning.momentum, learning.recurrent_lr_factor) == (0.0, 1.0)
    learning = load(
        tmp_path,
        "momentum: 0.9\nschedule: cosine\nwarmup: 10\nlr_min: 0.001\n"
        "recurrent_lr_factor: 0.5\n",
    ).learning
    assert (learning.momentum, learning.warmup, learning.lr_min) == (0.9, 10, 0.001)


@pytest.mark.parametrize(
    "extra, key, message",
    [
        ("momentum: 1.0\n", "momentum", r"expected a number < 1, got 1\.0"),
        ("warmup: 2.5\n", "warmup", "expected an integer"),
        ("warmup: -1\n", "warmup", "expected a number >= 0, got -1"),
        ("schedule: linear\n", "schedule", "one of 'constant', 'cosine', got 'l"),
        ("recurrent_lr_factor: -0.5\n", "recurrent_lr_factor", ">= 0"),
        ("lr_min: 0.001\n", "lr_min", "schedule's floor, got lr_min = 0.001"),
        ("schedule: cosine\nlr_min: 0.5\n", "lr_min", "expected lr_min <= lr"),
    ],
)
def test_bad_learning_keys_name_the_key(tmp_path, extra, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        load(tmp_path, extra)
    assert info.value.key == f"learning.{key}"


def test_momentum_with_adam_is_refused(tmp_path):
    text = "momentum: 0.5\n"
    path = tmp_path / "scenario.yaml"
    path.write_text(
        SCENARIO.replace("optimizer: sgd", "optimizer: adam") + "  " + text,
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="momentum is for optimizer sgd") as info:
        load_scenario(path)
    assert (info.value.key, info.value.line) == ("learning.momentum", 7)


def test_from_config_takes_the_recipe_from_the_scenario(tmp_path):
    learning = load(
        tmp_path,
        "momentum: 0.5\nweight_decay: 0.01\nschedule: cosine\nwarmup: 3\n"
        "recurrent_lr_factor: 0.25\n",
    ).learning
    net = small_net()
    opt = Optimizer.from_config(learning, net, 50, arithmetic("bf16-systolic"))
    recurrent = net.recurrent_parameters()
    assert np.all(opt.lr_scale[recurrent] == 0.25) and np.all(
        opt.lr_scale[~recurrent] == 1
    )
    assert np.all(opt.decay_mask == ~recurrent)
    assert (opt.kind, opt.momentum, opt.horizon, opt.warmup) == ("sgd", 0.5, 50, 3)
    assert opt.current_lr(2) == pytest.approx(0.01 * 2 / 3)
    assert opt.blocks.tolist() == [[s.start, s.stop] for s in net.stored_weights()]
