"""The public Python functions; the command line is a thin layer over them."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fpttsim import methods as _methods
from fpttsim import report
from fpttsim import study as _study
from fpttsim.budget import BudgetResult
from fpttsim.budget import budget as _budget
from fpttsim.config import (
    Profile,
    Scenario,
    load_scenario,
    parse_overrides,
)
from fpttsim.config.schema import json_schema
from fpttsim.device import Device, DeviceResult
from fpttsim.device.loop import read_checkpoint
from fpttsim.errors import ConfigError
from fpttsim.gradcheck import GradcheckResult
from fpttsim.gradcheck import gradcheck as _gradcheck
from fpttsim.methods import MethodsResult
from fpttsim.mixed import Recommendation, Trial, recommend
from fpttsim.nir_export import NirExport
from fpttsim.nir_export import export_nir as _export_nir
from fpttsim.study import StudyResult
from fpttsim.study import gradient_quality as _gradient_quality

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
        The device's run: metrics rows, held-out loss before and after,
        numerical events, memory, device time and energy, trained
        parameters.
    out
        The folder the outputs were written to, or None.
    files
        Paths of the files written.
    scenario_file
        The file the scenario was read from, when known.

    Examples
    --------
    >>> import fpttsim
    >>> sc = fpttsim.load_scenario(
    ...     "quickstart", {"training.steps": 40, "training.eval_every": 20})
    >>> result = fpttsim.run(sc)
    >>> result.to_dict()["steps_done"], result.out
    (40, None)
    >>> fig = result.plot()
    >>> ax, right = fig.axes
    >>> [line.get_label() for line in ax.lines + right.lines]
    ['loss', 'online_loss', 'eval_loss', 'accuracy', 'eval_accuracy']
    """

    scenario: Scenario
    profile: Profile
    training: DeviceResult
    out: Path | None = None
    files: list[Path] = field(default_factory=list)
    scenario_file: str | None = None

    def to_dict(self) -> dict:
        """The content of ``result.json``."""
        training = self.training
        return {
            "name": self.scenario.name,
            "seed": self.scenario.seed,
            "scenario": self.scenario.model_dump(mode="json"),
            "scenario_file": self.scenario_file or self.scenario.source,
            "profile": self.profile.model_dump(mode="json"),
            "initial": training.initial,
            "final": training.final,
            "last_logged": training.rows[-1] if training.rows else {},
            "steps_done": training.steps_done,
            "windows": training.windows,
            "stopped": training.stopped,
            "resumed_from_step": training.resumed_from,
            "memory": training.memory,
            "device": training.device,
            "numerical_events": training.numerical_events,
            "arithmetic_events": training.arithmetic_events,
            "timings": {
                "train_seconds": training.seconds,
                "ms_per_step": 1e3 * training.seconds / max(training.steps_done, 1),
                "samples_per_second": training.windows
                * self.scenario.task.length
                / max(training.seconds, 1e-12),
            },
            "versions": report.versions(),
        }

    def to_json(self) -> str:
        """``result.json`` as a string (strict JSON: non-finite as strings)."""
        return json.dumps(report.jsonable(self.to_dict()), indent=2)

    def _title(self) -> str:
        return f"{self.scenario.name}: {self.scenario.learning.algorithm}"

    def plot(self):
        """The learning curve, as ``learning_curve.png`` holds it.

        The learner's loss (the mean over each logged interval), the loss on
        the arriving samples before they were learnt (``online_loss``) and,
        when ``training.eval_every`` measured it, the held-out loss
        (``eval_loss``) against updates, on the left axis; for a
        classification task the learner's and the held-out accuracies on the
        right, dashed.

        Returns
        -------
        matplotlib.figure.Figure
            Drawn outside pyplot: show it in a notebook, or save it with
            ``fig.savefig(path)``.
        """
        rows = self.training.rows
        losses = [
            k for k in ("loss", "online_loss", "eval_loss") if any(k in r for r in rows)
        ]
        # accuracies only for classification: every logged row then has one
        accuracies = (
            [k for k in ("accuracy", "eval_accuracy") if any(k in r for r in rows)]
            if rows and "accuracy" in rows[0]
            else None
        )
        return report.plot_learning_curve(
            rows, title=self._title(), y=losses or ("loss",), secondary=accuracies
        )


