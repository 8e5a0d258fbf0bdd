"""Number formats and the arithmetic every kernel uses.

A format (:class:`NumberFormat`, from a name by :func:`parse_format`) reaches
compiled code as a float64 row (:mod:`.codes`); :func:`quantize_value` rounds
one value to it inside a kernel, :func:`quantize` and :func:`quantize_block`
round arrays from Python.
"""

from fpttsim.numerics._jit import kernel
from fpttsim.numerics.formats import NAMED_FORMATS, NumberFormat, parse_format
from fpttsim.numerics.quantize import quantize, quantize_block, quantize_value

__all__ = [
    "NAMED_FORMATS",
    "NumberFormat",
    "kernel",
    "parse_format",
    "quantize",
    "quantize_block",
    "quantize_value",
]
