"""Markdown references of the files users write, rendered from their schemas.

``docs/scenario-reference.md``, ``docs/profile-reference.md`` and
``docs/sweep-reference.md`` are this module's output, and a test keeps them
equal to it. After changing a model, regenerate them from the repository's
root with::

    python -m fpttsim.config.reference

A key's type, default and allowed values come from its JSON Schema (the one
``fpttsim schema scenario|profile|sweep`` prints). Its meaning comes from the
``Parameters`` section of its model's docstring, which the schema carries as
the ``description`` of the section; a key without one is an error here, so
that the references cannot silently leave a key unexplained.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from fpttsim.config.schema import KINDS, json_schema, model_of

FOLDER = "docs"
"""Where the references live, relative to the repository's root."""

FILES = {
    "profile": "profile-reference.md",
    "scenario": "scenario-reference.md",
    "sweep": "sweep-reference.md",
}
"""Each kind of file and its reference, in the order they are rendered: a
definition two schemas share is written out in the first and linked from the
others."""

# Meanings the models' docstrings do not give, by definition and key. A key
# listed here that gains a description of its own, or disappears, is an error.
EXTRA_MEANINGS = {
    "QuantityFormats": {
        "weights": "Every parameter of the network as the device stores it.",
        "state": "The recurrent state `h` of each cell.",
        "input": "The task's input as the device receives it.",
        "activation": "Values inside and out of the feed-forward blocks and "
        "the readout.",
        "instantaneous_error": "The loss's gradient on the state at each step, `g`.",
        "error": "The error on the state, `δ`, that FPTT (and BPTT) carries "
        "along the window.",
        "jacobian": "The recurrent Jacobian `J` of a step (for diagonal cells, "
        "their eigenvalues).",
        "jacobian_product": "FPTT's product of transposed Jacobians, `P`.",
        "gradient": "The gradient's accumulators over the window.",
        "optimizer_state": "The optimiser's state (Adam's moments, SGD's momentum).",
        "product": "The result of one multiplication, before it is summed or stored.",
        "accumulator": "A running sum: dot products and other accumulations.",
    },
}

_NULL = {"type": "null"}


@dataclass(frozen=True)
class _Document:
    kind: str
    summary: str
    source: str
    schema: dict
    root: str  # the root model's docstring, for the top-level keys


def _document(kind: str) -> _Document:
    source = f"the JSON Schema that `fpttsim schema {kind}` prints"
    root = model_of(kind).model_json_schema()["description"]
    return _Document(kind, KINDS[kind], source, json_schema(kind), root)


# --- docstrings ---------------------------------------------------------------------

_HEADER = re.compile(r"^(\S[^\n]*)\n(-{3,})$", re.MULTILINE)
_ROLE = re.compile(r":(\w+):`~?([^`]+)`")


def _split_docstring(text: str) -> tuple[str, dict[str, str]]:
    """A numpy-style docstring's preamble and its sections by title."""
    parts = _HEADER.split(text)
    preamble, rest = parts[0], parts[1:]
    sections = {rest[i]: rest[i + 2].strip("\n") for i in range(0, len(rest), 3)}
    return preamble.strip(), sections


def _parameters(text: str) -> dict[str, str]:
    """Each parameter's description from a ``Parameters`` section."""
    out: dict[str, str] = {}
    names: list[str] = []
    for line in text.splitlines():
        if line and not line[0].isspace():
            names = [n.strip() for n in line.split(":")[0].split(",")]
            for name in names:
                out[name] = ""
        elif line.strip():
            for name in names:
                out[name] = f"{out[name]} {line.strip()}".strip()
    return out


def _markdown(text: str, links: dict[str, str]) -> str:
    """Docstrings' reStructuredText, turned into Markdown."""
    text = text.replace("``", "`")

    def role(match: re.Match) -> str:
        target = match.group(2)
        if match.group(1) == "class" and target in links:
            return links[target]
        return f"`{target}`"

    text = _ROLE.sub(role, text)
    # the models are Python, the files YAML: Python's None is YAML's null
    text = re.sub(r"\bNone\b", "`null`", text)
    # a line ending in "::" introduces an indented literal block
    out: list[str] = []
    block: list[str] | None = None
    for line in text.splitlines():
        if block is not None and line and not line[0].isspace():
            out += _fenced(block)
            block = None
        if block is not None:
            block.append(line[4:])
        elif line.endswith("::"):
            out.append(line[:-1])
            block = []
        else:
            out.append(line)
    if block is not None:
        out += _fenced(block)
    return "\n".join(out).strip()


