"""``fpttsim budget``: memory against the device's arena, cost, precision.

The memory figures are checked against what the device actually allocates;
the spectrum against the LRU's eigenvalues and, for a dense cell, against the
identity that Lyapunov exponents sum to the mean log-determinant; the
precision prediction against simulation.
"""

import json
import math

import numpy as np
import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.config import load_profile, load_scenario
from fpttsim.device import Device
from fpttsim.experiment import prepare
from fpttsim.learn.engine import window_gradient
from fpttsim.precision import (
    check,
    cosine,
    formats_only,
    predict,
    spectrum,
    wanted_bits,
    windows_at,
)


@pytest.mark.parametrize("algorithm", ["fptt", "bptt", "spatial"])
def test_budget_bytes_are_what_the_device_arena_allocates(algorithm):
    overrides = {"profile": "cortex-m4f", "learning.algorithm": algorithm}
    scenario = load_scenario("quickstart", overrides)
    result = fpttsim.budget(scenario, simulate=False)
    device = Device(scenario, scenario.resolve_profile())
    report = device.memory_report()
    budgeted = result.algorithms[algorithm]
    assert budgeted.bytes == report["components"]
    arena = report["arena"]
    assert budgeted.working_bytes == arena["working"]["peak_bytes"]
    assert budgeted.replay_bytes == arena["replay"]["peak_bytes"]


def test_fptt_memory_stays_while_bptt_grows_with_the_length():
    def working(length):
        out = fpttsim.budget("quickstart", {"task.length": length}, simulate=False)
        return {
            k: a.total_bytes - a.replay_bytes for k, a in out.algorithms.items()
        }, out

    short, short_result = working(100)
    long, long_result = working(100_000)
    assert short["fptt"] == long["fptt"]
    tape = [
        r.algorithms["bptt"].bytes["activations"] for r in (short_result, long_result)
    ]
    fixed = short_result.algorithms["spatial"].bytes["activations"]
    # BPTT's tape (its activations beyond one step's) grows with T exactly
    assert (tape[1] - fixed) / (tape[0] - fixed) == pytest.approx(1000, rel=1e-3)
    assert long["bptt"] > 100 * short["bptt"]


def test_largest_length_that_fits_is_the_boundary():
    result = fpttsim.budget("mnist1d-cortex-m4f", simulate=False)
    for name in ("fptt", "bptt"):
        longest = result.algorithms[name].max_length_that_fits
        build = result.memory_curves[name]
        mem = load_profile("cortex-m4f").memory

        def fits(n, build=build, mem=mem):
            used = {"working": 0, "replay": 0}
            for b in build(n):
                used[b.memory] += b.bytes
            return used["working"] <= mem.working_bytes and (
                used["replay"] <= mem.replay_bytes
            )

        assert fits(longest) and not fits(longest + 1)
    # the scenario's shipped comment: BPTT stops fitting past T = 92
    assert result.algorithms["bptt"].max_length_that_fits == 92
    assert result.algorithms["rtrl"].fits is False


def test_reversible_bptt_holds_the_bits_each_step_forgets():
    result = fpttsim.budget("quickstart", {"task.length": 1000}, simulate=False)
    lost = sum(float(x.spectrum.rates.sum()) for x in result.prediction.layers)
    short = fpttsim.budget("quickstart", {"task.length": 500}, simulate=False)
    grows = (
        result.algorithms["reversible"].bytes["activations"]
        - short.algorithms["reversible"].bytes["activations"]
    )
    assert grows == pytest.approx(500 * math.ceil(lost) / 8, abs=1)
    # and needs neither P nor the warm-up's errors
    assert result.algorithms["reversible"].bytes["jacobian_product"] == 0


def test_cost_per_sample_is_the_window_spread_over_its_steps_plus_inference():
    result = fpttsim.budget("quickstart", {"profile": "cortex-m4f"}, simulate=False)
    fptt, bptt = result.algorithms["fptt"].cost, result.algorithms["bptt"].cost
    # FPTT runs two passes where BPTT runs one forward and one backward
    assert fptt["per_window"]["ops"] > bptt["per_window"]["ops"]
    for alg in (fptt, bptt):
        per_window = alg["per_window"]["ops"] / result.length
        assert alg["per_sample"]["ops"] > per_window


# Spectrum and the model ------------------------------------------------------


def test_wanted_bits_of_a_cosine():
    # cos = 1 / sqrt(1 + r^2) for an orthogonal error of relative size r
    assert 1 / math.sqrt(1 + 2 ** (-2 * wanted_bits(0.99))) == pytest.approx(0.99)
    with pytest.raises(ValueError):
        wanted_bits(1.0)


