"""Input problems a person can act on: file, line, key path, what is wrong."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]


def format_path(path: KeyPath) -> str:
    """`("locations", 2, "container_context", "k8s")` -> `locations[2].container_context.k8s`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean "x"?)` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def shown(value: object, limit: int = 60) -> str:
    """A value's repr for a message, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None  # 1-based
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {format_path(self.path)}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class InvalidInput(Exception):
    """One or more problems in the user's input. Nothing was written."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def report(self) -> str:
        return f"{self}\nNothing was written."


# What a value must be, by pydantic's error type: said the way a YAML or JSON file spells it.
_EXPECTED = {
    "bool_type": "true or false",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "dataclass_type": "a mapping",
    "typed_dict_type": "a mapping",
}
_QUOTED_BOOLEANS = {"true", "false", "yes", "no", "on", "off", "y", "n", "0", "1"}


def described_value(value: object) -> str:
    """What a value read from YAML or JSON is, for `expected X, got <this>`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value!r} (a number)"
    if isinstance(value, str):
        return f"the string {shown(value)}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def type_message(kind: str, value: object, fallback: str) -> str:
    """`expected true or false, got the string 'false' (write it without quotes)`, or
    `fallback` (pydantic's own message) for what is not a type error."""
    if kind == "missing":
        return "is missing (it is required)"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"expected a number {fallback.removeprefix('Input should be ')}, got {described_value(value)}"
    expected = _EXPECTED.get(kind)
    if expected is None:
        return fallback.removeprefix("Value error, ")
    message = f"expected {expected}, got {described_value(value)}"
    if kind == "bool_type" and isinstance(value, str) and value.lower() in _QUOTED_BOOLEANS:
        message += " (write true or false, without quotes)"
    elif kind == "string_type" and isinstance(value, bool | int | float):
        message += " (quote it to make it a string)"
    return message


def validation_problems(
    error: Exception,
    file: str,
    line_of: Callable[[KeyPath], int | None] | None = None,
    known_keys: Iterable[str] = (),
    unknown_in: str = "",
) -> list[Problem]:
    """A pydantic `ValidationError` as problems: the file, the line (`line_of`), the key path,
    the type expected and the value found; an unknown key (`unknown key "x" <unknown_in>`) with
    the closest of `known_keys`."""
    problems = []
    for item in error.errors():  # type: ignore[attr-defined]
        path: KeyPath = tuple(part for part in item["loc"] if isinstance(part, str | int))
        if item["type"] == "extra_forbidden":
            where = f" {unknown_in}" if unknown_in else ""
            message = f'unknown key "{path[-1]}"{where}{did_you_mean(str(path[-1]), known_keys)}'
        else:
            message = type_message(item["type"], item.get("input"), item["msg"])
        problems.append(Problem(file, line_of(path) if line_of else None, path, message))
    return problems
