"""The device: memory plan and arena, cost model, timeline, and the run loop.

The timeline is checked against schedules worked out by hand in comments;
the memory plan against counts of values times bits; the loop against the
window-level engine (its gradients), against itself (resume), and against the
budget (a scenario that does not fit stops before the first sample).
"""

import json

import numpy as np
import pytest

import fpttsim
from fpttsim.config import load_profile, load_scenario
from fpttsim.config.scenario import FpttConfig
from fpttsim.device import Arena, BudgetError, Buffer, CostModel, Device, plan
from fpttsim.device.memory import COMPONENTS, breakdown
from fpttsim.device.timeline import Clock
from fpttsim.learn import layer_modes
from fpttsim.network import Network
from fpttsim.numerics import codes
from fpttsim.numerics.arithmetic import Arithmetic


def net_of(cell="lru", layers=1, hidden=8, inputs=3, width=8, outputs=4, loss="ce"):
    return Network(cell, layers, hidden, width, 2 * width, inputs, outputs, loss)


# Memory plan -----------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lru", "rnn"])
def test_fptt_memory_does_not_grow_with_length_except_the_replay_buffer(cell):
    net = net_of(cell, layers=2)
    profile = load_profile("cortex-m4f")
    short = breakdown(plan(net, "fptt", 100, profile))
    long = breakdown(plan(net, "fptt", 100_000, profile))
    for component in COMPONENTS:
        if component == "replay":
            # two windows of 3 fp32 inputs and a byte-and-a-bit target per step
            assert long[component] == pytest.approx(1000 * short[component], 1e-3)
        else:
            assert long[component] == short[component], component


def test_bptt_memory_grows_linearly_with_length():
    net = net_of("lru", layers=2)
    profile = load_profile("cortex-m4f")
    a = breakdown(plan(net, "bptt", 1000, profile))["activations"]
    b = breakdown(plan(net, "bptt", 2000, profile))["activations"]
    c = breakdown(plan(net, "bptt", 3000, profile))["activations"]
    assert b - a == c - b > 0
    # the tape: a state of S = 2N per layer and step, and the upper layer's input
    per_step = 4 * (2 * 2 * 8 + 8)  # fp32 bytes
    assert b - a == 1000 * per_step


def test_bytes_are_values_times_the_format_bits():
    net = net_of("rnn")
    fp32 = {b.name: b for b in plan(net, "fptt", 10, load_profile("cortex-m4f"))}
    assert fp32["weights"].bytes == 4 * net.size
    assert fp32["optimizer_state"].bytes == 2 * 4 * net.size  # Adam's two moments
    assert fp32["learner.jacobian_product"].bytes == 4 * 8 * 8  # dense P, N x N
    loihi = {b.name: b for b in plan(net, "fptt", 10, load_profile("loihi2"))}
    # 8-bit mantissas and one shared exponent byte per parameter array
    assert loihi["weights"].bytes == net.size + len(net.arrays)
    assert loihi["learner.jacobian_product"].bytes == 3 * 8 * 8  # 24 bits


def test_diagonal_cells_hold_a_vector_jacobian_product():
    profile = load_profile("fp64-reference")
    lru = {b.name: b for b in plan(net_of("lru", hidden=16), "fptt", 10, profile)}
    rnn = {b.name: b for b in plan(net_of("rnn", hidden=16), "fptt", 10, profile)}
    assert lru["learner.jacobian_product"].count == 2 * 16  # [Re, Im] per unit
    assert rnn["learner.jacobian_product"].count == 16 * 16


def test_spatial_and_rtrl_need_no_replay_buffer():
    profile = load_profile("fp64-reference")
    net = net_of("lru")
    for algorithm in ("spatial", "rtrl"):
        assert breakdown(plan(net, algorithm, 50, profile))["replay"] == 0


# Arena ---------------------------------------------------------------------------


