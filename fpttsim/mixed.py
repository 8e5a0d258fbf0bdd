r"""Mixed precision for FPTT: the fewest extra bits on its errors and on ``P``.

FPTT's own numerical loss lives in two quantities (../docs/fptt.md §7): the
errors ``delta`` it runs forward (``error``) and the Jacobian product ``P``
(``jacobian_product``). A device may hold those two wider than the rest,
leaving its weights, states, Jacobian, products and sums in their formats.
:func:`recommend` finds the fewest extra fraction bits ``k``, the same for
both, that bring FPTT's gradient cosine to a target, and what they cost.

Candidates. At ``k`` extra bits each of the two formats has its device's
fraction bits plus ``k``; a float keeps at least the device's exponent bits,
more when the precision budget (:func:`fpttsim.precision.predict`) says the
scenario's length needs them, and fixed point likewise its integer bits. The
kind of format, its flags, rounding and overflow stay the device's. The
widest candidate holds both at float64's 52 fraction bits (fixed point: 53
bits in all, the most a float64 holds exactly, as the simulator computes in
float64).

Search. The budget's required fraction bits minus the device's give the first
``k`` simulated: the median cosine over windows of the scenario's length, as
:func:`fpttsim.precision.measure` takes it. From there, smaller ``k`` while
the target holds, or larger ``k`` while it does not, in steps that double,
then bisection of the bracket: the ``k`` chosen meets the target and ``k - 1``
was simulated and does not. The cosine need not grow with ``k`` (rounding
errors can cancel), so a smaller ``k`` outside the bracket may also meet it;
the search promises only that boundary. When the budget asks for more range
than the device's, the search runs again with the device's range, and the
candidate of fewer bits per value wins: the prediction guides, simulation
decides.

Ceiling. The cosine is taken against exact float64 BPTT (``against="exact"``)
or against BPTT in the device's own arithmetic (``"bptt"``). BPTT's own
cosine with the exact gradient on the device is reported as the ceiling: the
forward pass stays in the device's formats whatever ``delta`` and ``P``
hold. It is not a strict bound (the device's BPTT rounds its own errors to
the device's format, FPTT's widened ones do not), so a target above it is
checked once at the widest candidate rather than searched for.

Cost. Memory and energy come from :func:`fpttsim.budget.budget` for FPTT,
with the device's profile and with the widened one: the memory plan's bytes
by component, and the cost model's energy per window and per sample. The
plan packs a buffer's values at their bits and rounds the buffer, not each
value, to whole bytes, so an odd width such as e8m8 (17 bits) costs 17 bits
a value. The cost model prices an addition or a multiplication the same at
any width, so only the bytes moved change the energy.

Not supported
-------------
Under stochastic rounding each candidate is simulated with fresh random
draws, which a simulation of the same formats elsewhere would not repeat:
near the target its verdict may differ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from fpttsim.budget import budget
from fpttsim.config import Profile
from fpttsim.config.profile import QuantityFormat, QuantityFormats
from fpttsim.experiment import prepare
from fpttsim.numerics.formats import NAMED_FORMATS, NumberFormat, parse_format
from fpttsim.precision import (
    _device_window,
    bptt_references,
    compare,
    median_cosine,
    on_device,
    windows_at,
)

QUANTITIES = ("error", "jacobian_product")
"""The quantities widened: FPTT's errors ``delta`` and its Jacobian product."""

AGAINST = ("exact", "bptt")
"""What the cosine is taken against: exact BPTT, or BPTT on the device."""

FRACTION_BITS_CAP = 52  # float64's: the simulator computes in float64
FIXED_BITS_CAP = 53  # the widest fixed point every value of which is a float64
EXPONENT_BITS_CAP = 11  # float64's exponent


# ---------------------------------------------------------------- formats
def _float_key(fmt: NumberFormat) -> tuple:
    return (
        fmt.exponent_bits,
        fmt.fraction_bits,
        fmt.subnormals,
        fmt.infinities,
        fmt.default_overflow,
    )


