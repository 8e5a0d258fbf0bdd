"""The public Python API: load_scenario, run, gradcheck and the errors."""

import doctest
import importlib
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

import fpttsim
import fpttsim.api
from fpttsim import report

OUTPUTS = {
    "result.json",
    "metrics.csv",
    "learning_curve.png",
    "memory.png",
    "parameters.npz",
}


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "r"
    scenario = fpttsim.load_scenario("quickstart", {"training.steps": 20})
    return fpttsim.run(scenario, out=out), out


def test_run_with_out_writes_the_outputs(short_run):
    result, out = short_run
    assert isinstance(result, fpttsim.RunResult)
    assert result.out == out
    assert {p.name for p in out.iterdir()} == OUTPUTS
    assert sorted(p.name for p in result.files) == sorted(OUTPUTS)
    assert all(p.parent == out for p in result.files)


def test_run_result_to_dict_is_what_result_json_holds(short_run):
    result, out = short_run
    written = json.loads((out / "result.json").read_text())
    assert report.jsonable(result.to_dict()) == written
    assert json.loads(result.to_json()) == written
    assert written["scenario"]["training"]["steps"] == 20


def test_run_result_parameters_are_the_trained_ones(short_run):
    result, out = short_run
    theta = np.load(out / "parameters.npz")["theta"]
    np.testing.assert_array_equal(theta, result.training.theta)
    assert result.training.final["loss"] < result.training.initial["loss"]


def test_run_without_out_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scenario = fpttsim.load_scenario("quickstart", {"training.steps": 20})
    result = fpttsim.run(scenario)
    assert result.out is None
    assert result.files == []
    assert list(tmp_path.iterdir()) == []


def test_run_accepts_a_name_with_overrides_and_calls_back(short_run):
    seen = []
    result = fpttsim.run(
        "quickstart",
        overrides=["training.steps=20"],
        on_step=lambda step, row: seen.append(step),
    )
    assert seen and seen[-1] == 20
    assert seen == sorted(seen)
    # The same scenario as the Scenario object above: the same training.
    earlier, _ = short_run
    assert result.training.final == earlier.training.final
    np.testing.assert_array_equal(result.training.theta, earlier.training.theta)


def test_run_refuses_overrides_next_to_a_scenario_object():
    scenario = fpttsim.load_scenario("quickstart")
    with pytest.raises(TypeError, match="load_scenario"):
        fpttsim.run(scenario, overrides={"training.steps": 5})


def test_gradcheck_passes_on_a_shipped_scenario():
    result = fpttsim.gradcheck("gradcheck-diagonal")
    assert isinstance(result, fpttsim.GradcheckResult)
    assert result.passed is True
    document = json.loads(result.to_json())
    assert document["passed"] is True
    assert document["scenario"] == "gradcheck-diagonal"
    assert document["algorithms"]["fptt"]["rel_error"] <= 1e-7


def test_gradcheck_with_overrides_changes_the_window():
    default = fpttsim.gradcheck("gradcheck-diagonal")
    other = fpttsim.gradcheck("gradcheck-diagonal", {"seed": 5})
    assert other.passed is True
    assert other.loss != default.loss


def test_gradcheck_bad_profile_is_bad_input():
    with pytest.raises(fpttsim.ConfigError, match="nosuchprofile") as info:
        fpttsim.gradcheck("gradcheck-lru", {"profile": "nosuchprofile"})
    assert info.value.key == "profile"


def test_errors_are_importable_from_the_package():
    for name in ("ConfigError", "NumericalError", "CheckFailed", "FpttsimError"):
        assert name in fpttsim.__all__
        assert isinstance(getattr(fpttsim, name), type)
    assert issubclass(fpttsim.ConfigError, fpttsim.FpttsimError)
    assert issubclass(fpttsim.ConfigError, ValueError)
    assert issubclass(fpttsim.NumericalError, fpttsim.FpttsimError)
    assert issubclass(fpttsim.CheckFailed, fpttsim.FpttsimError)


def test_load_scenario_error_is_a_config_error():
    with pytest.raises(fpttsim.FpttsimError, match="model.hidden"):
        fpttsim.load_scenario("quickstart", {"model.hidden": 0})


