r"""Work a device does: operations and bytes moved, per step, window and update.

A model, stated once here and used everywhere (the device run, the budget):

- **Operations** are additions and multiplications; a multiply-accumulate is
  one of each. A nonlinearity (``exp``, ``tanh``, ``erf``, a square root, a
  division) counts as one multiplication. Per layer and step, with ``N``
  units, state size ``S``, input size ``I``, width ``H``, MLP width ``F``::

      cell step            lru 2SI + 5S   diagonal 2NI + 3N
                           rnn 2N² + 2NI + 2N   gru 6N² + 6NI + 10N
      block forward        2H(S + I) + 4HF + 2F + 8H
      block backward       forward again, then twice its products: 3x forward
      cell vjp             twice the step (parameter and input errors)
      Jacobian J           lru 2S   diagonal N   rnn N² + N   gru 5N² + 6N
      J^{-T} x             lru 3S   diagonal N   dense 2N³/3 + 2N² (LU)
        Neumann, m terms   lru 4mS  diagonal 2mN   dense m(2N² + N)
      P <- P J^T           lru 3S   diagonal N   dense 2N³
      P x                  lru 3S   diagonal N   dense 2N²
      readout              2OH + O forward; 2OH + 4O + 2OH backward

- **Bytes moved**: a layer's pass over a step reads its weights once (and
  reads and writes their gradients once when it adds to them), reads and
  writes its state, error and ``P``; each pass reads the sample from the
  replay buffer, which is written once when the sample arrives. BPTT writes
  its tape forward and reads it back.

The schedule is the device's (:mod:`fpttsim.learn._stream`): ``L + 1``
passes for FPTT, each running every layer forward and the layers above the
one warming up through their error pass. Segmented FPTT adds, per layer and
window, the boundary recursion (one ``P x`` a segment); refinement adds, for
each FPTT layer's first error pass, up to ``refine`` probes over the window
(every layer forward, the layers above and the refining one through their
recursion) and a Newton step per probe and segment: the most a window can
take, which is what a device must provision for.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpttsim.device.memory import plan


@dataclass(frozen=True)
class Work:
    """Operations and bytes moved.

    Attributes
    ----------
    adds, muls
        Additions and multiplications.
    working_bytes, replay_bytes
        Bytes read or written in working memory and in the replay buffer.
    """

    adds: float = 0.0
    muls: float = 0.0
    working_bytes: float = 0.0
    replay_bytes: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(
            self.adds + other.adds,
            self.muls + other.muls,
            self.working_bytes + other.working_bytes,
            self.replay_bytes + other.replay_bytes,
        )

    def __mul__(self, k: float) -> Work:
        return Work(
            self.adds * k, self.muls * k, self.working_bytes * k, self.replay_bytes * k
        )

    __rmul__ = __mul__

    @property
    def ops(self) -> float:
        """Additions and multiplications."""
        return self.adds + self.muls

    def seconds(self, profile) -> float:
        """Device time at the profile's sustained throughput."""
        return self.ops / profile.compute.ops_per_second

    def joules(self, profile) -> float:
        """Energy of the operations and of the bytes moved."""
        e = profile.energy
        pj = (
            self.adds * e.add_pj
            + self.muls * e.mul_pj
            + self.working_bytes * e.working_access_pj_per_byte
            + self.replay_bytes * e.replay_access_pj_per_byte
        )
        return pj * 1e-12

    def to_dict(self, profile) -> dict:
        """Counts, device time and energy as plain numbers."""
        return {
            "adds": self.adds,
            "muls": self.muls,
            "ops": self.ops,
            "working_bytes_moved": self.working_bytes,
            "replay_bytes_moved": self.replay_bytes,
            "seconds": self.seconds(profile),
            "joules": self.joules(profile),
        }


def _macs(n: float, other: float = 0.0) -> Work:
    """``n`` multiply-accumulates and ``other`` further operations (half adds)."""
    return Work(adds=n + other / 2, muls=n + other / 2)


