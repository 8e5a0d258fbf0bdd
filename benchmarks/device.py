"""The device simulator's speed, FPTT's time against T, and memory against T.

Run with the project's interpreter::

    .venv/bin/python benchmarks/device.py [--part speed|length|memory|all]
        [--repeats 5] [--json]

Three parts, each measured side by side in one run:

speed
    Samples per second of ``fpttsim run`` (:class:`fpttsim.device.Device`:
    inference on every arriving sample, FPTT's gradient of every window, an
    Adam update) against :class:`NumpyFptt`, the same algorithm on the same
    network and parameters written in plain NumPy: vectorised over the units
    of a step, a Python loop over the steps. One layer, copy task, fp64
    profile; an LRU of 32 units and a dense tanh RNN of 64. Before timing, the
    NumPy gradient of one window must equal
    :func:`fpttsim.learn.stream_gradient`'s to a relative error below 1e-9.
length
    Seconds per window of :func:`fpttsim.learn.stream_gradient` (FPTT on the
    device's schedule, one LRU layer of 32 units) for T from 10^2 to 10^5
    (10^6 with ``--long``), and the slope of log(time) against log(T).
memory
    The process's peak resident memory (``ru_maxrss``) while it computes one
    window's gradient, T from 10^2 to 10^6, each T in a fresh process: FPTT
    on the device's schedule and BPTT (:func:`fpttsim.learn.window_gradient`,
    which keeps the window's states). The window's arrays are the replay
    buffer; the peak minus the replay buffer is what the learner adds. Beside
    it, the bytes :func:`fpttsim.device.plan` gives the device.

Tables go to stdout, progress to stderr; ``--json`` prints one JSON document
instead of the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import timeit
from functools import partial

import numpy as np
from scipy.special import erf  # NumPy has no erf; GELU here is the exact one
from threadpoolctl import threadpool_limits

import fpttsim
from fpttsim.device import Device, plan
from fpttsim.device.memory import breakdown
from fpttsim.experiment import prepare
from fpttsim.learn import stream_gradient, window_gradient
from fpttsim.network.block import LAYER_NORM_EPS

SPEED_CELLS = (("lru", 32), ("rnn", 64))
COPY = {"kind": "copy", "symbols": 5, "alphabet": 8}
# Eigenvalue moduli near 1 keep FPTT's |lam|^-T amplification finite up to
# T = 10^6 (0.9999^-10^6 = e^100), so long windows are timed on finite
# numbers rather than on infinities and NaNs.
SLOW_DECAY = {"model.r_min": 0.9999, "model.r_max": 0.99999}
GRADIENT_TOLERANCE = 1e-9
FLAT_TOLERANCE = 0.05  # FPTT's peak minus replay, T = 10^3 against T = 10^6
MB = 2**20


def copy_scenario(cell: str, hidden: int, length: int, steps: int = 1, **extra):
    """A one-layer scenario learning the copy task over ``length`` steps."""
    overrides = {
        "task": {**COPY, "length": length},
        "model.cell": cell,
        "model.hidden": hidden,
        "model.layers": 1,
        "training.steps": steps,
        "profile": "fp64-reference",
        **extra,
    }
    return fpttsim.load_scenario("quickstart", overrides)


def progress(message: str) -> None:
    """One line of progress on stderr."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# FPTT in plain NumPy


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _gelu_slope(x):
    density = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0))) + x * density