@dataclass(frozen=True)
class Widening:
    """How one quantity's format widens by ``k`` extra fraction bits.

    Attributes
    ----------
    base
        The device's format.
    range_bits
        The range of every candidate: exponent bits for a float, bits above
        the binary point (sign excluded) for fixed point; at least the
        device's. Unused for float64 itself, which never widens.
    """

    base: NumberFormat
    range_bits: int = 0

    @classmethod
    def own(cls, fmt: NumberFormat) -> Widening:
        """The widening of ``fmt`` that keeps its range."""
        if fmt.kind == "fixed":
            return cls(fmt, fmt.total_bits - 1 - fmt.fraction_bits)
        return cls(fmt, fmt.exponent_bits)

    @classmethod
    def predicted(cls, fmt: NumberFormat, required: dict) -> Widening:
        """The widening of ``fmt`` to the range ``required`` asks for.

        ``required`` is one quantity's entry of
        :attr:`fpttsim.precision.Prediction.required`.
        """
        own = cls.own(fmt)
        if fmt.kind == "float":
            # an OCP finite layout (-fn) is not defined at 11 exponent bits
            cap = EXPONENT_BITS_CAP - (0 if fmt.infinities else 1)
            wanted = required.get("exponent_bits", 0)
            return cls(fmt, min(cap, max(own.range_bits, wanted)))
        if fmt.kind == "fixed":
            wanted = required.get("integer_bits", own.range_bits)
            # no wider than the cap with the device's fraction bits kept
            room = max(own.range_bits, FIXED_BITS_CAP - 1 - fmt.fraction_bits)
            return cls(fmt, min(room, max(own.range_bits, wanted)))
        return own

    @property
    def most_fraction_bits(self) -> int:
        """The fraction bits of the widest candidate."""
        if self.base.kind == "fixed":
            room = FIXED_BITS_CAP - 1 - self.range_bits
            return max(self.base.fraction_bits, room)
        return FRACTION_BITS_CAP

    @property
    def base_fraction_bits(self) -> int:
        """The device's fraction bits (52 for float64 itself)."""
        exact = self.base.kind == "exact"
        return FRACTION_BITS_CAP if exact else self.base.fraction_bits

    @property
    def most_extra_bits(self) -> int:
        """The ``k`` past which this quantity widens no further."""
        return self.most_fraction_bits - self.base_fraction_bits

    def name(self, k: int) -> str:
        """The format name at ``k`` extra fraction bits."""
        base = self.base
        if base.kind == "exact":
            return base.name
        fraction = min(base.fraction_bits + k, self.most_fraction_bits)
        if base.kind == "fixed":
            total = 1 + self.range_bits + fraction
            if (total, fraction) == (base.total_bits, base.fraction_bits):
                return base.name
            flags = ("-shared" if base.shared_exponent else "") + (
                "-wrap" if base.default_overflow == "wrap" else ""
            )
            return f"fixed{total}.{fraction}{flags}"
        flags = [
            flag
            for flag, on in (
                ("nosub", not base.subnormals),
                ("fn", not base.infinities),
                ("sat", base.default_overflow == "saturate"),
            )
            if on
        ]
        widened = parse_format("-".join([f"e{self.range_bits}m{fraction}", *flags]))
        if _float_key(widened) == _float_key(base):
            return base.name
        for named in NAMED_FORMATS:  # fp32 reads better than e8m23
            if _float_key(parse_format(named)) == _float_key(widened):
                return named
        return widened.name


def widened_profile(profile: Profile, formats: dict[str, str]) -> Profile:
    """``profile`` with some quantities held in other formats.

    Parameters
    ----------
    profile
        The device's profile.
    formats
        Quantity name to format name; each keeps the device's rounding and
        overflow modes.

    Returns
    -------
    Profile
        The same device (memory, throughput, energy) with those formats.
    """
    changed = {}
    for quantity, name in formats.items():
        resolved = profile.format_of(quantity)
        changed[quantity] = QuantityFormat(
            format=name, rounding=resolved.rounding, overflow=resolved.overflow
        )
    return profile.with_formats(QuantityFormats(**changed))


