r"""FPTT's precision budget: how long a window its gradient survives, in bits.

FPTT runs the error equation forward through ``J^{-T}``. Over a window of
``T`` steps the most contracting direction of the dynamics loses ``rho`` bits
per step, so FPTT's own quantities span ``D = rho T`` bits
(../docs/fptt.md §7): the Jacobian product ``P`` shrinks to about
``2^-D``, the warm-up error grows to about ``|g| 2^D``, and the error pass
starts from a ``delta_0`` whose fastest-forgetting part is as small as
``|g| 2^-D``. A format keeps the gradient usable while it holds those
values with ``b`` bits to spare, ``b`` being the accuracy the cosine
threshold ``c`` asks for: an error of relative size ``r`` orthogonal to the
gradient gives the cosine ``1 / sqrt(1 + r^2)``, so ``r = sqrt(1/c^2 - 1)``
and ``b = log2(1 / r)`` (2.8 bits for ``c = 0.99``).

The rate ``rho`` comes from the recurrent spectrum, measured along the
scenario's own data:

- diagonal cells (LRU, real diagonal): ``rho = log2(1 / min |lambda|)``, the
  time average of ``log |lambda_t|`` per unit (constant for the LRU);
- dense cells (tanh RNN, GRU): ``rho = -mu_min / ln 2`` with ``mu_min`` the
  most negative Lyapunov exponent of the state's dynamics, from the QR
  iteration ``Q_t R_t = J_t Q_{t-1}``, ``mu_k = mean_t log |R_t[k, k]|``.

With ``F_P`` the format of ``P`` (``jacobian_product``), ``F_d`` that of the
errors (``error``), ``G = log2 max |g|`` the scale of the layer's
instantaneous errors, and ``smallest`` / ``largest`` a format's smallest
positive and largest finite values, four limits bound ``D``:

    P resolved            D <= -log2 smallest(F_P) - b
    warm-up in range      D <= log2 largest(F_d) - G
    delta_0 resolved      D <= G - log2 smallest(F_d) - b
    cancellation          rho S(T) <= p(F_d) - b      (floats)

The last is the floating-point one. A float keeps its relative precision as
values shrink, so ``delta`` only loses bits where ``delta_t - g_t`` cancels,
at the steps that carry a loss: over the span ``S(T)`` between a layer's first
and last such step, ``2^(rho S)``. ``p`` is the precision in bits (fraction
bits plus one for round-to-nearest, the fraction bits for directed and
stochastic rounding). A dense loss has ``S = T`` and gives the §7 budget; a
loss at the window's end only (the copy task) leaves floats limited by their
exponent range instead. Fixed point has no relative precision: the first and
third limits are its fraction bits, the second its integer bits.

The predicted largest length is the largest ``T`` meeting every limit in
every layer. It is a model: the spectrum is that of the scenario's initial
parameters, and only the most contracting direction counts. :func:`measure`
checks it by simulation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fpttsim.cells import dispatch
from fpttsim.cells.jacobian import COMPLEX_DIAGONAL, DENSE
from fpttsim.data import Window, make_task
from fpttsim.errors import ConfigError, NumericalError
from fpttsim.experiment import prepare
from fpttsim.learn import _kernels
from fpttsim.learn.engine import window_gradient
from fpttsim.numerics.arithmetic import Arithmetic
from fpttsim.numerics.codes import INPUT, WEIGHTS
from fpttsim.numerics.formats import parse_format

DEFAULT_THRESHOLD = 0.99

LIMITS = (
    "P resolved",
    "warm-up in range",
    "delta_0 resolved",
    "cancellation",
    "mixing",
)
"""The ways FPTT's values can leave its formats (see the module notes)."""


