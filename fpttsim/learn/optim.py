"""Optimisers on the flat parameter vector: the Python front end.

:class:`Optimizer` holds the state and the per-parameter multipliers and calls
the compiled update (:mod:`._optim_kernels`), which a compiled event loop can
call as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fpttsim.learn._optim_kernels import (
    OPTIMIZERS,
    SCHEDULES,
    lr_at,
    optimizer_step,
)
from fpttsim.numerics.codes import WEIGHTS


class Optimizer:
    """AdamW or SGD (with optional momentum), on a learning-rate schedule.

    Parameters
    ----------
    kind
        ``"adam"`` (with decoupled weight decay, i.e. AdamW) or ``"sgd"``.
    size
        Number of parameters.
    lr
        Peak learning rate.
    weight_decay
        Decoupled weight decay: ``theta -= lr_i * weight_decay * theta``
        where ``decay_mask`` is 1.
    clip
        Global gradient-norm bound, or None.
    betas, eps
        Adam's moment decay rates and denominator guard.
    arithmetic
        The device's formats (:class:`fpttsim.numerics.arithmetic.Arithmetic`);
        None for float64.
    momentum
        SGD's momentum, in ``[0, 1)``; 0 is plain SGD.
    schedule, warmup, lr_min, horizon
        The schedule (:func:`lr_at`): ``"constant"`` or ``"cosine"``, updates
        of linear warm-up, the cosine's floor, and the number of updates the
        cosine spans (required by it).
    lr_scale, decay_mask
        Per-parameter multipliers of the learning rate and of the weight
        decay (:func:`parameter_multipliers`); None means ones.
    weight_blocks
        Slices of the arrays stored in the weights' format
        (:meth:`fpttsim.network.Network.stored_weights`); the update rounds
        them. Other parameters are the learner's, kept in float64.

    Raises
    ------
    ValueError
        For an unknown kind or schedule, a cosine without a horizon,
        momentum with Adam, or multipliers of the wrong length.
    """

    def __init__(
        self,
        kind: str,
        size: int,
        lr: float,
        weight_decay: float = 0.0,
        clip: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        arithmetic=None,
        *,
        momentum: float = 0.0,
        schedule: str = "constant",
        warmup: int = 0,
        lr_min: float = 0.0,
        horizon: int | None = None,
        lr_scale: np.ndarray | None = None,
        decay_mask: np.ndarray | None = None,
        weight_blocks: Sequence[slice] = (),
    ) -> None:
        if kind not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {OPTIMIZERS}, got {kind!r}; use 'adam' "
                "for AdamW"
            )
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if schedule == "cosine" and horizon is None:
            raise ValueError(
                "schedule 'cosine' needs horizon, the number of updates it spans, "
                "got None; pass horizon=training.steps"
            )
        if kind == "adam" and momentum:
            raise ValueError(
                f"momentum is SGD's, got momentum={momentum} with 'adam'; Adam's "
                "first moment is set by betas"
            )
        self.kind = kind
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.betas = betas
        self.eps = eps
        self.momentum = momentum
        self.schedule = schedule
        self.warmup = warmup
        self.lr_min = lr_min
        self.horizon = horizon
        self.arithmetic = arithmetic
        self.lr_scale = _per_parameter(lr_scale, size, "lr_scale")
        self.decay_mask = _per_parameter(decay_mask, size, "decay_mask")
        self.blocks = np.array(
            [(s.start, s.stop) for s in weight_blocks], dtype=np.int64
        ).reshape(-1, 2)
        self.shared = bool(
            arithmetic is not None and arithmetic.formats[WEIGHTS].shared_exponent
        )
        self.steps = 0
        # Adam's moments; SGD's momentum buffer in m. Empty where unused.
        self.m = np.zeros(size if kind == "adam" or momentum else 0)
        self.v = np.zeros(size if kind == "adam" else 0)

    @classmethod
    def from_config(cls, learning, net, horizon: int, arithmetic=None) -> Optimizer:
        """The optimiser a scenario's ``learning`` section describes.

        Parameters
        ----------
        learning
            A :class:`fpttsim.config.LearningConfig`.
        net
            The :class:`fpttsim.network.Network` whose parameters it updates.
        horizon
            Number of updates of the run (the cosine's span).
        arithmetic
            The device's formats, or None for float64.

        Returns
        -------
        Optimizer
        """
        lr_scale, decay_mask = parameter_multipliers(net, learning.recurrent_lr_factor)
        return cls(
            learning.optimizer,
            net.size,
            learning.lr,
            weight_decay=learning.weight_decay,
            clip=learning.clip,
            arithmetic=arithmetic,
            momentum=learning.momentum,
            schedule=learning.schedule,
            warmup=learning.warmup,
            lr_min=learning.lr_min,
            horizon=horizon,
            lr_scale=lr_scale,
            decay_mask=decay_mask,
            weight_blocks=net.stored_weights(),
        )

    def current_lr(self, step: int | None = None) -> float:
        """The learning rate of update ``step`` (from 1; the next one if None)."""
        step = self.steps + 1 if step is None else step
        schedule = SCHEDULES.index(self.schedule)
        horizon = self.horizon if self.horizon is not None else 0
        return lr_at(step, self.lr, schedule, self.warmup, horizon, self.lr_min)

    def step(self, theta: np.ndarray, grad: np.ndarray) -> float:
        """Update ``theta`` in place; return the gradient norm before clipping.

        ``theta`` must be a contiguous float64 vector; ``grad`` is not
        modified. Parameters in ``weight_blocks`` leave stored in the weights'
        format.
        """
        grad = np.array(grad, dtype=np.float64)  # clipping rewrites it
        lr = self.current_lr()
        self.steps += 1
        ar = None
        if self.arithmetic is not None:
            self.arithmetic.begin_window()  # seeds stochastic rounding, if any
            ar = self.arithmetic.ar
        return optimizer_step(
            ar,
            OPTIMIZERS.index(self.kind),
            theta,
            grad,
            self.m,
            self.v,
            self.lr_scale,
            self.decay_mask,
            self.blocks,
            self.shared,
            self.steps,
            lr,
            self.betas[0],
            self.betas[1],
            self.eps,
            self.momentum,
            self.weight_decay,
            math.inf if self.clip is None else self.clip,
        )

    def state_dict(self) -> dict:
        """The optimiser's state, as plain numpy arrays and an int (copies)."""
        return {"steps": self.steps, "m": self.m.copy(), "v": self.v.copy()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a state saved by :meth:`state_dict` of the same optimiser.

        Raises
        ------
        ValueError
            If an array's shape differs from this optimiser's.
        """
        for key in ("m", "v"):
            got = np.asarray(state[key], dtype=np.float64)
            if got.shape != getattr(self, key).shape:
                raise ValueError(
                    f"state {key!r} has shape {got.shape}, this {self.kind} "
                    f"optimiser's has {getattr(self, key).shape}; load a state "
                    "saved by an optimiser of the same kind, size and momentum"
                )
            setattr(self, key, got.copy())
        self.steps = int(state["steps"])


def parameter_multipliers(
    net, recurrent_lr_factor: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-parameter multipliers of the learning rate and the weight decay.

    The parameters that set a cell's recurrence
    (:meth:`fpttsim.network.Network.recurrent_parameters`) learn at
    ``recurrent_lr_factor`` times the rate and do not decay: decay would pull
    their eigenvalues or timescales away from the slow ones FPTT relies on.

    Returns
    -------
    lr_scale, decay_mask : numpy.ndarray
        Float64 vectors of the network's size.
    """
    recurrent = net.recurrent_parameters()
    lr_scale = np.where(recurrent, float(recurrent_lr_factor), 1.0)
    decay_mask = np.where(recurrent, 0.0, 1.0)
    return lr_scale, decay_mask


def _per_parameter(values, size: int, name: str) -> np.ndarray:
    if values is None:
        return np.ones(size)
    out = np.ascontiguousarray(values, dtype=np.float64)
    if out.shape != (size,):
        raise ValueError(
            f"{name} must hold one float per parameter, shape ({size},), got shape "
            f"{out.shape}; build it with parameter_multipliers(net, factor)"
        )
    return out
