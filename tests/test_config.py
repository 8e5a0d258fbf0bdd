import math
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpttsim.config import (
    AddingTask,
    CopyTask,
    Profile,
    Scenario,
    SineTask,
    find_shipped,
    load_profile,
    load_scenario,
    parse_overrides,
    shipped_profiles,
    shipped_scenarios,
)
from fpttsim.config import loader as loader_module
from fpttsim.config.profile import QuantityFormats
from fpttsim.errors import ConfigError

# Line numbers in the tests below count from 1 at "name: demo".
BASE = """\
name: demo
seed: 3
task:
  kind: copy
  length: 50
model:
  cell: lru
  hidden: 8
  r_min: 0.9
  r_max: 0.99
learning:
  lr: 1e-3
"""


def write(folder: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def replaced(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


def load_text(tmp_path: Path, text: str, **kwargs) -> Scenario:
    return load_scenario(write(tmp_path, text), **kwargs)


# --- valid files --------------------------------------------------------------


def test_valid_scenario_with_defaults(tmp_path):
    scenario = load_text(tmp_path, BASE)

    assert scenario.name == "demo"
    assert scenario.seed == 3
    assert scenario.profile == "fp64-reference"
    assert scenario.task == CopyTask(kind="copy", length=50)
    assert scenario.task.symbols == 3 and scenario.task.alphabet == 4
    # 1e-3 without a dot is a string in YAML 1.1; the loader reads it as 0.001.
    assert scenario.learning.lr == 0.001
    assert scenario.learning.algorithm == "fptt"
    assert scenario.training.steps == 2000
    assert scenario.gradcheck.algorithms is None
    assert scenario.model.max_phase == 2 * math.pi


def test_resolved_sizes(tmp_path):
    scenario = load_text(tmp_path, BASE)
    assert scenario.model.resolved_width() == 8
    assert scenario.model.resolved_mlp_hidden() == 16
    assert scenario.learning.resolved_passes(scenario.model.layers) == 2

    wide = load_text(tmp_path, BASE, overrides=["model.width=5"])
    assert wide.model.resolved_width() == 5
    assert wide.model.resolved_mlp_hidden() == 10


def test_source_is_kept_out_of_dumps_and_equality(tmp_path):
    first = load_scenario(write(tmp_path, BASE, "a.yaml"))
    second = load_scenario(write(tmp_path, BASE, "b.yaml"))

    assert first.source == str(tmp_path / "a.yaml")
    assert "source" not in first.model_dump()
    assert first == second and hash(first) == hash(second)
    assert Scenario.model_validate(first.model_dump()) == first


def test_models_are_frozen(tmp_path):
    scenario = load_text(tmp_path, BASE)
    with pytest.raises(ValueError, match="frozen"):
        scenario.model.hidden = 4  # type: ignore[misc]


def test_gradcheck_algorithms_list_becomes_tuple(tmp_path):
    text = BASE + "gradcheck:\n  algorithms: [fptt, rtrl]\n"
    assert load_text(tmp_path, text).gradcheck.algorithms == ("fptt", "rtrl")


# --- errors with file, line and key -------------------------------------------


def test_unknown_key_suggests_the_close_one(tmp_path):
    text = replaced("  hidden: 8", "  hiden: 8")
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)

    error = info.value
    assert error.file == str(tmp_path / "scenario.yaml")
    assert (error.line, error.key) == (8, "model.hiden")
    assert error.message.startswith(
        "unknown key 'hiden'; did you mean 'hidden'? "
        "Valid keys in model: cell, layers, hidden, width"
    )
    assert str(error).startswith(f"{tmp_path / 'scenario.yaml'}:8: model.hiden: ")


def test_unknown_key_in_task_drops_the_union_tag(tmp_path):
    text = replaced("  length: 50", "  length: 50\n  symbolz: 2")
    with pytest.raises(ConfigError, match="did you mean 'symbols'") as info:
        load_text(tmp_path, text)
    assert (info.value.line, info.value.key) == (6, "task.symbolz")
    assert "Valid keys in task: kind, length, symbols, alphabet." in str(info.value)


def test_unknown_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'sed'; did you mean 'seed'"):
        load_text(tmp_path, BASE + "sed: 1\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", r"expected an integer, got 'abc' \(str\)\.$"),
        ("3.7", r"expected an integer, got 3\.7 \(float\)\.$"),
        ("3.0", r"got 3\.0 \(float\)\. Write 3 without a decimal point\."),
        ('"3"', r"got '3' \(str\)\. Remove the quotes around the number\."),
        ("true", r"expected an integer, got True \(bool\)"),
    ],
)
def test_integer_fields_are_strict(tmp_path, value, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        load_text(tmp_path, replaced("hidden: 8", f"hidden: {value}"))
    assert (info.value.line, info.value.key) == (8, "model.hidden")


def test_float_fields_accept_integers(tmp_path):
    scenario = load_text(tmp_path, replaced("lr: 1e-3", "lr: 1"))
    assert scenario.learning.lr == 1.0 and isinstance(scenario.learning.lr, float)


def test_float_field_rejects_text(tmp_path):
    with pytest.raises(ConfigError, match=r"expected a number, got 'fast' \(str\)"):
        load_text(tmp_path, replaced("lr: 1e-3", "lr: fast"))


def test_out_of_range(tmp_path):
    with pytest.raises(ConfigError, match=r"expected a number > 0, got -1\.$") as info:
        load_text(tmp_path, replaced("lr: 1e-3", "lr: -1"))
    assert (info.value.line, info.value.key) == (12, "learning.lr")


def test_non_finite_value(tmp_path):
    text = BASE + "  weight_decay: .inf\n"
    with pytest.raises(ConfigError, match="expected a finite number, got inf"):
        load_text(tmp_path, text)


def test_r_min_above_r_max_names_r_min(tmp_path):
    text = replaced("r_min: 0.9", "r_min: 0.995")
    with pytest.raises(ConfigError, match="expected r_min <= r_max") as info:
        load_text(tmp_path, text)
    assert (info.value.line, info.value.key) == (9, "model.r_min")
    assert "r_min = 0.995 and r_max = 0.99" in info.value.message


def test_copy_length_too_short_names_the_minimum(tmp_path):
    text = replaced("length: 50", "length: 6")
    with pytest.raises(ConfigError, match=r"2 \* symbols \+ 1 = 7 .*got 6") as info:
        load_text(tmp_path, text)
    assert (info.value.line, info.value.key) == (5, "task.length")


def test_sine_frequencies_must_be_ordered(tmp_path):
    task = "task:\n  kind: sine\n  length: 20\n  freq_max: 0.005\n"
    text = BASE.replace("task:\n  kind: copy\n  length: 50\n", task)
    with pytest.raises(ConfigError, match="expected freq_min <= freq_max") as info:
        load_text(tmp_path, text)
    # freq_min took its default, so the line is that of the task section.
    assert (info.value.line, info.value.key) == (3, "task.freq_min")


def test_sine_frequency_above_nyquist(tmp_path):
    overrides = ["task={kind: sine, length: 20, freq_max: 0.6}"]
    with pytest.raises(ConfigError, match=r"expected a number <= 0\.5, got 0\.6"):
        load_text(tmp_path, BASE, overrides=overrides)


def test_passes_above_layers_plus_one(tmp_path):
    text = BASE + "  passes: 3\n"
    with pytest.raises(ConfigError, match="at most model.layers \\+ 1 = 2") as info:
        load_text(tmp_path, text)
    assert (info.value.line, info.value.key) == (13, "learning.passes")


def test_bad_literal_lists_the_choices(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, replaced("cell: lru", "cell: lstm"))
    assert info.value.message == (
        "expected one of 'lru', 'diagonal', 'rnn', 'gru', got 'lstm'."
    )
    assert (info.value.line, info.value.key) == (7, "model.cell")


def test_bad_task_kind_points_at_kind(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'copy'") as info:
        load_text(tmp_path, replaced("kind: copy", "kind: cpy"))
    assert (info.value.line, info.value.key) == (4, "task.kind")
    kinds = "'copy', 'adding', 'sine', 'mnist1d', 'digits', 'mnist98'"
    assert f"expected one of {kinds}, got 'cpy'" in info.value.message


def test_missing_required_key(tmp_path):
    text = BASE.replace("name: demo\n", "")
    with pytest.raises(ConfigError, match="required key is missing") as info:
        load_text(tmp_path, text)
    assert info.value.key == "name"


def test_missing_task_length(tmp_path):
    text = replaced("  length: 50\n", "")
    with pytest.raises(ConfigError, match="required key is missing") as info:
        load_text(tmp_path, text)
    assert (info.value.line, info.value.key) == (3, "task.length")


def test_section_given_as_a_value(tmp_path):
    text = BASE + "training: 5\n"
    with pytest.raises(ConfigError, match="expected a section of keys") as info:
        load_text(tmp_path, text)
    assert (info.value.line, info.value.key) == (13, "training")


def test_bad_name(tmp_path):
    with pytest.raises(ConfigError, match="letters, digits") as info:
        load_text(tmp_path, replaced("name: demo", "name: my demo"))
    assert (info.value.line, info.value.key) == (1, "name")


def test_several_errors_are_listed_in_file_order(tmp_path):
    text = replaced("hidden: 8", "hidden: 0").replace("seed: 3", "seed: -1")
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)

    file = str(tmp_path / "scenario.yaml")
    lines = str(info.value).splitlines()
    assert lines == [
        f"{file}:2: seed: expected a number >= 0, got -1.",
        f"{file}:8: model.hidden: expected a number >= 1, got 0.",
    ]
    assert (info.value.line, info.value.key) == (2, "seed")


def test_empty_gradcheck_list(tmp_path):
    text = BASE + "gradcheck:\n  algorithms: []\n"
    with pytest.raises(ConfigError, match="at least 1 item, got an empty list"):
        load_text(tmp_path, text)


# --- files and YAML -----------------------------------------------------------


def test_missing_file_names_the_path_and_the_shipped_names(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_scenario(missing)
    assert info.value.file == str(missing)
    assert str(info.value).startswith(str(missing))


def test_unknown_shipped_profile_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="Did you mean 'fp64-reference'") as info:
        load_profile("fp64-referense")
    assert "Did you mean 'fp64-reference'?" in info.value.message
    assert "fp64-reference" in info.value.message.split("Shipped profiles: ")[1]


def test_yaml_syntax_error_gives_the_line(tmp_path):
    text = replaced("  cell: lru", "  cell: [lru")
    with pytest.raises(ConfigError, match="the YAML is not valid") as info:
        load_text(tmp_path, text)
    assert info.value.line == 8
    assert "line 7" in info.value.message
    assert "Traceback" not in str(info.value)


def test_yaml_bad_indentation(tmp_path):
    text = replaced("  hidden: 8", "   hidden: 8")
    with pytest.raises(ConfigError, match="the YAML is not valid") as info:
        load_text(tmp_path, text)
    assert info.value.line == 8


@pytest.mark.parametrize(
    ("text", "received"),
    [("- a\n- b\n", "it holds a list"), ("", "the file is empty")],
)
def test_top_level_must_be_a_mapping(tmp_path, text, received):
    with pytest.raises(ConfigError, match="expected a mapping of keys") as info:
        load_text(tmp_path, text)
    assert received in info.value.message


def test_duplicate_key(tmp_path):
    with pytest.raises(ConfigError, match="appears twice") as info:
        load_text(tmp_path, BASE + "seed: 4\n")
    assert (info.value.line, info.value.key) == (13, "seed")
    assert "first on line 2" in info.value.message


def test_merge_keys_keep_their_anchor_lines(tmp_path):
    text = "defaults: &d\n  hidden: 0\n" + BASE.replace(
        "model:\n", "model:\n  <<: *d\n"
    ).replace("  hidden: 8\n", "")
    with pytest.raises(ConfigError, match="got 0") as info:
        load_text(tmp_path, text.replace("defaults", "x-defaults"))
    # The anchor's unknown top-level key is reported too, on line 1.
    assert (info.value.line, info.value.key) == (1, "x-defaults")
    assert "model.hidden: expected a number >= 1, got 0." in str(info.value)


# --- overrides ----------------------------------------------------------------


def test_parse_overrides_reads_yaml_values():
    parsed = parse_overrides(
        ["model.hidden=16", "learning.lr=1e-3", "x=true", "y=", "z=a=b", "w=.5"]
    )
    assert parsed == {
        "model.hidden": 16,
        "learning.lr": 0.001,
        "x": True,
        "y": None,
        "z": "a=b",
        "w": 0.5,
    }


def test_overrides_from_strings(tmp_path):
    scenario = load_text(
        tmp_path, BASE, overrides=["model.hidden=16", "learning.lr=2e-4", "seed=9"]
    )
    assert scenario.model.hidden == 16
    assert scenario.learning.lr == pytest.approx(2e-4)
    assert scenario.seed == 9


def test_overrides_from_a_mapping_create_missing_sections(tmp_path):
    scenario = load_text(
        tmp_path, BASE, overrides={"training.steps": 10, "gradcheck.epsilon": 1e-6}
    )
    assert scenario.training.steps == 10
    assert scenario.gradcheck.epsilon == 1e-6


def test_override_of_an_unknown_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, BASE, overrides=["learning.rl=0.1"])
    error = info.value
    assert (error.file, error.line, error.key) == ("--set", None, "learning.rl")
    assert error.message.startswith(
        "unknown key 'rl'; did you mean 'lr'? Valid keys in learning: algorithm,"
    )
    assert str(error).startswith("--set: learning.rl: unknown key")


