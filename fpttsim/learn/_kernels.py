r"""Compiled loops over one window, one layer at a time.

Index convention, shared by every kernel here: ``v[t-1]`` is the layer's
input at step ``t = 1..T``; ``h[t]`` its state (``h[0] = 0``); ``g[t]`` the
instantaneous error ``dl_t/dh_t`` (``g[0] = 0``); ``dv[t-1]`` receives the
error on ``v[t-1]``. Kernels return a status: 0 on success, or the step
``t >= 1`` at which the recurrent Jacobian was singular. Every kernel takes
the device's arithmetic ``ar`` first (:mod:`fpttsim.numerics.arithmetic`).
"""

from __future__ import annotations

import numpy as np

from fpttsim.cells import dispatch, gru, jacobian
from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import accumulate, add, mac, rnd
from fpttsim.numerics.codes import ERROR, GRADIENT, JACOBIAN_PRODUCT

# what a segment's pass does (:func:`_segment_pass`)
WARM_UP, PROBE, ERRORS = range(3)


@kernel
def forward(ar, cell, theta, v, h):
    """``h[t] = f(h[t-1], v[t-1])`` for ``t = 1..T``; ``h[0]`` is left as is."""
    for t in range(1, v.shape[0] + 1):
        dispatch.step(ar, cell, theta, h[t - 1], v[t - 1], h[t])


@kernel
def bptt(ar, cell, theta, v, h, g, grad, dv, delta):
    """Backpropagation through time, the oracle.

    ``delta[T] = g[T]``, ``delta[t-1] = J_{t-1}^T delta[t] + g[t-1]``, with
    ``grad += (df/dtheta)^T delta[t]`` at every step.
    """
    n_steps = v.shape[0]
    d = g[n_steps].copy()
    d_prev = np.empty_like(d)
    for t in range(n_steps, 0, -1):
        delta[t] = d
        dispatch.vjp(
            ar, cell, theta, h[t - 1], v[t - 1], h[t], d, d_prev, grad, dv[t - 1], True
        )
        for k in range(d.shape[0]):
            d[k] = rnd(ar, ERROR, add(ar, d_prev[k], g[t - 1, k]))
    delta[0] = d


@kernel
def spatial(ar, cell, theta, v, h, g, grad, dv):
    """Spatial backpropagation: ``delta[t] = g[t]``, no temporal credit."""
    d_prev = np.empty(g.shape[1])
    for t in range(1, v.shape[0] + 1):
        dispatch.vjp(
            ar,
            cell,
            theta,
            h[t - 1],
            v[t - 1],
            h[t],
            g[t],
            d_prev,
            grad,
            dv[t - 1],
            True,
        )


@kernel
def _jac_size(kind, size):
    if kind == jacobian.DENSE:
        return size * size
    return size


@kernel
def _scratch(kind, size):
    """Scratch buffers of a forward error pass.

    ``J``, a product update, a dense factorisation, the previous and current
    state (``h_prev = 0``), and two vectors for forming dense Jacobians.
    """
    n = _jac_size(kind, size)
    lu = np.empty(size * size if kind == jacobian.DENSE else 0)
    h_prev = np.zeros(size)
    return (
        np.empty(n),
        np.empty(n),
        lu,
        h_prev,
        np.empty(size),
        np.empty(size),
        np.empty(size),
    )


@kernel
def _jacobian(ar, cell, theta, h_prev, v_t, h, jac, unit, row):
    """``J = df/dh_prev``, as :func:`dispatch.jacobian` forms it.

    The GRU's rows share its gates, which it then computes once per step
    rather than once per row.
    """
    if cell == dispatch.GRU:
        gru.jacobian(ar, theta, h_prev, v_t, h, jac, unit, row)
    else:
        dispatch.jacobian(ar, cell, theta, h_prev, v_t, h, jac, unit, row)


@kernel
def _advance(ar, cell, kind, theta, h_prev, v_t, h, g_prev, d, scratch, inverse):
    """One step of a forward error pass, shared by both FPTT phases.

    ``h = f(h_prev, v_t)``, ``J = df/dh_prev``, ``d <- J^{-T} (d - g_prev)``
    with ``J^{-T}`` applied by ``inverse = (method, terms)``
    (:func:`jacobian.inverse_transpose`); False when ``J`` is singular.
    ``scratch`` is ``(jac, work, lu, unit, row)`` (:func:`_scratch`).
    """
    jac, _, lu, unit, row = scratch
    method, terms = inverse
    dispatch.step(ar, cell, theta, h_prev, v_t, h)
    _jacobian(ar, cell, theta, h_prev, v_t, h, jac, unit, row)
    x = _difference(ar, d, g_prev)
    return jacobian.inverse_transpose(ar, kind, jac, x, d, lu, method, terms)