def spectrum_of(name, length):
    """A one-layer scenario's network, parameters, traces and spectrum."""
    scenario = load_scenario(name)
    experiment = prepare(scenario)
    net, theta = experiment.net, experiment.theta
    window = windows_at(scenario, length, 1)[0]
    traces = window_gradient(net, theta, window, "bptt", trace=True).traces
    (layer,) = spectrum(net, theta, traces)
    return scenario, net, theta, traces, layer


def test_lru_spectrum_is_its_eigenvalue_moduli():
    scenario, net, theta, _, layer = spectrum_of("gradcheck-lru", 30)
    nu_log = theta[net.cell_slices[0]][: net.cells[0].hidden]
    moduli = np.exp(-np.exp(nu_log))  # |lambda| = exp(-exp(nu_log))
    np.testing.assert_allclose(np.exp(layer.exponents), moduli, rtol=1e-12)
    assert layer.smallest_modulus >= scenario.model.r_min


def test_dense_lyapunov_exponents_sum_to_the_mean_log_determinant():
    _, net, theta, traces, layer = spectrum_of("gradcheck-rnn", 40)
    n = net.cells[0].hidden
    w = theta[net.cell_slices[0]][: n * n].reshape(n, n)
    h = traces[0].states
    logdet = np.mean(
        [np.linalg.slogdet(np.diag(1 - h[t + 1] ** 2) @ w)[1] for t in range(40)]
    )
    assert layer.exponents.sum() == pytest.approx(logdet, rel=1e-9)
    assert np.all(np.diff(layer.exponents) <= 0)  # largest first


def test_windows_at_other_lengths_keep_their_losses():
    scenario = load_scenario("quickstart")  # the copy task needs 11 steps
    for length in (5, 50, 300):
        (window,) = windows_at(scenario, length, 1)
        assert window.inputs.shape[0] == length and window.mask.sum() > 0


@pytest.mark.parametrize("profile_name", ["cortex-m4f", "bf16-systolic"])
def test_prediction_agrees_with_simulation_in_fp32_and_bf16(profile_name):
    scenario = load_scenario("gradcheck-lru", {"profile": profile_name})
    profile = scenario.resolve_profile()
    prediction = predict(scenario, profile)
    result = check(scenario, profile, prediction.max_length, windows=1)
    assert result.measured_max_length is not None
    assert 0.5 <= result.ratio <= 2.0 and result.agrees and result.note == ""
    # the cosine falls below the threshold past the measured limit
    after = [m for m in result.measured if m.length > result.measured_max_length]
    assert after and after[0].own_cosine < 0.99
    kept = [m for m in result.measured if m.length <= result.measured_max_length]
    assert all(m.own_cosine >= 0.99 for m in kept)


def test_a_disagreement_is_explained():
    # fp8's 4 bits of precision: rounding noise alone nears the threshold
    scenario = load_scenario("gradcheck-lru", {"profile": "fp8-h100"})
    profile = scenario.resolve_profile()
    prediction = predict(scenario, profile)
    result = check(scenario, profile, prediction.max_length, windows=1)
    assert result.agrees or "off by a factor" in result.note
    assert result.agrees == (result.note == "")


def test_formats_only_keeps_the_error_and_product_formats():
    profile = load_profile("loihi2")
    own = formats_only(profile)
    for quantity in ("error", "jacobian_product"):
        assert own.format_of(quantity) == profile.format_of(quantity)
    for quantity in ("state", "weights", "product", "accumulator"):
        assert own.format_of(quantity).format == "fp64"


def test_cosine_of_a_broken_gradient_is_nan():
    assert math.isnan(cosine(np.array([np.nan, 1.0]), np.array([1.0, 1.0])))
    assert cosine(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)


# Command line ----------------------------------------------------------------


