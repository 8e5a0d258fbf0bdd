r"""The device's schedule: FPTT's ``L + 1`` passes, one step at a time.

:mod:`fpttsim.learn._kernels` runs one layer over the whole window at a time,
which keeps every layer's states for the window. A device cannot: it holds
one state per layer and reads the window again from the replay buffer in
every pass (../docs/architecture.md, "Layer by layer over the window").
:func:`window` is that device. Pass ``p`` runs every layer forward at each
step, then from the top down::

    readout error e_t                         (loss counted in pass 1)
    layer l, FPTT, warm-up pass (p = w_l):    block backward -> g_t;
        d' <- J^{-T} (d' - g_{t-1}), P <- P J^T; nothing below gets errors
    layer l, FPTT, later passes (p > w_l):    block backward -> g_t;
        d <- J^{-T} (d - g_{t-1}) = delta_t; errors on the input go down
    layer l, spatial (last pass only):        block backward -> g_t = delta_t

with ``w_l`` counting the FPTT layers from the top (the top one warms up in
pass 1). A warm-up pass ends with ``delta_0 = P (g_T - d')``, kept for the
layer's error passes. Gradients are added once: the readout's in pass 1,
block ``l``'s in its warm-up pass (its output errors are exact from then
on), cell ``l``'s in its first error pass; the passes after that recompute
the same numbers to send errors down, and what they would add to the
gradient goes to a scratch vector instead.

Segmented shooting (``learning.fptt.segments: K``) cuts the window at the
boundaries ``b_0 = 0 < ... < b_K = T`` shared by every layer. A warm-up pass
restarts its recursion at each boundary, keeping per segment the product
``P_k`` and the end value ``c_k``; at its end the boundary errors follow
backwards over the boundaries alone (:func:`fpttsim.learn._kernels.fptt_segmented`
derives it), and overwrite the ``c_k`` they no longer need. Error passes
restart every segment from its boundary error.

Refinement (``learning.fptt.refine``) happens in a layer's first error pass,
segment by segment. The device first runs probes: the segment again from a
checkpoint of every layer's state and ``g_{t-1}`` at its start, with the
refining layer only running its recursion (nothing goes below it, nothing is
added to the gradient). While a probe's end residual ``r`` shrinks and stays
above ``until |delta_{b_k}|``, the Newton step ``- P_k r`` moves the
segment's start error and another probe checks it, up to ``refine`` steps;
a step that did harm is undone. Then the segment runs once more, for real,
from the best start error found, which is stored back so that later passes
recompute the same errors. The layer-by-layer kernel makes the same probes,
so the two agree to the bit.

Every operation sees the numbers the layer-by-layer kernels give it, in the
same order, so the gradient is the same to the bit under any deterministic
rounding (stochastic rounding draws in another order). Memory is what the
device holds: a few vectors per layer and ``K`` products ``P``, whatever
``T``.
"""

from __future__ import annotations

import numpy as np

from fpttsim.cells import dispatch, jacobian
from fpttsim.learn import _kernels
from fpttsim.network import block, readout
from fpttsim.numerics import kernel
from fpttsim.numerics.arithmetic import rnd
from fpttsim.numerics.codes import ERROR

SPATIAL = 0
FPTT = 1

# columns of ``peaks``, one row per layer
DELTA_PEAK, WARMUP_PEAK = range(2)
# columns of ``stats``: the largest relative end residual of a segment's last
# run, and the steps run by error passes (probes included)
WORST_RESIDUAL, ERROR_STEPS = range(2)
# entries of ``options``
REFINE, INVERSE, TERMS = range(3)


@kernel
def _norm(x):
    return np.sqrt(np.sum(x * x))


@kernel
def _warm_up_passes(modes):
    """``w_l`` of each layer (0 for spatial ones) and the number of passes."""
    n_layers = modes.shape[0]
    warm = np.zeros(n_layers, np.int64)
    n_fptt = 0
    for layer in range(n_layers - 1, -1, -1):
        if modes[layer] == FPTT:
            n_fptt += 1
            warm[layer] = n_fptt
    return warm, n_fptt + 1


@kernel
def _columns(theta, block_at, size, d_in, width, hidden_ff):
    """Each layer's block weights by columns (:func:`block.weight_columns`)."""
    out = []
    for layer in range(block_at.shape[0]):
        n_in = d_in if layer == 0 else width
        part = theta[block_at[layer, 0] : block_at[layer, 1]]
        out.append(block.weight_columns(part, size, n_in, width, hidden_ff))
    return out