@kernel
def _difference(ar, a, b):
    """``a - b``, an error."""
    out = np.empty_like(a)
    for k in range(a.shape[0]):
        out[k] = rnd(ar, ERROR, add(ar, a[k], -b[k]))
    return out


@kernel
def fptt_warmup(ar, cell, theta, v, g, delta0, jac_prod, method, terms):
    r"""FPTT phase 1: run the error equation forward from zero.

    ``d <- J_{t-1}^{-T} (d - g[t-1])`` and ``P <- P J_{t-1}^T`` for
    ``t = 1..T``; then ``delta0 = P (g[T] - d)``. ``J^{-T}`` is applied by
    ``method`` with ``terms`` (:func:`jacobian.inverse_transpose`), ``P`` is
    exact. Returns ``(status, peak)`` with ``peak`` the largest ``|d|_2``
    along the way.
    """
    kind = dispatch.jacobian_kind(cell)
    n_steps = v.shape[0]
    size = g.shape[1]
    jac, work, lu, h_prev, h, unit, row = _scratch(kind, size)
    scratch = (jac, work, lu, unit, row)
    inverse = (method, terms)
    d = np.zeros(size)
    jacobian.prod_init(kind, jac_prod)
    peak = 0.0
    for t in range(1, n_steps + 1):
        if not _advance(
            ar, cell, kind, theta, h_prev, v[t - 1], h, g[t - 1], d, scratch, inverse
        ):
            return t, peak
        jacobian.prod_update(ar, kind, jac_prod, jac, work)
        peak = max(peak, np.sqrt(np.sum(d * d)))
        h_prev[:] = h
    jacobian.prod_apply(ar, kind, jac_prod, _difference(ar, g[n_steps], d), delta0)
    return 0, peak


@kernel
def fptt_error_pass(ar, cell, theta, v, g, delta0, grad, dv, residual, method, terms):
    r"""FPTT phase 2: errors and gradients, forward in time.

    From ``d = delta0``: ``d <- J_{t-1}^{-T} (d - g[t-1])`` (now ``d = delta_t``)
    and ``grad += (df/dtheta)^T d`` for ``t = 1..T``; ``residual = d - g[T]``,
    zero in exact arithmetic. ``J^{-T}`` is applied by ``method`` with
    ``terms``, as in the warm-up. Returns ``(status, peak)`` as the warm-up
    does.
    """
    kind = dispatch.jacobian_kind(cell)
    n_steps = v.shape[0]
    size = g.shape[1]
    jac, work, lu, h_prev, h, unit, row = _scratch(kind, size)
    scratch = (jac, work, lu, unit, row)
    inverse = (method, terms)
    d = delta0.copy()
    d_prev = np.empty(size)
    peak = np.sqrt(np.sum(d * d))
    for t in range(1, n_steps + 1):
        if not _advance(
            ar, cell, kind, theta, h_prev, v[t - 1], h, g[t - 1], d, scratch, inverse
        ):
            return t, peak
        dispatch.vjp(
            ar, cell, theta, h_prev, v[t - 1], h, d, d_prev, grad, dv[t - 1], True
        )
        peak = max(peak, np.sqrt(np.sum(d * d)))
        h_prev[:] = h
    residual[:] = d - g[n_steps]
    return 0, peak


@kernel
def rtrl(ar, cell, theta, v, g, grad, sens):
    r"""Real-time recurrent learning: forward sensitivities ``dh_t/dtheta``.

    ``sens[m] = dh/dtheta_m`` (shape ``(M, S)``, zero on entry) follows
    ``sens <- J_{t-1} sens + df/dtheta`` and ``grad += sens g[t]`` at every
    step. Exact, at a memory of ``S M`` numbers.
    """
    kind = dispatch.jacobian_kind(cell)
    n_steps = v.shape[0]
    size = g.shape[1]
    n_params = theta.shape[0]
    jac = np.empty(_jac_size(kind, size))
    h_prev = np.zeros(size)
    h = np.empty(size)
    unit = np.zeros(size)
    row = np.empty(size)
    moved = np.empty(size)
    grad_row = np.empty(n_params)
    dv_scratch = np.zeros(v.shape[1])  # errors on the input: RTRL needs none
    for t in range(1, n_steps + 1):
        dispatch.step(ar, cell, theta, h_prev, v[t - 1], h)
        _jacobian(ar, cell, theta, h_prev, v[t - 1], h, jac, unit, row)
        for m in range(n_params):
            jacobian.mul_vector(ar, kind, jac, sens[m], moved)
            sens[m] = moved

        # df_s/dtheta is the parameter gradient of the unit error e_s
        for s in range(size):
            unit[s] = 1.0
            grad_row[:] = 0.0
            dv_scratch[:] = 0.0
            dispatch.vjp(
                ar,
                cell,
                theta,
                h_prev,
                v[t - 1],
                h,
                unit,
                row,
                grad_row,
                dv_scratch,
                True,
            )
            unit[s] = 0.0
            for m in range(n_params):
                accumulate(ar, JACOBIAN_PRODUCT, sens[m], s, grad_row[m])

        for m in range(n_params):
            dot = 0.0
            for s in range(size):
                dot = mac(ar, dot, sens[m, s], g[t, s])
            accumulate(ar, GRADIENT, grad, m, dot)
        h_prev[:] = h


