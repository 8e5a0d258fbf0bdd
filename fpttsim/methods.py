"""``fpttsim study fptt-methods``: what each way of saving FPTT buys, and costs.

Plain FPTT loses its gradient once ``|lambda|^{-T}`` outgrows the precision
of its errors (../docs/fptt.md §7). The methods compared here push that limit
back at equal bits everywhere else: refinement passes, segmented shooting,
wider errors and Jacobian product (mixed precision) and their combinations.
Each point records the gradient's cosine with exact float64 BPTT and with
BPTT computed in the same arithmetic (what the formats cost any algorithm,
so that the method's own loss shows apart from it), the end residual, the
error passes spent, and the bytes of learner state the device holds, from
the same plan its arena allocates. BPTT itself is a point of the comparison:
its memory grows with ``T``.

A method is written as parts joined by ``+``: ``plain``, ``segments:K``,
``refine:K``, ``neumann:M`` (the inverse's Neumann series with ``M`` terms),
``wide`` (errors and Jacobian product one float width up: fp32 below fp32,
fp64 from fp32) or ``wide:FORMAT``. For example ``segments:8+wide``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from fpttsim import report
from fpttsim.config import Profile, load_scenario
from fpttsim.config.profile import QuantityFormats
from fpttsim.config.scenario import FpttConfig
from fpttsim.device.memory import plan
from fpttsim.errors import ConfigError
from fpttsim.experiment import prepare
from fpttsim.numerics.arithmetic import Arithmetic
from fpttsim.numerics.codes import WEIGHTS
from fpttsim.numerics.formats import parse_format
from fpttsim.precision import (
    _device_window,
    bptt_references,
    cosine,
    fptt_gradient,
    windows_at,
    zero_if_nan,
)
from fpttsim.study import GridOutputs, check_grid, run_grid, study_profile

DEFAULT_METHODS = (
    "plain",
    "refine:1",
    "refine:2",
    "segments:2",
    "segments:4",
    "segments:8",
    "wide",
    "segments:8+wide",
)
DEFAULT_R_MIN = (0.5, 0.8, 0.9, 0.95, 0.99)
DEFAULT_LENGTHS = (100, 1000)
DEFAULT_PROFILES = ("fp32", "bf16")
DEFAULT_SEEDS = 3
DEFAULT_SCENARIO = "quickstart"
BPTT = "bptt"
"""The name of the reference point: BPTT in the profile's arithmetic."""

# buffers that make up the learner's own state; every algorithm also holds
# the weights, their gradient, the optimiser's state, inference's state and
# the replay buffer
LEARNER_PREFIXES = ("learner.", "refine.", "tape.")

COLUMNS = (
    "profile",
    "method",
    "r_min",
    "length",
    "seed",
    "cosine",
    "cosine_bptt",
    "bptt_cosine",
    "residual",
    "error_passes",
    "learner_bytes",
)


@dataclass(frozen=True)
class Method:
    """One way of running FPTT.

    Attributes
    ----------
    name
        As written (``"segments:8+wide"``).
    fptt
        Segments, refinement and inverse.
    wide
        The format of the errors and Jacobian product: ``"next"`` for one
        float width up, a format name, or None for the profile's.
    """

    name: str
    fptt: FpttConfig
    wide: str | None = None

    def profile(self, profile: Profile) -> Profile:
        """``profile`` with this method's errors and Jacobian product."""
        if self.wide is None:
            return profile
        fmt = wider(profile) if self.wide == "next" else self.wide
        return profile.with_formats(QuantityFormats(error=fmt, jacobian_product=fmt))


def wider(profile: Profile) -> str:
    """One float width up from the profile's error format.

    fp32 for formats narrower than fp32 (bf16, fp16, fp8, 16-bit fixed
    point), fp64 from fp32 or 32-bit fixed point on.
    """
    fmt = parse_format(profile.format_of("error").format)
    significand = fmt.fraction_bits if fmt.kind == "float" else fmt.total_bits - 1
    return "fp32" if significand < 23 else "fp64"


def parse_method(text: str) -> Method:
    """A :class:`Method` from its written form (see the module's docstring).

    Raises
    ------
    ConfigError
        Naming ``--methods`` and the part that is not understood.
    """
    options: dict = {}
    wide = None
    for part in text.strip().split("+"):
        name, _, value = part.strip().partition(":")
        try:
            if name == "plain" and not value:
                continue
            if name in ("segments", "refine"):
                options[name] = int(value)
            elif name == "neumann":
                options.update(inverse="neumann", terms=int(value))
            elif name == "wide":
                wide = value or "next"
                if value:
                    parse_format(value)
            else:
                raise ValueError("unknown part")
            FpttConfig(**options)
        except ValueError as exc:
            raise ConfigError(
                f"method {text!r}: {part.strip()!r} is not plain, segments:K, "
                f"refine:K, neumann:M, wide or wide:FORMAT with K >= 1 (refine "
                f"K >= 0) and a valid format ({exc})",
                key="--methods",
            ) from None
    return Method(text.strip(), FpttConfig(**options), wide)


