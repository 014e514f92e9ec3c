"""Project-relative paths in one spelling, and whether one leaves the project."""

from __future__ import annotations

from pathlib import PurePosixPath


def normalize(path: str) -> str:
    """A project-relative path in one spelling: `./a/../b/` -> `b`, `.` for the root. A path
    that climbs above the root keeps its leading `..` (see `escapes_project`)."""
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            else:
                parts.append(part)
        elif part != ".":
            parts.append(part)
    return "/".join(parts) or "."


def escapes_project(path: str) -> bool:
    """Whether a project-relative path is absolute or climbs out of the project."""
    return path.startswith("/") or normalize(path).split("/")[0] == ".."