def wanted_bits(threshold: float) -> float:
    """Bits of accuracy a gradient cosine of ``threshold`` asks for.

    Parameters
    ----------
    threshold
        The cosine, in ``(0, 1)``.

    Returns
    -------
    float
        ``log2(1 / r)`` with ``r = sqrt(1 / threshold^2 - 1)``.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"a cosine threshold must lie in (0, 1), got {threshold}")
    return -math.log2(math.sqrt(1.0 / threshold**2 - 1.0))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two gradients; NaN when either is zero or not finite."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if not (np.isfinite(na) and np.isfinite(nb)) or na == 0.0 or nb == 0.0:
        return float("nan")
    return float(np.dot(a, b) / (na * nb))


# ---------------------------------------------------------------- windows
def windows_at(scenario, length: int, count: int, seed: int | None = None):
    """``count`` windows of ``length`` steps from the scenario's task.

    A task whose length is a parameter (copy, adding, sine) is built at
    ``length``; one whose sequences have a fixed length (the datasets), or
    that cannot be as short (the copy task needs room for its symbols), gives
    consecutive windows of its stream joined end to end and cut to the last
    ``length`` steps, as a device reading the stream in windows of that
    length would see them.

    Parameters
    ----------
    scenario
        The :class:`fpttsim.config.Scenario`.
    length
        Steps per window.
    count
        Windows.
    seed
        Seed of the task's stream (default: the scenario's).

    Returns
    -------
    list of Window
    """
    seed = scenario.seed if seed is None else seed
    task = None
    if getattr(scenario.task, "length", None) is not None:
        try:
            task = make_task(scenario.task.model_copy(update={"length": length}))
        except ConfigError:
            task = None
    if task is not None and getattr(task, "length", None) == length:
        stream = task.stream(seed)
        return [next(stream) for _ in range(count)]
    native = make_task(scenario.task)
    stream = native.stream(seed)
    per = math.ceil(length / native.length)
    out = []
    for _ in range(count):
        parts = [next(stream) for _ in range(per)]
        out.append(
            Window(
                np.concatenate([w.inputs for w in parts])[-length:],
                np.concatenate([w.targets for w in parts])[-length:],
                np.concatenate([w.mask for w in parts])[-length:],
            )
        )
    return out


def _device_window(arith: Arithmetic, window: Window) -> Window:
    return Window(arith.round(INPUT, window.inputs), window.targets, window.mask)


# ---------------------------------------------------------------- spectrum
@dataclass(frozen=True)
class LayerSpectrum:
    """The recurrent spectrum of one layer along a window.

    Attributes
    ----------
    cell
        The cell's name.
    kind
        The Jacobian's kind (:mod:`fpttsim.cells.jacobian`).
    exponents
        Per-step growth rates in nats: ``log |lambda|`` per unit, in unit
        order, for diagonal cells; the Lyapunov exponents, largest first, for
        dense ones.
    """

    cell: str
    kind: int
    exponents: np.ndarray

    @property
    def rates(self) -> np.ndarray:
        """Bits lost per step along each exponent's direction (never < 0)."""
        return np.maximum(0.0, -self.exponents / math.log(2.0))

    @property
    def rate_bits(self) -> float:
        """Bits lost per step by the most contracting direction, ``rho``."""
        return float(self.rates.max())

    @property
    def smallest_modulus(self) -> float:
        """``exp(mu_min)``: the smallest eigenvalue modulus, or its analogue."""
        return math.exp(float(self.exponents.min()))


