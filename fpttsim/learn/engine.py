r"""Loss and gradient of one window, by any algorithm, behind one interface.

The network is simulated layer by layer over the whole window: all layers
forward, the readout's errors, then from the top layer down each layer's
temporal credit assignment and the errors it sends to the layer below. A
device interleaves the same operations step by step over ``L + 1`` passes
(../docs/architecture.md); every number each operation sees is the same, so
the gradients are the device's.

Algorithms, per layer (``delta_t`` the total error on the state)::

    bptt     delta_T = g_T, delta_t = J_t^T delta_{t+1} + g_t     (the oracle)
    spatial  delta_t = g_t                                        (no temporal credit)
    fptt     warm-up pass, then delta_{t+1} = J_t^{-T} (delta_t - g_t) forward
    rtrl     forward sensitivities dh_t/dtheta (one layer only)

FPTT with ``passes`` below ``L + 1``: the top ``passes - 1`` layers get exact
temporal credit; the layers below fall back to spatial errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fpttsim.cells import jacobian
from fpttsim.config.scenario import FpttConfig
from fpttsim.errors import ConfigError, NumericalError
from fpttsim.learn import _kernels, _stream
from fpttsim.network import Network, block, readout
from fpttsim.numerics import codes
from fpttsim.numerics.arithmetic import Arithmetic

ALGORITHMS = ("bptt", "spatial", "fptt", "rtrl")


@dataclass
class LayerDiagnostics:
    """What one layer's credit assignment saw in one window.

    Attributes
    ----------
    mode
        The algorithm the layer ran: an FPTT layer beyond the pass budget runs
        ``"spatial"``.
    residual
        FPTT's end residual ``|delta_T - g_T|_2`` (zero in exact arithmetic).
    residual_relative
        The residual over ``|g_T|_2`` (over 1 when ``g_T = 0``).
    delta_peak
        Largest ``|delta_t|_2`` of the error pass.
    warmup_peak
        Largest ``|delta'_t|_2`` of the warm-up pass.
    jac_prod_norm
        Frobenius norm of the Jacobian product ``P`` at the window's end.
    error_passes
        Steps run by the error pass over the window's length: 1 for plain or
        segmented FPTT, more when refinement ran segments again (its probes
        included).
    """

    mode: str
    residual: float = 0.0
    residual_relative: float = 0.0
    delta_peak: float = 0.0
    warmup_peak: float = 0.0
    jac_prod_norm: float = 0.0
    error_passes: float = 1.0


@dataclass
class LayerTrace:
    """What one layer computed over a window, kept for analysis.

    Attributes
    ----------
    inputs
        The layer's inputs ``u``, ``(T, I)``.
    states
        Its states ``h``, ``(T + 1, S)`` with ``h[0] = 0``.
    errors
        The instantaneous errors ``g`` on its state, ``(T + 1, S)``.
    deltas
        BPTT's total errors ``delta``, ``(T + 1, S)``; None for other modes.
    """

    inputs: np.ndarray
    states: np.ndarray
    errors: np.ndarray
    deltas: np.ndarray | None = None


@dataclass
class WindowGradient:
    """Loss and gradient of one window."""

    loss: float
    grad: np.ndarray
    correct: int
    counted: int
    layers: list[LayerDiagnostics] = field(default_factory=list)
    traces: list[LayerTrace] | None = None


def layer_modes(net: Network, algorithm: str, passes: int | None = None) -> list[str]:
    """The algorithm each layer runs, bottom layer first."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(
            f"expected one of {', '.join(map(repr, ALGORITHMS))}, got {algorithm!r}",
            key="learning.algorithm",
        )
    n_layers = net.layers
    if algorithm != "fptt":
        return [algorithm] * n_layers
    passes = n_layers + 1 if passes is None else passes
    if not 1 <= passes <= n_layers + 1:
        raise ConfigError(
            f"expected between 1 and layers + 1 = {n_layers + 1} FPTT passes, "
            f"got {passes}",
            key="learning.passes",
        )
    # layer l (from 0) finishes its error pass in pass L - l + 1
    return [
        "fptt" if n_layers - layer + 1 <= passes else "spatial"
        for layer in range(n_layers)
    ]


