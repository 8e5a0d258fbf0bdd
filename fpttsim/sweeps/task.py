"""One run of a sweep, as a worker executes it.

A task is plain data (the base scenario's reference, the overrides, the
command, the metrics, the output folder), so that any worker process can run
it after compiling the kernels once from Numba's on-disk cache. The run
writes into a private folder and renames it to ``runs/<key>/`` when done, so
that a folder under that name is always a finished run, whatever killed the
process before.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path in nested dicts, or None where missing."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _result(command: str, scenario, folder: Path) -> dict:
    """Run the command, write its result into ``folder``, return it."""
    from fpttsim import api, report

    if command == "run":
        result = api.run(scenario, out=folder)
        return result.to_dict()
    if command == "gradcheck":
        data = api.gradcheck(scenario).to_dict()
    else:
        data = api.budget(scenario, simulate=False).to_dict()
    report.write_result_json(folder, data)
    return data


def execute(task: dict) -> dict:
    """Run one task; returns its summary (also written as ``summary.json``).

    A run that raises is a failed run: its summary holds the error, and the
    sweep goes on.
    """
    from fpttsim.config import load_scenario
    from fpttsim.report import jsonable

    out = Path(task["out"])
    final = out / "runs" / task["key"]
    scratch = out / "runs" / f".{task['key']}.{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = {
        "key": task["key"],
        "axes": task["axes"],
        "overrides": task["overrides"],
        "command": task["command"],
        "started": time.time(),
        "worker_pid": os.getpid(),
    }
    try:
        scenario = load_scenario(task["base"], task["overrides"])
        data = _result(task["command"], scenario, scratch)
        summary["status"] = "done"
        summary["metrics"] = {m: jsonable(lookup(data, m)) for m in task["metrics"]}
    except Exception as exc:  # noqa: BLE001 - a failed run is recorded, not raised
        summary["status"] = "failed"
        summary["error"] = f"{type(exc).__name__}: {exc}"
        summary["traceback"] = traceback.format_exc(limit=8)
    summary["seconds"] = time.perf_counter() - start
    (scratch / SUMMARY).write_text(json.dumps(summary, indent=2, allow_nan=False))
    try:
        os.replace(scratch, final)  # atomic; fails if another copy finished first
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        return json.loads((final / SUMMARY).read_text())
    return summary


def read_summary(folder: Path) -> dict | None:
    """A finished run's summary, or None when the folder holds none."""
    try:
        return json.loads((folder / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