class CostModel:
    """The work of each part of the device's computation for one network.

    Parameters
    ----------
    net
        The :class:`fpttsim.network.Network`.
    profile
        The hardware profile (the bits of each quantity give bytes moved).
    """

    def __init__(self, net, profile, fptt=None) -> None:
        self.net = net
        self.profile = profile
        self.fptt = fptt
        one_step = plan(net, "fptt", 1, profile, double_buffer=False)
        self._bytes = {b.name: b for b in one_step}
        self._replay_step = sum(b.bytes for b in one_step if b.memory == "replay")
        spec = net.cells[0]
        self.cell = spec.name
        self.n = spec.hidden
        self.s = spec.state_size
        self.jac = spec.jacobian_size

    # ---- bytes of the things a step touches
    def _weight_bytes(self, sl: slice) -> float:
        bits = self._bytes["weights"].bits
        return (sl.stop - sl.start) * bits / 8

    def _vector_bytes(self, quantity_buffer: str, count: float) -> float:
        return count * self._bytes[quantity_buffer].bits / 8

    # ---- operations, per layer and step
    def _inputs(self, layer: int) -> int:
        return self.net.cells[layer].inputs

    def step(self, layer: int) -> Work:
        """The cell's step ``h = f(h_prev, v)``."""
        n, s, i = self.n, self.s, self._inputs(layer)
        macs, other = {
            "lru": (s * i, 5 * s),
            "diagonal": (n * i, 3 * n),
            "rnn": (n * n + n * i, 2 * n),
            "gru": (3 * (n * n + n * i), 10 * n),
        }[self.cell]
        sl = self.net.cell_slices[layer]
        return _macs(macs, other) + Work(
            working_bytes=self._weight_bytes(sl)
            + self._vector_bytes("learner.state", 2 * s)
        )

    def block_forward(self, layer: int) -> Work:
        """The feed-forward block of a layer."""
        h, f, s, i = self.net.width, self.net.mlp_hidden, self.s, self._inputs(layer)
        sl = self.net.block_slices[layer]
        return _macs(h * (s + i) + 2 * h * f, 2 * f + 8 * h) + Work(
            working_bytes=self._weight_bytes(sl)
        )

    def block_backward(self, layer: int) -> Work:
        """Output errors to state and input errors, with the block's gradient."""
        sl = self.net.block_slices[layer]
        grads = 2 * self._weight_bytes(sl)  # read and write the gradient
        return 3 * self.block_forward(layer) + Work(working_bytes=grads)

    def vjp(self, layer: int) -> Work:
        """The cell's errors on its parameters and input."""
        sl = self.net.cell_slices[layer]
        return 2 * self.step(layer) + Work(working_bytes=2 * self._weight_bytes(sl))

    def jacobian(self) -> Work:
        """Forming ``J``."""
        n, s = self.n, self.s
        macs, other = {
            "lru": (0, 2 * s),
            "diagonal": (0, n),
            "rnn": (0, n * n + n),
            "gru": (2 * n * n, n * n + 6 * n),
        }[self.cell]
        return _macs(macs, other) + Work(
            working_bytes=self._vector_bytes("learner.jacobian", self.jac)
        )

    def solve(self) -> Work:
        """``J^{-T} x`` and the difference before it."""
        n, s = self.n, self.s
        fptt = self.fptt
        terms = fptt.terms if fptt is not None and fptt.inverse == "neumann" else 0
        if self.cell == "lru":
            work = _macs(0, 4 * s) if not terms else _macs(terms * s, terms * 2 * s)
        elif self.cell == "diagonal":
            work = _macs(0, 2 * n) if not terms else _macs(terms * n, 0)
        elif not terms:
            work = _macs(n**3 / 3 + n * n, n)
        else:
            work = _macs(terms * n * n, terms * n + n)
        return work + Work(working_bytes=self._vector_bytes("learner.delta", 4 * s))

    def product_apply(self) -> Work:
        """``P x``: a boundary error, or a Newton step."""
        n, s = self.n, self.s
        work = {"lru": _macs(s, s), "diagonal": _macs(0, n)}.get(
            self.cell, _macs(n * n)
        )
        moved = self._vector_bytes("learner.jacobian_product", self.jac)
        return work + Work(working_bytes=moved)

    def product_update(self) -> Work:
        """``P <- P J^T``."""
        n, s = self.n, self.s
        work = {
            "lru": _macs(s, s),
            "diagonal": _macs(0, n),
        }.get(self.cell, _macs(n**3))
        moved = 2 * self._vector_bytes("learner.jacobian_product", self.jac)
        return work + Work(working_bytes=moved)

    def readout(self, backward: bool) -> Work:
        """The readout at a step with a target; with its errors when asked."""
        o, h = self.net.output_size, self.net.width
        sl = self.net.readout_slice
        work = _macs(o * h, o) + Work(working_bytes=self._weight_bytes(sl))
        if backward:
            work += _macs(2 * o * h, 4 * o) + Work(
                working_bytes=2 * self._weight_bytes(sl)
            )
        return work

    def sample_read(self) -> Work:
        """Reading one step's input (and target) from the replay buffer."""
        return Work(replay_bytes=self._replay_step)

    # ---- whole computations
    def forward_step(self) -> Work:
        """Every layer forward over one step (inference, or a pass's start)."""
        total = Work()
        for layer in range(self.net.layers):
            total += self.step(layer) + self.block_forward(layer)
        return total

    def inference_sample(self, masked: bool = True) -> Work:
        """Inference on one arriving sample, stored into the replay buffer."""
        work = self.forward_step() + self.sample_read()
        if masked:
            work += self.readout(backward=False)
        return work

    def window(self, algorithm: str, length: int, masked: int, modes) -> Work:
        """One window's gradient with ``algorithm`` on the device's schedule.

        ``masked`` is the number of steps with a target; ``modes`` the
        algorithm of each layer (:func:`fpttsim.learn.layer_modes`).
        """
        net = self.net
        if algorithm in ("bptt", "rtrl"):
            return self._stored(algorithm, length, masked)
        fptt = [layer for layer, m in enumerate(modes) if m == "fptt"]
        passes = len(fptt) + 1 if fptt else 1
        warm = {layer: len(fptt) - k for k, layer in enumerate(fptt)}
        total = Work()
        for p in range(1, passes + 1):
            per_step = self.forward_step() + self.sample_read()
            readout = self.readout(backward=True) * (masked / max(length, 1))
            per_step += readout
            probe = Work()  # a refinement probe's step, in this pass
            for layer in range(net.layers - 1, -1, -1):
                per_step += self.block_backward(layer)
                if layer not in warm:
                    per_step += self.vjp(layer)
                    continue
                per_step += self.jacobian() + self.solve()
                if warm[layer] == p:
                    per_step += self.product_update()
                    break
                if warm[layer] + 1 == p:
                    probe = per_step
                per_step += self.vjp(layer)
            total += per_step * length
            total += self._refinement(probe, length)
        segments = self.fptt.segments if self.fptt is not None else 1
        if segments > 1 or self._refines:
            total += self.product_apply() * (segments * len(fptt))
        return total

    @property
    def _refines(self) -> int:
        return self.fptt.refine if self.fptt is not None else 0

    def _refinement(self, probe: Work, length: int) -> Work:
        """Refinement's probes in a pass, at most ``refine`` over the window."""
        if not self._refines or probe.ops == 0:
            return Work()
        segments = self.fptt.segments
        checkpoint = 2 * self._vector_bytes("learner.state", self.net.layers * self.s)
        per_probe = probe * length + self.product_apply() * segments
        per_probe += Work(working_bytes=checkpoint * segments)
        return per_probe * self._refines

    def _stored(self, algorithm: str, length: int, masked: int) -> Work:
        """BPTT or RTRL: one forward pass, then the algorithm's own work."""
        net = self.net
        per_step = self.forward_step() + self.sample_read()
        per_step += self.readout(backward=True) * (masked / max(length, 1))
        tape = self._vector_bytes("learner.state", net.layers * self.s)
        for layer in range(net.layers):
            per_step += self.block_backward(layer)
            if algorithm == "bptt":
                per_step += self.vjp(layer) + Work(working_bytes=2 * tape)
            else:
                cell_params = net.cell_slices[0].stop - net.cell_slices[0].start
                dense = self.jac > self.s
                sens = _macs(self.s * cell_params * (self.n if dense else 1))
                grad = _macs(self.s * cell_params)
                per_step += self.jacobian() + sens + grad + self.s * self.vjp(layer)
        return per_step * length

    def update(self, optimizer: str, momentum: bool = False) -> Work:
        """One optimiser step over every parameter, clipping's norm included."""
        size = self.net.size
        per = {"adam": 14, "sgd": 2 + 3 * int(momentum)}[optimizer]
        moments = 2 if optimizer == "adam" else int(momentum)
        moved = 2 * (1 + moments) * self._weight_bytes(slice(0, size)) + (
            self._vector_bytes("gradient", size)
        )
        return _macs(size, per * size) + Work(working_bytes=moved)