def _fenced(block: list[str]) -> list[str]:
    """A literal block as a fenced code block, with a blank line either side."""
    return ["", "```text", "\n".join(block).strip("\n"), "```", ""]


def _cell(text: str) -> str:
    """Text fit for one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


# --- values -------------------------------------------------------------------------


def _number(value: float | int) -> str:
    if isinstance(value, float) and math.isclose(value, 2 * math.pi):
        return "2π"
    text = repr(value)
    if isinstance(value, float) and abs(value) >= 1e6:
        text = format(value, ".15g")  # 1e+12, not 1000000000000.0
    # YAML 1.1 reads 1e-05 as a string; written as 1.0e-05 it is a float
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e")
    return text


def _value(value) -> str:
    """A JSON value as YAML flow text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    return str(value) or '""'


def _range(schema: dict) -> str:
    """Bounds as text: ``≥ 1``, ``in (0, 0.5]``."""
    low = ("[", schema["minimum"]) if "minimum" in schema else None
    if "exclusiveMinimum" in schema:
        low = ("(", schema["exclusiveMinimum"])
    high = ("]", schema["maximum"]) if "maximum" in schema else None
    if "exclusiveMaximum" in schema:
        high = (")", schema["exclusiveMaximum"])
    if low and high:
        return f" in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
    if low:
        return f" {'≥' if low[0] == '[' else '>'} {_number(low[1])}"
    if high:
        return f" {'≤' if high[0] == ']' else '<'} {_number(high[1])}"
    return ""


def _choices(values: list) -> str:
    shown = [f"`{_value(v)}`" for v in values]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


# --- rendering ----------------------------------------------------------------------


@dataclass
class _Section:
    """One part of a reference: a model's table at a dotted path.

    A tagged union (``task``) has a section of its own, without a model, that
    lists its members; each member is a section with ``variant`` set.
    """

    path: str
    definition: str  # "" for a tagged union's own section
    depth: int
    variant: str = ""  # "kind: copy" for one member of a tagged union
    members: list[_Section] = field(default_factory=list)

    @property
    def heading(self) -> str:
        if self.variant:
            return f"`{self.path}` with `{self.variant}`"
        return f"`{self.path}`"

    @property
    def link(self) -> str:
        return f"[{self.heading}](#{_slug(self.heading)})"