def learner_bytes(net, algorithm: str, length: int, profile, scenario, fptt=None):
    """Bytes of the learner's own state in the device's plan."""
    fptt = fptt or FpttConfig()
    learning = scenario.learning
    buffers = plan(
        net,
        algorithm,
        length,
        profile,
        learning.optimizer,
        learning.momentum > 0,
        scenario.device.double_buffer,
        segments=fptt.segments,
        refine=fptt.refine,
    )
    return sum(b.bytes for b in buffers if b.name.startswith(LEARNER_PREFIXES))


@dataclass
class MethodsResult(GridOutputs):
    """Outcome of :func:`fptt_methods`.

    Attributes
    ----------
    scenario
        The base scenario's name.
    methods, r_min, lengths, profiles, seeds
        The grid; :data:`BPTT` is added as a method of its own.
    rows
        One dict per point and seed (:data:`COLUMNS`).
    seconds
        Wall-clock time of the study.

    Notes
    -----
    Its figures: ``plot()`` or ``plot("errors", length=T)``, each method's
    gradient error ``1 - cosine`` against ``r_min``, against BPTT at equal
    bits (top row) and exact BPTT (bottom row), a column per profile
    (:func:`fpttsim.report.plot_fptt_methods`, written as
    ``fptt_methods.png``); ``plot("pareto", r_min=R, length=T)``, learner
    memory against that error at one point of the grid
    (:func:`fpttsim.report.plot_pareto`, ``fptt_methods_pareto.png``).

    Examples
    --------
    >>> import fpttsim
    >>> grid = {"r_min": [0.8], "lengths": [1000], "profiles": ["fp32"]}
    >>> result = fpttsim.fptt_methods(
    ...     methods=["plain", "segments:4"], seeds=1, workers=1, **grid)
    >>> result.methods
    ['bptt', 'plain', 'segments:4']
    >>> {e["method"]: e["learner_bytes"] for e in result.point(0.8, 1000)}
    {'bptt': 259652, 'plain': 4164, 'segments:4': 5700}
    >>> top, bottom = result.plot().axes
    >>> [line.get_label() for line in top.lines][:2]
    ['plain', 'segments:4']
    """

    scenario: str
    methods: list
    r_min: list
    lengths: list
    profiles: list
    seeds: int
    rows: list = field(default_factory=list)
    seconds: float = 0.0

    TABLE = "fptt_methods.csv"
    FIGURES = {
        "errors": (report.plot_fptt_methods, "fptt_methods.png"),
        "pareto": (report.plot_pareto, "fptt_methods_pareto.png"),
    }

    def summary(self) -> list[dict]:
        """Per profile, method, r_min and T: medians over the seeds."""
        groups: dict[tuple, list[dict]] = {}
        for row in self.rows:
            key = (row["profile"], row["method"], row["r_min"], row["length"])
            groups.setdefault(key, []).append(row)
        out = []
        for (profile, method, r_min, length), rows in groups.items():
            entry = {
                "profile": profile,
                "method": method,
                "r_min": r_min,
                "length": length,
            }
            for key in ("cosine", "cosine_bptt", "error_passes"):
                values = [r[key] for r in rows]
                entry[key] = float(np.median(values))
                entry[f"{key}_min"] = float(np.min(values))
            residuals = [r["residual"] for r in rows if r["residual"] is not None]
            entry["residual"] = float(np.median(residuals)) if residuals else None
            entry["learner_bytes"] = rows[0]["learner_bytes"]
            out.append(entry)
        return out

    def point(self, r_min: float, length: int) -> list[dict]:
        """The summary at one ``r_min`` and ``T``: the Pareto comparison."""
        return [
            e for e in self.summary() if e["r_min"] == r_min and e["length"] == length
        ]

    def to_dict(self) -> dict:
        """JSON-ready data: the grid and the summary."""
        return {
            "scenario": self.scenario,
            "methods": self.methods,
            "r_min": self.r_min,
            "lengths": self.lengths,
            "profiles": self.profiles,
            "seeds": self.seeds,
            "seconds": self.seconds,
            "summary": self.summary(),
        }


