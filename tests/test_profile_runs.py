"""Runs and gradient checks under the shipped hardware profiles."""

import json

import pytest

import fpttsim
from fpttsim import cli
from fpttsim.config import shipped_profiles

# fp64 holds 52 fraction bits, fp32 23, bf16 7: FPTT's gradient must degrade
# in that order on the same window
ORDERED = ["fp64-reference", "cortex-m4f", "bf16-systolic"]


def test_fptt_cosine_falls_with_the_profiles_precision():
    cosines = [
        fpttsim.gradcheck("gradcheck-lru", {"profile": name}).algorithms["fptt"].cosine
        for name in ORDERED
    ]
    assert cosines[0] > cosines[1] > cosines[2]
    assert cosines[0] >= 1 - 1e-10


@pytest.mark.parametrize("profile", shipped_profiles())
def test_gradcheck_runs_under_every_shipped_profile(profile, capsys):
    code = cli.main(["gradcheck", "gradcheck-diagonal", "--profile", profile, "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["profile"] == profile
    assert "events" in result["algorithms"]["fptt"]
    if profile == "fp64-reference":
        assert code == 0
        assert result["algorithms"]["fptt"]["events"] == {}
    else:
        # measured, not judged: a device's gradient is not held to float64
        assert code == 0
        assert result["algorithms"]["fptt"]["passed"] is None
        assert "bptt" in result["algorithms"]


def test_a_run_that_meets_nan_stops_and_keeps_its_results(tmp_path, capsys):
    # a 4-bit float accumulator without infinities (largest 4) turns the
    # first sum above 4 into NaN: the loss of the first window is NaN
    profile = tmp_path / "tiny.yaml"
    profile.write_text(
        "name: tiny-accumulator\n"
        "arithmetic:\n"
        "  default: fp64\n"
        "  formats:\n"
        "    accumulator: {format: e2m1-fn, overflow: inf}\n"
    )
    out = tmp_path / "run"
    code = cli.main(
        ["run", "quickstart", "--profile", str(profile), "--out", str(out),
         "--set", "training.steps=10"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "training.on_nan: stop" in err
    result = json.loads((out / "result.json").read_text())
    assert result["stopped"].startswith("window 1 (step 1):")
    assert result["steps_done"] == 0
    assert result["numerical_events"]["nonfinite_loss"] == 1
    assert result["arithmetic_events"]["learning"]["accumulator"]["nan"] > 0


def test_skipping_nan_windows_runs_every_step(tmp_path, monkeypatch, capsys):
    (tmp_path / "tiny.yaml").write_text(
        "name: tiny-accumulator\n"
        "arithmetic: {default: fp64, formats: {accumulator: e2m1-fn}}\n"
    )
    monkeypatch.chdir(tmp_path)  # --profile paths are relative to the cwd
    code = cli.main(
        ["run", "quickstart", "--profile", "./tiny.yaml", "--out", "run",
         "--set", "training.steps=6", "--set", "training.on_nan=skip"]
    )  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["stopped"] is None
    assert result["steps_done"] == 6
    assert result["numerical_events"]["nonfinite_loss"] == 6


def test_run_under_a_profile_stores_weights_in_its_format(tmp_path):
    import numpy as np

    from fpttsim.numerics import quantize

    result = fpttsim.run(
        fpttsim.load_scenario(
            "quickstart",
            {"profile": "bf16-systolic", "training.steps": 5, "model.hidden": 8},
        )
    )
    theta = result.training.theta
    experiment_net = fpttsim.experiment.prepare(result.scenario).net
    for block in experiment_net.stored_weights():
        assert np.array_equal(quantize(theta[block], "bf16"), theta[block])
