"""Apply a MigrationPlan to the project directory, all or nothing.

1. Check every target first: inside the project (symbolic links resolved), a directory where a
   directory is needed, not changed since the plan was made. Anything wrong: `InvalidInput`,
   nothing written.
2. Write every new file to a temporary file beside its target, and each replaced file's
   content to `.migration_backup/<time>/`.
3. Rename the temporary files over their targets.

If anything fails in 2 or 3, an error or SIGINT/SIGTERM, the files already renamed get their
old content back, the temporary files and this run's backups are removed, and `ApplyFailed`
says what was restored. One apply runs at a time per project (a lock file). Applying twice
changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from migration_pipeline.layouts.files import project_root
from migration_pipeline.lib.files import (
    TEMP_MARK,
    NotReadable,
    fsync_directory,
    jail_problem,
    jailed,
    read_text,
    write_atomically,
    write_temporary,
)
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.plan.model import MigrationPlan, PlannedFile

BACKUP_DIR = ".migration_backup"
LOCK_FILE = ".migration_pipeline.lock"


@dataclass
class ApplyResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    backups: dict[str, str] = field(default_factory=dict)  # file -> its backup, project-relative


class ApplyFailed(Exception):
    """The apply stopped partway (an error, or a signal); every file is as it was before."""

    def __init__(self, reason: str, restored: list[str], removed: list[str], signal_name=None):
        self.reason, self.restored, self.removed = reason, restored, removed
        self.signal_name = signal_name
        super().__init__(reason)

    def report(self) -> str:
        lines = [f"apply stopped: {self.reason}"]
        if self.restored:
            lines.append("restored to their old content: " + ", ".join(self.restored))
        if self.removed:
            lines.append("removed again (they were new): " + ", ".join(self.removed))
        lines.append("Every file is as it was before this apply; nothing was written.")
        return "\n".join(lines)


class _Terminated(BaseException):
    """SIGTERM during an apply, raised where the apply is, so that it rolls back."""


@dataclass
class _Pending:
    planned: PlannedFile
    path: Path
    current: str | None
    mode: int
    temporary: Path | None = None


def apply_plan(
    plan: MigrationPlan, project_dir: str | Path, stamp: str | None = None
) -> ApplyResult:
    root = project_root(project_dir)
    with project_lock(root), _signals_roll_back():
        try:
            return _apply(plan, root, stamp)
        except KeyboardInterrupt:  # before anything was written
            raise ApplyFailed("interrupted (SIGINT)", [], [], "SIGINT") from None
        except _Terminated:
            raise ApplyFailed("interrupted (SIGTERM)", [], [], "SIGTERM") from None


def _apply(plan: MigrationPlan, root: Path, stamp: str | None) -> ApplyResult:
    result = ApplyResult()
    pending: list[_Pending] = []
    problems: list[Problem] = []
    for planned in plan.files:
        path = root / planned.path
        problem = jail_problem(root, planned.path)
        if problem:
            problems.append(Problem(planned.path, None, (), problem))
            continue
        try:
            current = read_text(path) if path.exists() else None
        except NotReadable as error:
            problems.append(Problem(planned.path, None, (), str(error)))
            continue
        if current == planned.new:
            result.unchanged.append(planned.path)
        elif current != planned.old:
            problems.append(
                Problem(
                    planned.path, None, (), "changed since the plan was made; make the plan again"
                )
            )
        else:
            mode = path.stat().st_mode & 0o777 if current is not None else 0o644
            pending.append(_Pending(planned, path, current, mode))
    backup_dir = _new_backup_dir(root, stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    if pending and any(p.current is not None for p in pending):
        problem = jail_problem(root, backup_dir, directory=True)
        if problem:
            problems.append(Problem(BACKUP_DIR, None, (), problem))
    if problems:
        raise InvalidInput(problems)  # checked before anything is written
    _clean_stale_temporaries(root, [p.path.parent for p in pending])
    if not pending:
        return result

    created: list[Path] = []  # directories this apply made, outermost first
    renamed: list[_Pending] = []
    try:
        for item in pending:
            created += _make_parents(root, item.path.parent)
            item.temporary = write_temporary(item.path, item.planned.new, item.mode)
        for item in pending:
            if item.current is not None:
                backup = root / backup_dir / item.planned.path
                created += _make_parents(root, backup.parent)
                write_atomically(backup, item.current, item.mode)
                result.backups[item.planned.path] = (backup_dir / item.planned.path).as_posix()
        for item in pending:
            assert item.temporary is not None
            os.replace(item.temporary, item.path)
            renamed.append(item)
            result.written.append(item.planned.path)
        for directory in {item.path.parent for item in pending}:
            fsync_directory(directory)
    except (Exception, KeyboardInterrupt, _Terminated) as error:
        restored, removed = _roll_back(root, pending, renamed, created, backup_dir)
        signal_name = (
            "SIGINT"
            if isinstance(error, KeyboardInterrupt)
            else "SIGTERM"
            if isinstance(error, _Terminated)
            else None
        )
        reason = (
            f"interrupted ({signal_name})"
            if signal_name
            else f"{_described(error)} (after {len(renamed)} of {len(pending)} files)"
        )
        raise ApplyFailed(reason, restored, removed, signal_name) from None
    return result


def _new_backup_dir(root: Path, stamp: str) -> Path:
    """`.migration_backup/<stamp>`, or `<stamp>-2`... when an earlier apply used that name."""
    candidate, number = Path(BACKUP_DIR) / stamp, 1
    while (root / candidate).exists():
        number += 1
        candidate = Path(BACKUP_DIR) / f"{stamp}-{number}"
    return candidate


def _make_parents(root: Path, directory: Path) -> list[Path]:
    """Create `directory` and its missing ancestors; the ones created, outermost first."""
    missing = []
    while not directory.exists() and directory != root:
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir()
    return list(reversed(missing))


def _roll_back(
    root: Path,
    pending: list[_Pending],
    renamed: list[_Pending],
    created: list[Path],
    backup_dir: Path,
) -> tuple[list[str], list[str]]:
    restored, removed = [], []
    for item in reversed(renamed):
        if item.current is None:
            item.path.unlink(missing_ok=True)
            removed.append(item.planned.path)
        else:
            write_atomically(item.path, item.current, item.mode)
            restored.append(item.planned.path)
    for item in pending:
        if item.temporary is not None:
            item.temporary.unlink(missing_ok=True)
    shutil.rmtree(root / backup_dir, ignore_errors=True)
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty again
    backups = root / BACKUP_DIR
    with contextlib.suppress(OSError):
        if backups.is_dir() and not any(backups.iterdir()):
            backups.rmdir()
    return restored, removed


def _clean_stale_temporaries(root: Path, directories: list[Path]) -> None:
    """This tool's temporary files whose process is gone: beside the targets and among the
    backups. A file of the same look whose process still runs (another apply) is left alone."""
    candidates: list[Path] = []
    for directory in set(directories):
        if directory.is_dir():
            candidates += directory.glob(f".*{TEMP_MARK}*")
    # Never through a .migration_backup that is a link out of the project.
    if (root / BACKUP_DIR).is_dir() and jail_problem(root, BACKUP_DIR, directory=True) is None:
        candidates += (root / BACKUP_DIR).glob(f"**/.*{TEMP_MARK}*")
    for path in candidates:
        pid = path.name.rsplit(TEMP_MARK, 1)[-1].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)) and path.is_file():
            path.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _described(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f" ({Path(error.filename).name})" if error.filename else ""
        return f"could not write{where}: {error.strerror}"
    return f"{type(error).__name__}: {error}"


@contextlib.contextmanager
def project_lock(root: Path) -> Iterator[None]:
    """One apply at a time per project: an exclusive lock on `.migration_pipeline.lock` (the
    kernel drops it if the process dies); the file is removed when the apply ends."""
    import fcntl

    path = jailed(root, LOCK_FILE)
    while True:
        try:
            # O_NOFOLLOW: a lock file that is a symbolic link is refused, never truncated through.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as error:
            raise InvalidInput(
                [
                    Problem(
                        LOCK_FILE,
                        None,
                        (),
                        f"cannot be used as this project's lock ({error.strerror}"
                        + (", a symbolic link" if path.is_symlink() else "")
                        + "): remove it, then plan again",
                    )
                ]
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InvalidInput(
                [
                    Problem(
                        LOCK_FILE,
                        None,
                        (),
                        f"another apply is running on this project (pid {holder}): wait for "
                        "it to finish, then plan again",
                    )
                ]
            ) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break  # still the lock file (not one its last holder removed meanwhile)
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


@contextlib.contextmanager
def _signals_roll_back() -> Iterator[None]:
    """SIGTERM raises inside the apply (as SIGINT does), so that it rolls back before the
    process ends. Only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
