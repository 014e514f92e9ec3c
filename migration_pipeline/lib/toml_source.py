"""TOML files as the plan reads and edits them: parsed with their file name and line numbers for
errors, edited with tomlkit so that comments, order and formatting stay as the user wrote them.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import Any

from migration_pipeline.lib.problems import InvalidInput, KeyPath, Problem


@dataclass(frozen=True)
class TomlSource:
    name: str  # project-relative path
    text: str
    data: dict[str, Any]

    def get(self, path: KeyPath, default: Any = None) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def line_of(self, path: KeyPath) -> int | None:
        """The line where the key at `path` is set (a `[table]` header for a table), found in the
        text: `[a.b]` then `key =`, or a dotted `b.key =` under `[a]`."""
        return toml_line_of(self.text, tuple(str(p) for p in path))

    def problem(self, path: KeyPath, message: str) -> Problem:
        return Problem(self.name, self.line_of(path), path, message)


def parse_toml(text: str, name: str) -> TomlSource:
    """Parse a TOML file; a syntax error becomes an `InvalidInput` with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        what = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        line = int(match.group(1)) if match else None
        if line is None and "end of document" in message:
            line = len(text.splitlines()) or 1
            what += " (at the end of the file)"
        raise InvalidInput([Problem(name, line, (), f"invalid TOML: {what}")]) from None
    return TomlSource(name, text, data)


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")


def _dotted(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def toml_line_of(text: str, path: tuple[str, ...]) -> int | None:
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            if table == path:
                return number
            continue
        key = _KEY.match(line)
        if key and table + _dotted(key.group(1)) == path:
            return number
    return None


def set_toml_key(source: TomlSource, table: KeyPath, key: str, value: Any) -> str:
    """The file's text with `key = value` set in `[table]`, everything else kept as written. The
    edit is checked: the result must parse to the old data with just that key set."""
    import tomlkit

    document = tomlkit.parse(source.text)
    node: Any = document
    for part in table:
        if part not in node:
            node[part] = tomlkit.table()
        node = node[part]
    node[key] = value
    text = tomlkit.dumps(document)
    expected = _with_key(source.data, tuple(str(p) for p in table), key, value)
    if tomllib.loads(text) != expected:
        raise InvalidInput(
            [
                source.problem(
                    tuple(table),
                    "migration-pipeline cannot edit this file's layout safely (the edit would "
                    "not mean what was planned); set the key by hand",
                )
            ]
        )
    return text


def _with_key(data: dict[str, Any], table: tuple[str, ...], key: str, value: Any):
    import copy

    result = copy.deepcopy(data)
    node = result
    for part in table:
        node = node.setdefault(part, {})
    node[key] = value
    return result
