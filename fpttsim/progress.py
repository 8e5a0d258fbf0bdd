"""Progress line for the command line: bar, percentage, latest metrics, ETA.

On a terminal one line is redrawn in place; elsewhere (a log file, CI) a full
line is written at each tenth of the run, so that logs stay short.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 10


class Progress:
    """Report the progress of a run of ``total`` steps on a text stream.

    Each line reads, for example,
    ``label  [####......]  45%  900/2000  loss 0.412  acc 0.81  12.3 s  ETA 15.0 s``,
    with the metrics last passed to :meth:`update`. On a terminal the line is
    redrawn with a carriage return at most every ``min_interval`` seconds;
    otherwise a new line is written each time the run passes another tenth of
    ``total``, and at :meth:`close` if the last state was not yet written.

    Parameters
    ----------
    total
        Steps in the run, at least 0.
    stream
        Where to write; standard error when ``None``.
    label
        Text at the start of the line; omitted when empty.
    min_interval
        Least time in seconds between redraws on a terminal.
    clock
        Monotonic time in seconds; replaceable for tests.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        label: str = "",
        min_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 0:
            raise ValueError(f"Progress: total must be >= 0, got {total}")
        self.total = total
        # Looked up here, not as a default argument, so that a stderr
        # replaced after import (by pytest, say) is the one written to.
        self.stream = sys.stderr if stream is None else stream
        self.label = label
        self.min_interval = min_interval
        self._clock = clock
        isatty = getattr(self.stream, "isatty", None)
        self._tty = bool(isatty and isatty())

        self._start = clock()
        self._n = 0
        self._metrics: dict[str, float] = {}
        self._last_draw = -math.inf
        self._written_n: int | None = None
        self._next_tenth = 1
        self._drawn_width = 0
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, n: int, **metrics: float) -> None:
        """Record that ``n`` steps are done, with the latest metric values.

        Parameters
        ----------
        n
            Steps done so far (not an increment).
        **metrics
            Metric values to show, e.g. ``loss=0.41``; a metric not passed
            keeps its previous value on the line.
        """
        self._n = n
        self._metrics.update(metrics)
        if self._tty:
            now = self._clock()
            if now - self._last_draw >= self.min_interval or n >= self.total:
                self._redraw(now)
            return

        tenth = self._tenths(n)
        if tenth >= self._next_tenth:
            self._write_line()
            self._next_tenth = tenth + 1

    def close(self) -> None:
        """Write the final state and end the line; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._tty:
            self._redraw(self._clock())
            self.stream.write("\n")
            self.stream.flush()
        elif self._written_n != self._n:
            self._write_line()

    def _tenths(self, n: int) -> int:
        if self.total == 0:
            return 10
        return min(10 * n // self.total, 10)

    def _line(self, now: float) -> str:
        done = 1.0 if self.total == 0 else min(max(self._n / self.total, 0.0), 1.0)
        filled = int(done * _BAR_WIDTH)
        parts = [
            f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}]",
            f"{math.floor(100 * done)}%",
            f"{self._n}/{self.total}",
        ]
        if self.label:
            parts.insert(0, self.label)
        parts += [
            f"{k} {v}" if isinstance(v, int) else f"{k} {v:.3g}"
            for k, v in self._metrics.items()
        ]

        elapsed = now - self._start
        parts.append(f"{elapsed:.1f} s")
        if 0 < self._n < self.total:
            eta = elapsed / self._n * (self.total - self._n)
            parts.append(f"ETA {eta:.1f} s")
        return "  ".join(parts)

    def _redraw(self, now: float) -> None:
        line = self._line(now)
        # Spaces over what is left of a longer previous line.
        pad = " " * max(self._drawn_width - len(line), 0)
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()
        self._drawn_width = len(line)
        self._last_draw = now
        self._written_n = self._n

    def _write_line(self) -> None:
        self.stream.write(self._line(self._clock()) + "\n")
        self.stream.flush()
        self._written_n = self._n
