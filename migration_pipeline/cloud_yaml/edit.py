"""Minimal text edits of a YAML file: add keys to a mapping, remove a key.

ruamel.yaml's round-trip tree tells where every node is; the edit itself splices lines into the
user's text, so every line we do not mean to change stays byte for byte as it was (indentation
style, comment columns, quoting, blank lines), which a full re-dump cannot promise. New lines
follow the file's own indentation. Three shapes need care:

- a block mapping: new keys go after its last content line, at its keys' column;
- a one-line flow mapping (`build: {directory: .}`): new keys go inside the braces;
- an alias (`build: *common`): it becomes `build:` + `<<: *common` + the new keys, so the
  anchor's other users do not change.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString

from migration_pipeline.lib.problems import InvalidInput, KeyPath
from migration_pipeline.lib.yaml_source import YamlSource


@dataclass(frozen=True)
class Style:
    step: int = 2  # mapping indentation step
    dash_offset: int = 0  # a block sequence's dash, relative to its parent key


@dataclass
class Edits:
    """Pending edits of one file: keys to add per mapping path, keys to remove."""

    add: dict[KeyPath, dict[str, Any]] = field(default_factory=dict)
    remove: list[KeyPath] = field(default_factory=list)

    def add_entries(self, path: KeyPath, entries: dict[str, Any]) -> None:
        self.add.setdefault(path, {}).update(entries)

    def __bool__(self) -> bool:
        return bool(self.add or self.remove)


def detect_style(source: YamlSource) -> Style:
    steps: Counter[int] = Counter()
    offsets: Counter[int] = Counter()

    def walk(node: Any) -> None:
        if isinstance(node, CommentedMap):
            for key, value in node.non_merged_items():
                key_line, key_col = node.lc.key(key)
                if (
                    isinstance(value, CommentedMap)
                    and not value.fa.flow_style()
                    and value.lc.line > key_line
                ):
                    steps[value.lc.col - key_col] += 1
                if (
                    isinstance(value, CommentedSeq)
                    and not value.fa.flow_style()
                    and value.lc.line > key_line
                ):
                    offsets[value.lc.col - key_col] += 1
                walk(value)
        elif isinstance(node, CommentedSeq):
            for item in node:
                walk(item)

    walk(source.data)
    step = steps.most_common(1)[0][0] if steps else 2
    offset = offsets.most_common(1)[0][0] if offsets else 0
    return Style(step=step if step > 0 else 2, dash_offset=max(offset, 0))


# -- where nodes end ---------------------------------------------------------------------------


def last_line(node: Any, start_line: int) -> int:
    """The 0-based last line of a node's own text (an alias ends on its own line)."""
    if isinstance(node, CommentedMap):
        if node.fa.flow_style():
            return start_line
        end = start_line
        for key, value in node.non_merged_items():
            key_line = node.lc.key(key)[0]
            value_line = node.lc.value(key)[0]
            if value_line < key_line:  # an alias: its node stands earlier in the file
                end = max(end, key_line)
            else:
                end = max(end, last_line(value, value_line))
        return end
    if isinstance(node, CommentedSeq):
        if node.fa.flow_style():
            return start_line
        end = start_line
        for index, item in enumerate(node):
            item_line = node.lc.item(index)[0]
            end = max(end, item_line if item_line < start_line else last_line(item, item_line))
        return end
    if isinstance(node, (LiteralScalarString, FoldedScalarString)):
        return start_line + str(node).rstrip("\n").count("\n") + 1
    return start_line


def _first_paths(source: YamlSource) -> dict[int, KeyPath]:
    """The path where each mapping first stands in the file (later ones are aliases)."""
    seen: dict[int, KeyPath] = {}

    def walk(node: Any, path: KeyPath) -> None:
        if isinstance(node, (CommentedMap, CommentedSeq)):
            if id(node) in seen:
                return
            seen[id(node)] = path
            items = node.non_merged_items() if isinstance(node, CommentedMap) else enumerate(node)
            for key, value in items:
                walk(value, path + (key,))

    walk(source.data, ())
    return seen


# -- rendering ---------------------------------------------------------------------------------


