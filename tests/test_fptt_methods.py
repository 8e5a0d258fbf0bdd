"""Segmented shooting and refinement passes (``learning.fptt``).

In float64 both must give BPTT's gradient; in reduced precision segments
must push back the length at which FPTT's gradient dies, as the precision
budget predicts; a refinement pass must shrink the end residual it is
given.
"""

import numpy as np
import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.config import load_profile, load_scenario
from fpttsim.config.scenario import FpttConfig
from fpttsim.errors import ConfigError
from fpttsim.experiment import prepare
from fpttsim.learn.engine import segment_bounds, window_gradient
from fpttsim.numerics.arithmetic import Arithmetic
from fpttsim.numerics.codes import WEIGHTS
from fpttsim.precision import _device_window, cosine, windows_at

METHODS = [
    FpttConfig(segments=2),
    FpttConfig(segments=5, refine=2),
    FpttConfig(segments=1, refine=1),
    FpttConfig(segments=64),  # more segments than steps: one step each
]


@pytest.mark.parametrize(
    "name",
    [
        "gradcheck-lru",
        "gradcheck-diagonal",
        "gradcheck-rnn",
        "gradcheck-gru",
        "gradcheck-deep-lru",
    ],
)
def test_every_method_gives_bptts_gradient_in_float64(name):
    scenario = load_scenario(name)
    experiment = prepare(scenario)
    net, theta = experiment.net, experiment.theta
    window = next(experiment.task.stream(scenario.seed))
    exact = window_gradient(net, theta, window, "bptt").grad
    for method in METHODS:
        grad = window_gradient(net, theta, window, "fptt", fptt=method).grad
        rel = np.linalg.norm(grad - exact) / np.linalg.norm(exact)
        assert rel <= 1e-8, (method, rel)


def test_segment_bounds_cut_evenly():
    assert segment_bounds(10, 3).tolist() == [0, 3, 7, 10]
    assert segment_bounds(3, 8).tolist() == [0, 1, 2, 3]
    assert segment_bounds(5, 1).tolist() == [0, 5]


def long_window(profile_name, length=1000):
    scenario = load_scenario("quickstart", {"model.r_min": 0.9, "task.length": length})
    experiment = prepare(scenario)
    net = experiment.net
    arith = Arithmetic.from_profile(load_profile(profile_name), 0)
    theta = arith.round_blocks(WEIGHTS, experiment.theta, net.stored_weights())
    window = _device_window(arith, windows_at(scenario, length, 1)[0])
    exact = window_gradient(net, theta, window, "bptt").grad
    return net, theta, window, arith, exact


def test_one_segment_refined_zero_times_is_fptt_to_the_bit():
    net, theta, window, arith, _ = long_window("cortex-m4f", 200)
    plain = window_gradient(net, theta, window, "fptt", arithmetic=arith)
    # a tolerance no residual exceeds stops after the first pass
    once = FpttConfig(segments=1, refine=3, until=1e300)
    same = window_gradient(net, theta, window, "fptt", arithmetic=arith, fptt=once)
    np.testing.assert_array_equal(same.grad, plain.grad)
    # one probe, then the real pass from the start error it kept
    assert same.layers[0].error_passes == 2


def test_segments_rescue_a_window_plain_fptt_loses_in_fp32():
    net, theta, window, arith, exact = long_window("cortex-m4f")
    plain = window_gradient(net, theta, window, "fptt", arithmetic=arith).grad
    segmented = window_gradient(
        net, theta, window, "fptt", arithmetic=arith, fptt=FpttConfig(segments=8)
    )
    assert cosine(plain, exact) < 0.99
    assert cosine(segmented.grad, exact) > 0.9999
    assert segmented.layers[0].error_passes == 1