def _point_rows(task) -> list[dict]:
    """Every profile, length and method for one ``r_min`` and seed."""
    scenario_ref, overrides, r_min, seed, lengths, profiles, methods = task
    methods = [parse_method(m) for m in methods]
    scenario = load_scenario(
        scenario_ref, {**overrides, "model.r_min": r_min, "seed": seed}
    )
    experiment = prepare(scenario)
    net = experiment.net
    rows = []
    for name in profiles:
        profile = study_profile(name, scenario)
        for length in lengths:
            raw = windows_at(scenario, length, 1)[0]
            arith = Arithmetic.from_profile(profile, seed)
            # every method sees the device's weights and inputs, stored once
            theta = arith.round_blocks(WEIGHTS, experiment.theta, net.stored_weights())
            window = _device_window(arith, raw)
            exact, bptt = bptt_references(net, theta, window, arith)
            base = {"profile": name, "r_min": r_min, "length": length, "seed": seed}
            rows.append(
                {
                    **base,
                    "method": BPTT,
                    "cosine": zero_if_nan(cosine(bptt, exact)),
                    "cosine_bptt": 1.0,
                    "bptt_cosine": zero_if_nan(cosine(bptt, exact)),
                    "residual": None,
                    "error_passes": 0.0,
                    "learner_bytes": learner_bytes(
                        net, "bptt", length, profile, scenario
                    ),
                }
            )
            for method in methods:
                used = method.profile(profile)
                found = fptt_gradient(
                    net, theta, window, Arithmetic.from_profile(used, seed), method.fptt
                )
                grad = np.full(net.size, np.nan) if found is None else found.grad
                layers = [] if found is None else found.layers
                fptt_layers = [d for d in layers if d.mode == "fptt"]
                residual = max((d.residual_relative for d in fptt_layers), default=0.0)
                rows.append(
                    {
                        **base,
                        "method": method.name,
                        "cosine": zero_if_nan(cosine(grad, exact)),
                        "cosine_bptt": zero_if_nan(cosine(grad, bptt)),
                        "bptt_cosine": zero_if_nan(cosine(bptt, exact)),
                        "residual": residual
                        if found is not None and math.isfinite(residual)
                        else None,
                        "error_passes": float(
                            np.mean([d.error_passes for d in fptt_layers])
                        )
                        if fptt_layers
                        else 0.0,
                        "learner_bytes": learner_bytes(
                            net, "fptt", length, used, scenario, method.fptt
                        ),
                    }
                )
    return rows


def fptt_methods(
    scenario: str | os.PathLike = DEFAULT_SCENARIO,
    overrides: dict | None = None,
    methods=DEFAULT_METHODS,
    r_min=DEFAULT_R_MIN,
    lengths=DEFAULT_LENGTHS,
    profiles=DEFAULT_PROFILES,
    seeds: int = DEFAULT_SEEDS,
    workers: int | None = None,
) -> MethodsResult:
    """Compare FPTT's methods at equal bits over ``r_min``, ``T`` and profiles.

    Parameters
    ----------
    scenario
        The base scenario (a shipped name or a path): its cell, sizes and
        task; ``model.r_min`` and ``seed`` vary.
    overrides
        Key-path overrides of the base scenario.
    methods
        Methods as written in the module's docstring.
    r_min, lengths, profiles
        The grid's axes; a profile is a shipped name, a path, or a number
        format for every quantity (``fp32``, ``bf16``).
    seeds
        Seeds per point (0 to ``seeds - 1``): parameters and data.
    workers
        Processes (default: the machine's cores; 1 runs in this process).

    Returns
    -------
    MethodsResult

    Examples
    --------
    >>> import fpttsim
    >>> result = fpttsim.fptt_methods(
    ...     methods=["plain", "segments:4"], r_min=[0.8], lengths=[1000],
    ...     profiles=["fp32"], seeds=1, workers=1,
    ... )
    >>> cosines = {e["method"]: e["cosine"] for e in result.summary()}
    >>> cosines["segments:4"] > cosines["plain"]
    True
    """
    overrides = dict(overrides or {})
    base = check_grid(scenario, overrides, r_min, lengths, profiles, seeds)
    methods = list(dict.fromkeys(methods))
    for text in methods:
        parse_method(text)
    start = time.perf_counter()
    extra = (list(lengths), list(profiles), methods)
    rows = run_grid(_point_rows, scenario, overrides, r_min, seeds, extra, workers)
    result = MethodsResult(
        base.name,
        [BPTT, *methods],
        [float(r) for r in r_min],
        list(lengths),
        list(profiles),
        seeds,
        rows,
    )
    result.seconds = time.perf_counter() - start
    return result