def scalar(value: Any) -> str:
    """A scalar as YAML writes it (quoted only when it must be)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def render_block(entries: dict[str, Any], indent: int, style: Style) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in entries.items():
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{scalar(key)}:")
            lines += render_block(value, indent + style.step, style)
        elif isinstance(value, list) and value:
            lines.append(f"{pad}{scalar(key)}:")
            dash = " " * (indent + style.dash_offset)
            for item in value:
                if isinstance(item, dict) and item:
                    item_lines = render_block(item, indent + style.dash_offset + 2, style)
                    lines.append(f"{dash}- {item_lines[0].lstrip()}")
                    lines += item_lines[1:]
                else:
                    lines.append(f"{dash}- {flow(item)}")
        else:
            lines.append(f"{pad}{scalar(key)}: {flow(value)}")
    return lines


# -- applying ----------------------------------------------------------------------------------


def _split_comment(line: str) -> tuple[str, str]:
    """(content, trailing comment with its spacing) of one line, quotes respected roughly."""
    in_single = in_double = False
    for index, char in enumerate(line):
        if char == "'" and not in_double:
            in_single = not in_single
        elif char == '"' and not in_single:
            in_double = not in_double
        elif (
            char == "#"
            and not (in_single or in_double)
            and (index == 0 or line[index - 1] in " \t")
        ):
            start = len(line[:index].rstrip())
            return line[:start], line[start:]
    return line, ""


def apply_edits(source: YamlSource, edits: Edits) -> str:
    """The file's text with the edits made. Lines not edited are left exactly as they were."""
    if not edits:
        return source.text
    style = detect_style(source)
    first_paths = _first_paths(source)
    lines = source.text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += newline
    # What happens at each line, gathered first and then applied in one pass over the text.
    insert_after: dict[int, list[tuple[int, list[str]]]] = {}  # line -> [(depth, lines)]
    replace: dict[int, list[str]] = {}
    deleted: set[int] = set()

    for path, entries in edits.add.items():
        parent, key = source.node(path[:-1]), path[-1]
        node = parent[key]
        key_line, key_col = (
            parent.lc.key(key) if isinstance(parent, CommentedMap) else parent.lc.item(key)
        )
        if isinstance(node, CommentedMap) and first_paths.get(id(node)) != path:
            content, comment = _split_comment(lines[key_line].rstrip("\r\n"))
            head = content[: content.index(":", key_col) + 1]
            body = render_block(entries, key_col + style.step, style)
            replace[key_line] = [
                f"{head}{comment}",
                f"{' ' * (key_col + style.step)}<<: *{node.anchor.value}",
                *body,
            ]
        elif isinstance(node, CommentedMap) and node.fa.flow_style():
            if last_line(node, node.lc.line) != node.lc.line or node.lc.line != key_line:
                raise InvalidInput(
                    [
                        source.problem(
                            path,
                            "is a flow mapping over several lines, which cannot be edited "
                            "safely; write it in block style",
                        )
                    ]
                )
            content, comment = _split_comment(lines[key_line].rstrip("\r\n"))
            close = content.rstrip().rfind("}")
            inner = content[:close].rstrip()
            separator = "" if inner.endswith("{") else ", "
            added = ", ".join(f"{scalar(k)}: {flow(v)}" for k, v in entries.items())
            replace[key_line] = [f"{inner}{separator}{added}{content[close:]}{comment}"]
        elif isinstance(node, CommentedMap):
            first_key_line, first_key_col = _first_key_position(node)
            end = last_line(node, first_key_line)
            insert_after.setdefault(end, []).append(
                (len(path), render_block(entries, first_key_col, style))
            )
        elif node is None:
            content, _ = _split_comment(lines[key_line].rstrip("\r\n"))
            if not content.rstrip().endswith(":"):
                raise InvalidInput(
                    [source.problem(path, "is null; write it as an empty mapping or remove it")]
                )
            insert_after.setdefault(key_line, []).append(
                (len(path), render_block(entries, _key_indent(lines[key_line]) + style.step, style))
            )
        else:
            raise InvalidInput([source.problem(path, f"must be a mapping, got {node!r}")])

    for path in edits.remove:
        parent, key = source.node(path[:-1]), path[-1]
        if parent.fa.flow_style():
            raise InvalidInput(
                [source.problem(path, "is inside a flow mapping; remove it by hand")]
            )
        start = parent.lc.key(key)[0]
        value_line = parent.lc.value(key)[0]
        end = start if value_line < start else last_line(parent[key], value_line)
        deleted.update(range(start, end + 1))

    out: list[str] = []
    for number, line in enumerate(lines):
        if number in replace:
            out += [text + newline for text in replace[number]]
        elif number not in deleted:
            out.append(line)
        # The deeper mapping's new keys first, so they stay next to their mapping.
        for _, block in sorted(insert_after.get(number, []), key=lambda item: -item[0]):
            out += [text + newline for text in block]
    return "".join(out)


def _first_key_position(node: CommentedMap) -> tuple[int, int]:
    """(line, column) of a block mapping's first own key (an anchor would shift `node.lc`)."""
    for key, _ in node.non_merged_items():
        return node.lc.key(key)
    return node.lc.line, node.lc.col


def _key_indent(line: str) -> int:
    stripped = line.lstrip(" ")
    indent = len(line) - len(stripped)
    return indent + 2 if stripped.startswith("- ") else indent