def test_refinement_shrinks_the_residual_and_counts_its_passes():
    net, theta, window, arith, exact = long_window("fp16-edge-npu", 120)
    once = window_gradient(
        net, theta, window, "fptt", arithmetic=arith, fptt=FpttConfig(segments=2)
    )
    refined = window_gradient(
        net,
        theta,
        window,
        "fptt",
        arithmetic=arith,
        fptt=FpttConfig(segments=2, refine=3),
    )
    assert refined.layers[0].residual_relative < once.layers[0].residual_relative
    # a probe per start error tried (at most four: the segment's own and
    # three Newton steps), then the real pass
    assert 2 < refined.layers[0].error_passes <= 5


def test_refinement_undoes_a_newton_step_that_does_harm():
    # bf16 over 1000 steps: P r is mostly rounding. The first Newton step
    # lowers the end residual a little, the second raises it and is undone,
    # so two refinement passes end where one did, a probe later
    net, theta, window, arith, _ = long_window("bf16-systolic")

    def refined(**fptt):
        found = window_gradient(
            net, theta, window, "fptt", arithmetic=arith, fptt=FpttConfig(**fptt)
        )
        return found.grad, found.layers[0]

    kept_grad, kept = refined(refine=1, until=1e300)  # probes, keeps its start
    one_grad, one = refined(refine=1)
    two_grad, two = refined(refine=2)
    assert one.residual_relative < kept.residual_relative
    np.testing.assert_array_equal(two_grad, one_grad)
    assert two.residual_relative == one.residual_relative
    assert (kept.error_passes, one.error_passes, two.error_passes) == (2, 3, 4)


def test_the_budget_predicts_what_segments_buy_and_what_they_cost():
    overrides = {"profile": "cortex-m4f", "task.length": 1000, "model.r_min": 0.9}
    plain = fpttsim.budget("quickstart", overrides, simulate=False)
    eight = fpttsim.budget(
        "quickstart", {**overrides, "learning.fptt.segments": 8}, simulate=False
    )
    assert eight.prediction.max_length >= 4 * plain.prediction.max_length
    extra = (
        eight.algorithms["fptt"].working_bytes - plain.algorithms["fptt"].working_bytes
    )
    spec = prepare(load_scenario("quickstart")).net.cells[0]
    # 7 more products and boundary errors, in fp32
    assert extra == 7 * (spec.jacobian_size + spec.state_size) * 4
    longer = fpttsim.budget(
        "quickstart",
        {**overrides, "learning.fptt.segments": 8, "task.length": 5000},
        simulate=False,
    )
    assert (
        longer.algorithms["fptt"].working_bytes
        == eight.algorithms["fptt"].working_bytes
    )


def test_the_device_runs_segments_and_refinement_in_its_arena(tmp_path):
    overrides = {
        "learning.fptt.segments": 3,
        "learning.fptt.refine": 1,
        "training.steps": 4,
        "training.log_every": 2,
    }
    scenario = load_scenario("quickstart", overrides)
    result = fpttsim.run(scenario, out=tmp_path)
    rows = result.training.rows
    # per segment: a probe, a probe after the Newton step, the real pass
    assert all(row["error_passes"] == 3 for row in rows)
    assert all(np.isfinite(row["residual"]) for row in rows)
    spec = prepare(scenario).net.cells[0]
    buffers = result.training.memory["buffers"]
    assert buffers["learner.boundary_errors"] == 2 * spec.state_size * 8
    assert buffers["refine.state"] == spec.state_size * 8
    # g_{t-1}, the best start error, the residual and the Newton step
    assert buffers["refine.errors"] == 4 * spec.state_size * 8
    budget = fpttsim.budget(scenario, simulate=False)
    assert (
        budget.algorithms["fptt"].total_bytes == result.training.memory["total_bytes"]
    )


def test_online_updates_refuse_refinement(tmp_path, capsys):
    scenario = load_scenario(
        "quickstart", {"learning.online": True, "learning.fptt.refine": 1}
    )
    with pytest.raises(ConfigError, match="learning.fptt.refine"):
        fpttsim.run(scenario, out=tmp_path)
    code = main(
        [
            "run",
            "quickstart",
            "--set",
            "learning.online=true",
            "--set",
            "learning.fptt.refine=1",
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    assert code == 2 and "learning.fptt.refine" in capsys.readouterr().err
