"""Loading scenarios and profiles: shipped names, overrides and error messages.

A scenario or profile is read with the line-aware YAML loader, overridden with
``--set key.path=value`` values, and validated by the pydantic schema. Every
validation error becomes a :class:`~fpttsim.errors.ConfigError` that names the
file, the line, the key path, the constraint and the value received.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

import fpttsim
from fpttsim.config._yaml import (
    KeyPath,
    YamlDocument,
    dotted_key,
    parse_yaml_value,
    read_yaml_file,
)
from fpttsim.config.profile import Profile
from fpttsim.config.relations import RELATION_ERROR
from fpttsim.config.scenario import Scenario, TaskSection
from fpttsim.errors import ConfigError

ShippedKind = Literal["scenarios", "hardware_profiles"]
Model = TypeVar("Model", bound=BaseModel)

OVERRIDE_FILE = "--set"
"""The file name given in messages about values that came from overrides."""

_SUFFIXES = (".yaml", ".yml")
_NOUNS = {"scenarios": "scenario", "hardware_profiles": "profile"}


# --- shipped files ------------------------------------------------------------


def _shipped_dirs(kind: ShippedKind) -> list[Path]:
    """Folders that may hold shipped files of ``kind``, in search order."""
    if kind not in _NOUNS:
        raise ValueError(
            f"kind must be 'scenarios' or 'hardware_profiles', got {kind!r}."
        )
    package = Path(fpttsim.__file__).resolve().parent
    # A wheel carries the files inside the package; an editable install finds
    # them at the top of the repository, next to the package folder.
    return [package / "_shipped" / kind, package.parent / kind]


def find_shipped(kind: ShippedKind, name: str) -> Path | None:
    """Return the shipped file of a name, or None if there is none.

    Parameters
    ----------
    kind
        ``"scenarios"`` or ``"hardware_profiles"``.
    name
        The name, e.g. ``"quickstart"``; a ``.yaml`` suffix is allowed.

    Returns
    -------
    pathlib.Path or None
        The file, looked up inside the package first, then at the top of the
        repository. Names holding a path separator are never shipped names.

    Raises
    ------
    ValueError
        When ``kind`` is neither of the two folders.
    """
    dirs = _shipped_dirs(kind)
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if not stem or stem.startswith(".") or "/" in stem or os.sep in stem:
        return None
    for folder in dirs:
        candidate = folder / f"{stem}.yaml"
        if candidate.is_file():
            return candidate
    return None


def _shipped_names(kind: ShippedKind) -> list[str]:
    names = {
        path.stem
        for folder in _shipped_dirs(kind)
        if folder.is_dir()
        for path in folder.glob("*.yaml")
    }
    return sorted(names)


def shipped_scenarios() -> list[str]:
    """Return the names of the shipped scenarios, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`load_scenario`.
    """
    return _shipped_names("scenarios")


def shipped_profiles() -> list[str]:
    """Return the names of the shipped hardware profiles, sorted.

    Returns
    -------
    list of str
        Names accepted by :func:`load_profile`.
    """
    return _shipped_names("hardware_profiles")


def _looks_like_path(text: str) -> bool:
    return "/" in text or os.sep in text or text.endswith(_SUFFIXES)


def _shipped_hint(kind: ShippedKind, name: str | None = None) -> str:
    noun = _NOUNS[kind]
    names = _shipped_names(kind)
    if not names:
        return f"No {noun} files are shipped with this installation."
    hint = ""
    if name is not None:
        close = _closest(name, names)
        hint = f"Did you mean {close[0]!r}? " if close else ""
    return f"{hint}Shipped {noun}s: {', '.join(names)}."


def _locate(
    kind: ShippedKind,
    ref: str | os.PathLike[str],
    base: Path | None,
) -> tuple[Path | None, str]:
    """Find the file ``ref`` refers to, and say what was looked for if absent.

    A reference holding a path separator or a YAML suffix is a path, relative
    to ``base`` (or the working directory); otherwise an existing file of that
    name in the working directory wins, then a shipped file of that name.
    """
    text = os.fspath(ref)
    noun = _NOUNS[kind]
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path

    if _looks_like_path(text) or isinstance(ref, os.PathLike):
        if path.is_file():
            return path, ""
        if path.is_dir():
            return None, f"{str(path)!r} is a folder, not a {noun} file."
        where = f" (looked for {str(path.absolute())!r})" if base is not None else ""
        return None, (
            f"the {noun} file {text!r} does not exist{where}. Give the path of "
            f"a YAML file or the name of a shipped {noun}. {_shipped_hint(kind)}"
        )

    if base is None and path.is_file():
        return path, ""
    shipped = find_shipped(kind, text)
    if shipped is not None:
        return shipped, ""
    return None, (
        f"there is no shipped {noun} named {text!r} and no file of that name. "
        f"{_shipped_hint(kind, text)}"
    )


# --- overrides ----------------------------------------------------------------


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``key.path=value`` strings, as given to ``--set``, into a mapping.

    Parameters
    ----------
    items
        Strings such as ``"model.hidden=16"``, ``"learning.lr=1e-3"``,
        ``"task={kind: adding, length: 20}"``. Each value is read as YAML, so
        ``16`` is an integer, ``1e-3`` a float, ``true`` a boolean and an
        empty value null. A later item for the same key wins.

    Returns
    -------
    dict
        Dotted key path to value.

    Raises
    ------
    ConfigError
        With file ``"--set"``, when an item has no ``=``, an empty key, or a
        value that is not valid YAML.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"expected an override of the form key.path=value, got {item!r}. "
                "For example: --set model.hidden=16",
                file=OVERRIDE_FILE,
            )
        try:
            overrides[key] = parse_yaml_value(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or "it cannot be parsed"
            raise ConfigError(
                f"the value {text!r} is not valid YAML: {problem}. Put quotes "
                "around text that holds ':', '#', brackets or braces.",
                file=OVERRIDE_FILE,
                key=key,
            ) from None
    return overrides


def _as_mapping(overrides: Mapping[str, Any] | Sequence[str]) -> Mapping[str, Any]:
    if isinstance(overrides, Mapping):
        return overrides
    if isinstance(overrides, str):
        return parse_overrides([overrides])
    return parse_overrides(overrides)


def _apply_overrides(
    data: dict[str, Any],
    overrides: Mapping[str, Any],
    model: type[BaseModel],
) -> tuple[dict[str, Any], frozenset[KeyPath]]:
    """Return a copy of ``data`` with the overrides set, and their key paths.

    A value replaces whatever is at its path, a whole section included.
    """
    data = copy.deepcopy(data)
    paths: dict[KeyPath, str] = {}
    for key, value in overrides.items():
        if not isinstance(key, str):
            raise ConfigError(
                f"override keys must be dotted key paths such as 'model.hidden', "
                f"got {key!r} ({type(key).__name__}).",
                file=OVERRIDE_FILE,
            )
        parts = tuple(part.strip() for part in key.split("."))
        if not all(parts):
            raise ConfigError(
                "the key path has an empty part; write parts separated by "
                "single dots, such as 'model.hidden'.",
                file=OVERRIDE_FILE,
                key=key,
            )

        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(
                    f"cannot set {key!r}: {dotted_key(parts[: depth + 1])} is "
                    f"{_show(child)}, not a section with keys.",
                    file=OVERRIDE_FILE,
                    key=key,
                )
            node = child
        node[parts[-1]] = copy.deepcopy(value)
        paths[parts] = key

    # Checked once all are set, because an override of task.kind changes the
    # keys that are valid under task.
    for parts, key in paths.items():
        _check_key_path(model, parts, data, key)
    return data, frozenset(paths)


def _check_key_path(
    model: type[BaseModel], parts: KeyPath, data: dict[str, Any], key: str
) -> None:
    for depth, part in enumerate(parts):
        parent = parts[:depth]
        sections = _sections(model, parent, data)
        if not sections:
            raise ConfigError(
                f"{dotted_key(parent)} is a single value, not a section, so it "
                f"has no key {part!r}. Set {dotted_key(parent)} itself.",
                file=OVERRIDE_FILE,
                key=key,
            )
        valid = _valid_keys(sections)
        if part not in valid:
            raise ConfigError(
                _unknown_key_message(str(part), valid, dotted_key(parent)),
                file=OVERRIDE_FILE,
                key=key,
            )


# --- the schema, walked by key path ------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes a field annotation allows (none for a plain value)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _pick_variant(
    variants: list[type[BaseModel]], discriminator: Any, node: Any
) -> list[type[BaseModel]]:
    """Narrow a tagged union to the variant the data's tag selects, if any."""
    if len(variants) < 2 or not isinstance(discriminator, str):
        return variants
    tag = node.get(discriminator) if isinstance(node, dict) else None
    chosen = [
        variant
        for variant in variants
        if discriminator in variant.model_fields
        and tag in get_args(variant.model_fields[discriminator].annotation)
    ]
    # With no valid tag, any variant's keys may be meant.
    return chosen or variants


