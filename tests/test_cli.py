"""The ``fpttsim`` command line, run as a user runs it.

Most tests call :func:`fpttsim.cli.main` in this process (the Numba kernels
compile once per process, which keeps the file fast); the ones about what a
user sees in a terminal (separate streams, no traceback, exit status of the
process) run ``python -m fpttsim`` as a subprocess.
"""

import csv
import functools
import json
import re
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.config import find_shipped

STEPS = 40  # with log_every 20: rows for steps 20 and 40
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RESULT_KEYS = {
    "name",
    "seed",
    "scenario",
    "profile",
    "initial",
    "final",
    "numerical_events",
    "timings",
    "versions",
}


def strict_json(text: str):
    """Parse ``text`` as JSON, refusing NaN and Infinity (not strict JSON)."""

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def fpttsim_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fpttsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the command line in this process; returns (exit code, out, err)."""
    capsys.readouterr()  # drop whatever earlier code printed
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse exits on its own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def write(folder: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --- fpttsim run ------------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
    """One real ``fpttsim run`` in a subprocess, shared by the tests below."""
    cwd = tmp_path_factory.mktemp("run")
    proc = fpttsim_process(
        "run", "quickstart", "--out", "D", "--set", f"training.steps={STEPS}", cwd=cwd
    )
    return proc, cwd / "D"


def test_run_exits_0_and_writes_every_output(quickstart_run):
    proc, out = quickstart_run
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    result = strict_json((out / "result.json").read_text())
    assert RESULT_KEYS <= result.keys()
    assert result["name"] == "quickstart"
    assert result["seed"] == 0
    assert result["scenario"]["training"]["steps"] == STEPS
    assert result["profile"]["name"] == "fp64-reference"
    assert result["final"]["loss"] < result["initial"]["loss"]
    assert result["versions"]["fpttsim"] == metadata.version("fpttsim")

    with (out / "metrics.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header[0] == "step"
    assert [row[0] for row in body] == ["20", "40"]
    loss = header.index("loss")
    assert all(np.isfinite(float(row[loss])) for row in body)

    assert (out / "learning_curve.png").read_bytes().startswith(PNG_SIGNATURE)
    with np.load(out / "parameters.npz") as npz:
        theta = npz["theta"]
    assert theta.dtype == np.float64 and theta.ndim == 1 and theta.size > 0
    assert np.all(np.isfinite(theta))


def test_run_keeps_results_on_stdout_and_progress_on_stderr(quickstart_run):
    proc, _ = quickstart_run
    assert "held-out loss" in proc.stdout
    # The final progress line reads "... 40/40 ...": on stderr, never stdout.
    assert f"{STEPS}/{STEPS}" in proc.stderr
    assert f"{STEPS}/{STEPS}" not in proc.stdout
    assert "held-out loss" not in proc.stderr


def test_run_json_prints_exactly_one_document(tmp_path, capsys):
    code, out, err = cli(
        capsys,
        "run",
        "quickstart",
        "--out",
        str(tmp_path / "D"),
        "--set",
        "training.steps=30",
        "--json",
    )
    assert code == 0, err
    document = strict_json(out)  # fails on any extra text around the document
    assert "final" in document
    assert document["final"]["loss"] < document["initial"]["loss"]
    assert document == strict_json((tmp_path / "D" / "result.json").read_text())
    assert "30/30" in err


def test_run_without_out_writes_under_runs_in_the_working_directory(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "run", "quickstart", "--set", "training.steps=30")
    assert code == 0, err

    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1
    assert re.fullmatch(r"quickstart-\d{8}-\d{6}", folders[0].name)
    assert (folders[0] / "result.json").is_file()
    assert f"runs/{folders[0].name}" in out


def test_run_is_reproducible_bit_for_bit_across_processes(
    quickstart_run, tmp_path, capsys
):
    # The same scenario, once in the subprocess above and once here.
    proc, first = quickstart_run
    assert proc.returncode == 0, proc.stderr
    second = tmp_path / "again"
    code, _, err = cli(
        capsys,
        "run",
        "quickstart",
        "--out",
        str(second),
        "--set",
        f"training.steps={STEPS}",
    )
    assert code == 0, err

    results = [strict_json((d / "result.json").read_text()) for d in (first, second)]
    assert results[0]["final"] == results[1]["final"]
    assert results[0]["initial"] == results[1]["initial"]
    thetas = [np.load(d / "parameters.npz")["theta"] for d in (first, second)]
    assert thetas[0].tobytes() == thetas[1].tobytes()

    # Not vacuous: another seed trains other parameters.
    other = tmp_path / "seed1"
    code, _, err = cli(
        capsys,
        "run",
        "quickstart",
        "--out",
        str(other),
        "--set",
        f"training.steps={STEPS}",
        "--set",
        "seed=1",
    )
    assert code == 0, err
    assert not np.array_equal(np.load(other / "parameters.npz")["theta"], thetas[0])


# --- fpttsim gradcheck ------------------------------------------------------

# Parameter arrays of each cell, of the feed-forward block after each layer,
# and of the readout, as named in by_parameter.
CELL_ARRAYS = {
    "lru": ["nu_log", "theta_log", "gamma_log", "B"],
    "diagonal": ["nu_log", "gamma_log", "B"],
    "rnn": ["W", "U", "b"],
    "gru": ["Wz", "Wr", "Wn", "Uz", "Ur", "Un", "bz", "br", "bn"],
}
BLOCK_ARRAYS = ["C", "D", "W1", "b1", "W2", "b2"]


def expected_arrays(cell: str, layers: int) -> set[str]:
    names = {"readout.W", "readout.b"}
    for layer in range(1, layers + 1):
        names |= {f"layer{layer}.cell.{a}" for a in CELL_ARRAYS[cell]}
        names |= {f"layer{layer}.block.{a}" for a in BLOCK_ARRAYS}
    return names


SHIPPED_GRADCHECKS = {
    # name: (cell, layers)
    "gradcheck-lru": ("lru", 1),
    "gradcheck-diagonal": ("diagonal", 1),
    "gradcheck-rnn": ("rnn", 1),
    "gradcheck-gru": ("gru", 1),
    "gradcheck-deep-lru": ("lru", 3),
}
GRADCHECK_CASES = [(name, ()) for name in SHIPPED_GRADCHECKS] + [
    (name, (override,))
    for name in ("gradcheck-lru", "gradcheck-gru")
    for override in ("seed=3", "model.hidden=8", "task.length=20")
]


@functools.cache
def default_loss(name: str) -> float:
    return fpttsim.gradcheck(name).loss


@pytest.mark.parametrize(
    ("name", "overrides"),
    GRADCHECK_CASES,
    ids=[f"{n}{''.join(' ' + o for o in s)}" for n, s in GRADCHECK_CASES],
)
def test_gradcheck_json_exact_algorithms_match_bptt(capsys, name, overrides):
    sets = [arg for override in overrides for arg in ("--set", override)]
    code, out, err = cli(capsys, "gradcheck", name, "--json", *sets)
    assert code == 0, err
    result = strict_json(out)
    cell, layers = SHIPPED_GRADCHECKS[name]

    assert result["scenario"] == name
    assert result["reference"] == "bptt"
    assert result["passed"] is True
    if overrides:
        # The override reached the computation: the window's loss moved.
        assert result["loss"] != default_loss(name)

    algorithms = result["algorithms"]
    fptt = algorithms["fptt"]
    assert fptt["exact"] is True and fptt["passed"] is True
    assert fptt["modes"] == ["fptt"] * layers
    assert fptt["cosine"] >= 1 - 1e-10
    assert fptt["rel_error"] <= 1e-7
    # The relative end residual of FPTT's backward-in-forward solve is
    # rounding-sized on these well-conditioned windows.
    assert 0 <= fptt["residual"] <= 1e-10

    # Spatial BP truncates the gradient: reported, not judged.
    spatial = algorithms["spatial"]
    assert spatial["exact"] is False and spatial["passed"] is None
    assert spatial["rel_error"] > 1e-3

    # RTRL is exact and checked whenever it applies (one recurrent layer).
    if layers == 1:
        assert algorithms["rtrl"]["passed"] is True
        assert algorithms["rtrl"]["rel_error"] <= 1e-7
    else:
        assert "rtrl" not in algorithms

    for check in algorithms.values():
        assert set(check["by_parameter"]) == expected_arrays(cell, layers)
    for entry in fptt["by_parameter"].values():
        assert entry["rel_error"] <= 1e-7

    fd = result["finite_difference"]
    assert fd["passed"] is True
    assert fd["rel_error"] <= 1e-6
    assert len(fd["analytic"]) == len(fd["numeric"]) == fd["directions"]


def test_gradcheck_table_has_one_line_per_algorithm(capsys):
    code, out, err = cli(capsys, "gradcheck", "gradcheck-lru")
    assert code == 0, err
    lines = out.splitlines()
    for name in ("fptt", "spatial", "rtrl"):
        rows = [line for line in lines if line.split()[:1] == [name]]
        assert len(rows) == 1, out
    assert [line for line in lines if line.split()[:1] == ["fptt"]][0].endswith(
        "exact: ok"
    )
    assert "ok" in out
    assert "FAILED" not in out


# FPTT carries the inverse of the recurrent Jacobian forward through the
# window. Here W's singular values lie in [0.3, 0.5] and tanh' <= 1, so every
# step's Jacobian shrinks every direction by at least 2 and its inverse grows
# by at least 2: over T = 50 steps float64 rounding (1e-16) is amplified by at
# least 2^50 ~ 1e15, and the gradient is lost (relative error ~1e11 when this
# test was written), while RTRL and BPTT, which never invert, agree.
ILL_CONDITIONED = """\
name: ill-conditioned-rnn
seed: 0
task: {kind: sine, length: 50}
model: {cell: rnn, layers: 1, hidden: 32, r_min: 0.3, r_max: 0.5}
gradcheck: {directions: 4, epsilon: 1.0e-5}
"""


def test_gradcheck_failing_exact_check_exits_1(tmp_path, capsys):
    path = write(tmp_path, ILL_CONDITIONED)

    code, out, err = cli(capsys, "gradcheck", str(path), "--json")
    assert code == 1, err
    result = strict_json(out)
    assert result["passed"] is False
    fptt = result["algorithms"]["fptt"]
    assert fptt["passed"] is False
    assert float(fptt["rel_error"]) > 1.0
    # The reference itself is sound: only FPTT failed.
    assert result["algorithms"]["rtrl"]["passed"] is True
    assert result["finite_difference"]["passed"] is True

    code, out, err = cli(capsys, "gradcheck", str(path))
    assert code == 1
    assert "FAILED" in out
    fptt_line = [line for line in out.splitlines() if line.split()[:1] == ["fptt"]]
    assert fptt_line[0].endswith("exact: FAILED")


def test_gradcheck_of_shipped_rnn_on_sine_via_section_override(capsys):
    # The whole task section replaced from the command line: the copy task's
    # own keys (symbols, alphabet) go with it.
    code, out, _ = cli(
        capsys,
        "gradcheck",
        "gradcheck-rnn",
        "--json",
        "--set",
        "task={kind: sine, length: 50}",
        "--set",
        "model={cell: rnn, hidden: 32, r_min: 0.3, r_max: 0.5}",
    )
    assert code == 1
    assert float(strict_json(out)["algorithms"]["fptt"]["rel_error"]) > 1.0


# --- bad input --------------------------------------------------------------

SCENARIO = """\
name: bad
seed: 0
task:
  kind: copy
  length: 50
