r"""Gated recurrent unit (Cho et al., 2014), the hardest case for FPTT.

With ``N`` units and input ``v`` of size ``I``, ``sigma`` the logistic::

    z   = sigma(Wz h_{t-1} + Uz v_t + bz)           update gate
    r   = sigma(Wr h_{t-1} + Ur v_t + br)           reset gate
    n   = tanh(Wn (r * h_{t-1}) + Un v_t + bn)      candidate
    h_t = (1 - z) * n + z * h_{t-1}

Its Jacobian is dense and depends on the data; fpttsim forms it from ``N``
transpose-Jacobian products (:func:`vjp`), which keeps one derivation of the
cell in the code.

Parameter layout in ``theta``::

    Wz, Wr, Wn (N, N each) | Uz, Ur, Un (N, I each) | bz, br, bn (N each)

Kernels take the device's arithmetic ``ar`` first; the gates and the
candidate are held in the activations' format, the errors on them in the
error format.
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.cells._init import orthogonal_with_spectrum
from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, add, mac, mul, rnd
from fpttsim.numerics.codes import (
    ACTIVATION,
    ERROR,
    GRADIENT,
    INSTANT_ERROR,
    JACOBIAN,
    STATE,
)
from fpttsim.numerics.vector import (
    columns,
    vadd_to,
    vmac,
    vmac_to,
    vmul,
    vround,
)

# Every parameter is held by the device as it is.
LEARNER_COORDINATES = ()


def parameter_shapes(n: int, i: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the cell's parameters, in storage order."""
    return (
        [(name, (n, n)) for name in ("Wz", "Wr", "Wn")]
        + [(name, (n, i)) for name in ("Uz", "Ur", "Un")]
        + [(name, (n,)) for name in ("bz", "br", "bn")]
    )


def state_size(n: int) -> int:
    """One real number per unit."""
    return n


def initialise(
    rng: np.random.Generator,
    n: int,
    i: int,
    r_min: float,
    r_max: float,
    max_phase: float,
) -> list[np.ndarray]:
    """Update gates open to retain a fraction in ``[r_min, r_max]`` per step.

    ``bz = logit(rho)`` with ``rho`` uniform in ``[r_min, r_max]`` puts the
    cell's forgetting at the start where the diagonal cells put theirs.
    """
    recurrent = [
        0.5 * rng.normal(size=(n, n)) / math.sqrt(n),
        0.5 * rng.normal(size=(n, n)) / math.sqrt(n),
        orthogonal_with_spectrum(rng, n, r_min, r_max),
    ]
    inputs = [0.5 * rng.normal(size=(n, i)) / math.sqrt(i) for _ in range(3)]
    rho = rng.uniform(r_min, r_max, size=n)
    biases = [np.log(rho / (1.0 - rho)), np.zeros(n), np.zeros(n)]
    return recurrent + inputs + biases


@kernel
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@kernel
def _gates(ar, theta, h_prev, v, z, r, cand, rh):
    """Fill the update gate, reset gate, ``rh = r * h_prev`` and candidate.

    Matrix-vector products run column by column ("axpy" order): every sum
    keeps its index order, and the units' chains of rounded additions
    overlap instead of waiting on each other.
    """
    n = h_prev.shape[0]
    i = v.shape[0]
    nn = n * n
    u0 = 3 * nn
    b0 = u0 + 3 * n * i
    for k in range(n):
        z[k] = theta[b0 + k]
        r[k] = theta[b0 + n + k]
        cand[k] = theta[b0 + 2 * n + k]
    tmp = np.empty(n)
    wz_t = columns(theta, 0, n, n)
    wr_t = columns(theta, nn, n, n)
    for j in range(n):
        vmac(ar, z, wz_t[j], h_prev[j], 1.0, tmp)
        vmac(ar, r, wr_t[j], h_prev[j], 1.0, tmp)
    uz_t = columns(theta, u0, n, i)
    ur_t = columns(theta, u0 + n * i, n, i)
    for j in range(i):
        vmac(ar, z, uz_t[j], v[j], 1.0, tmp)
        vmac(ar, r, ur_t[j], v[j], 1.0, tmp)
    for k in range(n):
        z[k] = rnd(ar, ACTIVATION, _sigmoid(z[k]))
        r[k] = rnd(ar, ACTIVATION, _sigmoid(r[k]))
        rh[k] = mul(ar, r[k], h_prev[k])

    wn_t = columns(theta, 2 * nn, n, n)
    for j in range(n):
        vmac(ar, cand, wn_t[j], rh[j], 1.0, tmp)
    un_t = columns(theta, u0 + 2 * n * i, n, i)
    for j in range(i):
        vmac(ar, cand, un_t[j], v[j], 1.0, tmp)
    for k in range(n):
        cand[k] = rnd(ar, ACTIVATION, math.tanh(cand[k]))


@kernel
def step(ar, theta, h_prev, v, h):
    """``h = (1 - z) * n + z * h_prev``."""
    n = h.shape[0]
    work = np.empty((4, n))  # z, r, cand, r * h_prev
    z, r, cand, rh = work[0], work[1], work[2], work[3]
    _gates(ar, theta, h_prev, v, z, r, cand, rh)
    for k in range(n):
        keep = add(ar, 1.0, -z[k])
        h[k] = rnd(ar, STATE, mac(ar, mul(ar, keep, cand[k]), z[k], h_prev[k]))


