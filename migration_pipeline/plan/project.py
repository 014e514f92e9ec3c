"""Reading the user's project: the few kinds of files the plan looks at, as plain text.

This is the only part of planning that touches the disk; `plan.make_plan` works on the
`ProjectFiles` it returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from migration_pipeline.lib.files import read_exact
from migration_pipeline.lib.problems import InvalidInput, Problem

SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "env",
    "node_modules",
    "__pycache__",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".dagster_home",
    ".migration_backup",
    "site-packages",
    "build",
    "dist",
    ".eggs",
}
INTERESTING_NAMES = {
    "dagster_cloud.yaml",
    "build.yaml",
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "dagster_cloud_pre_install.sh",
    "dagster_cloud_post_install.sh",
    ".gitlab-ci.yml",
}
MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class ProjectFiles:
    """Relative POSIX path -> text, for every file the plan may read."""

    root: str
    texts: dict[str, str] = field(default_factory=dict)
    unreadable: tuple[Problem, ...] = ()  # files skipped, reported as warnings

    def has(self, path: str) -> bool:
        return normalize(path) in self.texts

    def text(self, path: str) -> str | None:
        return self.texts.get(normalize(path))


def normalize(path: str) -> str:
    """A project-relative path in one spelling: `./a/../b/` -> `b`, `.` for the root."""
    parts: list[str] = []
    for part in PurePosixPath(path).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts) or "."


def _interesting(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return (
        name in INTERESTING_NAMES
        or name.endswith(".py")
        or (name.startswith("requirements") and name.endswith(".txt"))
        or (
            relative.startswith((".github/workflows/", ".gitlab/"))
            and name.endswith((".yml", ".yaml"))
        )
    )


def read_project(project_dir: str | Path) -> ProjectFiles:
    """Read the project's interesting files. A missing or unreadable directory is an error."""
    root = Path(project_dir)
    if not root.exists():
        raise InvalidInput([Problem(str(project_dir), None, (), "no such project directory")])
    if not root.is_dir():
        raise InvalidInput([Problem(str(project_dir), None, (), "is not a directory")])
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(
            d for d in subdirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
        )
        for name in sorted(files):
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if not _interesting(relative):
                continue
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    continue
                texts[relative] = read_exact(path)
            except UnicodeDecodeError as error:
                problems.append(
                    Problem(
                        relative,
                        None,
                        (),
                        f"is not UTF-8 text ({error.reason} at byte {error.start})",
                    )
                )
            except OSError as error:
                problems.append(Problem(relative, None, (), f"cannot be read: {error.strerror}"))
    # A cloud yaml that is a directory or unreadable must not be silently skipped.
    for name in ("dagster_cloud.yaml", "build.yaml"):
        candidate = root / name
        if candidate.exists() and not candidate.is_file():
            problems.append(Problem(name, None, (), "is not a regular file"))
    fatal = [p for p in problems if p.file in ("dagster_cloud.yaml", "build.yaml")]
    if fatal:
        raise InvalidInput(fatal)
    return ProjectFiles(str(root), texts, tuple(problems))