class _Renderer:
    """Renders one document; ``shared`` maps definitions to links elsewhere."""

    def __init__(self, document: _Document, shared: dict[str, str]) -> None:
        self.document = document
        self.defs = document.schema.get("$defs", {})
        self.shared = shared
        self.format_name = _format_name_schema()["description"]
        self.sections: list[_Section] = []
        self.home: dict[str, _Section] = {}
        self.unions: dict[str, _Section] = {}
        self.used_extras: set[tuple[str, str]] = set()
        self._plan(document.schema, "", 2)
        self.links = {name: self.link(name) for name in [*self.home, *self.shared]}

    def _plan(self, schema: dict, path: str, depth: int) -> None:
        """The sections under ``schema``, depth first in the fields' order."""
        properties = schema.get("properties", {})
        users = Counter(n for p in properties.values() for n in self._refs(p))
        for key, prop in properties.items():
            names = [
                n for n in self._refs(prop) if n not in {**self.home, **self.shared}
            ]
            if not names:
                continue
            child = f"{path}.{key}" if path else key
            tag = prop.get("discriminator", {}).get("propertyName")
            if tag:
                union = _Section(child, "", depth)
                self.sections.append(union)
                self.unions[child] = union
                for name in names:
                    const = self.defs[name]["properties"][tag]["const"]
                    member = _Section(child, name, depth + 1, f"{tag}: {const}")
                    union.members.append(member)
                    self._add(member)
                continue
            for name in names:
                # a model several keys share is written out once, as <key>
                shared = f"{path}.<key>" if path else "<key>"
                self._add(_Section(child if users[name] == 1 else shared, name, depth))

    def _add(self, section: _Section) -> None:
        self.sections.append(section)
        self.home[section.definition] = section
        self._plan(self.defs[section.definition], section.path, section.depth + 1)

    def _refs(self, prop: dict) -> list[str]:
        if "$ref" in prop:
            return [prop["$ref"].rsplit("/", 1)[1]]
        out = []
        for option in prop.get("anyOf", []) + prop.get("oneOf", []):
            out.extend(self._refs(option))
        return out

    def link(self, name: str) -> str:
        """A Markdown link to a definition's section, here or elsewhere."""
        if name in self.shared:
            return self.shared[name]
        return self.home[name].link

    # --- one key's type and default

    def type_of(self, prop: dict, alone: bool = True) -> str:
        if "$ref" in prop:
            what = "section" if alone else "mapping"
            return f"{what}, see {self.link(self._refs(prop)[0])}"
        if "discriminator" in prop:
            tag = prop["discriminator"]["propertyName"]
            kinds = [self.home[n].variant.split(": ")[1] for n in self._refs(prop)]
            return f"section by `{tag}`: {_choices(kinds)}"
        if "anyOf" in prop:
            parts = [self.type_of(p, False) for p in prop["anyOf"] if p != _NULL]
            if _NULL in prop["anyOf"]:
                parts.append("`null`")
            return ", or ".join(parts)
        if prop.get("description") == self.format_name:
            here = "" if self.document.kind == "profile" else FILES["profile"]
            return f"[format name]({here}#number-formats)"
        if "const" in prop:
            return f"`{prop['const']}`"
        if "enum" in prop:
            return _choices(prop["enum"])
        return self._plain_type(prop)

    def _plain_type(self, prop: dict) -> str:
        kind = prop.get("type")
        if kind == "array":
            items = self._plural(prop.get("items", {}))
            least = prop.get("minItems", 0)
            if least > 1:
                return f"list of at least {least} {items}"
            return f"{'non-empty ' if least else ''}list of {items}"
        if kind == "object":
            values = prop.get("additionalProperties", True)
            shown = "value" if values in ({}, True) else self.type_of(values)
            return f"mapping of key to {shown}"
        if kind == "boolean":
            return "`true` or `false`"
        if kind == "string":
            return "non-empty string" if prop.get("minLength") else "string"
        if kind in ("integer", "number"):
            return kind + _range(prop)
        if not prop:
            return "any value"
        raise ValueError(f"cannot describe the schema {prop!r}")

    def _plural(self, items: dict) -> str:
        if "enum" in items:
            return _choices(items["enum"])
        if items.get("type") == "string":
            return "strings"
        return "values" if not items else self.type_of(items)

    def default_of(self, prop: dict) -> str:
        value = prop["default"]
        refs = self._refs(prop)
        if isinstance(value, dict) and refs and value == self._defaults(refs[0]):
            return "the defaults below"
        return f"`{_value(value)}`"

    def _defaults(self, name: str) -> dict:
        properties = self.defs.get(name, {}).get("properties", {})
        return {key: prop.get("default") for key, prop in properties.items()}

    # --- a key's meaning

    def meaning(self, definition: str, key: str, prop: dict, given: dict) -> str:
        if "discriminator" in prop:
            union = self.unions[self.home[self._refs(prop)[0]].path]
            return f"One table per kind, under {union.link}."
        if "$ref" in prop:
            # a section's row: the first paragraph of its model's description
            first, _ = _split_docstring(self.defs[self._refs(prop)[0]]["description"])
            return _markdown(first.split("\n\n")[0], self.links)
        extra = EXTRA_MEANINGS.get(definition, {}).get(key)
        if extra is not None:
            if key in given:
                raise ValueError(
                    f"{definition}.{key} now has a description of its own: "
                    "remove it from EXTRA_MEANINGS in fpttsim/config/reference.py"
                )
            self.used_extras.add((definition, key))
            return extra
        if key not in given:
            raise ValueError(
                f"{definition}.{key} has no description: give it one in the "
                f"Parameters section of {definition}'s docstring"
            )
        return _markdown(given[key], self.links)

    # --- the document

    def table(self, schema: dict, definition: str, docstring: str) -> list[str]:
        _, parts = _split_docstring(docstring)
        given = _parameters(parts.get("Parameters", ""))
        required = set(schema.get("required", []))
        rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, prop in schema["properties"].items():
            default = "required" if key in required else self.default_of(prop)
            meaning = self.meaning(definition, key, prop, given)
            cells = (f"`{key}`", self.type_of(prop), default, meaning)
            rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        return rows

    def section(self, section: _Section) -> list[str]:
        lines = ["", f"{'#' * min(section.depth, 6)} {section.heading}", ""]
        if not section.definition:
            tag = section.members[0].variant.split(":")[0]
            lines.append(
                f"`{section.path}.{tag}` selects one of these, each with its own keys:"
            )
            lines.append("")
            for member in section.members:
                first, _ = _split_docstring(self.defs[member.definition]["description"])
                summary = _markdown(first.split("\n\n")[0], self.links)
                lines.append(f"- {member.link}: {_cell(summary)}")
            return lines
        definition = self.defs[section.definition]
        preamble, parts = _split_docstring(definition.get("description", ""))
        text = "\n\n".join([preamble, *([parts["Notes"]] if "Notes" in parts else [])])
        lines += [_markdown(text, self.links), ""]
        return lines + self.table(
            definition, section.definition, definition["description"]
        )

    def render(self) -> str:
        document = self.document
        lines = [
            f"# {document.kind.capitalize()} reference",
            "",
            "<!-- Generated by `python -m fpttsim.config.reference` from the "
            "models' schemas and docstrings; edit those, not this file. -->",
            "",
            document.summary,
            "",
            f"Every key a {document.kind} file may hold, generated from "
            f"{document.source}. A *required* key has no default. Where "
            "`null` is allowed it leaves the key unset, and the meaning says "
            "what that implies. Keys not listed here are errors, and so are "
            "values outside the ranges given. "
            "Some relations between keys (stated in the meanings) are checked "
            "when the file is loaded; every error names the file, the line "
            "and the key.",
            "",
            "## Top level",
            "",
            *self.table(document.schema, f"the {document.kind}", document.root),
        ]
        for section in self.sections:
            lines += self.section(section)
        if document.kind == "profile":
            lines += ["", "## Number formats", "", *_format_grammar()]
        described = {
            (name, key)
            for name, keys in EXTRA_MEANINGS.items()
            if name in self.home
            for key in keys
        }
        if described - self.used_extras:
            raise ValueError(
                "EXTRA_MEANINGS describes keys no model has: "
                f"{sorted(described - self.used_extras)}"
            )
        return "\n".join(lines) + "\n"


