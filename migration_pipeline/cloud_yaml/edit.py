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

from migration_pipeline.lib.problems import InvalidInput, KeyPath, Problem
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
            if value_line < key_line or value is None:  # an alias, or no value at all
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


class UneditableLayout(Exception):
    """A layout this tool cannot edit safely (the user's file is valid): the lines."""

    def __init__(self, first: int, last: int, why: str):
        self.first, self.last, self.why = first, last, why  # 0-based lines
        super().__init__(why)


def cannot_edit(source: YamlSource, first: int, last: int, why: str) -> InvalidInput:
    """The message for a valid file this tool cannot edit: it shows the lines."""
    lines = source.text.splitlines()[first : last + 1][:6]
    shown_lines = "\n".join(f"    {first + 1 + i} | {line}" for i, line in enumerate(lines))
    return InvalidInput(
        [
            Problem(
                source.name,
                first + 1,
                (),
                f"migration-pipeline cannot edit this layout ({why}); your file is valid. "
                f"Write these lines in block style and plan again:\n{shown_lines}",
            )
        ]
    )


def apply_edits(source: YamlSource, edits: Edits) -> str:
    """The file's text with the edits made. Lines not edited are left exactly as they were;
    a flow collection (`{...}`, `[...]`) that an edit touches is written again, in flow
    style, with the edit made."""
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

    adds, removes = _without_null_keys(source, edits, replace, lines)
    flows, adds, removes = _flow_groups(source, adds, removes)
    for root_path, (node_adds, node_removes) in flows.items():
        _rewrite_flow(source, lines, root_path, node_adds, node_removes, replace, deleted)

    for path, entries in adds.items():
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

    for path in removes:
        parent, key = source.node(path[:-1]), path[-1]
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


def _without_null_keys(
    source: YamlSource, edits: Edits, replace: dict[int, list[str]], lines: list[str]
) -> tuple[dict[KeyPath, dict[str, Any]], list[KeyPath]]:
    """The edits, less what sets a key the file has with no value (`registry:   # by CI`):
    a scalar goes on that key's own line, before its comment; a mapping or list becomes an
    addition under it."""
    adds: dict[KeyPath, dict[str, Any]] = {}
    for path, entries in edits.add.items():
        node = source.node(path)
        kept: dict[str, Any] = {}
        for key, value in entries.items():
            own_null = (
                isinstance(node, CommentedMap)
                and key in node._ok  # noqa: SLF001 - own keys, not merged ones
                and node[key] is None
            )
            if not own_null:
                kept[key] = value
            elif isinstance(value, dict) and value:
                adds[path + (key,)] = dict(value)
            elif node.fa.flow_style():
                kept[key] = value  # the flow rewrite sets it
            else:
                line, column = node.lc.key(key)
                content, comment = _split_comment(lines[line].rstrip("\r\n"))
                head = content[: content.index(":", column) + 1]
                replace[line] = [f"{head} {flow(value)}{comment}"]
        if kept:
            adds.setdefault(path, {}).update(kept)
    return adds, list(edits.remove)


def _flow_root(source: YamlSource, path: KeyPath) -> KeyPath | None:
    """The outermost flow collection on the way to `path` (itself included), if any."""
    node = source.data
    for depth in range(len(path) + 1):
        if isinstance(node, (CommentedMap, CommentedSeq)) and node.fa.flow_style():
            return path[:depth]
        if depth < len(path):
            node = node[path[depth]]
    return None


def _flow_groups(source: YamlSource, adds: dict[KeyPath, dict[str, Any]], removes: list[KeyPath]):
    """Edits inside flow collections, grouped by the outermost one; the rest as they were."""
    flows: dict[KeyPath, tuple[dict[KeyPath, dict[str, Any]], list[KeyPath]]] = {}
    block_adds, block_removes = {}, []
    for path, entries in adds.items():
        root = _flow_root(source, path)
        if root is None:
            block_adds[path] = entries
        else:
            flows.setdefault(root, ({}, []))[0][path[len(root) :]] = entries
    for path in removes:
        root = _flow_root(source, path[:-1])
        if root is None:
            block_removes.append(path)
        else:
            flows.setdefault(root, ({}, []))[1].append(path[len(root) :])
    return flows, block_adds, block_removes


