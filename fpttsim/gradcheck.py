"""Gradient check: every algorithm against float64 BPTT on one window.

BPTT itself is checked against central finite differences of the loss along
random directions, so the chain of trust ends in the loss alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from fpttsim.data import Window
from fpttsim.experiment import DIRECTIONS, prepare, rng_for
from fpttsim.learn import check_algorithm, layer_modes, window_gradient, window_loss
from fpttsim.network import Network
from fpttsim.numerics.arithmetic import Arithmetic
from fpttsim.numerics.codes import INPUT, WEIGHTS

# An exact algorithm in float64 must agree with BPTT to these bounds (FPTT's
# inverse Jacobians amplify rounding, so the bounds leave room for that on
# well-conditioned scenarios); finite differences carry O(eps^2) truncation.
EXACT_COSINE = 1.0 - 1e-10
EXACT_REL_ERROR = 1e-7
FINITE_DIFFERENCE_REL_ERROR = 1e-6


def compare(grad: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Cosine similarity and relative L2 error of ``grad`` against ``reference``.

    Both are 1 and 0 when the two vectors are zero; the cosine is 0 when only
    one of them is.
    """
    ref_norm = float(np.linalg.norm(reference))
    norm = float(np.linalg.norm(grad))
    diff = float(np.linalg.norm(grad - reference))
    if ref_norm == 0.0:
        return (1.0, 0.0) if norm == 0.0 else (0.0, float("inf"))
    cosine = float(grad @ reference) / (norm * ref_norm) if norm > 0 else 0.0
    return cosine, diff / ref_norm


@dataclass
class AlgorithmCheck:
    """One algorithm's gradient against BPTT's."""

    cosine: float
    rel_error: float
    exact: bool
    passed: bool | None
    residual: float | None
    modes: list[str]
    events: dict[str, dict[str, int]] = field(default_factory=dict)
    by_parameter: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return dict(self.__dict__)