class _Lru:
    """The LRU with a complex state: ``h = lam h_prev + gamma (B v)``.

    ``J = diag(lam)`` at every step, so ``J^{-T} x = x / conj(lam)`` and
    ``P`` is a vector. Errors ``d`` are complex, ``dL/dRe h + i dL/dIm h``.
    """

    def __init__(self, p: dict) -> None:
        n = p["nu_log"].size
        self.n = n
        self.nu = np.exp(p["nu_log"])
        self.angle = np.exp(p["theta_log"])
        self.lam = np.exp(-self.nu + 1j * self.angle)
        self.lam_conj = np.conj(self.lam)
        self.gamma = np.exp(p["gamma_log"])
        self.b = p["B"][:n] + 1j * p["B"][n:]  # (N, I)

    def zeros(self):
        return np.zeros(self.n, dtype=complex)

    def native(self, c):
        """``C`` acting on the complex state: ``y = Re(C' h)``."""
        return c[:, : self.n] - 1j * c[:, self.n :]

    def real_layout(self, acc):
        """``dL/dC`` in the flat layout from ``sum dy h^T`` (complex)."""
        return np.hstack([acc.real, acc.imag])

    def drive(self, v):
        return self.b @ v

    def advance(self, h_prev, w):
        return self.lam * h_prev + self.gamma * w

    def jacobian(self, h):
        return self.lam_conj  # J^T, as a multiplier

    def solve(self, jac_t, x):
        return x / jac_t

    def prod_init(self):
        return np.ones(self.n, dtype=complex)

    def prod_update(self, jac_prod, jac_t):
        return jac_prod * jac_t

    def prod_apply(self, jac_prod, x):
        return jac_prod * x

    def grad_init(self):
        n, i = self.b.shape
        return [self.zeros(), self.zeros(), np.zeros((n, i), dtype=complex)]

    def grad_step(self, acc, h_prev, v, w, h, d):
        """Add one step's ``(df/dtheta)^T d`` to ``acc``."""
        acc[0] += d * np.conj(h_prev)  # dL/dlam, complex
        acc[1] += d * np.conj(w)  # its real part is dL/dgamma
        acc[2] += np.outer(d, v)  # dL/d(B v) = gamma d

    def grad_arrays(self, acc):
        """The cell's gradient by array name, in the learner's coordinates."""
        g_lam, g_gamma, g_b = acc
        rot = g_lam * self.lam_conj
        scaled = self.gamma[:, None] * g_b
        return {
            "nu_log": -self.nu * rot.real,
            "theta_log": self.angle * rot.imag,
            "gamma_log": self.gamma * g_gamma.real,
            "B": np.vstack([scaled.real, scaled.imag]),
        }


class _Rnn:
    """The dense tanh RNN: ``h = tanh(W h_prev + U v + b)``.

    ``J = diag(1 - h^2) W``, solved with LAPACK at every step; ``P`` is
    ``N x N``.
    """

    def __init__(self, p: dict) -> None:
        self.w, self.u, self.bias = p["W"], p["U"], p["b"]
        self.n = self.bias.size

    def zeros(self):
        return np.zeros(self.n)

    def native(self, c):
        return c

    def real_layout(self, acc):
        return acc

    def drive(self, v):
        return self.u @ v + self.bias

    def advance(self, h_prev, w):
        return np.tanh(self.w @ h_prev + w)

    def jacobian(self, h):
        return ((1.0 - h * h)[:, None] * self.w).T  # J^T

    def solve(self, jac_t, x):
        return np.linalg.solve(jac_t, x)

    def prod_init(self):
        return np.eye(self.n)

    def prod_update(self, jac_prod, jac_t):
        return jac_prod @ jac_t

    def prod_apply(self, jac_prod, x):
        return jac_prod @ x

    def grad_init(self):
        return [np.zeros_like(self.w), np.zeros_like(self.u), self.zeros()]

    def grad_step(self, acc, h_prev, v, w, h, d):
        s = (1.0 - h * h) * d
        acc[0] += np.outer(s, h_prev)
        acc[1] += np.outer(s, v)
        acc[2] += s

    def grad_arrays(self, acc):
        return dict(zip(("W", "U", "b"), acc, strict=True))