@kernel
def _layer_forward(
    ar, cell, theta, cell_at, block_at, columns, layer, u, h_prev, h, o, scratch
):
    """One layer's step, ``h = f(h_prev, u)``, and its block's output ``o``.

    ``scratch`` is ``(y, m, a1, q, tmp)`` of :func:`block.forward_step`, which
    keep the block's intermediates; returns its ``inv_std``.
    """
    y, m, a1, q, tmp = scratch
    cell_theta = theta[cell_at[layer, 0] : cell_at[layer, 1]]
    dispatch.step(ar, cell, cell_theta, h_prev, u, h)
    block_theta = theta[block_at[layer, 0] : block_at[layer, 1]]
    width, hidden_ff = o.shape[0], a1.shape[0]
    return block.forward_step(
        ar, block_theta, columns[layer], u, h, width, hidden_ff, y, m, a1, q, o, tmp
    )


@kernel
def _segment_of(bounds, t):
    """The segment holding step ``t`` (0-based): ``b_k <= t < b_{k+1}``."""
    k = 0
    while k + 2 < bounds.shape[0] and bounds[k + 1] <= t:
        k += 1
    return k


@kernel
def _boundary_errors(ar, kind, jac_prod, boundary, g_end, d, delta0):
    """The boundary errors from ``delta_T = g_T``, backwards over boundaries.

    On entry ``boundary[k]`` is ``c_k`` (``k < K - 1``) and ``d`` is
    ``c_{K-1}``; on exit ``boundary[k]`` holds ``delta_{b_{k+1}}`` and
    ``delta0`` holds ``delta_0``, each ``P_k (delta_{b_{k+1}} - c_k)``.
    """
    n_seg = jac_prod.shape[0]
    top = np.empty(d.shape[0])
    for i in range(d.shape[0]):
        top[i] = rnd(ar, ERROR, g_end[i])
    x = _kernels._difference(ar, top, d)
    jacobian.prod_apply(ar, kind, jac_prod[n_seg - 1], x, delta0)
    for k in range(n_seg - 2, -1, -1):
        x = _kernels._difference(ar, delta0, boundary[k])
        boundary[k] = delta0
        jacobian.prod_apply(ar, kind, jac_prod[k], x, delta0)


