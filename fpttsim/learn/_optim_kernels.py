r"""The optimiser's update in the device's arithmetic, as compiled kernels.

Every kernel takes the arithmetic table ``ar`` first (None for float64, see
:mod:`fpttsim.numerics.arithmetic`) and updates its arrays in place, so that a
compiled event loop can call them between windows. The arithmetic model:

- the global norm of the gradient ``g`` sums the squares ``mac(s, g_i, g_i)``
  in index order in the accumulator; ``sqrt`` is evaluated in float64 on that
  sum and its result rounded to ``gradient``. Clipping scales by
  ``c = bound / norm`` (a division, rounded to ``optimizer_state``, where the
  optimiser keeps its scalars) and stores ``mul(g_i, c)`` as ``gradient``;
- moments and the momentum buffer are running sums of rounded products,
  stored as ``optimizer_state``;
- Adam's step ``lr_i m_hat_i / (sqrt(v_hat_i) + eps)`` is one division unit's
  result, evaluated in float64 from the stored moments and rounded to
  ``product``; SGD's step ``lr_i b_i`` is a product;
- a parameter stored in the weights' format becomes
  ``add(add(theta_i, -mul(lr_i wd_i, theta_i)), -step_i)`` and is then
  stored as ``weights``, one shared exponent per array for a format with a
  shared exponent (:func:`round_weights`);
- hyper-parameters, the scheduled rate and Adam's bias corrections are the
  host's constants, in float64.

Parameters outside ``blocks`` (the cells' learner coordinates, e.g. the LRU's
``nu_log``) are not held by the device, which holds what they stand for: their
moments are stored as for every parameter, their descent is float64.

Per-parameter inputs (float64 arrays of the parameter vector's length):
``lr_scale`` multiplies the learning rate (the recurrent factor on recurrent
parameters, 1 elsewhere) and ``decay_mask`` the weight decay (0 where a
parameter must not decay, 1 elsewhere). ``blocks`` is an int64 array of
shape ``(k, 2)``, the ``[start, stop)`` of each array stored in the weights'
format; ``shared`` says whether that format shares an exponent per array.
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.numerics import codes, kernel, quantize_value
from fpttsim.numerics.arithmetic import add, mac, mul, rnd
from fpttsim.numerics.quantize import block_row

# Update rules and schedules, as the integer codes compiled callers pass
ADAMW = 0
SGD = 1
OPTIMIZERS = ("adam", "sgd")  # names of the codes, in order
CONSTANT = 0
COSINE = 1
SCHEDULES = ("constant", "cosine")


@kernel
def lr_at(step, lr, schedule, warmup, horizon, lr_min):
    r"""The learning rate of update number ``step`` (counted from 1).

    With ``k = step - 1`` updates done before it, ``W = warmup`` and
    ``T = horizon``::

        k < W:               lr * (k + 1) / W
        constant, k >= W:    lr
        cosine, k >= W:      lr_min + (lr - lr_min) * (1 + cos(pi p)) / 2,
                             p = min((k - W) / (T - W), 1)

    so the warm-up rises linearly from 0 to ``lr`` at update ``W`` and the
    cosine falls from ``lr`` at update ``W + 1`` to ``lr_min`` after ``T``
    updates; every update of the horizon gets a nonzero rate. With
    ``T <= W`` the cosine part is at its floor.
    """
    k = step - 1
    if k < warmup:
        return lr * (k + 1) / warmup
    if schedule == CONSTANT:
        return lr
    p = 1.0 if horizon <= warmup else min((k - warmup) / (horizon - warmup), 1.0)
    return lr_min + (lr - lr_min) * (1.0 + math.cos(math.pi * p)) / 2.0


@kernel
def clip_gradient(ar, grad, bound):
    """Scale ``grad`` in place to global norm ``bound`` if its norm exceeds
    it; return the norm before clipping (``bound = inf`` only measures).

    Under a profile the norm may wrap, saturate or lose small squares in the
    accumulator, as the device's would: the result is the device's norm.
    """  # noqa: D205
    s = 0.0
    for i in range(grad.shape[0]):
        s = mac(ar, s, grad[i], grad[i])
    norm = rnd(ar, codes.GRADIENT, math.sqrt(s))
    if norm > bound:
        c = rnd(ar, codes.OPTIMIZER, bound / norm)
        for i in range(grad.shape[0]):
            grad[i] = rnd(ar, codes.GRADIENT, mul(ar, grad[i], c))
    return norm


@kernel
def optimizer_step(
    ar,
    kind,
    theta,
    grad,
    m,
    v,
    lr_scale,
    decay_mask,
    blocks,
    shared,
    step,
    lr,
    beta1,
    beta2,
    eps,
    momentum,
    weight_decay,
    clip,
):
    r"""Clip ``grad`` in place, then update ``theta`` and the state in place
    with rule ``kind``; return the gradient's norm before clipping.

    For parameter ``i``, with ``t = step`` (from 1), ``lr_i = lr
    lr_scale_i`` and ``g`` the clipped gradient, :data:`ADAMW`::

        m_i = beta1 m_i + (1 - beta1) g_i
        v_i = beta2 v_i + (1 - beta2) g_i g_i
        step_i = lr_i (m_i / (1 - beta1^t)) / (sqrt(v_i / (1 - beta2^t)) + eps)

    and :data:`SGD`, with its momentum buffer in ``m``::

        m_i = momentum m_i + g_i          (m_i not kept when momentum is 0)
        step_i = lr_i m_i

    then ``theta_i -= lr_i weight_decay decay_mask_i theta_i + step_i``, each
    operation rounded as the module docstring says.

    Parameters
    ----------
    ar : float64[:, :] or None
        The arithmetic table; None for float64.
    kind : int
        :data:`ADAMW` or :data:`SGD`.
    theta, grad : float64[:]
        Parameters and gradient, ``n`` each, both rewritten.
    m, v : float64[:]
        The state: Adam's moments, or SGD's momentum buffer in ``m``; ``n``
        each where used, else empty (``v`` for SGD, ``m`` too without
        momentum).
    lr_scale, decay_mask : float64[:]
        Per-parameter multipliers of the rate and of the decay, ``n`` each.
    blocks : int64[:, 2]
        ``[start, stop)`` of each array stored as weights.
    shared : bool
        Whether the weights' format shares an exponent per block.
    step : int
        The update's number, from 1 (Adam's bias correction).
    lr : float
        This update's learning rate (:func:`lr_at`).
    beta1, beta2, eps, momentum, weight_decay : float
        The rules' hyper-parameters (Adam's, SGD's momentum, both the decay).
    clip : float
        The gradient's norm bound; ``inf`` for none.

    Returns
    -------
    float
        The gradient's norm before clipping, in its format.
    """  # noqa: D205
    norm = clip_gradient(ar, grad, clip)
    # libm's pow, as Python's float ** int: with an integer exponent Numba
    # multiplies by repeated squaring, which differs in the last bit
    c1 = 1.0 - math.pow(beta1, float(step))
    c2 = 1.0 - math.pow(beta2, float(step))
    delta = np.empty(theta.shape[0])
    for i in range(theta.shape[0]):
        rate = lr * lr_scale[i]
        if kind == ADAMW:
            delta[i] = _adam_step(ar, grad[i], m, v, i, rate, beta1, beta2, c1, c2, eps)
        else:
            delta[i] = _sgd_step(ar, grad[i], m, i, rate, momentum)
    _descend(ar, theta, delta, lr, lr_scale, decay_mask, weight_decay, blocks, shared)
    return norm


@kernel
def _adam_step(ar, g, m, v, i, rate, beta1, beta2, c1, c2, eps):
    """Adam's moments of parameter ``i`` updated; its step, not yet rounded."""
    m[i] = rnd(
        ar, codes.OPTIMIZER, add(ar, mul(ar, beta1, m[i]), mul(ar, 1.0 - beta1, g))
    )
    vg = mul(ar, mul(ar, 1.0 - beta2, g), g)
    v[i] = rnd(ar, codes.OPTIMIZER, add(ar, mul(ar, beta2, v[i]), vg))
    # one division unit's result, from the stored moments: rounded by _descend
    return rate * (m[i] / c1) / (math.sqrt(v[i] / c2) + eps)


