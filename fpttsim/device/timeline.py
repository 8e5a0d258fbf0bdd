r"""The device's time: samples arriving, inference, and the learner's windows.

One processor serves two kinds of work. Every arriving sample is stored in
the replay buffer and run through the network (inference), which takes
``infer_s`` seconds and goes first; the learner computes a window's gradient
(and, every ``batch`` learnt windows, the update) in the time left over. A
window is handed to the learner when its last sample has arrived:

- with a double replay buffer, the next window fills the other half while the
  learner works; a window that is complete while the learner is still busy is
  skipped (its half is overwritten by the next one);
- with a single buffer, samples that arrive while the learner works cannot be
  stored, so a window is learnt only if the learner was idle when its first
  sample arrived.

An update takes effect when the learner finishes it: samples arriving from
then on are inferred with the new parameters. The simulation is exact for
this model (work is divided between arrivals without time steps), compiled,
and advanced window by window by :class:`Clock`, which the learner follows:
when a window's job ends, its update reaches the inference of the samples
that arrive from then on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fpttsim.numerics import kernel

# the simulation's state between calls, in one float64 vector
INFERENCE, LEARNING, JOB, STORABLE, LEARNT, BUSY, WORST, LAST = range(8)


@kernel
def _simulate(
    first,
    stop,
    length,
    period,
    infer_s,
    grad_s,
    update_s,
    batch,
    double_buffer,
    state,
    learned,
    release,
    finish,
    updates,
):
    """Run the model over windows ``first .. stop - 1``, carrying ``state``.

    Fills the per-window arrays (``finish`` of a window may be set in a later
    call, when its job ends); ``updates[k]`` is 1 for a learnt window whose
    job ends with an update.
    """
    inference = state[INFERENCE]  # queued inference work, seconds
    learning = state[LEARNING]  # the current job's remaining work
    job = int(state[JOB])
    storable = state[STORABLE] != 0.0
    n_learnt = int(state[LEARNT])
    busy = state[BUSY]
    worst = state[WORST]
    for k in range(first, stop):
        for i in range(length):
            a = (k * length + i) * period
            if i == 0:
                storable = job == -1
            inference += infer_s
            worst = max(worst, inference)

            # the window is complete: hand it to the learner if it can take it
            if i == length - 1 and job == -1 and (double_buffer or storable):
                job = k
                learned[k] = True
                release[k] = a
                n_learnt += 1
                learning = grad_s
                if n_learnt % batch == 0:
                    learning += update_s
                    updates[k] = 1

            # the time until the next arrival: inference first
            left = period
            spent = min(inference, left)
            inference -= spent
            left -= spent
            busy += spent
            if job >= 0:
                spent = min(learning, left)
                learning -= spent
                busy += spent
                if learning <= 0.0:
                    finish[job] = a + (period - left) + spent
                    job = -1
    state[INFERENCE] = inference
    state[LEARNING] = learning
    state[JOB] = job
    state[STORABLE] = 1.0 if storable else 0.0
    state[LEARNT] = n_learnt
    state[BUSY] = busy
    state[WORST] = worst
    state[LAST] = stop


@dataclass
class Timeline:
    """When each window was learnt, and how busy the device was.

    Attributes
    ----------
    learned
        ``(W,)`` bool: the window's gradient was computed.
    release, finish
        ``(W,)`` seconds: when the learner got the window and finished with
        it (NaN for windows not learnt).
    updates
        ``(W,)`` bool: the window's job ended with a parameter update.
    busy_s, elapsed_s
        Time the processor worked, and from the first arrival until the
        queues drained.
    max_inference_latency_s
        Longest wait from a sample's arrival to its inference result.
    period_s
        Time between two arrivals.
    """

    learned: np.ndarray
    release: np.ndarray
    finish: np.ndarray
    updates: np.ndarray
    busy_s: float
    elapsed_s: float
    max_inference_latency_s: float
    period_s: float
    length: int

    @property
    def latency(self) -> np.ndarray:
        """Seconds from each learnt window's last sample to the end of its job."""
        return self.finish - self.release

    @property
    def keeps_up(self) -> bool:
        """Every window learnt and every sample inferred before the next came."""
        return bool(
            self.learned.all() and self.max_inference_latency_s <= self.period_s
        )

    def summary(self) -> dict:
        """Totals for reports."""
        learnt = self.latency[self.learned]
        return {
            "windows": int(self.learned.size),
            "windows_learned": int(self.learned.sum()),
            "windows_skipped": int((~self.learned).sum()),
            "keeps_up": self.keeps_up,
            "duty_cycle": self.busy_s / self.elapsed_s if self.elapsed_s else 0.0,
            "busy_s": self.busy_s,
            "elapsed_s": self.elapsed_s,
            "window_latency_s": {
                "mean": float(learnt.mean()) if learnt.size else None,
                "max": float(learnt.max()) if learnt.size else None,
            },
            "max_inference_latency_s": self.max_inference_latency_s,
        }