class _Block:
    """Cell output, layer normalisation, GELU MLP (and the residual)."""

    def __init__(self, p: dict, cell) -> None:
        self.cell = cell
        self.c = cell.native(p["C"])  # (H, S)
        self.c_t = np.conj(self.c).T  # dL/dh = C'^H dL/dy
        self.d, self.w1, self.b1 = p["D"], p["W1"], p["b1"]
        self.w2, self.b2 = p["W2"], p["b2"]
        self.residual = self.d.shape[0] == self.d.shape[1]

    def forward(self, u, h):
        """The output ``o`` and what the backward step reuses."""
        y = (self.c @ h).real + self.d @ u
        centred = y - y.mean()
        inv_std = 1.0 / np.sqrt(np.mean(centred * centred) + LAYER_NORM_EPS)
        m = centred * inv_std
        a1 = self.w1 @ m + self.b1
        q = _gelu(a1)
        o = self.w2 @ q + self.b2
        if self.residual:
            o = o + u
        return o, (m, inv_std, a1, q)

    def backward(self, e, u, h, saved, acc):
        """``g = dL/dh`` from the output error ``e``; gradients into ``acc``.

        ``acc`` is None in the passes whose gradients were counted already.
        """
        m, inv_std, a1, q = saved
        da1 = (self.w2.T @ e) * _gelu_slope(a1)
        dm = self.w1.T @ da1
        dy = inv_std * (dm - dm.mean() - m * np.mean(dm * m))
        if acc is not None:
            acc["W2"] += np.outer(e, q)
            acc["b2"] += e
            acc["W1"] += np.outer(da1, m)
            acc["b1"] += da1
            acc["C"] += np.outer(dy, h)
            acc["D"] += np.outer(dy, u)
        return self.c_t @ dy

    def grad_init(self):
        """Zero accumulators, by array name (``C`` complex for the LRU)."""
        arrays = {"C": self.c, "D": self.d, "W1": self.w1, "b1": self.b1}
        arrays.update(W2=self.w2, b2=self.b2)
        return {name: np.zeros_like(value) for name, value in arrays.items()}


class _Readout:
    """Logits ``z = W o + b`` and the cross-entropy of the masked steps."""

    def __init__(self, p: dict) -> None:
        self.w, self.b = p["W"], p["b"]

    def loss(self, o, label):
        z = self.w @ o + self.b
        top = z.max()
        lse = top + math.log(np.exp(z - top).sum())
        return lse - z[label], z, lse

    def error(self, o, label, scale, acc):
        """``(l_t, scale dl_t/do)``; ``scale dl_t/dtheta`` into ``acc``."""
        l_t, z, lse = self.loss(o, label)
        dz = np.exp(z - lse)
        dz[label] -= 1.0
        dz *= scale
        if acc is not None:
            acc["W"] += np.outer(dz, o)
            acc["b"] += dz
        return l_t, self.w.T @ dz


