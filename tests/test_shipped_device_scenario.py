"""The shipped ``mnist1d-cortex-m4f`` scenario against the device's memory.

At MNIST-1D's 40 steps the scenario fits the Cortex-M4F's memory with room to
spare; stretched to ``LONG`` steps, BPTT's tape no longer fits while FPTT's
buffers still do. No training runs here: building a :class:`Device` plans
and allocates every buffer before the first sample, which is what is checked.
"""

import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.device import BudgetError, Device, plan

NAME = "mnist1d-cortex-m4f"
LONG = 200  # BPTT stops fitting at T = 93, FPTT's replay buffer at T = 3197


def device(overrides=None) -> Device:
    scenario = fpttsim.load_scenario(NAME, overrides or {})
    return Device(scenario, scenario.resolve_profile())


def in_memory(dev: Device, memory: str) -> int:
    return sum(b.bytes for b in dev.buffers if b.memory == memory)


def test_the_scenario_fits_the_device_with_a_margin():
    dev = device()
    assert dev.profile.name == "cortex-m4f"
    assert dev.algorithm == "fptt" and dev.length == 40

    memory = dev.profile.memory
    working, replay = in_memory(dev, "working"), in_memory(dev, "replay")
    assert working <= 0.9 * memory.working_bytes  # at least 10 % left over
    assert replay <= memory.replay_bytes
    assert dev.arena.report()["working"]["peak_bytes"] == working


def test_fptt_still_fits_at_the_long_length():
    scenario = fpttsim.load_scenario(NAME, {"task.length": LONG})
    profile = scenario.resolve_profile()
    dev = device({"task.length": LONG})
    buffers = plan(dev.net, "fptt", LONG, profile)
    assert sum(b.bytes for b in buffers if b.memory == "working") <= (
        profile.memory.working_bytes
    )
    assert in_memory(dev, "replay") <= profile.memory.replay_bytes


def test_bptt_at_the_long_length_is_refused_naming_its_tape():
    with pytest.raises(BudgetError, match="activations") as err:
        device({"learning.algorithm": "bptt", "task.length": LONG})
    assert err.value.over.get("working", 0) > 0
    assert "replay" not in err.value.over


def test_the_command_line_refuses_it_with_exit_code_1(tmp_path, capsys):
    capsys.readouterr()
    code = main(
        [
            "run",
            NAME,
            "--out",
            str(tmp_path / "run"),
            "--set",
            "learning.algorithm=bptt",
            "--set",
            f"task.length={LONG}",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 1
    assert "does not fit the device" in err
    assert "activations" in err
    assert not (tmp_path / "run" / "result.json").exists()
