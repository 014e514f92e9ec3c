"""The legacy form of dagster_cloud.yaml (locations keyed by name) to the list form, as a text
edit that keeps every comment and every other line.

`dagster-cloud ci` of the pinned release reads only the list form (its pydantic model refuses
`locations` as a mapping), so a migrated project must have it for any Hybrid CI to run:

    locations:                         locations:
      # The BI team's assets.              # The BI team's assets.
      analytics:                  ->       - location_name: analytics
        package_name: analytics              code_source:
        working_directory: analytics           package_name: analytics
                                             working_directory: analytics

Each location's key line becomes `- location_name: <name>` with the dash placed so that the
location's own keys keep their column (nothing else is re-indented), and the code source keys
move under `code_source:`. The result is parsed again and must mean exactly the list form of the
original, or nothing is converted.
"""

from __future__ import annotations

from ruamel.yaml.comments import CommentedMap

from migration_pipeline.cloud_yaml.edit import (
    Style,
    _split_comment,
    detect_style,
    flow,
    last_line,
    scalar,
)
from migration_pipeline.cloud_yaml.model import CODE_SOURCE_KEYS, CloudYaml, load_cloud_yaml
from migration_pipeline.lib.problems import InvalidInput
from migration_pipeline.lib.yaml_source import to_plain


def to_list_form(cloud: CloudYaml) -> str:
    """The text of `cloud` in the list form (unchanged when it already is)."""
    if cloud.form != "legacy":
        return cloud.source.text
    source = cloud.source
    locations = source.data["locations"]
    if locations.fa.flow_style():
        raise _cannot(cloud, ("locations",), "is a flow mapping")
    style = detect_style(source)
    lines = source.text.splitlines(keepends=True)
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    replace: dict[int, list[str]] = {}
    for ref in cloud.locations:
        name = ref.path[-1]
        node = locations[name]
        key_line, key_col = locations.lc.key(name)
        value_line = locations.lc.value(name)[0]
        if value_line < key_line or node.anchor.value is not None or _has_merge(node):
            raise _cannot(cloud, ref.path, "is an alias, an anchor or a merge")
        content, comment = _split_comment(lines[key_line].rstrip("\r\n"))
        if node.fa.flow_style():
            if value_line != key_line or last_line(node, value_line) != key_line:
                raise _cannot(cloud, ref.path, "is a flow mapping over several lines")
            replace[key_line] = [f"{' ' * key_col}- {flow(cloud.modern_location(ref))}{comment}"]
            continue
        if (
            content.rstrip() != content[: content.index(":", key_col) + 1].rstrip()
            or value_line == key_line
        ):
            raise _cannot(cloud, ref.path, "has its value on the key's line")
        child_col = _first_key_column(node)
        dash = " " * max(child_col - 2, 0)
        if child_col < 2:
            raise _cannot(cloud, ref.path, "has its keys at the left margin")
        replace[key_line] = [f"{dash}- location_name: {scalar(str(name))}{comment}"]
        code_source_lines = []
        for key in node:
            if key not in CODE_SOURCE_KEYS:
                continue
            line, column = node.lc.key(key)
            if last_line(node[key], node.lc.value(key)[0]) != line:
                raise _cannot(cloud, ref.path + (key,), "spans several lines")
            code_source_lines.append((line, column))
        if code_source_lines:
            first = min(line for line, _ in code_source_lines)
            moved = [
                " " * _step(style) + lines[line].rstrip("\r\n")
                for line, _ in sorted(code_source_lines)
            ]
            replace[first] = [f"{' ' * child_col}code_source:", *moved]
            for line, _ in code_source_lines:
                if line != first:
                    replace[line] = []

    out: list[str] = []
    for number, line in enumerate(lines):
        if number in replace:
            out += [text + newline for text in replace[number]]
        else:
            out.append(line)
    converted = "".join(out)
    expected = cloud.modern_document()
    try:
        again = load_cloud_yaml(converted, cloud.name)
    except InvalidInput:
        raise _cannot(cloud, ("locations",), "did not convert cleanly") from None
    if again.form != "modern" or to_plain(again.source.data) != expected:
        raise _cannot(cloud, ("locations",), "did not convert to the same locations")
    return converted


def _step(style: Style) -> int:
    return style.step


def _first_key_column(node: CommentedMap) -> int:
    for key in node:
        return node.lc.key(key)[1]
    return node.lc.col


def _has_merge(node: CommentedMap) -> bool:
    return bool(getattr(node, "merge", None))


def _cannot(cloud: CloudYaml, path, why: str) -> InvalidInput:
    return InvalidInput(
        [
            cloud.source.problem(
                path,
                f"{why}: the tool cannot convert this layout of the legacy form (locations keyed "
                "by name) to the list form that `dagster-cloud ci` reads. Write this location as a list "
                "item (`- location_name: ...`) by hand; nothing was written",
            )
        ]
    )
