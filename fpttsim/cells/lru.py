r"""Linear recurrent unit (LRU): a complex diagonal recurrence.

Orvieto et al., "Resurrecting recurrent neural networks for long sequences",
ICML 2023. With ``N`` complex units and input ``v`` of size ``I``::

    h_t = lam * h_{t-1} + gamma * (B v_t)
    lam = exp(-exp(nu_log) + i exp(theta_log)),   gamma = exp(gamma_log)

The state is held as ``2N`` real numbers, ``h = [Re h, Im h]``, so that every
kernel of fpttsim works on real arrays (and reduced precision rounds real and
imaginary parts alike). ``B`` is stored the same way, ``[Re B; Im B]`` with
shape ``(2N, I)``. The error ``delta = dL/dh`` uses the same layout, which
makes the complex transpose-Jacobian a multiplication by ``conj(lam)``::

    J^T delta = conj(lam) * delta        J^{-T} x = x / conj(lam)

Parameter layout in ``theta`` (flat, float64)::

    nu_log (N) | theta_log (N) | gamma_log (N) | B (2N, I)

``gamma`` is a parameter of its own, initialised to ``sqrt(1 - |lam|^2)`` as
in the LRU paper, so that its gradient does not flow into ``nu_log``.

Every kernel takes the device's arithmetic ``ar`` first
(:mod:`fpttsim.numerics.arithmetic`). ``lam`` is held in the Jacobian's
format, ``gamma`` and the chain-rule factors of the parametrisation in the
weights' format.
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, mac, mul, rnd
from fpttsim.numerics.codes import (
    ERROR,
    GRADIENT,
    INSTANT_ERROR,
    JACOBIAN,
    STATE,
    WEIGHTS,
)
from fpttsim.numerics.vector import columns, vadd_to, vmac, vmac_to, vmul

# Parameters in the learner's coordinates: updated by training, but not what a
# device holds. It holds lam (in the Jacobian's format) and gamma (in the
# weights'), which the kernels derive from them and round.
LEARNER_COORDINATES = ("nu_log", "theta_log", "gamma_log")


def parameter_shapes(n: int, i: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the cell's parameters, in storage order."""
    return [
        ("nu_log", (n,)),
        ("theta_log", (n,)),
        ("gamma_log", (n,)),
        ("B", (2 * n, i)),
    ]


def state_size(n: int) -> int:
    """Real numbers per state: real and imaginary parts."""
    return 2 * n


def initialise(
    rng: np.random.Generator,
    n: int,
    i: int,
    r_min: float,
    r_max: float,
    max_phase: float,
) -> list[np.ndarray]:
    """Ring initialisation: ``|lam|`` uniform on the ring ``[r_min, r_max]``.

    The modulus is drawn so that ``lam`` is uniform in area on the ring, and the
    phase uniform in ``[0, max_phase)``, both as in the LRU paper.
    """
    u1 = rng.uniform(size=n)
    u2 = rng.uniform(size=n)
    modulus = np.sqrt(u1 * (r_max**2 - r_min**2) + r_min**2)
    nu_log = np.log(-np.log(modulus))
    theta_log = np.log(max_phase * u2 + 1e-12)  # exp(theta_log) must be > 0
    gamma_log = np.log(np.sqrt(1.0 - modulus**2))
    b = rng.normal(size=(2 * n, i)) / math.sqrt(2 * i)
    return [nu_log, theta_log, gamma_log, b]


@kernel
def _eigenvalue(ar, theta, n, k):
    """``[Re lam_k, Im lam_k]`` in the Jacobian's format."""
    modulus = math.exp(-math.exp(theta[k]))
    angle = math.exp(theta[n + k])
    lr = rnd(ar, JACOBIAN, modulus * math.cos(angle))
    li = rnd(ar, JACOBIAN, modulus * math.sin(angle))
    return lr, li


@kernel
def _input_drive(ar, theta, n, v, w):
    """``w = [Re B v, Im B v]``, each summed in input order.

    Column by column ("axpy" order, over the columns of ``B``): every sum keeps
    its order, and the units' chains of rounded additions run side by side
    in vector lanes instead of waiting on one another.
    """
    i = v.shape[0]
    base = 3 * n
    b_t = columns(theta, base, 2 * n, i)
    tmp = np.empty(2 * n)
    w[:] = 0.0
    for j in range(i):
        vmac(ar, w, b_t[j], v[j], 1.0, tmp)


