r"""Export to NIR, the neuromorphic interchange format, for real-diagonal cells.

The first layer's recurrent core of a ``diagonal`` network becomes a NIR graph
(:func:`export_nir`). With the layer's input ``u_t`` (size ``I``), ``N`` units
and block width ``H``, the cell and the linear part of its block are::

    h_t = lam * h_{t-1} + gamma * (B u_t),   lam = exp(-exp(nu_log)),
                                             gamma = exp(gamma_log)
    y_t = C h_t + D u_t

and the graph, whose ``output`` receives the sum of its two incoming edges::

    input -> projection: Linear diag(gamma) B  (N, I)
          -> integrator: LI tau, r, v_leak = 0  (N)
          -> state_out:  Linear C               (H, N)  -> output (H)
    input -> skip:       Linear D               (H, I)  -> output

NIR's leaky integrator is ``tau dv/dt = (v_leak - v) + r I``, in continuous
time. Sampled every ``dt`` with its input held over each step (zero-order
hold: the sample ``u_t`` drives the step from ``(t - 1) dt`` to ``t dt``, and
the state is read at its end), from ``v_0 = 0``, it is exactly::

    v_t = exp(-dt / tau) v_{t-1} + (1 - exp(-dt / tau)) r I_t

which is the cell's update with ``I_t = gamma * (B u_t)`` when
``exp(-dt / tau) = lam`` and ``(1 - lam) r = 1``::

    tau = -dt / ln(lam) = dt * exp(-nu_log),   r = 1 / (1 - lam)

Only ``dt / tau`` enters, so the time unit is a convention: ``tau`` is in
seconds, as ``dt`` is (NIR's documentation quotes milliseconds; a backend
working in them multiplies both by 1000). ``dt`` defaults to the stream's
sample period ``1 / device.rate_hz`` and is stored in the graph's metadata,
the integrator's ``lam`` in its own. A backend that steps the integrator by
forward Euler (``v += dt / tau (v_leak - v + r I)``) decays by
``1 - dt / tau = 1 + ln(lam)`` rather than ``lam``: close for slow units,
not exact; ``tau = dt / (1 - lam)`` with the same ``r`` would suit it.

What is not exported, and why (:attr:`NirExport.left_out` says the same per
scenario): the block's layer normalisation and its GELU MLP have no NIR node,
and the residual, the layers above the first and the readout all come after
them; the graph therefore ends at ``y_t``, the first block's input to its
normalisation. The profile's number formats are not exported (the graph holds
the float64 parameters), nor is anything of learning (FPTT's errors and
Jacobian product, gradients, optimiser state): a NIR graph describes
inference.

Not supported
-------------
The ``lru``, ``rnn`` and ``gru`` cells (:data:`UNMAPPED_CELLS` says why); they
are refused with a :class:`~fpttsim.errors.ConfigError` on ``model.cell``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np

from fpttsim import report
from fpttsim.config import Scenario
from fpttsim.errors import ConfigError
from fpttsim.experiment import prepare
from fpttsim.network import Network

UNMAPPED_CELLS = {
    "lru": "the LRU's units are complex: each decays and rotates by "
    "lam = exp(-exp(nu_log) + i exp(theta_log)) a step, and NIR has no "
    "complex-valued or rotating neuron; as pairs of real integrators the "
    "rotation is a recurrent edge between them, whose delay NIR leaves to "
    "each backend, so the graph would no longer state the cell's update",
    "rnn": "the tanh RNN's recurrence tanh(W h_{t-1} + ...) is dense and "
    "nonlinear; NIR's leaky integrator decays each unit on its own, and a "
    "dense recurrence would need a recurrent Linear edge around an integrator, "
    "whose delay NIR leaves to each backend, so the graph would no longer "
    "state the cell's discrete-time update (NIR has no tanh either)",
    "gru": "the GRU's gates multiply signals with one another and its "
    "recurrences are dense; NIR has no node that multiplies two signals, and "
    "a dense recurrence would need a recurrent edge around an integrator, "
    "whose delay NIR leaves to each backend",
}
"""Why each cell other than ``diagonal`` does not map onto NIR."""

LEARNING_LEFT_OUT = {
    "part": "learning state: FPTT's errors and Jacobian product, gradients, "
    "optimiser moments",
    "reason": "a NIR graph describes inference; the trained parameters are in "
    "the graph, how they were learnt is not",
}

FORMATS_LEFT_OUT = {
    "part": "the profile's number formats",
    "reason": "the graph holds the float64 parameters (lam from nu_log, not "
    "lam rounded to the Jacobian's format as the device holds it); NIR states "
    "no number formats",
}


@dataclass
class NirExport:
    """What :func:`export_nir` wrote.

    Attributes
    ----------
    path
        The NIR file (HDF5).
    dt
        The time step in seconds, and ``dt_source`` where it came from.
    scenario, weights
        The scenario's name and where the parameters came from.
    nodes, edges
        The graph's nodes (name, NIR type, input and output sizes) and its
        edges.
    mapping
        For each node field, the fpttsim parameters it comes from and the
        formula, in the symbols of the module's notes.
    left_out
        Each part of the network not in the graph, with the reason.
    tau_range
        The integrators' smallest and largest ``tau``, in seconds.

    Examples
    --------
    >>> import shutil, tempfile
    >>> from pathlib import Path
    >>> import fpttsim
    >>> folder = Path(tempfile.mkdtemp())
    >>> result = fpttsim.export_nir("nir-diagonal", folder / "core.nir")
    >>> [node["type"] for node in result.nodes]
    ['Input', 'Linear', 'LI', 'Linear', 'Linear', 'Output']
    >>> result.weights, result.to_dict()["edges"][1]
    ('initial (seed 0)', ['projection', 'integrator'])
    >>> shutil.rmtree(folder)
    """

    path: Path
    dt: float
    dt_source: str
    scenario: str
    weights: str
    nodes: list[dict]
    edges: list[tuple[str, str]]
    mapping: list[dict]
    left_out: list[dict]
    tau_range: tuple[float, float]

    def to_dict(self) -> dict:
        """Plain data for JSON."""
        return {
            "path": str(self.path),
            "dt": self.dt,
            "dt_source": self.dt_source,
            "scenario": self.scenario,
            "weights": self.weights,
            "nir_version": nir.version,
            "nodes": self.nodes,
            "edges": [list(edge) for edge in self.edges],
            "mapping": self.mapping,
            "left_out": self.left_out,
            "tau_range": list(self.tau_range),
        }

    def to_json(self) -> str:
        """The result as a JSON document."""
        return json.dumps(report.jsonable(self.to_dict()), indent=2)


def export_nir(
    scenario: Scenario,
    out: str | os.PathLike,
    weights: str | os.PathLike | np.ndarray | None = None,
    dt: float | None = None,
) -> NirExport:
    """Write the first layer's recurrent core of a ``diagonal`` network to NIR.

    Parameters
    ----------
    scenario
        A scenario with ``model.cell: diagonal``.
    out
        The file to write; its folder is created if missing.
    weights
        A run's folder holding ``parameters.npz`` (``fpttsim run --out``), such
        a file, or a flat parameter vector; None for the scenario's initial
        parameters.
    dt
        The time step in seconds; None for ``1 / device.rate_hz``.

    Returns
    -------
    NirExport

    Raises
    ------
    ConfigError
        For another cell (key ``model.cell``), a time step that is not a
        positive number (key ``dt``), or weights that are missing, of another
        network, or not finite (naming their file).
    """
    cell = scenario.model.cell
    if cell in UNMAPPED_CELLS:
        file, line = scenario.where("model.cell")
        raise ConfigError(
            f"cannot export {cell!r} to NIR: {UNMAPPED_CELLS[cell]}. Only "
            "'diagonal' (real leaky integrators) maps; train one with "
            "--set model.cell=diagonal.",
            file=file,
            line=line,
            key="model.cell",
        )
    if dt is None:
        dt = 1.0 / scenario.device.rate_hz
        dt_source = f"1 / device.rate_hz ({scenario.device.rate_hz:g} Hz)"
    else:
        dt_source = "given"
    dt = check_time_step(dt)

    experiment = prepare(scenario)
    net = experiment.net
    if weights is None:
        theta, file = experiment.theta, None
        origin = f"initial (seed {scenario.seed})"
    else:
        theta, file = _read_weights(weights, net, scenario.name)
        origin = file or "given"

    metadata = {
        "dt": dt,
        "time_unit": "s",
        "discretisation": "zero-order hold: each input sample is held over "
        "one step of dt, states are read at the step's end, from zero",
        "exported_by": f"fpttsim {report.versions()['fpttsim']}",
        "scenario": scenario.name,
        "exported": "layer 1 of the network up to its cell output y = C h + D u",
    }
    graph, mapping, tau = _graph(net, theta, dt, metadata, file)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, graph)

    return NirExport(
        path=path,
        dt=dt,
        dt_source=dt_source,
        scenario=scenario.name,
        weights=origin,
        nodes=[_described(name, node) for name, node in graph.nodes.items()],
        edges=list(graph.edges),
        mapping=mapping,
        left_out=_left_out(net),
        tau_range=(float(tau.min()), float(tau.max())),
    )


def check_time_step(dt, key: str = "dt") -> float:
    """Return ``dt`` as a float, checked to be a finite, positive time step.

    Raises
    ------
    ConfigError
        Naming ``key`` when it is not.
    """
    try:
        step = float(dt)
    except (TypeError, ValueError):
        step = math.nan
    if not (math.isfinite(step) and step > 0):
        raise ConfigError(f"expected a time step > 0 in seconds, got {dt!r}", key=key)
    return step


def _read_weights(
    weights: str | os.PathLike | np.ndarray, net: Network, name: str
) -> tuple[np.ndarray, str | None]:
    """The flat parameter vector to export, and the file it came from."""
    if isinstance(weights, np.ndarray):
        theta, file = weights, None
    else:
        path = Path(weights)
        file = path / "parameters.npz" if path.is_dir() else path
        if not file.is_file():
            raise ConfigError(
                "no such file; expected a run's folder holding parameters.npz "
                "(written by `fpttsim run --out DIR`) or that file",
                file=str(file),
            )
        file = str(file)
        try:
            loaded = np.load(file)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read it: {exc}", file=file) from exc
        if not isinstance(loaded, np.lib.npyio.NpzFile) or "theta" not in loaded:
            raise ConfigError(
                "expected an .npz archive holding the array 'theta', as "
                "`fpttsim run` writes parameters.npz",
                file=file,
            )
        with loaded:
            theta = loaded["theta"]

    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (net.size,):
        raise ConfigError(
            f"expected {net.size} parameters (the network of scenario "
            f"{name!r}), got {theta.size}; were they trained on this scenario, "
            "with the same --set overrides?",
            file=file,
        )
    if not np.all(np.isfinite(theta)):
        raise ConfigError(
            f"{np.sum(~np.isfinite(theta))} parameters are not finite; a run "
            "that stopped on a NaN leaves such weights",
            file=file,
        )
    return theta, file


def _graph(
    net: Network, theta: np.ndarray, dt: float, metadata: dict, file: str | None
) -> tuple[nir.NIRGraph, list[dict], np.ndarray]:
    """The NIR graph of layer 1, the mapping of its fields, and its ``tau``.

    ``file`` is where ``theta`` came from, for the error on a decay that has
    no time constant.
    """
    groups = net.groups()

    def array(name: str) -> np.ndarray:
        found = next(a for a in net.arrays if a.name == name)
        return theta[groups[name]].reshape(found.shape)

    nu_log = array("layer1.cell.nu_log")  # (N,)
    gamma = np.exp(array("layer1.cell.gamma_log"))  # (N,)
    b = array("layer1.cell.B")  # (N, I)
    c = array("layer1.block.C")  # (H, N)
    d = array("layer1.block.D")  # (H, I)

    # exp(nu_log) = -ln(lam) exactly, and expm1 keeps 1 - lam accurate for
    # lam near 1, where the slowest units sit
    with np.errstate(over="ignore", divide="ignore"):  # checked just below
        lam = np.exp(-np.exp(nu_log))
        tau = dt * np.exp(-nu_log)
        r = -1.0 / np.expm1(-np.exp(nu_log))
    usable = np.isfinite(r) & np.isfinite(tau) & (tau > 0)
    if not np.all(usable):
        unit = int(np.argmin(usable))
        raise ConfigError(
            f"layer1.cell.nu_log[{unit}] = {nu_log[unit]:.6g} gives the decay "
            f"lam = {lam[unit]!r}, which has no finite, positive NIR time "
            f"constant at dt = {dt:g} s",
            file=file,
        )

    size_in, width = b.shape[1], c.shape[0]
    nodes = {
        "input": nir.Input(input_type={"input": np.array([size_in])}),
        "projection": nir.Linear(weight=gamma[:, None] * b),
        "integrator": nir.LI(
            tau=tau, r=r, v_leak=np.zeros_like(tau), metadata={"lam": lam}
        ),
        "state_out": nir.Linear(weight=c.copy()),
        "skip": nir.Linear(weight=d.copy()),
        "output": nir.Output(output_type={"output": np.array([width])}),
    }
    edges = [
        ("input", "projection"),
        ("projection", "integrator"),
        ("integrator", "state_out"),
        ("state_out", "output"),
        ("input", "skip"),
        ("skip", "output"),
    ]
    nu, gamma_log = "layer1.cell.nu_log", "layer1.cell.gamma_log"
    mapping = [
        _field("integrator", "tau", [nu], "tau = dt * exp(-nu_log) = -dt / ln(lam)"),
        _field("integrator", "r", [nu], "r = 1 / (1 - lam)"),
        _field("integrator", "v_leak", [], "v_leak = 0"),
        _field(
            "projection",
            "weight",
            [gamma_log, "layer1.cell.B"],
            "weight = diag(gamma) B, gamma = exp(gamma_log)",
        ),
        _field("state_out", "weight", ["layer1.block.C"], "weight = C"),
        _field("skip", "weight", ["layer1.block.D"], "weight = D"),
    ]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    return graph, mapping, tau


def _field(node: str, name: str, parameters: list[str], formula: str) -> dict:
    """One row of :attr:`NirExport.mapping`."""
    return {"node": node, "field": name, "parameters": parameters, "formula": formula}


def _described(name: str, node: nir.NIRNode) -> dict:
    """A node's name, NIR type and sizes."""

    def size(types: dict) -> list[int]:
        return [int(n) for n in next(iter(types.values()))]

    return {
        "name": name,
        "type": type(node).__name__,
        "input_size": size(node.input_type),
        "output_size": size(node.output_type),
    }


