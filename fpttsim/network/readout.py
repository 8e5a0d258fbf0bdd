r"""Linear readout and the losses.

``z_t = W o_t + b`` on the top layer's outputs, then, averaged over the steps
that carry a loss (``mask_t = 1``):

cross-entropy (classification)
    ``l_t = logsumexp(z_t) - z_t[y_t]``, ``dl/dz_t = softmax(z_t) - onehot(y_t)``
mean squared error (regression)
    ``l_t = mean_o (z_t - y_t)^2``, ``dl/dz_t = 2 (z_t - y_t) / O``

Parameter layout: ``W (O, H) | b (O)``.

Kernels take the device's arithmetic ``ar`` first: logits and probabilities
are held in the activations' format, ``dl/dz`` and the errors in the
instantaneous error's. The loss itself is a measurement and is computed in
float64 from the rounded logits.
"""

from __future__ import annotations

import math

import numpy as np

from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, mul, rnd
from fpttsim.numerics.codes import ACTIVATION, GRADIENT, INSTANT_ERROR
from fpttsim.numerics.vector import columns, vmac, vmac_to, vround


def parameter_shapes(h: int, o: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the readout's parameters, in storage order."""
    return [("W", (o, h)), ("b", (o,))]


def initialise(rng: np.random.Generator, h: int, o: int) -> list[np.ndarray]:
    """Normal weights of variance ``1/H``, zero bias."""
    return [rng.normal(size=(o, h)) / math.sqrt(h), np.zeros(o)]


@kernel
def _logits(ar, theta, o_t, z):
    n_out = z.shape[0]
    width = o_t.shape[0]
    for r in range(n_out):
        z[r] = theta[n_out * width + r]
    # column by column: each logit sums in column order, and the logits'
    # chains of rounded additions run side by side in vector lanes
    w_t = columns(theta, 0, n_out, width)
    tmp = np.empty(n_out)
    for c in range(width):
        vmac(ar, z, w_t[c], o_t[c], 1.0, tmp)
    vround(ar, ACTIVATION, z, tmp)


@kernel
def _backward_step(ar, theta, o_t, dz, scale, grad, e_t):
    """Add ``scale dz o_t^T`` to the gradients, set ``e_t = scale W^T dz``."""
    n_out = dz.shape[0]
    width = o_t.shape[0]
    e_t[:] = 0.0
    tmp = np.empty(width)
    for r in range(n_out):
        dzr = rnd(ar, INSTANT_ERROR, mul(ar, scale, dz[r]))
        accumulate(ar, GRADIENT, grad, n_out * width + r, dzr)
        row = r * width
        vmac_to(ar, GRADIENT, grad[row : row + width], o_t, dzr, 1.0, tmp)
        vmac_to(ar, INSTANT_ERROR, e_t, theta[row : row + width], dzr, 1.0, tmp)


@kernel
def _cross_entropy(z, label):
    """``(l_t, lse, hit)`` of logits ``z``: ``hit`` is 1 when the label wins."""
    top = np.max(z)
    lse = top + math.log(np.sum(np.exp(z - top)))
    hit = 1 if np.argmax(z) == label else 0
    return lse - z[label], lse, hit


@kernel
def predict_step(ar, theta, o_t, classify, label, target, z):
    """Loss of one step without its errors (inference): ``(l_t, hit)``."""
    _logits(ar, theta, o_t, z)
    if classify:
        l_t, _, hit = _cross_entropy(z, label)
        return l_t, hit
    return np.sum((z - target) ** 2) / z.shape[0], 0


@kernel
def cross_entropy_step(ar, theta, o_t, label, scale, grad, e_t, z, dz):
    """One masked step of :func:`cross_entropy`, weighted by ``scale``.

    Sets ``e_t = scale dl_t/do_t``, adds ``scale dl_t/dtheta`` to ``grad``;
    returns ``(l_t, 1 if the largest logit is the label else 0)``. ``z`` and
    ``dz`` are scratch of the number of classes.
    """
    _logits(ar, theta, o_t, z)
    l_t, lse, hit = _cross_entropy(z, label)
    for r in range(z.shape[0]):
        dz[r] = rnd(ar, ACTIVATION, math.exp(z[r] - lse))
    dz[label] -= 1.0
    _backward_step(ar, theta, o_t, dz, scale, grad, e_t)
    return l_t, hit


@kernel
def squared_error_step(ar, theta, o_t, target, scale, grad, e_t, z, dz):
    """One masked step of :func:`mean_squared_error`, weighted by ``scale``.

    Returns ``l_t = mean_o (z_t - y_t)^2``; sets ``e_t`` and adds to
    ``grad`` as :func:`cross_entropy_step` does, with ``scale`` the factor of
    ``dl_t/dz_t = 2 (z_t - y_t) / O`` already holding the ``2 / O``.
    """
    n_out = target.shape[0]
    _logits(ar, theta, o_t, z)
    dz[:] = z - target
    loss = np.sum(dz * dz) / n_out
    _backward_step(ar, theta, o_t, dz, scale, grad, e_t)
    return loss


@kernel
def cross_entropy(ar, theta, o, labels, mask, n_out, grad, e):
    """Loss, errors ``e[t] = dL/do_t``, and ``(loss, correct, counted)``.

    ``correct`` counts masked steps whose largest logit is the label.
    """
    total = np.sum(mask)
    z = np.empty(n_out)
    dz = np.empty(n_out)
    loss = 0.0
    correct = 0
    for t in range(o.shape[0]):
        if mask[t] == 0.0:
            e[t] = 0.0
            continue
        l_t, hit = cross_entropy_step(
            ar, theta, o[t], labels[t], mask[t] / total, grad, e[t], z, dz
        )
        loss += mask[t] * l_t
        correct += hit
    return loss / total, correct, int(total)


@kernel
def mean_squared_error(ar, theta, o, targets, mask, grad, e):
    """Loss and errors ``e[t] = dL/do_t``; returns ``(loss, 0, counted)``."""
    n_out = targets.shape[1]
    total = np.sum(mask)
    z = np.empty(n_out)
    dz = np.empty(n_out)
    loss = 0.0
    for t in range(o.shape[0]):
        if mask[t] == 0.0:
            e[t] = 0.0
            continue
        scale = 2.0 * mask[t] / (total * n_out)
        loss += mask[t] * squared_error_step(
            ar, theta, o[t], targets[t], scale, grad, e[t], z, dz
        )
    return loss / total, 0, int(total)
