"""Run a sweep so that nothing is lost.

``DIR/runs/<key>/`` holds each finished run (renamed into place whole, see
:mod:`fpttsim.sweeps.task`) and is the record of truth; ``DIR/results.jsonl``
has one line per finished run, appended and flushed as each arrives. On
start, the runner reads ``runs/``, rewrites ``results.jsonl`` from it when
the file is missing, truncated or disagrees with it, and submits only the
runs not yet finished; so an interrupted sweep, rerun, picks up where it
stopped and never runs a finished run twice.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from fpttsim.sweeps.spec import Sweep
from fpttsim.sweeps.task import read_summary

RESULTS = "results.jsonl"


@dataclass
class SweepOutcome:
    """What a sweep command did.

    Attributes
    ----------
    total
        Runs in the sweep.
    skipped
        Runs finished before this invocation.
    done, failed
        Runs finished now, and of those the failed ones.
    repaired
        Whether ``results.jsonl`` had to be rewritten from ``runs/``.
    summaries
        Every finished run's summary, by key.
    """

    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    repaired: bool = False
    summaries: dict = field(default_factory=dict)


def finished_runs(out: Path) -> dict[str, dict]:
    """Summaries of the runs under ``out/runs``, by key."""
    runs = out / "runs"
    found = {}
    if runs.is_dir():
        for folder in runs.iterdir():
            if folder.name.startswith("."):
                continue  # a run in progress, or left by a killed worker
            summary = read_summary(folder)
            if summary is not None and summary.get("key") == folder.name:
                found[folder.name] = summary
    return found


def _read_lines(path: Path) -> tuple[list[dict], bool]:
    """The parsed lines of ``results.jsonl`` and whether every line parsed."""
    if not path.exists():
        return [], False
    lines, clean = [], True
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            clean = False
    return lines, clean


def repair(out: Path) -> tuple[dict[str, dict], bool]:
    """Make ``results.jsonl`` list exactly the finished runs, once each.

    Returns the finished runs and whether the file was rewritten.
    """
    finished = finished_runs(out)
    path = out / RESULTS
    lines, clean = _read_lines(path)
    keys = [line.get("key") for line in lines]
    if clean and path.exists() and sorted(keys) == sorted(finished):
        return finished, False
    if not finished and not path.exists():
        return finished, False
    text = "".join(json.dumps(finished[k], sort_keys=True) + "\n" for k in finished)
    tmp = path.with_name(f".{RESULTS}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return finished, True


def _append(path: Path, summary: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(summary, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run_sweep(
    sweep: Sweep,
    out: str | os.PathLike,
    executor,
    progress: bool = True,
    retry_failed: bool = False,
) -> SweepOutcome:
    """Run every run of ``sweep`` not yet finished in ``out``.

    Parameters
    ----------
    sweep
        The loaded sweep.
    out
        The sweep's folder.
    executor
        A :class:`fpttsim.sweeps.executors.LocalPool` or ``DaskExecutor``.
    progress
        Whether to show a progress line on stderr.
    retry_failed
        Whether runs that failed before are run again.
    """
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    _write_plan(out, sweep)
    finished, repaired = repair(out)
    if retry_failed:
        for key, summary in list(finished.items()):
            if summary.get("status") == "failed":
                _forget(out, key)
                del finished[key]
        finished, _ = repair(out)
    wanted = {run.key for run in sweep.runs}
    outcome = SweepOutcome(
        total=len(sweep.runs),
        skipped=len(wanted & set(finished)),
        repaired=repaired,
        summaries={k: v for k, v in finished.items() if k in wanted},
    )
    tasks = [
        {
            "key": run.key,
            "axes": run.axes,
            "overrides": run.overrides,
            "base": sweep.base,
            "command": sweep.spec.command,
            "metrics": sweep.spec.collected(),
            "out": os.fspath(out.resolve()),
        }
        for run in sweep.runs
        if run.key not in finished
    ]
    slots = getattr(executor, "slots", lambda: 1)()
    bar = _Progress(len(tasks), outcome.skipped, outcome.total, slots, enabled=progress)
    try:
        for summary in executor.run(tasks):
            if summary["key"] in outcome.summaries:
                continue  # a run a lost worker had finished after all
            if summary.get("error", "").startswith(("its worker", "KilledWorker")):
                _record_lost(out, summary)
            _append(out / RESULTS, summary)
            outcome.summaries[summary["key"]] = summary
            outcome.done += 1
            outcome.failed += summary.get("status") != "done"
            bar.update(outcome.done, outcome.failed)
    finally:
        bar.close()
        executor.close()
    return outcome


def _record_lost(out: Path, summary: dict) -> None:
    """Give a run lost with its workers a folder, so that a rerun skips it."""
    folder = out / "runs" / summary["key"]
    tmp = out / "runs" / f".{summary['key']}.lost"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        os.replace(tmp, folder)
    except OSError:
        pass


def _forget(out: Path, key: str) -> None:
    import shutil

    shutil.rmtree(out / "runs" / key, ignore_errors=True)


def _write_plan(out: Path, sweep: Sweep) -> None:
    plan = {
        "name": sweep.spec.name,
        "file": sweep.file,
        "base": sweep.base,
        "command": sweep.spec.command,
        "axes": sweep.spec.axes(),
        "labels": sweep.spec.labels,
        "metrics": sweep.spec.collected(),
        "runs": [{"key": r.key, "axes": r.axes} for r in sweep.runs],
    }
    tmp = out / f".sweep.json.{os.getpid()}"
    tmp.write_text(json.dumps(plan, indent=2))
    os.replace(tmp, out / "sweep.json")


class _Progress:
    """``runs 12/40 done (1 failed), 2 running, 26 waiting, ETA 80s`` on stderr."""

    def __init__(
        self, todo: int, skipped: int, total: int, slots: int, enabled: bool
    ) -> None:
        self.todo, self.skipped, self.total, self.slots = todo, skipped, total, slots
        self.enabled = enabled and todo > 0
        self.start = time.perf_counter()
        self.update(0, 0)

    def update(self, done: int, failed: int) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = elapsed / done * (self.todo - done) if done else float("nan")
        eta_text = "?" if eta != eta else f"{eta:.0f}s"
        running = min(self.slots, self.todo - done)
        sys.stderr.write(
            f"\rruns {self.skipped + done}/{self.total} done ({failed} failed), "
            f"{running} running, {self.todo - done - running} waiting, "
            f"ETA {eta_text}   "
        )
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()
