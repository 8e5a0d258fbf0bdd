r"""The user documentation under docs/ runs as written, and stays in sync.

How the pages are read (the docs follow these conventions):

- A fenced block whose language is ``console`` holds commands: a line
  starting with ``$ `` is a command, continued on the next line after a
  trailing ``\``. The lines after it, up to the next command or the end of
  the block, are what it prints.
- Every such command is an ``fpttsim`` command. It runs in-process through
  :func:`fpttsim.cli.main` and must exit with 0, or with N when a line of its
  output is ``(exit N)`` or ends with it.
- Each output line shown must match a line the command printed (on stdout
  or stderr), with every number matching any number and ``...`` matching
  anything. A line of only ``...`` stands for lines left out.
- A fenced block whose first line is ``# file: NAME`` is written to NAME
  when the page reaches it, so that the commands after it read the docs' own
  files (a later block for the same NAME replaces it, as an edit would).
- Each page runs from top to bottom in an empty working directory.
- Commands that must not run here (a cluster's) are in blocks of another
  language (``bash``, ``python``), which are not collected.

The README's ``console`` blocks (its tour) are read the same way. Its
commands run from the repository's root, as the README says, so its empty
working directory links the repository's ``scenarios/`` folder, which they
read by path; indented blocks (the reference's usage lines) are not
collected.

To keep the suite fast the test adds ``--workers 1`` to studies and sweeps
that do not choose their workers: studies then run in this process.
"""

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fpttsim.cli import main
from fpttsim.config import load_profile
from fpttsim.config._yaml import read_yaml_file
from fpttsim.config.reference import FILES, references
from fpttsim.config.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README = ROOT / "README.md"

# Folders of the repository a page's commands read by path (see above).
FROM_ROOT = {README.name: ["scenarios"]}

# What the README's tour shows, one subcommand at least each.
TOUR = {
    "scenarios",
    "profiles",
    "run",
    "gradcheck",
    "budget",
    "study",
    "recommend",
    "sweep",
    "export-nir",
}

# Options the test adds to commands that do not give them (see above).
SHORT = {"study": ["--workers", "1"], "sweep": ["--workers", "1"]}

_FENCE = re.compile(r"^```(\S*)[^\n]*\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)
_EXIT = re.compile(r"\s*\(exit (\d+)\)\s*$")
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Command:
    line: int
    text: str
    shown: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class Block:
    line: int
    language: str
    text: str

    @property
    def file(self) -> str | None:
        first = self.text.split("\n", 1)[0]
        return first[len("# file:") :].strip() if first.startswith("# file:") else None


def blocks(page: Path) -> list[Block]:
    """The page's fenced blocks, in order, with the line each starts on."""
    text = page.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2))
        for m in _FENCE.finditer(text)
    ]


def commands(block: Block) -> list[Command]:
    """The commands of a console block, each with the output it shows."""
    out: list[Command] = []
    lines = block.text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("$ "):
            start, text = block.line + i, line[2:]
            while text.endswith("\\") and i < len(lines):
                text = text[:-1] + " " + lines[i].strip()
                i += 1
            out.append(Command(start, text))
        elif out:
            exit_code = _EXIT.search(line)
            if exit_code:
                out[-1].exit_code = int(exit_code.group(1))
                line = line[: exit_code.start()]
            if line.strip():
                out[-1].shown.append(line)
        else:
            raise AssertionError(f"line {block.line + i}: output before any command")
    return out


def _masked(line: str) -> str:
    return " ".join(_NUMBER.sub("#", line).split())


def _pattern(line: str) -> re.Pattern:
    parts = [re.escape(p) for p in _masked(line).split("...")]
    return re.compile(".*".join(parts))


def missing_lines(shown: list[str], printed: str) -> list[str]:
    """Shown lines that match no printed line (numbers masked)."""
    actual = [_masked(line) for line in re.split(r"[\r\n]", printed)]
    return [
        line
        for line in shown
        if line.strip() != "..."
        and not any(_pattern(line).fullmatch(a) for a in actual)
    ]


def argv_of(command: Command) -> list[str]:
    words = shlex.split(command.text)
    assert words[0] == "fpttsim", (
        f"line {command.line}: only fpttsim commands run here; put `{words[0]}` "
        "in a block of another language (bash) if it must not run"
    )
    argv = words[1:]
    extra = SHORT.get(argv[0], [])
    if extra and extra[0] not in argv and "--dask" not in argv:
        argv += extra
    return argv


def check(command: Command, capsys) -> str | None:
    """Run one command; what is wrong with it, or None."""
    try:
        code = main(argv_of(command))
    except SystemExit as exc:  # argparse refusing an option exits
        code = exc.code
    captured = capsys.readouterr()
    printed = captured.out + "\n" + captured.err
    if code != command.exit_code:
        tail = "\n".join(printed.strip().splitlines()[-15:])
        return f"exit {code}, the docs say {command.exit_code}:\n{tail}"
    missing = missing_lines(command.shown, printed)
    if missing:
        return (
            f"the docs show lines it did not print: {missing}\nit printed:\n{printed}"
        )
    return None


PAGES_WITH_COMMANDS = [
    page
    for page in PAGES
    if any(b.language == "console" or b.file for b in blocks(page))
]


