"""Recurrent cells: step, Jacobian, its inverse transpose and gradients.

Each cell module holds compiled per-step kernels on real float64 arrays and
Python functions that describe its parameters; :mod:`.dispatch` selects a
cell's kernels by an integer code inside compiled loops. :class:`CellSpec`
is the Python-side description a network uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from fpttsim.cells import diagonal, dispatch, gru, lru, rnn
from fpttsim.cells.jacobian import COMPLEX_DIAGONAL, DENSE, REAL_DIAGONAL

_MODULES: dict[str, tuple[int, ModuleType]] = {
    "lru": (dispatch.LRU, lru),
    "diagonal": (dispatch.DIAGONAL, diagonal),
    "rnn": (dispatch.RNN, rnn),
    "gru": (dispatch.GRU, gru),
}

CELL_NAMES = tuple(_MODULES)


@dataclass(frozen=True)
class CellSpec:
    """A cell type with its sizes.

    Parameters
    ----------
    name
        One of :data:`CELL_NAMES`.
    hidden
        Number of units ``N`` (complex units for the LRU).
    inputs
        Size ``I`` of the cell's input.
    """

    name: str
    hidden: int
    inputs: int

    def __post_init__(self) -> None:
        if self.name not in _MODULES:
            raise ValueError(
                f"unknown cell {self.name!r}; expected one of {', '.join(CELL_NAMES)}"
            )

    @property
    def code(self) -> int:
        """Integer code the compiled kernels dispatch on."""
        return _MODULES[self.name][0]

    @property
    def module(self) -> ModuleType:
        """The module holding the cell's kernels."""
        return _MODULES[self.name][1]

    @property
    def state_size(self) -> int:
        """Real numbers in the state (``2N`` for the LRU, else ``N``)."""
        return self.module.state_size(self.hidden)

    @property
    def jacobian_kind(self) -> int:
        """``COMPLEX_DIAGONAL``, ``REAL_DIAGONAL`` or ``DENSE``."""
        return {"lru": COMPLEX_DIAGONAL, "diagonal": REAL_DIAGONAL}.get(
            self.name, DENSE
        )

    @property
    def is_diagonal(self) -> bool:
        """Whether ``J`` and ``P`` are diagonal (memory ``N``, not ``N^2``)."""
        return self.jacobian_kind != DENSE

    @property
    def jacobian_size(self) -> int:
        """Real numbers holding one ``J`` (and one ``P``)."""
        s = self.state_size
        return s if self.is_diagonal else s * s

    @property
    def learner_coordinates(self) -> tuple[str, ...]:
        """Parameters the device does not hold as such (it holds what they
        parametrise, e.g. the LRU's eigenvalues), so that the weights' format
        does not apply to them.
        """  # noqa: D205
        return self.module.LEARNER_COORDINATES

    def parameter_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes of the cell's parameters, in storage order."""
        return self.module.parameter_shapes(self.hidden, self.inputs)

    def initialise(
        self,
        rng: np.random.Generator,
        r_min: float,
        r_max: float,
        max_phase: float,
    ) -> list[np.ndarray]:
        """Initial parameters, one array per entry of :meth:`parameter_shapes`."""
        return self.module.initialise(
            rng, self.hidden, self.inputs, r_min, r_max, max_phase
        )


__all__ = ["CELL_NAMES", "CellSpec"]