@kernel
def fptt_segmented(
    ar,
    cell,
    theta,
    v,
    g,
    bounds,
    refine,
    tol,
    jac_prods,
    ends,
    deltas,
    grad,
    dv,
    method,
    terms,
):
    r"""FPTT over segments, with refinement passes: fewer steps to amplify.

    The window's steps are cut at ``bounds`` (``0 = b_0 < ... < b_K = T``).
    Over segment ``k`` (steps ``b_{k-1} + 1 .. b_k``) the error equation is
    affine, ``delta_{b_k} = P_k^{-1} delta_{b_{k-1}} + c_k``, with
    ``P_k = J_{b_{k-1}}^T ... J_{b_k - 1}^T`` and ``c_k`` the end value of
    the forward recursion started from zero at ``b_{k-1}``: the warm-up, run
    once over the window and restarted at each boundary, keeps ``P_k`` and
    ``c_k`` per segment. Hence, from ``delta_T = g_T``, the boundary errors
    follow backwards over the boundaries alone:

        delta_{b_{k-1}} = P_k (delta_{b_k} - c_k),      k = K .. 1,

    a contracting recursion (the ``P_k`` contract). The error pass then
    restarts every segment from its stored boundary error, so that a
    rounding error grows over ``T / K`` steps at most instead of ``T``:
    ``|lambda|^{-T/K}`` rather than ``|lambda|^{-T}``. With ``K = 1`` this is
    FPTT itself.

    Each segment's end residual ``r_k = d_{b_k} - delta_{b_k}`` measures what
    rounding did; a Newton step on the segment's affine map,
    ``delta_{b_{k-1}} <- delta_{b_{k-1}} - P_k r_k``, and another pass over
    the segment repair it (../docs/fptt.md §4). Refinement probes each
    segment, its recursion alone: a probe measures the residual from the
    current start error, and while it shrinks (and stays above
    ``tol |delta_{b_k}|``) a Newton step moves the start and another probe
    checks it, up to ``refine`` steps. A step that does not shrink the
    residual (rounding can make ``P_k r_k`` worse than nothing) is undone.
    Then the segment's error pass runs once from the best start found, so
    that the gradient and the errors sent below are added once, as a device
    that cannot take them back does. Memory: ``K`` products and end values,
    ``K + 1`` boundary errors, independent of ``T``.

    ``jac_prods`` (K, J), ``ends`` (K, S), ``deltas`` (K + 1, S) are filled;
    ``grad`` and ``dv`` receive the gradient and the input errors. Every pass
    applies ``J^{-T}`` by ``method`` with ``terms``
    (:func:`jacobian.inverse_transpose`). Returns
    ``(status, steps, worst, delta_peak, warmup_peak)``: 0 or the singular
    step, the steps run by probes and error passes in all, the largest
    relative end residual left, and the largest ``|d|_2`` of the error
    passes (from ``delta_0``) and of the warm-up.
    """
    kind = dispatch.jacobian_kind(cell)
    size = g.shape[1]
    n_seg = bounds.shape[0] - 1
    jac, work, lu, h_prev, h, unit, row = _scratch(kind, size)
    starts = np.zeros((n_seg, size))  # the state at each segment's start

    # pass 1: the warm-up, restarted at each boundary
    scratch = (jac, work, lu, unit, row)
    unused = np.empty(0)
    warmup_peak = 0.0
    for k in range(n_seg):
        starts[k] = h_prev
        d = np.zeros(size)
        jacobian.prod_init(kind, jac_prods[k])
        status, seg_peak = _segment_pass(
            ar,
            cell,
            kind,
            theta,
            v,
            g,
            bounds[k],
            bounds[k + 1],
            h_prev,
            h,
            d,
            scratch,
            jac_prods[k],
            unused,
            dv,
            WARM_UP,
            method,
            terms,
        )
        if status:
            return status, 0, 0.0, 0.0, warmup_peak
        warmup_peak = max(warmup_peak, seg_peak)
        ends[k] = d

    # the boundary errors, backwards over the boundaries alone
    for i in range(size):
        deltas[n_seg, i] = rnd(ar, ERROR, g[bounds[n_seg], i])
    for k in range(n_seg - 1, -1, -1):
        jacobian.prod_apply(
            ar, kind, jac_prods[k], _difference(ar, deltas[k + 1], ends[k]), deltas[k]
        )

    # pass 2: errors and gradients, each segment from its boundary error.
    # Refinement first probes the segment (its recursion alone) to move the
    # start error, then runs it once for real, as the device does.
    steps = 0
    worst = 0.0
    delta_peak = np.sqrt(np.sum(deltas[0] * deltas[0]))
    fix = np.empty(size)
    for k in range(n_seg):
        first, last = bounds[k], bounds[k + 1]
        start = deltas[k].copy()
        target = np.sqrt(np.sum(deltas[k + 1] * deltas[k + 1]))
        probing = refine > 0
        attempts = 0
        best = np.inf  # the smallest residual a probe has met, from best_start
        best_start = start.copy()
        while True:
            h_prev[:] = starts[k]
            d = start.copy()
            status, seg_peak = _segment_pass(
                ar,
                cell,
                kind,
                theta,
                v,
                g,
                first,
                last,
                h_prev,
                h,
                d,
                scratch,
                jac_prods[k],
                grad,
                dv,
                PROBE if probing else ERRORS,
                method,
                terms,
            )
            if status:
                return status, steps, worst, delta_peak, warmup_peak
            steps += last - first
            r = _difference(ar, d, deltas[k + 1])
            rel = np.sqrt(np.sum(r * r)) / target if target > 0 else 0.0
            if not probing:
                delta_peak = max(delta_peak, seg_peak)
                break
            best, attempts, probing = refine_step(
                ar,
                kind,
                jac_prods[k],
                r,
                rel,
                start,
                best_start,
                best,
                attempts,
                refine,
                tol,
                fix,
            )
        worst = max(worst, rel)
    return 0, steps, worst, delta_peak, warmup_peak