def test_override_below_a_value(tmp_path):
    with pytest.raises(ConfigError, match="model.hidden is 8 \\(int\\), not a section"):
        load_text(tmp_path, BASE, overrides=["model.hidden.size=3"])


def test_override_with_a_bad_value_names_set(tmp_path):
    with pytest.raises(ConfigError, match="expected an integer, got 'big'") as info:
        load_text(tmp_path, BASE, overrides=["model.hidden=big"])
    assert (info.value.file, info.value.line, info.value.key) == (
        "--set",
        None,
        "model.hidden",
    )


def test_override_without_equals_sign(tmp_path):
    with pytest.raises(ConfigError, match="key.path=value, got 'model.hidden'"):
        load_text(tmp_path, BASE, overrides=["model.hidden"])


def test_override_with_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="is not valid YAML") as info:
        load_text(tmp_path, BASE, overrides=["model.hidden=[1,"])
    assert (info.value.file, info.value.key) == ("--set", "model.hidden")


def test_override_of_task_kind(tmp_path):
    scenario = load_text(tmp_path, BASE, overrides=["task.kind=adding"])
    assert scenario.task == AddingTask(kind="adding", length=50)

    # A key of the new kind is accepted once the kind is overridden too.
    sine = load_text(tmp_path, BASE, overrides={"task.noise": 0.0, "task.kind": "sine"})
    assert isinstance(sine.task, SineTask) and sine.task.noise == 0.0