def _sections(
    model: type[BaseModel], path: KeyPath, data: Any
) -> list[type[BaseModel]]:
    """The model classes the section at ``path`` may be; empty for a value."""
    candidates = [model]
    node = data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
        found: list[type[BaseModel]] = []
        for candidate in candidates:
            field = candidate.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                continue
            variants = _models_in(field.annotation)
            for variant in _pick_variant(variants, field.discriminator, node):
                if variant not in found:
                    found.append(variant)
        candidates = found
        if not candidates:
            return []
    return candidates


def _valid_keys(sections: list[type[BaseModel]]) -> list[str]:
    keys: list[str] = []
    for section in sections:
        keys.extend(name for name in section.model_fields if name not in keys)
    return keys


def _closest(word: str, options: Sequence[str]) -> list[str]:
    """The option ``word`` was most likely meant as, in a list of at most one."""
    # Swapped letters ("rl" for "lr") score low with difflib on short words.
    swapped = [option for option in options if sorted(option) == sorted(word)]
    return swapped[:1] or difflib.get_close_matches(word, options, n=1)


def _unknown_key_message(key: str, valid: list[str], parent: str) -> str:
    close = _closest(key, valid)
    guess = f"; did you mean {close[0]!r}?" if close else "."
    here = f" in {parent}" if parent else " at the top level"
    return f"unknown key {key!r}{guess} Valid keys{here}: {', '.join(valid)}."