def test_arena_counts_use_and_peak_and_refuses_what_does_not_fit():
    arena = Arena(working_bytes=100, replay_bytes=10)
    a = arena.allocate(Buffer("a", "weights", 10, 32))  # 40 B
    assert a.shape == (10,) and not a.any()
    arena.allocate(Buffer("b", "gradient", 10, 32))  # 80 B in all
    arena.release("b")
    arena.allocate(Buffer("c", "state", 4, 16))  # 48 B in all
    assert arena.used["working"] == 48
    assert arena.peak["working"] == 80
    with pytest.raises(BudgetError, match="working memory needs 112 B of 100 B"):
        arena.allocate(Buffer("d", "errors", 16, 32))
    with pytest.raises(BudgetError, match=r"replay memory .* \(6 B over\)") as err:
        arena.check([Buffer("r", "replay", 4, 32, memory="replay")], "the window")
    assert err.value.over == {"replay": 6}
    assert err.value.breakdown["replay"] == 16


# Cost model ---------------------------------------------------------------------


def test_fptt_window_cost_is_linear_in_length_and_grows_with_passes():
    net = net_of("lru", layers=3)
    cost = CostModel(net, load_profile("cortex-m4f"))
    modes = layer_modes(net, "fptt")
    one = cost.window("fptt", 100, 1, modes).ops
    two = cost.window("fptt", 200, 1, modes).ops
    three = cost.window("fptt", 300, 1, modes).ops
    assert three - two == pytest.approx(two - one)
    # every pass runs the whole network forward: L + 1 = 4 forward passes
    forward = cost.forward_step().ops * 100
    assert one > 4 * forward
    fewer = cost.window("fptt", 100, 1, layer_modes(net, "fptt", 2)).ops
    assert fewer < one


def test_refinement_costs_probes_and_segments_cost_boundary_products():
    net = net_of("rnn", hidden=16)
    profile = load_profile("cortex-m4f")
    modes = layer_modes(net, "fptt")

    def window(**fptt):
        return CostModel(net, profile, FpttConfig(**fptt)).window("fptt", 50, 5, modes)

    plain, split = window(), window(segments=4)
    # one P x per segment for the boundary errors, and nothing else
    boundary = CostModel(net, profile).product_apply().ops
    assert split.ops - plain.ops == pytest.approx(4 * boundary)
    # each refinement pass adds one probe over the window: linear in refine
    once, twice = window(segments=4, refine=1), window(segments=4, refine=2)
    probe = once.ops - split.ops
    assert twice.ops - once.ops == pytest.approx(probe)
    # a probe runs every layer forward and the recursion, without the vjp:
    # more than the forward pass, less than one of FPTT's two passes
    cost = CostModel(net, profile)
    assert 50 * (cost.forward_step() + cost.solve()).ops < probe < plain.ops / 2


def test_neumann_solve_is_cheaper_than_the_dense_factorisation():
    net = net_of("rnn", hidden=32)
    profile = load_profile("fp64-reference")
    exact = CostModel(net, profile).solve().ops
    for terms in (1, 4):
        neumann = CostModel(net, profile, FpttConfig(inverse="neumann", terms=terms))
        # terms matrix-vector products with J^T and their sums, then d - g
        assert neumann.solve().ops == 2 * terms * 32**2 + terms * 32 + 32
        assert neumann.solve().ops < exact


def test_dense_fptt_costs_n_cubed_per_step():
    profile = load_profile("fp64-reference")
    small = CostModel(net_of("rnn", hidden=32), profile).product_update().ops
    large = CostModel(net_of("rnn", hidden=64), profile).product_update().ops
    assert large == pytest.approx(8 * small)  # P <- P J^T: 2 N^3 operations


def test_time_and_energy_follow_the_profile():
    profile = load_profile("cortex-m4f")
    work = CostModel(net_of("lru"), profile).inference_sample()
    assert work.seconds(profile) == pytest.approx(work.ops / 3.2e7)
    e = profile.energy
    expected = (
        work.adds * e.add_pj
        + work.muls * e.mul_pj
        + work.working_bytes * e.working_access_pj_per_byte
        + work.replay_bytes * e.replay_access_pj_per_byte
    ) * 1e-12
    assert work.joules(profile) == pytest.approx(expected)