def rtrl_bytes(net: Network) -> int:
    """Bytes of RTRL's sensitivity matrix (float64) for a one-layer network."""
    spec = net.cells[0]
    return 8 * spec.state_size * (net.cell_slices[0].stop - net.cell_slices[0].start)


def check_algorithm(net: Network, algorithm: str, rtrl_max_bytes: int) -> None:
    """Raise :class:`ConfigError` when ``algorithm`` cannot run on ``net``."""
    if algorithm != "rtrl":
        return
    if net.layers != 1:
        raise ConfigError(
            f"rtrl is implemented for one recurrent layer (model.layers: 1), got "
            f"{net.layers} layers; use bptt or fptt for stacked layers",
            key="learning.algorithm",
        )
    need = rtrl_bytes(net)
    if need > rtrl_max_bytes:
        raise ConfigError(
            f"rtrl would hold a sensitivity matrix of {need:,} bytes, over "
            f"learning.rtrl_max_bytes = {rtrl_max_bytes:,}; use fewer units "
            "(model.hidden) or raise the limit",
            key="learning.algorithm",
        )


_REFERENCE: Arithmetic | None = None


def reference_arithmetic() -> Arithmetic:
    """Float64 everywhere (shared; its event counters stay empty)."""
    global _REFERENCE
    if _REFERENCE is None:
        _REFERENCE = Arithmetic.reference()
    return _REFERENCE


def _forward(net: Network, theta: np.ndarray, inputs: np.ndarray, arith: Arithmetic):
    """States and outputs of every layer over the window."""
    ar = arith.ar
    n_steps = inputs.shape[0]
    us, hs = [], []
    u = np.ascontiguousarray(arith.round(codes.INPUT, inputs), dtype=np.float64)
    for layer, spec in enumerate(net.cells):
        h = np.zeros((n_steps + 1, spec.state_size))  # (T+1, S), h[0] = 0
        _kernels.forward(ar, spec.code, theta[net.cell_slices[layer]], u, h)
        o = np.empty((n_steps, net.width))  # (T, H)
        block.forward(ar, theta[net.block_slices[layer]], u, h, net.mlp_hidden, o)
        us.append(u)
        hs.append(h)
        u = o
    return us, hs, u


def _readout(net, theta, o, window, grad, ar):
    """Loss and ``dL/do`` of the top layer; adds the readout's gradient."""
    e = np.zeros_like(o)  # (T, H)
    g_out = grad[net.readout_slice]
    w = theta[net.readout_slice]
    mask = np.ascontiguousarray(window.mask, dtype=np.float64)
    if net.loss == "ce":
        targets = np.ascontiguousarray(window.targets, dtype=np.int64)
        loss, correct, counted = readout.cross_entropy(
            ar, w, o, targets, mask, net.output_size, g_out, e
        )
    else:
        targets = np.ascontiguousarray(window.targets, dtype=np.float64)
        loss, correct, counted = readout.mean_squared_error(
            ar, w, o, targets, mask, g_out, e
        )
    grad[net.readout_slice] = g_out
    return float(loss), int(correct), int(counted), e


def window_loss(
    net: Network, theta: np.ndarray, window, arithmetic: Arithmetic | None = None
) -> float:
    """The window's loss alone (for finite differences)."""
    arith = arithmetic or reference_arithmetic()
    _, _, o = _forward(net, theta, window.inputs, arith)
    return _readout(net, theta, o, window, np.zeros(net.size), arith.ar)[0]


