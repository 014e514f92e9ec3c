"""Dataclasses as plain data: what JSON holds (dicts, lists, strings, numbers, booleans,
None), so a value recorded in metadata reads back exactly as it was written."""

from __future__ import annotations

import functools
import json
from dataclasses import asdict
from typing import Any, TypeVar

T = TypeVar("T")


def as_plain(value: Any) -> dict[str, Any]:
    """A dataclass instance as plain data (tuples become lists)."""
    return json.loads(json.dumps(asdict(value)))


class UnreadableRecord(ValueError):
    """A record kept between runs that this version of the code location cannot read."""


@functools.cache
def _adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


def from_plain(cls: type[T], raw: Any, what: str, rerun: str = "the job that records it") -> T:
    """A dataclass from the plain data `as_plain` made of it, checked field by field (lists
    become tuples where the field is one). A record of an older version (a field added since
    has its default) or a newer one (a field this version does not know is ignored) reads; one
    that lacks a required field or holds the wrong type is `UnreadableRecord`, naming the field,
    never a `TypeError` from the constructor."""
    from pydantic import ValidationError

    try:
        return _adapter(cls).validate_python(raw)  # type: ignore[arg-type]
    except ValidationError as error:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'the record'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        raise UnreadableRecord(
            f"the {what} recorded earlier cannot be read by this version of the code location "
            f"({fields}): run {rerun} again"
        ) from None
