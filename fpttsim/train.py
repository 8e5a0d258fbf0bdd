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
from fpttsim.numerics.arithmetic import Arithmetic
from fpttsim.numerics.codes import WEIGHTS

log = logging.getLogger(__name__)

# Tasks over a dataset with a small test split evaluate on all of it instead
# (see Task.held_out).
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
        Jacobian was singular; such windows are not applied.
    arithmetic_events, evaluation_events
        Rounding events (saturations, overflows, NaNs, flushes, subnormals)
        by quantity, in training and in the held-out evaluations.
    stopped
        Why the run stopped early, or None when it ran all its steps.
    theta
        The trained parameters.
    """

    rows: list[dict] = field(default_factory=list)
    initial: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    numerical_events: dict = field(default_factory=dict)
    arithmetic_events: dict = field(default_factory=dict)
    evaluation_events: dict = field(default_factory=dict)
    stopped: str | None = None
    steps_done: int = 0
    seconds: float = 0.0
    theta: np.ndarray | None = None


def evaluate(net: Network, theta: np.ndarray, windows, arithmetic=None) -> dict:
    """Mean loss, and accuracy for classification, over ``windows``."""
    losses = []
    correct = counted = 0
    for window in windows:
        if net.loss == "ce":
            result = window_gradient(
                net, theta, window, "spatial", arithmetic=arithmetic
            )
            losses.append(result.loss)
            correct += result.correct
            counted += result.counted
        else:
            losses.append(window_loss(net, theta, window, arithmetic))
    out = {"loss": float(np.mean(losses))}
    if net.loss == "ce":
        out["accuracy"] = correct / max(counted, 1)
    return out


def train(
    scenario,
    on_step: Callable[[int, dict], None] | None = None,
    profile=None,
) -> TrainResult:
    """Train the scenario's network online on its task.

    Every window is computed in the profile's arithmetic, and the weights
    are stored in its weight format after every update.

    Parameters
    ----------
    scenario
        A :class:`fpttsim.config.Scenario`.
    on_step
        Called after every step with the step number and the latest logged
        metrics (for progress display).
    profile
        The hardware profile; None loads the scenario's.

    Returns
    -------
    TrainResult
    """
    profile = profile if profile is not None else scenario.resolve_profile()
    arith = Arithmetic.from_profile(profile, scenario.seed)
    experiment = prepare(scenario)
    task, net = experiment.task, experiment.net
    blocks = net.stored_weights()
    theta = arith.round_blocks(WEIGHTS, experiment.theta, blocks)
    learning = scenario.learning
    training = scenario.training
    check_algorithm(net, learning.algorithm, learning.rtrl_max_bytes)

    held_out_rng = rng_for(scenario, HELD_OUT)
    held_out = task.held_out(held_out_rng, HELD_OUT_WINDOWS)
    evaluation = arith.fresh()  # inference on held-out data counts apart
    optimizer = Optimizer(
        learning.optimizer,
        net.size,
        learning.lr,
        weight_decay=learning.weight_decay,
        clip=learning.clip,
        arithmetic=arith,
    )
    events = {"nonfinite_loss": 0, "nonfinite_gradient": 0, "singular_jacobian": 0}
    result = TrainResult(
        initial=evaluate(net, theta, held_out, evaluation), numerical_events=events
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
                    net, theta, window, learning.algorithm, learning.passes, arith
                )
            except NumericalError as exc:
                events["singular_jacobian"] += 1
                log.warning("step %d: window skipped: %s", step, exc)
                continue
            trouble = _nonfinite(wg)
            if trouble:
                events[trouble] += 1
                if training.on_nan == "stop":
                    result.stopped = (
                        f"step {step}: the window's {trouble.split('_')[1]} is not "
                        "finite; the run stopped (training.on_nan: stop). "
                        "See the event counters for where values overflowed."
                    )
                    break
                continue
            grad += wg.grad
            applied += 1
            interval.add(wg)
        if result.stopped:
            break
        if applied:
            interval.grad_norm.append(optimizer.step(theta, grad / applied))
            theta = arith.round_blocks(WEIGHTS, theta, blocks)

        if step % training.log_every == 0 or step == training.steps:
            latest = interval.row(step, time.perf_counter() - start)
            result.rows.append(latest)
            interval = _Interval(net.loss == "ce")
        if on_step is not None:
            on_step(step, latest)

    result.seconds = time.perf_counter() - start
    result.steps_done = step if not result.stopped else step - 1
    result.final = evaluate(net, theta, held_out, evaluation)
    result.theta = theta
    result.arithmetic_events = arith.events()
    result.evaluation_events = evaluation.events()
    return result


def _nonfinite(wg) -> str | None:
    """Which part of a window's result is not finite, if any."""
    if not math.isfinite(wg.loss):
        return "nonfinite_loss"
    if not np.all(np.isfinite(wg.grad)):
        return "nonfinite_gradient"
    return None


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
