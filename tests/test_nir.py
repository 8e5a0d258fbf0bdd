"""NIR export: the graph read back from its file reproduces the cell's trajectory.

The reference is fpttsim's own forward pass (the engine's per-layer states
and the block's cell output); the graph is simulated here from what
``nir.read`` returns, node by node, with nothing taken from the exporter.
"""

import math

import nir
import numpy as np
import pytest
from test_cli import cli, strict_json

import fpttsim
from fpttsim import report
from fpttsim.experiment import prepare
from fpttsim.learn.engine import window_gradient
from fpttsim.network import block

SHIPPED = "nir-diagonal"
# two layers, a multi-dimensional input, a width unlike the state's, and decays
# down to 0 (tau well below dt)
DEEP = ("gradcheck-diagonal", {"model.layers": 2, "model.width": 6, "model.r_min": 0})


def zoh_graph(graph: nir.NIRGraph, inputs: np.ndarray) -> dict:
    """Every node's output over time for ``inputs`` held over each step.

    A node receives the sum of its incoming edges' signals; the graph must be
    acyclic. A leaky integrator ``tau dv/dt = (v_leak - v) + r I`` with ``I``
    constant over a step of ``dt`` (the graph's metadata) moves exactly to
    ``v_leak + (v - v_leak) e + (1 - e) r I``, ``e = exp(-dt / tau)``, from
    ``v = 0``.
    """
    dt = float(graph.metadata["dt"])
    sources = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
    order: list[str] = []
    while len(order) < len(graph.nodes):
        ready = [
            name
            for name, before in sources.items()
            if name not in order and all(a in order for a in before)
        ]
        assert ready, f"a cycle among {set(graph.nodes) - set(order)}"
        order += ready
    state = {n: 0.0 for n, node in graph.nodes.items() if isinstance(node, nir.LI)}
    signals = {name: [] for name in graph.nodes}
    for u_t in inputs:
        now = {}
        for name in order:
            node = graph.nodes[name]
            x = (
                u_t
                if isinstance(node, nir.Input)
                else sum(now[a] for a in sources[name])
            )
            if isinstance(node, nir.Linear):
                x = node.weight @ x
            elif isinstance(node, nir.Affine):
                x = node.weight @ x + node.bias
            elif isinstance(node, nir.LI):
                decay = np.exp(-dt / node.tau)
                held = -np.expm1(-dt / node.tau) * node.r * x
                x = node.v_leak + (state[name] - node.v_leak) * decay + held
                state[name] = x
            else:
                assert isinstance(node, nir.Input | nir.Output), type(node)
            now[name] = x
        for name, x in now.items():
            signals[name].append(x)
    return {name: np.array(series) for name, series in signals.items()}


def reference(scenario, theta=None):
    """Layer 1's inputs, states ``h_1..h_T`` and cell outputs ``C h + D u``."""
    experiment = prepare(scenario)
    net = experiment.net
    theta = experiment.theta if theta is None else theta
    window = next(experiment.task.stream(scenario.seed))
    trace = window_gradient(net, theta, window, "bptt", trace=True).traces[0]
    u, h = trace.inputs, trace.states[1:]  # (T, I), (T, N)

    # the block's own kernel computes y before normalising it
    theta_block = theta[net.block_slices[0]]
    size, width, hidden = h.shape[1], net.width, net.mlp_hidden
    columns = block.weight_columns(theta_block, size, u.shape[1], width, hidden)
    y = np.empty((len(u), width))
    m, o, a1, q = np.empty(width), np.empty(width), np.empty(hidden), np.empty(hidden)
    tmp = np.empty(max(width, hidden))
    for t in range(len(u)):
        block.forward_step(
            None,
            theta_block,
            columns,
            u[t],
            h[t],
            width,
            hidden,
            y[t],
            m,
            a1,
            q,
            o,
            tmp,
        )
    return u, h, y


def cell_parameters(scenario, theta):
    """``nu_log``, ``gamma_log`` and ``B`` of layer 1."""
    net = prepare(scenario).net
    groups = net.groups()
    nu_log = theta[groups["layer1.cell.nu_log"]]
    gamma_log = theta[groups["layer1.cell.gamma_log"]]
    b = theta[groups["layer1.cell.B"]].reshape(nu_log.size, -1)
    return nu_log, gamma_log, b


def scale(x: np.ndarray) -> float:
    return float(np.max(np.abs(x)))


