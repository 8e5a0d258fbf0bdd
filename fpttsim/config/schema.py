"""JSON Schemas of the YAML files users write, generated from the models.

Editors that speak the YAML language server's protocol (VS Code's YAML
extension, Neovim, JetBrains IDEs) complete and check a scenario or a
profile against these; ``schemas/`` in the repository holds them, kept equal
to what this module generates by a test.
"""

from __future__ import annotations

import json

from fpttsim.config.profile import Profile
from fpttsim.config.scenario import Scenario

KINDS = {
    "scenario": (Scenario, "An fpttsim scenario: task, model, learning, training."),
    "profile": (
        Profile,
        "An fpttsim hardware profile: number formats, memories, throughput, energy.",
    ),
}
"""The files that have a schema, with their models and descriptions."""

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(kind: str) -> dict:
    """The JSON Schema of a kind of file.

    Parameters
    ----------
    kind
        ``"scenario"`` or ``"profile"``.

    Returns
    -------
    dict
        A JSON Schema (draft 2020-12).

    Raises
    ------
    ValueError
        When ``kind`` has no schema.
    """
    if kind not in KINDS:
        raise ValueError(f"no schema for {kind!r}; there are {', '.join(KINDS)}")
    model, description = KINDS[kind]
    schema = model.model_json_schema()
    return {
        "$schema": DRAFT,
        "title": f"fpttsim {kind}",
        "description": description,
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text(kind: str) -> str:
    """The schema as the text ``schemas/<kind>.schema.json`` holds."""
    return json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"