def _bits(formats: dict[str, str]) -> dict[str, int]:
    return {q: parse_format(name).bits for q, name in formats.items()}


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class Trial:
    """One candidate simulated: cosines are medians over the windows.

    Attributes
    ----------
    extra_bits
        ``k``, the fraction bits added to both quantities.
    formats
        Each widened quantity's format name.
    cosine
        The cosine compared with the target (``exact_cosine`` or
        ``bptt_cosine``, as the recommendation was asked for).
    exact_cosine
        FPTT with these formats, in the device's arithmetic otherwise,
        against exact float64 BPTT.
    bptt_cosine
        The same FPTT against BPTT in the device's own arithmetic.
    own_cosine
        FPTT with these two formats and every other quantity exact, against
        exact BPTT: what the two formats alone cost.
    nonfinite
        Windows whose FPTT gradient was not finite (counted as cosine 0).
    meets
        Whether ``cosine`` reaches the target.
    """

    extra_bits: int
    formats: dict
    cosine: float
    exact_cosine: float
    bptt_cosine: float
    own_cosine: float
    nonfinite: int
    meets: bool

    def to_dict(self) -> dict:
        """JSON-ready data."""
        return {
            "extra_bits": self.extra_bits,
            "formats": self.formats,
            "bits": _bits(self.formats),
            "cosine": self.cosine,
            "exact_cosine": self.exact_cosine,
            "bptt_cosine": self.bptt_cosine,
            "own_cosine": self.own_cosine,
            "nonfinite": self.nonfinite,
            "meets": self.meets,
        }