# --- the graph reproduces the cell --------------------------------------------


@pytest.mark.parametrize("dt", [None, 0.25])
@pytest.mark.parametrize("case", [(SHIPPED, {}), DEEP], ids=["shipped", "deep"])
def test_graph_simulated_from_the_file_reproduces_the_trajectory(tmp_path, case, dt):
    scenario = fpttsim.load_scenario(*case)
    result = fpttsim.export_nir(scenario, tmp_path / "core.nir", dt=dt)
    graph = nir.read(tmp_path / "core.nir")
    u, h, y = reference(scenario)

    simulated = zoh_graph(graph, u)
    # float64 roundings of ~1e-16 a step, summed over at most 1 / (1 - lam)
    # steps of memory (lam <= 0.999): about 1e-13 of the largest value
    np.testing.assert_allclose(
        simulated["integrator"], h, rtol=0, atol=1e-10 * scale(h)
    )
    np.testing.assert_allclose(simulated["output"], y, rtol=0, atol=1e-10 * scale(y))
    assert result.dt == float(graph.metadata["dt"])


def test_nir_equation_integrated_by_runge_kutta_reproduces_the_states(tmp_path):
    # The zero-order hold above is the derivation's claim; here the NIR
    # equation itself is integrated by classical RK4 with 200 substeps a step,
    # the input held, and no closed form used.
    scenario = fpttsim.load_scenario(SHIPPED)
    fpttsim.export_nir(scenario, tmp_path / "core.nir")
    graph = nir.read(tmp_path / "core.nir")
    li = graph.nodes["integrator"]
    u, h, _ = reference(scenario)
    drive = u @ graph.nodes["projection"].weight.T  # (T, N)

    substeps = 200
    step = float(graph.metadata["dt"]) / substeps
    v = np.zeros_like(li.tau)
    states = []
    for current in drive:

        def slope(v, current=current):
            return ((li.v_leak - v) + li.r * current) / li.tau

        for _ in range(substeps):
            k1 = slope(v)
            k2 = slope(v + step / 2 * k1)
            k3 = slope(v + step / 2 * k2)
            k4 = slope(v + step * k3)
            v = v + step / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        states.append(v)
    # RK4's error per substep is about (step / tau)^5 / 120 of the state; the
    # fastest unit has tau = dt / ln 2, giving ~5e-15 a substep, 1e-9 in all
    np.testing.assert_allclose(np.array(states), h, rtol=0, atol=1e-9 * scale(h))


def test_parameters_map_as_the_derivation_says(tmp_path):
    scenario = fpttsim.load_scenario(SHIPPED, {"device.rate_hz": 250})
    theta = prepare(scenario).theta
    result = fpttsim.export_nir(scenario, tmp_path / "core.nir")
    graph = nir.read(tmp_path / "core.nir")
    li = graph.nodes["integrator"]
    nu_log, gamma_log, b = cell_parameters(scenario, theta)
    lam = np.exp(-np.exp(nu_log))

    assert result.dt == float(graph.metadata["dt"]) == 1 / 250
    assert result.dt_source == "1 / device.rate_hz (250 Hz)"
    np.testing.assert_allclose(np.exp(-result.dt / li.tau), lam, rtol=1e-14)
    np.testing.assert_allclose((1 - lam) * li.r, 1.0, rtol=1e-12)
    np.testing.assert_array_equal(li.v_leak, 0.0)
    np.testing.assert_allclose(li.metadata["lam"], lam, rtol=1e-15)
    np.testing.assert_allclose(
        graph.nodes["projection"].weight, np.exp(gamma_log)[:, None] * b, rtol=1e-15
    )
    assert result.tau_range == (li.tau.min(), li.tau.max())


def test_a_longer_time_step_lengthens_tau_only(tmp_path):
    scenario = fpttsim.load_scenario(SHIPPED)
    graphs = []
    for dt, name in ((None, "a.nir"), (0.5, "b.nir")):
        fpttsim.export_nir(scenario, tmp_path / name, dt=dt)
        graphs.append(nir.read(tmp_path / name).nodes["integrator"])
    np.testing.assert_allclose(graphs[1].tau, graphs[0].tau * 500, rtol=1e-14)
    np.testing.assert_array_equal(graphs[1].r, graphs[0].r)


# --- what does not map ------------------------------------------------------


