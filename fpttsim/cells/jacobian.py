r"""Operations on a recurrent Jacobian ``J`` and the Jacobian product ``P``.

Three kinds of Jacobian, each held as a flat float64 array:

``COMPLEX_DIAGONAL`` (LRU)
    ``[Re lam, Im lam]``, size ``2N``; the state is ``[Re h, Im h]`` and
    ``J^T`` acts as multiplication by ``conj(lam)``.
``REAL_DIAGONAL``
    ``lam``, size ``N``.
``DENSE``
    ``J`` row-major, size ``N*N``, ``jac[i*N + j] = df_i/dh_j``.

The product ``P = J_0^T J_1^T ... J_{t-1}^T`` has the same kind and size as
``J``: a diagonal product stays diagonal. Kernels take the device's
arithmetic ``ar`` first: ``P`` is stored in the Jacobian product's format,
solves and ``P x`` give errors (the error format), ``J x`` gives sensitivities
(held like ``P``).

``J^{-T} x`` is computed one of two ways (the ``method`` of
:func:`inverse_transpose`): ``EXACT``, a division or an LU solve, or
``NEUMANN``, a truncated Neumann series that needs only products with ``J^T``.
"""

from __future__ import annotations

import numpy as np

from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, add, mac, mul, rnd
from fpttsim.numerics.codes import ERROR, JACOBIAN, JACOBIAN_PRODUCT
from fpttsim.numerics.vector import columns, vadd_to, vmac, vmac_to, vround

COMPLEX_DIAGONAL = 0
REAL_DIAGONAL = 1
DENSE = 2

# Methods of computing J^{-T} x
EXACT = 0
NEUMANN = 1


