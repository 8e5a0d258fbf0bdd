"""docs/figures.py draws what the README says it draws.

The README's figure of FPTT's two passes claims two things: in float64 the
error pass retraces BPTT's errors, and under fp32 with fast-forgetting units
it departs from them, growing by ``1 / |lambda|`` a step. The figure is drawn
from the data checked here.
"""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "figures.py"


@pytest.fixture(scope="module")
def figures():
    spec = importlib.util.spec_from_file_location("docs_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def drawn(figures, tmp_path_factory):
    path = tmp_path_factory.mktemp("figures") / "fptt_passes.png"
    exact, reduced = figures.fptt_passes(path)
    return path, exact, reduced


def test_the_figure_is_written(drawn):
    path = drawn[0]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < path.stat().st_size < 150_000


def test_in_float64_the_error_pass_retraces_bptt(drawn):
    _, exact, _ = drawn
    steps = exact.bptt.shape[0]
    assert exact.fptt.shape == exact.warmup.shape == exact.bptt.shape
    assert steps == 51  # the quickstart's T = 50, and t = 0
    # float64 rounding over 50 steps of a division by lambda: about 1e-15
    assert np.all(exact.deviation < 1e-9)
    # the warm-up alone is not BPTT's errors: it starts from zero
    assert np.linalg.norm(exact.warmup[0]) == 0.0
    assert np.linalg.norm(exact.bptt[0]) > 0.1


def test_the_trajectories_end_where_the_engine_s_fptt_ends(drawn):
    # The engine's own FPTT reports |delta_T - g_T|; the plotted delta_T must
    # give the same, or the figure shows another computation than fpttsim's.
    for tr in drawn[1:]:
        plotted = float(np.linalg.norm(tr.fptt[-1] - tr.g_end))
        assert plotted == pytest.approx(tr.residual, rel=1e-12, abs=1e-300)


def test_under_fp32_the_error_pass_departs_as_lambda_to_the_minus_t(drawn):
    _, _, reduced = drawn
    deviation = reduced.deviation
    # the first steps agree to fp32's rounding; the last are off by far more
    # than BPTT's errors themselves
    assert np.all(deviation[:100] < 1e-4)
    assert deviation[-1] > 1e6
    # the growth rate is that of a fast-forgetting unit: 1/|lambda| a step,
    # within the 3 % a straight line through the bend at the onset allows
    modulus = reduced.moduli[reduced.worst_unit]
    assert modulus < 0.6
    assert math.log(reduced.growth()) == pytest.approx(-math.log(modulus), rel=0.03)
