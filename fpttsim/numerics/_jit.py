"""The one decorator every compiled kernel of fpttsim uses."""

from __future__ import annotations

import numba

# cache=True: workers and later runs load compiled code from disk instead of
# compiling again. No fastmath: it reorders sums, and the order of every
# accumulation is part of what fpttsim simulates. error_model="numpy": a
# division by zero gives inf or NaN, which the kernels detect and report
# themselves, instead of raising from compiled code without context.
kernel = numba.njit(cache=True, nogil=True, error_model="numpy")
