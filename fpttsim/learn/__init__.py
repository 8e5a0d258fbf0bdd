"""Learning algorithms: gradients of a window, and optimisers."""

from fpttsim.learn.engine import (
    ALGORITHMS,
    LayerDiagnostics,
    WindowGradient,
    check_algorithm,
    layer_modes,
    stream_gradient,
    window_gradient,
    window_loss,
)
from fpttsim.learn.optim import Optimizer

__all__ = [
    "ALGORITHMS",
    "LayerDiagnostics",
    "Optimizer",
    "WindowGradient",
    "check_algorithm",
    "layer_modes",
    "stream_gradient",
    "window_gradient",
    "window_loss",
]