def test_run_plot_is_the_learning_curve_it_wrote(short_run, tmp_path):
    import matplotlib.pyplot as plt

    result, out = short_run
    rows = result.training.rows
    fig = result.plot()
    left, right = fig.axes
    assert left.get_title() == "quickstart: fptt"
    assert left.get_xlabel() == "step"
    # no held-out curve unless training.eval_every asked for one
    losses = {line.get_label(): line for line in left.lines}
    assert set(losses) == {"loss", "online_loss"}
    for name, line in losses.items():
        np.testing.assert_array_equal(line.get_xdata(), [r["step"] for r in rows])
        np.testing.assert_array_equal(line.get_ydata(), [r[name] for r in rows])
    (accuracy,) = right.lines
    assert accuracy.get_label() == "accuracy"
    np.testing.assert_array_equal(accuracy.get_ydata(), [r["accuracy"] for r in rows])
    # the file the run wrote is this figure, and pyplot knows of neither
    again = report.write_figure(fig, tmp_path / "curve.png")
    assert again.read_bytes() == (out / "learning_curve.png").read_bytes()
    assert plt.get_fignums() == []


def test_run_plot_adds_the_held_out_curves_when_measured():
    scenario = fpttsim.load_scenario(
        "quickstart", {"training.steps": 20, "training.eval_every": 10}
    )
    result = fpttsim.run(scenario)
    held = [r for r in result.training.rows if "eval_loss" in r]
    assert [r["step"] for r in held] == [10, 20]
    left, right = result.plot().axes
    lines = {line.get_label(): line for line in left.lines + right.lines}
    assert set(lines) == {
        "loss",
        "online_loss",
        "eval_loss",
        "accuracy",
        "eval_accuracy",
    }
    for name in ("eval_loss", "eval_accuracy"):
        np.testing.assert_array_equal(lines[name].get_xdata(), [10, 20])
        np.testing.assert_array_equal(lines[name].get_ydata(), [r[name] for r in held])
    assert right.get_ylabel() == "accuracy, eval_accuracy"


def test_gradcheck_plot_has_each_arrays_error_per_algorithm():
    result = fpttsim.gradcheck("gradcheck-diagonal", {"profile": "bf16-systolic"})
    (ax,) = result.plot().axes
    assert ax.get_xscale() == "log"
    assert (
        ax.get_title() == "gradcheck-diagonal on bf16-systolic: each array's gradient"
    )
    arrays = list(result.algorithms["fptt"].by_parameter)
    assert [label.get_text() for label in ax.get_yticklabels()] == arrays
    assert [bars.get_label() for bars in ax.containers] == list(result.algorithms)
    for bars in ax.containers:
        by_parameter = result.algorithms[bars.get_label()].by_parameter
        errors = [1.0 - by_parameter[a]["cosine"] for a in arrays]
        # bf16 loses far more than 1e-16: no bar sits on the floor
        assert min(errors) > 1e-9
        np.testing.assert_allclose([bar.get_width() for bar in bars], errors)


# every module whose docstrings hold examples
EXAMPLES = [
    "fpttsim.api",
    "fpttsim.budget",
    "fpttsim.config.loader",
    "fpttsim.config.profile",
    "fpttsim.config.scenario",
    "fpttsim.errors",
    "fpttsim.gradcheck",
    "fpttsim.methods",
    "fpttsim.mixed",
    "fpttsim.nir_export",
    "fpttsim.study",
]


@pytest.mark.parametrize("name", EXAMPLES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    outcome = doctest.testmod(module, verbose=False, report=True)
    # Every example in the module was found and run, none skipped.
    examples = inspect.getsource(module).count(">>> ")
    assert outcome.attempted == examples > 0
    assert outcome.failed == 0


def test_every_module_with_examples_is_tested():
    package = Path(fpttsim.__file__).parent
    found = {
        ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for path in package.rglob("*.py")
        if ">>> " in path.read_text()
    }
    assert found == set(EXAMPLES)


def test_every_public_function_and_class_has_a_runnable_example():
    for name in fpttsim.__all__:
        public = getattr(fpttsim, name)
        if inspect.ismodule(public):
            continue
        doc = inspect.getdoc(public) or ""
        assert "Examples\n--------\n" in doc and ">>> " in doc, name
        # its module's examples run in test_docstring_examples_run
        assert public.__module__ in EXAMPLES, (name, public.__module__)


def test_the_readmes_python_names_are_public():
    readme = (Path(fpttsim.__file__).parent.parent / "README.md").read_text()
    section = readme.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    names = set(re.findall(r"\bfpttsim\.(\w+)", section))
    assert {"run", "budget", "BudgetError", "device"} <= names
    for name in names:
        assert name in fpttsim.__all__, name
    for name in ("plan", "Arena", "CostModel", "Clock", "Device"):
        assert name in fpttsim.device.__all__, name
