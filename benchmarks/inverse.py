"""FPTT with approximate inverse Jacobians: the bias of a Neumann series, and its time.

For one layer of 32 units of each cell on the copy task at T = 100, with
``r_min`` 0.9 and 0.99, in float64: the gradient cosine with BPTT of FPTT with
the exact inverse (``learning.fptt.inverse: exact``) and with the Neumann
series ``sum_{i<=m} (I - J^T)^i`` for m = 1, 2, 4, 8 terms
(``inverse: neumann``), the median over windows (a gradient that is not
finite counts as 0); beside them the largest spectral radius of ``I - J``
met over the window, the series' condition of convergence. A second table
gives each method's time per window (the whole window's gradient), measured
side by side in this run, as a ratio to the exact inverse's.

The LRU also runs with its eigenvalues' phases drawn in ``[0, 0.1]`` instead of
``[0, 2 pi]``: a near-continuous-time LRU, whose ``J`` is close to ``I``.

    python benchmarks/inverse.py [--length T] [--windows N] [--repeats R]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from fpttsim.cells import dispatch, jacobian
from fpttsim.config import load_scenario
from fpttsim.config.scenario import FpttConfig
from fpttsim.experiment import prepare
from fpttsim.learn import window_gradient
from fpttsim.precision import cosine, median_cosine, windows_at

CELLS = [
    ("gru", "gru", {}),
    ("rnn", "rnn", {}),
    ("lru", "lru", {}),
    ("lru, phase <= 0.1", "lru", {"model.max_phase": 0.1}),
    ("diagonal", "diagonal", {}),
]
R_MIN = (0.9, 0.99)
TERMS = (1, 2, 4, 8)
METHODS = [
    ("exact", FpttConfig()),
    *((f"neumann {m}", FpttConfig(inverse="neumann", terms=m)) for m in TERMS),
]


def eigenvalues(kind: int, jac: np.ndarray, size: int) -> np.ndarray:
    """The eigenvalues of ``J`` held in ``jac`` (state of ``size`` numbers)."""
    if kind == jacobian.COMPLEX_DIAGONAL:
        n = size // 2
        return jac[:n] + 1j * jac[n:]
    if kind == jacobian.REAL_DIAGONAL:
        return jac
    return np.linalg.eigvals(jac.reshape(size, size))


def neumann_radius(net, theta, window) -> float:
    """The largest spectral radius of ``I - J_t`` over the window's steps."""
    trace = window_gradient(net, theta, window, "bptt", trace=True).traces[0]
    spec = net.cells[0]
    theta_cell = theta[net.cell_slices[0]]
    size = spec.state_size
    jac = np.empty(spec.jacobian_size)
    worst = 0.0
    for t in range(1, trace.inputs.shape[0] + 1):
        dispatch.jacobian(
            None,
            spec.code,
            theta_cell,
            trace.states[t - 1],
            trace.inputs[t - 1],
            trace.states[t],
            jac,
            np.empty(size),
            np.empty(size),
        )
        step = np.abs(1.0 - eigenvalues(spec.jacobian_kind, jac, size))
        worst = max(worst, float(step.max()))
    return worst


def seconds_per_window(net, theta, window, repeats: int) -> dict[str, float]:
    """The median time of each method's window gradient, methods interleaved."""
    times: dict[str, list[float]] = {label: [] for label, _ in METHODS}
    for _ in range(repeats):
        for label, method in METHODS:
            start = time.perf_counter()
            window_gradient(net, theta, window, "fptt", fptt=method)
            times[label].append(time.perf_counter() - start)
    return {label: float(np.median(found)) for label, found in times.items()}


def measure(cell: str, r_min: float, extra: dict, args) -> dict:
    """Cosines, spectral radius and times of one cell at one ``r_min``."""
    overrides = {
        "model.cell": cell,
        "model.r_min": r_min,
        "task.length": args.length,
        **extra,
    }
    scenario = load_scenario("quickstart", overrides)
    experiment = prepare(scenario)
    net, theta = experiment.net, experiment.theta
    windows = windows_at(scenario, args.length, args.windows)
    found: dict[str, list[float]] = {label: [] for label, _ in METHODS}
    radius = 0.0
    for window in windows:
        exact = window_gradient(net, theta, window, "bptt").grad
        for label, method in METHODS:
            grad = window_gradient(net, theta, window, "fptt", fptt=method).grad
            found[label].append(cosine(grad, exact))
        radius = max(radius, neumann_radius(net, theta, window))
    return {
        "cosine": {label: median_cosine(v) for label, v in found.items()},
        "radius": radius,
        "seconds": seconds_per_window(net, theta, windows[0], args.repeats),
    }


def main() -> None:
    """Print the cosine table, then the time table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows = []
    for label, cell, extra in CELLS:
        for r_min in R_MIN:
            print(f"{label}, r_min = {r_min}", file=sys.stderr, flush=True)
            rows.append((label, r_min, measure(cell, r_min, extra, args)))

    names = [label for label, _ in METHODS]
    print(
        f"\nGradient cosine with float64 BPTT, T = {args.length}, 32 units, "
        f"median of {args.windows} windows"
    )
    print(f"| cell | r_min | max rho(I - J) | {' | '.join(names)} |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for label, r_min, found in rows:
        cells = " | ".join(f"{found['cosine'][name]:.4f}" for name in names)
        print(f"| {label} | {r_min} | {found['radius']:.3g} | {cells} |")

    print(
        f"\nTime per window, median of {args.repeats} side by side: exact in ms, "
        "the others as a ratio to it"
    )
    print(f"| cell | r_min | {' | '.join(names)} |")
    print("|---|---:|" + "---:|" * len(names))
    for label, r_min, found in rows:
        seconds = found["seconds"]
        base = seconds["exact"]
        ratios = [f"{seconds[name] / base:.2f}" for name in names[1:]]
        print(f"| {label} | {r_min} | {1e3 * base:.2f} | {' | '.join(ratios)} |")


if __name__ == "__main__":
    main()
