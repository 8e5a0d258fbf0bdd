"""``fpttsim study gradient-quality``: FPTT's gradient over forgetting and precision.

The FPTT post's central figure, extended: the cosine of FPTT's gradient
(computed in a profile's arithmetic) with exact float64 BPTT's, over a grid of
the smallest eigenvalue modulus at initialisation ``r_min``, the window length
``T`` and the profile, with the median and spread over seeds. Every point
also records BPTT in the same arithmetic (what the formats cost any
algorithm), FPTT with only the profile's error and Jacobian-product formats
(FPTT's own loss, which :mod:`fpttsim.precision` predicts) and the model's
prediction, so that the study checks the precision budget across its grid.

A profile is a shipped name, a path, or a bare number format (``fp32``,
``bf16``, ``fixed32.16``): every quantity then uses that format.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from fpttsim import report
from fpttsim.config import Profile, load_profile, load_scenario
from fpttsim.errors import ConfigError
from fpttsim.experiment import prepare
from fpttsim.numerics.formats import parse_format
from fpttsim.pools import process_pool
from fpttsim.precision import (
    DEFAULT_THRESHOLD,
    compare,
    on_device,
    predict,
    windows_at,
    zero_if_nan,
)

DEFAULT_R_MIN = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 0.999)
DEFAULT_LENGTHS = (10, 100, 1000)
DEFAULT_PROFILES = ("fp64", "fp32", "bf16", "fixed32.16")
DEFAULT_SEEDS = 3
DEFAULT_SCENARIO = "quickstart"

COLUMNS = (
    "profile",
    "r_min",
    "length",
    "seed",
    "cosine",
    "own_cosine",
    "bptt_cosine",
    "residual",
    "predicted_cosine",
    "predicted_max_length",
)


def study_profile(name: str, scenario=None) -> Profile:
    """A profile by shipped name or path, or a uniform one from a format name.

    With a ``scenario``, the formats of its ``device.formats`` replace the
    profile's, as they do for the scenario's own profile.

    Raises
    ------
    ConfigError
        When ``name`` is neither.
    """
    try:
        profile = load_profile(name)
    except ConfigError as not_a_profile:
        try:
            parse_format(name)
        except ValueError:
            raise ConfigError(
                f"{name!r} is neither a hardware profile (a shipped name or a "
                "path) nor a number format such as fp32, bf16 or fixed32.16",
                key="--profiles",
            ) from not_a_profile
        profile = Profile(
            name=name,
            description=f"every quantity in {name}",
            arithmetic={"default": name},
        )
    if scenario is not None and scenario.device.formats is not None:
        return profile.with_formats(scenario.device.formats)
    return profile


class GridOutputs:
    """What a study's result does with its rows: JSON, CSVs and figures.

    Subclasses give ``rows``, ``summary()``, ``to_dict()``, the name of their
    table of rows, ``TABLE``, and their figures, ``FIGURES``.
    """

    TABLE = "rows.csv"
    FIGURES: ClassVar[dict[str, tuple[Callable, str]]] = {}
    """Each figure's kind: the function that draws it, and its file's name;
    the first is the main figure."""

    def plot(self, kind: str | None = None, **options):
        """One of the figures, by its kind (a key of ``FIGURES``).

        Parameters
        ----------
        kind
            Which figure; None for the main one, the first of ``FIGURES``.
        **options
            Passed to the function that draws it.

        Returns
        -------
        matplotlib.figure.Figure

        Raises
        ------
        ValueError
            When ``kind`` is not one of ``FIGURES``.
        """
        kind = next(iter(self.FIGURES)) if kind is None else kind
        if kind not in self.FIGURES:
            raise ValueError(
                f"kind must be one of {', '.join(map(repr, self.FIGURES))}, got "
                f"{kind!r}"
            )
        draw, _ = self.FIGURES[kind]
        return draw(self, **options)

    def write_figures(self, out) -> list[Path]:
        """Write each figure of ``FIGURES`` into the folder ``out``."""
        return [
            report.write_figure(self.plot(kind), Path(out) / name)
            for kind, (_, name) in self.FIGURES.items()
        ]

    def to_json(self) -> str:
        """The result as a JSON document."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def write(self, out) -> list[Path]:
        """Write the rows' and summary's CSVs, ``study.json`` and the figures."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = [
            report.write_table(out / self.TABLE, self.rows),
            report.write_table(out / "summary.csv", self.summary()),
        ]
        report._write_atomic(out / "study.json", (self.to_json() + "\n").encode())
        files.append(out / "study.json")
        return files + self.write_figures(out)


@dataclass
class StudyResult(GridOutputs):
    """Outcome of :func:`gradient_quality`.

    Attributes
    ----------
    scenario
        The base scenario's name.
    r_min, lengths, profiles, seeds
        The grid.
    threshold
        The cosine the prediction is checked at.
    rows
        One dict per point and seed (:data:`COLUMNS`).
    seconds
        Wall-clock time of the study.

    Notes
    -----
    Its figures: ``plot()`` or ``plot("cosine")``, FPTT's cosine with exact
    BPTT against ``r_min``, a panel per profile and a line per length with
    the seeds' band (:func:`fpttsim.report.plot_gradient_quality`, written
    as ``gradient_quality.png``); ``plot("heatmaps")``, the median cosine
    over ``r_min`` and ``T``, a panel per profile
    (:func:`fpttsim.report.plot_heatmaps`, ``heatmaps.png``).

    Examples
    --------
    >>> import shutil, tempfile
    >>> import fpttsim
    >>> result = fpttsim.gradient_quality(
    ...     r_min=[0.5, 0.99], lengths=[20], profiles=["fp64", "bf16"], seeds=1,
    ...     workers=1)
    >>> [(e["profile"], e["r_min"]) for e in result.summary()]
    [('fp64', 0.5), ('fp64', 0.99), ('bf16', 0.5), ('bf16', 0.99)]
    >>> fig = result.plot()
    >>> [ax.get_title() for ax in fig.axes]
    ['fp64', 'bf16']
    >>> folder = tempfile.mkdtemp()
    >>> [path.name for path in result.write(folder)][-2:]
    ['gradient_quality.png', 'heatmaps.png']
    >>> shutil.rmtree(folder)
    """

    scenario: str
    r_min: list
    lengths: list
    profiles: list
    seeds: int
    threshold: float
    rows: list = field(default_factory=list)
    seconds: float = 0.0

    TABLE = "gradient_quality.csv"
    FIGURES = {
        "cosine": (report.plot_gradient_quality, "gradient_quality.png"),
        "heatmaps": (report.plot_heatmaps, "heatmaps.png"),
    }

    def summary(self) -> list[dict]:
        """Per profile, r_min and T: median, min and max over the seeds."""
        out = []
        for profile in self.profiles:
            for r_min in self.r_min:
                for length in self.lengths:
                    rows = [
                        r
                        for r in self.rows
                        if r["profile"] == profile
                        and r["r_min"] == r_min
                        and r["length"] == length
                    ]
                    entry = {"profile": profile, "r_min": r_min, "length": length}
                    for key in ("cosine", "own_cosine", "bptt_cosine"):
                        values = [r[key] for r in rows]
                        entry[key] = float(np.median(values))
                        entry[f"{key}_min"] = float(np.min(values))
                        entry[f"{key}_max"] = float(np.max(values))
                    entry["predicted_cosine"] = float(
                        np.median([r["predicted_cosine"] for r in rows])
                    )
                    out.append(entry)
        return out

    def disagreements(self) -> list[dict]:
        """Points where the predicted limit and the simulation disagree.

        At each point, FPTT's own median cosine either keeps the threshold
        or not; the prediction agrees within a factor of 2 when a kept
        length is at most twice the predicted limit and a lost one at least
        half of it. Each disagreement says which way and why.
        """
        out = []
        for entry in self.summary():
            limits = [
                r["predicted_max_length"]
                for r in self.rows
                if r["profile"] == entry["profile"]
                and r["r_min"] == entry["r_min"]
                and r["length"] == entry["length"]
            ]
            limit = float(np.median([math.inf if v is None else v for v in limits]))
            kept = entry["own_cosine"] >= self.threshold
            length = entry["length"]
            if kept and limit < length / 2:
                why = (
                    "kept although predicted lost: the failing modes carry "
                    "less of the gradient than the model assigns them"
                )
            elif not kept and limit > 2 * length:
                why = (
                    "lost although predicted kept: rounding noise at every "
                    "step, which the model counts only where the loss "
                    "cancels, already takes the cosine below the threshold"
                )
            else:
                continue
            out.append(
                {
                    "profile": entry["profile"],
                    "r_min": entry["r_min"],
                    "length": length,
                    "own_cosine": entry["own_cosine"],
                    "predicted_max_length": None if math.isinf(limit) else limit,
                    "why": why,
                }
            )
        return out

    def to_dict(self) -> dict:
        """JSON-ready data: the grid, the summary and the disagreements."""
        return {
            "scenario": self.scenario,
            "r_min": self.r_min,
            "lengths": self.lengths,
            "profiles": self.profiles,
            "seeds": self.seeds,
            "threshold": self.threshold,
            "seconds": self.seconds,
            "summary": self.summary(),
            "disagreements": self.disagreements(),
        }


def _point_rows(task) -> list[dict]:
    """Every length and profile for one ``r_min`` and seed (a worker's task)."""
    scenario_ref, overrides, r_min, seed, lengths, profiles, threshold = task
    scenario = load_scenario(
        scenario_ref, {**overrides, "model.r_min": r_min, "seed": seed}
    )
    experiment = prepare(scenario)
    net = experiment.net
    rows = []
    for name in profiles:
        profile = study_profile(name, scenario)
        prediction = predict(
            scenario,
            profile,
            threshold=threshold,
            max_model_length=4 * max(lengths),
            experiment=experiment,
        )
        limit = prediction.max_length
        arith, own_arith, theta = on_device(net, experiment.theta, profile, seed)
        for length in lengths:
            raw = windows_at(scenario, length, 1)[0]
            found = compare(net, theta, raw, arith, own_arith, scenario.learning.fptt)
            rows.append(
                {
                    "profile": name,
                    "r_min": r_min,
                    "length": length,
                    "seed": seed,
                    "cosine": zero_if_nan(found.whole),
                    "own_cosine": zero_if_nan(found.own),
                    "bptt_cosine": zero_if_nan(found.bptt),
                    "residual": found.residual
                    if math.isfinite(found.residual)
                    else None,
                    "predicted_cosine": prediction.cosine_at(length),
                    "predicted_max_length": None if math.isinf(limit) else int(limit),
                }
            )
    return rows


def gradient_quality(
    scenario: str | os.PathLike = DEFAULT_SCENARIO,
    overrides: dict | None = None,
    r_min=DEFAULT_R_MIN,
    lengths=DEFAULT_LENGTHS,
    profiles=DEFAULT_PROFILES,
    seeds: int = DEFAULT_SEEDS,
    threshold: float = DEFAULT_THRESHOLD,
    workers: int | None = None,
) -> StudyResult:
    """Run the gradient-quality study.

    Parameters
    ----------
    scenario
        The base scenario (a shipped name or a path): its cell, sizes and
        task; ``model.r_min`` and ``seed`` vary.
    overrides
        Key-path overrides of the base scenario.
    r_min, lengths, profiles
        The grid's axes.
    seeds
        Seeds per point (0 to ``seeds - 1``): parameters and data.
    threshold
        The cosine at which the precision budget's prediction is checked.
    workers
        Processes (default: the machine's cores; 1 runs in this process).

    Returns
    -------
    StudyResult
    """
    overrides = dict(overrides or {})
    base = check_grid(scenario, overrides, r_min, lengths, profiles, seeds)
    start = time.perf_counter()
    extra = (list(lengths), list(profiles), threshold)
    rows = run_grid(_point_rows, scenario, overrides, r_min, seeds, extra, workers)
    result = StudyResult(
        base.name,
        [float(r) for r in r_min],
        list(lengths),
        list(profiles),
        seeds,
        threshold,
        rows,
    )
    result.seconds = time.perf_counter() - start
    return result


def check_grid(scenario, overrides, r_min, lengths, profiles, seeds):
    """The base scenario, once the grid's values are checked.

    Raises
    ------
    ConfigError
        Naming the option (``--r-min``, ``--lengths``, ``--profiles``,
        ``--seeds``) whose value is out of range, or the scenario's file.
    """
    base = load_scenario(scenario, overrides)  # bad input fails here, once
    for value in r_min:
        if not 0.0 <= value <= base.model.r_max:
            raise ConfigError(
                f"r_min values must lie in [0, r_max = {base.model.r_max}], got "
                f"{value}",
                key="--r-min",
            )
    for length in lengths:
        if length < 1:
            raise ConfigError(f"lengths must be >= 1, got {length}", key="--lengths")
    for name in profiles:
        study_profile(name)
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}", key="--seeds")
    return base


def run_grid(function, scenario, overrides, r_min, seeds, extra, workers) -> list:
    """The rows ``function`` gives for every ``r_min`` and seed, in order.

    Each task is ``(scenario, overrides, r_min, seed, *extra)``, plain data,
    run in this process (``workers == 1``) or a pool of ``workers``.
    """
    tasks = [
        (os.fspath(scenario), overrides, float(r), seed, *extra)
        for r in r_min
        for seed in range(seeds)
    ]
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        parts = [function(task) for task in tasks]
    else:
        with process_pool(min(workers, len(tasks))) as pool:
            parts = list(pool.map(function, tasks))
    return [row for part in parts for row in part]
