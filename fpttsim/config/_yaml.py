"""Safe YAML loading that remembers the line of every key path.

Validation errors name a key path such as ``("model", "hidden")``; to point the
user at the right line of their file, the loader keeps a map from each key
path in the document to the 1-based line where that key (in a mapping) or that
item (in a list) starts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fpttsim.errors import ConfigError

KeyPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _Loader(yaml.SafeLoader):
    """Safe loader that also reads exponent floats written without a dot.

    YAML 1.1, which PyYAML follows, reads ``1e-3`` as the string ``"1e-3"``;
    learning rates are written that way so often that reading them as text
    would only produce a confusing type error.
    """


_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML document and the line of each of its key paths.

    Parameters
    ----------
    data
        The document as plain Python objects (dicts, lists, scalars).
    file
        The file name used in messages.
    lines
        1-based line of each key path; the empty path is the document start.
    """

    data: Any
    file: str
    lines: Mapping[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """Return the line of the longest recorded prefix of ``path``.

        Parameters
        ----------
        path
            Key path, e.g. ``("model", "hidden")``.

        Returns
        -------
        int or None
            The line, or None when not even the document start is known.
        """
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def parse_yaml_text(text: str, file: str) -> YamlDocument:
    """Parse YAML text safely and record the line of every key path.

    Parameters
    ----------
    text
        The YAML source.
    file
        Name used in error messages (a path, or a label such as ``"--set"``).

    Returns
    -------
    YamlDocument
        The data and its line map. An empty document gives ``data=None``.

    Raises
    ------
    ConfigError
        On invalid YAML syntax, a duplicated key, or a key that is not text.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        # Lines are recorded before construction because constructing a
        # mapping rewrites merge keys (``<<``) in place.
        lines: dict[KeyPath, int] = {}
        if node is not None:
            _record(node, (), lines, file, frozenset())
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc, file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"the YAML is not valid: {exc}.", file=file) from None
    finally:
        loader.dispose()
    return YamlDocument(data=data, file=file, lines=lines)


def read_yaml_file(path: str | Path) -> YamlDocument:
    """Read a YAML file safely and record the line of every key path.

    Parameters
    ----------
    path
        The file to read (UTF-8).

    Returns
    -------
    YamlDocument
        The data and its line map, with ``file`` set to ``str(path)``.

    Raises
    ------
    ConfigError
        When the file cannot be read or is not valid YAML.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the file is not UTF-8 text (byte {exc.start} cannot be decoded). "
            "Save it as UTF-8.",
            file=file,
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"the file cannot be read: {reason}.", file=file) from None
    return parse_yaml_text(text, file)


def parse_yaml_value(text: str) -> Any:
    """Parse one YAML value, such as the right-hand side of ``--set key=value``.

    Parameters
    ----------
    text
        The value as typed, e.g. ``"16"``, ``"1e-3"``, ``"true"``, ``"[a, b]"``.

    Returns
    -------
    Any
        The value; an empty string gives None (YAML's null).

    Raises
    ------
    yaml.YAMLError
        When the text is not valid YAML; the caller knows which key it is for.
    """
    # _Loader derives from SafeLoader, so no arbitrary objects are built.
    return yaml.load(text, Loader=_Loader)


def _record(
    node: yaml.Node,
    path: KeyPath,
    lines: dict[KeyPath, int],
    file: str,
    ancestors: frozenset[int],
) -> None:
    """Walk ``node`` and store the line of each key path below ``path``."""
    lines.setdefault(path, node.start_mark.line + 1)
    # An alias can point back at one of its own ancestors; stop there and let
    # validation complain about the structure instead of recursing forever.
    if id(node) in ancestors:
        return
    ancestors = ancestors | {id(node)}

    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), lines, file, ancestors)
        return
    if not isinstance(node, yaml.MappingNode):
        return

    explicit: dict[str, int] = {}
    merged: list[yaml.Node] = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            merged.append(value_node)
            continue
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
            shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            raise ConfigError(
                f"the key {shown!r} is not text; keys must be names such as "
                "'hidden'. Put quotes around it if it is meant as a name.",
                file=file,
                line=line,
                key=dotted_key(path) or None,
            )
        key = key_node.value
        if key in explicit:
            raise ConfigError(
                f"the key {key!r} appears twice in the same section (first on "
                f"line {explicit[key]}). Keep one of them.",
                file=file,
                line=line,
                key=dotted_key((*path, key)),
            )
        explicit[key] = line
        lines[(*path, key)] = line
        _record(value_node, (*path, key), lines, file, ancestors)

    # Keys merged in with ``<<`` keep the line of their anchor, unless the
    # mapping sets them itself, which takes precedence as in YAML.
    for source in merged:
        sources = source.value if isinstance(source, yaml.SequenceNode) else [source]
        for mapping in sources:
            if isinstance(mapping, yaml.MappingNode):
                _record_merged(mapping, path, lines, file, ancestors, explicit)


def _record_merged(
    mapping: yaml.MappingNode,
    path: KeyPath,
    lines: dict[KeyPath, int],
    file: str,
    ancestors: frozenset[int],
    explicit: Mapping[str, int],
) -> None:
    """Record the keys a ``<<`` merge brings in, without overriding explicit ones."""
    sub: dict[KeyPath, int] = {}
    _record(mapping, path, sub, file, ancestors)
    for key_path, line in sub.items():
        if len(key_path) > len(path) and key_path[len(path)] not in explicit:
            lines.setdefault(key_path, line)


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> ConfigError:
    """Turn a PyYAML syntax error into a one-line ConfigError."""
    mark = exc.problem_mark or exc.context_mark
    line = None if mark is None else mark.line + 1
    problem = exc.problem or "the text cannot be parsed"
    context = ""
    if exc.context:
        # The problem is often found only at the end of the file; the context
        # mark tells where the unfinished construct began.
        started = exc.context_mark
        since = "" if started is None else f" that starts on line {started.line + 1}"
        context = f" ({exc.context}{since})"
    return ConfigError(
        f"the YAML is not valid: {problem}{context}. Check the indentation, "
        "the colons after keys, and brackets or quotes left open.",
        file=file,
        line=line,
    )


def dotted_key(path: KeyPath) -> str:
    """Join a key path with dots, e.g. ``("model", "hidden")`` to ``model.hidden``."""
    return ".".join(str(part) for part in path)