# --- pydantic errors as ConfigError ------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """Where the values of a validated document came from."""

    document: YamlDocument
    overridden: frozenset[KeyPath]

    @property
    def file(self) -> str:
        return self.document.file

    def where(self, path: KeyPath) -> tuple[str, int | None]:
        """File and line of the value at ``path``."""
        for end in range(len(path), 0, -1):
            if tuple(path[:end]) in self.overridden:
                return OVERRIDE_FILE, None
        return self.document.file, self.document.line_of(path)


def _show(value: Any) -> str:
    """Describe a received value briefly, with its type."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return f"a list ({value!r})" if len(repr(value)) <= 60 else "a list"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _bound(limit: Any) -> str:
    """Show a bound as written in the schema: ``0`` rather than ``0.0``."""
    if isinstance(limit, float) and limit.is_integer():
        return str(int(limit))
    return repr(limit)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _quoted_values(expected: str) -> list[str]:
    """The values pydantic lists as ``"'a', 'b' or 'c'"``."""
    return re.findall(r"'([^']*)'", expected)


_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def _describe(error: Mapping[str, Any], valid: list[str], parent: str) -> str:
    """The message for one pydantic error, in full sentences."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}

    if kind == "extra_forbidden":
        return _unknown_key_message(str(error["loc"][-1]), valid, parent)
    if kind == "missing":
        return "required key is missing."
    if kind in ("int_type", "int_parsing", "int_from_float"):
        hint = ""
        if isinstance(value, float) and value.is_integer():
            hint = f" Write {int(value)} without a decimal point."
        if isinstance(value, str) and _is_number(value):
            hint = " Remove the quotes around the number."
        return f"expected an integer, got {_show(value)}.{hint}"
    if kind in ("float_type", "float_parsing"):
        hint = ""
        if isinstance(value, str) and _is_number(value):
            hint = " Remove the quotes around the number."
        return f"expected a number, got {_show(value)}.{hint}"
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}."
    if kind in _BOUNDS:
        symbol, name = _BOUNDS[kind]
        return f"expected a number {symbol} {_bound(ctx.get(name))}, got {value!r}."
    if kind == "literal_error":
        options = _quoted_values(str(ctx.get("expected", "")))
        close = _closest(str(value), options)
        guess = f" Did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(repr(option) for option in options)
        return f"expected one of {listed}, got {value!r}.{guess}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_show(value)}."
    if kind == "string_type":
        return (
            f"expected text, got {_show(value)}. Put quotes around it if it is "
            "meant as text."
        )
    if kind == "string_too_short":
        return "expected non-empty text, got an empty string."
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return (
            f"expected a section of keys (a YAML mapping), got {_show(value)}. "
            "Indent its keys below it, one per line."
        )
    if kind in ("list_type", "tuple_type"):
        return f"expected a list such as [a, b], got {_show(value)}."
    if kind == "too_short":
        minimum = ctx.get("min_length")
        items = "item" if minimum == 1 else "items"
        received = ctx.get("actual_length")
        got = "an empty list" if received == 0 else f"{received} of them"
        return f"expected a list of at least {minimum} {items}, got {got}."
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if kind == RELATION_ERROR:
        return str(error["msg"])
    return f"{error['msg']}; got {_show(value)}."


