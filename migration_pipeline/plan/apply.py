"""Apply a MigrationPlan to the project directory: every changed file written atomically, the
replaced version kept under `.migration_backup/<time>/`. Applying twice changes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from migration_pipeline.lib.files import read_exact, write_atomically
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.plan.core import MigrationPlan

BACKUP_DIR = ".migration_backup"


@dataclass
class ApplyResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    backups: dict[str, str] = field(default_factory=dict)  # file -> its backup, project-relative


def _current(path: Path) -> str | None:
    return read_exact(path) if path.exists() else None


def apply_plan(
    plan: MigrationPlan, project_dir: str | Path, stamp: str | None = None
) -> ApplyResult:
    root = Path(project_dir)
    result = ApplyResult()
    pending = []
    stale = []
    for planned in plan.files:
        path = root / planned.path
        current = _current(path)
        if current == planned.new:
            result.unchanged.append(planned.path)
        elif current != planned.old:
            stale.append(
                Problem(
                    planned.path, None, (), "changed since the plan was made; make the plan again"
                )
            )
        else:
            pending.append((planned, path, current))
    if stale:
        raise InvalidInput(stale)  # checked before anything is written
    # A run killed while writing a backup leaves the backup's temporary file: clear it.
    for leftover in (root / BACKUP_DIR).glob("*/**/.*.tmp-*"):
        leftover.unlink(missing_ok=True)
    if not pending:
        return result
    backup_root = Path(BACKUP_DIR) / (stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    for planned, path, current in pending:
        # A run killed mid-write leaves its temporary file beside the target: clear it.
        for leftover in path.parent.glob(f".{path.name}.tmp-*"):
            leftover.unlink(missing_ok=True)
        if current is not None:
            backup = backup_root / planned.path
            write_atomically(root / backup, current)
            result.backups[planned.path] = backup.as_posix()
        write_atomically(path, planned.new)
        result.written.append(planned.path)
    return result