@kernel
def _sgd_step(ar, g, buf, i, rate, momentum):
    """SGD's momentum buffer of parameter ``i`` updated; its step, unrounded."""
    if momentum == 0.0:
        return rate * g
    buf[i] = rnd(ar, codes.OPTIMIZER, add(ar, mul(ar, momentum, buf[i]), g))
    return rate * buf[i]


@kernel
def _descend(ar, theta, delta, lr, lr_scale, decay_mask, weight_decay, blocks, shared):
    """``theta_i -= lr_i wd_i theta_i + delta_i``, then the weights stored."""
    stored = np.zeros(theta.shape[0], dtype=np.bool_)
    for b in range(blocks.shape[0]):
        stored[blocks[b, 0] : blocks[b, 1]] = True
    for i in range(theta.shape[0]):
        decay = lr * lr_scale[i] * weight_decay * decay_mask[i]
        if stored[i]:
            theta[i] = _descend_one(ar, theta[i], decay, delta[i])
        else:
            theta[i] = _descend_one(None, theta[i], decay, delta[i])  # the learner's
    round_weights(ar, theta, blocks, shared)


@kernel
def _descend_one(ar, x, decay, delta):
    """``x - decay x - delta``: a product and two rounded sums."""
    if decay != 0.0:  # no decay is no operation (and keeps a zero's sign)
        x = add(ar, x, -mul(ar, decay, x))
    return add(ar, x, -rnd(ar, codes.PRODUCT, delta))


@kernel
def round_weights(ar, theta, blocks, shared):
    """Store each block ``theta[start:stop]`` of ``blocks`` as weights.

    The compiled twin of :meth:`.Arithmetic.round_blocks`: the same bits and
    events for every rounding but stochastic, whose draws come from Numba's
    generator (seeded by :func:`.seed_stochastic_rounding`) rather than the
    arithmetic's numpy one.
    """
    if ar is None:
        return
    for b in range(blocks.shape[0]):
        if shared:
            _round_shared(ar, theta[blocks[b, 0] : blocks[b, 1]])
        else:
            for i in range(blocks[b, 0], blocks[b, 1]):
                theta[i] = rnd(ar, codes.WEIGHTS, theta[i])


@kernel
def _round_shared(ar, x):
    """``x`` as one block of fixed-point weights sharing an exponent.

    The exponent is :func:`fpttsim.numerics.quantize.block_row`'s, as
    :func:`fpttsim.numerics.quantize_block` chooses it; ``x`` is then
    rounded to ``fixedW.(-e)``.
    """
    if ar is None:  # never called so; lets float64 callers compile
        return
    row = ar[codes.WEIGHTS, : codes.N_FIELDS].copy()
    block_row(row, x)

    counts = np.zeros(codes.N_EVENTS, dtype=np.int64)
    stochastic = row[codes.ROUNDING] == codes.STOCHASTIC
    for i in range(x.shape[0]):
        u = np.random.random() if stochastic else 0.0
        x[i] = quantize_value(x[i], row, u, counts)
    for code in range(codes.N_EVENTS):
        ar[codes.WEIGHTS, codes.N_FIELDS + code] += counts[code]
