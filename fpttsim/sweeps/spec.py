"""Sweep files: a base scenario, axes over its keys, the metrics to collect.

A sweep file is YAML::

    name: smoke
    base: quickstart              # a shipped scenario name, or a path
    command: run                  # run, gradcheck or budget
    set: {training.steps: 20}     # overrides every run gets
    grid:                         # the full product of these axes
      model.hidden: [8, 16]
      learning.lr: [1.0e-3, 3.0e-3]
    zip:                          # aligned lists: one run per position
      task.length: [20, 40]
      task.symbols: [2, 3]
    seeds: 3                      # seeds 0, 1, 2 (the key ``seed``)
    labels: {model.hidden: [small, large]}
    metrics: [final.loss, final.accuracy]

Each run's overrides are the ``set`` ones, one value of every ``grid``
axis, one position of the ``zip`` axes and a seed. A run is keyed by a hash
of its fully resolved scenario and its command, so that the same run has the
same key wherever it is computed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from fpttsim.config.loader import (
    _Origin,
    _read_mapping,
    _validate,
    find_shipped,
    load_scenario,
)
from fpttsim.config.scenario import _SECTION, Int, Text, relation_error
from fpttsim.errors import ConfigError

COMMANDS = ("run", "gradcheck", "budget")

DEFAULT_METRICS = {
    "run": ["final.loss", "final.accuracy", "device.energy_per_sample_joules"],
    "gradcheck": ["algorithms.fptt.cosine", "algorithms.fptt.rel_error"],
    "budget": [
        "algorithms.fptt.total_bytes",
        "algorithms.bptt.total_bytes",
        "precision.predicted_max_length",
    ],
}
"""What a sweep collects when its file names no metrics."""


class SweepSpec(BaseModel):
    """A sweep file, validated.

    Parameters
    ----------
    name
        The sweep's name.
    description
        Free text.
    base
        The base scenario: a shipped name, or a path relative to the sweep
        file's folder.
    command
        What each run does: ``run`` (train on the device), ``gradcheck`` or
        ``budget``.
    set
        Overrides every run gets.
    grid
        Axes whose values combine in full product.
    zip
        Axes of equal length, taken position by position.
    seeds
        Seeds ``0 .. seeds - 1`` (an axis over ``seed``); None keeps the
        base scenario's seed.
    labels
        Per axis, one label per value, for tables and plots.
    metrics
        Dotted paths into each run's result to collect; empty for the
        command's defaults.
    """

    model_config = _SECTION

    name: Annotated[Text, Field(min_length=1)]
    description: Text = ""
    base: Annotated[Text, Field(min_length=1)]
    command: Literal["run", "gradcheck", "budget"] = "run"
    set: dict[str, Any] = {}
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    zip: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    seeds: Annotated[Int, Field(ge=1)] | None = None
    labels: dict[str, list[Text]] = {}
    metrics: list[Text] = []

    @model_validator(mode="after")
    def _consistent(self) -> SweepSpec:
        lengths = {key: len(values) for key, values in self.zip.items()}
        if len(set(lengths.values())) > 1:
            first = next(iter(lengths))
            odd = next(k for k, n in lengths.items() if n != lengths[first])
            raise relation_error(
                "zip",
                f"zip axes must have equal lengths, got {lengths[first]} values "
                f"for {first} and {lengths[odd]} for {odd}",
            )
        both = set(self.grid) & set(self.zip)
        if both:
            raise relation_error(
                "zip", f"{sorted(both)[0]} is both a grid and a zip axis"
            )
        axes = self.axes()
        for key, labels in self.labels.items():
            if key not in axes:
                raise relation_error(
                    "labels", f"labels for {key}, which is not an axis"
                )
            if len(labels) != len(axes[key]):
                raise relation_error(
                    "labels",
                    f"{len(labels)} labels for the {len(axes[key])} values of {key}",
                )
        return self

    def axes(self) -> dict[str, list[Any]]:
        """Every axis and its values, ``seed`` included when seeds are set."""
        out = {**self.grid, **self.zip}
        if self.seeds is not None:
            out["seed"] = list(range(self.seeds))
        return out

    def collected(self) -> list[str]:
        """The metrics to collect."""
        return list(self.metrics) or DEFAULT_METRICS[self.command]


@dataclass(frozen=True)
class Run:
    """One resolved run of a sweep.

    Attributes
    ----------
    key
        Hash of the resolved scenario and the command.
    axes
        The axis values that make it.
    overrides
        Every override it applies to the base scenario.
    """

    key: str
    axes: dict
    overrides: dict


@dataclass
class Sweep:
    """A loaded sweep: its spec, where it came from, and its runs."""

    spec: SweepSpec
    file: str
    base: str
    runs: list[Run]


def _base_reference(spec: SweepSpec, folder: Path, document) -> str:
    """The base scenario as a shipped name or an absolute path."""
    path = folder / spec.base
    if path.is_file():
        return os.fspath(path.resolve())
    if find_shipped("scenarios", spec.base) is not None:
        return spec.base
    raise ConfigError(
        f"base scenario {spec.base!r} is neither a file (relative to the sweep "
        "file's folder) nor a shipped scenario (see `fpttsim scenarios`)",
        file=document.file,
        line=document.line_of(("base",)),
        key="base",
    )


def run_key(scenario, command: str) -> str:
    """The hash that names a run: its resolved scenario and its command."""
    data = {"command": command, "scenario": scenario.model_dump(mode="json")}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read, validate and expand a sweep file.

    Raises
    ------
    ConfigError
        With the file, line and key, when the file or a run it makes is not
        valid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no sweep file {os.fspath(path)!r}", file=os.fspath(path))
    document = _read_mapping(path, "sweep", "name:, base: and grid:")
    origin = _Origin(document=document, overridden=frozenset())
    spec = _validate(SweepSpec, document.data, origin)
    base = _base_reference(spec, path.parent, document)
    axes_grid = list(spec.grid.items())
    zipped = list(zip(*spec.zip.values(), strict=True)) if spec.zip else [()]
    seeds = list(range(spec.seeds)) if spec.seeds is not None else [None]
    runs, seen = [], set()
    for values in itertools.product(*(v for _, v in axes_grid)):
        for position in zipped:
            for seed in seeds:
                axes = dict(zip((k for k, _ in axes_grid), values, strict=True))
                axes.update(zip(spec.zip, position, strict=True))
                if seed is not None:
                    axes["seed"] = seed
                overrides = {**spec.set, **axes}
                scenario = _resolve(base, overrides, spec, document)
                key = run_key(scenario, spec.command)
                if key in seen:
                    continue  # two axis values that resolve to the same run
                seen.add(key)
                runs.append(Run(key, axes, overrides))
    return Sweep(spec, os.fspath(path), base, runs)


def _resolve(base: str, overrides: dict, spec: SweepSpec, document):
    """The run's scenario; its errors point at the sweep file's axis."""
    try:
        return load_scenario(base, overrides)
    except ConfigError as exc:
        if exc.file != "--set":
            raise  # the base scenario's own file is at fault, and named
        key = exc.key or ""
        section = next(
            (s for s in ("grid", "zip", "set") if key in (getattr(spec, s) or {})),
            "set",
        )
        if key == "seed" and spec.seeds is not None:
            section = "seeds"
        path = (section, key) if section != "seeds" else ("seeds",)
        raise ConfigError(
            exc.message,
            file=document.file,
            line=document.line_of(path),
            key=".".join(p for p in path if p),
        ) from exc
