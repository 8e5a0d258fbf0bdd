"""Learning algorithms: gradients of a window, and optimisers."""

from fpttsim.learn._optim_kernels import (
    ADAMW,
    SCHEDULES,
    SGD,
    clip_gradient,
    lr_at,
    optimizer_step,
    round_weights,
)
from fpttsim.learn.engine import (
    ALGORITHMS,
    LayerDiagnostics,
    WindowGradient,
    check_algorithm,
    layer_modes,
    stream_gradient,
    stream_online,
    window_gradient,
    window_loss,
)
from fpttsim.learn.optim import Optimizer, parameter_multipliers

__all__ = [
    "ADAMW",
    "ALGORITHMS",
    "LayerDiagnostics",
    "Optimizer",
    "SCHEDULES",
    "SGD",
    "WindowGradient",
    "check_algorithm",
    "clip_gradient",
    "layer_modes",
    "lr_at",
    "optimizer_step",
    "parameter_multipliers",
    "round_weights",
    "stream_gradient",
    "stream_online",
    "window_gradient",
    "window_loss",
]
