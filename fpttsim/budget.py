"""``fpttsim budget``: does a scenario fit a device, and are its gradients good.

Memory comes from the device's own plan (:func:`fpttsim.device.memory.plan`),
so the budget's bytes are the bytes the device's arena allocates. Reversible
BPTT, which the device does not run, is computed analytically: it holds what
FPTT holds without ``P`` and the warm-up's errors, and, to undo each step
exactly in finite precision, the bits each step forgets (``log2(1/|lambda|)``
per unit, or the negative Lyapunov exponents of a dense cell) for every step
of the window. Cost comes from :class:`fpttsim.device.cost.CostModel`, the
precision budget from :mod:`fpttsim.precision`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from fpttsim.device.cost import CostModel
from fpttsim.device.memory import REPLAY, WORKING, Buffer, breakdown, plan
from fpttsim.errors import ConfigError
from fpttsim.experiment import prepare
from fpttsim.learn.engine import check_algorithm, layer_modes
from fpttsim.numerics.formats import parse_format
from fpttsim.precision import DEFAULT_THRESHOLD, Check, Prediction, check, predict

ALGORITHMS = ("fptt", "bptt", "rtrl", "spatial", "reversible")
"""Algorithms a budget covers; ``reversible`` is reversible BPTT (analytic)."""

LONGEST = 2**40  # the largest length the search for what fits looks at

MEMORY_PNG = "budget_memory.png"
PRECISION_PNG = "budget_precision.png"


@dataclass
class AlgorithmBudget:
    """Memory and cost of one algorithm.

    Attributes
    ----------
    name
        The algorithm.
    bytes
        Bytes by component.
    working_bytes, replay_bytes
        Bytes in working memory and in the replay memory.
    fits
        Whether both fit the profile's memories.
    margin_bytes
        Working and replay capacity left (negative: over).
    max_length_that_fits
        The largest window length that fits; None when any length fits, 0
        when none does.
    cost
        Work per window, per sample (window learning plus inference) and per
        update, at the profile's throughput and energy.
    note
        Why an algorithm does not apply, when it does not.
    """

    name: str
    bytes: dict
    working_bytes: int
    replay_bytes: int
    fits: bool
    margin_bytes: dict
    max_length_that_fits: int | None
    cost: dict = field(default_factory=dict)
    note: str = ""

    @property
    def total_bytes(self) -> int:
        """Bytes in both memories."""
        return self.working_bytes + self.replay_bytes

    def to_dict(self) -> dict:
        """JSON-ready data."""
        return {
            "bytes": self.bytes,
            "total_bytes": self.total_bytes,
            "working_bytes": self.working_bytes,
            "replay_bytes": self.replay_bytes,
            "fits": self.fits,
            "margin_bytes": self.margin_bytes,
            "max_length_that_fits": self.max_length_that_fits,
            "cost": self.cost,
            "note": self.note,
        }


@dataclass
class BudgetResult:
    """Outcome of :func:`budget`.

    Attributes
    ----------
    scenario, profile
        Names of what was budgeted.
    length
        The scenario's window length.
    working_memory_bytes, replay_memory_bytes
        The profile's memories.
    algorithms
        Each algorithm's :class:`AlgorithmBudget`.
    prediction
        The precision prediction.
    check
        The prediction checked by simulation; None when not asked for.
    memory_curves
        Per algorithm, a function of the window length giving its buffers
        (the device's plan at that length), for the memory figure.

    Examples
    --------
    >>> import fpttsim
    >>> result = fpttsim.budget("quickstart", simulate=False)
    >>> result.algorithms["fptt"].fits, result.to_dict()["length"]
    (True, 50)
    >>> (ax,) = result.plot().axes
    >>> [line.get_label() for line in ax.lines[:3]]
    ['fptt', 'bptt', 'rtrl']
    >>> fptt, bptt = (line.get_ydata() for line in ax.lines[:2])
    >>> bool(fptt.min() == fptt.max() < bptt.max())
    True
    """

    scenario: str
    profile: str
    length: int
    working_memory_bytes: int
    replay_memory_bytes: int
    algorithms: dict
    prediction: Prediction
    check: Check | None = None
    memory_curves: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready data."""
        precision = self.prediction.to_dict()
        precision["measured"] = []
        if self.check is not None:
            checked = self.check.to_dict()
            precision["measured"] = checked.pop("measured")
            precision["check"] = checked
        precision["required_fraction_bits"] = {
            q: v["fraction_bits"] for q, v in self.prediction.required.items()
        }
        return {
            "scenario": self.scenario,
            "profile": self.profile,
            "length": self.length,
            "working_memory_bytes": self.working_memory_bytes,
            "replay_memory_bytes": self.replay_memory_bytes,
            "algorithms": {k: a.to_dict() for k, a in self.algorithms.items()},
            "precision": precision,
            "cost": {k: a.cost for k, a in self.algorithms.items() if a.cost},
        }

    def to_json(self) -> str:
        """The result as a JSON document."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def plot(self):
        """Memory against T per algorithm, and the precision panel when checked.

        The left panel is :func:`fpttsim.report.plot_budget_memory` (working
        memory of each algorithm on log axes, with the device's working
        memory dashed and the scenario's length in grey), the right one, when
        the prediction was checked by simulation,
        :func:`fpttsim.report.plot_budget_precision` (measured and modelled
        cosines against T, the threshold and the predicted limit).

        Returns
        -------
        matplotlib.figure.Figure
            One panel, or two when ``check`` is not None.
        """
        from fpttsim.report import plot_budget

        return plot_budget(self)

    def write_figures(self, folder) -> list:
        """Write ``budget_memory.png`` and, when checked, ``budget_precision.png``.

        The two panels of :meth:`plot`, each as a figure of its own.

        Parameters
        ----------
        folder
            Where to write; created if missing.

        Returns
        -------
        list of Path
            The files written.
        """
        from fpttsim.report import (
            plot_budget_memory,
            plot_budget_precision,
            write_figure,
        )

        folder = Path(folder)
        files = [write_figure(plot_budget_memory(self), folder / MEMORY_PNG)]
        if self.check is not None:
            figure = plot_budget_precision(self)
            files.append(write_figure(figure, folder / PRECISION_PNG))
        return files


# ---------------------------------------------------------------- memory
def _reversible(net, spectra, length: int, profile, scenario) -> list[Buffer]:
    """Reversible BPTT's buffers: FPTT's without P and delta', plus lost bits."""
    learning = scenario.learning
    buffers = [
        b
        for b in plan(
            net,
            "fptt",
            length,
            profile,
            learning.optimizer,
            learning.momentum > 0,
            scenario.device.double_buffer,
        )
        if b.name not in ("learner.jacobian_product", "learner.delta")
    ]
    s = net.cells[0].state_size
    delta_bits = parse_format(profile.format_of("error").format).bits
    buffers.append(Buffer("learner.delta", "errors", 2 * net.layers * s, delta_bits))
    lost = sum(float(sp.rates.sum()) for sp in spectra)  # bits forgotten a step
    buffers.append(Buffer("reversal.lost_bits", "activations", length, math.ceil(lost)))
    return buffers


def _buffers(name, net, spectra, length, profile, scenario) -> list[Buffer]:
    if name == "reversible":
        return _reversible(net, spectra, length, profile, scenario)
    learning = scenario.learning
    return plan(
        net,
        name,
        length,
        profile,
        learning.optimizer,
        learning.momentum > 0,
        scenario.device.double_buffer,
        segments=learning.fptt.segments if name == "fptt" else 1,
        refine=learning.fptt.refine if name == "fptt" else 0,
    )


def _use(buffers: list[Buffer]) -> tuple[int, int]:
    working = sum(b.bytes for b in buffers if b.memory == WORKING)
    replay = sum(b.bytes for b in buffers if b.memory == REPLAY)
    return working, replay


def _fits(buffers, profile) -> bool:
    working, replay = _use(buffers)
    mem = profile.memory
    return working <= mem.working_bytes and replay <= mem.replay_bytes


def _max_length(build, profile) -> int | None:
    """Largest length whose buffers fit (None: every length; 0: none)."""
    if not _fits(build(1), profile):
        return 0
    if _fits(build(LONGEST), profile):
        return None
    low, high = 1, 2
    while _fits(build(high), profile):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _fits(build(mid), profile) else (low, mid)
    return low


def _cost(name, cost_model: CostModel, net, length, masked, scenario, profile):
    learning = scenario.learning
    if name == "reversible":
        # BPTT's work with each backward step undone: one solve per layer
        window = cost_model.window("bptt", length, masked, None)
        window = window + cost_model.solve() * (length * net.layers)
    else:
        modes = layer_modes(net, name, learning.passes if name == "fptt" else None)
        if name == "fptt":
            # segments, refinement and the inverse change FPTT's work only
            cost_model = CostModel(net, profile, learning.fptt)
        window = cost_model.window(name, length, masked, modes)
    update = cost_model.update(learning.optimizer, learning.momentum > 0)
    infer = cost_model.inference_sample()
    per_sample = window * (1.0 / length) + infer + update * (1.0 / length)
    return {
        "per_window": (window + update).to_dict(profile),
        "per_sample": per_sample.to_dict(profile),
    }


def budget(
    scenario,
    profile=None,
    threshold: float = DEFAULT_THRESHOLD,
    simulate: bool = True,
    max_length: int = 20000,
    windows: int = 1,
) -> BudgetResult:
    """Memory, cost and precision budgets of a scenario on a profile.

    Parameters
    ----------
    scenario
        A :class:`fpttsim.config.Scenario`.
    profile
        The hardware profile; None uses the scenario's.
    threshold
        The gradient cosine FPTT must keep.
    simulate
        Whether to check the precision prediction by simulation.
    max_length
        The longest window the check simulates.
    windows
        Windows per length in the check (their median cosine counts).

    Returns
    -------
    BudgetResult
    """
    profile = profile if profile is not None else scenario.resolve_profile()
    experiment = prepare(scenario)
    net = experiment.net
    length = scenario.task.length or next(experiment.task.stream(0)).inputs.shape[0]
    prediction = predict(scenario, profile, threshold=threshold, experiment=experiment)
    spectra = [layer.spectrum for layer in prediction.layers]
    cost_model = CostModel(net, profile)
    sample = next(experiment.task.stream(scenario.seed))
    masked = float(sample.mask.sum()) * length / sample.mask.size
    algorithms = {}
    curves = {}
    for name in ALGORITHMS:
        note = ""
        if name == "rtrl":
            if net.layers > 1:
                continue  # RTRL runs on one recurrent layer only
            try:
                check_algorithm(net, name, scenario.learning.rtrl_max_bytes)
            except ConfigError as exc:
                note = exc.message

        def build(n, name=name):
            return _buffers(name, net, spectra, n, profile, scenario)

        buffers = build(length)
        working, replay = _use(buffers)
        mem = profile.memory
        algorithms[name] = AlgorithmBudget(
            name,
            breakdown(buffers),
            working,
            replay,
            _fits(buffers, profile),
            {
                "working": mem.working_bytes - working,
                "replay": mem.replay_bytes - replay,
            },
            _max_length(build, profile),
            _cost(name, cost_model, net, length, masked, scenario, profile),
            note,
        )
        curves[name] = build
    result = BudgetResult(
        scenario.name,
        profile.name,
        length,
        profile.memory.working_bytes,
        profile.memory.replay_bytes,
        algorithms,
        prediction,
        memory_curves=curves,
    )
    if simulate:
        result.check = check(
            scenario,
            profile,
            prediction,
            threshold,
            max_length=max_length,
            windows=windows,
            experiment=experiment,
        )
    return result
