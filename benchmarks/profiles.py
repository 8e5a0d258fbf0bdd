"""Time of one FPTT training step under every shipped hardware profile.

Run with the project's interpreter::

    .venv/bin/python benchmarks/profiles.py [--cells lru gru] [--repeats 9]

A training step here is :func:`fpttsim.learn.window_gradient` on one window
of the quickstart scenario (one layer, 32 units, the copy task over 50 steps)
with FPTT, and nothing else. For each cell and profile the script compiles
the kernels first (one untimed call), then prints the median of several
timed calls in milliseconds and its ratio to the ``fp64-reference`` profile,
which runs without any rounding code.

A second table splits one step into the kernels the engine calls, for one
profile (``--breakdown``, ``bf16-systolic`` by default): the cell's forward
pass, the feed-forward block's forward pass, the readout and its errors, the
block's backward pass, FPTT's warm-up pass and its error pass. Tables go to
stdout.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from fpttsim.cells import jacobian
from fpttsim.config import load_profile, load_scenario, shipped_profiles
from fpttsim.experiment import prepare
from fpttsim.learn import _kernels, engine, window_gradient
from fpttsim.network import block
from fpttsim.numerics import codes
from fpttsim.numerics.arithmetic import Arithmetic

REFERENCE = "fp64-reference"


def median_time(fn, repeats: int) -> float:
    """Median of ``repeats`` wall-clock timings of ``fn()``, seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def quickstart(cell: str):
    """The quickstart network with ``cell``, its parameters and one window."""
    scenario = load_scenario("quickstart", {"model.cell": cell})
    experiment = prepare(scenario)
    window = experiment.task.sample(np.random.default_rng(scenario.seed))
    return experiment.net, experiment.theta, window


def device_setup(net, theta: np.ndarray, profile: str):
    """The profile's arithmetic and the weights stored in its format."""
    arith = Arithmetic.from_profile(load_profile(profile))
    return arith, arith.round_blocks(codes.WEIGHTS, theta, net.stored_weights())


def step_time(net, theta, window, profile: str, repeats: int) -> float:
    """Median seconds of one FPTT window gradient under ``profile``."""
    arith, weights = device_setup(net, theta, profile)

    def step():
        window_gradient(net, weights, window, "fptt", arithmetic=arith)

    step()  # compile, or load the compiled kernels from the cache
    return median_time(step, repeats)


def breakdown(net, theta, window, profile: str, repeats: int) -> dict[str, float]:
    """Median seconds of each kernel of one FPTT window (one layer)."""
    arith, weights = device_setup(net, theta, profile)
    ar = arith.ar
    spec = net.cells[0]
    theta_cell = weights[net.cell_slices[0]]
    theta_block = weights[net.block_slices[0]]
    us, hs, o = engine._forward(net, weights, window.inputs, arith)
    u, h = us[0], hs[0]
    n_steps = u.shape[0]
    _, _, _, e = engine._readout(net, weights, o, window, np.zeros(net.size), ar)
    g = np.zeros_like(h)
    du = np.empty_like(u)
    block.backward(
        ar, theta_block, u, h, e, net.mlp_hidden, np.zeros(theta_block.size), g, du
    )
    delta0 = np.empty(spec.state_size)
    jac_prod = np.empty(spec.jacobian_size)

    def cell_forward():
        _kernels.forward(ar, spec.code, theta_cell, u, np.zeros_like(h))

    def block_forward():
        block.forward(
            ar, theta_block, u, h, net.mlp_hidden, np.empty((n_steps, net.width))
        )

    def readout():
        engine._readout(net, weights, o, window, np.zeros(net.size), ar)

    def block_backward():
        block.backward(
            ar,
            theta_block,
            u,
            h,
            e,
            net.mlp_hidden,
            np.zeros(theta_block.size),
            np.zeros_like(h),
            np.empty_like(u),
        )

    def warmup():
        _kernels.fptt_warmup(
            ar, spec.code, theta_cell, u, g, delta0, jac_prod, jacobian.EXACT, 1
        )

    def error_pass():
        _kernels.fptt_error_pass(
            ar,
            spec.code,
            theta_cell,
            u,
            g,
            delta0,
            np.zeros(theta_cell.size),
            np.zeros_like(u),
            np.empty(spec.state_size),
            jacobian.EXACT,
            1,
        )

    parts = {
        "forward": cell_forward,
        "block forward": block_forward,
        "readout": readout,
        "block backward": block_backward,
        "FPTT warm-up": warmup,
        "error pass": error_pass,
    }
    out = {}
    for name, fn in parts.items():
        fn()
        out[name] = median_time(fn, repeats)
    return out


def main() -> None:
    """Time every profile and cell, then one profile kernel by kernel."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lru", "gru"])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--breakdown", default="bf16-systolic")
    args = parser.parse_args()

    profiles = shipped_profiles()
    if REFERENCE in profiles:  # the reference first: the ratios divide by it
        profiles = [REFERENCE] + [p for p in profiles if p != REFERENCE]
    setups = {cell: quickstart(cell) for cell in args.cells}
    times = {
        (cell, profile): step_time(*setups[cell], profile, args.repeats)
        for cell in args.cells
        for profile in profiles
    }

    print("one FPTT training step of the quickstart network (T = 50, N = 32)")
    print("ms per step (median), ratio to fp64-reference")
    header = f"{'profile':<16}" + "".join(
        f"{cell + ' ms':>10} {'ratio':>6}" for cell in args.cells
    )
    print(header)
    print("-" * len(header))
    for profile in profiles:
        row = f"{profile:<16}"
        for cell in args.cells:
            ms = 1e3 * times[cell, profile]
            ratio = times[cell, profile] / times.get((cell, REFERENCE), np.nan)
            row += f"{ms:>10.2f} {ratio:>6.1f}"
        print(row)

    for cell in args.cells:
        parts = breakdown(*setups[cell], args.breakdown, args.repeats)
        reference = breakdown(*setups[cell], REFERENCE, args.repeats)
        print()
        print(f"kernels of one step, {cell}, {args.breakdown} against {REFERENCE}")
        header = f"{'kernel':<16}{'ms':>9}{REFERENCE + ' ms':>20}{'ratio':>7}"
        print(header)
        print("-" * len(header))
        for name, seconds in parts.items():
            ratio = seconds / reference[name]
            print(
                f"{name:<16}{1e3 * seconds:>9.3f}"
                f"{1e3 * reference[name]:>20.3f}{ratio:>7.1f}"
            )
        total = sum(parts.values())
        ref_total = sum(reference.values())
        print(
            f"{'sum':<16}{1e3 * total:>9.3f}{1e3 * ref_total:>20.3f}"
            f"{total / ref_total:>7.1f}"
        )


if __name__ == "__main__":
    main()