@dataclass
class Recommendation:
    """Outcome of :func:`recommend`.

    Attributes
    ----------
    scenario, profile
        Names of the scenario and of the device's profile.
    length
        The scenario's window length, at which every candidate is simulated.
    target, against
        The cosine asked for, and what it is taken against.
    windows
        Windows per candidate (their median cosine counts).
    device_formats
        The device's format of each widened quantity.
    predicted_extra_bits, predicted_formats
        The ``k`` the precision budget suggested, with the ranges it asks
        for: the first candidate simulated.
    required
        The bits the budget says the two formats need at the length.
    ceiling
        BPTT's cosine with exact BPTT in the device's arithmetic.
    max_extra_bits
        The widest candidate's ``k``.
    trials
        The candidates simulated, in order.
    extra_bits
        The ``k`` recommended; None when no candidate reaches the target.
    formats
        The recommended formats; None when unreachable.
    memory
        FPTT's memory with the device's formats (``before``) and the
        recommended ones (``after``): bytes by component, totals, whether
        they fit, and the difference.
    energy
        FPTT's energy per window and per sample, before and after, split into
        operations and memory accesses, and the difference.
    notes
        Why the target cannot be reached, or what else a reader should know.

    Examples
    --------
    >>> import fpttsim
    >>> scenario = fpttsim.load_scenario("quickstart", {"profile": "bf16-systolic"})
    >>> result = fpttsim.recommend_precision(scenario, target=0.99995, against="bptt")
    >>> [(trial.extra_bits, trial.meets) for trial in result.trials]
    [(0, False), (1, True)]
    >>> result.extra_bits, result.to_dict()["extra_storage_bits"]
    (1, {'error': 1, 'jacobian_product': 1})
    >>> (ax,) = result.plot().axes
    >>> list(ax.lines[1].get_xdata()), ax.get_xlabel()
    ([0, 1], "extra fraction bits on FPTT's errors and P")
    """

    scenario: str
    profile: str
    length: int
    target: float
    against: str
    windows: int
    device_formats: dict
    predicted_extra_bits: int
    predicted_formats: dict
    required: dict
    ceiling: float
    max_extra_bits: int
    trials: list = field(default_factory=list)
    extra_bits: int | None = None
    formats: dict | None = None
    memory: dict = field(default_factory=dict)
    energy: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def reached(self) -> bool:
        """Whether some candidate reaches the target."""
        return self.extra_bits is not None

    @property
    def extra_storage_bits(self) -> dict | None:
        """Bits per value each quantity gains (fraction and range bits)."""
        if self.formats is None:
            return None
        device = _bits(self.device_formats)
        return {q: bits - device[q] for q, bits in _bits(self.formats).items()}

    @property
    def verdict(self) -> str:
        """One line: what to do, or why nothing of this kind helps."""
        if not self.reached:
            return (
                f"unreachable: no candidate up to +{self.max_extra_bits} fraction "
                f"bits on {' and '.join(QUANTITIES)} reaches {self.target}"
            )
        fits = "fits" if self.memory["after"]["fits"] else "does NOT fit"
        if self.formats == self.device_formats:
            return (
                "the device's own formats already reach the target; FPTT "
                f"{fits} the device's memory"
            )
        gains = ", ".join(
            f"{q} {self.formats[q]} ({extra:+} bit{'' if abs(extra) == 1 else 's'})"
            for q, extra in self.extra_storage_bits.items()
        )
        return f"{gains} reach the target; FPTT then {fits} the device's memory"

    def to_dict(self) -> dict:
        """JSON-ready data."""
        return {
            "scenario": self.scenario,
            "profile": self.profile,
            "length": self.length,
            "target": self.target,
            "against": self.against,
            "windows": self.windows,
            "device_formats": self.device_formats,
            "device_bits": _bits(self.device_formats),
            "prediction": {
                "extra_bits": self.predicted_extra_bits,
                "formats": self.predicted_formats,
                "required": self.required,
            },
            "ceiling": self.ceiling,
            "max_extra_bits": self.max_extra_bits,
            "trials": [t.to_dict() for t in self.trials],
            "reached": self.reached,
            "extra_bits": self.extra_bits,
            "formats": self.formats,
            "bits": None if self.formats is None else _bits(self.formats),
            "extra_storage_bits": self.extra_storage_bits,
            "memory": self.memory,
            "energy": self.energy,
            "verdict": self.verdict,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        """The result as a JSON document."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def plot(self):
        """The candidates' gradient cosines against the extra bits.

        Each candidate simulated, against exact BPTT and against BPTT on the
        device (the one ``against`` chose drawn solid), with the target
        (dashed), the ceiling (dash-dotted) and, when the target was reached,
        the extra bits chosen (dotted); see
        :func:`fpttsim.report.plot_recommendation`.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from fpttsim.report import plot_recommendation

        return plot_recommendation(self)

    def to_text(self) -> str:
        """A compact human rendering: the trials, the choice and its cost."""
        against = "exact BPTT" if self.against == "exact" else "BPTT on the device"
        lines = [
            f"{self.scenario} on {self.profile}, T = {self.length}: extra fraction "
            f"bits on FPTT's errors and P for a gradient cosine >= {self.target} "
            f"with {against} (median of {self.windows} windows)",
            f"  device      {_formats_text(self.device_formats)}",
            f"  predicted   +{self.predicted_extra_bits}: "
            f"{_formats_text(self.predicted_formats)}",
            f"  ceiling     {self.ceiling:.6f}: BPTT on the device against exact BPTT",
            "",
            f"  {'k':>4}  {'error':<13}{'P':<13}{'vs exact':>10}{'vs BPTT':>10}",
        ]
        for t in sorted(self.trials, key=_order):
            mark = "meets" if t.meets else "misses"
            if t.formats == self.formats:
                mark += "  <- chosen"
            lines.append(
                f"  {t.extra_bits:>+4}  {t.formats['error']:<13}"
                f"{t.formats['jacobian_product']:<13}{t.exact_cosine:>10.6f}"
                f"{t.bptt_cosine:>10.6f}  {mark}"
            )
        lines.append("")
        if self.reached:
            lines += _cost_lines(self.memory, self.energy)
        lines.append(f"  verdict     {self.verdict}")
        lines += [f"  note        {note}" for note in self.notes]
        return "\n".join(lines)


def _order(trial: Trial) -> tuple:
    """Trials by ``k``, then by bits per value (the device's range first)."""
    return trial.extra_bits, sum(_bits(trial.formats).values())


def _formats_text(formats: dict) -> str:
    bits = _bits(formats)
    return ", ".join(f"{q} {name} ({bits[q]} bits)" for q, name in formats.items())


def _joules(value: float) -> str:
    """Energy in the largest SI unit below it, four digits."""
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e-12:.4g} pJ"


