"""Online training on a streaming task: the loop behind ``fpttsim run``.

Each step draws ``training.batch`` windows from the task's stream, computes
their gradient with the scenario's algorithm, and updates the parameters.
Held-out windows, drawn once from their own seed, measure the loss before and
after training, so that "it learned" is a statement about unseen data.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fpttsim.errors import NumericalError
from fpttsim.experiment import HELD_OUT, prepare, rng_for
from fpttsim.learn import Optimizer, check_algorithm, window_gradient, window_loss
from fpttsim.network import Network

log = logging.getLogger(__name__)

HELD_OUT_WINDOWS = 64


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    rows
        One dict per logged step: ``step``, ``loss`` (mean over the interval),
        ``accuracy`` (classification), ``residual`` (FPTT's largest relative
        end residual in the interval), ``grad_norm``, ``seconds``.
    initial, final
        Held-out loss (and accuracy) before and after training.
    numerical_events
        Counts of windows whose loss or gradient was not finite, or whose
        Jacobian was singular; such windows are skipped, not applied.
    theta
        The trained parameters.
    """

    rows: list[dict] = field(default_factory=list)
    initial: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    numerical_events: dict = field(default_factory=dict)
    seconds: float = 0.0
    theta: np.ndarray | None = None


def evaluate(net: Network, theta: np.ndarray, windows) -> dict:
    """Mean loss, and accuracy for classification, over ``windows``."""
    losses = []
    correct = counted = 0
    for window in windows:
        if net.loss == "ce":
            result = window_gradient(net, theta, window, "spatial")
            losses.append(result.loss)
            correct += result.correct
            counted += result.counted
        else:
            losses.append(window_loss(net, theta, window))
    out = {"loss": float(np.mean(losses))}
    if net.loss == "ce":
        out["accuracy"] = correct / max(counted, 1)
    return out


def train(
    scenario,
    on_step: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train the scenario's network online on its task.

    Parameters
    ----------
    scenario
        A :class:`fpttsim.config.Scenario`.
    on_step
        Called after every step with the step number and the latest logged
        metrics (for progress display).

    Returns
    -------
    TrainResult
    """
    experiment = prepare(scenario)
    task, net, theta = experiment.task, experiment.net, experiment.theta
    learning = scenario.learning
    training = scenario.training
    check_algorithm(net, learning.algorithm, learning.rtrl_max_bytes)

    held_out_rng = rng_for(scenario, HELD_OUT)
    held_out = [task.sample(held_out_rng) for _ in range(HELD_OUT_WINDOWS)]
    optimizer = Optimizer(
        learning.optimizer,
        net.size,
        learning.lr,
        weight_decay=learning.weight_decay,
        clip=learning.clip,
    )
    events = {"nonfinite_loss": 0, "nonfinite_gradient": 0, "singular_jacobian": 0}
    result = TrainResult(
        initial=evaluate(net, theta, held_out), numerical_events=events
    )

    stream = task.stream(scenario.seed)
    start = time.perf_counter()
    interval = _Interval(net.loss == "ce")
    latest: dict = {}
    for step in range(1, training.steps + 1):
        grad = np.zeros(net.size)
        applied = 0
        for _ in range(training.batch):
            window = next(stream)
            try:
                wg = window_gradient(
                    net, theta, window, learning.algorithm, learning.passes
                )
            except NumericalError as exc:
                events["singular_jacobian"] += 1
                log.warning("step %d: window skipped: %s", step, exc)
                continue
            if not math.isfinite(wg.loss):
                events["nonfinite_loss"] += 1
                continue
            if not np.all(np.isfinite(wg.grad)):
                events["nonfinite_gradient"] += 1
                continue
            grad += wg.grad
            applied += 1
            interval.add(wg)
        if applied:
            interval.grad_norm.append(optimizer.step(theta, grad / applied))

        if step % training.log_every == 0 or step == training.steps:
            latest = interval.row(step, time.perf_counter() - start)
            result.rows.append(latest)
            interval = _Interval(net.loss == "ce")
        if on_step is not None:
            on_step(step, latest)

    result.seconds = time.perf_counter() - start
    result.final = evaluate(net, theta, held_out)
    result.theta = theta
    return result


class _Interval:
    """Metrics gathered between two logged steps."""

    def __init__(self, classification: bool) -> None:
        self.classification = classification
        self.losses: list[float] = []
        self.residuals: list[float] = []
        self.grad_norm: list[float] = []
        self.correct = 0
        self.counted = 0

    def add(self, wg) -> None:
        self.losses.append(wg.loss)
        self.correct += wg.correct
        self.counted += wg.counted
        self.residuals += [d.residual_relative for d in wg.layers if d.mode == "fptt"]

    def row(self, step: int, seconds: float) -> dict:
        row = {"step": step, "loss": _mean(self.losses)}
        if self.classification and self.counted:
            row["accuracy"] = self.correct / self.counted
        if self.residuals:
            row["residual"] = max(self.residuals)
        row["grad_norm"] = _mean(self.grad_norm)
        row["seconds"] = seconds
        return row


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