def window_gradient(
    net: Network,
    theta: np.ndarray,
    window,
    algorithm: str,
    passes: int | None = None,
    arithmetic: Arithmetic | None = None,
    trace: bool = False,
    fptt=None,
) -> WindowGradient:
    """Loss and gradient of one window with ``algorithm``.

    Parameters
    ----------
    net
        The network's sizes and layout.
    theta
        Flat parameter vector, ``(net.size,)``.
    window
        A :class:`fpttsim.data.Window`.
    algorithm
        ``"bptt"``, ``"spatial"``, ``"fptt"`` or ``"rtrl"``.
    passes
        FPTT passes, ``1..L+1`` (default ``L + 1``, exact for every layer).
    arithmetic
        The device's number formats; None for float64 throughout. Its event
        counters grow with what this window's rounding met.
    trace
        Keep each layer's inputs, states, instantaneous errors and (BPTT's)
        total errors in ``traces``, bottom layer first.
    fptt
        FPTT's segments, refinement passes and inverse method
        (:class:`fpttsim.config.scenario.FpttConfig`); None for plain FPTT
        with exact inverses.

    Raises
    ------
    NumericalError
        When FPTT meets a singular recurrent Jacobian.
    """
    modes = layer_modes(net, algorithm, passes)
    arith = arithmetic or reference_arithmetic()
    arith.begin_window()
    ar = arith.ar
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    grad = np.zeros(net.size)
    us, hs, o = _forward(net, theta, window.inputs, arith)
    loss, correct, counted, e = _readout(net, theta, o, window, grad, ar)

    diagnostics: list[LayerDiagnostics] = [None] * net.layers  # type: ignore[list-item]
    traces: list[LayerTrace] = [None] * net.layers  # type: ignore[list-item]
    for layer in range(net.layers - 1, -1, -1):
        spec = net.cells[layer]
        u, h = us[layer], hs[layer]

        # the block: instantaneous errors g_t on the state, direct errors on u
        g = np.zeros_like(h)  # (T+1, S), g[0] = 0
        du = np.empty_like(u)  # (T, I)
        g_block = grad[net.block_slices[layer]]
        block.backward(
            ar, theta[net.block_slices[layer]], u, h, e, net.mlp_hidden, g_block, g, du
        )
        grad[net.block_slices[layer]] = g_block

        # the cell: temporal credit assignment
        theta_cell = theta[net.cell_slices[layer]]
        g_cell = np.zeros(theta_cell.size)
        delta = np.empty_like(h) if trace and modes[layer] == "bptt" else None
        diagnostics[layer] = _credit(
            ar, spec, modes[layer], theta_cell, u, h, g, g_cell, du, layer, delta, fptt
        )
        grad[net.cell_slices[layer]] = g_cell
        traces[layer] = LayerTrace(u, h, g, delta)
        e = du

    return WindowGradient(
        loss, grad, correct, counted, diagnostics, traces if trace else None
    )


def _credit(
    ar, spec, mode, theta_cell, u, h, g, grad, du, layer, delta=None, fptt=None
) -> LayerDiagnostics:
    """Run one layer's algorithm; adds to ``grad`` and ``du``.

    BPTT writes its total errors into ``delta`` when given.
    """
    if mode == "bptt":
        delta = np.empty_like(h) if delta is None else delta
        _kernels.bptt(ar, spec.code, theta_cell, u, h, g, grad, du, delta)
        return LayerDiagnostics(mode)
    if mode == "spatial":
        _kernels.spatial(ar, spec.code, theta_cell, u, h, g, grad, du)
        return LayerDiagnostics(mode)
    if mode == "rtrl":
        sens = np.zeros((theta_cell.size, spec.state_size))  # (M, S)
        _kernels.rtrl(ar, spec.code, theta_cell, u, g, grad, sens)
        # RTRL gives no errors on the input: a one-layer network needs none
        return LayerDiagnostics(mode)

    if fptt is not None and not fptt.plain:
        return _segmented(ar, spec, theta_cell, u, g, grad, du, layer, fptt)
    inverse = _inverse(fptt)
    delta0 = np.empty(spec.state_size)
    jac_prod = np.empty(spec.jacobian_size)
    status, warmup_peak = _kernels.fptt_warmup(
        ar, spec.code, theta_cell, u, g, delta0, jac_prod, *inverse
    )
    _raise_if_singular(status, layer, spec, "warm-up")
    residual = np.empty(spec.state_size)
    status, delta_peak = _kernels.fptt_error_pass(
        ar, spec.code, theta_cell, u, g, delta0, grad, du, residual, *inverse
    )
    _raise_if_singular(status, layer, spec, "error")
    return _fptt_diagnostics(residual, g[-1], (delta_peak, warmup_peak), jac_prod)


def _inverse(fptt) -> tuple[int, int]:
    """The kernels' ``(method, terms)`` of ``J^{-T}``; exact for None."""
    if fptt is None:
        return jacobian.EXACT, 1
    return fptt.inverse_code, fptt.terms