def _format_name_schema() -> dict:
    from pydantic import TypeAdapter

    from fpttsim.config.profile import FormatName

    return TypeAdapter(FormatName).json_schema()


def _format_grammar() -> list[str]:
    """The number formats' grammar, from :mod:`fpttsim.numerics.formats`."""
    import inspect

    from fpttsim.numerics import formats

    _, sections = _split_docstring(inspect.cleandoc(formats.__doc__))
    limits = _markdown(sections["Not supported"], {})
    return [_markdown(sections["Format names"], {}), "", "### Limits", "", limits]


# --- files --------------------------------------------------------------------------


def references() -> dict[str, str]:
    """Every reference's Markdown, by file name.

    Returns
    -------
    dict
        ``{"profile-reference.md": text, ...}``, in the order of :data:`FILES`.

    Raises
    ------
    ValueError
        When a key has no description (the message says where to add it).
    """
    out: dict[str, str] = {}
    shared: dict[str, str] = {}
    for kind, file in FILES.items():
        renderer = _Renderer(_document(kind), dict(shared))
        out[file] = renderer.render()
        for name, section in renderer.home.items():
            shared.setdefault(name, section.link.replace("](#", f"]({file}#"))
    return out


def write_references(folder: str | Path = FOLDER) -> list[Path]:
    """Write every reference into ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file, text in references().items():
        path = folder / file
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m fpttsim.config.reference [FOLDER]``: write the references."""
    argv = sys.argv[1:] if argv is None else argv
    for path in write_references(argv[0] if argv else FOLDER):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