@pytest.mark.parametrize(
    "cell, why",
    [
        ("lru", "complex-valued or rotating neuron"),
        ("rnn", "dense recurrence would need a recurrent Linear edge"),
        ("gru", "multiplies two signals"),
    ],
)
def test_other_cells_are_refused_saying_why(tmp_path, cell, why):
    with pytest.raises(fpttsim.ConfigError, match=why) as info:
        fpttsim.export_nir(SHIPPED, tmp_path / "x.nir", overrides={"model.cell": cell})
    assert info.value.key == "model.cell"
    assert info.value.file == "--set"
    assert f"cannot export {cell!r}" in info.value.message
    assert not (tmp_path / "x.nir").exists()


def test_refused_cell_names_its_line_in_the_scenario_file(tmp_path):
    scenario = fpttsim.load_scenario("quickstart")
    with pytest.raises(fpttsim.ConfigError, match="NIR") as info:
        fpttsim.export_nir(scenario, tmp_path / "x.nir")
    assert (info.value.file, info.value.line) == scenario.where("model.cell")
    assert info.value.line is not None


@pytest.mark.parametrize(
    "case, extra",
    [
        ((SHIPPED, {}), []),
        (
            ("gradcheck-diagonal", {"model.layers": 3, "model.width": 10}),
            ["layer1.block: residual o = MLP + u", "layers 2 to 3"],
        ),
    ],
    ids=["one-layer", "residual-and-layers"],
)
def test_left_out_lists_every_part_not_in_the_graph(tmp_path, case, extra):
    scenario = fpttsim.load_scenario(*case)
    result = fpttsim.export_nir(scenario, tmp_path / "core.nir")
    parts = [entry["part"] for entry in result.left_out]
    expected = [
        "layer1.block: layer normalisation of y",
        "layer1.block: MLP W2 gelu(W1 m + b1) + b2",
        *extra,
        "readout W o + b",
    ]
    assert parts[: len(expected)] == expected
    assert any(p.startswith("learning state") for p in parts)
    assert any("number formats" in p for p in parts)
    assert all(entry["reason"] for entry in result.left_out)

    mapped = {p for row in result.mapping for p in row["parameters"]}
    names = {"nu_log", "gamma_log", "B"}
    cell = {f"layer1.cell.{n}" for n in names}
    assert mapped == cell | {"layer1.block.C", "layer1.block.D"}
    nodes = {node["name"]: node["type"] for node in result.nodes}
    assert nodes["integrator"] == "LI"
    assert set(nodes) == set(nir.read(result.path).nodes)


# --- weights ------------------------------------------------------------------


def test_weights_are_read_from_a_run_folder(tmp_path):
    scenario = fpttsim.load_scenario(SHIPPED)
    theta = prepare(scenario).theta
    trained = theta + np.random.default_rng(7).normal(scale=0.1, size=theta.size)
    report.write_parameters(tmp_path / "run", trained)

    result = fpttsim.export_nir(
        scenario, tmp_path / "core.nir", weights=tmp_path / "run"
    )
    assert result.weights == str(tmp_path / "run" / "parameters.npz")
    graph = nir.read(result.path)
    nu_log, gamma_log, b = cell_parameters(scenario, trained)
    np.testing.assert_allclose(
        graph.nodes["integrator"].tau, result.dt * np.exp(-nu_log), rtol=1e-15
    )
    np.testing.assert_allclose(
        graph.nodes["projection"].weight, np.exp(gamma_log)[:, None] * b, rtol=1e-15
    )
    u, h, y = reference(scenario, trained)
    simulated = zoh_graph(graph, u)
    np.testing.assert_allclose(simulated["output"], y, rtol=0, atol=1e-10 * scale(y))


def test_weights_of_another_network_are_refused(tmp_path):
    report.write_parameters(tmp_path, np.zeros(7))
    with pytest.raises(fpttsim.ConfigError, match="parameters.*got 7") as info:
        fpttsim.export_nir(SHIPPED, tmp_path / "x.nir", weights=tmp_path)
    assert info.value.file == str(tmp_path / "parameters.npz")


def test_a_folder_without_parameters_is_refused(tmp_path):
    with pytest.raises(fpttsim.ConfigError, match="parameters.npz") as info:
        fpttsim.export_nir(SHIPPED, tmp_path / "x.nir", weights=tmp_path)
    assert info.value.file == str(tmp_path / "parameters.npz")