@pytest.mark.parametrize("page", [*PAGES_WITH_COMMANDS, README], ids=lambda p: p.name)
def test_every_command_in_the_docs_runs(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for folder in FROM_ROOT.get(page.name, []):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    for block in blocks(page):
        if block.file:
            (tmp_path / block.file).write_text(block.text, encoding="utf-8")
            continue
        if block.language != "console":
            continue
        for command in commands(block):
            problem = check(command, capsys)
            if problem:
                where = f"{page.name}:{command.line}: `{command.text}`"
                pytest.fail(f"{where}: {problem}", pytrace=False)


def test_the_docs_run_fpttsim_commands():
    # The pages this test is meant to cover must hold commands, so that a
    # change to the conventions does not silently leave them untested.
    ran = {p.name for p in PAGES_WITH_COMMANDS}
    assert {"hardware-profiles.md", "sweeps.md", "numerical-stability.md"} <= ran
    for page in PAGES_WITH_COMMANDS:
        for block in blocks(page):
            if block.language == "console":
                assert commands(block), f"{page.name}:{block.line}: no command"


def _section(text: str, heading: str) -> tuple[int, str]:
    """The line a ``## heading`` starts on, and its text up to the next one."""
    start = text.index(f"\n## {heading}\n") + 1
    end = text.find("\n## ", start)
    return text.count("\n", 0, start) + 1, text[start : end if end >= 0 else None]


def test_every_command_of_the_readme_s_tour_is_run():
    # A tour command outside a console block would be shown but never run.
    text = README.read_text(encoding="utf-8")
    first, tour = _section(text, "A 5-minute tour")
    last = first + tour.count("\n")
    shown = [
        line.strip()
        for line in tour.splitlines()
        if line.strip().startswith("$ fpttsim")
    ]
    run = [
        command
        for block in blocks(README)
        if block.language == "console" and first <= block.line <= last
        for command in commands(block)
    ]
    assert len(run) == len(shown) >= len(TOUR)
    assert {argv_of(command)[0] for command in run} == TOUR


def test_the_figures_the_docs_show_exist():
    shown = 0
    for page in [README, *PAGES]:
        text = _FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
            shown += 1
            assert (page.parent / target).is_file(), f"{page.name}: no {target}"
    assert shown >= 4


def test_the_references_are_the_generated_ones():
    for file, text in references().items():
        shipped = DOCS / file
        assert shipped.is_file() and shipped.read_text(encoding="utf-8") == text, (
            f"docs/{file} is stale: run `python -m fpttsim.config.reference` "
            "from the repository's root"
        )
    assert set(FILES.values()) <= {p.name for p in PAGES}


def _numeric_lines(node, lines):
    """The line of every number in a YAML document's data."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _numeric_lines(value, (*lines, key))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield lines


def test_profiles_in_the_docs_load_and_cite_every_number(tmp_path):
    profiles = 0
    for page in PAGES:
        for block in blocks(page):
            if not block.file or not {"arithmetic", "memory"} & set(
                re.findall(r"^(\w+):", block.text, re.MULTILINE)
            ):
                continue
            path = tmp_path / block.file
            path.write_text(block.text, encoding="utf-8")
            load_profile(str(path))
            document = read_yaml_file(path)
            text = block.text.splitlines()
            uncited = [
                ".".join(keys)
                for keys in _numeric_lines(document.data, ())
                if "#" not in text[document.lines[keys] - 1]
            ]
            assert not uncited, f"{page.name}:{block.line}: no source for {uncited}"
            profiles += 1
    assert profiles >= 2


def _resolves(schema: dict, parts: list[str], defs: dict) -> bool:
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    options = schema.get("anyOf", []) + schema.get("oneOf", [])
    if options:
        return any(_resolves(option, parts, defs) for option in options)
    if not parts:
        return True
    properties = schema.get("properties", {})
    return parts[0] in properties and _resolves(properties[parts[0]], parts[1:], defs)


def test_dotted_keys_in_the_docs_exist():
    # A key written in the prose, `learning.fptt.segments`, must still be a
    # key of a scenario or a profile when its first part is a section.
    schemas = [json_schema("scenario"), json_schema("profile")]
    sections = {
        key
        for schema in schemas
        for key, prop in schema["properties"].items()
        if "$ref" in prop or "oneOf" in prop
    }
    checked, unknown = 0, []
    for page in PAGES_WITH_COMMANDS:  # the guides; not the module notes
        text = _FENCE.sub("", page.read_text(encoding="utf-8"))
        for span in re.findall(r"`([^`\n]+)`", text):
            match = re.match(r"([a-z_]+(?:\.[a-z_]+)+)(?:$|[:= ])", span)
            if not match or match.group(1).split(".")[0] not in sections:
                continue
            parts = match.group(1).split(".")
            checked += 1
            if not any(_resolves(s, parts, s.get("$defs", {})) for s in schemas):
                unknown.append(f"{page.name}: `{span}`")
    assert checked >= 10
    assert not unknown, f"keys the docs name that do not exist: {unknown}"


def test_the_readme_links_every_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in PAGES if f"(docs/{p.name})" not in readme]
    assert not unlinked, f"README.md's Documentation list misses {unlinked}"
