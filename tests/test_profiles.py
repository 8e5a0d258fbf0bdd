import json
import textwrap
from pathlib import Path

import pytest

from fpttsim.cli import main
from fpttsim.config import (
    ArithmeticConfig,
    Profile,
    find_shipped,
    load_profile,
    shipped_profiles,
)
from fpttsim.config._yaml import read_yaml_file
from fpttsim.config.profile import (
    REFERENCE_COMPUTE,
    REFERENCE_ENERGY,
    REFERENCE_MEMORY,
    QuantityFormats,
)
from fpttsim.errors import ConfigError
from fpttsim.numerics.codes import OVERFLOW_NAMES, QUANTITY_NAMES, ROUNDING_NAMES

SHIPPED = shipped_profiles()


def write(folder: Path, text: str) -> Path:
    path = folder / "chip.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


# --- the schema agrees with the engine's codes --------------------------------


def test_quantity_keys_are_the_engine_quantities():
    assert tuple(QuantityFormats.model_fields) == QUANTITY_NAMES


def test_mode_names_are_the_engine_modes():
    fields = ArithmeticConfig.model_fields
    assert fields["rounding"].annotation.__args__ == ROUNDING_NAMES
    for name in ("saturate", "wrap", "inf"):
        assert name in OVERFLOW_NAMES


# --- shipped profiles -----------------------------------------------------------