model:
  cell: lru
  hidden: 8
"""


def bad_file(tmp_path: Path, old: str, new: str) -> Path:
    assert old in SCENARIO
    return write(tmp_path, SCENARIO.replace(old, new))


def case_unknown_key(tmp_path):
    path = bad_file(tmp_path, "  hidden: 8\n", "  hidden: 8\n  hiden: 4\n")
    return [str(path)], [f"{path}:9: model.hiden: unknown key 'hiden'", "'hidden'"]


def case_wrong_type(tmp_path):
    path = bad_file(tmp_path, "hidden: 8", "hidden: many")
    return [str(path)], [f"{path}:8: model.hidden: expected an integer", "'many'"]


def case_out_of_range(tmp_path):
    path = bad_file(tmp_path, "  length: 50\n", "  length: 0\n")
    return [str(path)], [f"{path}:5: task.length: expected a number >= 1", "got 0"]


def case_invalid_yaml(tmp_path):
    # The bracket opened on line 4 is still open when line 5's colon arrives.
    path = bad_file(tmp_path, "  kind: copy\n", "  kind: [copy\n")
    return [str(path)], [f"{path}:5: ", "not valid", "starts on line 4"]


def case_missing_file(tmp_path):
    path = tmp_path / "missing.yaml"
    return [str(path)], [f"{path}: ", "does not exist"]


def case_set_not_an_integer(tmp_path):
    return (
        ["quickstart", "--set", "model.hidden=abc"],
        ["--set: model.hidden: expected an integer", "'abc'"],
    )


def case_set_unknown_key(tmp_path):
    return (
        ["quickstart", "--set", "model.nosuchkey=1"],
        ["--set: model.nosuchkey: unknown key 'nosuchkey'", "hidden"],
    )


def case_set_without_equals(tmp_path):
    return (
        ["quickstart", "--set", "nodots"],
        ["--set: ", "key.path=value", "'nodots'"],
    )


def case_unknown_profile(tmp_path):
    return (
        ["quickstart", "--profile", "nosuchprofile"],
        ["profile", "'nosuchprofile'", "fp64-reference"],
    )


def case_rtrl_with_two_layers(tmp_path):
    return (
        [
            "quickstart",
            "--set",
            "learning.algorithm=rtrl",
            "--set",
            "model.layers=2",
        ],
        ["learning.algorithm", "rtrl", "2 layers"],
    )


def case_too_many_passes(tmp_path):
    return (
        ["quickstart", "--set", "learning.passes=5"],
        ["--set: learning.passes:", "model.layers + 1 = 2", "got 5"],
    )


BAD_INPUT = [
    case_unknown_key,
    case_wrong_type,
    case_out_of_range,
    case_invalid_yaml,
    case_missing_file,
    case_set_not_an_integer,
    case_set_unknown_key,
    case_set_without_equals,
    case_unknown_profile,
    case_rtrl_with_two_layers,
    case_too_many_passes,
]


def case_id(case) -> str:
    return case.__name__.removeprefix("case_")


@pytest.mark.parametrize("case", BAD_INPUT, ids=case_id)
def test_bad_input_exits_2_naming_where(tmp_path, capsys, case):
    args, fragments = case(tmp_path)
    code, out, err = cli(
        capsys, "run", *args, "--set", "training.steps=30", "--out", str(tmp_path)
    )
    assert code == 2
    assert "Traceback" not in err
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("fpttsim: error:")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("case", BAD_INPUT, ids=case_id)
def test_bad_input_error_is_the_first_thing_on_stderr(tmp_path, capsys, case):
    args, _ = case(tmp_path)
    code, _, err = cli(capsys, "run", *args, "--set", "training.steps=30")
    assert code == 2
    assert err.startswith("fpttsim: error:"), err


def test_unknown_profile_error_names_the_option_given(capsys):
    code, _, err = cli(capsys, "run", "quickstart", "--profile", "nosuchprofile")
    assert code == 2
    assert "--profile" in err
    assert "--set" not in err


@pytest.mark.parametrize("spelling", ["relative", "absolute"])
def test_invalid_profile_file_error_names_its_file_line_and_key(
    capsys, tmp_path, monkeypatch, spelling
):
    text = find_shipped("hardware_profiles", "loihi2").read_text()
    text = re.sub(r"add_pj: [0-9.e+-]+", "add_pj: abc", text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "add_pj: abc" in row)
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    monkeypatch.chdir(tmp_path)
    given = "mine.yaml" if spelling == "relative" else str(path)
    code, _, err = cli(capsys, "gradcheck", "gradcheck-lru", "--profile", given)
    assert code == 2
    assert f"mine.yaml:{line}: energy.add_pj: expected a number" in err


@pytest.mark.parametrize(
    "case",
    [case_unknown_key, case_invalid_yaml, case_rtrl_with_two_layers],
    ids=case_id,
)
def test_bad_input_in_a_real_process_has_no_traceback(tmp_path, case):
    args, fragments = case(tmp_path)
    proc = fpttsim_process("run", *args, "--set", "training.steps=30", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "fpttsim: error:" in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr
    assert proc.stdout == ""


def test_unknown_subcommand_exits_2(tmp_path):
    proc = fpttsim_process("frobnicate", cwd=tmp_path)
    assert proc.returncode == 2
    assert "frobnicate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_closed_stdout_pipe_ends_quietly(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "fpttsim", "scenarios"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Closed long before the interpreter has imported fpttsim, as `head -1`
    # closes it after the first line: every write then meets a broken pipe.
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err


def test_gradcheck_bad_input_exits_2(capsys):
    code, out, err = cli(capsys, "gradcheck", "gradcheck-lru", "--set", "seed=-1")
    assert code == 2
    assert out == ""
    assert err.startswith("fpttsim: error: --set: seed:")


# --- listings ---------------------------------------------------------------


def test_profiles_lists_the_shipped_profiles(capsys):
    code, out, _ = cli(capsys, "profiles")
    assert code == 0
    assert "fp64-reference" in [line.split()[0] for line in out.splitlines()]


def test_profiles_name_prints_the_yaml_file(capsys):
    code, out, _ = cli(capsys, "profiles", "fp64-reference")
    assert code == 0
    assert out == find_shipped("hardware_profiles", "fp64-reference").read_text()
    assert "name: fp64-reference" in out


def test_profiles_unknown_name_exits_2(capsys):
    code, _, err = cli(capsys, "profiles", "nosuchprofile")
    assert code == 2
    assert err.startswith("fpttsim: error:")


def test_scenarios_lists_quickstart_and_the_gradchecks(capsys):
    code, out, _ = cli(capsys, "scenarios")
    assert code == 0
    names = out.splitlines()
    assert "quickstart" in names
    assert set(SHIPPED_GRADCHECKS) <= set(names)


# The device: budget, resume --------------------------------------------------


def test_run_over_budget_exits_1_with_the_breakdown(capsys, tmp_path):
    code, out, err = cli(
        capsys, "run", "quickstart", "--profile", "cortex-m4f", "--out",
        str(tmp_path / "r"), "--set", "learning.algorithm=bptt",
        "--set", "task.length=2000",
    )  # fmt: skip
    assert code == 1
    assert "does not fit the device" in err
    assert re.search(r"activations\s+[\d,]+ B", err)
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_run_resume_continues_to_the_same_result(capsys, tmp_path):
    out = tmp_path / "r"
    args = ["--set", "training.steps=20", "--set", "training.checkpoint_every=10"]
    code, _, _ = cli(capsys, "run", "quickstart", "--out", str(out), *args)
    assert code == 0
    first = json.loads((out / "result.json").read_text())
    # resuming from the last checkpoint (after the last update) redoes nothing
    # but the final evaluation, and must give the same figures
    code, _, err = cli(capsys, "run", "--resume", str(out))
    assert code == 0, err
    again = json.loads((out / "result.json").read_text())
    assert again["final"] == first["final"]
    assert again["resumed_from_step"] == 20
    assert again["scenario_file"] == first["scenario_file"]


def test_run_needs_a_scenario_or_resume(capsys):
    code, _, err = cli(capsys, "run")
    assert code == 2
    assert "expected a scenario" in err and "--resume DIR" in err


def test_resume_without_checkpoint_exits_2(capsys, tmp_path):
    code, _, err = cli(capsys, "run", "--resume", str(tmp_path))
    assert code == 2
    assert "no checkpoint in" in err and "Traceback" not in err