class NumpyFptt:
    """FPTT on one recurrent layer, as a device runs it, in plain NumPy.

    Per window: inference on every sample as it arrives; the warm-up pass
    (``d' <- J^{-T} (d' - g_{t-1})``, ``P <- P J^T``, then ``delta_0 = P (g_T
    - d')``); the error pass (``delta_t = J^{-T} (delta_{t-1} - g_{t-1})``
    forward in time, with the cell's gradient); an Adam update. Nothing is
    kept per step: both passes recompute the states from the window's
    inputs, as fpttsim's device schedule does. The readout's and the
    block's gradients are added in the warm-up pass, the cell's in the error
    pass. Every step runs the block forward and backward, target or not, as
    fpttsim does.

    Parameters
    ----------
    net
        The :class:`fpttsim.network.Network` (one layer, cross-entropy); only
        its layout is read.
    theta
        Initial flat parameters (copied).
    learning
        The scenario's learning section: Adam's rate, clip, weight decay and
        the recurrent parameters' rate factor (constant schedule).
    """

    def __init__(self, net, theta: np.ndarray, learning) -> None:
        if net.layers != 1 or net.loss != "ce" or learning.schedule != "constant":
            raise ValueError(
                "NumpyFptt runs one layer with a cross-entropy readout and a "
                f"constant rate, got {net.layers} layers, loss {net.loss!r}, "
                f"schedule {learning.schedule!r}"
            )
        self.net = net
        self.theta = np.array(theta, dtype=np.float64)
        self.cell_kind = {"lru": _Lru, "rnn": _Rnn}[net.cells[0].name]
        recurrent = net.recurrent_parameters()
        self.rate = learning.lr * np.where(recurrent, learning.recurrent_lr_factor, 1)
        self.decay = learning.weight_decay * np.where(recurrent, 0.0, 1.0)
        self.clip = learning.clip
        self.m = np.zeros(net.size)
        self.v = np.zeros(net.size)
        self.updates = 0
        self._unpack()

    def _unpack(self) -> None:
        """The layers' NumPy arrays from the flat parameters (once a window)."""
        parts: dict[str, dict] = {"cell": {}, "block": {}, "readout": {}}
        for a in self.net.arrays:
            part = "readout" if a.name.startswith("readout") else a.name.split(".")[1]
            parts[part][a.name.rsplit(".", 1)[1]] = self.theta[a.slice].reshape(a.shape)
        self.cell = self.cell_kind(parts["cell"])
        self.block = _Block(parts["block"], self.cell)
        self.readout = _Readout(parts["readout"])

    def infer(self, window) -> float:
        """Inference on the window's samples as they arrive: the summed loss."""
        cell, block = self.cell, self.block
        h = cell.zeros()
        loss = 0.0
        for t, u in enumerate(window.inputs):
            h = cell.advance(h, cell.drive(u))
            o, _ = block.forward(u, h)
            if window.mask[t]:
                loss += window.mask[t] * self.readout.loss(o, window.targets[t])[0]
        return loss

    def _pass(self, window, d, jac_prod, acc_out, acc_cell):
        """One pass over the window; ``d`` is ``d'_0`` or ``delta_0``.

        With ``jac_prod``, the warm-up pass (updates ``P``); with
        ``acc_cell``, the error pass. Returns ``(d_T, g_T, loss)``.
        """
        cell, block, readout = self.cell, self.block, self.readout
        mask, labels = window.mask, window.targets
        total = mask.sum()
        h = cell.zeros()
        g_prev = cell.zeros()
        zero_error = np.zeros(self.net.width)
        loss = 0.0
        for t, u in enumerate(window.inputs):
            w = cell.drive(u)
            h_new = cell.advance(h, w)
            o, saved = block.forward(u, h_new)
            e = zero_error
            if mask[t]:
                l_t, e = readout.error(o, labels[t], mask[t] / total, acc_out)
                loss += mask[t] * l_t
            g = block.backward(e, u, h_new, saved, acc_out)

            jac_t = cell.jacobian(h_new)  # J_{t-1}, at (h_{t-1}, u_t)
            d = cell.solve(jac_t, d - g_prev)
            if jac_prod is not None:
                jac_prod[...] = cell.prod_update(jac_prod, jac_t)
            if acc_cell is not None:
                cell.grad_step(acc_cell, h, u, w, h_new, d)
            g_prev = g
            h = h_new
        return d, g_prev, loss / total

    def gradient(self, window) -> tuple[float, np.ndarray]:
        """Loss and flat gradient of one window."""
        cell, net = self.cell, self.net
        groups = net.groups()
        acc_out = self.block.grad_init()
        acc_out.update(W=np.zeros_like(self.readout.w), b=np.zeros(net.output_size))
        acc_cell = cell.grad_init()

        # warm-up pass, then delta_0 = P (g_T - d'_T)
        jac_prod = cell.prod_init()
        d, g_end, loss = self._pass(window, cell.zeros(), jac_prod, acc_out, None)
        delta0 = cell.prod_apply(jac_prod, g_end - d)

        # error pass: the cell's gradient
        self._pass(window, delta0, None, None, acc_cell)

        grad = np.zeros(net.size)
        acc_out["C"] = cell.real_layout(acc_out["C"])
        for name, value in acc_out.items():
            part = "readout" if name in ("W", "b") else "layer1.block"
            grad[groups[f"{part}.{name}"]] = value.ravel()
        for name, value in cell.grad_arrays(acc_cell).items():
            grad[groups[f"layer1.cell.{name}"]] = value.ravel()
        return loss, grad

    def update(self, grad: np.ndarray) -> None:
        """AdamW on the clipped gradient (betas 0.9, 0.999; eps 1e-8)."""
        norm = np.linalg.norm(grad)
        if self.clip is not None and norm > self.clip:
            grad = grad * (self.clip / norm)
        self.updates += 1
        self.m = 0.9 * self.m + 0.1 * grad
        self.v = 0.999 * self.v + 0.001 * grad * grad
        m_hat = self.m / (1.0 - 0.9**self.updates)
        v_hat = self.v / (1.0 - 0.999**self.updates)
        step = self.rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        self.theta -= self.rate * self.decay * self.theta + step
        self._unpack()

    def run(self, stream, windows: int) -> None:
        """Learn ``windows`` windows of ``stream``, one update each."""
        for _ in range(windows):
            window = next(stream)
            self.infer(window)
            self.update(self.gradient(window)[1])


