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
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.cells._init import orthogonal_with_spectrum
from fpttsim.numerics import kernel


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
def _gates(theta, h_prev, v, z, r, cand):
    """Fill the update gate, reset gate and candidate of one step."""
    n = h_prev.shape[0]
    i = v.shape[0]
    nn = n * n
    u0 = 3 * nn
    b0 = u0 + 3 * n * i
    for k in range(n):
        az = theta[b0 + k]
        ar = theta[b0 + n + k]
        for j in range(n):
            az += theta[k * n + j] * h_prev[j]
            ar += theta[nn + k * n + j] * h_prev[j]
        for j in range(i):
            az += theta[u0 + k * i + j] * v[j]
            ar += theta[u0 + n * i + k * i + j] * v[j]
        z[k] = _sigmoid(az)
        r[k] = _sigmoid(ar)
    for k in range(n):
        an = theta[b0 + 2 * n + k]
        for j in range(n):
            an += theta[2 * nn + k * n + j] * (r[j] * h_prev[j])
        for j in range(i):
            an += theta[u0 + 2 * n * i + k * i + j] * v[j]
        cand[k] = math.tanh(an)


@kernel
def step(theta, h_prev, v, h):
    """``h = (1 - z) * n + z * h_prev``."""
    n = h.shape[0]
    z = np.empty(n)
    r = np.empty(n)
    cand = np.empty(n)
    _gates(theta, h_prev, v, z, r, cand)
    for k in range(n):
        h[k] = (1.0 - z[k]) * cand[k] + z[k] * h_prev[k]


@kernel
def vjp(theta, h_prev, v, h, d, d_prev, grad, dv, accumulate):
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
    z = np.empty(n)
    r = np.empty(n)
    cand = np.empty(n)
    _gates(theta, h_prev, v, z, r, cand)

    # errors on the pre-activations
    da_z = np.empty(n)
    da_n = np.empty(n)
    for k in range(n):
        da_z[k] = d[k] * (h_prev[k] - cand[k]) * z[k] * (1.0 - z[k])
        da_n[k] = d[k] * (1.0 - z[k]) * (1.0 - cand[k] * cand[k])
    e = np.zeros(n)
    for k in range(n):
        for j in range(n):
            e[j] += theta[2 * nn + k * n + j] * da_n[k]
    da_r = np.empty(n)
    for k in range(n):
        da_r[k] = e[k] * h_prev[k] * r[k] * (1.0 - r[k])

    # error on the previous state
    for k in range(n):
        d_prev[k] = d[k] * z[k] + e[k] * r[k]
    for k in range(n):
        for j in range(n):
            d_prev[j] += theta[k * n + j] * da_z[k] + theta[nn + k * n + j] * da_r[k]
    if not accumulate:
        return

    # parameters and input, gate by gate: z, r, n
    for k in range(n):
        for j in range(n):
            grad[k * n + j] += da_z[k] * h_prev[j]
            grad[nn + k * n + j] += da_r[k] * h_prev[j]
            grad[2 * nn + k * n + j] += da_n[k] * r[j] * h_prev[j]
        for j in range(i):
            grad[u0 + k * i + j] += da_z[k] * v[j]
            grad[u0 + n * i + k * i + j] += da_r[k] * v[j]
            grad[u0 + 2 * n * i + k * i + j] += da_n[k] * v[j]
            dv[j] += (
                theta[u0 + k * i + j] * da_z[k]
                + theta[u0 + n * i + k * i + j] * da_r[k]
                + theta[u0 + 2 * n * i + k * i + j] * da_n[k]
            )
        grad[b0 + k] += da_z[k]
        grad[b0 + n + k] += da_r[k]
        grad[b0 + 2 * n + k] += da_n[k]
