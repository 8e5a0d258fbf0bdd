r"""The device's arithmetic: every stored value and every result, rounded.

A profile gives each stored quantity (weights, state, errors, the Jacobian
product, ...) a number format, and gives products and running sums formats of
their own. Compiled kernels receive them as one float64 table ``ar``: row
``q`` holds quantity ``q``'s format row (:mod:`.codes`) followed by its event
counters. One array, not a tuple of two: taking an array out of a tuple costs
an atomic reference-count update, and rounding happens at every operation.
Columns after the counters hold constants of the common case (see
:func:`rnd`).
The model of a device, applied by every kernel:

- a multiplication ``a * b`` is rounded to the ``product`` format (:func:`mul`);
- each addition of a running sum is rounded to the ``accumulator`` format
  (:func:`add`), so a dot product is a chain of rounded multiply-adds in
  index order, as a sequential accumulator computes it;
- a value written to a quantity is rounded to that quantity's format
  (:func:`rnd`);
- functions with no multiply-add form (``exp``, ``tanh``, ``erf``, ``sqrt``,
  a division) are evaluated in float64 from rounded operands, and their result
  is rounded to the format of the quantity it becomes, as a lookup table or a
  correctly rounded unit would give.

With the exact format (``fp64``) for every quantity nothing is rounded and
the kernels compute what float64 code computes, to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fpttsim.numerics import codes
from fpttsim.numerics._jit import kernel
from fpttsim.numerics.formats import NumberFormat, parse_format
from fpttsim.numerics.quantize import (
    _ABS,
    _SIGN,
    _bits_float,
    _float_bits,
    _round_value,
    quantize,
    quantize_block,
)

# Columns of the table after the format row and the counters: how rnd takes
# the common case, and that case's constants, computed once per format. Integer
# constants are stored as the float64 with the same bits, so that reading one
# is a register move rather than a conversion.
_FAST = codes.N_FIELDS + codes.N_EVENTS
_MODE = _FAST  # one of the modes below
_A = _FAST + 1  # float: dropped bits | fixed: 2^F
_B = _FAST + 2  # float: (1 << (dropped - 1)) - 1 | fixed: 2^-F
_C = _FAST + 3  # float: bits of the smallest normal | fixed: 2^(W-1)
_D = _FAST + 4  # float: bits of the largest value that rounds to a finite one
N_COLUMNS = _FAST + 5

_EXACT_MODE = 0  # nothing to do
_NEAREST_FLOAT = 1  # nearest-even on the float64 bits
_FIXED_NEAREST, _FIXED_DOWN, _FIXED_TOWARD_ZERO, _FIXED_UP = 2, 3, 4, 5
_FULL = 6  # always the full rounding (stochastic, or a case not sped up)


@kernel
def rnd(ar, quantity, x):
    """``x`` rounded to ``quantity``'s format; its events counted.

    ``ar`` is None for float64 everywhere: Numba then compiles every kernel
    without a trace of rounding (the branch is pruned by type), which keeps
    the reference path as fast as plain float64 code. Otherwise the common
    case (a normal result of a float, an in-range nonzero result of a fixed
    point format) takes a few operations, and every case with an event
    (underflow, overflow, flush to zero, NaN, infinity) or stochastic
    rounding goes to the full rounding of :mod:`.quantize`.
    """
    if ar is None:
        return x
    mode = ar[quantity, _MODE]
    if mode == _EXACT_MODE:
        return x
    if mode == _NEAREST_FLOAT:
        bits = _float_bits(x)
        magnitude = bits & _ABS
        if magnitude == 0:
            return x
        if _float_bits(ar[quantity, _C]) <= magnitude <= _float_bits(ar[quantity, _D]):
            dropped = _float_bits(ar[quantity, _A])
            half = _float_bits(ar[quantity, _B])
            kept = (magnitude + half + ((magnitude >> dropped) & 1)) >> dropped
            return _bits_float((kept << dropped) | (bits & _SIGN))
    elif mode != _FULL:
        y = x * ar[quantity, _A]  # exact: a power of two
        if mode == _FIXED_NEAREST:
            k = np.rint(y)
        elif mode == _FIXED_DOWN:
            k = np.floor(y)
        elif mode == _FIXED_TOWARD_ZERO:
            k = np.trunc(y)
        else:
            k = np.ceil(y)
        limit = ar[quantity, _C]
        if -limit <= k < limit and (k != 0.0 or x == 0.0):
            return k * ar[quantity, _B] + 0.0  # a fixed-point zero has no sign
    return _round(ar, quantity, x)


def _fast_columns(row: np.ndarray) -> np.ndarray:
    """The common-case columns of the table for one format row."""
    out = np.zeros(N_COLUMNS - _FAST)
    kind = row[codes.KIND]
    rounding = row[codes.ROUNDING]
    as_float = np.array([0], dtype=np.int64).view(np.float64)

    def bits(n: int) -> float:
        as_float.view(np.int64)[0] = n
        return float(as_float[0])

    if kind == codes.EXACT:
        out[0] = _EXACT_MODE
    elif kind == codes.FLOAT and rounding == codes.NEAREST_EVEN:
        dropped = 52 - int(row[codes.FRACTION_BITS])
        if dropped == 0:
            out[0] = _FULL
            return out
        out[0] = _NEAREST_FLOAT
        out[1] = bits(dropped)
        out[2] = bits((1 << (dropped - 1)) - 1)
        out[3] = bits((int(row[codes.EMIN]) + 1023) << 52)
        # below largest + half an ulp nearest-even rounds to at most largest;
        # at the tie it rounds up (largest has an odd significand)
        largest = int(np.float64(row[codes.MAX_FINITE]).view(np.int64))
        out[4] = bits(largest + (1 << (dropped - 1)) - 1)
    elif kind == codes.FIXED and rounding != codes.STOCHASTIC:
        out[0] = {
            codes.NEAREST_EVEN: _FIXED_NEAREST,
            codes.DOWN: _FIXED_DOWN,
            codes.TOWARD_ZERO: _FIXED_TOWARD_ZERO,
            codes.UP: _FIXED_UP,
        }[int(rounding)]
        frac = int(row[codes.FRACTION_BITS])
        out[1] = 2.0**frac
        out[2] = 2.0**-frac
        out[3] = 2.0 ** (int(row[codes.TOTAL_BITS]) - 1)
    else:
        out[0] = _FULL
    return out


@kernel
def _round(ar, quantity, x):
    row = ar[quantity, : codes.N_FIELDS]
    # numba's generator, seeded per window by seed_stochastic_rounding
    u = np.random.random() if row[codes.ROUNDING] == codes.STOCHASTIC else 0.0
    y, events = _round_value(x, row, u)
    if events:
        for code in range(codes.N_EVENTS):
            if events & (1 << code):
                ar[quantity, codes.N_FIELDS + code] += 1.0
    return y


@kernel
def mul(ar, a, b):
    """``a * b`` rounded to the product format."""
    return rnd(ar, codes.PRODUCT, a * b)


@kernel
def add(ar, s, p):
    """``s + p`` rounded to the accumulator format."""
    return rnd(ar, codes.ACCUMULATOR, s + p)


@kernel
def mac(ar, s, a, b):
    """One multiply-accumulate step, ``s + a * b``, each operation rounded."""
    return add(ar, s, mul(ar, a, b))


@kernel
def accumulate(ar, quantity, buf, i, term):
    """``buf[i] += term``: the sum rounded as an accumulator, stored as
    ``quantity``.
    """  # noqa: D205
    buf[i] = rnd(ar, quantity, add(ar, buf[i], term))


@kernel
def seed_stochastic_rounding(seed):
    """Seed the generator stochastic rounding draws from in compiled code."""
    np.random.seed(seed)


class Arithmetic:
    """Formats of every quantity, and the events counted while rounding.

    Parameters
    ----------
    formats
        One ``(format, rounding, overflow)`` per quantity, in the order of
        :data:`.codes.QUANTITY_NAMES`; a format is a name or a
        :class:`NumberFormat`, overflow None means the format's default.
    seed
        Seed of stochastic rounding, in Python and in compiled code.
    """

    def __init__(self, formats: Sequence[tuple], seed: int = 0) -> None:
        if len(formats) != codes.N_QUANTITIES:
            raise ValueError(
                f"expected {codes.N_QUANTITIES} formats, one per quantity "
                f"({', '.join(codes.QUANTITY_NAMES)}), got {len(formats)}"
            )
        self.formats: list[NumberFormat] = []
        self.table = np.zeros((codes.N_QUANTITIES, N_COLUMNS))
        for q, (fmt, rounding, overflow) in enumerate(formats):
            fmt = fmt if isinstance(fmt, NumberFormat) else parse_format(fmt)
            self.formats.append(fmt)
            row = fmt.row(rounding, overflow)
            self.table[q, : codes.N_FIELDS] = row
            self.table[q, _FAST:] = _fast_columns(row)
        kinds = self.rows[:, codes.KIND]
        self.exact = bool(np.all(kinds == codes.EXACT))
        self.stochastic = bool(np.any(self.rows[:, codes.ROUNDING] == codes.STOCHASTIC))
        self.rng = np.random.default_rng([seed, 3])

    @property
    def rows(self) -> np.ndarray:
        """Format rows, one per quantity (a view of the table)."""
        return self.table[:, : codes.N_FIELDS]

    @property
    def counts(self) -> np.ndarray:
        """Event counts, ``(quantity, event)``, as integers (a copy)."""
        return self.table[:, codes.N_FIELDS : _FAST].astype(np.int64)

    @classmethod
    def reference(cls) -> Arithmetic:
        """Float64 everywhere: nothing is rounded."""
        return cls([("fp64", "nearest-even", None)] * codes.N_QUANTITIES)

    @classmethod
    def from_profile(cls, profile, seed: int = 0) -> Arithmetic:
        """The arithmetic a :class:`fpttsim.config.Profile` describes."""
        return cls(profile.quantities(), seed)

    @property
    def ar(self) -> np.ndarray | None:
        """What compiled kernels take: the table, or None if exact."""
        return None if self.exact else self.table

    def round(self, quantity: int, values: np.ndarray) -> np.ndarray:
        """``values`` stored as ``quantity``: rounded, events counted."""
        values = np.asarray(values, dtype=np.float64)
        row = self.rows[quantity]
        if row[codes.KIND] == codes.EXACT:
            return values
        counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
        out = quantize(
            values,
            self.formats[quantity],
            rounding=codes.ROUNDING_NAMES[int(row[codes.ROUNDING])],
            overflow=codes.OVERFLOW_NAMES[int(row[codes.OVERFLOW])],
            rng=self.rng,
            counts=counts,
        )
        self.table[quantity, codes.N_FIELDS : _FAST] += counts
        return out

    def round_blocks(
        self, quantity: int, values: np.ndarray, blocks: Sequence[slice]
    ) -> np.ndarray:
        """``values`` with each block stored as ``quantity``; the rest as is.

        A format with a shared exponent (weights on Loihi-style chips) picks
        one exponent per block (per parameter array); other formats round
        each value alone.
        """
        fmt = self.formats[quantity]
        out = np.array(values, dtype=np.float64)
        if self.rows[quantity, codes.KIND] == codes.EXACT:
            return out
        row = self.rows[quantity]
        for block in blocks:
            if not fmt.shared_exponent:
                out[block] = self.round(quantity, out[block])
                continue
            counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
            out[block], _ = quantize_block(
                out[block],
                fmt,
                rounding=codes.ROUNDING_NAMES[int(row[codes.ROUNDING])],
                overflow=codes.OVERFLOW_NAMES[int(row[codes.OVERFLOW])],
                rng=self.rng,
                counts=counts,
            )
            self.table[quantity, codes.N_FIELDS : _FAST] += counts
        return out

    def fresh(self) -> Arithmetic:
        """The same formats with counters of their own (for evaluation)."""
        twin = object.__new__(Arithmetic)
        twin.__dict__.update(self.__dict__)
        twin.table = self.table.copy()
        twin.reset_counts()
        twin.rng = np.random.default_rng(self.rng.integers(2**63))
        return twin

    def total_events(self) -> int:
        """All events counted so far (subnormal results included)."""
        return int(self.counts.sum())

    def begin_window(self) -> None:
        """Reseed compiled code's stochastic rounding from this object's seed.

        Called before each window's kernels, so that runs are reproducible
        whatever else used numba's generator in between.
        """
        if self.stochastic:
            seed_stochastic_rounding(int(self.rng.integers(2**31)))

    def events(self) -> dict[str, dict[str, int]]:
        """Nonzero event counts, by quantity and event name."""
        out: dict[str, dict[str, int]] = {}
        for q, name in enumerate(codes.QUANTITY_NAMES):
            row = {
                codes.EVENT_NAMES[e]: int(n) for e, n in enumerate(self.counts[q]) if n
            }
            if row:
                out[name] = row
        return out

    def reset_counts(self) -> None:
        """Start counting events from zero."""
        self.table[:, codes.N_FIELDS : _FAST] = 0.0
