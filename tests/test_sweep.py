"""Sweeps: the same results on every executor, and nothing lost.

Real executors only: a local process pool, a Dask ``LocalCluster`` of two
worker processes, and a Dask scheduler and two workers started as separate
processes, as on a cluster. Workers are killed and the sweep process is
interrupted for real.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fpttsim.cli import main
from fpttsim.errors import ConfigError
from fpttsim.sweeps import (
    DaskExecutor,
    LocalPool,
    finished_runs,
    load_sweep,
    run_sweep,
    sweep_report,
)

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "scenarios" / "sweeps" / "smoke.yaml"
METHODS_SWEEP = ROOT / "scenarios" / "sweeps" / "fptt-methods.yaml"
BIN = Path(sys.executable).parent


def lines_of(out: Path) -> list[dict]:
    return [json.loads(t) for t in (out / "results.jsonl").read_text().splitlines()]


def metrics_by_key(out: Path) -> dict:
    return {line["key"]: line["metrics"] for line in lines_of(out)}


def assert_complete(out: Path, sweep) -> None:
    keys = [line["key"] for line in lines_of(out)]
    assert sorted(keys) == sorted(r.key for r in sweep.runs)  # each run once
    assert all(line["status"] == "done" for line in lines_of(out))
    assert set(finished_runs(out)) == set(keys)


@pytest.fixture(scope="module")
def pool_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    sweep = load_sweep(SMOKE)
    outcome = run_sweep(sweep, out, LocalPool(2), progress=False)
    assert outcome.done == len(sweep.runs) == 12
    assert_complete(out, sweep)
    return out


def test_dask_local_cluster_gives_the_pool_results_key_by_key(pool_result, tmp_path):
    sweep = load_sweep(SMOKE)
    run_sweep(sweep, tmp_path, DaskExecutor(workers=2), progress=False)
    assert_complete(tmp_path, sweep)
    assert metrics_by_key(tmp_path) == metrics_by_key(pool_result)


class KillingPool(LocalPool):
    """A pool that kills one of its own worker processes after the first run."""

    def run(self, tasks):
        killed = False
        for summary in super().run(tasks):
            if not killed and self._pool is not None:
                pid = next(iter(self._pool._processes))
                os.kill(pid, signal.SIGKILL)
                killed = True
            yield summary


class KillingDask(DaskExecutor):
    """A Dask executor that kills one worker process after the first run."""

    def run(self, tasks):
        killed = False
        for summary in super().run(tasks):
            if not killed:
                pids = self.client.run(os.getpid)
                os.kill(next(iter(pids.values())), signal.SIGKILL)
                killed = True
            yield summary


@pytest.mark.parametrize("make", [lambda: KillingPool(2), lambda: KillingDask(None, 2)])
def test_a_worker_killed_mid_sweep_loses_no_run(pool_result, tmp_path, make):
    sweep = load_sweep(SMOKE)
    run_sweep(sweep, tmp_path, make(), progress=False)
    assert_complete(tmp_path, sweep)
    assert metrics_by_key(tmp_path) == metrics_by_key(pool_result)


def fpttsim_command(*args) -> list[str]:
    return [sys.executable, "-m", "fpttsim", *args]


def test_an_interrupted_sweep_finishes_without_running_a_run_twice(
    pool_result, tmp_path
):
    command = fpttsim_command(
        "sweep", str(SMOKE), "--out", str(tmp_path), "--workers", "1"
    )
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    results = tmp_path / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "run the same command to finish" in err
    before = {k: s["started"] for k, s in finished_runs(tmp_path).items()}
    assert 3 <= len(before) < 12

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(before)} already done" in rerun.stdout
    sweep = load_sweep(SMOKE)
    assert_complete(tmp_path, sweep)
    after = finished_runs(tmp_path)
    assert all(after[k]["started"] == started for k, started in before.items())
    assert metrics_by_key(tmp_path) == metrics_by_key(pool_result)


def test_a_corrupt_results_file_is_repaired_from_the_runs(pool_result, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(pool_result, out)
    text = (out / "results.jsonl").read_text().splitlines()
    # a line lost, a line cut short, a line twice
    (out / "results.jsonl").write_text(
        "\n".join([*text[1:5], text[5][:40], *text[6:], text[7]]) + "\n"
    )
    outcome = run_sweep(load_sweep(SMOKE), out, LocalPool(1), progress=False)
    assert outcome.repaired and outcome.done == 0 and outcome.skipped == 12
    assert_complete(out, load_sweep(SMOKE))


def write_sweep(tmp_path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    # cortex-m0plus's 20 KiB cannot hold BPTT's tape at T = 400: the device
    # refuses that run; the others train
    path = write_sweep(
        tmp_path,
        "name: mixed\nbase: quickstart\n"
        "set: {model.hidden: 8, training.steps: 5, training.held_out: 4,\n"
        "      profile: cortex-m0plus, task.length: 400}\n"
        "grid: {learning.algorithm: [spatial, bptt]}\n",
    )
    out = tmp_path / "out"
    outcome = run_sweep(load_sweep(path), out, LocalPool(2), progress=False)
    status = {s["axes"]["learning.algorithm"]: s for s in outcome.summaries.values()}
    assert status["spatial"]["status"] == "done"
    assert status["bptt"]["status"] == "failed"
    assert "does not fit" in status["bptt"]["error"]
    # a rerun keeps the failure instead of running it again
    again = run_sweep(load_sweep(path), out, LocalPool(1), progress=False)
    assert again.done == 0 and again.skipped == 2


def test_sweep_file_errors_name_the_file_line_and_key(tmp_path, capsys):
    path = write_sweep(
        tmp_path,
        "name: bad\nbase: quickstart\ngrid:\n  model.hiden: [8, 16]\n",
    )
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert (info.value.file, info.value.line) == (str(path), 4)
    assert info.value.key == "grid.model.hiden"
    path = write_sweep(
        tmp_path,
        "name: bad\nbase: quickstart\nzip:\n  model.hidden: [8, 16]\n"
        "  learning.lr: [0.1]\n",
    )
    assert main(["sweep", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "equal lengths" in capsys.readouterr().err


def test_dry_run_lists_the_runs_and_their_budget_verdicts(tmp_path, capsys):
    assert main(["sweep", str(SMOKE), "--out", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("to run") == 12 and "fits" in out
    assert not (tmp_path / "results.jsonl").exists()


def test_report_tabulates_and_plots(pool_result):
    files = sweep_report(pool_result)
    names = {f.name for f in files}
    assert {"results.csv", "summary.csv", "report_lines.png"} <= names
    assert "report_heatmap.png" in names
    summary = (pool_result / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 4  # lr x algorithm, seeds averaged


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scheduler_and_workers_started_by_hand(pool_result, tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [
        subprocess.Popen(
            [
                str(BIN / "dask"),
                "scheduler",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        time.sleep(3)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        str(BIN / "dask"),
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        command = fpttsim_command(
            "sweep", str(SMOKE), "--out", str(tmp_path), "--scheduler", address
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert_complete(tmp_path, load_sweep(SMOKE))
        assert metrics_by_key(tmp_path) == metrics_by_key(pool_result)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_a_gradcheck_sweep_reports_one_panel_per_profile(tmp_path):
    path = write_sweep(
        tmp_path,
        "name: gq\nbase: gradcheck-lru\ncommand: gradcheck\n"
        "set: {gradcheck.algorithms: [fptt], gradcheck.directions: 1}\n"
        "grid:\n  profile: [fp64-reference, bf16-systolic]\n"
        "  model.r_min: [0.5, 0.99]\n  task.length: [20, 60]\n"
        "labels: {profile: [fp64, bf16]}\n"
        "metrics: [algorithms.fptt.cosine]\n",
    )
    out = tmp_path / "out"
    outcome = run_sweep(load_sweep(path), out, LocalPool(2), progress=False)
    assert outcome.done == 8 and outcome.failed == 0
    cosines = {
        (s["axes"]["profile"], s["axes"]["model.r_min"], s["axes"]["task.length"]): s[
            "metrics"
        ]["algorithms.fptt.cosine"]
        for s in outcome.summaries.values()
    }
    assert all(c > 1 - 1e-10 for k, c in cosines.items() if k[0] == "fp64-reference")
    files = sweep_report(out, x="model.r_min", lines="task.length", panels="profile")
    assert "report_lines.png" in {f.name for f in files}
    with pytest.raises(ConfigError, match="--panels"):
        sweep_report(out, panels="model.hidden")


def test_a_missing_base_scenario_names_the_sweep_files_line(tmp_path):
    path = write_sweep(tmp_path, "name: x\nbase: no-such-scenario\ngrid: {seed: [1]}\n")
    with pytest.raises(ConfigError, match="neither a file") as info:
        load_sweep(path)
    assert (info.value.line, info.value.key) == (2, "base")


def test_the_shipped_methods_sweep_takes_whole_sections_as_axis_values(tmp_path):
    # the shipped file, cut to one point of r_min and T and one seed
    shipped = load_sweep(METHODS_SWEEP)
    spec = shipped.spec
    assert len(shipped.runs) == 2 * 5 * 2 * 6 * 2 * 3
    text = METHODS_SWEEP.read_text()
    text = text.replace("[0.5, 0.8, 0.9, 0.95, 0.99]", "[0.8]")
    text = text.replace("[100, 1000]", "[1000]").replace("seeds: 3", "seeds: 1")
    path = write_sweep(tmp_path, text)
    out = tmp_path / "out"
    outcome = run_sweep(load_sweep(path), out, LocalPool(2), progress=False)
    assert outcome.done == 24 and outcome.failed == 0
    cosine = {
        (
            s["axes"]["profile"],
            json.dumps(s["axes"]["learning.fptt"], sort_keys=True),
            json.dumps(s["axes"]["device.formats"]),
        ): s["metrics"]["algorithms.fptt.cosine"]
        for s in outcome.summaries.values()
    }
    # at r_min 0.8 and T = 1000 plain FPTT loses its gradient in fp32 and
    # eight segments keep it (0.8^-1000 overflows fp32; 0.8^-125 ~ 1e12)
    assert cosine["cortex-m4f", "{}", "null"] < 0.99
    assert cosine["cortex-m4f", '{"segments": 8}', "null"] > 0.9999
    files = sweep_report(out, x="model.r_min", lines="learning.fptt", panels="profile")
    assert "report_lines.png" in {f.name for f in files}
    assert spec.labels["learning.fptt"][0] == "plain"