def segment_bounds(steps: int, segments: int) -> np.ndarray:
    """``segments + 1`` boundaries cutting ``steps`` into near-equal segments.

    More segments than steps give one step each.
    """
    segments = max(1, min(segments, steps))
    return np.round(np.linspace(0, steps, segments + 1)).astype(np.int64)


def _segmented(ar, spec, theta_cell, u, g, grad, du, layer, fptt):
    """Segmented and refined FPTT on one layer (``_kernels.fptt_segmented``)."""
    bounds = segment_bounds(u.shape[0], fptt.segments)
    n_seg = bounds.size - 1
    jac_prods = np.empty((n_seg, spec.jacobian_size))
    ends = np.empty((n_seg, spec.state_size))
    deltas = np.empty((n_seg + 1, spec.state_size))
    status, steps, worst, delta_peak, warmup_peak = _kernels.fptt_segmented(
        ar,
        spec.code,
        theta_cell,
        u,
        g,
        bounds,
        fptt.refine,
        fptt.until,
        jac_prods,
        ends,
        deltas,
        grad,
        du,
        *_inverse(fptt),
    )
    _raise_if_singular(status, layer, spec, "segmented")
    return LayerDiagnostics(
        "fptt",
        residual=worst * float(np.linalg.norm(g[-1])),
        residual_relative=worst,
        delta_peak=float(delta_peak),
        warmup_peak=float(warmup_peak),
        jac_prod_norm=float(np.linalg.norm(jac_prods[0])),
        error_passes=steps / u.shape[0],
    )


def _fptt_diagnostics(residual, g_end, peaks, jac_prod) -> LayerDiagnostics:
    """An FPTT layer's diagnostics from its end residual, ``g_T`` and ``P``."""
    r = float(np.linalg.norm(residual))
    g_norm = float(np.linalg.norm(g_end))
    return LayerDiagnostics(
        "fptt",
        residual=r,
        residual_relative=r / g_norm if g_norm > 0 else r,
        delta_peak=float(peaks[0]),
        warmup_peak=float(peaks[1]),
        jac_prod_norm=float(np.linalg.norm(jac_prod)),
    )


def _raise_if_singular(status: int, layer: int, spec, phase: str) -> None:
    if status == 0:
        return
    hint = {
        "rnn": "a tanh unit saturated (1 - h^2 = 0) or W is singular",
        "gru": "an update gate closed or a tanh unit saturated",
    }.get(spec.name, "an eigenvalue underflowed to zero")
    raise NumericalError(
        f"FPTT {phase} pass: the recurrent Jacobian of layer {layer + 1} "
        f"({spec.name}) is singular at step {status}, so the error cannot be "
        f"propagated forward ({hint}); use bptt, or keep the dynamics away "
        "from saturation"
    )


