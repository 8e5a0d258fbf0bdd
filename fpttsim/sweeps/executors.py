"""Where a sweep's runs execute: a local process pool, or Dask distributed.

Both take plain-data tasks and yield each run's summary as it finishes.
A worker that dies takes its runs with it; both executors give those runs
back to other workers a bounded number of times (the pool by rebuilding
itself, Dask by its scheduler's own rescheduling) and then report them
failed. Neither imports Lava: runs that need it import it themselves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from fpttsim.pools import (
    forget_start_method,
    process_pool,
    start_method_chosen,
    start_method_kept,
)
from fpttsim.sweeps.task import execute

RETRIES = 2
"""Times a run lost with its worker is given to another one."""


def _lost(task: dict, why: str) -> dict:
    return {
        "key": task["key"],
        "axes": task["axes"],
        "overrides": task["overrides"],
        "command": task["command"],
        "status": "failed",
        "error": why,
    }


class LocalPool:
    """A process pool on this machine.

    Parameters
    ----------
    workers
        Processes; default the machine's cores.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def slots(self) -> int:
        """Runs that execute at once."""
        return self.workers

    def run(self, tasks: list[dict]) -> Iterator[dict]:
        """Yield each task's summary as it finishes."""
        attempts = {t["key"]: 0 for t in tasks}
        queue = list(tasks)
        while queue:
            self._pool = process_pool(self.workers)
            futures = {self._pool.submit(execute, t): t for t in queue}
            queue = []
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        task = futures[future]
                        try:
                            yield future.result()
                        except BrokenProcessPool:
                            attempts[task["key"]] += 1
                            if attempts[task["key"]] > RETRIES:
                                yield _lost(
                                    task,
                                    f"its worker process died, {RETRIES + 1} times",
                                )
                            else:
                                queue.append(task)
            finally:
                self.close()

    def close(self) -> None:
        """Stop the workers, dropping what has not started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """Dask distributed: a scheduler's address, or a local cluster it starts.

    Parameters
    ----------
    address
        ``tcp://HOST:PORT`` of a running scheduler; None starts a
        ``LocalCluster`` of ``workers`` single-threaded worker processes.
    workers
        Workers of the local cluster (default the machine's cores).
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None):
        from distributed import Client, LocalCluster

        # the cluster's own chatter (workers starting, closing) is not the
        # user's business; its errors still show
        logging.getLogger("distributed").setLevel(logging.ERROR)
        self.cluster = None
        # its workers are spawned, which fixes the global start method
        self._forget = not start_method_chosen()
        if address is None:
            with start_method_kept():
                self.cluster = LocalCluster(
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
            address = self.cluster.scheduler_address
        self.client = Client(address)

    def slots(self) -> int:
        """Runs that execute at once: the workers' threads."""
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(w.get("nthreads", 1) for w in workers.values()))

    def run(self, tasks: list[dict]) -> Iterator[dict]:
        """Yield each task's summary as it finishes."""
        from distributed import as_completed

        futures = [
            self.client.submit(execute, t, key=f"fpttsim-run-{t['key']}", pure=False)
            for t in tasks
        ]
        by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
        for future in as_completed(futures):
            task = by_key[future.key]
            try:
                yield future.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker and the like
                yield _lost(task, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Cancel what is left and disconnect (and stop a local cluster)."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self._forget:
            # workers restarted during the sweep were spawned too
            forget_start_method()
