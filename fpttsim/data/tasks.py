"""Streaming sequence tasks: endless, reproducible windows of ``T`` steps.

A synthetic task draws each window from a :class:`numpy.random.Generator`, so
a stream is fixed by its seed alone; tasks over a fixed dataset live in
:mod:`fpttsim.data.datasets`. Every window carries a mask saying which steps
have a loss; an on-device learner sees the steps one at a time and uses the
mask to know when a target is present.
"""

from __future__ import annotations

import abc
import math
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from fpttsim.errors import ConfigError

__all__ = [
    "AddingTask",
    "CopyTask",
    "SineTask",
    "Task",
    "Window",
    "make_task",
]


@dataclass(frozen=True)
class Window:
    """One window of a stream.

    Parameters
    ----------
    inputs
        Inputs, shape ``(T, D)``, float64.
    targets
        Class indices, shape ``(T,)``, int64, when the task's loss is ``"ce"``;
        target values, shape ``(T, O)``, float64, when it is ``"mse"``. Steps
        whose mask is 0 hold zeros.
    mask
        Shape ``(T,)``, float64: 1.0 at steps that carry a loss, 0.0 elsewhere.
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray


def _check_int(name: str, value: Any, minimum: int) -> int:
    # operator.index refuses floats such as 10.0, which would otherwise be
    # truncated silently when used as a length.
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name} must be an integer, got {value!r} ({type(value).__name__})"
        ) from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    return number


def _check_float(name: str, value: Any, minimum: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number, got {value!r} ({type(value).__name__})"
        ) from None
    if not math.isfinite(number) or number < minimum:
        raise ValueError(f"{name} must be finite and >= {minimum}, got {value!r}")
    return number


class Task(abc.ABC):
    """A source of windows of ``length`` steps.

    Subclasses set :attr:`name`, :attr:`loss`, :attr:`length`,
    :attr:`input_size` and :attr:`output_size`, and implement :meth:`sample`.
    The synthetic tasks here draw every window afresh; the tasks over a
    dataset (:mod:`fpttsim.data.datasets`) override :meth:`stream` and
    :meth:`held_out` to visit their training split and return their test
    split.

    Attributes
    ----------
    name
        Short name, the same as the ``kind`` accepted by :func:`make_task`.
    loss
        ``"ce"`` (targets are class indices) or ``"mse"`` (targets are values).
    length
        Steps per window, ``T``.
    input_size
        Input channels, ``D``.
    output_size
        Classes for ``"ce"``, output values for ``"mse"``, ``O``.
    """

    name: ClassVar[str]
    loss: ClassVar[Literal["ce", "mse"]]
    length: int
    input_size: int
    output_size: int

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator) -> Window:
        """Draw one window.

        Parameters
        ----------
        rng
            Source of randomness; the window depends on nothing else.

        Returns
        -------
        Window
            Inputs, targets and mask of ``length`` steps.
        """

    def stream(self, seed: int, start: int = 0) -> Iterator[Window]:
        """Yield windows forever from a generator seeded with ``seed``.

        Parameters
        ----------
        seed
            Seed of :func:`numpy.random.default_rng`; equal seeds give equal
            streams.
        start
            Index of the first window: the stream begins where a stream
            started at 0 would be after ``start`` windows. These tasks draw
            the ``start`` windows before and discard them.

        Returns
        -------
        Iterator of Window
            The windows.
        """
        start = _check_int("start", start, 0)
        return self._draws(np.random.default_rng(seed), start)

    def _draws(self, rng: np.random.Generator, skip: int) -> Iterator[Window]:
        for _ in range(skip):
            self.sample(rng)
        while True:
            yield self.sample(rng)

    def held_out(self, rng: np.random.Generator, n: int | None) -> list[Window]:
        """Return the windows that measure learning on data not trained on.

        Parameters
        ----------
        rng
            Source of the windows, kept apart from the training stream's.
        n
            How many windows; these tasks have no fixed test split, so None
            is refused.

        Returns
        -------
        list of Window
            ``n`` windows drawn from ``rng``.
        """
        if n is None:
            raise ValueError(
                f"{self.name} task: held_out needs a number of windows, got None; "
                "only tasks over a dataset have a whole test split to return"
            )
        return [self.sample(rng) for _ in range(_check_int("n", n, 0))]


class CopyTask(Task):
    """Recall a short sequence of symbols after a delay.

    Inputs are one-hot over ``alphabet + 2`` channels: the symbols, then
    "blank", then "recall cue". Steps ``0 .. symbols-1`` show random symbols,
    the steps up to the cue are blank, step ``length - symbols - 1`` is the
    cue, and the last ``symbols`` steps are blank in the input while the
    targets there are the shown symbols in order.

    Parameters
    ----------
    length
        Steps per window; at least ``2 * symbols + 1``.
    symbols
        Symbols to remember, at least 1.
    alphabet
        Distinct symbols, at least 2; also the number of classes.
    """

    name = "copy"
    loss = "ce"

    def __init__(self, length: int, symbols: int = 3, alphabet: int = 4) -> None:
        self.symbols = _check_int("symbols", symbols, 1)
        self.alphabet = _check_int("alphabet", alphabet, 2)
        self.length = _check_int("length", length, 1)
        if self.length < 2 * self.symbols + 1:
            raise ValueError(
                f"copy task: length must be >= 2 * symbols + 1 = "
                f"{2 * self.symbols + 1} to fit the symbols, the cue and the "
                f"recall, got length={self.length}, symbols={self.symbols}"
            )
        self.input_size = self.alphabet + 2
        self.output_size = self.alphabet

    def __repr__(self) -> str:
        return (
            f"CopyTask(length={self.length}, symbols={self.symbols}, "
            f"alphabet={self.alphabet})"
        )

    def sample(self, rng: np.random.Generator) -> Window:
        """Draw one window; see :meth:`Task.sample`."""
        T, K, A = self.length, self.symbols, self.alphabet
        blank, cue = A, A + 1
        shown = rng.integers(0, A, size=K)  # (K,)

        # Channel index per step, then one-hot.
        channel = np.full(T, blank, dtype=np.int64)  # (T,)
        channel[:K] = shown
        channel[T - K - 1] = cue
        inputs = np.zeros((T, A + 2))  # (T, D)
        inputs[np.arange(T), channel] = 1.0

        targets = np.zeros(T, dtype=np.int64)  # (T,)
        targets[T - K :] = shown
        mask = np.zeros(T)  # (T,)
        mask[T - K :] = 1.0
        return Window(inputs=inputs, targets=targets, mask=mask)


class AddingTask(Task):
    """Hochreiter and Schmidhuber's adding problem.

    Channel 0 holds values uniform in ``[0, 1)``; channel 1 marks exactly two
    steps, one in the first half (``t < length // 2``) and one in the second.
    The target, at the last step only, is the sum of the two marked values.

    Parameters
    ----------
    length
        Steps per window, at least 2.
    """

    name = "adding"
    loss = "mse"

    def __init__(self, length: int) -> None:
        self.length = _check_int("length", length, 2)
        self.input_size = 2
        self.output_size = 1

    def __repr__(self) -> str:
        return f"AddingTask(length={self.length})"

    def sample(self, rng: np.random.Generator) -> Window:
        """Draw one window; see :meth:`Task.sample`."""
        T = self.length
        half = T // 2
        values = rng.random(T)  # (T,)
        first = rng.integers(0, half)
        second = rng.integers(half, T)

        inputs = np.zeros((T, 2))  # (T, D)
        inputs[:, 0] = values
        inputs[[first, second], 1] = 1.0

        targets = np.zeros((T, 1))  # (T, O)
        targets[-1, 0] = values[first] + values[second]
        mask = np.zeros(T)  # (T,)
        mask[-1] = 1.0
        return Window(inputs=inputs, targets=targets, mask=mask)


class SineTask(Task):
    """Predict a clean sine wave ``horizon`` steps ahead from noisy samples.

    Per window, frequency ``f`` (cycles per step) is uniform in
    ``[freq_min, freq_max]``, phase ``phi`` uniform in ``[0, 2 pi)`` and
    amplitude ``a`` uniform in ``[0.5, 1.5]``. With
    ``s_t = a sin(2 pi f t + phi)``, the input is ``x_t = s_t + noise z_t``
    (``z_t`` standard normal) and the target ``y_t = s_{t + horizon}``, at
    every step.

    The noise is drawn even when ``noise`` is 0, so that two tasks differing
    only in ``noise`` give the same clean signal for the same seed.

    Parameters
    ----------
    length
        Steps per window, at least 1.
    noise
        Standard deviation of the input noise, at least 0.
    horizon
        Steps ahead to predict, at least 1.
    freq_min, freq_max
        Frequency range in cycles per step, ``0 <= freq_min <= freq_max``.
    """

    name = "sine"
    loss = "mse"

    def __init__(
        self,
        length: int,
        noise: float = 0.05,
        horizon: int = 1,
        freq_min: float = 0.01,
        freq_max: float = 0.1,
    ) -> None:
        self.length = _check_int("length", length, 1)
        self.noise = _check_float("noise", noise, 0.0)
        self.horizon = _check_int("horizon", horizon, 1)
        self.freq_min = _check_float("freq_min", freq_min, 0.0)
        self.freq_max = _check_float("freq_max", freq_max, 0.0)
        if self.freq_min > self.freq_max:
            raise ValueError(
                f"sine task: freq_min must be <= freq_max, got "
                f"freq_min={self.freq_min}, freq_max={self.freq_max}"
            )
        self.input_size = 1
        self.output_size = 1

    def __repr__(self) -> str:
        return (
            f"SineTask(length={self.length}, noise={self.noise}, "
            f"horizon={self.horizon}, freq_min={self.freq_min}, "
            f"freq_max={self.freq_max})"
        )

    def sample(self, rng: np.random.Generator) -> Window:
        """Draw one window; see :meth:`Task.sample`."""
        T, h = self.length, self.horizon
        f = rng.uniform(self.freq_min, self.freq_max)
        phi = rng.uniform(0.0, 2.0 * np.pi)
        a = rng.uniform(0.5, 1.5)
        z = rng.standard_normal(T)  # (T,)

        t = np.arange(T + h)  # (T + h,)
        s = a * np.sin(2.0 * np.pi * f * t + phi)  # (T + h,)
        inputs = (s[:T] + self.noise * z)[:, None]  # (T, 1)
        targets = s[h:, None].copy()  # (T, 1)
        return Window(inputs=inputs, targets=targets, mask=np.ones(T))


# Constructor parameters each kind reads from a configuration, besides length.
_KINDS: dict[str, tuple[type[Task], tuple[str, ...]]] = {
    "copy": (CopyTask, ("symbols", "alphabet")),
    "adding": (AddingTask, ()),
    "sine": (SineTask, ("noise", "horizon", "freq_min", "freq_max")),
}


def make_task(cfg: Any) -> Task:
    """Build the task a configuration describes.

    Parameters
    ----------
    cfg
        Any object with an attribute ``kind`` and that kind's parameters.
        The synthetic kinds (``"copy"``, ``"adding"``, ``"sine"``) need
        ``length`` and may have ``symbols``, ``alphabet``, ``noise``,
        ``horizon``, ``freq_min``, ``freq_max``; the dataset kinds
        (``"mnist1d"``, ``"digits"``, ``"mnist98"``) take their parameters
        from :mod:`fpttsim.data.datasets`, and ``"mnist98"`` needs ``path``,
        relative to ``cfg.base_folder`` when that is set. Missing attributes,
        or ones set to ``None``, take the class's default; those of other
        kinds are ignored.

    Returns
    -------
    Task
        The task.

    Raises
    ------
    ConfigError
        (a :class:`ValueError`) when ``kind`` is unknown, ``length`` is
        missing, a parameter is out of range, or a dataset's files are
        missing or not valid (key ``task.path``, with the file and line of
        ``cfg.where("path")`` when ``cfg`` has that method).
    """
    # Imported here because the dataset tasks build on Task.
    from fpttsim.data.datasets import DATASET_KINDS, DataError, make_dataset_task

    kind = getattr(cfg, "kind", None)
    if kind in DATASET_KINDS:
        try:
            return make_dataset_task(cfg, kind)
        except DataError as err:
            where = getattr(cfg, "where", None)
            file, line = where("path") if callable(where) else (None, None)
            raise ConfigError(str(err), file=file, line=line, key="task.path") from err
        except ValueError as err:
            raise ConfigError(str(err), key="task") from err
    if kind not in _KINDS:
        valid = ", ".join(repr(k) for k in [*_KINDS, *DATASET_KINDS])
        raise ConfigError(
            f"unknown task kind {kind!r}; valid kinds are {valid}", key="task.kind"
        )
    cls, names = _KINDS[kind]

    length = getattr(cfg, "length", None)
    if length is None:
        raise ConfigError(
            f"task kind {kind!r} needs a length (steps per window)",
            key="task.length",
        )
    params = {n: getattr(cfg, n) for n in names if getattr(cfg, n, None) is not None}
    try:
        return cls(length, **params)
    except ValueError as err:
        # Re-raised as ConfigError so that the command line reports bad input.
        raise ConfigError(str(err), key="task") from err
