"""A YAML file as the user wrote it: its text, its round-trip tree (ruamel.yaml) with the line of
every key, and a plain-data view for validation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from migration_pipeline.lib.problems import InvalidInput, KeyPath, Problem

# What a configuration file may hold, aliases expanded: a real dagster_cloud.yaml of a thousand
# locations holds some tens of thousands of values and nests a few levels deep. More is an
# alias bomb or a mistake, refused before anything expands it.
MAX_VALUES = 200_000
MAX_DEPTH = 40


def _round_trip_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    return yaml


@dataclass
class YamlSource:
    """One parsed YAML document. `data` is ruamel's round-trip tree (merge keys resolved on read)."""

    name: str  # the file name shown in messages, relative to the project
    text: str
    data: Any

    def node(self, path: KeyPath) -> Any:
        node = self.data
        for part in path:
            node = node[part]
        return node

    def has(self, path: KeyPath) -> bool:
        try:
            self.node(path)
        except (KeyError, IndexError, TypeError):
            return False
        return True

    def line_of(self, path: KeyPath) -> int | None:
        """The 1-based line of the key (or list item) at `path`, or of its nearest ancestor that
        exists in this file (a value that came from `defaults` or a merge has none of its own)."""
        best: int | None = 1 if self.text.strip() else None
        node = self.data
        for part in path:
            try:
                if isinstance(node, CommentedMap) and part in node and _own_key(node, part):
                    best = node.lc.key(part)[0] + 1
                elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                    best = node.lc.item(part)[0] + 1
                node = node[part]
            except (KeyError, IndexError, TypeError, AttributeError):
                break
        return best

    def problem(self, path: KeyPath, message: str) -> Problem:
        return Problem(self.name, self.line_of(path), path, message)

    def plain(self) -> Any:
        return to_plain(self.data)


def _own_key(mapping: CommentedMap, key: Any) -> bool:
    """False for a key that only comes through a `<<` merge."""
    return key in mapping._ok  # noqa: SLF001 - ruamel keeps a mapping's own keys here