# ---------------------------------------------------------------------------
# speed


def check_gradient(scenario) -> float:
    """Relative error of NumPy's FPTT gradient against fpttsim's, one window.

    Raises
    ------
    AssertionError
        When it is not below :data:`GRADIENT_TOLERANCE`.
    """
    experiment = prepare(scenario)
    net, theta = experiment.net, experiment.theta
    window = next(experiment.task.stream(scenario.seed))
    reference = stream_gradient(net, theta, window, "fptt")
    loss, grad = NumpyFptt(net, theta, scenario.learning).gradient(window)
    error = np.linalg.norm(grad - reference.grad) / np.linalg.norm(reference.grad)
    if not error < GRADIENT_TOLERANCE or not math.isclose(loss, reference.loss):
        raise AssertionError(
            f"NumPy's FPTT gradient differs from fpttsim's on {net.cells[0].name}: "
            f"relative error {error:.3g} (tolerance {GRADIENT_TOLERANCE}), loss "
            f"{loss!r} against {reference.loss!r}; the two do not compute the "
            "same thing, so their speeds are not comparable"
        )
    return float(error)


def check_updates(scenario, windows: int = 10) -> float:
    """Relative error of NumPy's parameters after ``windows`` updates.

    Both learners start from the same parameters and read the same stream;
    the error is that of NumPy's change of the parameters against the
    device's (:meth:`fpttsim.device.Device.run`).

    Raises
    ------
    AssertionError
        When it is not below :data:`GRADIENT_TOLERANCE`.
    """
    scenario = scenario.model_copy(
        update={"training": scenario.training.model_copy(update={"steps": windows})}
    )
    result = Device(scenario, scenario.resolve_profile()).run()
    experiment = prepare(scenario)
    learner = NumpyFptt(experiment.net, experiment.theta, scenario.learning)
    learner.run(experiment.task.stream(scenario.seed), windows)
    moved = result.theta - experiment.theta
    error = np.linalg.norm(learner.theta - result.theta) / np.linalg.norm(moved)
    if not error < GRADIENT_TOLERANCE:
        raise AssertionError(
            f"after {windows} updates NumPy's parameters differ from the device's "
            f"by {error:.3g} of their change (tolerance {GRADIENT_TOLERANCE}); "
            "the two learners do not run the same updates"
        )
    return float(error)


def device_rate(cell: str, hidden: int, length: int, windows: int) -> float:
    """Samples per second of ``fpttsim run``'s loop over ``windows`` windows."""
    scenario = copy_scenario(cell, hidden, length, steps=windows)
    result = Device(scenario, scenario.resolve_profile()).run()
    learned = result.device["timeline"]["windows_learned"]
    if learned != result.windows:
        raise AssertionError(
            f"the device learnt {learned} of {result.windows} windows; every "
            "window must be learnt for the rate to count FPTT's work"
        )
    return result.windows * length / result.seconds


def numpy_rate(cell: str, hidden: int, length: int, windows: int) -> float:
    """Samples per second of :class:`NumpyFptt` over the device's stream."""
    scenario = copy_scenario(cell, hidden, length)
    experiment = prepare(scenario)
    learner = NumpyFptt(experiment.net, experiment.theta, scenario.learning)
    stream = experiment.task.stream(scenario.seed)
    start = time.perf_counter()
    learner.run(stream, windows)
    return windows * length / (time.perf_counter() - start)


