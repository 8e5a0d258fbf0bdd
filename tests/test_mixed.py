"""``fpttsim recommend``: the fewest extra bits on FPTT's errors and P.

Every claim of a recommendation is checked another way: the formats it
recommends, and the same with one fraction bit fewer, are simulated again by
:func:`fpttsim.precision.measure`; its memory against the device's plan for
the widened formats; its energy against the bytes moved.
"""

import json

import numpy as np
import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.config import Profile, load_profile, load_scenario
from fpttsim.data import Window
from fpttsim.device.memory import plan
from fpttsim.experiment import prepare
from fpttsim.learn.engine import window_gradient
from fpttsim.mixed import Widening, recommend
from fpttsim.numerics.codes import INPUT
from fpttsim.numerics.formats import parse_format
from fpttsim.precision import compare, cosine, measure, on_device, windows_at

WIDENED = ("error", "jacobian_product")


def device(base: str, formats: dict) -> Profile:
    """A shipped profile with some quantities in other formats."""
    data = load_profile(base).model_dump()
    for quantity, name in formats.items():
        data["arithmetic"]["formats"][quantity] = {"format": name}
    return Profile.model_validate(data)


# fp32 everywhere but FPTT's errors and P in fp8 (e5m2): the device's BPTT
# keeps its own errors in fp8 too, so extra bits on those two are what help
FP8_ERRORS = {q: "fp8-e5m2" for q in WIDENED}


@pytest.fixture(scope="module")
def fp8_errors():
    scenario = load_scenario("quickstart")  # one LRU layer, T = 50
    profile = device("cortex-m4f", FP8_ERRORS)
    return scenario, profile, recommend(scenario, profile, target=0.99)


def test_recommended_formats_meet_the_target_and_one_bit_fewer_does_not(fp8_errors):
    scenario, profile, result = fp8_errors
    assert result.reached and result.extra_bits >= 1
    chosen = {q: parse_format(result.formats[q]) for q in WIDENED}
    fewer = {q: f"e{f.exponent_bits}m{f.fraction_bits - 1}" for q, f in chosen.items()}

    def simulated(formats):
        widened = device("cortex-m4f", formats)
        return measure(scenario, widened, result.length, result.windows).cosine

    assert simulated(result.formats) >= 0.99
    assert simulated(fewer) < 0.99
    # the search itself simulated both sides of the boundary
    tried = {tuple(t.formats.values()): t for t in result.trials}
    assert tried[tuple(fewer.values())].meets is False
    assert tried[tuple(result.formats.values())].exact_cosine == pytest.approx(
        simulated(result.formats), rel=1e-12
    )


def test_plot_draws_every_candidate_against_the_target_and_ceiling(fp8_errors):
    import matplotlib.pyplot as plt

    _, _, result = fp8_errors
    (ax,) = result.plot().axes
    assert plt.get_fignums() == []
    assert ax.get_xlabel() == "extra fraction bits on FPTT's errors and P"
    lines = {line.get_label(): line for line in ax.lines}
    trials = sorted(result.trials, key=lambda t: t.extra_bits)
    exact = lines["against exact BPTT"]
    device = lines["against BPTT on the device"]
    for line, key in ((exact, "exact_cosine"), (device, "bptt_cosine")):
        assert list(line.get_xdata()) == [t.extra_bits for t in trials]
        assert list(line.get_ydata()) == [getattr(t, key) for t in trials]
    # the cosine the target was asked against is drawn solid
    assert (exact.get_linestyle(), device.get_linestyle()) == ("-", ":")
    assert list(lines["target 0.99"].get_ydata()) == [0.99, 0.99]
    (ceiling,) = [line for name, line in lines.items() if name.startswith("ceiling")]
    assert list(ceiling.get_ydata()) == [result.ceiling] * 2
    chosen = lines[f"chosen: +{result.extra_bits} bits"]
    assert list(chosen.get_xdata()) == [result.extra_bits] * 2


def test_no_candidate_that_meets_has_fewer_bits(fp8_errors):
    _, _, result = fp8_errors
    chosen = sum(parse_format(result.formats[q]).bits for q in WIDENED)
    for trial in result.trials:
        bits = sum(parse_format(name).bits for name in trial.formats.values())
        assert not trial.meets or bits >= chosen


