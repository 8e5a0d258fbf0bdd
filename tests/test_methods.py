"""The FPTT-methods comparison (``fpttsim study fptt-methods``).

Its numbers come from the engine, which test_fptt_methods.py and
test_inverse.py check against BPTT; here: that the study asks for what it
says (the methods, the formats, the memory of the device's plan), and that
its outputs are whole.
"""

import json

import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.config import load_profile, load_scenario
from fpttsim.config.scenario import FpttConfig
from fpttsim.device.memory import plan
from fpttsim.errors import ConfigError
from fpttsim.experiment import prepare
from fpttsim.methods import learner_bytes, parse_method, wider
from fpttsim.study import study_profile


def test_methods_are_read_as_written():
    method = parse_method("segments:8+refine:2+wide")
    assert method.fptt == FpttConfig(segments=8, refine=2)
    assert method.wide == "next"
    assert parse_method("plain").fptt == FpttConfig()
    neumann = parse_method("neumann:3+wide:fp64")
    assert (neumann.fptt.inverse, neumann.fptt.terms, neumann.wide) == (
        "neumann",
        3,
        "fp64",
    )


@pytest.mark.parametrize(
    "text", ["segments:0", "refine:x", "wide:fp33", "shooting:2", "plain:1"]
)
def test_a_bad_method_names_the_option(text):
    with pytest.raises(ConfigError, match=f"method {text!r}") as info:
        parse_method(text)
    assert info.value.key == "--methods"


def test_wide_is_one_float_width_up():
    assert wider(study_profile("bf16")) == "fp32"
    assert wider(study_profile("fp16")) == "fp32"
    assert wider(study_profile("fp32")) == "fp64"
    assert wider(load_profile("cortex-m4f")) == "fp64"
    wide = parse_method("wide").profile(study_profile("bf16"))
    assert wide.format_of("error").format == "fp32"
    assert wide.format_of("jacobian_product").format == "fp32"
    assert wide.format_of("state").format == "bf16"


def test_learner_memory_is_the_plans_learner_buffers():
    scenario = load_scenario("quickstart")
    net = prepare(scenario).net
    profile = study_profile("fp32")
    spec = net.cells[0]
    plain = learner_bytes(net, "fptt", 1000, profile, scenario)
    eight = learner_bytes(net, "fptt", 1000, profile, scenario, FpttConfig(segments=8))
    # seven more products and boundary errors per layer, 4 bytes each
    assert eight - plain == net.layers * 7 * (spec.jacobian_size + spec.state_size) * 4
    # FPTT's does not grow with T, BPTT's does: its tape of states
    assert learner_bytes(net, "fptt", 100, profile, scenario) == plain
    short = learner_bytes(net, "bptt", 100, profile, scenario)
    long = learner_bytes(net, "bptt", 1000, profile, scenario)
    assert long - short == 900 * net.layers * spec.state_size * 4
    # the replay buffer and the weights are every algorithm's, not the learner's
    everything = sum(b.bytes for b in plan(net, "fptt", 1000, profile))
    assert plain < everything


@pytest.fixture(scope="module")
def small():
    return fpttsim.fptt_methods(
        methods=["plain", "refine:1", "segments:4", "segments:4+wide"],
        r_min=[0.8],
        lengths=[50, 1000],
        profiles=["fp64", "fp32"],
        seeds=1,
        workers=1,
    )


def test_every_method_is_bptt_in_float64(small):
    for e in small.summary():
        if e["profile"] == "fp64":
            assert e["cosine"] > 1 - 1e-12, e


def test_segments_keep_what_plain_fptt_loses_in_fp32(small):
    at = {e["method"]: e for e in small.point(0.8, 1000) if e["profile"] == "fp32"}
    assert at["plain"]["cosine_bptt"] < 0.5
    assert at["segments:4"]["cosine_bptt"] > 0.9999
    # refinement probes the start error and, where its residual is finite,
    # the Newton step's, then runs
    short = {e["method"]: e for e in small.point(0.8, 50) if e["profile"] == "fp32"}
    assert short["refine:1"]["error_passes"] == 3
    assert at["refine:1"]["error_passes"] == 2
    assert at["segments:4"]["error_passes"] == 1
    # wider errors and P cost their bytes
    assert at["segments:4+wide"]["learner_bytes"] > at["segments:4"]["learner_bytes"]
    assert at["bptt"]["learner_bytes"] > 10 * at["segments:4"]["learner_bytes"]


