r"""The feed-forward block after each recurrent cell (memoryless).

For a layer with input ``u_t`` (size ``I``), state ``h_t`` (size ``S``) and
width ``H``, as in the LRU paper::

    y_t = C h_t + D u_t                     (H)   cell output
    m_t = (y_t - mean y_t) / sqrt(var y_t + eps)  layer normalisation
    o_t = W2 gelu(W1 m_t + b1) + b2 [+ u_t]  (H)   residual when I == H

For the LRU, ``C h`` with the real state ``[Re h, Im h]`` is ``Re(C' h)`` of a
complex ``C' = [Re C', -Im C']``. Parameter layout of one block::

    C (H, S) | D (H, I) | W1 (F, H) | b1 (F) | W2 (H, F) | b2 (H)

Kernels take the device's arithmetic ``ar`` first: values are held in the
activations' format, errors on them in the instantaneous error's format.
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, add, mac, mul, rnd
from fpttsim.numerics.codes import ACTIVATION, GRADIENT, INSTANT_ERROR
from fpttsim.numerics.vector import columns, vmac, vmac_to, vround

LAYER_NORM_EPS = 1e-5


def parameter_shapes(s: int, i: int, h: int, f: int) -> list[tuple[str, tuple]]:
    """Names and shapes of the block's parameters, in storage order."""
    return [
        ("C", (h, s)),
        ("D", (h, i)),
        ("W1", (f, h)),
        ("b1", (f,)),
        ("W2", (h, f)),
        ("b2", (h,)),
    ]


def initialise(rng: np.random.Generator, s: int, i: int, h: int, f: int) -> list:
    """Variance-preserving normal weights, zero biases."""
    return [
        rng.normal(size=(h, s)) / math.sqrt(s),
        rng.normal(size=(h, i)) / math.sqrt(i),
        rng.normal(size=(f, h)) / math.sqrt(h),
        np.zeros(f),
        rng.normal(size=(h, f)) / math.sqrt(f),
        np.zeros(h),
    ]


@kernel
def _matvec(ar, w_t, x, bias, out, tmp):
    """``out = W x + b`` with ``W``'s columns held as the rows of ``w_t``.

    Column by column ("axpy" order): each output still sums over the columns
    in order, and the outputs' rounding chains run side by side in vector
    lanes instead of waiting on one another.
    """
    out[:] = bias
    for c in range(x.shape[0]):
        vmac(ar, out, w_t[c], x[c], 1.0, tmp)
    vround(ar, ACTIVATION, out, tmp)


@kernel
def weight_columns(theta, s, i, h, f):
    """The columns of the block's weight matrices, for column-by-column sums."""
    c0, d0, w1, b1, w2, b2 = _offsets(s, i, h, f)
    return (
        columns(theta, c0, h, s),
        columns(theta, d0, h, i),
        columns(theta, w1, f, h),
        columns(theta, w2, h, f),
    )


@kernel
def _gelu(x):
    return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))


@kernel
def _gelu_slope(x):
    cdf = 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
    return cdf + x * math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@kernel
def _offsets(s, i, h, f):
    c0 = 0
    d0 = c0 + h * s
    w1 = d0 + h * i
    b1 = w1 + f * h
    w2 = b1 + f
    b2 = w2 + h * f
    return c0, d0, w1, b1, w2, b2


@kernel
def _mean(ar, x):
    acc = 0.0
    for k in range(x.shape[0]):
        acc = add(ar, acc, x[k])
    return rnd(ar, ACTIVATION, acc / x.shape[0])