def test_the_memory_difference_is_the_plan_of_the_widened_formats(fp8_errors):
    scenario, profile, result = fp8_errors
    net = prepare(scenario).net
    learning = scenario.learning

    def total(profile_):
        buffers = plan(
            net,
            "fptt",
            result.length,
            profile_,
            learning.optimizer,
            learning.momentum > 0,
            scenario.device.double_buffer,
        )
        return sum(b.bytes for b in buffers)

    widened = device("cortex-m4f", result.formats)
    difference = total(widened) - total(profile)
    assert result.memory["difference_bytes"] == difference > 0
    # by hand: k more bits on each of delta (3 vectors of the LRU's state, 64
    # real values) and P (one vector), on one layer
    k = result.extra_bits
    assert result.memory["difference_by_component"]["errors"] == 3 * 64 * k / 8
    assert result.memory["difference_by_component"]["jacobian_product"] == 64 * k / 8


def test_the_energy_difference_is_the_bytes_moved(fp8_errors):
    _, profile, result = fp8_errors
    energy = result.energy
    for span in ("per_window", "per_sample"):
        before, after = energy["before"][span], energy["after"][span]
        assert after["operations_joules"] == before["operations_joules"]
        moved = after["working_bytes_moved"] - before["working_bytes_moved"]
        assert moved > 0
        price = profile.energy.working_access_pj_per_byte * 1e-12
        assert energy["difference_joules"][span] == pytest.approx(moved * price)
    assert "only the bytes moved" in energy["note"]


def test_segmented_fptt_is_what_the_candidates_run():
    scenario = load_scenario("quickstart", {"learning.fptt.segments": 2})
    profile = device("cortex-m4f", FP8_ERRORS)
    result = recommend(scenario, profile, target=0.99)
    (first, *_) = result.trials
    widened = device("cortex-m4f", first.formats)
    segmented = measure(scenario, widened, result.length, result.windows).cosine
    assert first.exact_cosine == pytest.approx(segmented, rel=1e-12)
    published = load_scenario("quickstart")
    plain = measure(published, widened, result.length, result.windows).cosine
    assert abs(segmented - plain) > 1e-3  # the segments changed the gradient


def test_the_exact_reference_needs_no_extra_bits():
    result = fpttsim.recommend_precision("quickstart", target=0.999999)
    assert result.extra_bits == 0
    assert result.formats == result.device_formats == dict.fromkeys(WIDENED, "fp64")
    assert result.ceiling == pytest.approx(1.0, abs=1e-12)
    assert result.memory["difference_bytes"] == 0
    assert result.energy["difference_joules"]["per_sample"] == 0


def test_a_wider_range_beats_more_fraction_bits_when_it_is_what_fails():
    # fp16's 5 exponent bits cannot hold P over 50 steps of |lambda| >= 0.7:
    # 50 log2(1 / 0.7) = 26 bits of decay, below fp16's smallest 2^-24
    scenario = load_scenario("quickstart", {"model.r_min": 0.7})
    profile = device("cortex-m4f", {q: "fp16" for q in WIDENED})
    result = recommend(scenario, profile, target=0.99)
    assert result.extra_bits == 0
    assert parse_format(result.formats["jacobian_product"]).exponent_bits > 5
    tried = {tuple(t.formats.values()): t for t in result.trials}
    assert tried["fp16", "fp16"].meets is False


@pytest.mark.parametrize(
    ("device_format", "required", "k", "expected"),
    [
        ("bf16", {}, 0, "bf16"),  # no change keeps the device's own name
        ("bf16", {}, 16, "fp32"),  # e8m23 has a name
        ("bf16", {"exponent_bits": 5}, 3, "tf32"),  # never fewer exponent bits
        ("fp16", {"exponent_bits": 6}, 0, "e6m10"),
        ("fp16", {}, 100, "e5m52"),  # float64's 52 fraction bits at most
        ("fp8-e4m3", {"exponent_bits": 11}, 1, "e10m4-fn"),  # -fn stops at 10
        ("e5m2-sat", {}, 1, "e5m3-sat"),
        # fixed point: 1 sign bit + 7 integer bits + fraction bits
        ("fixed24.16", {}, 3, "fixed27.19"),
        ("fixed24.16", {"integer_bits": 10}, 0, "fixed27.16"),
        ("fixed24.16", {}, 100, "fixed53.45"),  # 53 bits in all at most
        ("fixed16.15-wrap", {}, 1, "fixed17.16-wrap"),
        ("fixed8.7-shared", {}, 2, "fixed10.9-shared"),
        ("fp64", {}, 5, "fp64"),
    ],
)
def test_candidate_formats(device_format, required, k, expected):
    widening = Widening.predicted(parse_format(device_format), required)
    assert widening.name(k) == expected
    parse_format(expected)  # a valid name