def _clean_loc(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """Drop the parts of a pydantic location that are not keys of the data.

    Pydantic inserts the tag of a tagged union, e.g. ``("task", "copy",
    "length")``; walking the data shows that ``"copy"`` is not a key. The last
    part is kept even if absent: a missing key is absent by definition.
    """
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif index < len(loc) - 1:
            continue
        path.append(part)
    return tuple(path)


def _tag_problem(
    error: Mapping[str, Any], path: KeyPath, model: type[BaseModel]
) -> tuple[str, KeyPath]:
    """Message and key path of a tagged union whose tag is missing or unknown.

    Pydantic reports these at the section; the tag key is blamed instead, so
    that the line is that of ``kind:``.
    """
    ctx = error.get("ctx") or {}
    tag = str(ctx.get("discriminator", "kind")).strip("'\"")
    tags = [
        str(get_args(variant.model_fields[tag].annotation)[0])
        for variant in _sections(model, path, None)
        if tag in variant.model_fields
    ]
    listed = ", ".join(repr(name) for name in tags)
    if error["type"] == "union_tag_not_found":
        message = f"required key is missing; it selects the variant: {listed}."
        return message, (*path, tag)

    section = error.get("input")
    received = section.get(tag) if isinstance(section, dict) else None
    close = _closest(str(received), tags)
    guess = f" Did you mean {close[0]!r}?" if close else ""
    message = f"expected one of {listed}, got {received!r}.{guess}"
    return message, (*path, tag)


def _to_config_error(
    error: Mapping[str, Any],
    data: Any,
    model: type[BaseModel],
    origin: _Origin,
) -> ConfigError:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == RELATION_ERROR:
        # The check ran on a whole section; blame the field it names.
        loc = loc + tuple(str(ctx["key"]).split("."))
    path = _clean_loc(loc, data)
    message = None
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        message, path = _tag_problem(error, path, model)

    parent = path[:-1]
    if message is None:
        valid = _valid_keys(_sections(model, parent, data))
        message = _describe(error, valid, dotted_key(parent))
    file, line = origin.where(path)
    return ConfigError(message, file=file, line=line, key=dotted_key(path) or None)


def _validate(model: type[Model], data: Any, origin: _Origin) -> Model:
    """Validate ``data`` as ``model``; raise one ConfigError listing every error."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            _to_config_error(error, data, model, origin)
            for error in exc.errors(include_url=False)
        ]
    # Pydantic lists errors in schema order; the file's order reads better,
    # with the values from overrides last.
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    first = problems[0]
    if len(problems) == 1:
        raise first
    # The first problem stays the exception's location; the others follow,
    # one per line, in the same file:line: key: message form.
    message = "\n".join([first.message, *(str(p) for p in problems[1:])])
    raise ConfigError(message, file=first.file, line=first.line, key=first.key)


# --- loading ------------------------------------------------------------------


def _read_mapping(path: Path, noun: str, required: str) -> YamlDocument:
    document = read_yaml_file(path)
    if isinstance(document.data, dict):
        return document
    if document.data is None:
        received = "the file is empty"
    else:
        received = f"it holds {_show(document.data)}"
    raise ConfigError(
        f"expected a mapping of keys at the top level of a {noun} file, but "
        f"{received}. A {noun} starts with keys such as {required}.",
        file=document.file,
        line=document.lines.get(()),
    )


def load_scenario(
    path_or_name: str | os.PathLike[str],
    overrides: Mapping[str, Any] | Sequence[str] = (),
) -> Scenario:
    """Load and validate a scenario.

    Parameters
    ----------
    path_or_name
        A path to a YAML file, or the name of a shipped scenario (e.g.
        ``"quickstart"`` for ``scenarios/quickstart.yaml``).
    overrides
        Either a mapping from dotted key path to value (values used as
        given), or ``key.path=value`` strings as given to ``--set`` (values
        read as YAML, see :func:`parse_overrides`). A value replaces what is
        at its path, a whole section included.

    Returns
    -------
    Scenario
        The validated scenario; ``scenario.source`` is the file it came from.

    Raises
    ------
    ConfigError
        When the file is missing or not valid YAML, an override names a key
        the schema does not have (file ``"--set"``), or a value is not valid.

    Examples
    --------
    >>> import fpttsim
    >>> scenario = fpttsim.load_scenario(
    ...     "quickstart", ["learning.algorithm=bptt", "task.length=20"])
    >>> scenario.learning.algorithm, scenario.task.length
    ('bptt', 20)
    >>> try:
    ...     fpttsim.load_scenario("quickstart", {"model.hiden": 16})
    ... except fpttsim.ConfigError as error:
    ...     print(error.message.split(";")[0])
    unknown key 'hiden'
    """
    path, reason = _locate("scenarios", path_or_name, None)
    if path is None:
        raise ConfigError(reason, file=os.fspath(path_or_name))

    document = _read_mapping(path, "scenario", "name:, task: and model:")
    data, overridden = _apply_overrides(document.data, _as_mapping(overrides), Scenario)
    origin = _Origin(document=document, overridden=overridden)
    scenario = _validate(Scenario, data, origin)
    scenario._origin = origin
    if isinstance(scenario.task, TaskSection):
        # A task that reads files resolves their path against the scenario's
        # folder and names the line of its key.
        scenario.task._origin = origin
    return scenario


def _load_profile_file(path: Path) -> Profile:
    document = _read_mapping(path, "profile", "name: and arithmetic:")
    origin = _Origin(document=document, overridden=frozenset())
    return _validate(Profile, document.data, origin)


def load_profile(path_or_name: str | os.PathLike[str]) -> Profile:
    """Load and validate a hardware profile.

    Parameters
    ----------
    path_or_name
        A path to a YAML file, or the name of a shipped profile (e.g.
        ``"fp64-reference"`` for ``hardware_profiles/fp64-reference.yaml``).

    Returns
    -------
    Profile
        The validated profile.

    Raises
    ------
    ConfigError
        When the file is missing or not valid YAML, or a value is not valid.

    Examples
    --------
    >>> import fpttsim
    >>> profile = fpttsim.load_profile("bf16-systolic")
    >>> profile.format_of("weights").format, profile.format_of("accumulator").format
    ('bf16', 'fp32')
    """
    path, reason = _locate("hardware_profiles", path_or_name, None)
    if path is None:
        raise ConfigError(reason, file=os.fspath(path_or_name))
    return _load_profile_file(path)


def load_profile_for(reference: str, base: Path | None, origin: Any) -> Profile:
    """Load the profile a scenario names; used by ``Scenario.resolve_profile``.

    Parameters
    ----------
    reference
        The scenario's ``profile`` value: a shipped name or a path.
    base
        Folder a relative path is resolved against; None for the working
        directory.
    origin
        The scenario's origin, to name its file and line when the profile
        cannot be found; None for a scenario built in code.

    Returns
    -------
    Profile
        The validated profile.

    Raises
    ------
    ConfigError
        When the profile cannot be found or is not valid.
    """
    path, reason = _locate("hardware_profiles", reference, base)
    if path is None:
        file, line = (None, None) if origin is None else origin.where(("profile",))
        raise ConfigError(reason, file=file, line=line, key="profile")
    return _load_profile_file(path)
