"""Dataclasses as plain data: what JSON holds (dicts, lists, strings, numbers, booleans,
None), so a value recorded in metadata reads back exactly as it was written."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any


def as_plain(value: Any) -> dict[str, Any]:
    """A dataclass instance as plain data (tuples become lists)."""
    return json.loads(json.dumps(asdict(value)))