class Clock:
    """The device's time, advanced window by window.

    Parameters
    ----------
    length
        Samples per window.
    rate_hz
        Samples arriving per second.
    infer_s, grad_s, update_s
        Device seconds of inference on one sample, of one window's gradient,
        and of one parameter update.
    batch
        Learnt windows per update.
    double_buffer
        Whether the replay buffer holds two windows (see the module notes).
    """

    def __init__(
        self,
        length: int,
        rate_hz: float,
        infer_s: float,
        grad_s: float,
        update_s: float,
        batch: int = 1,
        double_buffer: bool = True,
    ) -> None:
        self.length = length
        self.period = 1.0 / rate_hz
        self.costs = (infer_s, grad_s, update_s)
        self.batch = batch
        self.double_buffer = double_buffer
        self.state = np.zeros(8)
        self.state[JOB] = -1.0
        self.learned = np.zeros(0, dtype=np.bool_)
        self.release = np.zeros(0)
        self.finish = np.zeros(0)
        self.updates = np.zeros(0, dtype=np.int64)

    @property
    def windows(self) -> int:
        """Windows simulated so far."""
        return int(self.state[LAST])

    def advance(self, n: int = 1) -> range:
        """Let the next ``n`` windows arrive; returns their indices."""
        first = self.windows
        self._grow(first + n)
        infer_s, grad_s, update_s = self.costs
        _simulate(
            first,
            first + n,
            self.length,
            self.period,
            infer_s,
            grad_s,
            update_s,
            self.batch,
            self.double_buffer,
            self.state,
            self.learned,
            self.release,
            self.finish,
            self.updates,
        )
        return range(first, first + n)

    def _grow(self, n: int) -> None:
        if n <= self.learned.size:
            return
        size = max(n, 2 * self.learned.size)
        extra = size - self.learned.size
        self.learned = np.concatenate([self.learned, np.zeros(extra, np.bool_)])
        self.release = np.concatenate([self.release, np.full(extra, np.nan)])
        self.finish = np.concatenate([self.finish, np.full(extra, np.nan)])
        self.updates = np.concatenate([self.updates, np.zeros(extra, np.int64)])

    def landed(self, window: int) -> float:
        """When ``window``'s job ended (NaN while it runs or if not learnt)."""
        return float(self.finish[window])

    def step_at(self, seconds: float) -> tuple[int, int]:
        """``(window, step)`` of the first sample arriving at or after a time."""
        sample = math.ceil(seconds / self.period - 1e-9)
        return divmod(sample, self.length)

    def timeline(self) -> Timeline:
        """What happened so far, with the queues drained after the last sample."""
        n = self.windows
        finish = self.finish[:n].copy()
        end = n * self.length * self.period
        busy = self.state[BUSY]
        inference, learning = self.state[INFERENCE], self.state[LEARNING]
        job = int(self.state[JOB])
        busy += inference + (learning if job >= 0 else 0.0)
        end += inference
        if job >= 0:
            end += learning
            finish[job] = end
        return Timeline(
            self.learned[:n].copy(),
            self.release[:n].copy(),
            finish,
            self.updates[:n].astype(bool),
            busy,
            end,
            self.state[WORST],
            self.period,
            self.length,
        )

    def get_state(self) -> dict:
        """Everything needed to continue later (for checkpoints)."""
        n = self.windows
        return {
            "state": self.state.copy(),
            "learned": self.learned[:n].copy(),
            "release": self.release[:n].copy(),
            "finish": self.finish[:n].copy(),
            "updates": self.updates[:n].copy(),
        }

    def set_state(self, saved: dict) -> None:
        """Continue from :meth:`get_state`'s output."""
        self.state = np.array(saved["state"], dtype=np.float64)
        self.learned = np.array(saved["learned"], dtype=np.bool_)
        self.release = np.array(saved["release"], dtype=np.float64)
        self.finish = np.array(saved["finish"], dtype=np.float64)
        self.updates = np.array(saved["updates"], dtype=np.int64)
