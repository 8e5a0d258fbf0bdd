import csv
import io
import itertools
import json
import math

import numpy as np
import pytest

from fpttsim import report
from fpttsim.progress import Progress
from fpttsim.report import (
    plot_learning_curve,
    versions,
    write_figure,
    write_metrics_csv,
    write_result_json,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def strict_loads(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_result_json_round_trip(tmp_path):
    result = {
        "name": "copy",
        "steps": np.int64(2000),
        "loss": np.float32(0.25),
        "converged": np.bool_(True),
        "curve": np.array([1.5, np.nan, np.inf, -np.inf]),
        "shape": np.arange(6).reshape(2, 3),
        "bad": float("nan"),
        "nested": {"a": [np.float64(0.1), (1, 2)], 3: None},
    }
    path = write_result_json(tmp_path / "run" / "deep", result)
    assert path == tmp_path / "run" / "deep" / "result.json"

    back = strict_loads(path.read_text())
    assert list(back) == list(result)
    assert back["steps"] == 2000
    assert back["loss"] == 0.25
    assert back["converged"] is True
    assert back["curve"] == [1.5, "nan", "inf", "-inf"]
    assert back["shape"] == [[0, 1, 2], [3, 4, 5]]
    assert back["bad"] == "nan"
    assert back["nested"] == {"a": [0.1, [1, 2]], "3": None}
    # Indented: one key per line.
    assert '\n  "name": "copy",\n' in path.read_text()


def test_result_json_rejects_unknown_types(tmp_path):
    with pytest.raises(TypeError, match=r"result\['x'\]\[1\]: cannot write a set"):
        write_result_json(tmp_path, {"x": [1, {2}]})
    assert not (tmp_path / "result.json").exists()


def test_versions():
    found = versions()
    expected = [
        "python",
        "numpy",
        "numba",
        "pydantic",
        "yaml",
        "matplotlib",
        "fpttsim",
        "lava-nc",
        "platform",
    ]
    assert list(found) == expected
    assert found["numpy"] == np.__version__
    assert all(isinstance(v, str) and v for v in found.values())
    # The result must itself be writable as a result.
    json.dumps(found, allow_nan=False)


def test_metrics_csv_reads_back_exactly(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"step": i, "loss": float(v), "lr": 1e-3} for i, v in enumerate(rng.random(50))
    ]
    rows[10]["accuracy"] = np.float64(1 / 3)
    rows[20]["loss"] = float("nan")
    rows[30]["loss"] = None
    path = write_metrics_csv(tmp_path, rows)

    with path.open(newline="") as f:
        back = list(csv.DictReader(f))
    assert list(back[0]) == ["step", "loss", "lr", "accuracy"]
    assert len(back) == len(rows)
    for row, read in zip(rows, back, strict=True):
        assert int(read["step"]) == row["step"]
        assert float(read["lr"]) == 1e-3
        if row["loss"] is None:
            assert read["loss"] == ""
        elif math.isnan(row["loss"]):
            assert math.isnan(float(read["loss"]))
        else:
            assert float(read["loss"]) == row["loss"]
    assert float(back[10]["accuracy"]) == 1 / 3
    assert back[11]["accuracy"] == ""


def test_metrics_csv_empty_and_bad(tmp_path):
    assert write_metrics_csv(tmp_path, []).read_text() == ""
    with pytest.raises(TypeError, match="metrics column 'loss'"):
        write_metrics_csv(tmp_path, [{"loss": [1.0]}])


def test_learning_curve_png(tmp_path):
    import matplotlib.pyplot as plt

    rows = [
        {"step": i, "loss": 2.0 / (i + 1), "accuracy": min(i / 20, 1.0)}
        for i in range(40)
    ]
    rows.append({"step": 40})
    fig = plot_learning_curve(rows, title="copy, FPTT", secondary="accuracy")
    left, right = fig.axes
    assert left.get_title() == "copy, FPTT"
    # every loss is positive: a log axis
    assert left.get_yscale() == "log"
    (loss,) = left.lines
    # the last row has no loss and is left out
    np.testing.assert_array_equal(loss.get_xdata(), range(40))
    np.testing.assert_array_equal(loss.get_ydata(), [2.0 / (i + 1) for i in range(40)])
    (accuracy,) = right.lines
    assert accuracy.get_label() == right.get_ylabel() == "accuracy"
    assert accuracy.get_linestyle() == "--"
    path = write_figure(fig, tmp_path / "out" / "learning_curve.png")
    assert path == tmp_path / "out" / "learning_curve.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert plt.get_fignums() == []


def test_learning_curve_negative_and_missing_values(tmp_path):
    import matplotlib.pyplot as plt

    # Not all positive: linear scale; a metric with no values still plots.
    rows = [{"step": i, "delta": math.sin(i)} for i in range(10)]
    fig = plot_learning_curve(rows, title="t", y="delta", secondary="acc")
    left, right = fig.axes
    assert left.get_yscale() == "linear"
    np.testing.assert_array_equal(left.lines[0].get_ydata(), [r["delta"] for r in rows])
    assert len(right.lines[0].get_xdata()) == 0
    path = write_figure(fig, tmp_path / "learning_curve.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert plt.get_fignums() == []


def test_atomic_writes_leave_only_outputs(tmp_path):
    rows = [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
    write_result_json(tmp_path, {"ok": True})
    write_metrics_csv(tmp_path, rows)
    write_figure(plot_learning_curve(rows, title="t"), tmp_path / "learning_curve.png")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["learning_curve.png", "metrics.csv", "result.json"]


def test_interrupted_write_keeps_old_file(tmp_path, monkeypatch):
    path = write_result_json(tmp_path, {"version": 1})

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(report.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_result_json(tmp_path, {"version": 2})
    assert strict_loads(path.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class TTYStream(io.StringIO):
    def isatty(self):
        return True


def test_progress_not_a_tty():
    out, clock = io.StringIO(), FakeClock()
    with Progress(200, stream=out, label="copy", clock=clock) as bar:
        for n in range(1, 201):
            clock.now += 0.5
            bar.update(n, loss=1.0 / n)
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    # After 20 steps of 0.5 s: 10 s elapsed, 180 steps left at 0.5 s each.
    assert lines[0] == "copy  [#.........]  10%  20/200  loss 0.05  10.0 s  ETA 90.0 s"
    assert lines[4].startswith("copy  [#####.....]  50%  100/200  loss 0.01  ")
    assert lines[-1] == "copy  [##########]  100%  200/200  loss 0.005  100.0 s"
    assert "\r" not in out.getvalue()


def test_progress_not_a_tty_writes_final_state_on_close():
    out, clock = io.StringIO(), FakeClock()
    bar = Progress(1000, stream=out, clock=clock)
    clock.now += 3.0
    bar.update(150, loss=0.5, acc=0.25)
    clock.now += 0.2
    bar.update(160, loss=0.4)
    bar.close()
    bar.close()
    # ETA: 3 s / 150 steps * 850 steps = 17 s, then 3.2 / 160 * 840 = 16.8 s.
    assert out.getvalue().splitlines() == [
        "[#.........]  15%  150/1000  loss 0.5  acc 0.25  3.0 s  ETA 17.0 s",
        "[#.........]  16%  160/1000  loss 0.4  acc 0.25  3.2 s  ETA 16.8 s",
    ]


def test_progress_tty_redraws_in_place():
    out, clock = TTYStream(), FakeClock()
    with Progress(4, stream=out, label="run", min_interval=1.0, clock=clock) as bar:
        bar.update(1, loss=12.5)
        clock.now += 0.5
        bar.update(2, loss=1.0)  # within min_interval: not drawn
        clock.now += 0.5
        bar.update(3, loss=0.1)
        clock.now += 0.1
        bar.update(4, loss=0.01)  # the end is always drawn
    text = out.getvalue()
    assert text.endswith("\n")
    frames = text[:-1].split("\r")[1:]
    assert [f.rstrip() for f in frames] == [
        "run  [##........]  25%  1/4  loss 12.5  0.0 s  ETA 0.0 s",
        "run  [#######...]  75%  3/4  loss 0.1  1.0 s  ETA 0.3 s",
        "run  [##########]  100%  4/4  loss 0.01  1.1 s",
        "run  [##########]  100%  4/4  loss 0.01  1.1 s",
    ]
    # Each frame covers the whole previous one.
    assert all(len(b) >= len(a.rstrip()) for a, b in itertools.pairwise(frames))


def test_progress_zero_total_and_bad_total():
    out = io.StringIO()
    with Progress(0, stream=out, clock=FakeClock()) as bar:
        bar.update(0)
    assert out.getvalue() == "[##########]  100%  0/0  0.0 s\n"
    with pytest.raises(ValueError, match="total must be >= 0, got -1"):
        Progress(-1)
