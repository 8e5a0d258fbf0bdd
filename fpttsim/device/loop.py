"""The device learning from a stream: the loop behind ``fpttsim run``.

Samples arrive at ``device.rate_hz``; the device runs inference on each and
stores it in the replay buffer; when a window of ``T`` samples is in and the
learner is free, the learner computes the window's gradient on the device's
schedule (FPTT's ``L + 1`` passes) and, every ``training.batch`` learnt
windows, updates the parameters. :class:`~fpttsim.device.timeline.Clock` says
when each job starts and ends; an update reaches the inference of the
samples arriving after its job ends. Every buffer comes from the device's
memory arena, sized by the profile; a scenario that does not fit stops
before the first sample with the breakdown.

Held-out windows, drawn once from their own seed, measure the loss before,
during (every ``training.eval_every`` updates) and after training. Every
``training.cosine_every`` updates the device's gradient is compared with
float64 BPTT's on the same window. With a checkpoint folder, the whole state
is saved every ``training.checkpoint_every`` updates, and a run resumed from
it ends with the same numbers, bit for bit, as a run that was not stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fpttsim.config.scenario import FpttConfig
from fpttsim.device.cost import CostModel
from fpttsim.device.memory import Arena, breakdown, plan
from fpttsim.device.timeline import Clock
from fpttsim.errors import CheckFailed, ConfigError, NumericalError
from fpttsim.experiment import HELD_OUT, prepare, rng_for
from fpttsim.learn import (
    Optimizer,
    _stream,
    check_algorithm,
    layer_modes,
    stream_gradient,
    stream_online,
    window_gradient,
)
from fpttsim.learn.engine import (
    part_offsets,
    reference_arithmetic,
    step_targets,
    stream_buffers,
)
from fpttsim.numerics import codes
from fpttsim.numerics.arithmetic import Arithmetic

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


@dataclass
class DeviceResult:
    """What a device run produced.

    Attributes
    ----------
    rows
        One dict per logged update: ``step``, ``window``, ``loss`` (the
        learner's mean over the interval), ``accuracy``, ``online_loss`` and
        ``online_accuracy`` (inference on the arriving samples, before they
        were learnt), ``residual`` (FPTT's largest relative end residual),
        ``error_passes`` (segmented or refined FPTT: the mean steps its error
        passes ran over the window's length, refinement's probes included),
        ``grad_norm``, ``seconds``; and ``eval_loss`` / ``eval_accuracy`` on
        held-out data, ``cosine`` against float64 BPTT, when measured.
    initial, final
        Held-out loss (and accuracy) before and after training.
    numerical_events
        Windows whose loss or gradient was not finite, or whose Jacobian was
        singular; such windows are not applied.
    arithmetic_events
        Rounding events by quantity: ``learning``, ``inference`` (the
        arriving samples) and ``evaluation`` (held-out data).
    memory
        The plan's bytes by component and buffer, and the arena's peak.
    device
        Costs per sample and window, the timeline's summary, device time and
        energy.
    """

    rows: list[dict] = field(default_factory=list)
    initial: dict = field(default_factory=dict)
    final: dict = field(default_factory=dict)
    numerical_events: dict = field(default_factory=dict)
    arithmetic_events: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    stopped: str | None = None
    steps_done: int = 0
    windows: int = 0
    seconds: float = 0.0
    resumed_from: int | None = None
    theta: np.ndarray | None = None


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two gradients (NaN if either is zero)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0 or not (math.isfinite(na) and math.isfinite(nb)):
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


class Device:
    """A device learning a scenario's task from its stream.

    Parameters
    ----------
    scenario
        The :class:`fpttsim.config.Scenario`.
    profile
        Its hardware profile.

    Raises
    ------
    BudgetError
        When the scenario's buffers do not fit the profile's memory.
    CheckFailed
        When inference on one sample takes longer than the time between two
        samples: the learner would never get the processor.
    ConfigError
        When the algorithm cannot run on the network.
    """

    def __init__(self, scenario, profile) -> None:
        self.scenario = scenario
        self.profile = profile
        learning, training = scenario.learning, scenario.training
        experiment = prepare(scenario)
        self.task, self.net = experiment.task, experiment.net
        net = self.net
        check_algorithm(net, learning.algorithm, learning.rtrl_max_bytes)
        self.algorithm = learning.algorithm
        self.passes = learning.passes
        self.modes = layer_modes(net, learning.algorithm, learning.passes)
        self.length = scenario.task.length
        fptt = learning.fptt if learning.algorithm == "fptt" else FpttConfig()
        self.fptt = fptt
        if learning.online and fptt.refine:
            raise ConfigError(
                "online updates cannot run FPTT's refinement: a refined segment "
                "runs again from its start, after its updates were made; use "
                "learning.fptt.refine: 0",
                key="learning.fptt.refine",
            )

        # every buffer from the arena, before the first sample arrives
        self.buffers = plan(
            net,
            learning.algorithm,
            self.length,
            profile,
            learning.optimizer,
            momentum=learning.momentum > 0,
            double_buffer=scenario.device.double_buffer,
            segments=self.fptt.segments,
            refine=self.fptt.refine,
        )
        self.arena = Arena.for_profile(profile)
        self.arena.check(
            self.buffers,
            f"scenario {scenario.name!r} ({learning.algorithm}, T = {self.length}, "
            f"{net.layers} x {net.cells[0].name} of {net.cells[0].hidden})",
        )
        self.mem = {b.name: self.arena.allocate(b) for b in self.buffers}

        self.arith = Arithmetic.from_profile(profile, scenario.seed)
        self.inference_arith = self.arith.fresh()
        self.evaluation_arith = self.arith.fresh()
        self.theta = self.mem["weights"]
        self.theta[:] = self.arith.round_blocks(
            codes.WEIGHTS, experiment.theta, net.stored_weights()
        )
        horizon = training.steps  # updates; online: every few steps of a window
        if learning.online:
            horizon *= math.ceil(self.length / learning.online_every)
        self.optimizer = Optimizer.from_config(learning, net, horizon, self.arith)
        self._bind_optimizer()
        self.offsets = part_offsets(net)
        # what the plan leaves out (spatial layers hold no error of their own,
        # plain FPTT no boundary errors nor checkpoint) the kernel, written for
        # all, gets as arrays that stay outside the device's memory
        outside = stream_buffers(net, fptt.segments)
        names = (
            "learner.signals",
            "learner.state",
            "learner.delta",
            "learner.jacobian_product",
            "learner.boundary_errors",
            "refine.state",
        )
        pairs = zip(names, outside[:-1], strict=True)
        found = [self.mem.get(name, spare) for name, spare in pairs]
        keep_errors = self.mem.get("refine.errors", outside[-1])[: net.layers + 1]
        self._learner_buffers = (*found, keep_errors)

        held_out_rng = rng_for(scenario, HELD_OUT)
        # a dataset's test split, or windows from their own seed
        self.held_out = self.task.held_out(held_out_rng, training.held_out)
        masked = float(np.mean([w.mask.sum() for w in self.held_out]))

        # the device's time and energy, from the counted work
        cost = CostModel(net, profile, fptt)
        self.work = {
            "inference_sample": cost.inference_sample(),
            "window": cost.window(self.algorithm, self.length, masked, self.modes),
            "update": cost.update(learning.optimizer),
        }
        self.online = learning.online
        if self.online:  # an update every online_every steps of the error pass
            per_window = math.ceil(self.length / learning.online_every)
            self.work["update"] = self.work["update"] * per_window
        infer_s = self.work["inference_sample"].seconds(profile)
        period = 1.0 / scenario.device.rate_hz
        if infer_s >= period:
            raise CheckFailed(
                f"at device.rate_hz = {scenario.device.rate_hz:g} a sample arrives "
                f"every {period * 1e6:.4g} us, but inference on one takes "
                f"{infer_s * 1e6:.4g} us on {profile.name}: the device cannot keep "
                "up even without learning. Lower device.rate_hz below "
                f"{1.0 / infer_s:.4g} or use a faster profile."
            )
        self.clock = Clock(
            self.length,
            scenario.device.rate_hz,
            infer_s,
            self.work["window"].seconds(profile),
            self.work["update"].seconds(profile),
            training.batch,
            scenario.device.double_buffer,
        )

    def _bind_optimizer(self) -> None:
        """Hold the optimiser's moments in the arena's buffer."""
        state = self.mem.get("optimizer_state")
        if state is None:
            return
        for row, key in zip(state, ("m", "v"), strict=False):
            row[:] = getattr(self.optimizer, key)
            setattr(self.optimizer, key, row)

    # ---- one window's pieces
    def _store(self, window, k: int) -> np.ndarray:
        """Write the window's inputs to the replay buffer; returns them."""
        inputs = self.arith.round(codes.INPUT, window.inputs)
        replay = self.mem.get("replay.inputs")
        if replay is None:  # spatial and RTRL learn as samples arrive
            return inputs
        slots = 2 if self.scenario.device.double_buffer else 1
        slot = replay.reshape(slots, self.length, -1)[k % slots]
        slot[:] = inputs
        return slot

    def evaluate(self, theta: np.ndarray) -> dict:
        """Mean loss, and accuracy for classification, on the held-out windows.

        Inference in the device's arithmetic, its events counted apart.
        """
        arith = self.evaluation_arith
        thetas = np.stack([theta, theta])
        signals = np.zeros_like(self.mem["inference.signals"])
        state = np.zeros_like(self.mem["inference.state"])
        losses = []
        correct = counted = 0
        for window in self.held_out:
            inputs = arith.round(codes.INPUT, window.inputs)
            loss, hits, n = self._infer(
                inputs, window, thetas, 0, arith, signals, state
            )
            losses.append(loss / n)
            correct += hits
            counted += n
        out = {"loss": float(np.mean(losses))}
        if self.net.loss == "ce":
            out["accuracy"] = correct / max(counted, 1)
        return out

    def _infer(
        self, inputs, window, thetas, switch, arith=None, signals=None, state=None
    ) -> tuple[float, int, int]:
        net = self.net
        arith = arith or self.inference_arith
        arith.begin_window()
        labels, targets = step_targets(net, window)
        loss, correct = _stream.infer(
            arith.ar,
            net.cells[0].code,
            net.cells[0].state_size,
            net.layers,
            thetas,
            switch,
            *self.offsets,
            net.width,
            net.mlp_hidden,
            np.ascontiguousarray(inputs),
            labels,
            targets,
            np.ascontiguousarray(window.mask, dtype=np.float64),
            net.loss == "ce",
            self.mem["inference.signals"] if signals is None else signals,
            self.mem["inference.state"] if state is None else state,
        )
        return float(loss), int(correct), int(window.mask.sum())

    def _gradient(self, window, inputs):
        stored = type(window)(inputs, window.targets, window.mask)
        if self.online:
            # the updates happen during the error pass, on the next parameters
            self._online_theta = self.theta.copy()
            wg, _ = stream_online(
                self.net,
                self._online_theta,
                stored,
                self.optimizer,
                self.scenario.learning.online_every,
                self.arith,
                self._learner_buffers,
                self.fptt,
            )
            return wg
        if self.algorithm in ("fptt", "spatial"):
            return stream_gradient(
                self.net,
                self.theta,
                stored,
                self.algorithm,
                self.passes,
                self.arith,
                self._learner_buffers,
                self.fptt,
            )
        return window_gradient(
            self.net, self.theta, stored, self.algorithm, self.passes, self.arith
        )

    # ---- the run
    def run(
        self,
        on_step: Callable[[int, dict], None] | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> DeviceResult:
        """Stream windows until ``training.steps`` updates are made.

        Parameters
        ----------
        on_step
            Called after every update with its number and the latest logged
            row (for progress display).
        checkpoint_dir
            Folder for checkpoints (every ``training.checkpoint_every``
            updates); None saves none.
        resume
            Continue from the checkpoint in ``checkpoint_dir``.

        Returns
        -------
        DeviceResult
        """
        training = self.scenario.training
        net = self.net
        s = _State(net.size, net.loss == "ce")
        result = DeviceResult(numerical_events=s.events)
        if resume:
            s = self._restore(Path(checkpoint_dir), result)
        else:
            result.initial = self.evaluate(self.theta)
            s.initial = result.initial

        stream = self.task.stream(self.scenario.seed, start=s.window)

        start = time.perf_counter() - s.seconds
        while s.updates < training.steps:
            k = s.window
            self.clock.advance(1)
            window = next(stream)
            inputs = self._store(window, k)

            # inference on the arriving samples, with an update that lands
            switch = self.length
            if s.pending is not None:
                landed = self.clock.landed(s.pending_window)
                if not math.isnan(landed):
                    w, step = self.clock.step_at(landed)
                    if w <= k:
                        switch = step if w == k else 0
            thetas = np.stack(
                [self.theta, s.pending if s.pending is not None else self.theta]
            )
            loss, correct, counted = self._infer(inputs, window, thetas, switch)
            s.interval.online(loss, correct, counted)
            if switch < self.length:
                self.theta[:] = s.pending
                s.pending = None

            # the learner's job, when the device could take the window
            if self.clock.learned[k]:
                self._learn(
                    window, inputs, k, s, result, on_step, start, checkpoint_dir
                )
                if result.stopped:
                    break
            s.window += 1

        if s.pending is not None:  # the last update lands after the last sample
            self.theta[:] = s.pending
            s.pending = None
        result.seconds = time.perf_counter() - start
        result.steps_done = s.updates
        result.windows = s.window
        result.initial = s.initial
        result.final = self.evaluate(self.theta)
        result.theta = self.theta.copy()
        result.rows = s.rows
        result.numerical_events = s.events
        result.arithmetic_events = {
            "learning": self.arith.events(),
            "inference": self.inference_arith.events(),
            "evaluation": self.evaluation_arith.events(),
        }
        result.memory = self.memory_report()
        result.device = self.device_report()
        return result

    def _learn(self, window, inputs, k, s, result, on_step, start, checkpoint_dir):
        training = self.scenario.training
        try:
            wg = self._gradient(window, inputs)
        except NumericalError as exc:
            s.events["singular_jacobian"] += 1
            log.warning("window %d skipped: %s", k, exc)
            wg = None
        trouble = _nonfinite(wg) if wg is not None else None
        if trouble:
            s.events[trouble] += 1
            if training.on_nan == "stop":
                result.stopped = (
                    f"window {k + 1} (step {s.updates + 1}): the window's "
                    f"{trouble.split('_')[1]} is not "
                    "finite; the run stopped (training.on_nan: stop). See the "
                    "event counters for where values overflowed."
                )
                return
        elif wg is not None:
            s.grad += wg.grad
            s.applied += 1
            s.interval.add(wg)
            s.last = (window, inputs, wg)
        if not self.clock.updates[k]:
            return

        # the update: computed now, in use from the end of the job
        s.updates += 1
        new = self.theta.copy()
        if self.online:
            new = self._online_theta
            if s.applied:
                s.interval.grad_norm.append(float(np.linalg.norm(s.grad)))
        elif s.applied:
            # the update stores the weights in their format itself
            norm = self.optimizer.step(new, s.grad / s.applied)
            s.interval.grad_norm.append(norm)
        s.grad[:] = 0.0
        s.applied = 0
        s.pending, s.pending_window = new, k
        row = self._row(s, k, start)
        if on_step is not None:
            on_step(s.updates, row or (s.rows[-1] if s.rows else {}))
        every = training.checkpoint_every
        if checkpoint_dir is not None and every and s.updates % every == 0:
            s.seconds = time.perf_counter() - start
            self._save(Path(checkpoint_dir), s, windows_done=k + 1)

    def _row(self, s, k, start) -> dict | None:
        """The logged row after an update, when one is due."""
        training = self.scenario.training
        step = s.updates
        extra = {}
        if training.cosine_every and step % training.cosine_every == 0:
            # the last window of this update; NaN when none could be applied
            extra["cosine"] = self._cosine(*s.last) if s.last else float("nan")
        s.last = None
        if training.eval_every and step % training.eval_every == 0:
            held = self.evaluate(s.pending)
            extra.update({f"eval_{key}": v for key, v in held.items()})
        if step % training.log_every and step != training.steps and not extra:
            return None
        row = s.interval.row(step, k, time.perf_counter() - start)
        row.update(extra)
        s.rows.append(row)
        s.interval = _Interval(self.net.loss == "ce")
        return row

    def _cosine(self, window, inputs, wg) -> float:
        """The device gradient's cosine with float64 BPTT's on the same window."""
        exact = window_gradient(
            self.net, self.theta, window, "bptt", arithmetic=reference_arithmetic()
        )
        return cosine(wg.grad, exact.grad)

    # ---- reports
    def memory_report(self) -> dict:
        """The plan's bytes, the arena's peak and the budget."""
        return {
            "algorithm": self.algorithm,
            "components": breakdown(self.buffers),
            "buffers": {b.name: b.bytes for b in self.buffers},
            "total_bytes": sum(b.bytes for b in self.buffers),
            "replay_memory": self.profile.memory.replay_memory,
            "arena": self.arena.report(),
        }

    def device_report(self) -> dict:
        """Costs, the timeline's summary, device time and energy."""
        profile = self.profile
        timeline = self.clock.timeline()
        samples = timeline.learned.size * self.length
        learnt = int(timeline.learned.sum())
        updates = int(timeline.updates.sum())
        work = self.work
        total = (
            work["inference_sample"] * samples
            + work["window"] * learnt
            + work["update"] * updates
        )
        joules = total.joules(profile)
        return {
            "rate_hz": self.scenario.device.rate_hz,
            "double_buffer": self.scenario.device.double_buffer,
            "per_sample_inference": work["inference_sample"].to_dict(profile),
            "per_window_learning": work["window"].to_dict(profile),
            "per_update": work["update"].to_dict(profile),
            "timeline": timeline.summary(),
            "samples": samples,
            "device_seconds": total.seconds(profile),
            "energy_joules": joules,
            "energy_per_sample_joules": joules / samples if samples else None,
        }

    # ---- checkpoints
    def _save(self, folder: Path, s, windows_done: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "theta": self.theta,
            "pending": s.pending if s.pending is not None else np.zeros(0),
            "grad": s.grad,
            "learning_table": self.arith.table,
            "inference_table": self.inference_arith.table,
            "evaluation_table": self.evaluation_arith.table,
        }
        for key, value in self.optimizer.state_dict().items():
            arrays[f"optimizer.{key}"] = np.asarray(value)
        for key, value in self.clock.get_state().items():
            arrays[f"clock.{key}"] = value
        meta = {
            "scenario": self.scenario.model_dump(mode="json"),
            "scenario_file": self.scenario.source,
            "profile": self.profile.model_dump(mode="json"),
            "window": windows_done,
            "updates": s.updates,
            "applied": s.applied,
            "pending_window": s.pending_window,
            "seconds": s.seconds,
            "rows": s.rows,
            "events": s.events,
            "initial": s.initial,
            "interval": s.interval.__dict__,
            "rng": {
                "learning": self.arith.rng.bit_generator.state,
                "inference": self.inference_arith.rng.bit_generator.state,
                "evaluation": self.evaluation_arith.rng.bit_generator.state,
            },
        }
        tmp_npz = folder / f".{CHECKPOINT}.npz.tmp"
        with open(tmp_npz, "wb") as fh:
            np.savez(fh, **arrays)
        tmp_json = folder / f".{CHECKPOINT}.json.tmp"
        tmp_json.write_text(json.dumps(meta, default=_plain))
        os.replace(tmp_npz, folder / f"{CHECKPOINT}.npz")
        os.replace(tmp_json, folder / f"{CHECKPOINT}.json")

    def _restore(self, folder: Path, result: DeviceResult):
        npz, meta_file = folder / f"{CHECKPOINT}.npz", folder / f"{CHECKPOINT}.json"
        if not (npz.is_file() and meta_file.is_file()):
            raise ConfigError(
                f"no checkpoint in {folder} (expected {npz.name} and "
                f"{meta_file.name}); a run saves one every training.checkpoint_every "
                "updates when it has an output folder",
                key="--resume",
            )
        meta = json.loads(meta_file.read_text())
        if meta["scenario"] != self.scenario.model_dump(mode="json"):
            raise ConfigError(
                f"the checkpoint in {folder} is of another scenario; resume with "
                "the scenario and overrides the run started with",
                key="--resume",
            )
        with np.load(npz) as data:
            self.theta[:] = data["theta"]
            self.arith.table[:] = data["learning_table"]
            self.inference_arith.table[:] = data["inference_table"]
            self.evaluation_arith.table[:] = data["evaluation_table"]
            self.optimizer.load_state_dict(
                {
                    key.split(".", 1)[1]: data[key]
                    for key in data.files
                    if key.startswith("optimizer.")
                }
            )
            self._bind_optimizer()
            self.clock.set_state(
                {
                    key.split(".", 1)[1]: data[key]
                    for key in data.files
                    if key.startswith("clock.")
                }
            )
            s = _State(self.net.size, self.net.loss == "ce")
            s.grad[:] = data["grad"]
            pending = data["pending"]
            s.pending = pending.copy() if pending.size else None
        self.arith.rng.bit_generator.state = meta["rng"]["learning"]
        self.inference_arith.rng.bit_generator.state = meta["rng"]["inference"]
        self.evaluation_arith.rng.bit_generator.state = meta["rng"]["evaluation"]
        s.window = meta["window"]
        s.updates = meta["updates"]
        s.applied = meta["applied"]
        s.pending_window = meta["pending_window"]
        s.seconds = meta["seconds"]
        s.rows = meta["rows"]
        s.events = meta["events"]
        s.initial = meta["initial"]
        s.interval.__dict__.update(meta["interval"])
        result.resumed_from = s.updates
        return s


def read_checkpoint(folder: str | os.PathLike):
    """The scenario, profile and scenario file a checkpoint was made with."""
    from fpttsim.config import Profile, Scenario

    meta_file = Path(folder) / f"{CHECKPOINT}.json"
    if not meta_file.is_file():
        raise ConfigError(
            f"no checkpoint in {folder} (expected {meta_file.name}); a run saves "
            "one every training.checkpoint_every steps into its output folder",
            key="--resume",
        )
    meta = json.loads(meta_file.read_text())
    return (
        Scenario.model_validate(meta["scenario"]),
        Profile.model_validate(meta["profile"]),
        meta.get("scenario_file"),
    )


def _plain(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot save {type(value).__name__} in a checkpoint")


def _nonfinite(wg) -> str | None:
    """Which part of a window's result is not finite, if any."""
    if not math.isfinite(wg.loss):
        return "nonfinite_loss"
    if not np.all(np.isfinite(wg.grad)):
        return "nonfinite_gradient"
    return None


class _State:
    """What the loop carries from window to window (and checkpoints)."""

    def __init__(self, size: int, classification: bool) -> None:
        self.window = 0
        self.updates = 0
        self.applied = 0
        self.grad = np.zeros(size)
        self.pending: np.ndarray | None = None
        self.pending_window = -1
        self.seconds = 0.0
        self.rows: list[dict] = []
        self.events = {
            "nonfinite_loss": 0,
            "nonfinite_gradient": 0,
            "singular_jacobian": 0,
        }
        self.initial: dict = {}
        self.interval = _Interval(classification)
        self.last = None


class _Interval:
    """Metrics gathered between two logged updates."""

    def __init__(self, classification: bool) -> None:
        self.classification = classification
        self.losses: list[float] = []
        self.residuals: list[float] = []
        self.error_passes: list[float] = []
        self.grad_norm: list[float] = []
        self.correct = 0
        self.counted = 0
        self.online_loss = 0.0
        self.online_correct = 0
        self.online_counted = 0

    def add(self, wg) -> None:
        self.losses.append(wg.loss)
        self.correct += wg.correct
        self.counted += wg.counted
        fptt = [d for d in wg.layers if d.mode == "fptt"]
        self.residuals += [d.residual_relative for d in fptt]
        self.error_passes += [d.error_passes for d in fptt]

    def online(self, loss: float, correct: int, counted: int) -> None:
        self.online_loss += loss
        self.online_correct += correct
        self.online_counted += counted

    def row(self, step: int, window: int, seconds: float) -> dict:
        row = {"step": step, "window": window + 1, "loss": _mean(self.losses)}
        if self.classification and self.counted:
            row["accuracy"] = self.correct / self.counted
        if self.online_counted:
            row["online_loss"] = self.online_loss / self.online_counted
            if self.classification:
                row["online_accuracy"] = self.online_correct / self.online_counted
        if self.residuals:
            row["residual"] = max(self.residuals)
        if any(p != 1.0 for p in self.error_passes):
            row["error_passes"] = _mean(self.error_passes)
        row["grad_norm"] = _mean(self.grad_norm)
        row["seconds"] = seconds
        return row


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
