"""Regenerate the README's figures that no fpttsim command writes.

    python docs/figures.py [--out DIR]          (default: docs/figures)

``fptt_passes.png`` shows, for one window of the quickstart scenario, the
total error on the state ``delta_t`` three ways: BPTT's, computed backwards
from ``delta_T = g_T``; FPTT's warm-up, the error equation run forwards from
zero; and FPTT's error pass, the same equation run forwards from the start
error the warm-up found. In float64 the error pass retraces BPTT's errors to
rounding. Under an fp32 device profile with fast-forgetting units, a unit's
start error should be smaller than the smallest number fp32 holds; it starts
too large, the excess grows by ``1 / |lambda|`` a step, and the error pass
leaves BPTT's errors far behind before the window ends.

Every number comes from fpttsim's own kernels. The engine's BPTT keeps its
errors when asked (``trace=True``); FPTT's error pass keeps none, since a
device has no room for them, so the error pass's ``delta_t`` is read by
running the engine's FPTT kernel on the window's first ``t`` steps, with the
loss gradient at step ``t`` set to zero so that the kernel's end residual
``delta_t - g_t`` is ``delta_t`` itself. This costs ``T^2 / 2`` steps, which
for these windows is a second or two.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import fpttsim
from fpttsim.cells import jacobian
from fpttsim.data import Window
from fpttsim.experiment import prepare
from fpttsim.learn import _kernels
from fpttsim.learn.engine import window_gradient
from fpttsim.numerics.codes import INPUT
from fpttsim.numerics.formats import parse_format
from fpttsim.precision import on_device, spectrum

DEFAULT_OUT = Path(__file__).resolve().parent / "figures"

# The two windows of fptt_passes.png: the quickstart as shipped (float64), and
# on an fp32 microcontroller with units that forget half their state a step,
# over a window long enough for fp32's range to run out (about 150 steps).
EXACT = {}
REDUCED = {"profile": "cortex-m4f", "model.r_min": 0.5, "task.length": 200}


@dataclass
class Trajectories:
    """The errors on one layer's state along one window, ``(T + 1, S)`` each.

    Attributes
    ----------
    title
        What the window is: profile, ``r_min`` and length.
    bptt
        BPTT's ``delta_t``, in the profile's arithmetic.
    warmup
        FPTT's warm-up ``delta'_t`` (zero at ``t = 0``).
    fptt
        FPTT's error pass ``delta_t``, from the warm-up's start error.
    g_end
        The loss gradient on the last state, ``g_T``.
    residual
        The end residual ``|delta_T - g_T|_2`` of the engine's own FPTT on
        the same window.
    moduli
        Each unit's eigenvalue modulus ``|lambda|``, in unit order.
    unit_roundoff
        Half the spacing of the error's format at 1.
    """

    title: str
    bptt: np.ndarray
    warmup: np.ndarray
    fptt: np.ndarray
    g_end: np.ndarray
    residual: float
    moduli: np.ndarray
    unit_roundoff: float

    @property
    def deviation(self) -> np.ndarray:
        """``|delta_t(FPTT) - delta_t(BPTT)| / |delta_t(BPTT)|`` per step."""
        norm = np.linalg.norm
        return norm(self.fptt - self.bptt, axis=1) / norm(self.bptt, axis=1)

    @property
    def worst_unit(self) -> int:
        """The unit whose error departs most from BPTT's at the window's end.

        The state holds a unit's parts (an LRU's real and imaginary) at
        intervals of the number of units.
        """
        gap = np.abs(self.fptt[-1] - self.bptt[-1])
        return int(np.argmax(gap)) % self.moduli.size

    def growth(self, above: float = 1e-4) -> float:
        """The deviation's growth factor per step, where it exceeds ``above``.

        A least-squares line through ``log(deviation)`` against ``t``, from
        the first step past ``above`` to the window's end; NaN when fewer
        than ten steps are left.
        """
        deviation = self.deviation
        past = np.flatnonzero(deviation > above)
        if past.size == 0 or deviation.size - past[0] < 10:
            return float("nan")
        steps = np.arange(past[0], deviation.size)
        slope = np.polyfit(steps, np.log(deviation[past[0] :]), 1)[0]
        return float(np.exp(slope))


def _forward_errors(ar, code, theta_cell, u, g, start) -> np.ndarray:
    """``delta_t`` of FPTT's error equation from ``start``, for ``t = 0..T``."""
    steps, size = u.shape[0], g.shape[1]
    out = np.empty((steps + 1, size))
    out[0] = start
    for t in range(1, steps + 1):
        g_t = g[: t + 1].copy()
        g_t[t] = 0.0  # the residual delta_t - g_t is then delta_t
        grad = np.zeros(theta_cell.size)
        du = np.empty((t, u.shape[1]))
        status, _ = _kernels.fptt_error_pass(
            ar,
            code,
            theta_cell,
            np.ascontiguousarray(u[:t]),
            g_t,
            start,
            grad,
            du,
            out[t],
            jacobian.EXACT,
            1,
        )
        if status:
            raise fpttsim.NumericalError(
                f"FPTT's error pass met a singular Jacobian at step {status}"
            )
    return out