def test_comparison_gives_the_cosine_with_bptt_in_the_same_arithmetic():
    scenario = load_scenario("quickstart", {"profile": "bf16-systolic"})
    experiment = prepare(scenario)
    net = experiment.net
    arith, own, theta = on_device(
        net, experiment.theta, scenario.resolve_profile(), scenario.seed
    )
    (raw,) = windows_at(scenario, 50, 1)
    found = compare(net, theta, raw, arith, own)
    window = Window(arith.round(INPUT, raw.inputs), raw.targets, raw.mask)
    fptt, bptt = (
        window_gradient(net, theta, window, algorithm, arithmetic=arith).grad
        for algorithm in ("fptt", "bptt")
    )
    assert found.against_bptt == pytest.approx(cosine(fptt, bptt), rel=1e-12)
    assert found.against_bptt != found.whole
    assert np.isfinite(found.against_bptt)


# Command line ----------------------------------------------------------------

DOCUMENTED = {
    "scenario",
    "profile",
    "length",
    "target",
    "against",
    "windows",
    "device_formats",
    "device_bits",
    "prediction",
    "ceiling",
    "max_extra_bits",
    "trials",
    "reached",
    "extra_bits",
    "formats",
    "bits",
    "extra_storage_bits",
    "memory",
    "energy",
    "verdict",
    "notes",
}


def test_json_has_the_documented_keys(capsys):
    code = main(
        [
            "recommend",
            "quickstart",
            "--profile",
            "bf16-systolic",
            "--target",
            "0.99995",
            "--against",
            "bptt",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    out = json.loads(captured.out)
    assert set(out) == DOCUMENTED
    assert out["against"] == "bptt" and out["reached"] is True
    assert {"extra_bits", "formats", "required"} == set(out["prediction"])
    assert {"before", "after", "difference_bytes"} <= set(out["memory"])
    trial = out["trials"][0]
    assert {"extra_bits", "formats", "cosine", "exact_cosine", "meets"} <= set(trial)
    # one progress line per candidate, on stderr
    assert captured.err.count("fpttsim: k = +") == len(out["trials"])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--target", "1.5", "expected a cosine in (0, 1), got 1.5"),
        ("--windows", "0", "expected N >= 1, got 0"),
    ],
)
def test_bad_options_exit_2(capsys, option, value, message):
    assert main(["recommend", "quickstart", option, value]) == 2
    err = capsys.readouterr().err
    assert f"{option}: {message}" in err


def test_a_target_above_the_ceiling_is_unreachable_and_exits_1(capsys):
    # bf16 states and weights over 400 steps: BPTT itself stays below 0.99
    code = main(
        [
            "recommend",
            "quickstart",
            "--profile",
            "bf16-systolic",
            "--set",
            "task.length=400",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "unreachable" in out and "above the ceiling" in out
    # the prediction's candidate, then straight to the widest one
    assert out.count("misses") == 2


def test_unreachable_result_has_no_formats():
    result = fpttsim.recommend_precision(
        "quickstart", {"profile": "bf16-systolic", "task.length": 400}
    )
    assert not result.reached
    assert result.extra_bits is None and result.formats is None
    widest = max(result.trials, key=lambda t: t.extra_bits)
    assert widest.extra_bits == result.max_extra_bits == 52 - 7
    assert widest.exact_cosine < 0.99 and result.ceiling < 0.99
    assert json.loads(result.to_json())["reached"] is False
    # nothing was chosen, so the figure marks no width
    (ax,) = result.plot().axes
    assert not [line for line in ax.lines if line.get_label().startswith("chosen")]
