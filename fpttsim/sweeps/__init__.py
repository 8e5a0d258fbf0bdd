"""Sweeps over scenario keys, on a local process pool or Dask distributed.

:func:`load_sweep` reads and expands a sweep file, :func:`run_sweep` runs
what is not yet finished on an executor (:class:`LocalPool`,
:class:`DaskExecutor`), :func:`sweep_report` tabulates and plots.
"""

from fpttsim.sweeps.executors import DaskExecutor, LocalPool
from fpttsim.sweeps.report import sweep_report
from fpttsim.sweeps.runner import SweepOutcome, finished_runs, repair, run_sweep
from fpttsim.sweeps.spec import Run, Sweep, SweepSpec, load_sweep, run_key

__all__ = [
    "DaskExecutor",
    "LocalPool",
    "Run",
    "Sweep",
    "SweepOutcome",
    "SweepSpec",
    "finished_runs",
    "load_sweep",
    "repair",
    "run_key",
    "run_sweep",
    "sweep_report",
]
