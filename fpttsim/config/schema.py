"""JSON Schemas of the YAML files users write, generated from the models.

Editors that speak the YAML language server's protocol (VS Code's YAML
extension, Neovim, JetBrains IDEs) complete and check a scenario, a profile
or a sweep file against these; ``schemas/`` in the repository holds them,
kept equal to what this module generates by a test.
"""

from __future__ import annotations

import json

from pydantic import BaseModel

from fpttsim.config.profile import Profile
from fpttsim.config.scenario import Scenario

KINDS = {
    "scenario": "An fpttsim scenario: task, model, learning, training.",
    "profile": "An fpttsim hardware profile: number formats, memories, "
    "throughput, energy.",
    "sweep": "An fpttsim sweep file: a base scenario, axes over its keys, the "
    "metrics to collect.",
}
"""The files that have a schema, with their descriptions."""

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def model_of(kind: str) -> type[BaseModel]:
    """The validation model of a kind of file (see :data:`KINDS`).

    Raises
    ------
    ValueError
        When ``kind`` has no schema.
    """
    if kind == "scenario":
        return Scenario
    if kind == "profile":
        return Profile
    if kind == "sweep":
        # Imported here: the sweeps package sits above the configuration
        # and imports its loader.
        from fpttsim.sweeps.spec import SweepSpec

        return SweepSpec
    raise ValueError(f"no schema for {kind!r}; there are {', '.join(KINDS)}")


def json_schema(kind: str) -> dict:
    """The JSON Schema of a kind of file.

    Parameters
    ----------
    kind
        ``"scenario"``, ``"profile"`` or ``"sweep"``.

    Returns
    -------
    dict
        A JSON Schema (draft 2020-12).

    Raises
    ------
    ValueError
        When ``kind`` has no schema.
    """
    schema = model_of(kind).model_json_schema()
    return {
        "$schema": DRAFT,
        "title": f"fpttsim {kind}",
        "description": KINDS[kind],
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text(kind: str) -> str:
    """The schema as the text ``schemas/<kind>.schema.json`` holds."""
    return json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"