def _rewrite_flow(
    source: YamlSource,
    lines: list[str],
    root: KeyPath,
    adds: dict[KeyPath, dict[str, Any]],
    removes: list[KeyPath],
    replace: dict[int, list[str]],
    deleted: set[int],
) -> None:
    """Write the flow collection at `root` again, in flow style on one line, with the edits."""
    from migration_pipeline.lib.yaml_source import to_plain

    node = source.node(root)
    first = node.lc.line
    try:
        last, column, end = _flow_span(lines, first, node.lc.col)
    except UneditableLayout as error:
        raise cannot_edit(source, error.first, error.last, error.why) from None
    if _shares_anchors(node):
        raise cannot_edit(source, first, last, "anchors or aliases inside a flow collection")
    value = to_plain(node)
    for path, entries in adds.items():
        target = value
        for part in path:
            target = target[part]
        if not isinstance(target, dict):
            raise InvalidInput([source.problem(root + path, f"must be a mapping, got {target!r}")])
        for key, entry in entries.items():
            if isinstance(target.get(key), dict) and isinstance(entry, dict):
                target[key].update(entry)
            else:
                target[key] = entry
    for path in removes:
        target = value
        for part in path[:-1]:
            target = target[part]
        target.pop(path[-1], None)
    start = lines[first].rstrip("\r\n")
    stop = lines[last].rstrip("\r\n")
    if first in replace or last in replace:
        raise cannot_edit(source, first, last, "two edits on one line")
    replace[first] = [start[:column] + flow(value) + stop[end + 1 :]]
    deleted.update(range(first + 1, last + 1))


def _shares_anchors(node: Any) -> bool:
    if isinstance(node, (CommentedMap, CommentedSeq)):
        if node.anchor.value is not None:
            return True
        if isinstance(node, CommentedMap) and getattr(node, "merge", None):
            return True
        items = node.values() if isinstance(node, CommentedMap) else node
        return any(_shares_anchors(item) for item in items)
    return False


def _flow_span(lines: list[str], line: int, column: int) -> tuple[int, int, int]:
    """(last line, column of the opening bracket, column of the closing bracket on the last
    line) of the flow collection that starts at (line, column) (an anchor may stand first)."""
    text = lines[line]
    while column < len(text) and text[column] not in "{[":
        column += 1
    opening = column
    depth, quote, previous = 0, "", ""
    number = line
    while number < len(lines):
        text = lines[number].rstrip("\r\n")
        index = column if number == line else 0
        while index < len(text):
            char = text[index]
            if quote == "'":
                if char == "'" and text[index + 1 : index + 2] == "'":
                    index += 1
                elif char == "'":
                    quote = ""
            elif quote == '"':
                if char == "\\":
                    index += 1
                elif char == '"':
                    quote = ""
            elif char in "'\"" and previous in ("", "{", "[", ",", ":", "?", "-"):
                quote = char
            elif char == "#" and (index == 0 or text[index - 1] in " \t"):
                raise UneditableLayout(line, number, "a comment inside a flow collection")
            elif char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return number, opening, index
            if not char.isspace():
                previous = char
            index += 1
        number += 1
    raise UneditableLayout(line, len(lines) - 1, "a flow collection that does not close")


def _first_key_position(node: CommentedMap) -> tuple[int, int]:
    """(line, column) of a block mapping's first own key (an anchor would shift `node.lc`)."""
    for key, _ in node.non_merged_items():
        return node.lc.key(key)
    return node.lc.line, node.lc.col


def _key_indent(line: str) -> int:
    stripped = line.lstrip(" ")
    indent = len(line) - len(stripped)
    return indent + 2 if stripped.startswith("- ") else indent