@kernel
def refine_step(
    ar, kind, jac_prod, r, rel, start, best_start, best, attempts, refine, tol, fix
):
    """Refinement's decision after probing a segment from ``start``.

    ``r`` is the probe's end residual, ``rel`` its size relative to the
    boundary error, ``best`` the smallest one met so far (from
    ``best_start``). A probe that did not improve on it (or whose residual
    is not finite) undoes the last Newton step: ``start`` goes back to
    ``best_start``. Otherwise ``start`` becomes the best, and while steps
    are left and ``rel > tol`` the Newton step ``start <- start - P r``
    follows, to be probed in turn. Updates ``start`` and ``best_start`` in
    place; returns ``(best, attempts, probing)``, with ``probing`` False
    when the segment is to run for real from ``start``. Both schedules
    call it, so that they refine alike.
    """
    if not rel <= best:
        start[:] = best_start
        return best, attempts, False
    best_start[:] = start
    if attempts < refine and rel > tol:
        jacobian.prod_apply(ar, kind, jac_prod, r, fix)
        start[:] = _difference(ar, start, fix)
        return rel, attempts + 1, True
    return rel, attempts, False


@kernel
def _segment_pass(
    ar,
    cell,
    kind,
    theta,
    v,
    g,
    first,
    last,
    h_prev,
    h,
    d,
    scratch,
    jac_prod,
    grad,
    dv,
    what,
    method,
    terms,
):
    """Steps ``first + 1 .. last`` of a forward error pass from ``d``.

    ``what`` is :data:`WARM_UP` (each ``J^T`` is multiplied into
    ``jac_prod``), :data:`PROBE` (the recursion alone) or :data:`ERRORS` (each
    step's gradient is added to ``grad`` and its input errors to ``dv``).
    ``J^{-T}`` is applied by ``method`` with ``terms``. Returns
    ``(status, peak)``: 0, or the step whose Jacobian was singular, and the
    largest ``|d|_2`` after a step.
    """
    jac, work, _, _, _ = scratch
    inverse = (method, terms)
    d_prev = np.empty(d.shape[0])
    peak = 0.0
    for t in range(first + 1, last + 1):
        if not _advance(
            ar, cell, kind, theta, h_prev, v[t - 1], h, g[t - 1], d, scratch, inverse
        ):
            return t, peak
        peak = max(peak, np.sqrt(np.sum(d * d)))
        if what == WARM_UP:
            jacobian.prod_update(ar, kind, jac_prod, jac, work)
        elif what == ERRORS:
            dispatch.vjp(
                ar, cell, theta, h_prev, v[t - 1], h, d, d_prev, grad, dv[t - 1], True
            )
        h_prev[:] = h
    return 0, peak