def spectrum(net, theta: np.ndarray, traces) -> list[LayerSpectrum]:
    """Each layer's recurrent spectrum along a window's trajectory.

    Parameters
    ----------
    net
        The network.
    theta
        Its parameters.
    traces
        The window's :class:`fpttsim.learn.engine.LayerTrace` per layer.

    Returns
    -------
    list of LayerSpectrum
    """
    out = []
    for layer, (spec, tr) in enumerate(zip(net.cells, traces, strict=True)):
        theta_cell = np.ascontiguousarray(theta[net.cell_slices[layer]])
        kind = dispatch.jacobian_kind(spec.code)
        s = spec.state_size
        jac = np.empty(spec.jacobian_size)
        unit, row = np.empty(s), np.empty(s)
        u, h = tr.inputs, tr.states
        steps = u.shape[0]
        q = np.eye(s)
        total = np.zeros(s if kind == DENSE else spec.hidden)
        for t in range(steps):
            dispatch.jacobian(
                None, spec.code, theta_cell, h[t], u[t], h[t + 1], jac, unit, row
            )
            if kind == DENSE:  # QR iteration: Q_t R_t = J_t Q_{t-1}
                q, r = np.linalg.qr(jac.reshape(s, s) @ q)
                moduli = np.abs(np.diag(r))
            elif kind == COMPLEX_DIAGONAL:
                moduli = np.hypot(jac[: s // 2], jac[s // 2 :])
            else:
                moduli = np.abs(jac)
            total += np.log(np.maximum(moduli, 1e-300))
        exponents = total / steps
        if kind == DENSE:
            exponents = np.sort(exponents)[::-1]
        out.append(LayerSpectrum(spec.name, kind, exponents))
    return out


# ---------------------------------------------------------------- the model
@dataclass(frozen=True)
class FormatBits:
    """What a format offers FPTT, in bits (log2 of its extremes)."""

    name: str
    kind: str
    precision: float
    log2_smallest: float
    log2_largest: float

    @classmethod
    def of(cls, profile, quantity: str) -> FormatBits:
        """The bits of the format ``quantity`` is held in under ``profile``."""
        resolved = profile.format_of(quantity)
        fmt = parse_format(resolved.format)
        if fmt.kind == "exact":
            precision = 53.0
        elif fmt.kind == "float":
            nearest = resolved.rounding == "nearest-even"
            precision = fmt.fraction_bits + (1.0 if nearest else 0.0)
        else:
            precision = 0.0  # absolute resolution only
        return cls(
            fmt.name,
            fmt.kind,
            precision,
            math.log2(fmt.smallest),
            math.log2(fmt.max_finite),
        )


@dataclass(frozen=True)
class LayerErrors:
    """Where and how large one layer's instantaneous errors ``g`` are.

    Steps whose ``g`` is resolved (above ``max |g|`` times the error
    format's precision) carry a loss. Measured at a reference length and at
    twice it, the span (first to last such step) and the tail (first such
    step to the window's end) are taken as linear in the length between and
    beyond.

    Attributes
    ----------
    log2_scale
        ``G = log2 max_t |g_t|``.
    length
        The reference length.
    span, tail
        ``(at length, at twice length)``.
    mixing
        For a dense cell, ``(at length, at twice length)``: the bits by which
        the error pass amplifies a rounding error relative to the largest
        error, over ``rho`` (so in steps). A dense ``J^{-T}`` mixes every
        direction into the most contracting one, which grows by ``rho`` bits
        a step, while the errors themselves grow only as fast as BPTT's do
        backwards: ``max_s [rho (T - s) + log2 |delta_s|] - log2 max |delta|``.
    """

    log2_scale: float
    length: int
    span: tuple[int, int]
    tail: tuple[int, int]
    mixing: tuple[float, float] = (0.0, 0.0)

    def steps(self, what: str, length: float) -> float:
        """The span, tail or mixing at a length; ``"length"``: the length."""
        if what == "length":
            return length
        at, doubled = getattr(self, what)
        slope = (doubled - at) / self.length
        return max(0.0, min(length, at + slope * (length - self.length)))

    def longest(self, what: str, steps: float) -> float:
        """Largest length whose span, tail or mixing stays within ``steps``."""
        if steps < 0:
            return 0.0
        at, doubled = getattr(self, what)
        slope = (doubled - at) / self.length
        if slope <= 0:
            return math.inf if at <= steps else float(math.floor(steps))
        return float(math.floor(max(self.length + (steps - at) / slope, steps)))


def _extent(g: np.ndarray, precision: float) -> tuple[int, int]:
    """Span and tail of the steps whose ``g`` is resolved."""
    size = np.max(np.abs(g[1:]), axis=1)
    top = float(size.max()) if size.size else 0.0
    if top == 0.0:
        return 0, 0
    carried = np.flatnonzero(size > top * 2.0 ** -max(precision, 1.0))
    return int(carried[-1] - carried[0] + 1), int(size.size - carried[0])


@dataclass(frozen=True)
class Mode:
    """A direction of a layer's dynamics and what of the gradient rides on it.

    Attributes
    ----------
    rate_bits
        Bits it loses per step, ``log2(1 / |lambda|)``.
    share
        Its part of the squared gradient norm.
    """

    rate_bits: float
    share: float


def _modes(net, theta, layer, spectrum_, grad) -> list[Mode]:
    """The layer's modes: one per unit for diagonal cells, one for dense cells.

    A diagonal cell's errors do not mix across units: unit ``i``'s error
    reaches only its own parameters, so its part of the gradient is the part
    of BPTT's gradient (``grad``) on those. A dense cell's most contracting
    direction reaches every unit, so its whole cell gradient rides on it.
    """
    cell_grad = grad[net.cell_slices[layer]]
    norm2 = max(float(grad @ grad), 1e-300)
    rates = spectrum_.rates
    if spectrum_.kind == DENSE:
        return [Mode(float(rates.max()), float(cell_grad @ cell_grad) / norm2)]
    owners = _unit_parameters(net, theta, layer, spectrum_.kind)
    return [
        Mode(float(rates[i]), float(cell_grad[own] @ cell_grad[own]) / norm2)
        for i, own in enumerate(owners)
    ]


def _unit_parameters(net, theta, layer, kind) -> list[np.ndarray]:
    """Which of a diagonal cell's parameters each unit's error reaches.

    Found by BPTT over three steps of random inputs and states with the
    error kept on one unit: the parameters it moves are that unit's.
    """
    spec = net.cells[layer]
    theta_cell = np.ascontiguousarray(theta[net.cell_slices[layer]])
    rng = np.random.default_rng(0)
    u = rng.normal(size=(3, spec.inputs))
    h = rng.normal(size=(4, spec.state_size))
    n = spec.hidden
    owners = []
    for i in range(n):
        g = np.zeros_like(h)
        keep = [i, n + i] if kind == COMPLEX_DIAGONAL else [i]
        g[:, keep] = rng.normal(size=(4, len(keep)))
        probe = np.zeros(theta_cell.size)
        _kernels.bptt(
            None,
            spec.code,
            theta_cell,
            u,
            h,
            g,
            probe,
            np.zeros_like(u),
            np.empty_like(h),
        )
        owners.append(np.flatnonzero(probe))
    return owners


@dataclass(frozen=True)
class Limit:
    """One way FPTT's values leave what a format holds.

    Attributes
    ----------
    name
        One of :data:`LIMITS`.
    bits
        The bits the format offers, ``A``: a mode losing ``rho`` bits a step
        has the relative error ``2^(rho X - A)``, ``X`` the window's length
        (or the loss's span, for cancellation).
    quiet
        Whether going past it loses the mode's part of the gradient (an
        underflow: the error stops at the part's own size) rather than
        blowing it up (an overflow, a cancellation).
    over
        What ``X`` is: ``"length"``, the loss's ``"span"`` (first to last
        step with a loss) or its ``"tail"`` (first step with a loss to the
        window's end: the warm-up's error is zero before it).
    """

    name: str
    bits: float
    quiet: bool
    over: str = "length"


def limits_of(
    error: FormatBits, product: FormatBits, scale: float, dense: bool = False
) -> list[Limit]:
    """The limits a layer's errors of scale ``2^scale`` meet in two formats.

    A dense cell also meets ``mixing``: its solves spread each rounding of
    the errors over every direction, the most contracting included.
    """
    out = [
        Limit("P resolved", -product.log2_smallest, quiet=True),
        Limit("warm-up in range", error.log2_largest - scale, False, "tail"),
        # a dense solve spreads what rounding loses over every direction
        Limit("delta_0 resolved", scale - error.log2_smallest, quiet=not dense),
    ]
    if error.kind != "fixed":
        out.append(Limit("cancellation", error.precision, False, "span"))
        if dense:
            out.append(Limit("mixing", error.precision, False, "mixing"))
    return out


def _mixing_steps(deltas: np.ndarray, rho: float) -> float:
    """The mixing amplification of BPTT's errors ``deltas``, in steps of ``rho``."""
    if rho <= 0.0:
        return 0.0
    sizes = np.log2(np.maximum(np.linalg.norm(deltas, axis=1), 1e-300))
    steps = deltas.shape[0] - 1
    amplified = rho * (steps - np.arange(steps + 1)) + sizes
    return float((amplified.max() - sizes.max()) / rho)


@dataclass
class LayerBudget:
    """One layer's precision budget.

    Attributes
    ----------
    spectrum
        The layer's spectrum.
    errors
        Scale and span of its instantaneous errors.
    limits
        What its formats offer.
    modes
        Its directions with their parts of the gradient.
    """

    spectrum: LayerSpectrum
    errors: LayerErrors
    limits: list[Limit]
    modes: list[Mode]

    def squared_error(self, length: float, segments: int = 1) -> dict[str, float]:
        """Each limit's part of the gradient's squared relative error.

        With segmented FPTT an error grows over one segment at most.
        """
        out = {}
        longest = math.ceil(length / max(segments, 1))
        for limit in self.limits:
            x = min(self.errors.steps(limit.over, length), longest)
            total = 0.0
            for mode in self.modes:
                bits = mode.rate_bits * x - limit.bits
                e2 = 0.0 if bits < -200 else 2.0 ** min(2.0 * bits, 1000.0)
                total += mode.share * (min(e2, 1.0) if limit.quiet else e2)
            out[limit.name] = total
        return out

    def worst_length(self, limit: Limit, wanted: float) -> float:
        """Length at which the worst mode keeps only ``wanted`` bits."""
        rho = self.spectrum.rate_bits
        if rho <= 0.0:
            return math.inf
        bits = (limit.bits - wanted) / rho
        if limit.over == "length":
            return max(0.0, math.floor(bits))
        return self.errors.longest(limit.over, bits)

    def to_dict(self, wanted: float, length: float, segments: int = 1) -> dict:
        """JSON-ready data."""
        errors = (
            self.squared_error(length + 1, segments) if math.isfinite(length) else {}
        )
        return {
            "cell": self.spectrum.cell,
            "rate_bits_per_step": self.spectrum.rate_bits,
            "smallest_modulus": self.spectrum.smallest_modulus,
            "log2_error_scale": self.errors.log2_scale,
            "loss_span": self.errors.span[0],
            "loss_tail": self.errors.tail[0],
            "worst_mode_limits": {
                limit.name: _length_or_none(self.worst_length(limit, wanted))
                for limit in self.limits
            },
            "binding": max(errors, key=errors.get) if errors else None,
        }


def _length_or_none(value: float) -> int | None:
    return None if math.isinf(value) else int(value)


@dataclass
class Prediction:
    """The precision budget's prediction for a scenario and a profile.

    The gradient's relative error is modelled as
    ``r^2 = sum over modes and limits of share * e^2`` with
    ``e = 2^(rho X - A)`` (capped at 1 for quiet limits), and its cosine with
    the exact gradient as ``1 / sqrt(1 + r^2)``.

    Attributes
    ----------
    threshold, wanted_bits
        The cosine asked for and the bits ``b`` it means.
    layers
        Each layer's budget.
    length
        The scenario's window length.
    required
        For the scenario's own length: the bits the error and Jacobian
        product formats need (fraction bits, and exponent bits for floats or
        integer bits for fixed point) for the worst mode to keep ``b`` bits.
    """

    threshold: float
    wanted_bits: float
    layers: list[LayerBudget]
    length: int
    required: dict
    segments: int = 1

    def cosine_at(self, length: float) -> float:
        """The predicted gradient cosine at a window length."""
        r2 = sum(
            sum(layer.squared_error(length, self.segments).values())
            for layer in self.layers
        )
        return 1.0 / math.sqrt(1.0 + r2) if math.isfinite(r2) else 0.0

    @property
    def max_length(self) -> float:
        """The largest length whose predicted cosine keeps the threshold."""
        if self.cosine_at(1) < self.threshold:
            return 0.0
        top = 1
        while self.cosine_at(top * 2) >= self.threshold:
            top *= 2
            if top > 2**40:
                return math.inf
        low, high = top, top * 2  # low keeps the threshold, high does not
        while high - low > 1:
            mid = (low + high) // 2
            if self.cosine_at(mid) >= self.threshold:
                low = mid
            else:
                high = mid
        return float(low)

    def to_dict(self) -> dict:
        """JSON-ready data."""
        best = self.max_length
        return {
            "threshold": self.threshold,
            "wanted_bits": self.wanted_bits,
            "predicted_max_length": _length_or_none(best),
            "segments": self.segments,
            "layers": [
                layer.to_dict(self.wanted_bits, best, self.segments)
                for layer in self.layers
            ],
            "length": self.length,
            "predicted_cosine_at_length": self.cosine_at(self.length),
            "required": self.required,
        }


def _required(layers: list[LayerBudget], error_fmt: FormatBits, length, b) -> dict:
    """Bits the error and Jacobian product formats need at ``length``."""
    span_bits = range_d = scale_hi = scale_lo = 0.0
    for layer in layers:
        rho = layer.spectrum.rate_bits
        d = rho * length
        range_d = max(range_d, d)
        for over in ("span", "mixing"):  # what a float's precision absorbs
            span_bits = max(span_bits, rho * layer.errors.steps(over, length))
        tail = rho * layer.errors.steps("tail", length)
        scale_hi = max(scale_hi, tail + layer.errors.log2_scale)
        scale_lo = max(scale_lo, d + b - layer.errors.log2_scale)
    if error_fmt.kind == "fixed":
        # fraction bits to resolve P and delta_0, integer bits for the warm-up
        return {
            "error": {
                "fraction_bits": math.ceil(scale_lo),
                "integer_bits": max(0, math.ceil(scale_hi)),
            },
            "jacobian_product": {"fraction_bits": math.ceil(range_d + b)},
        }
    # floats: precision for the cancellation, exponent range for the rest
    lowest = max(range_d + b, scale_lo) + 1
    return {
        "error": {
            "fraction_bits": max(0, math.ceil(span_bits + b) - 1),
            "exponent_bits": _exponent_bits(max(scale_hi, 1.0), lowest),
        },
        "jacobian_product": {
            "fraction_bits": max(0, math.ceil(b) - 1),
            "exponent_bits": _exponent_bits(1.0, range_d + b + 1),
        },
    }


def _exponent_bits(emax: float, lowest: float) -> int:
    """Exponent field bits for values from ``2^-lowest`` up to ``2^emax``."""
    bias = max(emax, lowest - 1.0)  # IEEE layout: emin = 1 - bias
    return max(2, math.ceil(math.log2(bias + 1.0)) + 1)


def predict(
    scenario,
    profile,
    theta=None,
    threshold: float = DEFAULT_THRESHOLD,
    max_model_length: int = 20000,
    experiment=None,
) -> Prediction:
    """Predict the largest window length at which FPTT's gradient survives.

    Parameters
    ----------
    scenario
        The scenario: its network, its data (the spectrum, the errors' scale
        and span and each mode's part of the gradient are measured in float64
        along a window of it) and its length.
    profile
        The hardware profile: its ``error`` and ``jacobian_product`` formats.
    theta
        Parameters; default the scenario's initial ones.
    threshold
        The gradient cosine to keep.
    max_model_length
        The longest window the modes' parts are measured on.
    experiment
        The scenario's :func:`fpttsim.experiment.prepare`, when the caller
        has it.

    Returns
    -------
    Prediction
    """
    experiment = experiment or prepare(scenario)
    net = experiment.net
    theta = experiment.theta if theta is None else np.asarray(theta, dtype=float)
    error_fmt = FormatBits.of(profile, "error")
    product_fmt = FormatBits.of(profile, "jacobian_product")
    b = wanted_bits(threshold)
    length = scenario.task.length or next(experiment.task.stream(0)).inputs.shape[0]
    at_length = _layer_budgets(scenario, net, theta, length, error_fmt, product_fmt)
    segments = scenario.learning.fptt.segments
    required = _required(at_length, error_fmt, math.ceil(length / segments), b)
    prediction = Prediction(threshold, b, at_length, length, required, segments)
    # Each mode's part of the gradient, and where the losses sit, depend on
    # the length: measure them again at the length first predicted.
    first = prediction.max_length
    if math.isfinite(first) and first >= 1 and first != length:
        near = int(min(first, max_model_length))
        prediction.layers = _layer_budgets(
            scenario, net, theta, near, error_fmt, product_fmt
        )
    return prediction


def _layer_budgets(scenario, net, theta, length, error_fmt, product_fmt):
    """Each layer's budget from float64 BPTT on windows of ``length`` and 2x."""
    results = [
        window_gradient(
            net, theta, windows_at(scenario, steps, 1)[0], "bptt", trace=True
        )
        for steps in (length, 2 * length)
    ]
    spectra = spectrum(net, theta, results[0].traces)
    precision = error_fmt.precision or 53.0
    layers = []
    for layer in range(net.layers):
        short, long = results[0].traces[layer], results[1].traces[layer]
        extents = _extent(short.errors, precision), _extent(long.errors, precision)
        rho = spectra[layer].rate_bits
        dense = spectra[layer].kind == DENSE
        errors = LayerErrors(
            float(np.log2(max(np.max(np.abs(short.errors)), 1e-300))),
            length,
            (extents[0][0], extents[1][0]),
            (extents[0][1], extents[1][1]),
            (_mixing_steps(short.deltas, rho), _mixing_steps(long.deltas, rho))
            if dense
            else (0.0, 0.0),
        )
        modes = _modes(net, theta, layer, spectra[layer], results[0].grad)
        limits = limits_of(error_fmt, product_fmt, errors.log2_scale, dense)
        layers.append(LayerBudget(spectra[layer], errors, limits, modes))
    return layers


# ---------------------------------------------------------------- the check
def formats_only(profile, quantities=("error", "jacobian_product")):
    """A profile with ``profile``'s formats for ``quantities``, exact elsewhere.

    FPTT's own numerical loss is what the formats of its errors and of the
    Jacobian product do to it; simulating with every other quantity exact
    measures that alone, apart from what the formats cost any algorithm.
    """
    from fpttsim.config import Profile

    formats = {q: profile.format_of(q)._asdict() for q in quantities}
    return Profile(
        name=f"{profile.name} ({' and '.join(quantities)} only)",
        arithmetic={"default": "fp64", "formats": formats},
        memory=profile.memory,
        compute=profile.compute,
        energy=profile.energy,
    )


@dataclass(frozen=True)
class Measurement:
    """Gradient cosines at one length, medians over windows.

    Every cosine is against exact (float64) BPTT on the same stored weights
    and inputs.

    Attributes
    ----------
    length
        Steps per window.
    own_cosine
        FPTT with the profile's error and Jacobian-product formats and every
        other quantity exact: FPTT's own loss, what the model predicts.
    cosine
        FPTT in the profile's whole arithmetic.
    bptt_cosine
        BPTT in the profile's whole arithmetic: what the formats cost any
        algorithm.
    nonfinite
        Windows whose FPTT gradient (either) was not finite, counted as
        cosine 0.
    """

    length: int
    own_cosine: float
    cosine: float
    bptt_cosine: float
    nonfinite: int = 0

    def to_dict(self) -> dict:
        """JSON-ready data."""
        return {
            "length": self.length,
            "own_cosine": self.own_cosine,
            "cosine": self.cosine,
            "bptt_cosine": self.bptt_cosine,
            "nonfinite": self.nonfinite,
        }


def zero_if_nan(value: float) -> float:
    """A gradient that is not finite carries no direction: its cosine is 0."""
    return value if math.isfinite(value) else 0.0


def median_cosine(values: list[float]) -> float:
    """The median of cosines over windows, a broken one (NaN) counting as 0."""
    return float(np.median([zero_if_nan(v) for v in values]))


def on_device(net, theta, profile, seed: int):
    """A profile's arithmetic, its error and P formats alone, and ``theta``.

    Returns ``(arith, own, theta)``: ``theta`` is stored in the profile's
    weight format, ``own`` rounds only what :func:`formats_only` keeps.
    """
    arith = Arithmetic.from_profile(profile, seed)
    own = Arithmetic.from_profile(formats_only(profile), seed)
    return arith, own, arith.round_blocks(WEIGHTS, theta, net.stored_weights())


@dataclass(frozen=True)
class Comparison:
    """Gradient cosines on one window, each against exact BPTT (NaN: broken).

    Attributes
    ----------
    own, whole
        FPTT with the profile's error and P formats alone, and in its whole
        arithmetic.
    bptt
        BPTT in the profile's whole arithmetic (or in ``bptt_arith``'s, when
        :func:`compare` was given one).
    residual
        The whole-profile FPTT's largest relative end residual; inf when a
        Jacobian was singular.
    finite
        Whether both FPTT gradients are finite.
    against_bptt
        The whole-arithmetic FPTT's cosine with that BPTT rather than with
        the exact one: what FPTT loses beyond what the arithmetic costs
        BPTT.
    """

    own: float
    whole: float
    bptt: float
    residual: float
    finite: bool
    against_bptt: float


def fptt_gradient(net, theta, window, arith, fptt=None):
    """FPTT on one window in ``arith``, or None when a Jacobian was singular."""
    try:
        return window_gradient(net, theta, window, "fptt", arithmetic=arith, fptt=fptt)
    except NumericalError:
        return None


def bptt_references(net, theta, window, arith) -> tuple[np.ndarray, np.ndarray]:
    """Exact BPTT's gradient on a device window, and BPTT's in ``arith``."""
    exact = window_gradient(net, theta, window, "bptt").grad
    return exact, window_gradient(net, theta, window, "bptt", arithmetic=arith).grad


def compare(
    net, theta, raw, arith, own_arith, fptt=None, bptt_arith=None, references=None
) -> Comparison:
    """FPTT and BPTT on one window against exact BPTT on the same numbers.

    ``theta`` is already in the profile's weight format; the window's inputs
    are stored in its input format here, so that exact BPTT, as in
    ``gradcheck``, sees what the device sees. ``bptt_arith`` runs BPTT in
    another arithmetic than FPTT's (default ``arith``), one with the same
    weight and input formats: the device's own, when FPTT's errors and
    Jacobian product are widened (:mod:`fpttsim.mixed`). ``references`` are
    :func:`bptt_references` on this window, when the caller compares several
    FPTTs against the same ones.
    """
    window = _device_window(arith, raw)
    if references is None:
        bptt_arith = arith if bptt_arith is None else bptt_arith
        references = bptt_references(net, theta, window, bptt_arith)
    reference, bptt = references
    whole = fptt_gradient(net, theta, window, arith, fptt)
    own = fptt_gradient(net, theta, window, own_arith, fptt)
    broken = np.full(net.size, np.nan)
    whole_grad = broken if whole is None else whole.grad
    own_grad = broken if own is None else own.grad
    residual = math.inf
    if whole is not None:
        residual = max(
            (d.residual_relative for d in whole.layers if d.mode == "fptt"),
            default=0.0,
        )
    return Comparison(
        cosine(own_grad, reference),
        cosine(whole_grad, reference),
        cosine(bptt, reference),
        residual,
        bool(np.all(np.isfinite(whole_grad)) and np.all(np.isfinite(own_grad))),
        cosine(whole_grad, bptt),
    )


def measure(
    scenario, profile, length: int, windows: int = 2, theta=None, experiment=None
) -> Measurement:
    """Simulate FPTT and BPTT at one length and compare their gradients.

    The parameters (default: the scenario's initial ones) are stored in the
    profile's weight format and the inputs in its input format
    (:func:`compare`).
    """
    experiment = experiment or prepare(scenario)
    net = experiment.net
    theta = experiment.theta if theta is None else np.asarray(theta, dtype=float)
    arith, own_arith, theta = on_device(net, theta, profile, scenario.seed)
    found = [
        compare(net, theta, raw, arith, own_arith, scenario.learning.fptt)
        for raw in windows_at(scenario, length, windows)
    ]
    return Measurement(
        length,
        median_cosine([c.own for c in found]),
        median_cosine([c.whole for c in found]),
        median_cosine([c.bptt for c in found]),
        sum(not c.finite for c in found),
    )


@dataclass
class Check:
    """The prediction checked by simulation at lengths around it.

    Attributes
    ----------
    predicted
        The predicted largest length (``inf``: no limit).
    measured
        The measurements, by length.
    measured_max_length
        The largest length simulated at which FPTT's own cosine keeps the
        threshold, below the first that does not; None when every length
        simulated keeps it.
    exact_max_length
        The same for FPTT in the profile's whole arithmetic.
    max_length
        The longest window simulated.
    note
        Why predicted and measured differ by more than a factor of 2, when
        they do; empty otherwise.
    """

    predicted: float
    threshold: float
    measured: list[Measurement]
    measured_max_length: int | None
    exact_max_length: int | None
    max_length: int
    note: str = ""
    model_cosines: list = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Predicted over measured largest length, when both are finite."""
        if self.measured_max_length is None or math.isinf(self.predicted):
            return None
        return max(self.predicted, 0.5) / max(self.measured_max_length, 0.5)

    @property
    def agrees(self) -> bool:
        """Whether prediction and measurement agree within a factor of 2."""
        if self.measured_max_length is None:  # nothing failed up to max_length
            return self.predicted >= self.max_length / 2
        ratio = self.ratio
        return ratio is not None and 0.5 <= ratio <= 2.0

    def to_dict(self) -> dict:
        """JSON-ready data."""
        return {
            "predicted_max_length": _length_or_none(self.predicted),
            "measured_max_length": self.measured_max_length,
            "exact_max_length": self.exact_max_length,
            "longest_simulated": self.max_length,
            "agrees_within_2x": self.agrees,
            "note": self.note,
            "measured": [
                {**m.to_dict(), "model_cosine": c}
                for m, c in zip(
                    self.measured,
                    self.model_cosines or [None] * len(self.measured),
                    strict=True,
                )
            ],
        }


def _plateau(result: Check) -> str:
    """A note when the cosine lingers near the threshold between the limits."""
    if result.measured_max_length is None or math.isinf(result.predicted):
        return ""
    low, high = sorted((result.measured_max_length, result.predicted))
    between = [m for m in result.measured if low <= m.length <= high]
    if len(between) < 2 or any(
        abs(m.own_cosine - result.threshold) > 0.01 for m in between
    ):
        return ""
    return (
        f"the cosine stays within 0.01 of the threshold from T = {low:.0f} to "
        f"{high:.0f} (measured {min(m.own_cosine for m in between):.4f} to "
        f"{max(m.own_cosine for m in between):.4f}): on such a plateau the "
        "length where it crosses is ill-conditioned, and small differences "
        "in cosine move it far"
    )


def _last_kept(results: dict[int, Measurement], key: str, threshold: float):
    """Largest length before the first that falls below the threshold."""
    kept = None
    for length in sorted(results):
        if getattr(results[length], key) < threshold:
            return kept, length
        kept = length
    return kept, None


def check(
    scenario,
    profile,
    predicted: float | Prediction,
    threshold: float = DEFAULT_THRESHOLD,
    max_length: int = 20000,
    windows: int = 2,
    theta=None,
    experiment=None,
) -> Check:
    """Measure the largest length FPTT keeps ``threshold`` at, near ``predicted``.

    Lengths from half the prediction to twice it (a factor of ``sqrt 2``
    apart, none above ``max_length``) are simulated, then shorter ones while
    even the shortest loses the threshold, or longer ones (up to six
    doublings) while even the longest keeps it; the bracket around the first
    failure is then narrowed by bisection in ``log T``. ``predicted`` is the
    predicted length, or the :class:`Prediction`, whose cosines are then
    compared with the measured ones.
    """
    experiment = experiment or prepare(scenario)
    model = predicted if isinstance(predicted, Prediction) else None
    if model is not None:
        predicted = model.max_length
    centre = (
        max_length if math.isinf(predicted) else max(1.0, min(predicted, max_length))
    )
    lengths = {
        min(max_length, max(1, round(centre * 2.0 ** (k / 2)))) for k in range(-2, 3)
    }
    results: dict[int, Measurement] = {}

    def run(length: int) -> None:
        if length not in results:
            results[length] = measure(
                scenario, profile, length, windows, theta, experiment
            )

    for length in sorted(lengths):
        run(length)
    kept, failed = _last_kept(results, "own_cosine", threshold)
    while kept is None and failed is not None and failed > 1:  # fails throughout
        run(max(1, failed // 2))
        kept, failed = _last_kept(results, "own_cosine", threshold)
    for _ in range(6):  # keeps it throughout: look further, within max_length
        if failed is not None or max(results) >= max_length:
            break
        run(min(max_length, 2 * max(results)))
        kept, failed = _last_kept(results, "own_cosine", threshold)
    for _ in range(4):  # narrow the bracket [kept, failed)
        if kept is None or failed is None or failed - kept <= max(1, kept // 8):
            break
        run(round(math.sqrt(kept * failed)))
        kept, failed = _last_kept(results, "own_cosine", threshold)
    measured = kept if failed is not None else None
    if failed is not None and kept is None:
        measured = 0
    exact, exact_failed = _last_kept(results, "cosine", threshold)
    result = Check(
        predicted,
        threshold,
        [results[k] for k in sorted(results)],
        measured,
        (exact or 0) if exact_failed is not None else None,
        max(results),
        model_cosines=[model.cosine_at(k) for k in sorted(results)] if model else [],
    )
    result.note = _note(result, FormatBits.of(profile, "error").kind)
    return result


def _note(result: Check, kind: str) -> str:
    """Why a prediction misses by more than a factor of 2, from the data."""
    if result.agrees:
        return ""
    plateau = _plateau(result)
    if plateau:
        return plateau
    if result.measured_max_length is None:
        return (
            f"FPTT kept the threshold up to the longest window simulated "
            f"({result.max_length} steps), past the predicted "
            f"{_length_or_none(result.predicted)}: the model's worst direction "
            "carries too little of the gradient to pull its cosine down"
        )
    if math.isinf(result.predicted):
        return (
            "the model predicts no limit (no direction contracts), yet FPTT "
            f"fell below the threshold at {result.measured_max_length + 1}"
        )
    low = result.predicted < result.measured_max_length
    ratio = result.ratio or float("nan")
    if low:
        why = (
            "the modes it expects to fail carry less of this gradient than it "
            "measured at the length it first predicted"
        )
    elif kind == "fixed":
        why = (
            "fixed point loses more between steps than its bounds on the "
            "worst direction count: errors that grow inside the window "
            "saturate, and directed rounding adds up instead of averaging out"
        )
    else:
        why = (
            "rounding the errors and P at every step adds noise that it counts "
            "only where the loss cancels; at few bits of precision that noise "
            "alone takes the cosine near the threshold"
        )
    return f"the model is off by a factor {ratio:.2g}: {why}"
