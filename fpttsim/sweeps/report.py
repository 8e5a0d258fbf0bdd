"""``fpttsim sweep-report``: a sweep's results as a table and figures.

The table has one row per finished run (its axes and metrics, or its error)
and ``summary.csv`` one per point of the non-seed axes, with the mean,
standard deviation, minimum and maximum over seeds. The figures: a metric
against one axis with one line per value of another (the band spans the
seeds), and a heatmap over two axes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from fpttsim.errors import ConfigError
from fpttsim.sweeps.runner import repair


def _plan(out: Path) -> dict:
    try:
        return json.loads((out / "sweep.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{out} holds no sweep (sweep.json is missing or unreadable)",
            file=str(out),
        ) from exc


def _number(value):
    return (
        value
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else None
    )


def sweep_report(
    out,
    metric: str | None = None,
    x: str | None = None,
    lines: str | None = None,
    panels: str | None = None,
) -> list[Path]:
    """Write ``results.csv``, ``summary.csv`` and the figures into ``out``.

    Parameters
    ----------
    out
        The sweep's folder.
    metric
        The metric to plot (default the sweep's first).
    x, lines, panels
        The axis along the x axis, the one drawn as separate lines and the
        one drawn as separate panels (default the first three non-seed
        axes; further axes are averaged over, with the seeds).

    Returns
    -------
    list of Path
    """
    from fpttsim.report import _figure, panel_figure, write_figure, write_table

    out = Path(out)
    plan = _plan(out)
    finished, _ = repair(out)
    axes = [a for a in plan["axes"] if a != "seed"]
    metrics = plan["metrics"]
    metric = metric or metrics[0]
    for name, value, options in (
        ("--metric", metric, metrics),
        ("--x", x, axes),
        ("--lines", lines, axes),
        ("--panels", panels, axes),
    ):
        if value is not None and value not in options:
            raise ConfigError(
                f"{value!r} is not one of the sweep's {', '.join(options)}", key=name
            )
    x = x or next((a for a in axes if a not in (lines, panels)), None)
    lines = lines or next((a for a in axes if a not in (x, panels)), None)
    panels = panels or next((a for a in axes if a not in (x, lines)), None)
    rows = []
    for run in plan["runs"]:
        summary = finished.get(run["key"])
        row = {"key": run["key"], **run["axes"]}
        if summary is None:
            row["status"] = "missing"
        else:
            row["status"] = summary.get("status")
            row.update(summary.get("metrics") or {})
            row["error"] = summary.get("error", "")
        rows.append(row)
    written = [out / "results.csv"]
    write_table(written[0], rows)

    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(a)) for a in axes), []).append(row)
    summary_rows = []
    for members in groups.values():
        entry = dict(zip(axes, (members[0].get(a) for a in axes), strict=True))
        entry["runs"] = len(members)
        for m in metrics:
            values = [v for v in (_number(r.get(m)) for r in members) if v is not None]
            finite = [v for v in values if math.isfinite(v)]
            entry[f"{m}.mean"] = float(np.mean(finite)) if finite else None
            entry[f"{m}.std"] = float(np.std(finite)) if finite else None
            entry[f"{m}.min"] = min(finite) if finite else None
            entry[f"{m}.max"] = max(finite) if finite else None
        summary_rows.append(entry)
    written.append(out / "summary.csv")
    write_table(written[1], summary_rows)
    if x is None:
        return written

    def values_of(axis):
        # an axis may take mappings (a whole section, such as learning.fptt)
        found = {}
        for r in rows:
            value = r.get(axis)
            found.setdefault(json.dumps(value, sort_keys=True, default=str), value)
        return list(found.values())

    labels = plan.get("labels", {})

    def label(axis, value):
        names = labels.get(axis)
        options = plan["axes"][axis]
        return names[options.index(value)] if names and value in options else value

    xs = values_of(x)
    positions = np.arange(len(xs))
    series = values_of(lines) if lines else [None]
    panel_values = values_of(panels) if panels else [None]
    fig, axes = panel_figure(len(panel_values), 3.4, min_width=7.0, sharey=True)
    for ax, panel in zip(axes, panel_values, strict=True):
        for value in series:
            stats = []
            for xv in xs:
                picked = [
                    _number(r.get(metric))
                    for r in rows
                    if r.get(x) == xv
                    and (lines is None or r.get(lines) == value)
                    and (panels is None or r.get(panels) == panel)
                ]
                picked = [v for v in picked if v is not None and math.isfinite(v)]
                stats.append(
                    (np.mean(picked), min(picked), max(picked))
                    if picked
                    else (np.nan,) * 3
                )
            mean, low, high = (np.array(s) for s in zip(*stats, strict=True))
            name = f"{lines} = {label(lines, value)}" if lines else metric
            ax.plot(positions, mean, marker="o", markersize=3, label=name)
            ax.fill_between(positions, low, high, alpha=0.2)
        ax.set_xticks(
            positions, [str(label(x, v)) for v in xs], rotation=30, fontsize=8
        )
        ax.set_xlabel(x)
        if panels is not None:
            ax.set_title(f"{panels} = {label(panels, panel)}", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(metric)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{plan['name']}: {metric} (mean, band over seeds)")
    written.append(write_figure(fig, out / "report_lines.png"))

    if lines is not None:
        grid = np.full((len(series), len(xs)), np.nan)
        for i, value in enumerate(series):
            for j, xv in enumerate(xs):
                picked = [
                    _number(r.get(metric))
                    for r in rows
                    if r.get(x) == xv and r.get(lines) == value
                ]
                picked = [v for v in picked if v is not None and math.isfinite(v)]
                if picked:
                    grid[i, j] = np.mean(picked)
        fig = _figure()
        ax = fig.add_subplot()
        image = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(
            positions, [str(label(x, v)) for v in xs], rotation=30, fontsize=8
        )
        ax.set_yticks(np.arange(len(series)), [str(label(lines, v)) for v in series])
        ax.set_xlabel(x)
        ax.set_ylabel(lines)
        ax.set_title(f"{plan['name']}: mean {metric}")
        fig.colorbar(image, ax=ax)
        written.append(write_figure(fig, out / "report_heatmap.png"))
    return written