@kernel
def _backward(ar, theta, h_prev, d, d_prev, z, r, cand, da_z, da_n, e, da_r, tmp):
    """``d_prev = J^T d`` from the gates; fills the pre-activations' errors.

    ``e`` receives ``Wn^T da_n``; ``tmp`` is scratch of shape ``(2, N)``.
    """
    n = h_prev.shape[0]
    nn = n * n
    for k in range(n):
        keep = add(ar, 1.0, -z[k])
        dz = mul(ar, d[k], add(ar, h_prev[k], -cand[k]))
        da_z[k] = rnd(ar, ERROR, mul(ar, dz, mul(ar, z[k], keep)))
        slope = add(ar, 1.0, -mul(ar, cand[k], cand[k]))
        da_n[k] = rnd(ar, ERROR, mul(ar, mul(ar, d[k], keep), slope))
    e[:] = 0.0
    for k in range(n):
        row = 2 * nn + k * n
        vmac_to(ar, ERROR, e, theta[row : row + n], da_n[k], 1.0, tmp[0])
    for k in range(n):
        gate_slope = mul(ar, r[k], add(ar, 1.0, -r[k]))
        da_r[k] = rnd(ar, ERROR, mul(ar, mul(ar, e[k], h_prev[k]), gate_slope))

    # error on the previous state
    for k in range(n):
        d_prev[k] = rnd(ar, ERROR, mac(ar, mul(ar, d[k], z[k]), e[k], r[k]))
    term = tmp[1]
    for k in range(n):
        vmul(ar, term, theta[k * n : (k + 1) * n], da_z[k], tmp[0])
        vmac(ar, term, theta[nn + k * n : nn + (k + 1) * n], da_r[k], 1.0, tmp[0])
        vadd_to(ar, ERROR, d_prev, term, tmp[0])


@kernel
def jacobian(ar, theta, h_prev, v, h, jac, unit, row):
    """``J = df/dh_prev``, row ``k`` formed as ``J^T e_k`` and stored in the
    Jacobian's format; the gates are computed once for all rows.

    ``unit`` and ``row`` are scratch vectors of the state's size.
    """  # noqa: D205
    n = h.shape[0]
    work = np.empty((10, n))  # the gates, the errors on them, scratch
    z, r, cand, rh = work[0], work[1], work[2], work[3]
    da_z, da_n, e, da_r = work[4], work[5], work[6], work[7]
    _gates(ar, theta, h_prev, v, z, r, cand, rh)
    unit[:] = 0.0
    for k in range(n):
        unit[k] = 1.0
        _backward(
            ar, theta, h_prev, unit, row, z, r, cand, da_z, da_n, e, da_r, work[8:]
        )
        jac[k * n : (k + 1) * n] = row
        vround(ar, JACOBIAN, jac[k * n : (k + 1) * n], work[8])
        unit[k] = 0.0


@kernel
def vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate_grads):
    """Transpose-Jacobian products of one step at the error ``d = dL/dh``.

    With ``a_z``, ``a_r``, ``a_n`` the gates' pre-activations::

        da_z = d (h_prev - n) z (1 - z)
        da_n = d (1 - z) (1 - n^2)
        e    = Wn^T da_n                     (error on r * h_prev)
        da_r = e h_prev r (1 - r)
        d_prev = d z + Wz^T da_z + e r + Wr^T da_r
    """
    n = h.shape[0]
    i = v.shape[0]
    nn = n * n
    u0 = 3 * nn
    b0 = u0 + 3 * n * i
    work = np.empty((10, n))  # the gates, the errors on them, scratch
    z, r, cand, rh = work[0], work[1], work[2], work[3]
    da_z, da_n, e, da_r = work[4], work[5], work[6], work[7]
    _gates(ar, theta, h_prev, v, z, r, cand, rh)
    _backward(ar, theta, h_prev, d, d_prev, z, r, cand, da_z, da_n, e, da_r, work[8:])
    if not accumulate_grads:
        return
    term = np.empty(i)
    tmp = np.empty(max(n, i))

    # parameters and input, gate by gate: z, r, n
    for k in range(n):
        for gate, a, x in (
            (0, da_z[k], h_prev),
            (1, da_r[k], h_prev),
            (2, da_n[k], rh),
        ):
            row = gate * nn + k * n
            vmac_to(ar, GRADIENT, grad[row : row + n], x, a, 1.0, tmp)
        for gate, a in ((0, da_z[k]), (1, da_r[k]), (2, da_n[k])):
            row = u0 + gate * n * i + k * i
            vmac_to(ar, GRADIENT, grad[row : row + i], v, a, 1.0, tmp)
        # dv += Uz^T da_z + Ur^T da_r + Un^T da_n, the three products summed
        row = u0 + k * i
        vmul(ar, term, theta[row : row + i], da_z[k], tmp)
        row = u0 + n * i + k * i
        vmac(ar, term, theta[row : row + i], da_r[k], 1.0, tmp)
        row = u0 + 2 * n * i + k * i
        vmac(ar, term, theta[row : row + i], da_n[k], 1.0, tmp)
        vadd_to(ar, INSTANT_ERROR, dv, term, tmp)
        accumulate(ar, GRADIENT, grad, b0 + k, da_z[k])
        accumulate(ar, GRADIENT, grad, b0 + n + k, da_r[k])
        accumulate(ar, GRADIENT, grad, b0 + 2 * n + k, da_n[k])