def _cost_lines(memory: dict, energy: dict) -> list[str]:
    before, after = memory["before"], memory["after"]
    fits = "fits" if after["fits"] else "does NOT fit"
    changed = ", ".join(
        f"{c} {d:+,}" for c, d in memory["difference_by_component"].items() if d
    )
    lines = [
        f"  memory      FPTT {before['total_bytes']:,} B -> {after['total_bytes']:,} "
        f"B ({memory['difference_bytes']:+,} B{': ' + changed if changed else ''})",
        f"              working {after['working_bytes']:,} of "
        f"{memory['working_memory_bytes']:,} B: {fits}",
    ]
    for span in ("per_sample", "per_window"):
        was, now = energy["before"][span]["joules"], energy["after"][span]["joules"]
        change = f"{'+' if now > was else '-'}{_joules(abs(now - was))}"
        lines.append(
            f"  energy      {span.replace('_', ' ')}: {_joules(was)} -> "
            f"{_joules(now)} ({change if now != was else 'unchanged'})"
        )
    lines.append(f"              {energy['note']}")
    return lines


# ---------------------------------------------------------------- cost
def _memory(before, after, profile) -> dict:
    """FPTT's memory before and after, from the budget's algorithm entries."""

    def plain(alg) -> dict:
        out = alg.to_dict()
        del out["cost"], out["note"]
        return out

    return {
        "working_memory_bytes": profile.memory.working_bytes,
        "replay_memory_bytes": profile.memory.replay_bytes,
        "before": plain(before),
        "after": plain(after),
        "difference_bytes": after.total_bytes - before.total_bytes,
        "difference_by_component": {
            c: after.bytes[c] - before.bytes[c] for c in before.bytes
        },
    }


def _energy(before: dict, after: dict, profile) -> dict:
    """FPTT's energy before and after, split into operations and accesses."""
    e = profile.energy

    def split(cost: dict) -> dict:
        out = {}
        for span, work in cost.items():
            operations = (work["adds"] * e.add_pj + work["muls"] * e.mul_pj) * 1e-12
            out[span] = {
                "joules": work["joules"],
                "operations_joules": operations,
                "memory_access_joules": work["joules"] - operations,
                "working_bytes_moved": work["working_bytes_moved"],
                "replay_bytes_moved": work["replay_bytes_moved"],
                "seconds": work["seconds"],
            }
        return out

    was, now = split(before), split(after)
    moved = any(
        before[s]["working_bytes_moved"] != after[s]["working_bytes_moved"]
        for s in before
    )
    if all(was[s]["operations_joules"] == now[s]["operations_joules"] for s in was):
        note = (
            "the cost model prices an addition and a multiplication the same at "
            "any width, so only the bytes moved change the energy"
            + ("" if moved else ", and they do not change here")
        )
    else:
        note = "the operations' energy changes with the formats, and so may time"
    return {
        "before": was,
        "after": now,
        "difference_joules": {
            span: now[span]["joules"] - was[span]["joules"] for span in was
        },
        "note": note,
    }


# ---------------------------------------------------------------- search
def _smallest(meets: Callable[[int], bool], start: int, most: int, jump: bool):
    """The smallest ``k`` in ``[0, most]`` at a boundary of ``meets``.

    From ``start``: down in doubling steps while ``meets`` holds, or up while
    it does not (straight to ``most`` when ``jump``), then bisection. The
    ``k`` returned meets and ``k - 1`` (when ``k > 0``) was tried and does
    not; None when ``most`` does not meet.
    """
    if meets(start):
        high, low, step = start, -1, 1  # -1: no k below 0 to try
        while high > 0:
            k = max(0, high - step)
            if not meets(k):
                low = k
                break
            high, step = k, 2 * step
    elif jump:
        if not meets(most):
            return None
        low, high = start, most
    else:
        low, high, step = start, None, 1
        while high is None and low < most:
            k = min(most, low + step)
            if meets(k):
                high = k
            else:
                low, step = k, 2 * step
        if high is None:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        if meets(mid):
            high = mid
        else:
            low = mid
    return high


