"""Number formats a simulated device stores values in, and their names.

A format is parsed from a short name (:func:`parse_format`) into a
:class:`NumberFormat`, whose :meth:`NumberFormat.row` packs it, with a rounding
and an overflow mode, into the float64 row compiled kernels read
(:mod:`.codes`).

Format names
------------
Names are case-insensitive::

    name      := named [float-flags] | "e" E "m" M [float-flags]
               | "fixed" W "." F [fixed-flags]
    float-flags := ("-nosub" | "-fn" | "-sat")...    each at most once
    fixed-flags := ("-shared" | "-wrap")...           each at most once

Named formats: ``fp64`` (float64 itself: nothing is rounded, takes no
flags), ``fp32`` = e8m23, ``tf32`` = e8m10, ``bf16`` = e8m7, ``fp16`` =
e5m10, ``fp8-e4m3`` = e4m3-fn (OCP E4M3, ml_dtypes' ``float8_e4m3fn``) and
``fp8-e5m2`` = e5m2.

``eEmM`` is a binary float with ``E`` exponent bits (2 to 11), ``M`` stored
fraction bits (0 to 52), bias ``2**(E-1) - 1`` and IEEE 754's layout: the
all-ones exponent holds the infinities and NaNs, and subnormal numbers exist.
The flags change it:

- ``-nosub``: no subnormal numbers; results below the smallest normal number
  become a zero of the same sign.
- ``-fn``: finite, OCP's layout: no infinities; the all-ones exponent holds
  normal numbers except the all-ones fraction, which is NaN (so e4m3-fn
  reaches 448). Not allowed with 11 exponent bits, whose largest value would
  exceed float64's.
- ``-sat``: overflow saturates by default (see :attr:`default_overflow`).

``fixedW.F`` is two's-complement fixed point: ``W`` bits in total (2 to 64),
``F`` of them fraction bits (0 to 64; ``F >= W`` gives a format whose values
are all below 1 in magnitude), so the values are the integers
``-2**(W-1) .. 2**(W-1) - 1`` times ``2**-F``. Its flags:

- ``-shared``: a block of values shares one power-of-two exponent chosen
  from the block (:func:`fpttsim.numerics.quantize_block`); ``F`` is then the
  finest grid a block may use.
- ``-wrap``: overflow wraps around by default instead of saturating.

Not supported
-------------
Fixed point with more than 53 bits cannot hold every value of its grid in a
float64: values are rounded to the grid in exact integer arithmetic, then to
the nearest float64, which may lie off the grid (and the largest value
``2**(W-1) - 1`` becomes ``2**(W-1)``). Floats without NaN, or with a bias
other than ``2**(E-1) - 1``, have no name.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass

import numpy as np

from fpttsim.numerics import codes

KINDS = ("exact", "float", "fixed")

# name -> (exponent bits, fraction bits, flags); fp64 is the exact kind
_NAMED_FLOATS = {
    "fp32": (8, 23, ()),
    "tf32": (8, 10, ()),
    "bf16": (8, 7, ()),
    "fp16": (5, 10, ()),
    "fp8-e4m3": (4, 3, ("fn",)),
    "fp8-e5m2": (5, 2, ()),
}
NAMED_FORMATS = ("fp64", *_NAMED_FLOATS)

_FLOAT_FLAGS = ("nosub", "fn", "sat")
_FIXED_FLAGS = ("shared", "wrap")

GRAMMAR = (
    'a named format, "eEmM[-nosub][-fn][-sat]" (E = 2..11 exponent bits, '
    'M = 0..52 fraction bits), or "fixedW.F[-shared][-wrap]" (W = 2..64 '
    "total bits, F = 0..64 fraction bits); named formats take the float "
    'flags too, e.g. "bf16-nosub"'
)


@dataclass(frozen=True)
class NumberFormat:
    """A number format: float64 itself, a binary float, or fixed point.

    Build one with :func:`parse_format`; the constructor checks the fields
    but derives nothing from the name.

    Parameters
    ----------
    name
        The name it was parsed from.
    kind
        ``"exact"`` (float64, nothing rounded), ``"float"`` or ``"fixed"``.
    exponent_bits
        Float: width of the exponent field (11 for exact, 0 for fixed).
    fraction_bits
        Float: stored fraction bits. Fixed: bits after the binary point.
    subnormals
        Float: whether subnormal numbers exist.
    infinities
        Float: whether the format has infinities (IEEE 754's layout); without
        them it has OCP's finite layout (see the module docstring).
    has_nan
        Whether the format can hold NaN (floats: yes; fixed point: no).
    total_bits
        Bits per stored value: 64 for exact, ``1 + E + M`` for floats, ``W``
        for fixed point.
    shared_exponent
        Fixed: whether a block of values shares one exponent.
    default_overflow
        The overflow mode used when none is given: ``"inf"`` for floats and
        exact, ``"saturate"`` for fixed point, unless the name says otherwise.
    """

    name: str
    kind: str
    exponent_bits: int = 0
    fraction_bits: int = 0
    subnormals: bool = True
    infinities: bool = True
    has_nan: bool = True
    total_bits: int = 64
    shared_exponent: bool = False
    default_overflow: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"NumberFormat kind must be one of {KINDS}, got {self.kind!r}"
            )
        if not self.default_overflow:
            default = "saturate" if self.kind == "fixed" else "inf"
            object.__setattr__(self, "default_overflow", default)
        _check_overflow_name(self, self.default_overflow, "default_overflow")
        if self.kind == "float":
            _check_float_fields(self)
        elif self.kind == "fixed":
            _check_fixed_fields(self)

    @property
    def bits(self) -> int:
        """Storage bits per value."""
        return self.total_bits

    @property
    def bias(self) -> int:
        """Float: the exponent bias ``2**(E-1) - 1``."""
        return 2 ** (self.exponent_bits - 1) - 1

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number (fixed: of the grid step)."""
        if self.kind == "fixed":
            return -self.fraction_bits
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest binade holding finite numbers."""
        if self.kind == "fixed":
            return self.total_bits - 2 - self.fraction_bits
        if not self.infinities and self.fraction_bits > 0:
            return self.bias + 1  # OCP: the all-ones exponent holds numbers
        return self.bias

    @property
    def max_finite(self) -> float:
        """The largest finite value."""
        if self.kind == "exact":
            return sys.float_info.max
        if self.kind == "fixed":
            # for W > 53 the float64 nearest to the largest value (Not supported)
            return math.ldexp(float(2 ** (self.total_bits - 1) - 1), self.emin)
        m = self.fraction_bits
        # the largest fraction field: all ones, or one less where that is NaN
        top = 2**m - 1 if self.infinities or m == 0 else 2**m - 2
        return math.ldexp(float(2**m + top), self.emax - m)

    @property
    def min_normal(self) -> float:
        """The smallest positive normal number (fixed: the grid step)."""
        return math.ldexp(1.0, self.emin)

    @property
    def smallest(self) -> float:
        """The smallest positive value."""
        if self.kind == "float" and self.subnormals:
            return math.ldexp(1.0, self.emin - self.fraction_bits)
        if self.kind == "exact":
            return math.ldexp(1.0, -1074)
        return self.min_normal

    def row(self, rounding: str = "nearest-even", overflow: str | None = None):
        """The format row compiled kernels read, for one rounding and overflow.

        Parameters
        ----------
        rounding
            One of :data:`.codes.ROUNDING_NAMES`.
        overflow
            One of :data:`.codes.OVERFLOW_NAMES`, or None for
            :attr:`default_overflow`. Floats cannot wrap; fixed point has no
            infinities.

        Returns
        -------
        numpy.ndarray
            Float64 array of length :data:`.codes.N_FIELDS`: KIND, ROUNDING,
            OVERFLOW, FRACTION_BITS, EMIN, MAX_FINITE, SUBNORMALS (0/1),
            INFINITIES (0/1), TOTAL_BITS, HAS_NAN (0/1). Exact: 52 fraction
            bits, EMIN -1022, float64's largest value.

        Raises
        ------
        ValueError
            For an unknown mode name, or a mode the format cannot use.
        """
        if rounding not in codes.ROUNDING_NAMES:
            raise ValueError(
                f"rounding must be one of {codes.ROUNDING_NAMES}, got {rounding!r}"
            )
        if overflow is None:
            overflow = self.default_overflow
        _check_overflow_name(self, overflow, "overflow")
        out = np.zeros(codes.N_FIELDS, dtype=np.float64)
        out[codes.KIND] = KINDS.index(self.kind)
        out[codes.ROUNDING] = codes.ROUNDING_NAMES.index(rounding)
        out[codes.OVERFLOW] = codes.OVERFLOW_NAMES.index(overflow)
        out[codes.FRACTION_BITS] = 52 if self.kind == "exact" else self.fraction_bits
        out[codes.EMIN] = -1022 if self.kind == "exact" else self.emin
        out[codes.MAX_FINITE] = self.max_finite
        out[codes.SUBNORMALS] = float(self.subnormals and self.kind != "fixed")
        out[codes.INFINITIES] = float(self.infinities and self.kind != "fixed")
        out[codes.TOTAL_BITS] = self.total_bits
        out[codes.HAS_NAN] = float(self.has_nan)
        return out


def _check_overflow_name(fmt: NumberFormat, overflow: str, what: str) -> None:
    """Raise unless ``overflow`` names a mode ``fmt`` can use."""
    if overflow not in codes.OVERFLOW_NAMES:
        raise ValueError(
            f"{what} must be one of {codes.OVERFLOW_NAMES} or None, got {overflow!r}"
        )
    if fmt.kind == "float" and overflow == "wrap":
        raise ValueError(
            f"{what} 'wrap' is for fixed point only; format {fmt.name!r} is a "
            "float: use 'inf' or 'saturate'"
        )
    if fmt.kind == "fixed" and overflow == "inf":
        raise ValueError(
            f"{what} 'inf' needs infinities; fixed-point format {fmt.name!r} has "
            "none: use 'saturate' or 'wrap'"
        )


def _check_float_fields(fmt: NumberFormat) -> None:
    e, m = fmt.exponent_bits, fmt.fraction_bits
    if not 2 <= e <= 11:
        raise ValueError(
            f"format {fmt.name!r}: exponent_bits must be 2..11 (float64 holds "
            f"at most 11), got {e}"
        )
    if not 0 <= m <= 52:
        raise ValueError(
            f"format {fmt.name!r}: fraction_bits must be 0..52 (float64 holds "
            f"at most 52), got {m}"
        )
    if e == 11 and not fmt.infinities:
        raise ValueError(
            f"format {fmt.name!r}: the finite layout (-fn) with 11 exponent bits "
            "has values beyond float64's largest; use 10 or fewer exponent bits"
        )
    if fmt.total_bits != 1 + e + m:
        raise ValueError(
            f"format {fmt.name!r}: total_bits must be 1 + {e} + {m} = {1 + e + m} "
            f"for a float, got {fmt.total_bits}"
        )
    if not fmt.has_nan or fmt.shared_exponent:
        raise ValueError(
            f"format {fmt.name!r}: floats have NaN and no shared exponent "
            f"(got has_nan={fmt.has_nan}, shared_exponent={fmt.shared_exponent})"
        )


def _check_fixed_fields(fmt: NumberFormat) -> None:
    w, f = fmt.total_bits, fmt.fraction_bits
    if not 2 <= w <= 64:
        raise ValueError(
            f"format {fmt.name!r}: total_bits of fixed point must be 2..64 "
            f"(int64 arithmetic), got {w}"
        )
    if not 0 <= f <= 64:
        raise ValueError(
            f"format {fmt.name!r}: fraction_bits of fixed point must be 0..64, got {f}"
        )
    if fmt.has_nan:
        raise ValueError(
            f"format {fmt.name!r}: fixed point cannot hold NaN; set has_nan=False"
        )


_FLOAT_RE = re.compile(r"e(\d+)m(\d+)")
_FIXED_RE = re.compile(r"fixed(\d+)\.(\d+)")


def parse_format(name: str) -> NumberFormat:
    """The number format a name describes (grammar in the module docstring).

    Parameters
    ----------
    name
        E.g. ``"bf16"``, ``"fp8-e4m3"``, ``"e5m10"``, ``"e4m3-nosub-sat"``,
        ``"fixed16.12"``, ``"fixed8.7-shared"``; case is ignored.

    Returns
    -------
    NumberFormat
        The format, with ``name`` as given (stripped, lower case).

    Raises
    ------
    ValueError
        If the name does not follow the grammar or is out of range; the
        message gives the grammar and the named formats.
    """
    if not isinstance(name, str):
        raise TypeError(
            f"format name must be a str, got {type(name).__name__}: {name!r}"
        )
    key = name.strip().lower()
    try:
        return _parse(key)
    except ValueError as err:
        raise ValueError(
            f"format name {name!r} is not valid: {err}. Expected {GRAMMAR}. "
            f"Named formats: {', '.join(NAMED_FORMATS)}"
        ) from None


def _parse(key: str) -> NumberFormat:
    if key == "fp64":
        return NumberFormat(key, "exact", exponent_bits=11, fraction_bits=52)
    for base, (e, m, flags) in _NAMED_FLOATS.items():
        if key == base or key.startswith(base + "-"):
            extra = _split_flags(key[len(base) :], _FLOAT_FLAGS)
            return _float(key, e, m, _merge(flags, extra))
    head, _, rest = key.partition("-")
    match = _FLOAT_RE.fullmatch(head)
    if match:
        e, m = int(match[1]), int(match[2])
        return _float(key, e, m, _split_flags("-" + rest if rest else "", _FLOAT_FLAGS))
    match = _FIXED_RE.fullmatch(head)
    if match:
        w, f = int(match[1]), int(match[2])
        flags = _split_flags("-" + rest if rest else "", _FIXED_FLAGS)
        return NumberFormat(
            key,
            "fixed",
            fraction_bits=f,
            subnormals=False,
            infinities=False,
            has_nan=False,
            total_bits=w,
            shared_exponent="shared" in flags,
            default_overflow="wrap" if "wrap" in flags else "saturate",
        )
    raise ValueError("unknown format")


def _split_flags(tail: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """The flags of ``"-a-b"``, each checked against ``allowed``."""
    if not tail:
        return ()
    flags = tuple(tail[1:].split("-"))
    for flag in flags:
        if flag not in allowed:
            raise ValueError(f"unknown flag {flag!r} (allowed here: {allowed})")
    return _merge((), flags)


def _merge(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """Flags of both, refusing a flag given twice."""
    out = list(first)
    for flag in second:
        if flag in out:
            raise ValueError(f"flag {flag!r} given twice or implied by the name")
        out.append(flag)
    return tuple(out)


def _float(key: str, e: int, m: int, flags: tuple[str, ...]) -> NumberFormat:
    return NumberFormat(
        key,
        "float",
        exponent_bits=e,
        fraction_bits=m,
        subnormals="nosub" not in flags,
        infinities="fn" not in flags,
        total_bits=1 + e + m,
        default_overflow="saturate" if "sat" in flags else "inf",
    )
