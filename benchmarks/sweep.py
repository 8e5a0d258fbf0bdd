"""Sweep throughput: 2 workers against 1, and Dask's overhead against the pool.

Runs the smoke sweep (12 tiny training runs) into fresh folders with the
local pool at 1 and 2 workers and with a Dask LocalCluster of 2 workers,
after one warm-up sweep that fills Numba's on-disk cache, and prints the
wall-clock times, the 2-to-1 throughput ratio and Dask's extra seconds per
run against the pool at equal workers.

    python benchmarks/sweep.py [--repeat N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fpttsim.sweeps import DaskExecutor, LocalPool, load_sweep, run_sweep

SMOKE = Path(__file__).resolve().parent.parent / "scenarios" / "sweeps" / "smoke.yaml"


def timed(make_executor) -> float:
    """Seconds to run the smoke sweep on a fresh executor into a fresh folder."""
    sweep = load_sweep(SMOKE)
    with tempfile.TemporaryDirectory() as folder:
        executor = make_executor()  # a cluster's start-up is not the runs' time
        start = time.perf_counter()
        outcome = run_sweep(sweep, folder, executor, progress=False)
        seconds = time.perf_counter() - start
    assert outcome.done == len(sweep.runs) and outcome.failed == 0
    return seconds


def main() -> None:
    """Print the times and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = len(load_sweep(SMOKE).runs)
    timed(lambda: LocalPool(2))  # warm the cache
    best = {}
    for name, make in (
        ("pool, 1 worker", lambda: LocalPool(1)),
        ("pool, 2 workers", lambda: LocalPool(2)),
        ("dask, 2 workers", lambda: DaskExecutor(workers=2)),
    ):
        best[name] = min(timed(make) for _ in range(args.repeat))
        print(f"{name:<16} {best[name]:6.2f} s for {runs} runs", flush=True)
    ratio = best["pool, 1 worker"] / best["pool, 2 workers"]
    overhead = (best["dask, 2 workers"] - best["pool, 2 workers"]) / runs
    print(f"throughput, 2 workers over 1: {ratio:.2f}x")
    print(f"dask's overhead against the pool: {overhead * 1e3:+.0f} ms per run")


if __name__ == "__main__":
    main()