def _left_out(net: Network) -> list[dict]:
    """The parts of ``net`` the graph does not hold, each with the reason."""
    parts = [
        {
            "part": "layer1.block: layer normalisation of y",
            "reason": "divides by the standard deviation over the units, a "
            "nonlinear function of all of them; NIR has no such node",
        },
        {
            "part": "layer1.block: MLP W2 gelu(W1 m + b1) + b2",
            "reason": "NIR has no GELU, and the affine maps around it act on "
            "the normalised y, which is not exported",
        },
    ]
    if net.cells[0].inputs == net.width:
        parts.append(
            {
                "part": "layer1.block: residual o = MLP + u",
                "reason": "it adds u to the MLP's output, which is not exported",
            }
        )
    if net.layers > 1:
        parts.append(
            {
                "part": f"layers 2 to {net.layers}",
                "reason": "their input is the block output of the layer below, "
                "which passes through the layer normalisation and GELU",
            }
        )
    parts.append(
        {
            "part": "readout W o + b",
            "reason": "it reads the top block's output, past the layer "
            "normalisation and GELU",
        }
    )
    return [*parts, FORMATS_LEFT_OUT, LEARNING_LEFT_OUT]


__all__ = ["UNMAPPED_CELLS", "NirExport", "check_time_step", "export_nir"]