@kernel
def step(ar, theta, h_prev, v, h):
    """``h = lam * h_prev + gamma * (B v)``; ``h`` holds ``B v`` first."""
    n = h.shape[0] // 2
    _input_drive(ar, theta, n, v, h)
    for k in range(n):
        lr, li = _eigenvalue(ar, theta, n, k)
        gamma = rnd(ar, WEIGHTS, math.exp(theta[2 * n + k]))
        wr = h[k]
        wi = h[n + k]
        a = h_prev[k]
        b = h_prev[n + k]
        re = mac(ar, mac(ar, mul(ar, lr, a), -li, b), gamma, wr)
        im = mac(ar, mac(ar, mul(ar, li, a), lr, b), gamma, wi)
        h[k] = rnd(ar, STATE, re)
        h[n + k] = rnd(ar, STATE, im)


@kernel
def jacobian(ar, theta, h_prev, v, h, jac):
    """The diagonal Jacobian ``lam``, as ``[Re lam, Im lam]``."""
    n = h.shape[0] // 2
    for k in range(n):
        lr, li = _eigenvalue(ar, theta, n, k)
        jac[k] = lr
        jac[n + k] = li


@kernel
def vjp(ar, theta, h_prev, v, h, d, d_prev, grad, dv, accumulate_grads):
    """Transpose-Jacobian products of one step at the error ``d = dL/dh``.

    ``d_prev = J^T d = conj(lam) d``. When ``accumulate_grads``:
    ``grad += (df/dtheta)^T d`` and ``dv += (df/dv)^T d``. With the complex
    gradient ``g_lam = d conj(h_prev)``, a real parameter ``s`` of ``lam`` gets
    ``Re(g_lam conj(dlam/ds))``: ``dlam/dnu_log = -exp(nu_log) lam`` and
    ``dlam/dtheta_log = i exp(theta_log) lam``.
    """
    n = h.shape[0] // 2
    i = v.shape[0]
    base = 3 * n
    drive = np.empty(2 * n if accumulate_grads else 0)
    term_v = np.empty(i)
    tmp = np.empty(i)
    if accumulate_grads:
        _input_drive(ar, theta, n, v, drive)
    for k in range(n):
        lr, li = _eigenvalue(ar, theta, n, k)
        da = d[k]
        db = d[n + k]
        d_prev[k] = rnd(ar, ERROR, mac(ar, mul(ar, lr, da), li, db))
        d_prev[n + k] = rnd(ar, ERROR, mac(ar, mul(ar, lr, db), -li, da))
        if not accumulate_grads:
            continue

        # the eigenvalue's parameters
        a = h_prev[k]
        b = h_prev[n + k]
        g_re = mac(ar, mul(ar, da, a), db, b)
        g_im = mac(ar, mul(ar, db, a), -da, b)
        d_nu = rnd(ar, WEIGHTS, -math.exp(theta[k]))
        d_theta = rnd(ar, WEIGHTS, math.exp(theta[n + k]))
        term = mul(ar, d_nu, mac(ar, mul(ar, g_re, lr), g_im, li))
        accumulate(ar, GRADIENT, grad, k, term)
        term = mul(ar, d_theta, mac(ar, mul(ar, g_im, lr), -g_re, li))
        accumulate(ar, GRADIENT, grad, n + k, term)

        # the input scale and the input matrix
        gamma = rnd(ar, WEIGHTS, math.exp(theta[2 * n + k]))
        term = mul(ar, gamma, mac(ar, mul(ar, da, drive[k]), db, drive[n + k]))
        accumulate(ar, GRADIENT, grad, 2 * n + k, term)
        gda = mul(ar, gamma, da)
        gdb = mul(ar, gamma, db)
        row_re = base + k * i
        row_im = base + (n + k) * i
        vmac_to(ar, GRADIENT, grad[row_re : row_re + i], v, gda, 1.0, tmp)
        vmac_to(ar, GRADIENT, grad[row_im : row_im + i], v, gdb, 1.0, tmp)
        # dv += Re(conj(B_k) gamma d_k): both products, then their sum
        vmul(ar, term_v, theta[row_re : row_re + i], gda, tmp)
        vmac(ar, term_v, theta[row_im : row_im + i], gdb, 1.0, tmp)
        vadd_to(ar, INSTANT_ERROR, dv, term_v, tmp)