def test_at_least_eight_profiles_are_shipped():
    assert len(SHIPPED) >= 8
    assert "fp64-reference" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_with_every_section(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.description

    # Shipped profiles give their own figures, never the reference's defaults.
    data = read_yaml_file(find_shipped("hardware_profiles", name)).data
    assert {"arithmetic", "memory", "compute", "energy"} <= set(data)
    assert profile.memory.working_bytes > 0
    assert profile.compute.ops_per_second > 0
    energy = profile.energy
    assert min(energy.add_pj, energy.mul_pj) > 0
    assert energy.working_access_pj_per_byte > 0
    assert energy.replay_access_pj_per_byte > 0
    assert len(profile.quantities()) == len(QUANTITY_NAMES)


def _numeric_leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numeric_leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _numeric_leaves(value, (*path, index))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_in_a_shipped_profile_has_a_comment(name):
    path = find_shipped("hardware_profiles", name)
    document = read_yaml_file(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    leaves = list(_numeric_leaves(document.data))
    assert leaves, "a profile without figures"
    missing = [
        ".".join(map(str, leaf))
        for leaf in leaves
        if "#" not in lines[document.lines[leaf] - 1]
    ]
    assert not missing, f"{name}: numbers without a source comment: {missing}"


def test_reference_file_holds_the_schema_defaults():
    reference = load_profile("fp64-reference")
    assert reference.memory == REFERENCE_MEMORY
    assert reference.compute == REFERENCE_COMPUTE
    assert reference.energy == REFERENCE_ENERGY
    assert reference == Profile(
        name="fp64-reference", description=reference.description
    )


# --- resolving formats ------------------------------------------------------------


def test_format_of_resolves_defaults_and_overrides():
    profile = Profile.model_validate(
        {
            "name": "chip",
            "arithmetic": {
                "default": "fixed16.15",
                "rounding": "down",
                "formats": {
                    "weights": "fixed8.7-shared",
                    "error": {"format": "fp16"},
                    "accumulator": {
                        "format": "fixed24.14",
                        "rounding": "toward-zero",
                        "overflow": "wrap",
                    },
                },
            },
        }
    )
    assert profile.format_of("state") == ("fixed16.15", "down", "saturate")
    assert profile.format_of("weights") == ("fixed8.7-shared", "down", "saturate")
    assert profile.format_of("error") == ("fp16", "down", "inf")
    assert profile.format_of("accumulator") == ("fixed24.14", "toward-zero", "wrap")
    resolved = profile.quantities()
    assert len(resolved) == len(QUANTITY_NAMES)
    assert resolved[QUANTITY_NAMES.index("error")].format == "fp16"
    with pytest.raises(ValueError, match="Did you mean 'weights'"):
        profile.format_of("weigths")


def test_a_bare_profile_is_the_reference():
    profile = Profile(name="chip")
    assert set(profile.quantities()) == {("fp64", "nearest-even", "inf")}
    assert profile.memory == REFERENCE_MEMORY


def test_json_dict_lists_resolved_formats():
    data = load_profile("cortex-m0plus").to_json_dict()
    assert list(data["quantities"]) == list(QUANTITY_NAMES)
    assert data["quantities"]["jacobian_product"] == {
        "format": "fixed32.31",
        "rounding": "down",
        "overflow": "saturate",
    }


# --- errors name the key and the line -------------------------------------------

# Line numbers count from 1 at "name: chip".
PROFILE = """\
name: chip
arithmetic:
  default: {default}
  overflow: {overflow}
  formats:
    weights: fixed8.7-shared
    accumulator: {accumulator}
"""


def load_text(tmp_path, **fields):
    values = {"default": "fixed16.15", "overflow": "null", "accumulator": "fixed24.14"}
    values.update(fields)
    return load_profile(write(tmp_path, PROFILE.format(**values)))


def test_valid_text_loads(tmp_path):
    profile = load_text(tmp_path)
    assert profile.format_of("accumulator").format == "fixed24.14"


@pytest.mark.parametrize(
    ("fields", "match", "line", "key"),
    [
        (
            {"default": "fp12"},
            "'fp12' is not valid",
            3,
            "arithmetic.default",
        ),
        (
            {"accumulator": "fixed24"},
            "'fixed24' is not valid",
            7,
            "arithmetic.formats.accumulator",
        ),
        (
            {"accumulator": "{format: fixed24.14, rounding: sideways}"},
            "expected one of 'nearest-even'.*got 'sideways'",
            7,
            "arithmetic.formats.accumulator.rounding",
        ),
        (
            {"accumulator": "{format: fp32, overflow: wrap}"},
            "'wrap' is for fixed-point formats only, but accumulator is 'fp32'",
            7,
            "arithmetic.formats.accumulator.overflow",
        ),
        (
            {"accumulator": "{format: fixed24.14, overflow: inf}"},
            "'inf' is for floating-point formats only, but accumulator is 'fixed24.14'",
            7,
            "arithmetic.formats.accumulator.overflow",
        ),
        (
            {"overflow": "wrap", "accumulator": "fp32"},
            r"'wrap' \(from arithmetic.overflow\) is for fixed-point formats only",
            7,
            "arithmetic.formats.accumulator",
        ),
        (
            {"default": "fp32", "overflow": "wrap"},
            "'wrap' is for fixed-point formats only, but arithmetic.default is 'fp32'",
            4,
            "arithmetic.overflow",
        ),
        (
            {"overflow": "sideways"},
            "expected one of 'saturate', 'wrap', 'inf'",
            4,
            "arithmetic.overflow",
        ),
    ],
)
def test_invalid_arithmetic_names_key_and_line(tmp_path, fields, match, line, key):
    with pytest.raises(ConfigError, match=match) as info:
        load_text(tmp_path, **fields)
    assert (info.value.line, info.value.key) == (line, key)


def test_unknown_quantity_suggests_the_closest(tmp_path):
    text = PROFILE.format(default="fp32", overflow="null", accumulator="fp32").replace(
        "weights:", "wieghts:"
    )
    with pytest.raises(ConfigError, match="did you mean 'weights'") as info:
        load_profile(write(tmp_path, text))
    assert (info.value.line, info.value.key) == (6, "arithmetic.formats.wieghts")
    assert "instantaneous_error" in info.value.message


@pytest.mark.parametrize(
    ("section", "match"),
    [
        (
            "memory:\n  working_bytes: 0\n  replay_bytes: 0\n  replay_memory: sram\n",
            "> 0",
        ),
        ("compute:\n  ops_per_second: -1.0\n", "> 0"),
        ("memory:\n  working_bytes: 1024\n", "required key is missing"),
    ],
)
def test_invalid_budget_sections(tmp_path, section, match):
    with pytest.raises(ConfigError, match=match):
        load_profile(write(tmp_path, "name: chip\n" + section))


# --- the command line -------------------------------------------------------------


def test_profiles_json_lists_every_shipped_profile(capsys):
    code, out, err = cli(capsys, "profiles", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [entry["name"] for entry in listed] == SHIPPED
    for entry in listed:
        assert list(entry["quantities"]) == list(QUANTITY_NAMES)
        assert entry["memory"]["working_bytes"] > 0


def test_profiles_table_lists_every_name(capsys):
    code, out, _ = cli(capsys, "profiles")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "default", "working"]
    assert [line.split()[0] for line in lines[1:]] == SHIPPED
    assert any("192 KiB" in line for line in lines if line.startswith("cortex-m4f"))


def test_profiles_name_json(capsys):
    code, out, _ = cli(capsys, "profiles", "loihi2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "loihi2"
    assert data["quantities"]["accumulator"] == {
        "format": "fixed24.20",
        "rounding": "toward-zero",
        "overflow": "wrap",
    }


def test_profiles_unknown_name_json_exits_2(capsys):
    code, out, err = cli(capsys, "profiles", "nosuchprofile", "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("fpttsim: error:")