def speed(args) -> list[dict]:
    """Both implementations on each cell, repeated; medians and ratio."""
    rows = []
    for cell, hidden in SPEED_CELLS:
        scenario = copy_scenario(cell, hidden, args.length)
        error = check_gradient(scenario)
        drift = check_updates(scenario)
        progress(
            f"speed: {cell} N={hidden}: the gradients agree to {error:.1e}, the "
            f"parameters after 10 updates to {drift:.1e}"
        )
        device_rate(cell, hidden, args.length, 3)  # compile, or load the cache
        fast, slow = [], []
        # one thread for BLAS, as fpttsim's kernels run on one core
        with threadpool_limits(limits=1):
            numpy_rate(cell, hidden, args.length, 1)
            for k in range(args.repeats):
                fast.append(device_rate(cell, hidden, args.length, args.device_windows))
                slow.append(numpy_rate(cell, hidden, args.length, args.numpy_windows))
                progress(
                    f"speed: {cell} repeat {k + 1}/{args.repeats}: fpttsim "
                    f"{fast[-1]:,.0f}/s, NumPy {slow[-1]:,.0f}/s"
                )
        rows.append(
            {
                "cell": cell,
                "hidden": hidden,
                "length": args.length,
                "gradient_relative_error": error,
                "update_relative_error": drift,
                "fpttsim_samples_per_s": statistics.median(fast),
                "numpy_samples_per_s": statistics.median(slow),
                "ratio": statistics.median(fast) / statistics.median(slow),
            }
        )
    return rows


def print_speed(rows: list[dict], args) -> None:
    """The speed table."""
    print(
        f"device simulator, FPTT, copy task T = {args.length}, fp64: samples/s "
        f"(median of {args.repeats})"
    )
    header = (
        f"{'network':<14}{'fpttsim':>10}{'NumPy':>10}{'ratio':>8}{'grad err':>10}"
        f"{'theta err':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{'1 x ' + r['cell'] + ' ' + str(r['hidden']):<14}"
            f"{r['fpttsim_samples_per_s']:>10,.0f}{r['numpy_samples_per_s']:>10,.0f}"
            f"{r['ratio']:>7.1f}x{r['gradient_relative_error']:>10.1e}"
            f"{r['update_relative_error']:>11.1e}"
        )
    print(
        "grad err: one window's gradient against stream_gradient's; theta err: "
        "the parameters after 10 updates against the device's (relative)"
    )


# ---------------------------------------------------------------------------
# time against T


