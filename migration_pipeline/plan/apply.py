"""Apply a MigrationPlan to the project directory, all or nothing.

1. Check every target first: inside the project (symbolic links resolved), a directory where a
   directory is needed, not changed since the plan was made. Anything wrong: `InvalidInput`,
   nothing written.
2. Write every new file to a temporary file beside its target, and each replaced file's
   content to `.migration_backup/<time>/`.
3. Put each temporary file in place with an atomic exchange (`RENAME_EXCHANGE`): what comes out
   is whatever was at the target at that instant, and it is checked against what was planned
   over. An edit saved after step 1 is found here, put back, and the apply rolls back: no edit
   is overwritten, whenever it was saved. A new file is put in place only if no file of that
   name appeared meanwhile (`RENAME_NOREPLACE`). Where the filesystem has neither, the target
   is compared again just before an ordinary rename (a window of microseconds, not of the
   whole apply).

SIGINT and SIGTERM are deferred while the apply runs and acted on between two steps, so the
apply always knows which files it has put in place. If anything fails in 2 or 3, or a signal
comes, the files put in place get their old content back (the same exchange: a file changed
since this apply wrote it is left as it is, with its old content in the backup), the
temporary files are removed, and `ApplyFailed` says what was restored, what was not and
where its old content is. One apply runs at a time per project (a lock file). Applying twice
changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
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
    rename_new,
    swap_files,
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
    # SIGINT or SIGTERM that came after the last file was in place: the apply is complete, and
    # the caller still stops as asked.
    late_signal: str | None = None


@dataclass(eq=False)
class ApplyFailed(Exception):
    """The apply stopped partway (an error, or a signal) and rolled back: `restored` got their
    old content back, `removed` were new and are gone; `left` could not be restored (a file
    changed since this apply wrote it, or a failure while restoring), each with why, and their
    old content stays in `backup_dir`."""

    reason: str
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    signal_name: str | None = None
    left: dict[str, str] = field(default_factory=dict)
    backup_dir: str | None = None
    left_new: dict[str, str] = field(default_factory=dict)  # new files not removed, and why

    def __post_init__(self) -> None:
        super().__init__(self.reason)

    def report(self) -> str:
        lines = [f"apply stopped: {self.reason}"]
        if self.restored:
            lines.append("restored to their old content: " + ", ".join(self.restored))
        if self.removed:
            lines.append("removed again (they were new): " + ", ".join(self.removed))
        for path, why in self.left.items():
            lines.append(
                f"NOT restored: {path} ({why}); its old content is in {self.backup_dir}/{path}"
            )
        for path, why in self.left_new.items():
            lines.append(f"NOT removed: {path} ({why}; it was new): left as it is")
        if self.left or self.left_new:
            lines.append("Every other file is as it was before this apply.")
        else:
            lines.append("Every file is as it was before this apply.")
        return "\n".join(lines)


class _Interrupted(BaseException):
    """SIGINT or SIGTERM, acted on between two steps of the apply."""

    def __init__(self, signal_name: str):
        self.signal_name = signal_name
        super().__init__(signal_name)


class _ChangedMeanwhile(Exception):
    def __init__(self, path: str, created: bool):
        what = "was created" if created else "changed"
        super().__init__(
            f"{path} {what} while the apply ran (after its check); it is kept as it is now: "
            "make the plan again"
        )


@dataclass
class _Stop:
    """The signal that came while the apply ran, if one did."""

    signal_name: str | None = None

    def check(self) -> None:
        if self.signal_name:
            raise _Interrupted(self.signal_name)


@dataclass
class _Pending:
    planned: PlannedFile
    path: Path
    current: str | None
    mode: int
    temporary: Path | None = None  # written, not yet in place
    placed: bool = False


def apply_plan(
    plan: MigrationPlan, project_dir: str | Path, stamp: str | None = None
) -> ApplyResult:
    root = project_root(project_dir)
    with project_lock(root), _signals_deferred() as stop:
        result = _apply(plan, root, stamp, stop)
    result.late_signal = stop.signal_name
    return result


def _apply(plan: MigrationPlan, root: Path, stamp: str | None, stop: _Stop) -> ApplyResult:
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
    _clean_stale_temporaries(root, [(root / f.path).parent for f in plan.files])
    if not pending:
        return result

    created: list[Path] = []  # directories this apply made, outermost first
    try:
        for item in pending:
            stop.check()
            created += _make_parents(root, item.path.parent)
            item.temporary = write_temporary(item.path, item.planned.new, item.mode)
        for item in pending:
            if item.current is not None:
                stop.check()
                backup = root / backup_dir / item.planned.path
                created += _make_parents(root, backup.parent)
                write_atomically(backup, item.current, item.mode)
                result.backups[item.planned.path] = (backup_dir / item.planned.path).as_posix()
        for item in pending:
            stop.check()
            assert item.temporary is not None
            if not _put_in_place(item.temporary, item.path, item.current):
                raise _ChangedMeanwhile(item.planned.path, created=item.current is None)
            item.temporary, item.placed = None, True
            result.written.append(item.planned.path)
        for directory in {item.path.parent for item in pending}:
            fsync_directory(directory)
    except (Exception, _Interrupted) as error:
        if isinstance(error, _Interrupted):
            failure = ApplyFailed(f"interrupted ({error.signal_name})", [], [], error.signal_name)
        else:
            placed = sum(item.placed for item in pending)
            failure = ApplyFailed(f"{_described(error)} (after {placed} of {len(pending)} files)")
        _roll_back(root, pending, created, backup_dir, failure)
        raise failure from None
    return result


def _put_in_place(temporary: Path, path: Path, expected: str | None) -> bool:
    """Put `temporary` at `path` if `path` holds `expected` (None: no file) at that instant:
    False, and `path` untouched with `temporary` still there, when it holds something else."""
    if expected is None:
        try:
            rename_new(temporary, path)
        except FileExistsError:
            return False
        return True
    if swap_files(temporary, path):
        try:
            displaced = read_text(temporary)
        except NotReadable:
            displaced = None
        if displaced != expected:
            swap_files(temporary, path)  # theirs back in place, ours at `temporary` again
            return False
        with contextlib.suppress(OSError):
            temporary.unlink()  # else a stale temporary, cleaned by the next apply
        return True
    try:  # a filesystem without the exchange: compare once more, just before the rename
        if read_text(path) != expected:
            return False
    except NotReadable:
        return False
    os.replace(temporary, path)
    return True


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
    created: list[Path],
    backup_dir: Path,
    failure: ApplyFailed,
) -> None:
    """Undo what this apply did, never over a change someone else made meanwhile; what was
    and was not undone goes into `failure`."""
    failure.backup_dir = backup_dir.as_posix()
    for item in reversed(pending):
        try:
            if item.temporary is not None:
                item.temporary.unlink(missing_ok=True)
                item.temporary = None
            if not item.placed:
                continue
            if item.current is None:
                if _remove_if(item.path, item.planned.new):
                    failure.removed.append(item.planned.path)
                else:
                    failure.left_new[item.planned.path] = "changed since this apply wrote it"
                continue
            old = write_temporary(item.path, item.current, item.mode)
            if _put_in_place(old, item.path, item.planned.new):
                failure.restored.append(item.planned.path)
            else:
                old.unlink(missing_ok=True)
                failure.left[item.planned.path] = "changed since this apply wrote it"
        except OSError as error:
            left = failure.left if item.current is not None else failure.left_new
            left[item.planned.path] = _described(error)
    if not failure.left:  # every old content is back in place: the backups are not needed
        shutil.rmtree(root / backup_dir, ignore_errors=True)
        failure.backup_dir = None
    for directory in reversed(created):
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when empty again
    backups = root / BACKUP_DIR
    with contextlib.suppress(OSError):
        if backups.is_dir() and not any(backups.iterdir()):
            backups.rmdir()


def _remove_if(path: Path, expected: str) -> bool:
    """Remove `path` if it holds `expected`: moved aside first (atomic), so that a file saved
    there meanwhile is put back, not removed."""
    aside = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-removed")
    os.rename(path, aside)
    try:
        ours = read_text(aside) == expected
    except NotReadable:
        ours = False
    if ours:
        aside.unlink()
        return True
    rename_new(aside, path)
    return False


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


# What a user can do about the errors a write meets.
_WRITE_HINTS = {
    errno.ENOSPC: "free some space, then apply again",
    errno.EDQUOT: "free some of your quota, then apply again",
    errno.EROFS: "apply in a writable checkout",
    errno.EPERM: "is the file or its directory immutable (`lsattr`)?",
    errno.EACCES: "check who owns the project's files",
    errno.EFBIG: "a file-size limit (`ulimit -f`) stops it",
}


def _described(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f" ({Path(error.filename).name})" if error.filename else ""
        hint = _WRITE_HINTS.get(error.errno or 0)
        return f"could not write{where}: {error.strerror}" + (f"; {hint}" if hint else "")
    if isinstance(error, _ChangedMeanwhile):
        return str(error)
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
            if not os.path.lexists(path):
                raise _lock_refused(
                    f"cannot be created ({error.strerror}): the project directory cannot be "
                    "written (read-only, immutable: see `lsattr -d`, or not yours); make it "
                    "writable, then apply again"
                ) from None
            raise _lock_refused(
                f"cannot be used as this project's lock ({error.strerror}"
                + (", a symbolic link" if path.is_symlink() else "")
                + "): remove it, then plan again"
            ) from None
        kind = _not_a_file(os.fstat(fd).st_mode)
        if kind:
            os.close(fd)
            raise _lock_refused(
                f"is {kind}, where this tool keeps its lock file: remove it, then plan again"
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise _lock_refused(
                f"another apply is running on this project (pid {holder}): wait for it to "
                "finish, then plan again"
            ) from None
        except OSError as error:  # a filesystem without locks (some network mounts)
            os.close(fd)
            raise _lock_refused(
                f"cannot be locked ({error.strerror}): is the project on a filesystem without "
                "file locks? Apply from a local checkout"
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


def _lock_refused(message: str) -> InvalidInput:
    return InvalidInput([Problem(LOCK_FILE, None, (), message)])


def _not_a_file(mode: int) -> str | None:
    """What a non-regular file is, for a message (None for a regular file)."""
    import stat

    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


@contextlib.contextmanager
def _signals_deferred() -> Iterator[_Stop]:
    """SIGINT and SIGTERM only note that they came while the apply runs; the apply acts on them
    between two steps (`_Stop.check`), so that it always knows what it has put in place. Only
    in the main thread, where Python delivers signals (elsewhere none arrives in the apply)."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def defer(signum, frame):
        stop.signal_name = stop.signal_name or signal.Signals(signum).name

    previous = {number: signal.signal(number, defer) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