@dataclass
class GradcheckResult:
    """Result of :func:`gradcheck`.

    Attributes
    ----------
    algorithms
        Per algorithm: cosine and relative error against BPTT, overall and per
        parameter array; ``exact`` tells whether the algorithm should match
        BPTT, and ``passed`` whether it did (None for approximate ones, and
        for every algorithm under a reduced-precision profile, where the
        error is the measurement); ``events`` counts what the profile's
        rounding met.
    finite_difference
        BPTT's directional derivatives against central finite differences.
    scenario, profile
        Names of what was checked.
    loss
        The window's loss.
    reference
        The oracle's algorithm (float64 BPTT).

    Examples
    --------
    >>> import fpttsim
    >>> result = fpttsim.gradcheck("gradcheck-diagonal")
    >>> result.passed, result.to_dict()["algorithms"]["fptt"]["exact"]
    (True, True)
    >>> (ax,) = result.plot().axes
    >>> [bars.get_label() for bars in ax.containers] == list(result.algorithms)
    True
    """

    scenario: str
    profile: str
    loss: float
    algorithms: dict[str, AlgorithmCheck]
    finite_difference: dict
    reference: str = "bptt"

    @property
    def passed(self) -> bool:
        """Whether every exact algorithm and the finite-difference check passed."""
        ok = self.finite_difference["passed"]
        return ok and all(a.passed is not False for a in self.algorithms.values())

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return {
            "scenario": self.scenario,
            "profile": self.profile,
            "reference": self.reference,
            "loss": self.loss,
            "passed": self.passed,
            "algorithms": {k: v.to_dict() for k, v in self.algorithms.items()},
            "finite_difference": self.finite_difference,
        }

    def to_json(self) -> str:
        """The result as a JSON document."""
        return json.dumps(self.to_dict(), indent=2)

    def plot(self):
        """Each algorithm's gradient error per parameter array.

        Horizontal bars of ``1 - cosine`` with float64 BPTT on a log axis
        (:func:`fpttsim.report.plot_gradcheck`): a group per parameter array,
        a colour per algorithm, and the bound exact algorithms must meet in
        float64 dashed. Errors below 1e-16 are drawn at 1e-16.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from fpttsim.report import plot_gradcheck

        return plot_gradcheck(self)


def _by_parameter(net: Network, grad: np.ndarray, reference: np.ndarray) -> dict:
    out = {}
    for array in net.arrays:
        cosine, rel = compare(grad[array.slice], reference[array.slice])
        out[array.name] = {"cosine": cosine, "rel_error": rel}
    return out


def default_algorithms(net: Network, rtrl_max_bytes: int, exact: bool) -> list[str]:
    """Every algorithm that applies to ``net``.

    BPTT itself is included when the arithmetic is not exact: the device's
    BPTT then differs from the float64 oracle too.
    """
    names = ["fptt", "spatial"] if exact else ["fptt", "bptt", "spatial"]
    try:
        check_algorithm(net, "rtrl", rtrl_max_bytes)
        names.append("rtrl")
    except ValueError:
        pass
    return names


def gradcheck(scenario, profile=None) -> GradcheckResult:
    """Check the scenario's algorithms against float64 BPTT on one window.

    The parameters are the scenario's initial ones, stored in the profile's
    weight format, and the window the first of its task's stream with its
    inputs in the profile's input format; the oracle (BPTT in float64) and
    every algorithm (in the profile's arithmetic) see those same numbers, so
    the comparison measures what the device's arithmetic does to each
    algorithm's gradient.

    Parameters
    ----------
    scenario
        A :class:`fpttsim.config.Scenario`.
    profile
        The hardware profile; None loads the scenario's.

    Returns
    -------
    GradcheckResult
    """
    profile = profile if profile is not None else scenario.resolve_profile()
    arith = Arithmetic.from_profile(profile, scenario.seed)
    experiment = prepare(scenario)
    net = experiment.net
    theta = arith.round_blocks(WEIGHTS, experiment.theta, net.stored_weights())
    raw = next(experiment.task.stream(scenario.seed))
    window = Window(arith.round(INPUT, raw.inputs), raw.targets, raw.mask)
    learning = scenario.learning
    names = scenario.gradcheck.algorithms or default_algorithms(
        net, learning.rtrl_max_bytes, arith.exact
    )

    reference = window_gradient(net, theta, window, "bptt")
    checks: dict[str, AlgorithmCheck] = {}
    for name in names:
        check_algorithm(net, name, learning.rtrl_max_bytes)
        passes = learning.passes if name == "fptt" else None
        modes = layer_modes(net, name, passes)
        arith.reset_counts()
        fptt = learning.fptt if name == "fptt" else None
        result = window_gradient(net, theta, window, name, passes, arith, fptt=fptt)
        cosine, rel = compare(result.grad, reference.grad)
        # an approximate inverse Jacobian biases FPTT: its error is measured
        exact = all(mode in ("bptt", "fptt", "rtrl") for mode in modes) and not (
            fptt is not None and fptt.inverse != "exact"
        )
        residuals = [d.residual_relative for d in result.layers if d.mode == "fptt"]
        checks[name] = AlgorithmCheck(
            cosine=cosine,
            rel_error=rel,
            exact=exact,
            # the float64 bounds judge exact algorithms in exact arithmetic;
            # on a device they are measured, not judged
            passed=(cosine >= EXACT_COSINE and rel <= EXACT_REL_ERROR)
            if exact and arith.exact
            else None,
            residual=max(residuals) if residuals else None,
            modes=modes,
            events=arith.events(),
            by_parameter=_by_parameter(net, result.grad, reference.grad),
        )

    return GradcheckResult(
        scenario=scenario.name,
        profile=profile.name,
        loss=reference.loss,
        algorithms=checks,
        finite_difference=finite_difference_check(
            net,
            theta,
            window,
            reference.grad,
            scenario.gradcheck.directions,
            scenario.gradcheck.epsilon,
            rng_for(scenario, DIRECTIONS),
        ),
    )


def finite_difference_check(
    net: Network,
    theta: np.ndarray,
    window,
    grad: np.ndarray,
    directions: int,
    epsilon: float,
    rng: np.random.Generator,
) -> dict:
    """Directional derivatives ``grad . u`` against central differences.

    ``(L(theta + eps u) - L(theta - eps u)) / (2 eps)`` along unit directions
    ``u``; its error is ``O(eps^2)`` plus rounding of order ``1e-16 / eps``.
    """
    analytic = np.empty(directions)
    numeric = np.empty(directions)
    for k in range(directions):
        u = rng.normal(size=theta.size)
        u /= np.linalg.norm(u)
        analytic[k] = grad @ u
        numeric[k] = (
            window_loss(net, theta + epsilon * u, window)
            - window_loss(net, theta - epsilon * u, window)
        ) / (2.0 * epsilon)
    rel = float(np.linalg.norm(numeric - analytic) / np.linalg.norm(analytic))
    return {
        "rel_error": rel,
        "passed": rel <= FINITE_DIFFERENCE_REL_ERROR,
        "directions": directions,
        "epsilon": epsilon,
        "analytic": analytic.tolist(),
        "numeric": numeric.tolist(),
    }
