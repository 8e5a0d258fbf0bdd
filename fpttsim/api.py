"""The public Python functions; the command line is a thin layer over them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpttsim import report
from fpttsim.config import Profile, Scenario, load_profile, load_scenario
from fpttsim.errors import ConfigError
from fpttsim.gradcheck import GradcheckResult
from fpttsim.gradcheck import gradcheck as _gradcheck
from fpttsim.train import TrainResult, train

ScenarioLike = Scenario | str | os.PathLike


@contextmanager
def _located(scenario: Scenario) -> Iterator[None]:
    """Give configuration errors raised past validation the scenario's place.

    Checks that need the built network (RTRL's memory, say) run after the
    schema's; their errors know the key but not where it was written.
    """
    try:
        yield
    except ConfigError as exc:
        if exc.file is not None or exc.key is None:
            raise
        file, line = scenario.where(exc.key)
        if file is None and line is None:
            raise
        raise ConfigError(exc.message, file=file, line=line, key=exc.key) from exc


def _scenario(
    scenario: ScenarioLike, overrides: Mapping[str, Any] | Sequence[str] = ()
) -> Scenario:
    if isinstance(scenario, Scenario):
        if overrides:
            raise TypeError("pass overrides to load_scenario, not with a Scenario")
        return scenario
    return load_scenario(scenario, overrides)


@dataclass
class RunResult:
    """Outcome of :func:`run`.

    Attributes
    ----------
    scenario, profile
        What ran.
    training
        The training loop's output (metrics rows, held-out loss before and
        after, numerical events, trained parameters).
    out
        The folder the outputs were written to, or None.
    files
        Paths of the files written.
    """

    scenario: Scenario
    profile: Profile
    training: TrainResult
    out: Path | None = None
    files: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The content of ``result.json``."""
        training = self.training
        return {
            "name": self.scenario.name,
            "seed": self.scenario.seed,
            "scenario": self.scenario.model_dump(mode="json"),
            "scenario_file": self.scenario.source,
            "profile": self.profile.model_dump(mode="json"),
            "initial": training.initial,
            "final": training.final,
            "last_logged": training.rows[-1] if training.rows else {},
            "steps_done": training.steps_done,
            "stopped": training.stopped,
            "numerical_events": training.numerical_events,
            "arithmetic_events": {
                "training": training.arithmetic_events,
                "evaluation": training.evaluation_events,
            },
            "timings": {
                "train_seconds": training.seconds,
                "ms_per_step": 1e3 * training.seconds / max(training.steps_done, 1),
            },
            "versions": report.versions(),
        }

    def to_json(self) -> str:
        """``result.json`` as a string (strict JSON: non-finite as strings)."""
        return json.dumps(report.jsonable(self.to_dict()), indent=2)


def run(
    scenario: ScenarioLike,
    out: str | os.PathLike | None = None,
    *,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    on_step: Callable[[int, dict], None] | None = None,
) -> RunResult:
    """Train a scenario online and write its outputs.

    Parameters
    ----------
    scenario
        A :class:`Scenario`, a path to a scenario file, or a shipped name.
    out
        Folder for ``result.json``, ``metrics.csv``, ``learning_curve.png``
        and ``parameters.npz``; nothing is written when None.
    overrides
        Key-path overrides when ``scenario`` is a name or a path.
    on_step
        Progress callback ``(step, latest logged metrics)``.

    Returns
    -------
    RunResult

    Examples
    --------
    >>> import fpttsim
    >>> sc = fpttsim.load_scenario("quickstart", {"training.steps": 40})
    >>> result = fpttsim.run(sc)
    >>> result.training.final["loss"] < result.training.initial["loss"]
    True
    """
    scenario = _scenario(scenario, overrides)
    profile = scenario.resolve_profile()
    with _located(scenario):
        training = train(scenario, on_step, profile)
    result = RunResult(scenario, profile, training)
    if out is not None:
        result.out = Path(out)
        result.files = _write_outputs(result)
    return result


def _write_outputs(result: RunResult) -> list[Path]:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    rows = result.training.rows
    classification = bool(rows) and "accuracy" in rows[0]
    files = [
        report.write_result_json(out, result.to_dict()),
        report.write_metrics_csv(out, rows),
        report.plot_learning_curve(
            out,
            rows,
            title=f"{result.scenario.name}: {result.scenario.learning.algorithm}",
            secondary="accuracy" if classification else None,
        ),
    ]
    files.append(report.write_parameters(out, result.training.theta))
    return files


def gradcheck(
    scenario: ScenarioLike, overrides: Mapping[str, Any] | Sequence[str] = ()
) -> GradcheckResult:
    """Check each algorithm's gradient against float64 BPTT on one window.

    Parameters
    ----------
    scenario
        A :class:`Scenario`, a path to a scenario file, or a shipped name.
    overrides
        Key-path overrides when ``scenario`` is a name or a path.

    Returns
    -------
    GradcheckResult

    Examples
    --------
    >>> import fpttsim
    >>> result = fpttsim.gradcheck("gradcheck-lru")
    >>> result.algorithms["fptt"].rel_error < 1e-7
    True
    """
    scenario = _scenario(scenario, overrides)
    profile = scenario.resolve_profile()
    with _located(scenario):
        return _gradcheck(scenario, profile)


__all__ = [
    "RunResult",
    "gradcheck",
    "load_profile",
    "load_scenario",
    "run",
]
