"""A stack of recurrent layers with feed-forward blocks and a readout.

All parameters live in one flat float64 vector; :class:`Network` knows where
each named array sits in it. Layer ``l`` (from 0) has a cell reading ``u``
(the task's input for layer 0, the previous block's output above), and a
block (:mod:`.block`) turning its state into the layer's output. The readout
(:mod:`.readout`) reads the top layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fpttsim.cells import CellSpec
from fpttsim.network import block, readout

# The arrays of each cell that set its recurrence: its state's decay and
# rotation, or the matrices (and gate bias) that map the state onto itself.
# TODO: move into the cell modules beside LEARNER_COORDINATES when they are
# next edited, so that a new cell declares its own.
RECURRENT_ARRAYS: dict[str, tuple[str, ...]] = {
    "lru": ("nu_log", "theta_log", "gamma_log"),
    "diagonal": ("nu_log", "gamma_log"),
    "rnn": ("W",),
    "gru": ("Wz", "Wr", "Wn", "bz"),
}


@dataclass(frozen=True)
class ParameterArray:
    """One named parameter array inside the flat vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def size(self) -> int:
        """Number of scalars."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def slice(self) -> slice:
        """Where the array sits in the flat vector."""
        return slice(self.offset, self.offset + self.size)


class Network:
    """Sizes and parameter layout of a stacked recurrent network.

    Parameters
    ----------
    cell
        Cell name: ``"lru"``, ``"diagonal"``, ``"rnn"`` or ``"gru"``.
    layers
        Number of recurrent layers ``L``.
    hidden
        Units per cell ``N``.
    width
        Width ``H`` of each layer's output.
    mlp_hidden
        Hidden size ``F`` of each block's MLP.
    input_size
        Size of the task's input.
    output_size
        Classes (cross-entropy) or outputs (mean squared error).
    loss
        ``"ce"`` or ``"mse"``.
    """

    def __init__(
        self,
        cell: str,
        layers: int,
        hidden: int,
        width: int,
        mlp_hidden: int,
        input_size: int,
        output_size: int,
        loss: str,
    ) -> None:
        if loss not in ("ce", "mse"):
            raise ValueError(f"loss must be 'ce' or 'mse', got {loss!r}")
        self.loss = loss
        self.width = width
        self.mlp_hidden = mlp_hidden
        self.input_size = input_size
        self.output_size = output_size
        self.cells = [
            CellSpec(cell, hidden, input_size if layer == 0 else width)
            for layer in range(layers)
        ]

        arrays: list[ParameterArray] = []
        offset = 0

        def add(prefix: str, shapes: list) -> slice:
            nonlocal offset
            start = offset
            for name, shape in shapes:
                arrays.append(ParameterArray(f"{prefix}.{name}", tuple(shape), offset))
                offset += arrays[-1].size
            return slice(start, offset)

        self.cell_slices: list[slice] = []
        self.block_slices: list[slice] = []
        for layer, spec in enumerate(self.cells):
            prefix = f"layer{layer + 1}"
            self.cell_slices.append(add(f"{prefix}.cell", spec.parameter_shapes()))
            self.block_slices.append(
                add(
                    f"{prefix}.block",
                    block.parameter_shapes(
                        spec.state_size, spec.inputs, width, mlp_hidden
                    ),
                )
            )
        self.readout_slice = add(
            "readout", readout.parameter_shapes(width, output_size)
        )
        self.arrays: tuple[ParameterArray, ...] = tuple(arrays)
        self.size = offset

    @property
    def layers(self) -> int:
        """Number of recurrent layers."""
        return len(self.cells)

    @classmethod
    def from_config(cls, model, task) -> Network:
        """Build from a scenario's ``model`` section and its task."""
        return cls(
            cell=model.cell,
            layers=model.layers,
            hidden=model.hidden,
            width=model.resolved_width(),
            mlp_hidden=model.resolved_mlp_hidden(),
            input_size=task.input_size,
            output_size=task.output_size,
            loss=task.loss,
        )

    def initialise(
        self,
        rng: np.random.Generator,
        r_min: float,
        r_max: float,
        max_phase: float = 2 * np.pi,
    ) -> np.ndarray:
        """A flat parameter vector drawn from ``rng``."""
        parts: list[np.ndarray] = []
        for spec in self.cells:
            parts += spec.initialise(rng, r_min, r_max, max_phase)
            parts += block.initialise(
                rng, spec.state_size, spec.inputs, self.width, self.mlp_hidden
            )
        parts += readout.initialise(rng, self.width, self.output_size)
        theta = np.concatenate([np.ravel(p) for p in parts]).astype(np.float64)
        if theta.size != self.size:
            raise RuntimeError(
                f"initialisers produced {theta.size} parameters but the layout "
                f"has {self.size}: a cell's initialise() and parameter_shapes() "
                "disagree"
            )
        return theta

    def groups(self) -> dict[str, slice]:
        """Slices of the flat vector by parameter name."""
        return {a.name: a.slice for a in self.arrays}

    def stored_weights(self) -> list[slice]:
        """Slices of the arrays a device stores in its weights' format.

        Every array but the cells' learner coordinates (see
        :attr:`fpttsim.cells.CellSpec.learner_coordinates`); one slice per
        array, the unit a shared exponent applies to.
        """
        skip = {
            f"layer{layer + 1}.cell.{name}"
            for layer, spec in enumerate(self.cells)
            for name in spec.learner_coordinates
        }
        return [a.slice for a in self.arrays if a.name not in skip]

    def recurrent_parameters(self) -> np.ndarray:
        """True where a parameter sets a cell's recurrence.

        These are the parameters the training recipe gives a smaller learning
        rate and no weight decay (:data:`RECURRENT_ARRAYS`): the eigenvalues'
        and their normalisation's coordinates of the diagonal cells, the
        recurrent matrices of the dense ones, and the GRU's update-gate bias,
        which sets its retention as the eigenvalues set the LRU's.
        """
        groups = self.groups()
        mask = np.zeros(self.size, dtype=bool)
        for layer, spec in enumerate(self.cells):
            for name in RECURRENT_ARRAYS[spec.name]:
                mask[groups[f"layer{layer + 1}.cell.{name}"]] = True
        return mask

    def recurrent_mask(self) -> np.ndarray:
        """True where a parameter belongs to a recurrent cell."""
        mask = np.zeros(self.size, dtype=bool)
        for s in self.cell_slices:
            mask[s] = True
        return mask


__all__ = ["RECURRENT_ARRAYS", "Network", "ParameterArray"]
