"""``fpttsim study gradient-quality``: the FPTT post's figure, and the budget's check.

The post's qualitative findings: the gradient's cosine falls as ``r_min``
shrinks and as ``T`` grows, and more precision keeps it longer. The default
grid also checks the precision budget's prediction at every point.
"""

import csv
import json

import numpy as np
import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.errors import ConfigError
from fpttsim.study import StudyResult, gradient_quality, study_profile


@pytest.fixture(scope="module")
def small():
    return gradient_quality(
        r_min=(0.0, 0.9, 0.999),
        lengths=(10, 300),
        profiles=("fp64", "fp32", "bf16"),
        seeds=2,
        workers=2,
    )


def mean_cosine(result, **where):
    rows = [r for r in result.rows if all(r[k] == v for k, v in where.items())]
    assert rows
    return float(np.mean([r["cosine"] for r in rows]))


def test_cosine_falls_with_length_and_with_forgetting(small):
    for profile in small.profiles:
        assert mean_cosine(small, profile=profile, length=300) <= mean_cosine(
            small, profile=profile, length=10
        )
    for profile in ("fp32", "bf16"):
        fast = mean_cosine(small, profile=profile, r_min=0.0, length=300)
        slow = mean_cosine(small, profile=profile, r_min=0.999, length=300)
        assert fast < 0.5 < slow


def test_more_precision_keeps_the_gradient_longer(small):
    fp64, fp32, bf16 = (mean_cosine(small, profile=p) for p in ("fp64", "fp32", "bf16"))
    assert fp64 >= fp32 >= bf16
    assert bf16 < fp64  # and the difference is real


def test_rows_cover_the_grid_and_the_summary_spans_the_seeds(small):
    assert len(small.rows) == 3 * 2 * 3 * 2
    for entry in small.summary():
        assert entry["cosine_min"] <= entry["cosine"] <= entry["cosine_max"]


def test_the_default_grid_agrees_with_the_precision_budget():
    result = gradient_quality(workers=2)
    assert len(result.rows) == 7 * 3 * 4 * 3
    assert result.disagreements() == []


def test_a_disagreement_says_why():
    row = {
        "profile": "fp32",
        "r_min": 0.5,
        "length": 1000,
        "seed": 0,
        "cosine": 0.1,
        "own_cosine": 0.1,
        "bptt_cosine": 1.0,
        "residual": 1.0,
        "predicted_cosine": 1.0,
        "predicted_max_length": 5000,
    }
    result = StudyResult("x", [0.5], [1000], ["fp32"], 1, 0.99, [row])
    (found,) = result.disagreements()
    assert found["predicted_max_length"] == 5000 and "lost although" in found["why"]
    row.update(own_cosine=0.999, predicted_max_length=100)
    (found,) = result.disagreements()
    assert "kept although" in found["why"]
    row.update(predicted_max_length=800)  # within a factor of 2 of 1000
    assert result.disagreements() == []


def test_a_format_name_is_a_uniform_profile():
    profile = study_profile("bf16")
    assert {profile.format_of(q).format for q in ("state", "error", "weights")} == {
        "bf16"
    }
    assert study_profile("loihi2").name == "loihi2"
    with pytest.raises(ConfigError, match="neither a hardware profile"):
        study_profile("fp33")


def test_command_line_writes_the_tables_and_figures(tmp_path, capsys):
    code = main(
        [
            "study",
            "gradient-quality",
            "--out",
            str(tmp_path),
            "--r-min",
            "0.5,0.99",
            "--lengths",
            "10,40",
            "--profiles",
            "fp64,fixed32.16",
            "--seeds",
            "1",
            "--workers",
            "1",
            "--json",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["profiles"] == ["fp64", "fixed32.16"]
    with open(tmp_path / "gradient_quality.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 2 * 2
    for name in ("summary.csv", "study.json", "gradient_quality.png", "heatmaps.png"):
        assert (tmp_path / name).stat().st_size > 100


@pytest.mark.parametrize(
    ("option", "value"),
    [("--r-min", "1.5"), ("--lengths", "0"), ("--profiles", "fp33"), ("--seeds", "0")],
)
def test_command_line_refuses_bad_grids(tmp_path, capsys, option, value):
    assert (
        main(["study", "gradient-quality", "--out", str(tmp_path), option, value]) == 2
    )
    assert option in capsys.readouterr().err


def test_python_api_writes_when_given_a_folder(tmp_path):
    result = fpttsim.gradient_quality(
        r_min=[0.9], lengths=[20], profiles=["fp32"], seeds=1, workers=1, out=tmp_path
    )
    assert result.rows[0]["cosine"] > 0.999
    assert (tmp_path / "gradient_quality.png").exists()


def test_plot_draws_each_lengths_median_cosine_per_profile(small):
    import matplotlib.pyplot as plt

    fig = small.plot()
    assert plt.get_fignums() == []
    assert [ax.get_title() for ax in fig.axes] == list(small.profiles)
    for ax, profile in zip(fig.axes, small.profiles, strict=True):
        assert ax.get_xlabel() == "r_min"
        curves = [line for line in ax.lines if line.get_label().startswith("T = ")]
        assert [c.get_label() for c in curves] == ["T = 10", "T = 300"]
        for curve, length in zip(curves, small.lengths, strict=True):
            # the median of the two seeds' cosines at each r_min, in order
            expected = [
                np.median(
                    [
                        r["cosine"]
                        for r in small.rows
                        if (r["profile"], r["r_min"], r["length"])
                        == (profile, r_min, length)
                    ]
                )
                for r_min in small.r_min
            ]
            np.testing.assert_array_equal(curve.get_ydata(), expected)
        (threshold,) = [line for line in ax.lines if line not in curves]
        assert list(threshold.get_ydata()) == [small.threshold] * 2


def test_plot_heatmaps_hold_the_median_cosine(small):
    fig = small.plot("heatmaps")
    panels = [ax for ax in fig.axes if ax.get_title()]
    # one panel per profile, and the shared colour bar
    assert [ax.get_title() for ax in panels] == list(small.profiles)
    assert len(fig.axes) == len(panels) + 1
    for ax, profile in zip(panels, small.profiles, strict=True):
        (image,) = ax.get_images()
        grid = image.get_array()
        assert grid.shape == (len(small.lengths), len(small.r_min))
        for e in small.summary():
            if e["profile"] == profile:
                i = small.lengths.index(e["length"])
                j = small.r_min.index(e["r_min"])
                assert grid[i, j] == e["cosine"]
    with pytest.raises(ValueError, match="kind must be one of 'cosine', 'heatmaps'"):
        small.plot("lines")