def length(args) -> dict:
    """Median seconds per window of FPTT on the device's schedule, by T."""
    rows = []
    for n_steps in args.lengths:
        scenario = copy_scenario("lru", 32, n_steps, **SLOW_DECAY)
        experiment = prepare(scenario)
        net, theta = experiment.net, experiment.theta
        window = experiment.task.sample(np.random.default_rng(scenario.seed))
        stream_gradient(net, theta, window, "fptt")  # compile or load; warm caches
        # short windows take milliseconds: more of them steady the median
        if n_steps <= 1000:
            repeats = 5 * args.repeats
        else:
            repeats = args.repeats if n_steps <= 10_000 else max(1, args.repeats // 2)
        one = partial(stream_gradient, net, theta, window, "fptt")
        seconds = statistics.median(timeit.repeat(one, number=1, repeat=repeats))
        rows.append({"length": n_steps, "seconds": seconds, "repeats": repeats})
        progress(f"length: T={n_steps}: {1e3 * seconds:.2f} ms per window")
    lengths = np.log([r["length"] for r in rows])
    slope = float(np.polyfit(lengths, np.log([r["seconds"] for r in rows]), 1)[0])
    return {"rows": rows, "slope": slope}


def print_length(out: dict, args) -> None:
    """Time per window by T, and the slope."""
    print("FPTT window gradient on the device's schedule, 1 x lru 32, by T")
    header = f"{'T':>9}{'ms/window':>12}{'us/step':>9}"
    print(header)
    print("-" * len(header))
    for r in out["rows"]:
        ms = 1e3 * r["seconds"]
        print(f"{r['length']:>9,}{ms:>12.2f}{1e3 * ms / r['length']:>9.2f}")
    print(f"slope of log(time) against log(T): {out['slope']:.3f}")


# ---------------------------------------------------------------------------
# memory against T


def _max_rss() -> int:
    """The process's peak resident memory, bytes (Linux gives KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_peak() -> bool:
    """Lower the peak to the present resident memory (Linux 4.0 and later)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _measure(algorithm: str, n_steps: int) -> dict:
    """Peak memory of one window's gradient in this process."""
    scenario = copy_scenario("lru", 32, n_steps, **SLOW_DECAY)
    experiment = prepare(scenario)
    net, theta = experiment.net, experiment.theta
    gradient = stream_gradient if algorithm == "fptt" else window_gradient

    # load the compiled kernels on a short window first: their code is not
    # the learner's memory
    small = copy_scenario("lru", 32, 64, **SLOW_DECAY)
    gradient(
        net, theta, prepare(small).task.sample(np.random.default_rng(0)), algorithm
    )

    # the copies write every page: np.zeros' pages stay out of the resident
    # memory until written (most of a copy task's targets and mask), while a
    # device writes every sample into its replay buffer
    sample = experiment.task.sample(np.random.default_rng(scenario.seed))
    window = type(sample)(
        np.copy(sample.inputs), np.copy(sample.targets), np.copy(sample.mask)
    )
    del sample
    replay = window.inputs.nbytes + window.targets.nbytes + window.mask.nbytes
    # the window's construction freed its temporaries; they are not the
    # learner's, and the peak would otherwise keep them
    reset = _reset_peak()
    before = _max_rss()
    gradient(net, theta, window, algorithm)
    return {
        "algorithm": algorithm,
        "length": n_steps,
        "before_bytes": before,
        "peak_bytes": _max_rss(),
        "replay_bytes": replay,
        "peak_reset": reset,
    }


def _measure_in_child(algorithm: str, n_steps: int) -> None:
    """:func:`_measure` in a forked child; its JSON on stdout.

    A process started by ``exec`` inherits, as its own ``ru_maxrss``, the
    resident memory of the image it replaced (the benchmark's, through
    ``subprocess``); a forked child without ``exec`` starts a new count.
    """
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            print(json.dumps(_measure(algorithm, n_steps)), flush=True)
        except BaseException as exc:  # the child must not return into main()
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


def planned(algorithm: str, n_steps: int) -> dict:
    """The device's planned bytes by component for one window length."""
    scenario = copy_scenario("lru", 32, n_steps, **SLOW_DECAY)
    net = prepare(scenario).net
    return breakdown(plan(net, algorithm, n_steps, scenario.resolve_profile()))


def memory(args) -> dict:
    """Every (algorithm, T) in a fresh process; FPTT's and BPTT's verdicts."""
    rows = []
    for algorithm in ("fptt", "bptt"):
        for n_steps in args.memory_lengths:
            command = [sys.executable, __file__, "--measure", algorithm, str(n_steps)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(
                    f"memory: {algorithm} at T = {n_steps} failed "
                    f"(exit {done.returncode}): {done.stderr.strip()[-2000:]}"
                )
            row = json.loads(done.stdout)
            row["learner_bytes"] = row["peak_bytes"] - row["replay_bytes"]
            row["planned"] = planned(algorithm, n_steps)
            rows.append(row)
            progress(
                f"memory: {algorithm} T={n_steps}: peak {row['peak_bytes'] / MB:.1f} "
                f"MB, replay {row['replay_bytes'] / MB:.1f} MB"
            )
    return {"rows": rows, **verdicts(rows)}


def verdicts(rows: list[dict]) -> dict:
    """FPTT's flatness (10^3 against the longest T) and BPTT's bytes per step."""
    out = {}
    fptt = {r["length"]: r["learner_bytes"] for r in rows if r["algorithm"] == "fptt"}
    if 1000 in fptt and max(fptt) > 1000:
        change = fptt[max(fptt)] / fptt[1000] - 1.0
        out["fptt_change"] = change
        out["fptt_longest"] = max(fptt)
        out["fptt_flat"] = abs(change) < FLAT_TOLERANCE
    bptt = sorted(
        (r["length"], r["learner_bytes"]) for r in rows if r["algorithm"] == "bptt"
    )
    if len(bptt) >= 3:
        # bytes per step over the last two intervals: equal when linear
        (t0, b0), (t1, b1), (t2, b2) = bptt[-3:]
        out["bptt_bytes_per_step"] = [(b1 - b0) / (t1 - t0), (b2 - b1) / (t2 - t1)]
        low, high = sorted(out["bptt_bytes_per_step"])
        out["bptt_linear"] = low > 0 and high / low < 1.25
    return out


def print_memory(out: dict, args) -> None:
    """Measured and planned memory by T, and the verdicts."""
    print("peak memory of one window's gradient, 1 x lru 32, copy task, fp64")
    print(
        "(each in a fresh process; replay = the window's arrays; grad adds = peak "
        "minus the resident memory before the gradient; MB = 2^20 B)"
    )
    header = (
        f"{'alg':<5}{'T':>10}{'peak MB':>10}{'replay MB':>11}{'peak-replay':>13}"
        f"{'grad adds':>11}{'planned B':>13}{'planned replay':>16}"
    )
    print(header)
    print("-" * len(header))
    for r in out["rows"]:
        plan_total = sum(r["planned"].values())
        print(
            f"{r['algorithm']:<5}{r['length']:>10,}{r['peak_bytes'] / MB:>10.1f}"
            f"{r['replay_bytes'] / MB:>11.2f}{r['learner_bytes'] / MB:>13.1f}"
            f"{(r['peak_bytes'] - r['before_bytes']) / MB:>11.1f}"
            f"{plan_total:>13,}{r['planned']['replay']:>16,}"
        )
    if not all(r["peak_reset"] for r in out["rows"]):
        print("(peak not reset after building the window: construction included)")

    components = [
        c
        for c in out["rows"][0]["planned"]
        if any(r["planned"][c] for r in out["rows"])
    ]
    print()
    print("the device's plan (fpttsim.device.plan), bytes by component")
    header = f"{'alg':<5}{'T':>10}" + "".join(f"{c[:12]:>13}" for c in components)
    print(header)
    print("-" * len(header))
    for r in out["rows"]:
        cells = "".join(f"{r['planned'][c]:>13,}" for c in components)
        print(f"{r['algorithm']:<5}{r['length']:>10,}{cells}")

    print()
    if "fptt_change" in out:
        verdict = "PASS" if out["fptt_flat"] else "FAIL"
        print(
            f"FPTT peak minus replay, T = 1,000 against T = {out['fptt_longest']:,}: "
            f"{100 * out['fptt_change']:+.2f} % (under 5 %: {verdict})"
        )
    if "bptt_bytes_per_step" in out:
        first, second = out["bptt_bytes_per_step"]
        verdict = "linear" if out["bptt_linear"] else "NOT linear"
        print(
            f"BPTT peak minus replay grows by {first:,.0f} and {second:,.0f} bytes "
            f"per step over the last two decades of T: {verdict}"
        )


# ---------------------------------------------------------------------------


def main() -> None:
    """Run the parts asked for and print their tables (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", choices=("speed", "length", "memory", "all"), default="all"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timings per median")
    parser.add_argument("--length", type=int, default=50, help="T of the speed part")
    parser.add_argument(
        "--device-windows", type=int, default=400, help="windows per fpttsim run"
    )
    parser.add_argument(
        "--numpy-windows", type=int, default=40, help="windows per NumPy run"
    )
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[100, 1000, 10_000, 100_000]
    )
    parser.add_argument("--long", action="store_true", help="also time T = 10^6")
    parser.add_argument(
        "--memory-lengths",
        type=int,
        nargs="+",
        default=[100, 1000, 10_000, 100_000, 1_000_000],
    )
    parser.add_argument("--json", action="store_true", help="one JSON document")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:  # one memory measurement, in a process of its own
        _measure_in_child(args.measure[0], int(args.measure[1]))
    if args.long:
        args.lengths = [*args.lengths, 1_000_000]

    parts = ("speed", "length", "memory") if args.part == "all" else (args.part,)
    run = {"speed": speed, "length": length, "memory": memory}
    show = {"speed": print_speed, "length": print_length, "memory": print_memory}
    results = {}
    for part in parts:
        results[part] = run[part](args)
        if not args.json:
            show[part](results[part], args)
            print(flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
