"""lava-nc is an optional extra: the core works without it, Lava features say
how to install it, and with it installed a real Lava network runs."""

import importlib
import json
import subprocess
import sys
import textwrap
from importlib import metadata

import numpy as np
import pytest

import fpttsim
import fpttsim.lava
from fpttsim.lava import (
    LAVA_INSTALL_HINT,
    LavaNotInstalled,
    lava_version,
    require_lava,
)

# Runs in a fresh interpreter in which any import of lava fails, as it would
# where lava-nc is not installed. The finder also records every attempt, so
# that the script can tell whether the core tried to import lava at all.
WITHOUT_LAVA = textwrap.dedent(
    """
    import json
    import sys

    class BlockLava:
        attempts = []

        def find_spec(self, name, path=None, target=None):
            if name == "lava" or name.startswith("lava."):
                self.attempts.append(name)
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    blocker = BlockLava()
    sys.meta_path.insert(0, blocker)

    import fpttsim
    import fpttsim.lava

    scenario = fpttsim.load_scenario("quickstart", {"training.steps": 10})
    result = fpttsim.run(scenario)
    attempts_before = list(blocker.attempts)

    try:
        fpttsim.lava.require_lava("The Lava export")
    except fpttsim.lava.LavaNotInstalled as exc:
        error = {
            "message": str(exc),
            "import_error": isinstance(exc, ImportError),
            "fpttsim_error": isinstance(exc, fpttsim.FpttsimError),
            "cause": type(exc.__cause__).__name__,
        }
    else:
        error = None

    print(json.dumps({
        "initial": result.training.initial["loss"],
        "final": result.training.final["loss"],
        "attempts_before": attempts_before,
        "attempts_after": blocker.attempts,
        "lava_loaded": any(m == "lava" or m.startswith("lava.") for m in sys.modules),
        "error": error,
    }))
    """
)


def test_core_runs_without_lava_and_the_lava_feature_says_how_to_install(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_LAVA],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)

    # Importing fpttsim and training never so much as tried to import lava.
    assert report["attempts_before"] == []
    assert not report["lava_loaded"]
    assert report["final"] < report["initial"]

    # Only require_lava tried, and it turned the failure into advice.
    assert report["attempts_after"] == ["lava"]
    error = report["error"]
    assert error is not None, "require_lava returned although lava was blocked"
    assert error["import_error"] and error["fpttsim_error"]
    assert error["cause"] == "ModuleNotFoundError"
    message = error["message"]
    assert message.startswith("The Lava export needs")
    assert "pip install" in message
    assert "fpttsim[lava]" in message
    assert LAVA_INSTALL_HINT in message
    assert "Python 3.10" in message and "numpy < 2" in message


def test_missing_lava_message_in_process(monkeypatch):
    # The same failure in this interpreter: a None entry in sys.modules makes
    # the import raise ImportError, as for an uninstalled package.
    monkeypatch.setitem(sys.modules, "lava", None)
    with pytest.raises(LavaNotInstalled, match=r"fpttsim\[lava\]") as info:
        require_lava("fpttsim export-lava")
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, fpttsim.FpttsimError)
    assert str(info.value).startswith("fpttsim export-lava needs the optional")
    assert isinstance(info.value.__cause__, ImportError)


def test_lava_version_reads_metadata():
    assert lava_version() == metadata.version("lava-nc")
    assert lava_version().startswith("0.10")


def test_require_lava_returns_the_real_package():
    lava = require_lava()
    assert lava.__name__ == "lava"
    assert lava is sys.modules["lava"]
    # The real installation, not a stand-in: its process library is there.
    assert hasattr(importlib.import_module("lava.proc.dense.process"), "Dense")


def test_lava_smoke_run_matches_hand_computation():
    require_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    # Two input channels over four time steps (last axis is time), and a 3 x 2
    # weight matrix; every value is a small dyadic fraction, so the products
    # and sums below are exact in floating point.
    x = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]])
    w = np.array([[1.0, 2.0], [-1.0, 0.5], [0.25, 4.0]])
    steps = x.shape[1]

    source = Source(data=x)
    # num_message_bits > 0: graded spikes, so Dense computes w @ s rather than
    # summing the columns of the channels that spiked.
    dense = Dense(weights=w, num_message_bits=24)
    sink = Sink(shape=(3,), buffer=steps)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(sink.a_in)
    try:
        sink.run(
            condition=RunSteps(num_steps=steps),
            run_cfg=Loihi2SimCfg(select_tag="floating_pt"),
        )
        received = sink.data.get()
    finally:
        sink.stop()

    # Expected, step by step (t = 1..4). In each step the source sends column
    # x[:, t-1] and Dense receives it in that same step: the ports add no
    # latency. But Dense first sends its buffer, filled in the previous step,
    # and only then computes w @ x[:, t-1] into the buffer (this keeps
    # recurrent loops free of deadlock). So the sink records 0 at t = 1 and
    # w @ x[:, t-2] at t >= 2:
    #   t=1: (0, 0, 0)
    #   t=2: w @ (1, 0.5)  = (1 + 1,    -1 + 0.25, 0.25 + 2) = (2, -0.75, 2.25)
    #   t=3: w @ (2, -1)   = (2 - 2,    -2 - 0.5,  0.5 - 4)  = (0, -2.5, -3.5)
    #   t=4: w @ (3, 0)    = (3,        -3,        0.75)
    expected = np.array(
        [
            [0.0, 2.0, 0.0, 3.0],
            [0.0, -0.75, -2.5, -3.0],
            [0.0, 2.25, -3.5, 0.75],
        ]
    )
    assert received.shape == (3, steps)
    np.testing.assert_array_equal(received, expected)
    # The same, computed from w and x: a one-step shift of w @ x.
    np.testing.assert_array_equal(received[:, 1:], (w @ x)[:, :-1])


def test_importing_fpttsim_lava_does_not_import_lava():
    code = (
        "import sys, fpttsim, fpttsim.lava; "
        "print(any(m == 'lava' or m.startswith('lava.') for m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
    assert fpttsim.lava.LAVA_DISTRIBUTION == "lava-nc"


def test_lava_imports_after_fpttsims_process_pools():
    # Lava sets the global start method on import and raises if it was
    # chosen before; a pool on the default context chooses it, and so does
    # spawning a process; fpttsim's pools and Dask clusters leave it unchosen
    script = textwrap.dedent(
        """
        import concurrent.futures, sys
        from fpttsim.pools import process_pool
        with process_pool(1) as pool:
            assert pool.submit(abs, -2).result() == 2
        if sys.argv[1] == "default":
            with concurrent.futures.ProcessPoolExecutor(1) as pool:
                pool.submit(abs, -2).result()
        else:
            # a local Dask cluster spawns its workers
            from fpttsim.sweeps.executors import DaskExecutor
            DaskExecutor(None, 1).close()
        import lava.magma.runtime.runtime
        """
    )
    runs = {
        case: subprocess.run(
            [sys.executable, "-c", script, case], capture_output=True, text=True
        )
        for case in ("ours", "default")
    }
    assert runs["ours"].returncode == 0, runs["ours"].stderr
    assert "context has already been set" in runs["default"].stderr
