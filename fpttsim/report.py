"""Outputs: result JSON, metrics CSV, tables, versions, and the figures.

Each ``plot_*`` function builds one figure from a result and returns it (the
results' ``plot()`` methods call them); :func:`write_figure` saves one. Every
file is written atomically: the bytes go to a temporary file in the
destination folder, which then replaces the destination in one step. A run
interrupted at any point leaves either the previous file or the new one, never
a truncated one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import secrets
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "jsonable",
    "panel_figure",
    "plot_budget",
    "plot_budget_memory",
    "plot_budget_precision",
    "plot_fptt_methods",
    "plot_gradcheck",
    "plot_gradient_cosine",
    "plot_gradient_quality",
    "plot_heatmaps",
    "plot_learning_curve",
    "plot_memory",
    "plot_pareto",
    "plot_recommendation",
    "versions",
    "write_figure",
    "write_metrics_csv",
    "write_parameters",
    "write_result_json",
    "write_table",
]

RESULT_JSON = "result.json"
METRICS_CSV = "metrics.csv"
LEARNING_CURVE_PNG = "learning_curve.png"
GRADIENT_COSINE_PNG = "gradient_cosine.png"
MEMORY_PNG = "memory.png"

# Report key -> distribution name, for the packages whose versions make a run
# reproducible.
_DISTRIBUTIONS = {
    "numpy": "numpy",
    "numba": "numba",
    "pydantic": "pydantic",
    "yaml": "PyYAML",
    "matplotlib": "matplotlib",
    "fpttsim": "fpttsim",
    "lava-nc": "lava-nc",
}


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the destination: os.replace is atomic only within one
    # file system.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with mode 0o666 lets the umask decide the permissions, as for an
    # ordinary open(); tempfile would make the result private to the user.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            # Without fsync a power cut after the rename can leave an empty file.
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _to_json(value: Any, where: str) -> Any:
    """Return ``value`` with numpy types and non-finite floats made JSON-safe."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()

    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if isinstance(key, (np.integer, int)) and not isinstance(key, bool):
                key = str(int(key))
            if not isinstance(key, str):
                raise TypeError(
                    f"result{where}: keys must be strings, got {key!r} "
                    f"({type(key).__name__})"
                )
            out[key] = _to_json(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(
        f"result{where}: cannot write a {type(value).__name__} to JSON; "
        "convert it to a number, string, list or mapping first"
    )


def jsonable(value: Any) -> Any:
    """``value`` with numpy types made plain and non-finite floats as strings.

    The same conversion :func:`write_result_json` applies, for printing.
    """
    return _to_json(value, "")


def write_parameters(out_dir: Path, theta: np.ndarray) -> Path:
    """Write the flat parameter vector to ``out_dir / "parameters.npz"``."""
    buffer = io.BytesIO()
    np.savez(buffer, theta=np.asarray(theta, dtype=np.float64))
    path = Path(out_dir) / "parameters.npz"
    _write_atomic(path, buffer.getvalue())
    return path


def write_result_json(out_dir: Path, result: Mapping[str, Any]) -> Path:
    """Write a run's result to ``out_dir / "result.json"``.

    Numpy scalars and arrays become JSON numbers and lists, paths become
    strings. Non-finite floats become the strings ``"nan"``, ``"inf"`` and
    ``"-inf"`` so that the file stays strict JSON. Keys keep their order.

    Parameters
    ----------
    out_dir
        Folder to write into; created with its parents if missing.
    result
        Mapping with string keys (integer keys are turned into strings).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    TypeError
        When a value has no JSON form; the message gives its key path.
    """
    path = Path(out_dir) / RESULT_JSON
    text = json.dumps(_to_json(result, ""), indent=2, allow_nan=False)
    _write_atomic(path, (text + "\n").encode("utf-8"))
    return path


def versions() -> dict[str, str]:
    """Return the versions of Python, the platform and the packages a run uses.

    Returns
    -------
    dict of str to str
        Keys ``python``, ``numpy``, ``numba``, ``pydantic``, ``yaml``,
        ``matplotlib``, ``fpttsim``, ``lava-nc`` and ``platform``; a package
        that is not installed has the value ``"not installed"``.
    """
    found = {"python": platform.python_version()}
    # Installed metadata rather than imports: importing numba or lava only to
    # read a version would cost seconds.
    for key, dist in _DISTRIBUTIONS.items():
        try:
            found[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[key] = "not installed"
    found["platform"] = platform.platform()
    return found


def _csv_cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # repr is the shortest string that reads back to the same float.
        return repr(value)
    if isinstance(value, str):
        return value
    raise TypeError(
        f"metrics column {column!r}: expected a number, string or None, "
        f"got {value!r} ({type(value).__name__})"
    )


def write_metrics_csv(out_dir: Path, rows: Sequence[Mapping[str, float | int]]) -> Path:
    """Write logged metrics to ``out_dir / "metrics.csv"``, one row per entry.

    The header is the union of the rows' keys in the order first seen. A key
    missing from a row (or set to ``None``) gives an empty cell. Floats are
    written with :func:`repr`, so they read back exactly; ``nan`` and ``inf``
    are written as such, booleans as 1 and 0. With no rows the file is empty.

    Parameters
    ----------
    out_dir
        Folder to write into; created with its parents if missing.
    rows
        One mapping per logged step, e.g. ``{"step": 100, "loss": 0.41}``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    TypeError
        When a value is not a number, string or ``None``.
    """
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buf = io.StringIO()
    if columns:
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(_csv_cell(row.get(c), c) for c in columns)
    path = Path(out_dir) / METRICS_CSV
    _write_atomic(path, buf.getvalue().encode("utf-8"))
    return path


def _series(rows: Sequence[Mapping[str, Any]], x: str, y: str) -> tuple[list, list]:
    """Return the (x, y) pairs of the rows where both are finite numbers."""
    xs, ys = [], []
    for row in rows:
        a, b = row.get(x), row.get(y)
        if a is None or b is None:
            continue
        a, b = float(a), float(b)
        if math.isfinite(a) and math.isfinite(b):
            xs.append(a)
            ys.append(b)
    return xs, ys


def _keys(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


# --- figures ------------------------------------------------------------------------
#
# Each ``plot_*`` function builds a figure and returns it; ``write_figure`` saves
# one. Figures are matplotlib's ``Figure`` on an Agg canvas, outside pyplot: the
# library opens no window and leaves pyplot's figures and backend as they were.


def _figure(figsize: tuple[float, float] = (7.0, 4.0)):
    # Imported here: matplotlib takes a noticeable time to load.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def panel_figure(count: int, height: float, min_width: float = 0.0, sharey=False):
    """A figure of ``count`` panels, four to a row, and its panels' axes.

    Slots of the last row left over are hidden.
    """
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    fig = _figure((max(min_width, 3.6 * columns), height * rows))
    axes = fig.subplots(rows, columns, squeeze=False, sharey=sharey).ravel()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def write_figure(fig, path: str | os.PathLike) -> Path:
    """Write a figure as a PNG file (120 dpi), atomically.

    Parameters
    ----------
    fig
        A :class:`matplotlib.figure.Figure`, such as the results' ``plot()``
        return.
    path
        The file to write; its folder is created if missing.

    Returns
    -------
    Path
        The file written.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    path = Path(path)
    _write_atomic(path, buf.getvalue())
    return path


def write_table(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as a CSV file, atomically; columns in order of appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    _write_atomic(Path(path), buffer.getvalue().encode())
    return Path(path)


def plot_learning_curve(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    x: str = "step",
    y: str | Sequence[str] = ("loss",),
    secondary: str | Sequence[str] | None = None,
):
    """Metrics against steps: a run's ``learning_curve.png``.

    The ``y`` metrics share the left axis, logarithmic when every plotted value
    is positive; the ``secondary`` ones (accuracies, say) share an axis on the
    right, dashed. Rows lacking a metric, or holding a non-finite value, are
    skipped for that metric.

    Parameters
    ----------
    rows
        Logged metrics, as for :func:`write_metrics_csv`.
    title
        Figure title.
    x
        Key of the horizontal axis.
    y
        Key or keys plotted on the left axis.
    secondary
        Key or keys plotted on the right axis, if any.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, and its twin on the right when ``secondary`` is given.
    """
    keys = _keys(y)
    fig = _figure()
    ax = fig.add_subplot()

    plotted: list[float] = []
    for key in keys:
        xs, ys = _series(rows, x, key)
        ax.plot(xs, ys, label=key)
        plotted += ys
    if plotted and min(plotted) > 0:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(", ".join(keys))
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)

    lines, labels = ax.get_legend_handles_labels()
    top = ax
    right = _keys(secondary)
    if right:
        twin = ax.twinx()
        for i, key in enumerate(right):
            xs, ys = _series(rows, x, key)
            # Colours after the left axis's lines, so no two curves share one.
            colour = f"C{len(keys) + i}"
            twin.plot(xs, ys, color=colour, linestyle="--", label=key)
        twin.set_ylabel(", ".join(right))
        more_lines, more_labels = twin.get_legend_handles_labels()
        lines += more_lines
        labels += more_labels
        # The twin axis is drawn over the first one; a legend on the first
        # would be crossed by the secondary curves.
        top = twin
    top.legend(lines, labels, loc="best")
    return fig


def plot_gradient_cosine(rows: Sequence[Mapping[str, Any]], *, title: str):
    """The gradient's cosine with float64 BPTT's over training.

    A run's ``gradient_cosine.png``; None when no row holds a ``cosine``.
    """
    xs, ys = _series(rows, "step", "cosine")
    if not xs:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(xs, ys, marker="o", markersize=3)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("cosine with float64 BPTT")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return fig


def plot_memory(components: Mapping[str, int], budget: Mapping[str, int], *, title):
    """Bar chart of bytes by component, with the memories' capacities.

    A run's ``memory.png``. ``budget`` maps ``"working"`` and ``"replay"`` to
    their capacities; a capacity more than a thousand times the plan's total
    (an unconstrained reference) is not drawn.
    """
    names = [k for k, v in components.items() if v]
    values = [components[k] for k in names]
    fig = _figure()
    ax = fig.add_subplot()
    colours = ["C1" if k == "replay" else "C0" for k in names]
    ax.barh(names, values, color=colours)
    ax.invert_yaxis()
    total = sum(values)
    working = total - components.get("replay", 0)
    for memory, used, colour in (
        ("working", working, "C0"),
        ("replay", components.get("replay", 0), "C1"),
    ):
        cap = budget.get(memory)
        if cap and cap < 1000 * max(total, 1):
            ax.axvline(cap, color=colour, linestyle="--", label=f"{memory} memory")
            ax.text(cap, -0.4, f" {used / cap:.0%} used", color=colour, fontsize=8)
    ax.set_xlabel("bytes")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    return fig


# --- the budget


def plot_budget_memory(result, ax=None):
    """Working memory against the window length, per algorithm.

    The budget's ``budget_memory.png``: each algorithm's working-memory bytes
    on log axes, the profile's working memory as a dashed line and the
    scenario's length as a grey one. Drawn into ``ax`` when given (the figure
    is then ``ax``'s), else into a figure of its own.
    """
    ax = ax if ax is not None else _figure().add_subplot()
    lengths = np.unique(np.geomspace(1, max(10 * result.length, 10_000), 60).round())
    for name, build in result.memory_curves.items():
        used = []
        for n in lengths:
            buffers = build(int(n))
            used.append(sum(b.bytes for b in buffers if b.memory == "working"))
        ax.loglog(lengths, used, label=name)
    ax.axhline(
        result.working_memory_bytes,
        color="black",
        linestyle="--",
        label="working memory",
    )
    ax.axvline(result.length, color="grey", linewidth=0.8)
    _label_budget(ax, "working memory used (bytes)", "memory against T", result)
    return ax.figure


def plot_budget_precision(result, ax=None):
    """FPTT's measured and modelled gradient cosines against the window length.

    The budget's ``budget_precision.png``, for a result whose prediction was
    checked: FPTT with only its error and ``P`` formats, FPTT and BPTT in the
    whole profile, the model's curve, the threshold and the predicted limit.
    Drawn into ``ax`` when given, else into a figure of its own.

    Raises
    ------
    ValueError
        When the budget was made without its check (``simulate=False``).
    """
    if result.check is None:
        raise ValueError(
            "the budget has no measured cosines to plot: it was made with "
            "simulate=False; make it with simulate=True"
        )
    ax = ax if ax is not None else _figure().add_subplot()
    measured = result.check.measured
    xs = [m.length for m in measured]
    ax.semilogx(
        xs,
        [m.own_cosine for m in measured],
        "s-",
        label="FPTT, only its error and P formats",
    )
    ax.semilogx(xs, [m.cosine for m in measured], "o-", label="FPTT, whole profile")
    ax.semilogx(
        xs, [m.bptt_cosine for m in measured], "^:", label="BPTT, whole profile"
    )
    grid = np.unique(np.geomspace(max(1, min(xs)), max(xs), 200).round())
    ax.semilogx(
        grid,
        [result.prediction.cosine_at(n) for n in grid],
        color="black",
        linewidth=1,
        label="model",
    )
    ax.axhline(result.prediction.threshold, color="grey", linestyle="--")
    limit = result.prediction.max_length
    if math.isfinite(limit) and limit > 0:
        ax.axvline(
            limit, color="red", linestyle="--", label=f"predicted limit {limit:.0f}"
        )
    _label_budget(ax, "gradient cosine", "FPTT's precision", result)
    return ax.figure


def plot_budget(result):
    """The budget's figure: memory against T, and precision when checked.

    One panel per :func:`plot_budget_memory` and, when the prediction was
    checked by simulation, :func:`plot_budget_precision`, side by side.
    """
    panels = [plot_budget_memory]
    if result.check is not None:
        panels.append(plot_budget_precision)
    fig = _figure((6.5 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for draw, ax in zip(panels, axes, strict=True):
        draw(result, ax)
    return fig


def _label_budget(ax, ylabel: str, what: str, result) -> None:
    """Label a budget panel against T."""
    ax.set_xlabel("window length T (steps)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{result.scenario} on {result.profile}: {what}")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


# --- the gradient-quality study


def _study_grid(result):
    """A function of (profile, key) giving that summary key over T x r_min."""
    summary = result.summary()

    def grid(profile, key):
        values = {
            (e["r_min"], e["length"]): e[key]
            for e in summary
            if e["profile"] == profile
        }
        return np.array([[values[r, n] for r in result.r_min] for n in result.lengths])

    return grid


def plot_gradient_quality(result):
    """The study's ``gradient_quality.png``: cosine against ``r_min``.

    FPTT's gradient cosine with exact BPTT, one panel per profile and one
    line per length (median over seeds, the band from the lowest to the
    highest seed), with the threshold dashed.
    """
    grid = _study_grid(result)
    positions = np.arange(len(result.r_min))
    labels = [f"{r:g}" for r in result.r_min]
    fig, axes = panel_figure(len(result.profiles), 3.2, sharey=True)
    for ax, profile in zip(axes, result.profiles, strict=True):
        median, low, high = (
            grid(profile, k) for k in ("cosine", "cosine_min", "cosine_max")
        )
        for i, n in enumerate(result.lengths):
            ax.plot(positions, median[i], marker="o", markersize=3, label=f"T = {n}")
            ax.fill_between(positions, low[i], high[i], alpha=0.2)
        ax.axhline(result.threshold, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(positions, labels, rotation=45, fontsize=8)
        ax.set_title(profile)
        ax.set_xlabel("r_min")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("cosine with exact BPTT")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result.scenario}: FPTT's gradient against forgetting and precision")
    return fig


def plot_heatmaps(result):
    """The study's ``heatmaps.png``: median cosine over ``r_min`` and ``T``.

    One panel per profile, on a shared colour scale from 0 to 1.
    """
    grid = _study_grid(result)
    positions = np.arange(len(result.r_min))
    labels = [f"{r:g}" for r in result.r_min]
    fig, axes = panel_figure(len(result.profiles), 2.6)
    for ax, profile in zip(axes, result.profiles, strict=True):
        image = ax.imshow(
            grid(profile, "cosine"), vmin=0, vmax=1, cmap="viridis", aspect="auto"
        )
        ax.set_xticks(positions, labels, rotation=45, fontsize=8)
        ax.set_yticks(np.arange(len(result.lengths)), [str(n) for n in result.lengths])
        ax.set_xlabel("r_min")
        ax.set_ylabel("T")
        ax.set_title(profile)
    fig.colorbar(image, ax=list(axes), label="median cosine")
    return fig


# --- the FPTT-methods comparison


def _gradient_error(cosine):
    """``1 - cosine`` on a log axis: a cosine of 1 to the bit sits at 1e-16."""
    return np.maximum(1.0 - np.asarray(cosine, dtype=float), 1e-16)


def _methods_value(result, length):
    """A function of (profile, method, r_min, key) giving that summary value."""
    summary = result.summary()

    def value(profile, method, r, key):
        for e in summary:
            if (e["profile"], e["method"], e["r_min"], e["length"]) == (
                profile,
                method,
                r,
                length,
            ):
                return e[key]
        return np.nan

    return value


def plot_fptt_methods(result, length=None):
    """The comparison's ``fptt_methods.png``: each method's error against ``r_min``.

    Each method's gradient error ``1 - cosine`` against ``r_min`` at one
    ``T`` (default the longest), one column per profile; above, against BPTT
    in the same arithmetic (the method's own loss), below, against exact
    float64 BPTT. The dotted line is a cosine of 0.99.
    """
    length = length if length is not None else max(result.lengths)
    value = _methods_value(result, length)
    profiles, methods = result.profiles, result.methods
    positions = np.arange(len(result.r_min))
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig = _figure((max(7.0, 3.8 * len(profiles)), 6.4))
    grid = fig.subplots(2, len(profiles), squeeze=False, sharex=True, sharey=True)
    for row, (key, what) in enumerate(
        (("cosine_bptt", "BPTT at equal bits"), ("cosine", "exact float64 BPTT"))
    ):
        for ax, profile in zip(grid[row], profiles, strict=True):
            for method in methods:
                if key == "cosine_bptt" and method == "bptt":
                    continue
                errors = [value(profile, method, r, key) for r in result.r_min]
                style = "--" if method == "bptt" else "-"
                ax.plot(
                    positions,
                    _gradient_error(errors),
                    style,
                    color=colours[method],
                    marker="o",
                    markersize=3,
                    label=method,
                )
            ax.axhline(0.01, color="grey", linestyle=":", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_title(f"{profile}, T = {length}", fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.set_xticks(positions, [f"{r:g}" for r in result.r_min])
            if row == 1:
                ax.set_xlabel("r_min")
        grid[row, 0].set_ylabel(f"1 - cosine with\n{what}")
    grid[1, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"{result.scenario}: FPTT's methods at equal bits")
    return fig


def plot_pareto(result, r_min=None, length=None):
    """The comparison's ``fptt_methods_pareto.png``: memory against error.

    At one ``r_min`` (default 0.9 when in the grid, else the middle one) and
    ``T`` (default the longest), each method as a point of learner memory
    against its error with BPTT at equal bits, BPTT itself among them (with
    exact BPTT), the Pareto front drawn through the methods no other beats on
    both, and the region a designer asks for shaded: a cosine of at least
    0.99 in at most a tenth of BPTT's learner memory.
    """
    length = length if length is not None else max(result.lengths)
    if r_min is None:
        r_min = 0.9 if 0.9 in result.r_min else result.r_min[len(result.r_min) // 2]
    value = _methods_value(result, length)
    profiles, methods = result.profiles, result.methods
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig, axes = panel_figure(len(profiles), 4.4, min_width=8.0, sharey=True)
    for ax, profile in zip(axes, profiles, strict=True):
        points = [
            (
                value(profile, m, r_min, "learner_bytes"),
                value(profile, m, r_min, "cosine" if m == "bptt" else "cosine_bptt"),
                m,
            )
            for m in methods
        ]
        bptt_bytes = value(profile, "bptt", r_min, "learner_bytes")
        ax.axvspan(0, bptt_bytes / 10, color="tab:green", alpha=0.08)
        ax.axhline(0.01, color="grey", linestyle=":", linewidth=0.8)
        front = _pareto_front([(m, c) for m, c, name in points if name != "bptt"])
        if front:
            xs, ys = zip(*front, strict=True)
            ax.step(xs, _gradient_error(ys), where="post", color="black", lw=0.6)
        for memory, cosine, method in points:
            ax.plot(
                memory,
                _gradient_error(cosine),
                "s" if method == "bptt" else "o",
                color=colours[method],
                markersize=6,
                alpha=0.85,
                label=method,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("learner memory (bytes)")
        ax.set_title(f"{profile}, r_min = {r_min:g}, T = {length}", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("1 - cosine with BPTT at equal bits\n(BPTT: with exact BPTT)")
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(
        "Learner memory against gradient error; shaded: at most a tenth of "
        "BPTT's memory, dotted: cosine 0.99",
        fontsize=10,
    )
    return fig


def _pareto_front(points):
    """The points no other beats on both less memory and a higher cosine."""
    finite = sorted((m, c) for m, c in points if np.isfinite(m) and np.isfinite(c))
    front = []
    for memory, cosine in finite:
        if not front or cosine > front[-1][1]:
            front.append((memory, cosine))
    return front


# --- the gradient check and the mixed-precision recommendation


def plot_gradcheck(result):
    """Each algorithm's gradient error per parameter array.

    Horizontal bars of ``1 - cosine`` with float64 BPTT on a log axis, one
    group per parameter array and one colour per algorithm; an error below
    1e-16 (a cosine of 1 to the bit, or rounded above 1) is drawn at 1e-16.
    The dashed line is the bound exact algorithms must meet in float64.
    """
    from fpttsim.gradcheck import EXACT_COSINE

    names = list(result.algorithms)
    arrays = list(
        dict.fromkeys(a for c in result.algorithms.values() for a in c.by_parameter)
    )
    fig = _figure((7.0, max(3.0, 1.2 + 0.12 * len(arrays) * max(len(names), 1))))
    ax = fig.add_subplot()
    positions = np.arange(len(arrays))
    height = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        by_parameter = result.algorithms[name].by_parameter
        cosines = [by_parameter.get(a, {}).get("cosine", np.nan) for a in arrays]
        offset = (i - (len(names) - 1) / 2) * height
        ax.barh(
            positions + offset, _gradient_error(cosines), height, label=name, log=True
        )
    ax.axvline(
        1.0 - EXACT_COSINE,
        color="black",
        linestyle="--",
        linewidth=0.8,
        label="bound of exact algorithms in float64",
    )
    ax.set_yticks(positions, arrays, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("1 - cosine with float64 BPTT")
    ax.set_title(
        f"{result.scenario} on {result.profile}: each array's gradient", fontsize=10
    )
    ax.legend(fontsize=8)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return fig


def plot_recommendation(result):
    """The candidates' gradient cosines against the extra bits on δ and ``P``.

    One point per candidate simulated, against exact BPTT and against BPTT
    on the device (the one the recommendation was asked for drawn solid),
    with the target, the ceiling (BPTT on the device against exact BPTT) and,
    when the target was reached, the bits chosen.
    """
    trials = sorted(result.trials, key=lambda t: t.extra_bits)
    fig = _figure()
    ax = fig.add_subplot()
    ks = [t.extra_bits for t in trials]
    for key, label, marker in (
        ("exact_cosine", "against exact BPTT", "o"),
        ("bptt_cosine", "against BPTT on the device", "s"),
    ):
        judged = key == f"{result.against}_cosine"
        ax.plot(
            ks,
            [getattr(t, key) for t in trials],
            "-" if judged else ":",
            marker=marker,
            markersize=5 if judged else 4,
            label=label,
        )
    for level, colour, style, label in (
        (result.target, "black", "--", f"target {result.target:g}"),
        (result.ceiling, "grey", "-.", f"ceiling {result.ceiling:.6f}: BPTT on device"),
    ):
        ax.axhline(level, color=colour, linestyle=style, linewidth=0.8, label=label)
    if result.reached:
        ax.axvline(
            result.extra_bits,
            color="green",
            linestyle=":",
            linewidth=1,
            label=f"chosen: {result.extra_bits:+d} bits",
        )
    ax.set_xlabel("extra fraction bits on FPTT's errors and P")
    ax.set_ylabel(f"gradient cosine (median of {result.windows} windows)")
    ax.set_title(
        f"{result.scenario} on {result.profile}, T = {result.length}: the fewest "
        "extra bits for the target",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return fig