def to_plain(node: Any) -> Any:
    """Plain dicts, lists and scalars (ruamel's string subclasses become str)."""
    if isinstance(node, dict):
        return {
            str(k) if not isinstance(k, (int, float, bool)) else k: to_plain(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    if type(node).__name__ == "TaggedScalar":  # `!!str 3`: the tags left are plain ones
        return str(node.value)
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def parse_yaml(text: str, name: str, any_tags: bool = False) -> YamlSource:
    """Parse one YAML document; a syntax error becomes an `InvalidInput` with its line, and so
    does a document that nests too deeply or expands (through aliases) to too many values, or
    (unless `any_tags`, for a CI file: GitLab has `!reference`) holds a tag configuration
    cannot hold."""
    if "\t" in _indentation(text):
        line = next(
            i
            for i, row in enumerate(text.splitlines(), 1)
            if row[: len(row) - len(row.lstrip())].count("\t")
        )
        raise InvalidInput([Problem(name, line, (), "tabs are not allowed in YAML indentation")])
    try:
        documents = list(_round_trip_yaml().load_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        what = (error.problem or error.context or "invalid YAML").strip()
        if "duplicate key" in what:
            what = what.split(" with value")[0]
        raise InvalidInput(
            [Problem(name, mark.line + 1 if mark else None, (), f"invalid YAML: {what}")]
        ) from None
    except YAMLError as error:
        raise InvalidInput([Problem(name, None, (), f"invalid YAML: {error}")]) from None
    except RecursionError:
        raise InvalidInput(
            [Problem(name, None, (), f"is nested more than {MAX_DEPTH} levels deep")]
        ) from None
    if len(documents) > 1:
        second = text.split("\n---", 2)
        second_line = second[0].count("\n") + 2 if len(second) > 1 else None
        raise InvalidInput(
            [Problem(name, second_line, (), "holds more than one YAML document; keep only one")]
        )
    data = documents[0] if documents else None
    problem = size_problem(data)
    if problem:
        raise InvalidInput([Problem(name, None, (), problem)])
    source = YamlSource(name, text, data)
    tagged = [] if any_tags else tag_problems(source)
    if tagged:
        raise InvalidInput(tagged)
    return source


# The tags a plain configuration value may carry (`!!str 3` is the string "3"). Any other, a
# local `!secret`, `!env`, `!!python/object:...`, is a value neither this tool nor
# `dagster-cloud ci` or dg (PyYAML's safe loader) can read.
PLAIN_TAGS = {
    f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null", "map", "seq")
}
# What an explicit `!!binary`, `!!set`, `!!omap` or `!!pairs` becomes: no configuration value.
_NOT_PLAIN = (bytes, set, frozenset)


def tag_problems(source: YamlSource) -> list[Problem]:
    """Every value (or key) with a tag configuration cannot hold, with its line and key path."""
    from ruamel.yaml.comments import CommentedOrderedMap

    problems: list[Problem] = []
    stack: list[tuple[Any, KeyPath]] = [(source.data, ())]
    while stack:
        node, path = stack.pop()
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag is not None and tag not in PLAIN_TAGS:
            shown_tag = tag.replace("tag:yaml.org,2002:", "!!")
            problems.append(
                source.problem(
                    path,
                    f"has the YAML tag {shown_tag}, which neither this tool nor dagster-cloud "
                    "(a safe YAML loader) reads: write the value itself, without the tag",
                )
            )
            continue
        if isinstance(node, _NOT_PLAIN + (CommentedOrderedMap,)):
            problems.append(
                source.problem(
                    path,
                    "is an explicit YAML type (!!binary, !!set, !!omap or !!pairs) that no "
                    "configuration value has: write a plain string, list or mapping",
                )
            )
            continue
        if isinstance(node, dict):
            for key, value in node.items():
                if getattr(getattr(key, "tag", None), "value", None) is not None:
                    stack.append((key, path))
                stack.append((value, (*path, str(key) if not isinstance(key, int) else key)))
        elif isinstance(node, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(node))
    return sorted(problems, key=lambda p: (p.line or 0, str(p.path)))


def size_problem(data: Any) -> str | None:
    """What is wrong with a parsed document's size, counting every value as often as aliases
    repeat it (without expanding anything), or None."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return (
                f"expands to more than {MAX_VALUES:,} values (YAML aliases repeat what they "
                "name); this is not a configuration file"
            )
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
    return None


def load_plain(text: str, name: str, any_tags: bool = False) -> Any:
    """A YAML document as plain data, read as `parse_yaml` reads it (bounded)."""
    return to_plain(parse_yaml(text, name, any_tags).data)


def yaml11_reading(text: str) -> Any:
    """The document as PyYAML's safe loader reads it (YAML 1.1: `yes` is a boolean), which is
    how `dagster-cloud ci` reads dagster_cloud.yaml. Call it only on a text `parse_yaml`
    accepted (the size is bounded); None when PyYAML cannot read it."""
    import yaml

    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return None


def _indentation(text: str) -> str:
    return "".join(row[: len(row) - len(row.lstrip())] for row in text.splitlines())


def with_values(text: str, name: str, values: dict[str, Any], under: str | None = None) -> str:
    """`text` with top-level keys (or keys of the mapping `under`) set to `values`, through
    ruamel's round trip: comments and key order kept. The result is checked to mean the old
    document with just those keys set."""
    import copy
    import io

    source = parse_yaml(text, name)
    data = source.data if source.data is not None else CommentedMap()
    expected = to_plain(data) or {}
    target = data
    if under is not None:
        if under not in data or data[under] is None:
            data[under] = CommentedMap()
        target = data[under]
        expected.setdefault(under, {})
        expected[under] = dict(expected[under] or {})
    for key, value in values.items():
        target[key] = copy.deepcopy(value)
        (expected[under] if under is not None else expected)[key] = copy.deepcopy(value)
    out = io.StringIO()
    _round_trip_yaml().dump(data, out)
    result = out.getvalue()
    if to_plain(parse_yaml(result, name).data) != expected:
        raise InvalidInput(
            [
                Problem(
                    name,
                    None,
                    (),
                    "cannot be edited safely (the edit would not mean what was "
                    "planned); set the keys by hand",
                )
            ]
        )
    return result
