"""Markdown tables for asset metadata (the inventory, the plan's summary)."""

from __future__ import annotations

import json
from typing import Any


def cell(value: Any) -> str:
    """One table cell: mappings and lists as inline JSON, pipes escaped, on one line."""
    if value is None:
        text = ""
    elif isinstance(value, (dict, list)):
        text = "`" + json.dumps(value, sort_keys=True) + "`"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(headers: list[str], rows: list[list[Any]], empty: str = "none") -> str:
    if not rows:
        return f"_{empty}_"
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