def trajectories(overrides: dict) -> Trajectories:
    """BPTT's and FPTT's errors on the first window of the quickstart.

    ``overrides`` are scenario keys, as ``--set`` takes them. The weights
    and inputs are stored in the profile's formats, as ``gradcheck`` stores
    them, and every algorithm runs in the profile's arithmetic.
    """
    scenario = fpttsim.load_scenario("quickstart", overrides)
    profile = scenario.resolve_profile()
    experiment = prepare(scenario)
    net = experiment.net
    arith, _, theta = on_device(net, experiment.theta, profile, scenario.seed)
    raw = next(experiment.task.stream(scenario.seed))
    window = Window(arith.round(INPUT, raw.inputs), raw.targets, raw.mask)

    # BPTT keeps its errors; the states, inputs and g are what FPTT sees too
    bptt = window_gradient(net, theta, window, "bptt", arithmetic=arith, trace=True)
    trace = bptt.traces[0]
    fptt = window_gradient(net, theta, window, "fptt", arithmetic=arith)

    # phase 1 gives delta_0 = P (g_T - delta'_T); both phases then run the
    # same forward recursion, from zero and from delta_0
    spec = net.cells[0]
    theta_cell = np.ascontiguousarray(theta[net.cell_slices[0]])
    u, g = trace.inputs, trace.errors
    delta0 = np.empty(spec.state_size)
    jac_prod = np.empty(spec.jacobian_size)
    ar = arith.ar
    _kernels.fptt_warmup(
        ar, spec.code, theta_cell, u, g, delta0, jac_prod, jacobian.EXACT, 1
    )
    zero = np.zeros(spec.state_size)
    model = scenario.model
    return Trajectories(
        title=f"{profile.name} ({_error_format(profile).name} errors), "
        f"r_min = {model.r_min:g}, T = {u.shape[0]}",
        bptt=trace.deltas,
        warmup=_forward_errors(ar, spec.code, theta_cell, u, g, zero),
        fptt=_forward_errors(ar, spec.code, theta_cell, u, g, delta0),
        g_end=g[-1].copy(),
        residual=fptt.layers[0].residual,
        moduli=np.exp(spectrum(net, theta, bptt.traces)[0].exponents),
        unit_roundoff=2.0 ** -(_error_format(profile).fraction_bits + 1),
    )


def _error_format(profile):
    """The number format of the errors ``delta`` under ``profile``."""
    arithmetic = profile.arithmetic
    error = arithmetic.formats.error
    return parse_format(error.format if error is not None else arithmetic.default)


def _positive(values: np.ndarray) -> np.ndarray:
    """Zeros as gaps, for a logarithmic axis."""
    return np.where(values > 0, values, np.nan)


def _panel(top, bottom, tr: Trajectories, slope: bool) -> None:
    steps = np.arange(tr.bptt.shape[0])
    norm = np.linalg.norm
    marker = 2.5 if steps.size < 100 else 1.8
    top.plot(steps, norm(tr.bptt, axis=1), color="0.2", lw=2.5, label="BPTT")
    top.plot(
        steps,
        _positive(norm(tr.warmup, axis=1)),
        "--",
        color="tab:blue",
        label="FPTT warm-up $\\delta'_t$ (from 0)",
    )
    top.plot(
        steps,
        norm(tr.fptt, axis=1),
        "o",
        color="tab:orange",
        ms=marker,
        label="FPTT error pass (from $\\delta_0$)",
    )
    top.set_yscale("log")
    top.set_title(tr.title, fontsize=10)
    top.grid(alpha=0.3)

    deviation = _positive(tr.deviation)
    bottom.plot(steps, deviation, color="tab:orange", lw=1.5, label="FPTT vs BPTT")
    bottom.axhline(tr.unit_roundoff, color="0.5", ls=":", label="unit roundoff")
    low = min(np.nanmin(deviation), tr.unit_roundoff) / 10
    if slope:
        # an error in the start of the unit it sits in grows as |lambda|^-t:
        # that line, through the window's last step
        modulus = tr.moduli[tr.worst_unit]
        line = deviation[-1] * modulus ** (steps[-1] - steps.astype(float))
        shown = line >= low
        bottom.plot(
            steps[shown],
            line[shown],
            "--",
            color="tab:red",
            label=f"$\\propto |\\lambda|^{{-t}}$, $|\\lambda|$ = {modulus:.3f}",
        )
    bottom.set_ylim(bottom=low)
    bottom.set_yscale("log")
    bottom.set_xlabel("step t")
    bottom.grid(alpha=0.3)
    bottom.legend(fontsize=8, loc="upper left")


def fptt_passes(path: Path) -> tuple[Trajectories, Trajectories]:
    """Write ``fptt_passes.png`` to ``path``; return what it plots."""
    exact, reduced = trajectories(EXACT), trajectories(REDUCED)
    # an Agg canvas outside pyplot, as fpttsim draws its own figures
    fig = Figure(figsize=(9, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2, sharex="col", height_ratios=(3, 2))
    _panel(axes[0, 0], axes[1, 0], exact, slope=False)
    _panel(axes[0, 1], axes[1, 1], reduced, slope=True)
    axes[0, 0].set_ylabel("$|\\delta_t|_2$")
    axes[1, 0].set_ylabel("FPTT's deviation\nfrom BPTT, relative")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        "The error $\\delta_t$ on the state along one quickstart window: "
        "BPTT backwards, FPTT forwards",
        fontsize=11,
    )
    fig.savefig(path, dpi=90)
    return exact, reduced


def main(argv: list[str] | None = None) -> None:
    """Write every figure into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fptt_passes.png"
    fptt_passes(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