# Timeline --------------------------------------------------------------------------


def run_clock(windows, **kw):
    clock = Clock(**kw)
    for _ in range(windows):
        clock.advance()
    return clock, clock.timeline()


def test_a_learner_slower_than_a_window_learns_every_other_window():
    # 5 samples a window, one every 10 ms; inference 1 ms a sample leaves 9 ms
    # of each period to the learner, which needs 75 ms: 8.33 periods, so the
    # next window (complete 50 ms later) finds it busy and is skipped.
    _, t = run_clock(
        10, length=5, rate_hz=100.0, infer_s=0.001, grad_s=0.075, update_s=0.0
    )
    assert t.learned.tolist() == [True, False] * 5
    assert not t.keeps_up
    # released at 40 ms; 75 ms of work at 9 ms per period: 8 periods and 3 ms
    # after the 9th period's inference, at 40 + 80 + 1 + 3 = 124 ms
    assert t.finish[0] == pytest.approx(0.124)
    assert t.latency[0] == pytest.approx(0.084)


def test_a_fast_learner_keeps_up_and_its_update_lands_mid_window():
    clock, t = run_clock(
        10, length=5, rate_hz=100.0, infer_s=0.001, grad_s=0.03, update_s=0.0
    )
    assert t.learned.all() and t.keeps_up
    # released at 40 ms, 30 ms of work at 9 ms per period: done at 74 ms
    assert t.finish[0] == pytest.approx(0.074)
    # the first sample at or after 74 ms is sample 8: window 1, step 3
    assert clock.step_at(clock.landed(0)) == (1, 3)
    # busy: 50 inferences of 1 ms and 10 jobs of 30 ms
    assert t.busy_s == pytest.approx(0.05 + 0.3)
    assert t.summary()["duty_cycle"] == pytest.approx(t.busy_s / t.elapsed_s)


def test_a_single_buffer_loses_the_windows_that_arrive_while_learning():
    _, t = run_clock(
        6,
        length=5,
        rate_hz=100.0,
        infer_s=0.001,
        grad_s=0.03,
        update_s=0.0,
        double_buffer=False,
    )
    # the learner is still busy when the next window's first sample arrives
    assert t.learned.tolist() == [True, False] * 3


def test_updates_come_every_batch_of_learnt_windows():
    _, t = run_clock(
        6, length=4, rate_hz=10.0, infer_s=0.0, grad_s=0.01, update_s=0.2, batch=3
    )
    assert t.learned.all()  # a job of 0.21 s ends before the next window, 0.4 s
    assert t.updates.tolist() == [False, False, True] * 2
    # an update adds its time to the job it ends
    assert t.latency[2] == pytest.approx(0.21)
    assert t.latency[1] == pytest.approx(0.01)


def test_clock_state_round_trip_continues_identically():
    kw = dict(length=7, rate_hz=50.0, infer_s=0.002, grad_s=0.2, update_s=0.01)
    whole, expected = run_clock(20, **kw)
    first, _ = run_clock(8, **kw)
    second = Clock(**kw)
    second.set_state(first.get_state())
    for _ in range(12):
        second.advance()
    got = second.timeline()
    np.testing.assert_array_equal(got.learned, expected.learned)
    np.testing.assert_array_equal(got.finish, expected.finish)
    assert got.busy_s == expected.busy_s


# The run loop -------------------------------------------------------------------


def quick(**overrides):
    base = {"training.steps": 30, "training.log_every": 10, "task.length": 20}
    base.update(overrides)
    return load_scenario("quickstart", base)


def test_the_device_learns_what_the_engine_computes():
    # With a fast device every update lands before the next window, so
    # inference on the arriving samples and the learner's first pass see the
    # same parameters: their losses agree.
    scenario = quick()
    result = Device(scenario, scenario.resolve_profile()).run()
    for row in result.rows:
        assert row["online_loss"] == pytest.approx(row["loss"], rel=1e-12)
    assert result.final["loss"] < result.initial["loss"]
    assert result.device["timeline"]["keeps_up"]


