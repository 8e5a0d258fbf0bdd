"""Number formats and the arithmetic every kernel uses.

Only float64 exists in this version; reduced-precision formats plug into the
same kernels through this package.
"""

from fpttsim.numerics._jit import kernel

__all__ = ["kernel"]