def run(
    scenario: ScenarioLike | None,
    out: str | os.PathLike | None = None,
    *,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    on_step: Callable[[int, dict], None] | None = None,
    resume: bool = False,
) -> RunResult:
    """Simulate the device learning a scenario online, and write its outputs.

    Parameters
    ----------
    scenario
        A :class:`Scenario`, a path to a scenario file, or a shipped name;
        None with ``resume``, to take the one the checkpoint was made with.
    out
        Folder for ``result.json``, ``metrics.csv``, the plots,
        ``parameters.npz`` and the checkpoints; nothing is written when None.
    overrides
        Key-path overrides when ``scenario`` is a name or a path.
    on_step
        Progress callback ``(step, latest logged metrics)``.
    resume
        Continue the interrupted run whose checkpoint is in ``out``.

    Returns
    -------
    RunResult

    Raises
    ------
    BudgetError
        When the scenario's buffers do not fit the profile's memory; raised
        before the first sample, with the bytes by component.

    Examples
    --------
    >>> import fpttsim
    >>> sc = fpttsim.load_scenario("quickstart", {"training.steps": 40})
    >>> result = fpttsim.run(sc)
    >>> result.training.final["loss"] < result.training.initial["loss"]
    True
    """
    if resume:
        if out is None:
            raise ConfigError("resuming needs the run's folder", key="--resume")
        saved_scenario, profile, source = read_checkpoint(out)
        scenario = (
            saved_scenario if scenario is None else _scenario(scenario, overrides)
        )
    else:
        scenario = _scenario(scenario, overrides)
        profile = scenario.resolve_profile()
    with _located(scenario):
        device = Device(scenario, profile)
        training = device.run(on_step, checkpoint_dir=out, resume=resume)
    result = RunResult(scenario, profile, training)
    if resume:
        result.scenario_file = source
    if out is not None:
        result.out = Path(out)
        result.files = _write_outputs(result)
    return result


def _write_outputs(result: RunResult) -> list[Path]:
    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    files = [
        report.write_result_json(out, result.to_dict()),
        report.write_metrics_csv(out, result.training.rows),
        report.write_figure(result.plot(), out / report.LEARNING_CURVE_PNG),
        report.write_figure(
            report.plot_memory(
                result.training.memory["components"],
                {
                    "working": result.profile.memory.working_bytes,
                    "replay": result.profile.memory.replay_bytes,
                },
                title=f"{result._title()}: device memory by component "
                f"({result.profile.name})",
            ),
            out / report.MEMORY_PNG,
        ),
    ]
    cosine = report.plot_gradient_cosine(result.training.rows, title=result._title())
    if cosine is not None:
        files.append(report.write_figure(cosine, out / report.GRADIENT_COSINE_PNG))
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


def budget(
    scenario: ScenarioLike,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    *,
    threshold: float = 0.99,
    simulate: bool = True,
    max_length: int = 20000,
) -> BudgetResult:
    """Memory, cost and precision budgets of a scenario, before training.

    Parameters
    ----------
    scenario
        A :class:`Scenario`, a path to a scenario file, or a shipped name.
    overrides
        Key-path overrides when ``scenario`` is a name or a path (a
        ``profile`` override picks the device).
    threshold
        The gradient cosine FPTT must keep with the exact gradient.
    simulate
        Whether to check the precision prediction by simulating lengths
        around it.
    max_length
        The longest window the check simulates.

    Returns
    -------
    BudgetResult

    Examples
    --------
    >>> import fpttsim
    >>> short = fpttsim.budget("quickstart", {"task.length": 100}, simulate=False)
    >>> long = fpttsim.budget("quickstart", {"task.length": 100000}, simulate=False)
    >>> fptt = [b.algorithms["fptt"] for b in (short, long)]
    >>> fptt[0].working_bytes == fptt[1].working_bytes
    True
    """
    scenario = _scenario(scenario, overrides)
    profile = scenario.resolve_profile()
    with _located(scenario):
        return _budget(
            scenario,
            profile,
            threshold=threshold,
            simulate=simulate,
            max_length=max_length,
        )


