"""The hardware profile schema: number formats, memory, throughput and energy.

A profile describes one device: the number format each stored quantity and
each arithmetic result is held in, with its rounding and overflow modes; the
memory learning may use; the sustained arithmetic throughput; and the energy
of an operation and of a memory access. A section left out of a profile takes
the exact reference's values (``hardware_profiles/fp64-reference.yaml``):
binary64 arithmetic and memory and throughput that constrain nothing.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fpttsim.config.relations import relation_error
from fpttsim.numerics.codes import QUANTITY_NAMES

_SECTION = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Text = Annotated[str, Strict()]

Rounding = Literal["nearest-even", "toward-zero", "down", "up", "stochastic"]
Overflow = Literal["saturate", "wrap", "inf"]

# --- format names ---------------------------------------------------------------


def _parse(name: str) -> Any:
    # Imported here: the numerics package loads Numba, which reading a profile
    # does not need.
    from fpttsim.numerics.formats import parse_format

    return parse_format(name)


def _check_format(value: str) -> str:
    try:
        return _parse(value).name
    except ValueError as exc:
        raise ValueError(f"{exc}.") from None


def is_fixed_point(name: str) -> bool:
    """Return True for a fixed-point format name.

    Parameters
    ----------
    name
        A valid format name, e.g. ``"fixed16.15"``.

    Returns
    -------
    bool
        True for fixed point; False for floats and the exact ``fp64``.
    """
    return _parse(name).kind == "fixed"


def default_overflow(name: str) -> Overflow:
    """The overflow mode a format uses when the profile gives none.

    Parameters
    ----------
    name
        A valid format name.

    Returns
    -------
    str
        The format's own default: ``"saturate"`` for fixed point, ``"inf"``
        for floats (to NaN where the format has no infinity, as fp8-e4m3),
        unless the name's flags (``-wrap``, ``-sat``) say otherwise.
    """
    return _parse(name).default_overflow


FormatName = Annotated[
    str,
    Strict(),
    AfterValidator(_check_format),
    WithJsonSchema(
        {
            "type": "string",
            "description": "A number format: fp64, fp32, tf32, bf16, fp16, "
            "fp8-e4m3, fp8-e5m2, a float e<E>m<M> with optional flags, or fixed "
            "point fixed<W>.<F> (optionally -shared, -wrap, -sat).",
            "examples": ["fp32", "bf16", "fp8-e4m3", "e5m10", "fixed16.15"],
        }
    ),
]


# --- arithmetic -------------------------------------------------------------------


class ResolvedFormat(NamedTuple):
    """How one quantity is held: format, rounding and overflow, all resolved."""

    format: str
    rounding: Rounding
    overflow: Overflow


class QuantityFormat(BaseModel):
    """The format of one quantity, with modes that differ from the defaults.

    In a profile this is either a format name (``weights: fixed8.7-shared``)
    or a mapping with any of the three keys
    (``accumulator: {format: fixed24.14, overflow: wrap}``); a key left out
    takes the value of ``arithmetic``.

    Parameters
    ----------
    format
        Format name; None for ``arithmetic.default``.
    rounding
        Rounding mode; None for ``arithmetic.rounding``.
    overflow
        Overflow mode; None for ``arithmetic.overflow``.
    """

    model_config = _SECTION

    format: FormatName | None = None
    rounding: Rounding | None = None
    overflow: Overflow | None = None


class QuantityFormats(BaseModel):
    """Formats of the quantities that do not use ``arithmetic.default``.

    The keys are the engine's stored quantities, in
    :data:`fpttsim.numerics.codes.QUANTITY_NAMES`.
    """

    model_config = _SECTION

    # A bare name becomes {format: name} before validation (below); the name
    # stays in the annotation so that the JSON Schema offers both forms.
    weights: QuantityFormat | FormatName | None = None
    state: QuantityFormat | FormatName | None = None
    input: QuantityFormat | FormatName | None = None
    activation: QuantityFormat | FormatName | None = None
    instantaneous_error: QuantityFormat | FormatName | None = None
    error: QuantityFormat | FormatName | None = None
    jacobian: QuantityFormat | FormatName | None = None
    jacobian_product: QuantityFormat | FormatName | None = None
    gradient: QuantityFormat | FormatName | None = None
    optimizer_state: QuantityFormat | FormatName | None = None
    product: QuantityFormat | FormatName | None = None
    accumulator: QuantityFormat | FormatName | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _name_or_mapping(cls, value: Any) -> Any:
        # A bare name is short for {format: name}; it is checked here so that
        # the error names the quantity's own key.
        if isinstance(value, str):
            return {"format": _check_format(value)}
        if value is None or isinstance(value, (dict, QuantityFormat)):
            return value
        raise ValueError(
            f"expected a format name such as 'fp16' or a mapping such as "
            f"{{format: fixed24.14, rounding: toward-zero, overflow: wrap}}, "
            f"got {value!r} ({type(value).__name__})."
        )


class ArithmeticConfig(BaseModel):
    """Number formats of stored values and arithmetic results.

    Parameters
    ----------
    default
        Format of every quantity not listed in ``formats``.
    rounding
        Rounding mode of every quantity that does not give its own.
    overflow
        Overflow mode of every quantity that does not give its own; None for
        each format's own default (``inf`` for floats, ``saturate`` for fixed
        point). ``wrap`` is for fixed point only, ``inf`` for floats only.
    formats
        Per-quantity formats and modes.
    """

    model_config = _SECTION

    default: FormatName = "fp64"
    rounding: Rounding = "nearest-even"
    overflow: Overflow | None = None
    formats: QuantityFormats = QuantityFormats()

    def format_of(self, quantity: str) -> ResolvedFormat:
        """Return the format, rounding and overflow ``quantity`` is held in.

        Parameters
        ----------
        quantity
            One of :data:`fpttsim.numerics.codes.QUANTITY_NAMES`.

        Returns
        -------
        ResolvedFormat
            ``(format, rounding, overflow)`` with every default applied.

        Raises
        ------
        ValueError
            When ``quantity`` is not a quantity name.
        """
        if quantity not in QUANTITY_NAMES:
            close = difflib.get_close_matches(quantity, QUANTITY_NAMES, n=1)
            guess = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown quantity {quantity!r}.{guess} Quantities: "
                f"{', '.join(QUANTITY_NAMES)}."
            )
        entry = getattr(self.formats, quantity) or QuantityFormat()
        name = entry.format or self.default
        overflow = entry.overflow or self.overflow or default_overflow(name)
        return ResolvedFormat(name, entry.rounding or self.rounding, overflow)

    @model_validator(mode="after")
    def _overflow_fits_format(self) -> ArithmeticConfig:
        for quantity in QUANTITY_NAMES:
            name, _, overflow = self.format_of(quantity)
            fixed = is_fixed_point(name)
            if overflow == ("inf" if fixed else "wrap"):
                entry = getattr(self.formats, quantity) or QuantityFormat()
                raise _overflow_mismatch(quantity, entry, name, overflow, fixed)
        return self


def _overflow_mismatch(
    quantity: str, entry: QuantityFormat, name: str, overflow: str, fixed: bool
) -> Exception:
    """The error of a mode the format lacks, blaming the key that set the mode.

    When the mode came from ``arithmetic.overflow`` but the format from the
    quantity's own entry, the entry is blamed: that is where the two meet.
    """
    key, subject, origin = f"formats.{quantity}.overflow", quantity, ""
    if entry.overflow is None and entry.format is not None:
        key, origin = f"formats.{quantity}", " (from arithmetic.overflow)"
    elif entry.overflow is None:
        key, subject = "overflow", "arithmetic.default"
    if fixed:
        meant, kind, options, own = (
            "floating-point",
            "fixed-point",
            "'wrap'",
            "saturate",
        )
    else:
        meant, kind, options, own = "fixed-point", "floating-point", "'inf'", "inf"
    return relation_error(
        key,
        f"overflow {overflow!r}{origin} is for {meant} formats only, but "
        f"{subject} is {name!r}, a {kind} format. Use 'saturate' or {options}, "
        f"or null for the format's own default ({own!r}).",
    )


# --- memory, compute, energy ------------------------------------------------------

_UNCONSTRAINED = 2**40  # 1 TiB: more than any simulated network needs


class MemoryConfig(BaseModel):
    """Memory available to learning, in bytes.

    Parameters
    ----------
    working_bytes
        Memory for weights, state, errors, the Jacobian product, gradients
        and optimizer state.
    replay_bytes
        Storage for the replay buffer of inputs and targets.
    replay_memory
        Name of the memory the replay buffer lives in (``sram``, ``flash``,
        ``dram``, ...).
    """

    model_config = _SECTION

    working_bytes: Annotated[Int, Field(gt=0)]
    replay_bytes: Annotated[Int, Field(ge=0)]
    replay_memory: Annotated[Text, Field(min_length=1)]


class ComputeConfig(BaseModel):
    """Arithmetic throughput.

    Parameters
    ----------
    ops_per_second
        Sustained arithmetic operations (adds and multiplies) per second.
    """

    model_config = _SECTION

    ops_per_second: Annotated[Float, Field(gt=0)]


class EnergyConfig(BaseModel):
    """Energy per operation and per byte moved, in picojoules.

    Parameters
    ----------
    add_pj
        One addition.
    mul_pj
        One multiplication.
    working_access_pj_per_byte
        Reading or writing one byte of working memory.
    replay_access_pj_per_byte
        Reading or writing one byte of the replay buffer's memory.
    """

    model_config = _SECTION

    add_pj: Annotated[Float, Field(ge=0)]
    mul_pj: Annotated[Float, Field(ge=0)]
    working_access_pj_per_byte: Annotated[Float, Field(ge=0)]
    replay_access_pj_per_byte: Annotated[Float, Field(ge=0)]


# The reference's figures; hardware_profiles/fp64-reference.yaml gives their
# sources, and a test checks that the two agree.
REFERENCE_MEMORY = MemoryConfig(
    working_bytes=_UNCONSTRAINED,
    replay_bytes=_UNCONSTRAINED,
    replay_memory="unconstrained",
)
REFERENCE_COMPUTE = ComputeConfig(ops_per_second=1.0e12)
REFERENCE_ENERGY = EnergyConfig(
    add_pj=2.0,
    mul_pj=18.0,
    working_access_pj_per_byte=12.5,
    replay_access_pj_per_byte=162.5,
)


class Profile(BaseModel):
    """A hardware profile.

    Parameters
    ----------
    name
        The profile's name.
    description
        Free text: the device and where its numbers come from.
    device
        Free text: the part or class of part the figures describe.
    arithmetic
        Number formats, rounding and overflow.
    memory
        Memory budgets; left out, nothing is constrained.
    compute
        Arithmetic throughput.
    energy
        Energy per operation and per byte.

    Examples
    --------
    >>> import fpttsim
    >>> profile = fpttsim.load_profile("cortex-m4f")
    >>> profile.memory.working_bytes, profile.format_of("error").format
    (196608, 'fp32')
    """

    model_config = _SECTION

    name: Annotated[str, Strict(), Field(min_length=1)]
    description: Text = ""
    device: Text = ""
    arithmetic: ArithmeticConfig = ArithmeticConfig()
    memory: MemoryConfig = REFERENCE_MEMORY
    compute: ComputeConfig = REFERENCE_COMPUTE
    energy: EnergyConfig = REFERENCE_ENERGY

    def format_of(self, quantity: str) -> ResolvedFormat:
        """Return the format, rounding and overflow ``quantity`` is held in.

        Parameters
        ----------
        quantity
            One of :data:`fpttsim.numerics.codes.QUANTITY_NAMES`.

        Returns
        -------
        ResolvedFormat
            ``(format, rounding, overflow)`` with every default applied.

        Raises
        ------
        ValueError
            When ``quantity`` is not a quantity name.
        """
        return self.arithmetic.format_of(quantity)

    def with_formats(self, formats: QuantityFormats) -> Profile:
        """Return this profile with some quantities held in other formats.

        A design choice layered on a device (mixed precision: e.g. FPTT's
        errors and Jacobian product wider than the rest); every other figure
        stays the profile's.

        Parameters
        ----------
        formats
            The quantities to change; those left None keep their format.

        Returns
        -------
        Profile
            The changed profile, named after what changed (this profile
            itself when nothing does).

        Examples
        --------
        >>> from fpttsim.config import load_profile
        >>> from fpttsim.config.profile import QuantityFormats
        >>> wide = QuantityFormats(error="fp32", jacobian_product="fp32")
        >>> mixed = load_profile("bf16-systolic").with_formats(wide)
        >>> mixed.name
        'bf16-systolic + error: fp32, jacobian_product: fp32'
        >>> mixed.format_of("error").format, mixed.format_of("state").format
        ('fp32', 'bf16')
        """
        changed = formats.model_dump(exclude_none=True)
        if not changed:
            return self
        merged = {
            **self.arithmetic.formats.model_dump(exclude_none=True),
            **changed,
        }
        arithmetic = self.arithmetic.model_copy(
            update={"formats": QuantityFormats(**merged)}
        )
        described = ", ".join(
            f"{quantity}: {entry.get('format') or self.arithmetic.default}"
            for quantity, entry in changed.items()
        )
        return self.model_copy(
            update={"name": f"{self.name} + {described}", "arithmetic": arithmetic}
        )

    def quantities(self) -> tuple[ResolvedFormat, ...]:
        """Return the resolved format of every quantity, in the engine's order.

        Returns
        -------
        tuple of ResolvedFormat
            ``(format, rounding, overflow)`` of each quantity, ordered as
            :data:`fpttsim.numerics.codes.QUANTITY_NAMES`.
        """
        return tuple(self.format_of(name) for name in QUANTITY_NAMES)

    def to_json_dict(self) -> dict[str, Any]:
        """Return the profile as JSON-ready data, with the resolved formats.

        Returns
        -------
        dict
            ``model_dump(mode="json")`` plus ``"quantities"``: each quantity's
            ``{"format", "rounding", "overflow"}``.
        """
        data = self.model_dump(mode="json")
        resolved = zip(QUANTITY_NAMES, self.quantities(), strict=True)
        data["quantities"] = {name: entry._asdict() for name, entry in resolved}
        return data