class _Trials:
    """Candidates simulated once each, on the same windows of the scenario.

    Each candidate gets arithmetic of its own (the widened profile's, and the
    device's for BPTT), as a separate :func:`fpttsim.precision.compare` of
    those formats would.
    """

    def __init__(
        self, scenario, profile, experiment, windows, target, against, on_trial
    ):
        self.scenario, self.profile = scenario, profile
        self.experiment = experiment
        self.target, self.against = target, against
        self.windows = windows
        self.on_trial = on_trial
        self.done: dict[tuple, Trial] = {}
        self.ceiling = math.nan  # BPTT on the device; known after a first run
        self._bptt: list | None = None

    def _references(self) -> list:
        """Exact BPTT's and the device's BPTT gradients per window, once.

        Widening the errors and Jacobian product leaves the weights' and
        inputs' formats, and so both references, as they are: every
        candidate is compared with the same ones.
        """
        if self._bptt is None:
            net, theta = self.experiment.net, self.experiment.theta
            device, _, stored = on_device(net, theta, self.profile, self.scenario.seed)
            self._bptt = [
                bptt_references(net, stored, _device_window(device, raw), device)
                for raw in self.windows
            ]
        return self._bptt

    def run(self, family: dict, k: int) -> Trial:
        """The candidate of ``family`` at ``k`` extra bits, simulated once."""
        formats = {q: w.name(k) for q, w in family.items()}
        key = tuple(formats.values())
        if key in self.done:
            return self.done[key]
        net, theta = self.experiment.net, self.experiment.theta
        seed = self.scenario.seed
        widened = widened_profile(self.profile, formats)
        arith, own, stored = on_device(net, theta, widened, seed)
        fptt = self.scenario.learning.fptt
        found = [
            compare(net, stored, raw, arith, own, fptt, references=references)
            for raw, references in zip(self.windows, self._references(), strict=True)
        ]
        self.ceiling = median_cosine([c.bptt for c in found])
        exact = median_cosine([c.whole for c in found])
        bptt = median_cosine([c.against_bptt for c in found])
        cosine = exact if self.against == "exact" else bptt
        trial = Trial(
            k,
            formats,
            cosine,
            exact,
            bptt,
            median_cosine([c.own for c in found]),
            sum(not c.finite for c in found),
            cosine >= self.target,
        )
        self.done[key] = trial
        if self.on_trial is not None:
            self.on_trial(trial)
        return trial


