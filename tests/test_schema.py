"""JSON Schemas for editors: generated from the models, shipped, and usable.

The shipped files must equal what the code generates, and every shipped
scenario, profile and sweep file must validate against them, while files the
loader refuses for an unknown key or a bad value must fail them too.
"""

import json
from pathlib import Path

import jsonschema
import pytest

import fpttsim
from fpttsim.cli import main
from fpttsim.config._yaml import read_yaml_file
from fpttsim.config.schema import KINDS, json_schema, schema_text
from fpttsim.sweeps import load_sweep

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "scenario": "scenarios",
    "profile": "hardware_profiles",
    "sweep": "scenarios/sweeps",
}


def test_every_kind_has_a_schema_and_a_folder_of_examples():
    assert set(FOLDERS) == set(KINDS)
    shipped = {path.name for path in (ROOT / "schemas").glob("*.schema.json")}
    assert shipped == {f"{kind}.schema.json" for kind in KINDS}


@pytest.mark.parametrize("kind", list(FOLDERS))
def test_shipped_schemas_are_the_generated_ones(kind):
    shipped = (ROOT / "schemas" / f"{kind}.schema.json").read_text()
    assert shipped == schema_text(kind), (
        f"schemas/{kind}.schema.json is stale: run "
        f"`fpttsim schema {kind} > schemas/{kind}.schema.json`"
    )


def validator(kind):
    schema = json.loads((ROOT / "schemas" / f"{kind}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("kind", list(FOLDERS))
def test_every_shipped_file_validates(kind):
    check = validator(kind)
    files = sorted((ROOT / FOLDERS[kind]).glob("*.yaml"))
    assert files
    for path in files:
        data = read_yaml_file(path).data
        errors = [e.message for e in check.iter_errors(data)]
        assert errors == [], f"{path.name}: {errors}"


def test_schema_refuses_what_the_loader_refuses():
    scenario = read_yaml_file(ROOT / "scenarios" / "quickstart.yaml").data
    check = validator("scenario")
    bad_key = {**scenario, "model": {**scenario["model"], "hiden": 16}}
    assert not check.is_valid(bad_key)
    bad_value = {**scenario, "model": {**scenario["model"], "cell": "lstm"}}
    assert not check.is_valid(bad_value)
    profile = read_yaml_file(ROOT / "hardware_profiles" / "loihi2.yaml").data
    arithmetic = {**profile["arithmetic"], "rounding": "nearest"}
    assert not validator("profile").is_valid({**profile, "arithmetic": arithmetic})


def test_a_format_is_a_name_or_a_mapping():
    check = validator("profile")
    for spec in ("fp32", {"format": "fixed24.14", "overflow": "wrap"}):
        profile = {"name": "p", "arithmetic": {"formats": {"product": spec}}}
        assert check.is_valid(profile), spec


def test_command_line_prints_the_schema(capsys):
    assert main(["schema", "profile"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema("profile")
    assert fpttsim.schema("scenario")["title"] == "fpttsim scenario"


def test_the_sweep_schema_refuses_what_the_loader_refuses(tmp_path):
    shipped = ROOT / "scenarios" / "sweeps" / "smoke.yaml"
    sweep = read_yaml_file(shipped).data
    check = validator("sweep")
    assert check.is_valid(sweep)
    for bad in (
        {**sweep, "seed": 3},  # the key is `seeds`
        {**sweep, "command": "train"},
        {**sweep, "seeds": 0},
        {**sweep, "grid": {"learning.lr": []}},
    ):
        assert not check.is_valid(bad), bad
        # the loader agrees with the schema on each of them
        path = tmp_path / "bad.yaml"
        path.write_text(json.dumps({**bad, "base": "quickstart"}))
        with pytest.raises(fpttsim.ConfigError):
            load_sweep(path)


def test_command_line_prints_the_sweep_schema(capsys):
    assert main(["schema", "sweep"]) == 0
    printed = capsys.readouterr().out
    assert printed == schema_text("sweep")
    assert json.loads(printed)["title"] == "fpttsim sweep"
    assert set(json.loads(printed)["properties"]) >= {"base", "grid", "zip", "seeds"}
    assert fpttsim.schema("sweep") == json_schema("sweep")
