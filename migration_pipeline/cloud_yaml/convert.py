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
from migration_pipeline.cloud_yaml.model import (
    CODE_SOURCE_KEYS,
    IMAGE_OPTION_KEYS,
    CloudYaml,
    load_cloud_yaml,
)
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
            options = cloud.image_options(ref)
            note = f"  # {_options_note(options)}" if options else ""
            replace[key_line] = [
                f"{' ' * key_col}- {flow(cloud.modern_location(ref))}{comment}{note}"
            ]
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
        _convert_action_keys(cloud, ref, node, lines, style, replace)

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


def _options_note(options: dict[str, str]) -> str:
    listed = ", ".join(f"{key}: {value}" for key, value in options.items())
    return f"{listed} (the image build and the CI use it; dagster-cloud ci does not read it)"


def _single_line(cloud: CloudYaml, ref, node: CommentedMap, key: str) -> tuple[int, int]:
    line, column = node.lc.key(key)
    value = node[key]
    if isinstance(value, (CommentedMap, list)) or node.lc.value(key)[0] != line:
        raise _cannot(cloud, ref.path + (key,), "spans several lines")
    return line, column


def _convert_action_keys(
    cloud: CloudYaml,
    ref,
    node: CommentedMap,
    lines: list[str],
    style: Style,
    replace: dict[int, list[str]],
) -> None:
    """The old dagster-cloud-cicd-action's keys: `build: <directory>` becomes a `build:`
    mapping, the location's `registry` moves into it, and `dockerfile`/`target` become
    comments (the plan keeps them for the image build and the CI)."""
    step = _step(style)
    for key in IMAGE_OPTION_KEYS:
        if key in node:
            line, column = _single_line(cloud, ref, node, key)
            replace[line] = [f"{' ' * column}# {_options_note({key: str(node[key])})}"]
    build = node.get("build")
    if isinstance(build, CommentedMap):
        if build.fa.flow_style():
            if any(k in build for k in IMAGE_OPTION_KEYS) or "registry" in node:
                raise _cannot(cloud, ref.path + ("build",), "is a flow mapping")
        else:
            for key in IMAGE_OPTION_KEYS:
                if key in build:
                    line, column = _single_line(cloud, ref, build, key)
                    replace[line] = [f"{' ' * column}# {_options_note({key: str(build[key])})}"]
    registry_line = None
    if "registry" in node:
        registry_line, registry_column = _single_line(cloud, ref, node, "registry")
        registry = scalar(to_plain(node["registry"]))
    if isinstance(build, str) or (build is not None and not isinstance(build, CommentedMap)):
        line, column = _single_line(cloud, ref, node, "build")
        content, comment = _split_comment(lines[line].rstrip("\r\n"))
        replace[line] = [
            f"{' ' * column}build:{comment}",
            f"{' ' * (column + step)}directory: {scalar(str(build))}",
        ]
        if registry_line is not None:
            replace[line].append(f"{' ' * (column + step)}registry: {registry}")
            replace[registry_line] = []
    elif isinstance(build, CommentedMap) and registry_line is not None:
        if build.fa.flow_style() or not len(build):
            raise _cannot(cloud, ref.path + ("build",), "is a flow mapping")
        end = last_line(build, _first_key_column_line(build))
        column = _first_key_column(build)
        kept = replace.get(end, [lines[end].rstrip("\r\n")])
        replace[end] = [*kept, f"{' ' * column}registry: {registry}"]
        replace[registry_line] = []
    elif registry_line is not None:
        replace[registry_line] = [
            f"{' ' * registry_column}build:",
            f"{' ' * (registry_column + step)}registry: {registry}",
        ]


def _first_key_column_line(node: CommentedMap) -> int:
    for key in node:
        return node.lc.key(key)[0]
    return node.lc.line


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