def recommend(
    scenario,
    profile=None,
    target: float = 0.99,
    windows: int = 2,
    against: str = "exact",
    max_extra_bits: int | None = None,
    experiment=None,
    on_trial: Callable[[Trial], None] | None = None,
) -> Recommendation:
    """The fewest extra bits on FPTT's errors and ``P`` that reach a target.

    When the precision budget asks for a wider range (exponent or integer
    bits) than the device's, candidates with that range and with the
    device's own are both searched, and the recommendation is the one of
    fewer bits per value (the device's range on a tie).

    Parameters
    ----------
    scenario
        A :class:`fpttsim.config.Scenario`: network, data, window length and
        FPTT's method (``learning.fptt``: segments, refinement).
    profile
        The device's profile; None uses the scenario's.
    target
        The gradient cosine to reach, in ``(0, 1)``.
    windows
        Windows per candidate; their median cosine counts.
    against
        ``"exact"``: the cosine with exact float64 BPTT; ``"bptt"``: with BPTT
        in the device's own arithmetic.
    max_extra_bits
        The most extra fraction bits to consider; None up to float64's 52.
    experiment
        The scenario's :func:`fpttsim.experiment.prepare`, when the caller
        has it.
    on_trial
        Called with each :class:`Trial` once it is simulated.

    Returns
    -------
    Recommendation

    Raises
    ------
    ValueError
        For a target outside ``(0, 1)``, an unknown ``against``, fewer than
        one window or a negative ``max_extra_bits``.
    """
    if not 0.0 < target < 1.0:
        raise ValueError(f"target: expected a cosine in (0, 1), got {target}")
    if against not in AGAINST:
        raise ValueError(f"against: expected one of {AGAINST}, got {against!r}")
    if windows < 1:
        raise ValueError(f"windows: expected at least 1, got {windows}")
    if max_extra_bits is not None and max_extra_bits < 0:
        raise ValueError(f"max_extra_bits: expected >= 0, got {max_extra_bits}")
    profile = profile if profile is not None else scenario.resolve_profile()
    experiment = experiment or prepare(scenario)

    # the budget's prediction, and FPTT's memory and cost in the device's formats
    device = budget(scenario, profile, threshold=target, simulate=False)
    required = device.prediction.required
    base = {q: parse_format(profile.format_of(q).format) for q in QUANTITIES}
    predicted = {q: Widening.predicted(f, required[q]) for q, f in base.items()}
    own = {q: Widening.own(f) for q, f in base.items()}
    wanted = max(
        required[q]["fraction_bits"] - w.base_fraction_bits
        for q, w in predicted.items()
    )

    # the search, in the predicted range and then in the device's own
    raw = windows_at(scenario, device.length, windows)
    trials = _Trials(scenario, profile, experiment, raw, target, against, on_trial)
    searched = []  # (family, first k, widest k, k found) of each family
    for family in [predicted] if own == predicted else [predicted, own]:
        most = max(w.most_extra_bits for w in family.values())
        if max_extra_bits is not None:
            most = min(most, max_extra_bits)
        start = min(max(wanted, 0), most)
        trials.run(family, start)
        # a target above what BPTT reaches on the device is tried at the
        # widest candidate next, so that an unreachable one costs two trials
        above = against == "exact" and target > trials.ceiling
        k = _smallest(lambda k, f=family: trials.run(f, k).meets, start, most, above)
        searched.append((family, start, most, k))
    _, start, _, _ = searched[0]
    result = Recommendation(
        scenario.name,
        profile.name,
        device.length,
        target,
        against,
        windows,
        {q: f.name for q, f in base.items()},
        start,
        trials.run(predicted, start).formats,
        required,
        trials.ceiling,
        max(most for _, _, most, _ in searched),
        list(trials.done.values()),
    )
    reached = [(family, k) for family, _, _, k in searched if k is not None]
    if not reached:
        widest = [trials.run(family, most) for family, _, most, _ in searched]
        result.notes = [_unreachable(result, max(widest, key=lambda t: t.cosine))]
        return result

    # the fewest bits per value; the device's range on a tie (listed last)
    family, k = min(reversed(reached), key=lambda c: _total_bits(c[0], c[1]))
    chosen = trials.run(family, k)
    result.extra_bits, result.formats = k, chosen.formats
    if against == "exact" and target > result.ceiling:
        result.notes.append(
            f"FPTT with these formats ({chosen.cosine:.6f}) beats BPTT on the "
            f"device ({result.ceiling:.6f}): BPTT's own errors are held in the "
            "device's format"
        )

    # what the recommended formats cost
    after = device
    if result.formats != result.device_formats:
        widened = widened_profile(profile, result.formats)
        after = budget(scenario, widened, threshold=target, simulate=False)
    fptt = device.algorithms["fptt"], after.algorithms["fptt"]
    result.memory = _memory(*fptt, profile)
    result.energy = _energy(fptt[0].cost, fptt[1].cost, profile)
    return result


def _total_bits(family: dict, k: int) -> int:
    return sum(parse_format(w.name(k)).bits for w in family.values())


def _unreachable(result: Recommendation, widest: Trial) -> str:
    """Why even the widest candidate misses the target."""
    reach = (
        f"even +{widest.extra_bits} fraction bits "
        f"({_formats_text(widest.formats)}) reach only {widest.cosine:.6f}"
    )
    if result.against == "exact" and result.target > result.ceiling:
        return (
            f"the target {result.target} is above the ceiling "
            f"{result.ceiling:.6f}, what BPTT reaches in the device's arithmetic, "
            f"and {reach}: widen the other quantities (states, Jacobian, "
            "products, sums), or ask for the cosine against BPTT on the device"
        )
    return (
        f"{reach}: the quantities kept in the device's formats (states, "
        "Jacobian, products, sums) limit FPTT there"
    )