def test_the_results_are_written_whole(small, tmp_path):
    files = small.write(tmp_path)
    names = {f.name for f in files}
    assert names == {
        "fptt_methods.csv",
        "summary.csv",
        "study.json",
        "fptt_methods.png",
        "fptt_methods_pareto.png",
    }
    data = json.loads((tmp_path / "study.json").read_text())
    assert data["methods"][0] == "bptt"
    assert len(data["summary"]) == 2 * 2 * 5  # profiles x lengths x methods


def test_the_command_line_prints_the_table_and_refuses_bad_methods(tmp_path, capsys):
    code = main(
        [
            "study",
            "fptt-methods",
            "--out",
            str(tmp_path),
            "--methods",
            "plain,segments:2",
            "--r-min",
            "0.9",
            "--lengths",
            "30",
            "--profiles",
            "bf16",
            "--seeds",
            "1",
            "--workers",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "segments:2" in out and "fptt_methods_pareto.png" in out
    assert (tmp_path / "summary.csv").exists()
    code = main(
        ["study", "fptt-methods", "--out", str(tmp_path), "--methods", "segments:0"]
    )
    assert code == 2
    assert "--methods" in capsys.readouterr().err


def test_a_scenarios_device_formats_apply_to_the_studies_profiles():
    scenario = load_scenario("quickstart", {"device.formats.error": "fp64"})
    for name in ("bf16", "bf16-systolic"):
        profile = study_profile(name, scenario)
        assert profile.format_of("error").format == "fp64"
        assert profile.format_of("state") == study_profile(name).format_of("state")
    # a method's own widening comes on top
    wide = parse_method("wide:fp32").profile(study_profile("bf16", scenario))
    assert wide.format_of("error").format == "fp32"


def test_plot_draws_each_methods_error_per_profile(small):
    import matplotlib.pyplot as plt

    fig = small.plot()
    assert plt.get_fignums() == []
    top, bottom = fig.axes[:2], fig.axes[2:]
    assert [ax.get_title() for ax in top] == ["fp64, T = 1000", "fp32, T = 1000"]
    at = {(e["profile"], e["method"]): e for e in small.point(0.8, 1000)}
    for row, key in ((top, "cosine_bptt"), (bottom, "cosine")):
        for ax, profile in zip(row, small.profiles, strict=True):
            assert ax.get_yscale() == "log"
            lines = {
                line.get_label(): line
                for line in ax.lines
                if line.get_label() in small.methods
            }
            # BPTT against itself would be a cosine of 1: only below
            expected = [m for m in small.methods if key == "cosine" or m != "bptt"]
            assert list(lines) == expected
            for method, line in lines.items():
                error = max(1.0 - at[profile, method][key], 1e-16)
                assert list(line.get_ydata()) == [error]
    assert top[0].get_ylabel() == "1 - cosine with\nBPTT at equal bits"


def test_plot_pareto_places_each_method_by_memory_and_error(small):
    fig = small.plot("pareto", length=50)
    assert [ax.get_title() for ax in fig.axes] == [
        "fp64, r_min = 0.8, T = 50",
        "fp32, r_min = 0.8, T = 50",
    ]
    at = {(e["profile"], e["method"]): e for e in small.point(0.8, 50)}
    for ax, profile in zip(fig.axes, small.profiles, strict=True):
        points = {
            line.get_label(): line
            for line in ax.lines
            if line.get_label() in small.methods
        }
        assert list(points) == small.methods
        for method, point in points.items():
            e = at[profile, method]
            cosine = e["cosine"] if method == "bptt" else e["cosine_bptt"]
            assert list(point.get_xdata()) == [e["learner_bytes"]]
            assert list(point.get_ydata()) == [max(1.0 - cosine, 1e-16)]
    with pytest.raises(ValueError, match="kind must be one of 'errors', 'pareto'"):
        small.plot("front")