@pytest.mark.parametrize(
    "write, match",
    [
        (lambda handle: handle.write(b"not numpy"), "cannot read it"),
        (lambda handle: np.save(handle, np.zeros(3)), "archive holding the array"),
        (lambda handle: np.savez(handle, w=np.zeros(3)), "archive holding the array"),
    ],
    ids=["text", "npy", "npz-without-theta"],
)
def test_a_file_that_is_not_a_runs_parameters_is_refused(tmp_path, write, match):
    path = tmp_path / "theta.npz"
    with path.open("wb") as handle:  # a handle: np.save would add .npy to a name
        write(handle)
    with pytest.raises(fpttsim.ConfigError, match=match) as info:
        fpttsim.export_nir(SHIPPED, tmp_path / "x.nir", weights=path)
    assert info.value.file == str(path)


@pytest.mark.parametrize(
    "nu_log, match", [(math.nan, "not finite"), (-800.0, "no finite, positive")]
)
def test_weights_without_a_time_constant_are_refused(tmp_path, nu_log, match):
    scenario = fpttsim.load_scenario(SHIPPED)
    theta = prepare(scenario).theta.copy()
    theta[0] = nu_log  # layer1.cell.nu_log[0]: lam = 1 to float64 at -800
    report.write_parameters(tmp_path, theta)
    with pytest.raises(fpttsim.ConfigError, match=match) as info:
        fpttsim.export_nir(scenario, tmp_path / "x.nir", weights=tmp_path)
    assert info.value.file == str(tmp_path / "parameters.npz")


@pytest.mark.parametrize("dt", [0.0, -1e-3, math.inf, math.nan, "soon"])
def test_time_step_must_be_positive(tmp_path, dt):
    with pytest.raises(fpttsim.ConfigError, match="time step > 0") as info:
        fpttsim.export_nir(SHIPPED, tmp_path / "x.nir", dt=dt)
    assert info.value.key == "dt"
    assert info.value.file is None


# --- command line -------------------------------------------------------------


def test_cli_exports_a_runs_weights_and_prints_one_json_document(tmp_path, capsys):
    # a run's folder as `fpttsim run --out` leaves it: report.write_parameters
    # is its writer (a real run here would compile the device's loop, ~30 s)
    scenario = fpttsim.load_scenario(SHIPPED)
    trained = prepare(scenario).theta * 1.1
    run = tmp_path / "run"
    report.write_parameters(run, trained)
    out = tmp_path / "new" / "core.nir"  # its folder does not exist yet
    code, stdout, _ = cli(
        capsys,
        "export-nir",
        SHIPPED,
        "--weights",
        str(run),
        "--out",
        str(out),
        "--json",
    )
    assert code == 0
    document = strict_json(stdout)  # fails on any text around the document
    assert document["path"] == str(out)
    assert document["weights"] == str(run / "parameters.npz")
    assert document["dt"] == 0.001
    assert document["nir_version"] == nir.version

    _, gamma_log, b = cell_parameters(scenario, trained)
    graph = nir.read(out)
    np.testing.assert_allclose(
        graph.nodes["projection"].weight, np.exp(gamma_log)[:, None] * b, rtol=1e-15
    )


def test_cli_summary_states_the_time_step_and_what_is_left_out(tmp_path, capsys):
    out = tmp_path / "core.nir"
    code, stdout, _ = cli(
        capsys, "export-nir", SHIPPED, "--out", str(out), "--dt", "0.002"
    )
    assert code == 0
    assert "dt = 0.002 s, given" in stdout
    assert "not exported" in stdout
    assert "layer normalisation" in stdout
    assert float(nir.read(out).metadata["dt"]) == 0.002


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--dt", "0"], "fpttsim: error: --dt: expected a time step > 0"),
        (["--set", "model.cell=lru"], "fpttsim: error: --set: model.cell: cannot"),
        (["--weights", "nowhere"], "fpttsim: error: nowhere: no such file"),
    ],
    ids=["dt", "cell", "weights"],
)
def test_cli_bad_input_exits_2(tmp_path, capsys, args, fragment):
    out = tmp_path / "x.nir"
    code, stdout, err = cli(capsys, "export-nir", SHIPPED, "--out", str(out), *args)
    assert code == 2
    assert stdout == ""
    assert err.startswith(fragment), err
    assert not out.exists()
