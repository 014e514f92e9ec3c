"""Reading the user's repository: the few kinds of files the plan looks at, as plain text.

This is the only part of planning that touches the disk; the layout readers and
`plan.make_plan` work on the `ProjectFiles` it returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from migration_pipeline.cloud_yaml import CLOUD_YAML_NAMES
from migration_pipeline.lib.files import NotReadable, read_text
from migration_pipeline.lib.paths import normalize
from migration_pipeline.lib.problems import InvalidInput, Problem

# Directories nested deeper than this are not read: no project keeps its configuration there,
# and Python's directory walk recurses once per level.
MAX_DEPTH = 100
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
    *CLOUD_YAML_NAMES,
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "dg.toml",
    "container_context.yaml",
    ".python-version",
    "dagster_cloud_pre_install.sh",
    "dagster_cloud_post_install.sh",
    ".gitlab-ci.yml",
}


@dataclass(frozen=True)
class ProjectFiles:
    """Relative POSIX path -> text, for every file the plan may read."""

    root: str
    texts: dict[str, str] = field(default_factory=dict)
    unreadable: tuple[Problem, ...] = ()  # files skipped, reported as warnings
    # Symbolic links in the project that lead out of it: relative path -> where they lead.
    # Nothing is read through them, and the plan writes nothing through them.
    outside: dict[str, str] = field(default_factory=dict)
    # Every file of the project (read or not), as the walk saw it.
    files: frozenset[str] = frozenset()

    def has(self, path: str) -> bool:
        """Whether the plan read this file."""
        return normalize(path) in self.texts

    def exists(self, path: str) -> bool:
        """Whether the project has this file, read or not."""
        return normalize(path) in self.texts or normalize(path) in self.files

    def text(self, path: str) -> str | None:
        return self.texts.get(normalize(path))

    def leads_outside(self, path: str) -> tuple[str, str] | None:
        """(the link, where it leads) when `path` is, or is under, a link out of the project."""
        for link, target in self.outside.items():
            if path == link or path.startswith(link + "/"):
                return link, target
        return None


def ci_files(project: ProjectFiles) -> list[str]:
    """The project's CI files: GitHub workflows and `.gitlab-ci.yml`."""
    return [p for p in project.texts if p.startswith(".github/workflows/") or p == ".gitlab-ci.yml"]


def _interesting(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return (
        name in INTERESTING_NAMES
        or "dockerfile" in name.lower()  # a Dockerfile of another name (the old action's)
        or name.endswith(".py")
        or (name.startswith("requirements") and name.endswith(".txt"))
        or (
            relative.startswith((".github/workflows/", ".gitlab/"))
            and name.endswith((".yml", ".yaml"))
        )
    )


def link_described(target: str) -> str:
    """A link `ProjectFiles.outside` records, for a message."""
    if target.startswith("nowhere: "):
        return f"a symbolic link that leads nowhere ({target.removeprefix('nowhere: ')})"
    return f"a symbolic link out of the project (to {target})"


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def project_root(project_dir: str | Path) -> Path:
    """The project directory, which must exist; an empty name is an error, not `.`."""
    if not str(project_dir).strip():
        raise InvalidInput(
            [Problem("--project-dir", None, (), "is empty: name the repository's directory")]
        )
    root = Path(project_dir)
    if not root.exists():
        what = (
            "is a symbolic link that leads nowhere (a loop, or a missing target)"
            if root.is_symlink()
            else "no such project directory"
        )
        raise InvalidInput([Problem(str(project_dir), None, (), what)])
    if not root.is_dir():
        raise InvalidInput([Problem(str(project_dir), None, (), "is not a directory")])
    return root


def read_project(project_dir: str | Path) -> ProjectFiles:
    """Read the project's interesting files (bounded, regular files only). Symbolic links are
    never followed out of the project: what they lead to is recorded, not read. A missing or
    unreadable directory, or an unreadable dagster_cloud.yaml, is an error."""
    root = project_root(project_dir)
    real_root = root.resolve()
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    outside: dict[str, str] = {}
    seen: set[str] = set()

    def leaves(path: Path) -> bool:
        """A link out of the project, or one that leads nowhere (a loop, an unreadable link):
        never followed."""
        if not path.is_symlink():
            return False
        try:
            target = path.resolve()  # a dangling link resolves to where it points
        except (OSError, RuntimeError) as error:  # a loop, or a link that cannot be read
            why = "a loop" if isinstance(error, RuntimeError) else _reason(error)
            outside[path.relative_to(root).as_posix()] = f"nowhere: {why}"
            return True
        if target.is_relative_to(real_root):
            return False
        outside[path.relative_to(root).as_posix()] = str(target)
        return True

    def unreadable(error: OSError) -> None:
        where = Path(error.filename).relative_to(root).as_posix() if error.filename else "."
        problems.append(Problem(where, None, (), f"cannot be read ({_reason(error)}): skipped"))

    # Never descends into a linked directory; reports a directory it cannot list, and stops at
    # MAX_DEPTH (os.walk recurses once per level).
    for directory, subdirs, files in os.walk(root, onerror=unreadable):
        base = Path(directory)
        if len(base.relative_to(root).parts) >= MAX_DEPTH and subdirs:
            problems.append(
                Problem(
                    base.relative_to(root).as_posix(),
                    None,
                    (),
                    f"is {MAX_DEPTH} directories deep: what is below it was not read",
                )
            )
            subdirs[:] = []
        subdirs[:] = sorted(
            d
            for d in subdirs
            if d not in SKIP_DIRS and not d.endswith(".egg-info") and not leaves(base / d)
        )
        for name in sorted(files):
            path = base / name
            relative = path.relative_to(root).as_posix()
            if leaves(path):
                if _interesting(relative):
                    problems.append(
                        Problem(
                            relative, None, (), f"is {link_described(outside[relative])}: not read"
                        )
                    )
                continue
            seen.add(relative)
            if not _interesting(relative):
                continue
            try:
                texts[relative] = read_text(path)
            except NotReadable as error:
                problems.append(Problem(relative, None, (), str(error)))
    for name in CLOUD_YAML_NAMES:
        if (root / name).is_dir():
            problems.append(Problem(name, None, (), "is a directory, not a file"))
    fatal = [p for p in problems if p.file in CLOUD_YAML_NAMES]
    if fatal:
        raise InvalidInput(fatal)
    return ProjectFiles(str(root), texts, tuple(problems), outside, frozenset(seen))