@kernel
def prod_init(kind, jac_prod):
    """``P = I``."""
    jac_prod[:] = 0.0
    if kind == COMPLEX_DIAGONAL:
        jac_prod[: jac_prod.shape[0] // 2] = 1.0
    elif kind == REAL_DIAGONAL:
        jac_prod[:] = 1.0
    else:
        n = int(np.sqrt(jac_prod.shape[0]) + 0.5)
        for k in range(n):
            jac_prod[k * n + k] = 1.0


@kernel
def prod_update(ar, kind, jac_prod, jac, work):
    """``P <- P J^T``; ``work`` is scratch of the size of ``P``."""
    if kind == COMPLEX_DIAGONAL:
        n = jac.shape[0] // 2
        for k in range(n):
            pr = jac_prod[k]
            pi = jac_prod[n + k]
            lr = jac[k]
            li = jac[n + k]
            jac_prod[k] = rnd(ar, JACOBIAN_PRODUCT, mac(ar, mul(ar, pr, lr), pi, li))
            jac_prod[n + k] = rnd(
                ar, JACOBIAN_PRODUCT, mac(ar, mul(ar, pi, lr), -pr, li)
            )
    elif kind == REAL_DIAGONAL:
        for k in range(jac.shape[0]):
            jac_prod[k] = rnd(ar, JACOBIAN_PRODUCT, mul(ar, jac_prod[k], jac[k]))
    else:
        n = int(np.sqrt(jac.shape[0]) + 0.5)
        # (P J^T)[i, j] = sum_k P[i, k] J[j, k], summed in order k; k outside
        # j ("axpy" order) lets the n sums' rounding chains overlap
        jac_t = columns(jac, 0, n, n)
        tmp = np.empty(n)
        work[:] = 0.0
        for i in range(n):
            row = work[i * n : (i + 1) * n]
            for k in range(n):
                vmac(ar, row, jac_t[k], jac_prod[i * n + k], 1.0, tmp)
        jac_prod[:] = work
        for i in range(n):
            vround(ar, JACOBIAN_PRODUCT, jac_prod[i * n : (i + 1) * n], tmp)


@kernel
def prod_apply(ar, kind, jac_prod, x, out):
    """``out = P x``, an error."""
    _apply(ar, kind, jac_prod, x, out, ERROR)


@kernel
def mul_vector(ar, kind, jac, x, out):
    """``out = J x`` (forward sensitivities, RTRL), held like ``P``."""
    _apply(ar, kind, jac, x, out, JACOBIAN_PRODUCT)


@kernel
def _apply(ar, kind, mat, x, out, quantity):
    """``out = M x`` for ``M`` of the given kind, rounded to ``quantity``."""
    if kind == COMPLEX_DIAGONAL:
        n = x.shape[0] // 2
        for k in range(n):
            mr = mat[k]
            mi = mat[n + k]
            out[k] = rnd(ar, quantity, mac(ar, mul(ar, mr, x[k]), -mi, x[n + k]))
            out[n + k] = rnd(ar, quantity, mac(ar, mul(ar, mr, x[n + k]), mi, x[k]))
    elif kind == REAL_DIAGONAL:
        for k in range(x.shape[0]):
            out[k] = rnd(ar, quantity, mul(ar, mat[k], x[k]))
    else:
        # column by column: each sum keeps its order, the chains overlap
        n = x.shape[0]
        mat_t = columns(mat, 0, n, n)
        tmp = np.empty(n)
        out[:] = 0.0
        for k in range(n):
            vmac(ar, out, mat_t[k], x[k], 1.0, tmp)
        vround(ar, quantity, out, tmp)


@kernel
def solve_transpose(ar, kind, jac, x, out, lu):
    """``out = J^{-T} x``; False (and ``out`` undefined) when ``J`` is singular.

    Dense Jacobians are factorised with partial pivoting in ``lu`` (scratch of
    size ``N*N``, entries held in the Jacobian's format); a zero pivot means
    ``J`` is singular.
    """
    if kind == COMPLEX_DIAGONAL:
        n = x.shape[0] // 2
        for k in range(n):
            lr = jac[k]
            li = jac[n + k]
            m2 = mac(ar, mul(ar, lr, lr), li, li)
            if m2 == 0.0:
                return False
            # x / conj(lam) = x lam / |lam|^2
            xr = x[k]
            xi = x[n + k]
            re = mac(ar, mul(ar, xr, lr), -xi, li)
            im = mac(ar, mul(ar, xr, li), xi, lr)
            out[k] = rnd(ar, ERROR, re / m2)
            out[n + k] = rnd(ar, ERROR, im / m2)
        return True
    if kind == REAL_DIAGONAL:
        for k in range(x.shape[0]):
            if jac[k] == 0.0:
                return False
            out[k] = rnd(ar, ERROR, x[k] / jac[k])
        return True
    return _solve_dense_transpose(ar, jac, x, out, lu)


@kernel
def _solve_dense_transpose(ar, jac, x, out, lu):
    n = x.shape[0]
    tmp = np.empty(n)
    for i in range(n):
        for j in range(n):
            lu[i * n + j] = jac[j * n + i]
        out[i] = x[i]

    # Gaussian elimination with partial pivoting on A = J^T
    for c in range(n):
        p = c
        best = abs(lu[c * n + c])
        for r in range(c + 1, n):
            if abs(lu[r * n + c]) > best:
                best = abs(lu[r * n + c])
                p = r
        if best == 0.0:
            return False
        if p != c:
            for j in range(n):
                lu[c * n + j], lu[p * n + j] = lu[p * n + j], lu[c * n + j]
            out[c], out[p] = out[p], out[c]
        pivot = lu[c * n + c]
        for r in range(c + 1, n):
            factor = rnd(ar, JACOBIAN, lu[r * n + c] / pivot)
            if factor != 0.0:
                row = lu[r * n + c + 1 : (r + 1) * n]
                pivot_row = lu[c * n + c + 1 : (c + 1) * n]
                vmac_to(ar, JACOBIAN, row, pivot_row, factor, -1.0, tmp)
                accumulate(ar, ERROR, out, r, -mul(ar, factor, out[c]))

    # back substitution
    for c in range(n - 1, -1, -1):
        s = out[c]
        for j in range(c + 1, n):
            s = add(ar, s, -mul(ar, lu[c * n + j], out[j]))
        out[c] = rnd(ar, ERROR, s / lu[c * n + c])
    return True


@kernel
def inverse_transpose(ar, kind, jac, x, out, lu, method, terms):
    r"""``out ~ J^{-T} x`` by ``method``; False for a singular ``J`` (EXACT).

    ``EXACT`` is :func:`solve_transpose` (the same bits). ``NEUMANN`` sums
    ``terms + 1`` terms of the Neumann series of ``J^{-T} = (I - (I - J^T))^{-1}``,

        out = sum_{i=0}^{terms} (I - J^T)^i x,

    as the iteration ``y_0 = x``, ``y_{k+1} = x + (y_k - J^T y_k)``, ``terms``
    times; ``terms = 1`` gives ``(2 I - J^T) x``. Subtracting the full series
    from the truncated one leaves the bias

        J^{-T} x - out = (I - J^T)^{terms+1} J^{-T} x,

    which vanishes as ``terms`` grows if and only if the spectral radius of
    ``I - J`` is below 1 (and grows geometrically otherwise). The method
    therefore suits Jacobians near the identity, as in near-continuous-time
    cells: diagonal cells and the LRU with ``|lam|`` near 1 and a small phase,
    the GRU whose update gates keep most of the state (``z`` near 1). It
    never fails and ``lu`` is not touched.

    Cost: ``terms`` products with ``J^T``, ``2 terms N^2`` operations for a
    dense ``J`` against the LU's ``(2/3) N^3``; ``O(terms N)`` for a diagonal
    ``J``. Memory: for a dense ``J`` one vector of ``N`` beside ``out``,
    allocated here with the vector operations' lane scratch (a diagonal ``J``
    needs none: each unit iterates on its own). Each iterate is stored as an
    error; ``y_k - J^T y_k`` is one running sum in the accumulator, so that
    the cancellation of two nearly equal terms (``J`` near ``I``) loses no
    bits to an intermediate store. For a dense ``J``, ``out`` must not share
    memory with ``x``, which every iteration reads.
    """
    if method == EXACT:
        return solve_transpose(ar, kind, jac, x, out, lu)
    if kind == COMPLEX_DIAGONAL:
        n = x.shape[0] // 2
        for k in range(n):
            lr, li = jac[k], jac[n + k]
            xr, xi = x[k], x[n + k]
            yr, yi = xr, xi
            for _ in range(terms):
                # y - conj(lam) y = (yr - lr yr - li yi) + i (yi - lr yi + li yr)
                sr = mac(ar, mac(ar, yr, -lr, yr), -li, yi)
                si = mac(ar, mac(ar, yi, -lr, yi), li, yr)
                yr = rnd(ar, ERROR, add(ar, xr, sr))
                yi = rnd(ar, ERROR, add(ar, xi, si))
            out[k] = yr
            out[n + k] = yi
        return True
    if kind == REAL_DIAGONAL:
        for k in range(x.shape[0]):
            y = x[k]
            for _ in range(terms):
                y = rnd(ar, ERROR, add(ar, x[k], mac(ar, y, -jac[k], y)))
            out[k] = y
        return True

    # (J^T y)_j = sum_i J[i, j] y_i: row i of J scales y_i, read at unit stride
    n = x.shape[0]
    s = np.empty(n)
    tmp = np.empty(n)
    out[:] = x
    for _ in range(terms):
        s[:] = out
        for i in range(n):
            vmac(ar, s, jac[i * n : (i + 1) * n], out[i], -1.0, tmp)
        vadd_to(ar, ERROR, s, x, tmp)
        out[:] = s
    return True