def test_the_device_uses_its_arena_for_the_learner_and_the_replay_buffer():
    scenario = quick()
    device = Device(scenario, scenario.resolve_profile())
    planned = breakdown(device.buffers)
    assert device.arena.report()["components"] == planned
    result = device.run()
    arena = result.memory["arena"]
    assert arena["working"]["peak_bytes"] + arena["replay"]["peak_bytes"] == sum(
        planned.values()
    )
    # the replay buffer holds the last windows' inputs, as the device stored them
    replay = device.mem["replay.inputs"].reshape(2, 20, -1)
    assert np.abs(replay).sum() > 0
    # the learner's state buffer was written by the kernel
    assert np.abs(device.mem["learner.state"]).sum() > 0


def test_a_slow_device_skips_windows_and_says_it_does_not_keep_up():
    # cortex-m4f at 32 M operations per second: inference takes about half of
    # each millisecond, and a window's gradient several windows' time
    scenario = quick(**{"profile": "cortex-m4f", "device.rate_hz": 1000.0})
    result = Device(scenario, scenario.resolve_profile()).run()
    timeline = result.device["timeline"]
    assert not timeline["keeps_up"]
    assert timeline["windows_skipped"] > 0
    assert result.windows == timeline["windows"] > result.steps_done == 30


def test_a_device_too_slow_for_inference_alone_is_refused():
    scenario = quick(**{"profile": "cortex-m4f", "device.rate_hz": 20000.0})
    with pytest.raises(fpttsim.CheckFailed, match="cannot keep up even without"):
        Device(scenario, scenario.resolve_profile())


def test_over_budget_fails_before_starting_with_the_breakdown():
    scenario = quick(
        **{"profile": "cortex-m4f", "learning.algorithm": "bptt", "task.length": 3000}
    )
    with pytest.raises(BudgetError, match="activations") as err:
        Device(scenario, scenario.resolve_profile())
    assert err.value.over["working"] > 0
    assert err.value.breakdown["activations"] > 0


def test_energy_and_time_add_up_the_counted_work():
    scenario = quick(profile="cortex-m4f")
    result = Device(scenario, scenario.resolve_profile()).run()
    d = result.device
    samples = result.windows * 20
    expected = (
        samples * d["per_sample_inference"]["joules"]
        + d["timeline"]["windows_learned"] * d["per_window_learning"]["joules"]
        + result.steps_done * d["per_update"]["joules"]
    )
    assert d["energy_joules"] == pytest.approx(expected)
    assert d["energy_per_sample_joules"] == pytest.approx(expected / samples)


def test_gradient_cosine_is_one_in_float64_and_below_in_bf16():
    rows = {}
    for profile in ("fp64-reference", "bf16-systolic"):
        scenario = quick(
            **{"profile": profile, "training.cosine_every": 10, "model.hidden": 8}
        )
        rows[profile] = Device(scenario, scenario.resolve_profile()).run().rows
    exact = [r["cosine"] for r in rows["fp64-reference"]]
    rounded = [r["cosine"] for r in rows["bf16-systolic"]]
    assert len(exact) == 3 and all(c == pytest.approx(1.0, abs=1e-9) for c in exact)
    assert all(0.5 < c < 1.0 - 1e-6 for c in rounded)


def stochastic_profile(tmp_path):
    path = tmp_path / "stochastic.yaml"
    path.write_text(
        "name: stochastic-bf16\n"
        "arithmetic:\n  default: bf16\n  rounding: stochastic\n"
        "memory: {working_bytes: 100000000, replay_bytes: 10000000, "
        "replay_memory: sram}\n"
    )
    return str(path)