@kernel
def forward_step(ar, theta, w_t, u, h_t, width, hidden_ff, y, m, a1, q, o, tmp):
    """One step of the block; fills the intermediates the backward pass reuses.

    ``w_t`` holds the weights' columns (:func:`weight_columns`). Returns the
    normalisation's ``1 / sqrt(var + eps)``.
    """
    s = h_t.shape[0]
    i = u.shape[0]
    c_t, d_t, w1_t, w2_t = w_t
    c0, d0, w1, b1, w2, b2 = _offsets(s, i, width, hidden_ff)
    y[:] = 0.0
    for c in range(s):
        vmac(ar, y, c_t[c], h_t[c], 1.0, tmp)
    for c in range(i):
        vmac(ar, y, d_t[c], u[c], 1.0, tmp)
    vround(ar, ACTIVATION, y, tmp)

    # layer normalisation; m is a scratch for the centred values first
    mean = _mean(ar, y)
    for r in range(width):
        m[r] = rnd(ar, ACTIVATION, add(ar, y[r], -mean))
    var = 0.0
    for r in range(width):
        var = mac(ar, var, m[r], m[r])
    var = rnd(ar, ACTIVATION, var / width)
    inv_std = rnd(ar, ACTIVATION, 1.0 / math.sqrt(var + LAYER_NORM_EPS))
    for r in range(width):
        m[r] = rnd(ar, ACTIVATION, mul(ar, m[r], inv_std))

    _matvec(ar, w1_t, m, theta[b1 : b1 + hidden_ff], a1, tmp)
    for r in range(hidden_ff):
        q[r] = rnd(ar, ACTIVATION, _gelu(a1[r]))
    _matvec(ar, w2_t, q, theta[b2 : b2 + width], o, tmp)
    if i == width:
        for r in range(width):
            o[r] = rnd(ar, ACTIVATION, add(ar, o[r], u[r]))
    return inv_std


@kernel
def forward(ar, theta, u, h, hidden_ff, o):
    """Block outputs ``o[t-1]`` for ``t = 1..T`` from ``u[t-1]`` and ``h[t]``."""
    width = o.shape[1]
    w_t = weight_columns(theta, h.shape[1], u.shape[1], width, hidden_ff)
    y = np.empty(width)
    m = np.empty(width)
    a1 = np.empty(hidden_ff)
    q = np.empty(hidden_ff)
    tmp = np.empty(max(width, hidden_ff))
    for t in range(u.shape[0]):
        forward_step(
            ar, theta, w_t, u[t], h[t + 1], width, hidden_ff, y, m, a1, q, o[t], tmp
        )


@kernel
def backward_scratch(s, i, width, hidden_ff):
    """Scratch vectors of :func:`backward_step`, for a block of these sizes."""
    return (
        np.empty(width),  # y
        np.empty(width),  # m
        np.empty(hidden_ff),  # a1
        np.empty(hidden_ff),  # q
        np.empty(width),  # o
        np.empty(hidden_ff),  # da1
        np.empty(width),  # dm
        np.empty(width),  # dmm
        np.empty(width),  # dy
        np.empty(max(width, hidden_ff, s, i)),  # tmp
    )


@kernel
def backward(ar, theta, u, h, e, hidden_ff, grad, g, du):
    r"""Backpropagate the output errors ``e[t-1] = dL/do_t`` through the block.

    Fills ``g[t] = (dy_t/dh_t)^T dL/dy_t = C^T dL/dy_t`` (``g[0]`` untouched),
    ``du[t-1] = D^T dL/dy_t`` plus ``e[t-1]`` through the residual, and adds
    the block's parameter gradients to ``grad``: :func:`backward_step` at
    every step.
    """
    width = e.shape[1]
    s = h.shape[1]
    i = u.shape[1]
    w_t = weight_columns(theta, s, i, width, hidden_ff)
    scratch = backward_scratch(s, i, width, hidden_ff)
    for t in range(u.shape[0]):
        backward_step(
            ar,
            theta,
            w_t,
            u[t],
            h[t + 1],
            e[t],
            hidden_ff,
            grad,
            g[t + 1],
            du[t],
            scratch,
        )