def test_override_of_a_key_the_new_kind_lacks(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'symbols'") as info:
        load_text(tmp_path, BASE, overrides=["task.kind=adding", "task.symbols=2"])
    assert "Valid keys in task: kind, length." in info.value.message


def test_override_replaces_a_whole_section(tmp_path):
    scenario = load_text(tmp_path, BASE, overrides=["task={kind: adding, length: 9}"])
    assert scenario.task == AddingTask(kind="adding", length=9)


def test_override_that_breaks_a_relation_names_set(tmp_path):
    with pytest.raises(ConfigError, match="expected r_min <= r_max") as info:
        load_text(tmp_path, BASE, overrides={"model.r_min": 0.999})
    assert (info.value.file, info.value.key) == ("--set", "model.r_min")


@settings(max_examples=30, deadline=None)
@given(hidden=st.integers(min_value=1, max_value=2**40))
def test_any_positive_hidden_round_trips(base_file, hidden):
    scenario = load_scenario(base_file, [f"model.hidden={hidden}"])
    assert scenario.model.hidden == hidden
    assert load_scenario(base_file, {"model.hidden": hidden}) == scenario


@settings(max_examples=30, deadline=None)
@given(hidden=st.integers(max_value=0))
def test_any_hidden_below_one_is_rejected(base_file, hidden):
    with pytest.raises(ConfigError, match=f"got {hidden}\\.$") as info:
        load_scenario(base_file, [f"model.hidden={hidden}"])
    assert (info.value.file, info.value.key) == ("--set", "model.hidden")


@pytest.fixture(scope="module")
def base_file(tmp_path_factory):
    return write(tmp_path_factory.mktemp("base"), BASE)


# --- profiles and shipped files -----------------------------------------------


def test_shipped_reference_profile():
    assert "fp64-reference" in shipped_profiles()
    path = find_shipped("hardware_profiles", "fp64-reference")
    assert path is not None and path.name == "fp64-reference.yaml"

    profile = load_profile("fp64-reference")
    assert profile == Profile(name="fp64-reference", description=profile.description)
    assert profile.arithmetic.default == "fp64"
    assert load_profile(path) == profile


def test_find_shipped_refuses_paths_and_unknown_names():
    assert find_shipped("hardware_profiles", "no-such-profile") is None
    assert find_shipped("hardware_profiles", "../hardware_profiles/x") is None
    with pytest.raises(ValueError, match="kind must be"):
        find_shipped("sweeps", "x")  # type: ignore[arg-type]


def test_unknown_format_name_is_rejected(tmp_path):
    path = write(tmp_path, "name: chip\narithmetic:\n  default: fp17\n", "p.yaml")
    with pytest.raises(ConfigError, match="'fp17' is not valid") as info:
        load_profile(path)
    assert (info.value.line, info.value.key) == (3, "arithmetic.default")


def test_profile_unknown_key(tmp_path):
    path = write(tmp_path, "name: chip\narithmetik: {}\n", "p.yaml")
    with pytest.raises(ConfigError, match="did you mean 'arithmetic'") as info:
        load_profile(path)
    assert (info.value.line, info.value.key) == (2, "arithmetik")


def test_scenario_resolves_a_shipped_profile(tmp_path):
    assert load_text(tmp_path, BASE).resolve_profile() == load_profile("fp64-reference")


def test_relative_profile_is_resolved_against_the_scenario_folder(
    tmp_path, monkeypatch
):
    write(tmp_path, "name: chip\n", "profiles/chip.yaml")
    text = BASE + "profile: ../profiles/chip.yaml\n"
    scenario = load_scenario(write(tmp_path, text, "scenarios/s.yaml"))

    # The working directory must not matter.
    monkeypatch.chdir(tmp_path / "profiles")
    assert scenario.resolve_profile().name == "chip"


def test_missing_relative_profile_names_the_scenario_line(tmp_path):
    path = write(tmp_path, BASE + "profile: chips/none.yaml\n")
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_scenario(path).resolve_profile()
    assert (info.value.file, info.value.line, info.value.key) == (
        str(path),
        13,
        "profile",
    )
    assert str(tmp_path / "chips" / "none.yaml") in info.value.message


def test_shipped_scenario_by_name(tmp_path, monkeypatch):
    write(tmp_path, BASE, "scenarios/demo.yaml")
    monkeypatch.setattr(loader_module, "_shipped_dirs", lambda kind: [tmp_path / kind])

    assert shipped_scenarios() == ["demo"]
    assert load_scenario("demo").source == str(tmp_path / "scenarios" / "demo.yaml")
    with pytest.raises(ConfigError, match="Did you mean 'demo'"):
        load_scenario("dmeo")


def test_shipped_quickstart_loads_if_present():
    if find_shipped("scenarios", "quickstart") is None:
        pytest.skip("scenarios/quickstart.yaml is not written yet")
    scenario = load_scenario("quickstart")
    assert scenario.name == "quickstart"
    assert isinstance(scenario.resolve_profile(), Profile)


# --- device.formats: mixed precision on a profile -------------------------------


def test_device_formats_replace_the_profiles_own(tmp_path):
    text = BASE + "profile: bf16-systolic\ndevice:\n  formats:\n    error: fp32\n"
    profile = load_text(tmp_path, text).resolve_profile()
    assert profile.name == "bf16-systolic + error: fp32"
    assert profile.format_of("error").format == "fp32"
    # the rest is the device's: bf16 storage, its fp32 accumulator, its memory
    shipped = load_profile("bf16-systolic")
    for quantity in ("state", "jacobian_product", "accumulator"):
        assert profile.format_of(quantity) == shipped.format_of(quantity)
    assert profile.memory == shipped.memory


def test_device_formats_keep_a_quantitys_rounding_when_only_the_format_changes():
    profile = load_profile("loihi2")
    wide = profile.with_formats(QuantityFormats(error="fixed32.24"))
    assert wide.format_of("error").format == "fixed32.24"
    assert wide.format_of("error").rounding == profile.format_of("error").rounding
    assert profile.with_formats(QuantityFormats()) is profile


def test_device_formats_bad_name_points_at_its_line(tmp_path):
    text = BASE + "device:\n  formats:\n    jacobian_product: fp33\n"
    with pytest.raises(ConfigError, match="format name 'fp33' is not valid") as info:
        load_text(tmp_path, text)
    assert (info.value.line, info.value.key) == (
        15,
        "device.formats.jacobian_product",
    )