def recommend_precision(
    scenario: ScenarioLike,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    *,
    target: float = 0.99,
    against: str = "exact",
    windows: int = 2,
    max_extra_bits: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> Recommendation:
    """The fewest extra bits on FPTT's errors and P that reach a gradient cosine.

    FPTT's errors (``error``) and Jacobian product (``jacobian_product``)
    are widened by the same number of fraction bits, everything else staying
    in the device's formats; the precision budget suggests where to start and
    simulation decides (:func:`fpttsim.mixed.recommend`).

    Parameters
    ----------
    scenario
        A :class:`Scenario`, a path to a scenario file, or a shipped name.
    overrides
        Key-path overrides when ``scenario`` is a name or a path (a
        ``profile`` override picks the device).
    target
        The gradient cosine to reach, in ``(0, 1)``.
    against
        ``"exact"``: the cosine with exact float64 BPTT; ``"bptt"``: with BPTT
        in the device's own arithmetic.
    windows
        Windows simulated per candidate; their median cosine counts.
    max_extra_bits
        The most extra fraction bits to consider; None up to float64's 52.
    on_trial
        Progress callback, called with each candidate once simulated.

    Returns
    -------
    Recommendation
        The formats, the candidates simulated, the ceiling, and FPTT's
        memory and energy before and after; ``extra_bits`` is None when no
        candidate reaches the target.

    Examples
    --------
    >>> import fpttsim
    >>> result = fpttsim.recommend_precision(
    ...     "quickstart", {"profile": "bf16-systolic"}, target=0.99995,
    ...     against="bptt")
    >>> result.formats
    {'error': 'e8m8', 'jacobian_product': 'e8m8'}
    >>> result.memory["difference_bytes"]
    32
    """
    scenario = _scenario(scenario, overrides)
    profile = scenario.resolve_profile()
    with _located(scenario):
        return recommend(
            scenario,
            profile,
            target=target,
            windows=windows,
            against=against,
            max_extra_bits=max_extra_bits,
            on_trial=on_trial,
        )


def gradient_quality(
    scenario: str | os.PathLike = "quickstart",
    overrides: Mapping[str, Any] | Sequence[str] = (),
    *,
    r_min: Sequence[float] = _study.DEFAULT_R_MIN,
    lengths: Sequence[int] = _study.DEFAULT_LENGTHS,
    profiles: Sequence[str] = _study.DEFAULT_PROFILES,
    seeds: int = _study.DEFAULT_SEEDS,
    threshold: float = _study.DEFAULT_THRESHOLD,
    workers: int | None = None,
    out: str | os.PathLike | None = None,
) -> StudyResult:
    """FPTT's gradient cosine with exact BPTT over ``r_min`` x ``T`` x profile.

    Parameters
    ----------
    scenario
        The base scenario (shipped name or path): cell, sizes, task.
    overrides
        Overrides of the base scenario.
    r_min, lengths, profiles
        The grid; a profile is a shipped name, a path, or a number format
        used for every quantity.
    seeds
        Seeds per point.
    threshold
        The cosine at which the precision budget's prediction is checked.
    workers
        Processes (default: the machine's cores).
    out
        Folder for the CSVs, ``study.json`` and the figures; None writes
        nothing.

    Returns
    -------
    StudyResult

    Examples
    --------
    >>> import fpttsim
    >>> result = fpttsim.gradient_quality(
    ...     r_min=[0.5, 0.99], lengths=[20], profiles=["fp64", "bf16"], seeds=1,
    ...     workers=1)
    >>> [round(e["cosine"], 2) for e in result.summary()]
    [1.0, 1.0, 1.0, 1.0]
    """
    return _grid_study(
        _gradient_quality,
        scenario,
        overrides,
        out,
        r_min=r_min,
        lengths=lengths,
        profiles=profiles,
        seeds=seeds,
        threshold=threshold,
        workers=workers,
    )


def fptt_methods(
    scenario: str | os.PathLike = "quickstart",
    overrides: Mapping[str, Any] | Sequence[str] = (),
    *,
    methods: Sequence[str] = _methods.DEFAULT_METHODS,
    r_min: Sequence[float] = _methods.DEFAULT_R_MIN,
    lengths: Sequence[int] = _methods.DEFAULT_LENGTHS,
    profiles: Sequence[str] = _methods.DEFAULT_PROFILES,
    seeds: int = _methods.DEFAULT_SEEDS,
    workers: int | None = None,
    out: str | os.PathLike | None = None,
) -> MethodsResult:
    """FPTT's methods (refinement, segments, mixed precision) at equal bits.

    Parameters
    ----------
    scenario
        The base scenario (shipped name or path): cell, sizes, task.
    overrides
        Overrides of the base scenario.
    methods
        Methods as :mod:`fpttsim.methods` writes them: ``plain``,
        ``segments:K``, ``refine:K``, ``neumann:M``, ``wide``,
        ``wide:FORMAT``, joined by ``+``.
    r_min, lengths, profiles
        The grid; a profile is a shipped name, a path, or a number format
        used for every quantity.
    seeds
        Seeds per point.
    workers
        Processes (default: the machine's cores).
    out
        Folder for the CSVs, ``study.json`` and the figures; None writes
        nothing.

    Returns
    -------
    MethodsResult
        Per point, each method's gradient cosine with exact BPTT and with
        BPTT at equal bits, its end residual, error passes and learner
        memory; BPTT is a method of its own.

    Examples
    --------
    >>> import fpttsim
    >>> result = fpttsim.fptt_methods(
    ...     methods=["plain", "segments:4"], r_min=[0.8], lengths=[1000],
    ...     profiles=["fp32"], seeds=1, workers=1)
    >>> cosine = {e["method"]: e["cosine_bptt"] for e in result.summary()}
    >>> cosine["segments:4"] > 0.9999 > cosine["plain"]
    True
    """
    return _grid_study(
        _methods.fptt_methods,
        scenario,
        overrides,
        out,
        methods=methods,
        r_min=r_min,
        lengths=lengths,
        profiles=profiles,
        seeds=seeds,
        workers=workers,
    )


def _grid_study(study, scenario, overrides, out, **grid):
    """Run ``study`` on its grid; write its outputs into ``out`` when given."""
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    result = study(scenario, dict(overrides), **grid)
    if out is not None:
        result.write(out)
    return result


def export_nir(
    scenario: ScenarioLike,
    out: str | os.PathLike,
    *,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    weights: str | os.PathLike | None = None,
    dt: float | None = None,
) -> NirExport:
    """Write a real-diagonal network's recurrent core as a NIR graph.

    The first layer's input projection, leaky integrators and cell output
    ``C h + D u`` become NIR nodes, each integrator's discrete decay NIR's
    continuous time constant for steps of ``dt``; what has no NIR node
    (layer normalisation, GELU) and all that follows it is left out and
    listed. :mod:`fpttsim.nir_export` gives the mapping and its derivation.

    Parameters
    ----------
    scenario
        A :class:`Scenario`, a path to a scenario file, or a shipped name,
        with ``model.cell: diagonal``.
    out
        The NIR file to write.
    overrides
        Key-path overrides when ``scenario`` is a name or a path.
    weights
        A run's folder holding ``parameters.npz`` (from :func:`run` with
        ``out``), or that file; None for the scenario's initial parameters.
    dt
        The time step in seconds; None for the stream's sample period,
        ``1 / device.rate_hz``.

    Returns
    -------
    NirExport
        The file, the time step, the nodes, how each parameter maps, and
        what was left out and why.

    Raises
    ------
    ConfigError
        As :func:`fpttsim.nir_export.export_nir` says: the LRU, RNN and GRU
        are refused on ``model.cell``.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> import fpttsim, nir
    >>> folder = Path(tempfile.mkdtemp())
    >>> result = fpttsim.export_nir("nir-diagonal", folder / "core.nir")
    >>> result.dt
    0.001
    >>> graph = nir.read(folder / "core.nir")
    >>> [type(graph.nodes[name]).__name__ for name in ("projection", "integrator")]
    ['Linear', 'LI']
    >>> float(graph.metadata["dt"])
    0.001
    >>> shutil.rmtree(folder)
    """
    return _export_nir(_scenario(scenario, overrides), out, weights=weights, dt=dt)


def schema(kind: str) -> dict:
    """The JSON Schema (draft 2020-12) of scenario, profile or sweep files.

    What ``fpttsim schema KIND`` prints and the repository's
    ``schemas/<kind>.schema.json`` holds, for editors to complete and check
    the YAML files with: ``kind`` is ``"scenario"``, ``"profile"`` or
    ``"sweep"`` (:func:`fpttsim.config.schema.json_schema` raises
    ``ValueError`` for anything else).

    Examples
    --------
    >>> import fpttsim
    >>> sorted(fpttsim.schema("scenario")["properties"])[:3]
    ['description', 'device', 'gradcheck']
    >>> fpttsim.schema("sweep")["required"]
    ['name', 'base']
    """
    return json_schema(kind)


def sweep(
    path,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    dask: bool = False,
    retry_failed: bool = False,
    progress: bool = False,
):
    r"""Run a sweep file's runs that are not yet finished in ``out``.

    Parameters
    ----------
    path
        The sweep file, or a sweep already loaded with
        :func:`fpttsim.sweeps.load_sweep`.
    out
        The sweep's folder: ``runs/<key>/``, ``results.jsonl``,
        ``sweep.json``.
    workers
        Worker processes (default: the machine's cores).
    scheduler
        A Dask scheduler's address (``tcp://HOST:PORT``); with ``dask`` and
        no address, a local Dask cluster of ``workers`` processes.
    dask
        Whether to use Dask rather than the local process pool.
    retry_failed
        Whether runs recorded as failed run again (otherwise they count as
        finished).
    progress
        Whether to show a progress line on stderr.

    Returns
    -------
    fpttsim.sweeps.SweepOutcome

    Examples
    --------
    Two seeds of a gradient check; run again, the sweep finds both done.

    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> import fpttsim
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "seeds.yaml").write_text(
    ...     "name: seeds\nbase: gradcheck-diagonal\ncommand: gradcheck\nseeds: 2\n")
    >>> outcome = fpttsim.sweep(folder / "seeds.yaml", folder / "out", workers=1)
    >>> outcome.total, outcome.done, outcome.failed
    (2, 2, 0)
    >>> fpttsim.sweep(folder / "seeds.yaml", folder / "out", workers=1).skipped
    2
    >>> shutil.rmtree(folder)
    """
    from fpttsim import sweeps

    loaded = path if isinstance(path, sweeps.Sweep) else sweeps.load_sweep(path)
    if scheduler or dask:
        executor = sweeps.DaskExecutor(scheduler, workers)
    else:
        executor = sweeps.LocalPool(workers)
    return sweeps.run_sweep(
        loaded, out, executor, retry_failed=retry_failed, progress=progress
    )
