"""Optimisers on the flat parameter vector."""

from __future__ import annotations

import numpy as np

from fpttsim.numerics.codes import OPTIMIZER


class Optimizer:
    """Adam (decoupled weight decay, i.e. AdamW) or plain SGD.

    Parameters
    ----------
    kind
        ``"adam"`` or ``"sgd"``.
    size
        Number of parameters.
    lr
        Learning rate.
    weight_decay
        Decoupled weight decay, applied as ``theta -= lr * wd * theta``.
    clip
        Global gradient-norm bound, or None.
    betas, eps
        Adam's moment decay rates and denominator guard.
    arithmetic
        The device's formats: Adam's moments are stored in the optimiser
        state's format. None for float64.
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
    ) -> None:
        if kind not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {kind!r}")
        self.kind = kind
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.betas = betas
        self.eps = eps
        self.steps = 0
        self.arithmetic = arithmetic
        self.m = np.zeros(size) if kind == "adam" else None
        self.v = np.zeros(size) if kind == "adam" else None

    def step(self, theta: np.ndarray, grad: np.ndarray) -> float:
        """Update ``theta`` in place; return the gradient norm before clipping."""
        norm = float(np.linalg.norm(grad))
        if self.clip is not None and norm > self.clip:
            grad = grad * (self.clip / norm)
        if self.weight_decay:
            theta -= self.lr * self.weight_decay * theta
        self.steps += 1
        if self.kind == "sgd":
            theta -= self.lr * grad
            return norm
        b1, b2 = self.betas
        self.m = b1 * self.m + (1.0 - b1) * grad
        self.v = b2 * self.v + (1.0 - b2) * grad * grad
        if self.arithmetic is not None:
            self.m = self.arithmetic.round(OPTIMIZER, self.m)
            self.v = self.arithmetic.round(OPTIMIZER, self.v)
        m_hat = self.m / (1.0 - b1**self.steps)
        v_hat = self.v / (1.0 - b2**self.steps)
        theta -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
        return norm