def test_budget_json_has_the_documented_shape(capsys):
    code = main(["budget", "quickstart", "--json", "--no-check"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"profile", "working_memory_bytes", "algorithms", "precision", "cost"} <= (
        out.keys()
    )
    fptt = out["algorithms"]["fptt"]
    assert {"bytes", "total_bytes", "replay_bytes", "fits", "max_length_that_fits"} <= (
        fptt.keys()
    )
    assert set(out["algorithms"]) == {"fptt", "bptt", "rtrl", "spatial", "reversible"}
    precision = out["precision"]
    assert {"predicted_max_length", "measured", "required_fraction_bits"} <= (
        precision.keys()
    )


def test_budget_exits_1_when_the_scenarios_algorithm_does_not_fit(capsys):
    code = main(["budget", "quickstart", "--no-check", "--profile", "cortex-m0plus"])
    assert code == 1
    assert "does NOT fit" in capsys.readouterr().out


def test_budget_refuses_a_bad_threshold(capsys):
    assert main(["budget", "quickstart", "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err


@pytest.fixture(scope="module")
def checked():
    return fpttsim.budget("quickstart", max_length=400)


def test_budget_writes_its_figures(checked, tmp_path):
    files = checked.write_figures(tmp_path)
    assert [f.name for f in files] == ["budget_memory.png", "budget_precision.png"]
    assert all(f.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for f in files)
    # without the check there are no measured cosines to draw
    unchecked = fpttsim.budget("quickstart", simulate=False)
    files = unchecked.write_figures(tmp_path / "unchecked")
    assert [f.name for f in files] == ["budget_memory.png"]
    (ax,) = unchecked.plot().axes
    assert ax.get_title() == "quickstart on fp64-reference: memory against T"


def test_budget_plot_draws_the_plans_bytes_against_the_length(checked):
    import matplotlib.pyplot as plt

    memory, precision = checked.plot().axes
    assert plt.get_fignums() == []
    assert memory.get_title() == "quickstart on fp64-reference: memory against T"
    assert memory.get_xscale() == memory.get_yscale() == "log"
    lines = {line.get_label(): line for line in memory.lines}
    assert set(checked.algorithms) < set(lines)
    np.testing.assert_array_equal(
        lines["working memory"].get_ydata(), [checked.working_memory_bytes] * 2
    )
    # FPTT's working memory does not depend on T
    fptt = lines["fptt"].get_ydata()
    assert set(fptt) == {checked.algorithms["fptt"].working_bytes}
    # each point of BPTT's curve is the budget of a scenario of that length
    xs, ys = lines["bptt"].get_data()
    assert ys[-1] > 10 * ys[0]
    for n, used in list(zip(xs, ys, strict=True))[30::15]:
        at = fpttsim.budget("quickstart", {"task.length": int(n)}, simulate=False)
        assert used == at.algorithms["bptt"].working_bytes, n


def test_budget_plot_draws_the_measured_cosines(checked):
    precision = checked.plot().axes[1]
    assert precision.get_title() == "quickstart on fp64-reference: FPTT's precision"
    lines = {line.get_label(): line for line in precision.lines}
    measured = checked.check.measured
    for label, key in (
        ("FPTT, only its error and P formats", "own_cosine"),
        ("FPTT, whole profile", "cosine"),
        ("BPTT, whole profile", "bptt_cosine"),
    ):
        xs, ys = lines[label].get_data()
        assert list(xs) == [m.length for m in measured]
        assert list(ys) == [getattr(m, key) for m in measured]
    xs, ys = lines["model"].get_data()
    assert list(ys) == [checked.prediction.cosine_at(n) for n in xs]
    limit = checked.prediction.max_length
    (predicted,) = [line for name, line in lines.items() if "limit" in name]
    assert predicted.get_label() == f"predicted limit {limit:.0f}"
    assert list(predicted.get_xdata()) == [limit, limit]


def test_the_precision_panel_needs_the_check():
    from fpttsim.report import plot_budget_precision

    unchecked = fpttsim.budget("quickstart", simulate=False)
    with pytest.raises(ValueError, match="simulate=False"):
        plot_budget_precision(unchecked)


def test_dense_cells_are_limited_by_mixing_and_the_check_agrees():
    scenario = load_scenario("gradcheck-gru", {"profile": "cortex-m4f"})
    profile = scenario.resolve_profile()
    prediction = predict(scenario, profile)
    (layer,) = prediction.to_dict()["layers"]
    assert layer["binding"] == "mixing"
    # far below what the exponent range alone would allow
    assert prediction.max_length < layer["worst_mode_limits"]["P resolved"] / 3
    result = check(scenario, profile, prediction, windows=1)
    assert result.agrees, result.to_dict()


def test_required_bits_grow_with_the_length():
    def needs(length):
        scenario = load_scenario(
            "gradcheck-gru", {"profile": "bf16-systolic", "task.length": length}
        )
        return predict(scenario, scenario.resolve_profile()).required

    short, long = needs(20), needs(200)
    assert long["error"]["fraction_bits"] > short["error"]["fraction_bits"]
    # bf16 holds 7 fraction bits: enough at 20 steps, not at 200
    assert short["error"]["fraction_bits"] <= 7 < long["error"]["fraction_bits"]


def test_device_formats_widen_what_the_budget_counts():
    device = {"profile": "bf16-systolic"}
    wide = {
        **device,
        "device.formats.error": "fp32",
        "device.formats.jacobian_product": "fp32",
    }
    plain = fpttsim.budget("quickstart", device, simulate=False).algorithms["fptt"]
    mixed = fpttsim.budget("quickstart", wide, simulate=False).algorithms["fptt"]
    spec = prepare(load_scenario("quickstart")).net.cells[0]
    # delta, g_{t-1} and delta_0, and P: from 2 to 4 bytes each
    assert mixed.bytes["errors"] - plain.bytes["errors"] == 3 * spec.state_size * 2
    assert (
        mixed.bytes["jacobian_product"] - plain.bytes["jacobian_product"]
        == spec.jacobian_size * 2
    )
    assert mixed.bytes["state"] == plain.bytes["state"]
