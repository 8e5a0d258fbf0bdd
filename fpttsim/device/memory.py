"""The device's memory: every buffer it holds, sized at its format's bits.

:func:`plan` lists the buffers a device needs to learn a network with an
algorithm, each with the quantity whose format it is stored in; :class:`Arena`
hands them out from the profile's two memories (working memory, and the one
the replay buffer lives in) and refuses a plan that does not fit, with the
breakdown. The simulator computes in float64, so a buffer is a float64 array;
its size on the device is its count of values times the bits of its format.

What each algorithm holds (``L`` layers, state size ``S``, Jacobian size
``J``: ``S`` for diagonal cells, ``S²`` for dense ones; ``D`` inputs, width
``H``, MLP width ``F``, ``T`` steps)::

    every algorithm   weights, gradient, optimizer state; an inference state
                      per layer; one step's activations and errors
    fptt, spatial     per layer: h_t, h_{t-1}, J_t; fptt adds delta, g_{t-1},
                      delta_0 and P (J values); a dense J also its LU factors
    bptt              per layer and step: h_t, and the layer's input above
                      layer 1 (the tape: grows with T)
    rtrl              the sensitivities dh/dtheta of the cell: S x M values
    fptt, bptt        the replay buffer: the window's inputs and targets,
                      twice when a window arrives while the last one is learnt

A shared exponent (``fixed8.7-shared``) costs one byte per parameter array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fpttsim.errors import BudgetError
from fpttsim.numerics import codes
from fpttsim.numerics.formats import parse_format

COMPONENTS = (
    "weights",
    "state",
    "errors",
    "jacobian",
    "jacobian_product",
    "gradient",
    "optimizer_state",
    "activations",
    "replay",
)
"""The components a budget is broken down by, in report order."""

WORKING, REPLAY = "working", "replay"

SHARED_EXPONENT_BITS = 8  # one byte per block: Lava's weight_exp fits in it


@dataclass(frozen=True)
class Buffer:
    """One buffer the device holds.

    Parameters
    ----------
    name
        What it holds, e.g. ``"layer1.jacobian_product"``.
    component
        One of :data:`COMPONENTS`.
    count
        Number of values.
    bits
        Bits per value.
    memory
        ``"working"`` or ``"replay"``.
    extra_bits
        Bits beside the values (shared exponents).
    shape
        Shape of the simulator's array; None for ``(count,)``.
    """

    name: str
    component: str
    count: int
    bits: int
    memory: str = WORKING
    extra_bits: int = 0
    shape: tuple[int, ...] | None = None

    @property
    def bytes(self) -> int:
        """Bytes on the device, rounded up to whole bytes."""
        return math.ceil((self.count * self.bits + self.extra_bits) / 8)


def _bits(profile, quantity: str) -> int:
    return parse_format(profile.format_of(quantity).format).bits


def plan(
    net,
    algorithm: str,
    length: int,
    profile,
    optimizer: str = "adam",
    momentum: bool = False,
    double_buffer: bool = True,
    segments: int = 1,
    refine: int = 0,
) -> list[Buffer]:
    """The buffers a device learning ``net`` with ``algorithm`` holds.

    Parameters
    ----------
    net
        The :class:`fpttsim.network.Network`.
    algorithm
        ``"fptt"``, ``"bptt"``, ``"spatial"`` or ``"rtrl"``.
    length
        Steps per window (T).
    profile
        The hardware profile: the formats give the bits.
    optimizer
        ``"adam"`` (two moments per parameter) or ``"sgd"``.
    momentum
        Whether SGD keeps a momentum (one value per parameter).
    double_buffer
        Whether the replay buffer holds a second window while one is learnt.
    segments
        FPTT's segments (``learning.fptt.segments``): each beyond the first
        holds, per layer, a Jacobian product and a boundary error (the
        warm-up's end value until the boundary errors replace it).
    refine
        FPTT's refinement passes (``learning.fptt.refine``): with any, the
        device keeps a checkpoint of every layer's state and ``g_{t-1}`` at
        the start of the segment it refines, the best start error found, a
        residual and a Newton step.

    Returns
    -------
    list of Buffer
    """
    bits = {q: _bits(profile, q) for q in codes.QUANTITY_NAMES}
    n_layers = net.layers
    spec = net.cells[0]
    s, j = spec.state_size, spec.jacobian_size
    wide = max(net.input_size, net.width)
    out: list[Buffer] = []

    def add(name, component, count, quantity, **kw):
        out.append(Buffer(name, component, int(count), bits[quantity], **kw))

    # what every algorithm holds
    shared = parse_format(profile.format_of("weights").format).shared_exponent
    add(
        "weights",
        "weights",
        net.size,
        "weights",
        extra_bits=SHARED_EXPONENT_BITS * len(net.arrays) if shared else 0,
    )
    add("gradient", "gradient", net.size, "gradient")
    moments = 2 if optimizer == "adam" else int(momentum)
    if moments:
        add(
            "optimizer_state",
            "optimizer_state",
            moments * net.size,
            "optimizer_state",
            shape=(moments, net.size),
        )
    add("inference.state", "state", n_layers * s, "state", shape=(n_layers, s))
    add("inference.signals", "activations", 2 * wide, "activation", shape=(2, wide))

    # one step of the learner: layer signals, block intermediates, errors
    add(
        "learner.signals",
        "activations",
        (n_layers + 1) * wide,
        "activation",
        shape=(n_layers + 1, wide),
    )
    # each layer's block intermediates (normalised output, MLP pre-activation
    # and activation, 1 / std) from its forward step to its errors, and two
    # vectors of scratch
    per_layer = net.width + 2 * net.mlp_hidden + 1
    add(
        "learner.block",
        "activations",
        n_layers * per_layer + 2 * net.width,
        "activation",
    )
    add(
        "learner.step_errors",
        "errors",
        s + net.width + wide + 3 * net.width + net.mlp_hidden,
        "instantaneous_error",
    )
    add(
        "learner.readout",
        "activations",
        2 * net.output_size,
        "activation",
        shape=(2, net.output_size),
    )

    if algorithm == "rtrl":
        cell_params = net.cell_slices[0].stop - net.cell_slices[0].start
        add("learner.state", "state", 2 * s, "state", shape=(2, s))
        add("learner.jacobian", "jacobian", j, "jacobian")
        add(
            "learner.sensitivity",
            "jacobian_product",
            cell_params * s,
            "jacobian_product",
            shape=(cell_params, s),
        )
        return out

    # per layer: h_t and h_{t-1}, J_t (and its LU factors when dense)
    add("learner.state", "state", 2 * n_layers * s, "state", shape=(2, n_layers, s))
    add("learner.jacobian", "jacobian", j, "jacobian")
    if not spec.is_diagonal:
        add("learner.jacobian_lu", "jacobian", s * s, "jacobian")
    if algorithm == "fptt":
        add(
            "learner.delta",
            "errors",
            3 * n_layers * s,
            "error",
            shape=(3, n_layers, s),
        )
        add(
            "learner.jacobian_product",
            "jacobian_product",
            n_layers * segments * j,
            "jacobian_product",
            shape=(n_layers, segments, j),
        )
        if segments > 1:
            add(
                "learner.boundary_errors",
                "errors",
                n_layers * (segments - 1) * s,
                "error",
                shape=(n_layers, segments - 1, s),
            )
        if refine:
            add("refine.state", "state", n_layers * s, "state", shape=(n_layers, s))
            # g_{t-1} of every layer, the best start error a probe found, then
            # the residual and the Newton step
            add(
                "refine.errors",
                "errors",
                (n_layers + 3) * s,
                "error",
                shape=(n_layers + 3, s),
            )
    if algorithm == "bptt":
        add("learner.delta", "errors", 2 * s, "error", shape=(2, s))
        add("tape.state", "activations", length * n_layers * s, "state")
        if n_layers > 1:
            add(
                "tape.signals",
                "activations",
                length * (n_layers - 1) * net.width,
                "activation",
            )

    if algorithm in ("fptt", "bptt"):
        windows = 2 if double_buffer else 1
        add(
            "replay.inputs",
            "replay",
            windows * length * net.input_size,
            "input",
            memory=REPLAY,
        )
        # a class index in a byte, or the regression targets in the input format
        if net.loss == "ce":
            target_bits = max(8, math.ceil(math.log2(max(net.output_size, 2))))
            count, each = windows * length, target_bits + 1  # + the mask bit
        else:
            count, each = windows * length * net.output_size, bits["input"]
            count += windows * length  # the mask
        out.append(Buffer("replay.targets", "replay", count, each, memory=REPLAY))
    return out


def breakdown(buffers: list[Buffer]) -> dict[str, int]:
    """Bytes by component, every component listed."""
    total = dict.fromkeys(COMPONENTS, 0)
    for b in buffers:
        total[b.component] += b.bytes
    return total


@dataclass
class Arena:
    """Memory handed out from the device's working and replay memories.

    Parameters
    ----------
    working_bytes, replay_bytes
        Capacities.
    """

    working_bytes: int
    replay_bytes: int
    used: dict = field(default_factory=lambda: {WORKING: 0, REPLAY: 0})
    peak: dict = field(default_factory=lambda: {WORKING: 0, REPLAY: 0})
    held: dict = field(default_factory=dict)

    @classmethod
    def for_profile(cls, profile) -> Arena:
        """An empty arena of the profile's sizes."""
        return cls(profile.memory.working_bytes, profile.memory.replay_bytes)

    def capacity(self, memory: str) -> int:
        """Bytes of ``memory``."""
        return self.working_bytes if memory == WORKING else self.replay_bytes

    def check(self, buffers: list[Buffer], what: str) -> None:
        """Raise :class:`BudgetError` unless ``buffers`` fit beside what is held.

        The message gives the bytes by component and how far each memory is
        over.
        """
        need = {WORKING: self.used[WORKING], REPLAY: self.used[REPLAY]}
        for b in buffers:
            need[b.memory] += b.bytes
        over = {m: need[m] - self.capacity(m) for m in need}
        over = {m: n for m, n in over.items() if n > 0}
        if not over:
            return
        parts = breakdown(list(self.held.values()) + list(buffers))
        lines = [f"  {name:<17} {n:>12,} B" for name, n in parts.items() if n]
        excess = "; ".join(
            f"{m} memory needs {need[m]:,} B of {self.capacity(m):,} B ({n:,} B over)"
            for m, n in over.items()
        )
        raise BudgetError(
            f"{what} does not fit the device: {excess}. By component:\n"
            + "\n".join(lines),
            parts,
            over,
        )

    def allocate(self, buffer: Buffer) -> np.ndarray:
        """A zeroed float64 array for ``buffer``, counted against its memory."""
        if buffer.name in self.held:
            raise ValueError(f"buffer {buffer.name!r} is already allocated")
        self.check([buffer], f"buffer {buffer.name!r}")
        self.held[buffer.name] = buffer
        self.used[buffer.memory] += buffer.bytes
        self.peak[buffer.memory] = max(
            self.peak[buffer.memory], self.used[buffer.memory]
        )
        return np.zeros(buffer.shape or (buffer.count,))

    def release(self, name: str) -> None:
        """Give a buffer's memory back."""
        buffer = self.held.pop(name)
        self.used[buffer.memory] -= buffer.bytes

    def report(self) -> dict:
        """Use, peak and capacity per memory, and bytes held by component."""
        return {
            "working": {
                "capacity_bytes": self.working_bytes,
                "used_bytes": self.used[WORKING],
                "peak_bytes": self.peak[WORKING],
            },
            "replay": {
                "capacity_bytes": self.replay_bytes,
                "used_bytes": self.used[REPLAY],
                "peak_bytes": self.peak[REPLAY],
            },
            "components": breakdown(list(self.held.values())),
        }