@kernel
def window(
    ar,
    cell,
    size,
    modes,
    theta,
    cell_at,
    block_at,
    readout_at,
    width,
    hidden_ff,
    inputs,
    labels,
    targets,
    mask,
    classify,
    grad,
    signals,
    state,
    delta,
    jac_prod,
    residual,
    g_end,
    peaks,
    span,
    bounds,
    options,
    tol,
    boundary,
    keep_state,
    keep_errors,
    stats,
):
    """Loss and gradient of one window, as the device computes them.

    ``modes[l]`` is :data:`FPTT` or :data:`SPATIAL` (FPTT layers on top);
    ``cell_at[l]``, ``block_at[l]`` and ``readout_at`` are ``[start, stop)``
    of each part in ``theta``; ``inputs`` are ``(T, D)``, already in the input
    format; ``labels`` ``(T,)`` (classification) or ``targets`` ``(T, O)``.
    Adds to ``grad``. The device's own buffers come from the caller (its
    memory arena): ``signals`` ``(L + 1, max(D, H))``, each layer's input and
    the top one's output; ``state`` ``(2, L, S)``, ``h_t`` and ``h_{t-1}``;
    ``delta`` ``(3, L, S)``, the error, ``g_{t-1}`` and ``delta_0``;
    ``jac_prod`` ``(L, K, J)``, each segment's ``P``; ``boundary``
    ``(L, K - 1, S)``, the other boundary errors; ``keep_state`` ``(L, S)``
    and ``keep_errors`` ``(L + 1, S)``, the checkpoint a refined segment
    restarts from (each layer's state and ``g_{t-1}`` at its start) and the
    best start error a probe has found. Fills, per
    layer, ``residual`` (``delta_T - g_T`` of the first error
    pass), ``g_end`` (``g_T``), ``peaks`` (the largest ``|delta_t|_2`` of the
    error and the warm-up pass: :data:`DELTA_PEAK`, :data:`WARMUP_PEAK`) and
    ``stats`` (:data:`WORST_RESIDUAL`, :data:`ERROR_STEPS`). Returns
    ``(status, layer, warming, loss, correct, counted)``: ``status`` is 0, or
    the step at which ``layer``'s Jacobian was singular (in its warm-up pass
    when ``warming``).

    ``bounds`` are the segments' boundaries (``[0, T]`` for one);
    ``options`` the refinement passes, the inverse's method and its terms
    (:data:`REFINE`, :data:`INVERSE`, :data:`TERMS`); ``tol`` the relative
    end residual that ends refinement early (0: never).

    ``span`` ``[p_first, p_last, t_first, t_stop, online]`` runs a part of the
    schedule: passes ``p_first..p_last`` (0 for the last), from step
    ``t_first`` of the first to step ``t_stop`` (-1 for ``T``) of the last;
    what a pass carries from step to step stays in the buffers, so that parts
    run one after the other compute what one call does (between them, the
    caller may update ``theta``: the truly online variant, which refinement
    does not support). With ``online`` set, every gradient is added in the
    last pass, with the parameters of the moment (a one-layer network: the
    readout's and block's too).
    """
    n_layers = modes.shape[0]
    n_steps, d_in = inputs.shape
    kind = dispatch.jacobian_kind(cell)
    warm, passes = _warm_up_passes(modes)
    wide = max(d_in, width)
    n_out = (readout_at[1] - readout_at[0]) // (width + 1)  # W (O, H) | b (O)
    theta_out = theta[readout_at[0] : readout_at[1]]
    total = np.sum(mask)
    n_seg = bounds.shape[0] - 1
    refine, method, terms = options[REFINE], options[INVERSE], options[TERMS]
    plain = n_seg == 1 and refine == 0

    u = signals
    h, h_prev = state[0], state[1]
    d, g_prev, delta0 = delta[0], delta[1], delta[2]
    peak = peaks  # running maxima, kept in the caller's array between parts
    p_first, p_last, t_first, t_stop, online = (
        span[0],
        span[1],
        span[2],
        span[3],
        span[4] != 0,
    )
    if p_last == 0:
        p_last = passes
    if t_stop < 0:
        t_stop = n_steps

    # scratch of one step
    jac, work, lu, _, _, unit, row = _kernels._scratch(kind, size)
    g = np.empty(size)
    d_prev = np.empty(size)
    fix = np.empty(size)
    e = np.zeros(width)
    du = np.empty(wide)
    z = np.empty(n_out)
    dz = np.empty(n_out)
    junk = np.empty(grad.shape[0])
    scratch = block.backward_scratch(size, wide, width, hidden_ff)
    y, _, _, _, _, _, _, _, _, tmp = scratch
    # each layer's block intermediates, from its forward step to its errors
    kept_m = np.empty((n_layers, width))
    kept_a1 = np.empty((n_layers, hidden_ff))
    kept_q = np.empty((n_layers, hidden_ff))
    inv_std = np.empty(n_layers)
    columns = _columns(theta, block_at, size, d_in, width, hidden_ff)

    loss = 0.0
    correct = 0
    for p in range(p_first, p_last + 1):
        begin = t_first if p == p_first else 0
        end = t_stop if p == p_last else n_steps
        junk[:] = 0.0
        # the layer whose first error pass this is: the one that refines
        first_error = -1
        for layer in range(n_layers):
            if modes[layer] == FPTT and warm[layer] + 1 == p:
                first_error = layer
        for layer in range(n_layers):
            if begin > 0:
                break  # a pass resumed: its state is in the buffers
            h[layer] = 0.0
            g_prev[layer] = 0.0
            if modes[layer] == FPTT and warm[layer] == p:
                peak[layer, WARMUP_PEAK] = 0.0
            elif modes[layer] == FPTT and warm[layer] + 1 == p:
                peak[layer, DELTA_PEAK] = _norm(delta0[layer])
                stats[layer] = 0.0

        seg = _segment_of(bounds, begin)
        probing = refine > 0 and first_error >= 0
        attempts = 0
        best = np.inf  # the smallest residual a probe met, from best_start
        best_start = keep_errors[n_layers]
        t = begin
        while t < end:
            if t == bounds[seg]:
                # a segment starts: warm-ups from zero, errors from the boundary
                for layer in range(n_layers):
                    if modes[layer] != FPTT or warm[layer] > p:
                        continue
                    if warm[layer] == p:
                        d[layer] = 0.0
                        jacobian.prod_init(kind, jac_prod[layer, seg])
                    elif seg == 0:
                        d[layer] = delta0[layer]
                    else:
                        d[layer] = boundary[layer, seg - 1]
                if probing:
                    keep_state[:] = h
                    keep_errors[:n_layers] = g_prev

            # every layer forward
            u[0, :d_in] = inputs[t]
            for layer in range(n_layers):
                n_in = d_in if layer == 0 else width
                h_prev[layer] = h[layer]
                inv_std[layer] = _layer_forward(
                    ar,
                    cell,
                    theta,
                    cell_at,
                    block_at,
                    columns,
                    layer,
                    u[layer, :n_in],
                    h_prev[layer],
                    h[layer],
                    u[layer + 1, :width],
                    (y, kept_m[layer], kept_a1[layer], kept_q[layer], tmp),
                )

            # the readout's error
            if mask[t] == 0.0:
                e[:] = 0.0
            else:
                out = grad if p == (passes if online else 1) else junk
                out = out[readout_at[0] : readout_at[1]]
                if classify:
                    l_t, hit = readout.cross_entropy_step(
                        ar,
                        theta_out,
                        u[n_layers, :width],
                        labels[t],
                        mask[t] / total,
                        out,
                        e,
                        z,
                        dz,
                    )
                else:
                    scale = 2.0 * mask[t] / (total * n_out)
                    l_t = readout.squared_error_step(
                        ar,
                        theta_out,
                        u[n_layers, :width],
                        targets[t],
                        scale,
                        out,
                        e,
                        z,
                        dz,
                    )
                    hit = 0
                if p == 1:
                    loss += mask[t] * l_t
                    correct += hit

            # errors, from the top layer down
            for layer in range(n_layers - 1, -1, -1):
                n_in = d_in if layer == 0 else width
                fptt = modes[layer] == FPTT
                if fptt and not online:
                    first = warm[layer] == p
                else:
                    first = p == passes
                out = grad if first else junk
                block.backward_from(
                    ar,
                    theta[block_at[layer, 0] : block_at[layer, 1]],
                    u[layer, :n_in],
                    h[layer],
                    e,
                    hidden_ff,
                    out[block_at[layer, 0] : block_at[layer, 1]],
                    g,
                    du[:n_in],
                    kept_m[layer],
                    kept_a1[layer],
                    kept_q[layer],
                    inv_std[layer],
                    scratch,
                )
                cell_theta = theta[cell_at[layer, 0] : cell_at[layer, 1]]
                delta = g
                if fptt:
                    _kernels._jacobian(
                        ar,
                        cell,
                        cell_theta,
                        h_prev[layer],
                        u[layer, :n_in],
                        h[layer],
                        jac,
                        unit,
                        row,
                    )
                    x = _kernels._difference(ar, d[layer], g_prev[layer])
                    if not jacobian.inverse_transpose(
                        ar, kind, jac, x, d[layer], lu, method, terms
                    ):
                        return t + 1, layer, warm[layer] == p, loss, correct, 0
                    g_prev[layer] = g
                    if warm[layer] == p:
                        jacobian.prod_update(ar, kind, jac_prod[layer, seg], jac, work)
                        peak[layer, WARMUP_PEAK] = max(
                            peak[layer, WARMUP_PEAK], _norm(d[layer])
                        )
                        break  # the layers below have no exact errors yet
                    if layer == first_error and probing:
                        break  # a probe: only this layer's recursion
                    if warm[layer] + 1 == p:
                        peak[layer, DELTA_PEAK] = max(
                            peak[layer, DELTA_PEAK], _norm(d[layer])
                        )
                    out = grad if warm[layer] + 1 == p else junk
                    delta = d[layer]
                dispatch.vjp(
                    ar,
                    cell,
                    cell_theta,
                    h_prev[layer],
                    u[layer, :n_in],
                    h[layer],
                    delta,
                    d_prev,
                    out[cell_at[layer, 0] : cell_at[layer, 1]],
                    du[:n_in],
                    True,
                )
                if layer > 0:
                    e[:] = du[:width]
            t += 1

            if plain or t != bounds[seg + 1]:
                continue
            # a segment ends: warm-ups keep their end value c_k
            last = seg + 1 == n_seg
            for layer in range(n_layers):
                if modes[layer] == FPTT and warm[layer] == p and not last:
                    boundary[layer, seg] = d[layer]
            if first_error < 0:
                if not last:
                    seg += 1
                continue

            # the refining layer's end residual against the boundary error
            fe = first_error
            if last:
                target = np.empty(size)
                for i in range(size):
                    target[i] = rnd(ar, ERROR, g_prev[fe, i])
            else:
                target = boundary[fe, seg]
            r = _kernels._difference(ar, d[fe], target)
            norm = _norm(target)
            rel = _norm(r) / norm if norm > 0 else 0.0
            stats[fe, ERROR_STEPS] += bounds[seg + 1] - bounds[seg]
            if probing:
                # the start is stored back: later passes restart from it
                start = delta0[fe] if seg == 0 else boundary[fe, seg - 1]
                best, attempts, probing = _kernels.refine_step(
                    ar,
                    kind,
                    jac_prod[fe, seg],
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
                # again from the segment's start: a probe, or the real run
                t = bounds[seg]
                h[:] = keep_state
                g_prev[:] = keep_errors[:n_layers]
                continue
            stats[fe, WORST_RESIDUAL] = max(stats[fe, WORST_RESIDUAL], rel)
            if not last:
                seg += 1
                attempts = 0
                best = np.inf
                probing = refine > 0

        # a warm-up pass ends with delta_0; a first error pass with a residual
        for layer in range(n_layers):
            if modes[layer] != FPTT or end < n_steps:
                continue
            if warm[layer] == p and plain:
                x = _kernels._difference(ar, g_prev[layer], d[layer])
                jacobian.prod_apply(ar, kind, jac_prod[layer, 0], x, delta0[layer])
            elif warm[layer] == p:
                _boundary_errors(
                    ar,
                    kind,
                    jac_prod[layer],
                    boundary[layer],
                    g_prev[layer],
                    d[layer],
                    delta0[layer],
                )
            elif warm[layer] + 1 == p:
                residual[layer] = d[layer] - g_prev[layer]
                g_end[layer] = g_prev[layer]
    return 0, -1, False, loss / total, correct, int(total)


@kernel
def infer(
    ar,
    cell,
    size,
    n_layers,
    thetas,
    switch,
    cell_at,
    block_at,
    readout_at,
    width,
    hidden_ff,
    inputs,
    labels,
    targets,
    mask,
    classify,
    signals,
    state,
):
    """Inference on a window's samples as they arrive: ``(loss, correct)``.

    Steps before ``switch`` run with ``thetas[0]``, the others with
    ``thetas[1]`` (an update that lands while the window arrives). ``loss``
    is the sum of the masked steps' losses, weighted by the mask; ``signals``
    ``(2, max(D, H))`` and ``state`` ``(L, S)`` are the inference's own
    buffers.
    """
    n_steps, d_in = inputs.shape
    n_out = (readout_at[1] - readout_at[0]) // (width + 1)
    z = np.empty(n_out)
    scratch = (
        np.empty(width),
        np.empty(width),
        np.empty(hidden_ff),
        np.empty(hidden_ff),
        np.empty(max(width, hidden_ff)),
    )
    before = _columns(thetas[0], block_at, size, d_in, width, hidden_ff)
    after = _columns(thetas[1], block_at, size, d_in, width, hidden_ff)
    h_prev = np.empty(size)
    state[:] = 0.0
    loss = 0.0
    correct = 0
    for t in range(n_steps):
        k = 0 if t < switch else 1
        theta = thetas[k]
        signals[0, :d_in] = inputs[t]
        for layer in range(n_layers):
            n_in = d_in if layer == 0 else width
            h_prev[:] = state[layer]
            _layer_forward(
                ar,
                cell,
                theta,
                cell_at,
                block_at,
                before if k == 0 else after,
                layer,
                signals[layer % 2, :n_in],
                h_prev,
                state[layer],
                signals[(layer + 1) % 2, :width],
                scratch,
            )
        if mask[t] != 0.0:
            l_t, hit = readout.predict_step(
                ar,
                theta[readout_at[0] : readout_at[1]],
                signals[n_layers % 2, :width],
                classify,
                labels[t],
                targets[t],
                z,
            )
            loss += mask[t] * l_t
            correct += hit
    return loss, correct