@pytest.mark.parametrize("profile", ["fp64-reference", "bf16-systolic", "stochastic"])
def test_a_resumed_run_ends_with_the_same_results(tmp_path, profile):
    if profile == "stochastic":
        profile = stochastic_profile(tmp_path)
    overrides = {
        "training.steps": 30,
        "training.checkpoint_every": 10,
        "training.cosine_every": 5,
        "training.eval_every": 15,
        "task.length": 20,
        "model.hidden": 8,
        "profile": profile,
        "training.on_nan": "skip",
    }
    whole = fpttsim.run("quickstart", tmp_path / "whole", overrides=overrides)

    def interrupt(step, row):
        if step == 23:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fpttsim.run(
            "quickstart", tmp_path / "cut", overrides=overrides, on_step=interrupt
        )
    cut = json.loads((tmp_path / "cut" / "checkpoint.json").read_text())
    assert cut["updates"] == 20
    resumed = fpttsim.run(None, tmp_path / "cut", resume=True)

    assert resumed.training.resumed_from == 20
    a, b = whole.to_dict(), resumed.to_dict()
    for key in ("final", "initial", "numerical_events", "arithmetic_events", "device"):
        assert json.dumps(a[key]) == json.dumps(b[key]), key
    rows_a = [
        {k: v for k, v in r.items() if k != "seconds"} for r in whole.training.rows
    ]
    rows_b = [
        {k: v for k, v in r.items() if k != "seconds"} for r in resumed.training.rows
    ]
    assert json.dumps(rows_a) == json.dumps(rows_b)
    np.testing.assert_array_equal(whole.training.theta, resumed.training.theta)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(fpttsim.ConfigError, match="no checkpoint in"):
        fpttsim.run(None, tmp_path, resume=True)


def test_weights_stay_in_the_weight_format_on_the_device():
    scenario = quick(profile="loihi2")
    device = Device(scenario, scenario.resolve_profile())
    device.run()
    arith = Arithmetic.from_profile(load_profile("loihi2"))
    blocks = device.net.stored_weights()
    again = arith.round_blocks(codes.WEIGHTS, device.theta, blocks)
    np.testing.assert_array_equal(again, device.theta)


def test_run_writes_memory_and_device_reports(tmp_path):
    result = fpttsim.run(
        quick(profile="cortex-m4f", **{"training.cosine_every": 10}), tmp_path
    )
    written = json.loads((tmp_path / "result.json").read_text())
    # fp32 weights, and no shared exponent
    assert written["memory"]["components"]["weights"] == 4 * result.training.theta.size
    assert written["memory"]["arena"]["working"]["capacity_bytes"] == 196608
    assert written["device"]["timeline"]["keeps_up"] in (True, False)
    assert written["device"]["energy_per_sample_joules"] > 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"memory.png", "gradient_cosine.png", "learning_curve.png"} <= names
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"window", "online_loss", "cosine"} <= set(header)


def test_checkpoint_files_are_replaced_atomically(tmp_path):
    overrides = {"training.steps": 20, "training.checkpoint_every": 10}
    fpttsim.run(quick(**overrides), tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir() if "checkpoint" in p.name)
    assert names == ["checkpoint.json", "checkpoint.npz"]
    assert json.loads((tmp_path / "checkpoint.json").read_text())["updates"] == 20


def test_online_variant_runs_on_the_device_with_an_update_per_few_steps():
    scenario = quick(**{"learning.online": True, "learning.online_every": 5})
    device = Device(scenario, scenario.resolve_profile())
    result = device.run()
    # 30 windows of 20 steps: 4 updates each
    assert device.optimizer.steps == 30 * 4
    assert result.steps_done == 30
    per_update = CostModel(device.net, device.profile).update("adam").ops
    assert result.device["per_update"]["ops"] == pytest.approx(4 * per_update)
    assert result.final["loss"] < result.initial["loss"]


def test_online_variant_needs_one_layer_of_fptt():
    with pytest.raises(fpttsim.ConfigError, match="learning.online") as err:
        quick(**{"learning.online": True, "model.layers": 2})
    assert "model.layers is 2" in str(err.value)