def part_offsets(net: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[start, stop)`` of each layer's cell and block, and of the readout.

    As the compiled schedules take them: ``(L, 2)``, ``(L, 2)`` and ``(2,)``
    int64 arrays of offsets into the flat parameter vector.
    """

    def at(slices):
        return np.array([[s.start, s.stop] for s in slices], dtype=np.int64)

    return at(net.cell_slices), at(net.block_slices), at([net.readout_slice])[0]


def step_targets(net: Network, window) -> tuple[np.ndarray, np.ndarray]:
    """A window's labels ``(T,)`` and targets ``(T, O)``, as kernels take them.

    The one the loss does not use is zeros of the same number of steps, so
    that a kernel may index both at any step.
    """
    n_steps = window.inputs.shape[0]
    if net.loss == "ce":
        labels = np.ascontiguousarray(window.targets, dtype=np.int64)
        return labels, np.zeros((n_steps, 1))
    targets = np.ascontiguousarray(window.targets, dtype=np.float64)
    return np.zeros(n_steps, dtype=np.int64), targets


def stream_gradient(
    net: Network,
    theta: np.ndarray,
    window,
    algorithm: str,
    passes: int | None = None,
    arithmetic: Arithmetic | None = None,
    buffers: tuple[np.ndarray, ...] | None = None,
    fptt=None,
) -> WindowGradient:
    """Loss and gradient of one window on the device's step-by-step schedule.

    The same gradient as :func:`window_gradient` (to the bit under any
    deterministic rounding), computed as a device does: ``L + 1`` passes over
    the window, each layer holding one state, with memory independent of the
    window's length (see :mod:`fpttsim.learn._stream`). Recomputing an upper
    layer's error pass in a later pass repeats its operations, and their
    numerical events are counted again, as the device meets them again.

    Parameters
    ----------
    net, theta, window, passes, arithmetic
        As for :func:`window_gradient`.
    algorithm
        ``"fptt"`` or ``"spatial"``: the algorithms whose memory does not
        grow with ``T``.
    buffers
        The device's own arrays ``(signals, state, delta, jac_prod, boundary,
        keep_state, keep_errors)`` of shapes ``(L + 1, max(D, H))``,
        ``(2, L, S)``, ``(3, L, S)``, ``(L, K, J)``, ``(L, K - 1, S)``,
        ``(L, S)`` and ``(L + 1, S)``, for ``K`` segments (from its memory
        arena); None allocates them.
    fptt
        Segments, refinement and inverse of FPTT
        (:class:`fpttsim.config.scenario.FpttConfig`); None for plain FPTT.

    Raises
    ------
    NumericalError
        When FPTT meets a singular recurrent Jacobian.
    """
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    run = _Schedule(net, theta, window, algorithm, passes, arithmetic, buffers, fptt)
    grad = np.zeros(net.size)
    loss, correct, counted = run.part(grad, [1, 0, 0, -1, 0])
    return WindowGradient(loss, grad, correct, counted, run.diagnostics())


def stream_online(
    net: Network,
    theta: np.ndarray,
    window,
    optimizer,
    every: int = 1,
    arithmetic: Arithmetic | None = None,
    buffers: tuple[np.ndarray, ...] | None = None,
    fptt=None,
) -> tuple[WindowGradient, int]:
    """FPTT with the parameters updated during the error pass (truly online).

    The warm-up pass runs as in :func:`stream_gradient`; the error pass then
    adds every gradient (readout, block and cell) with the parameters of the
    moment, and every ``every`` steps ``optimizer`` applies what it added.
    Later steps see the new parameters, so this is no longer the exact
    gradient of any fixed parameters (fptt.md section 4).

    Parameters
    ----------
    net
        A one-layer network.
    theta
        Contiguous float64; updated in place at every update (the updates
        made before a singular Jacobian stop the pass stay made).
    window, arithmetic, buffers, fptt
        As for :func:`stream_gradient`.
    optimizer
        An :class:`fpttsim.learn.Optimizer`; its ``step(theta, grad)`` is
        called at every update.
    every
        Steps of the error pass per update.

    Returns
    -------
    (WindowGradient, int)
        The window's loss (from the warm-up pass, before any update), the sum
        of the applied gradients and the diagnostics; and the number of
        updates made.

    Raises
    ------
    ConfigError
        For a network of more than one layer, or with refinement.
    NumericalError
        When FPTT meets a singular recurrent Jacobian.
    """
    if net.layers != 1:
        raise ConfigError(
            f"online updates run on one recurrent layer, got {net.layers} "
            "layers: a lower layer's error pass comes after the upper layers' "
            "updates would have changed its errors; use learning.online: false",
            key="learning.online",
        )
    if fptt is not None and fptt.refine:
        raise ConfigError(
            "online updates cannot run FPTT's refinement: a refined segment "
            "runs again from its start, after its updates were made; use "
            "learning.fptt.refine: 0",
            key="learning.fptt.refine",
        )
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if not (theta.flags.c_contiguous and theta.dtype == np.float64):
        raise ValueError("theta must be a contiguous float64 array: it is updated")
    run = _Schedule(net, theta, window, "fptt", None, arithmetic, buffers, fptt)
    scratch = np.zeros(net.size)
    loss, correct, counted = run.part(scratch, [1, 1, 0, -1, 1])
    applied = np.zeros(net.size)
    n_steps = window.inputs.shape[0]
    updates = 0
    for first in range(0, n_steps, every):
        grad = np.zeros(net.size)
        run.part(grad, [2, 2, first, min(first + every, n_steps), 1])
        applied += grad
        optimizer.step(theta, grad)
        updates += 1
    return WindowGradient(loss, applied, correct, counted, run.diagnostics()), updates


class _Schedule:
    """Parts of the device's schedule over one window, sharing its buffers."""

    def __init__(
        self, net, theta, window, algorithm, passes, arithmetic, buffers, fptt
    ):
        self.net = net
        self.modes = layer_modes(net, algorithm, passes)
        if algorithm not in ("fptt", "spatial"):
            raise ConfigError(
                f"the step-by-step schedule runs fptt and spatial, got "
                f"{algorithm!r}; bptt and rtrl run layer by layer (window_gradient)",
                key="learning.algorithm",
            )
        self.arith = arithmetic or reference_arithmetic()
        self.arith.begin_window()
        # read only, except by the online variant, which updates it in place
        self.theta = theta
        self.inputs = np.ascontiguousarray(self.arith.round(codes.INPUT, window.inputs))
        self.classify = net.loss == "ce"
        self.labels, self.targets = step_targets(net, window)
        self.mask = np.ascontiguousarray(window.mask, dtype=np.float64)
        self.code = np.array(
            [_stream.FPTT if m == "fptt" else _stream.SPATIAL for m in self.modes]
        )
        self.fptt = fptt = fptt or FpttConfig()
        self.bounds = segment_bounds(self.inputs.shape[0], fptt.segments)
        self.options = np.zeros(3, dtype=np.int64)
        self.options[_stream.REFINE] = fptt.refine
        self.options[_stream.INVERSE] = fptt.inverse_code
        self.options[_stream.TERMS] = fptt.terms
        spec = self.spec = net.cells[0]
        if buffers is None:
            buffers = stream_buffers(net, fptt.segments)
        self.buffers = buffers
        self.residual = np.zeros((net.layers, spec.state_size))
        self.g_end = np.zeros((net.layers, spec.state_size))
        self.peaks = np.zeros((net.layers, 2))
        self.stats = np.zeros((net.layers, 2))
        self.at = part_offsets(net)

    def part(self, grad, span) -> tuple[float, int, int]:
        """Run ``span`` (see :func:`_stream.window`), adding to ``grad``."""
        net, spec = self.net, self.spec
        signals, state, delta, jac_prod, boundary, keep_state, keep_errors = (
            self.buffers
        )
        status, layer, warming, loss, correct, counted = _stream.window(
            self.arith.ar,
            spec.code,
            spec.state_size,
            self.code,
            self.theta,
            *self.at,
            net.width,
            net.mlp_hidden,
            self.inputs,
            self.labels,
            self.targets,
            self.mask,
            self.classify,
            grad,
            signals,
            state,
            delta,
            jac_prod,
            self.residual,
            self.g_end,
            self.peaks,
            np.array(span, dtype=np.int64),
            self.bounds,
            self.options,
            float(self.fptt.until),
            boundary,
            keep_state,
            keep_errors,
            self.stats,
        )
        if status:
            phase = "warm-up" if warming else "error"
            _raise_if_singular(status, layer, net.cells[layer], phase)
        return float(loss), int(correct), int(counted)

    def diagnostics(self) -> list[LayerDiagnostics]:
        """Each layer's diagnostics after the schedule's last pass."""
        jac_prod = self.buffers[3]
        out = []
        for k, mode in enumerate(self.modes):
            if mode != "fptt":
                out.append(LayerDiagnostics(mode))
                continue
            found = _fptt_diagnostics(
                self.residual[k], self.g_end[k], self.peaks[k], jac_prod[k, 0]
            )
            if not self.fptt.plain:
                worst = float(self.stats[k, _stream.WORST_RESIDUAL])
                g_norm = float(np.linalg.norm(self.g_end[k]))
                found.residual_relative = worst
                found.residual = worst * g_norm
                found.error_passes = float(
                    self.stats[k, _stream.ERROR_STEPS] / self.inputs.shape[0]
                )
            out.append(found)
        return out


def stream_buffers(net, segments: int = 1) -> tuple[np.ndarray, ...]:
    """The device schedule's arrays, outside any arena (see stream_gradient)."""
    spec = net.cells[0]
    n_layers, s = net.layers, spec.state_size
    wide = max(net.input_size, net.width)
    return (
        np.zeros((n_layers + 1, wide)),
        np.zeros((2, n_layers, s)),
        np.zeros((3, n_layers, s)),
        np.zeros((n_layers, segments, spec.jacobian_size)),
        np.zeros((n_layers, segments - 1, s)),
        np.zeros((n_layers, s)),
        np.zeros((n_layers + 1, s)),
    )