@kernel
def backward_step(ar, theta, w_t, u_t, h_t, et, hidden_ff, grad, g_t, du_t, scratch):
    r"""One step of :func:`backward`: ``g_t``, ``du_t`` and the gradients.

    ``w_t`` holds the weights' columns (:func:`weight_columns`), ``scratch``
    comes from :func:`backward_scratch`. The forward step is recomputed for
    its intermediates, then :func:`backward_from` runs.
    """
    width = et.shape[0]
    y, m, a1, q, o, _, _, _, _, tmp = scratch
    inv_std = forward_step(
        ar, theta, w_t, u_t, h_t, width, hidden_ff, y, m, a1, q, o, tmp
    )
    backward_from(
        ar, theta, u_t, h_t, et, hidden_ff, grad, g_t, du_t, m, a1, q, inv_std, scratch
    )


@kernel
def backward_from(
    ar, theta, u_t, h_t, et, hidden_ff, grad, g_t, du_t, m, a1, q, inv_std, scratch
):
    r""":func:`backward_step` from the forward step's intermediates.

    ``m``, ``a1``, ``q`` and ``inv_std`` are what :func:`forward_step` left
    for this step (the normalised output, the MLP's pre-activation and
    activation, ``1 / sqrt(var + eps)``). Layer normalisation::

        dL/dy = inv_std (dL/dm - mean(dL/dm) - m mean(dL/dm * m))
    """
    width = et.shape[0]
    s = h_t.shape[0]
    i = u_t.shape[0]
    c0, d0, w1, b1, w2, b2 = _offsets(s, i, width, hidden_ff)
    _, _, _, _, _, da1, dm, dmm, dy, tmp = scratch

    # second linear layer and activation
    for r in range(width):
        accumulate(ar, GRADIENT, grad, b2 + r, et[r])
        row = grad[w2 + r * hidden_ff : w2 + (r + 1) * hidden_ff]
        vmac_to(ar, GRADIENT, row, q, et[r], 1.0, tmp)
    da1[:] = 0.0
    for r in range(width):
        row = theta[w2 + r * hidden_ff : w2 + (r + 1) * hidden_ff]
        vmac(ar, da1, row, et[r], 1.0, tmp)
    for c in range(hidden_ff):
        da1[c] = rnd(ar, INSTANT_ERROR, mul(ar, da1[c], _gelu_slope(a1[c])))

    # first linear layer
    for r in range(hidden_ff):
        accumulate(ar, GRADIENT, grad, b1 + r, da1[r])
        row = grad[w1 + r * width : w1 + (r + 1) * width]
        vmac_to(ar, GRADIENT, row, m, da1[r], 1.0, tmp)
    dm[:] = 0.0
    for r in range(hidden_ff):
        vmac(ar, dm, theta[w1 + r * width : w1 + (r + 1) * width], da1[r], 1.0, tmp)
    vround(ar, INSTANT_ERROR, dm, tmp)

    # layer normalisation
    mean_dm = _mean(ar, dm)
    for r in range(width):
        dmm[r] = mul(ar, dm[r], m[r])
    mean_dm_m = _mean(ar, dmm)
    for r in range(width):
        centred = add(ar, add(ar, dm[r], -mean_dm), -mul(ar, m[r], mean_dm_m))
        dy[r] = rnd(ar, INSTANT_ERROR, mul(ar, inv_std, centred))

    # cell output y = C h + D u, and the residual
    g_t[:] = 0.0
    if i == width:
        du_t[:] = et
    else:
        du_t[:] = 0.0
    for r in range(width):
        c_row = c0 + r * s
        vmac_to(ar, GRADIENT, grad[c_row : c_row + s], h_t, dy[r], 1.0, tmp)
        vmac_to(ar, INSTANT_ERROR, g_t, theta[c_row : c_row + s], dy[r], 1.0, tmp)
        d_row = d0 + r * i
        vmac_to(ar, GRADIENT, grad[d_row : d_row + i], u_t, dy[r], 1.0, tmp)
        vmac_to(ar, INSTANT_ERROR, du_t, theta[d_row : d_row + i], dy[r], 1.0, tmp)
