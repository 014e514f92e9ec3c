"""Writing the user's files: atomically (never half a file) and with a backup."""

from __future__ import annotations

import errno
import functools
import os
import secrets
import stat
from pathlib import Path

MAX_TEXT_BYTES = 1_000_000  # a dagster_cloud.yaml, a settings file, a Dockerfile, a .py file


class NotReadable(Exception):
    """A file that is not a regular UTF-8 text file within the size limit: the reason, for a
    message such as `<file>: <reason>`."""


def read_text(path: str | Path, limit: int = MAX_TEXT_BYTES) -> str:
    """A regular file's text as it is on disk (UTF-8; CRLF and a BOM kept), read without ever
    blocking (a FIFO is refused, not waited on) and never more than `limit` bytes: the size is
    checked on what was read, not on what the file claims. Raises `NotReadable`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise NotReadable("does not exist") from None
    except IsADirectoryError:
        raise NotReadable("is a directory, not a file") from None
    except OSError as error:
        raise NotReadable(f"cannot be read: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise NotReadable("is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise NotReadable("is not a regular file (a device, FIFO or socket)")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise NotReadable(f"cannot be read: {error.strerror}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise NotReadable(f"is larger than {limit:,} bytes, more than this tool reads")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotReadable(f"is not UTF-8 text ({error.reason} at byte {error.start})") from None


def read_exact(path: str | Path) -> str:
    """A file this tool wrote or checked already (its own record, a planned file): as
    `read_text`, raising `OSError` for what cannot be read."""
    try:
        return read_text(path)
    except NotReadable as error:
        raise OSError(f"{path}: {error}") from None


def read_user_file(path: str | Path, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """A file the user named (settings, inventory), or `InvalidInput` saying what is wrong."""
    from migration_pipeline.lib.problems import InvalidInput, Problem

    if str(path) == "":
        raise InvalidInput([Problem(f"the {what}", None, (), "is an empty path")])
    try:
        return read_text(path, limit)
    except NotReadable as error:
        reason = str(error)
        if reason == "does not exist":
            reason = f"no such {what}"
        raise InvalidInput([Problem(str(path), None, (), reason)]) from None


# This tool's temporary files: `.<name>.migration-pipeline-tmp-<pid>-<random>`, beside their
# target. Only such a file whose process is gone is ever cleaned up (plan/apply.py); a user's
# `.x.tmp-1` is never touched.
TEMP_MARK = ".migration-pipeline-tmp-"


def write_temporary(path: Path, text: str, mode: int) -> Path:
    """`text` in a new temporary file beside `path`, fsync'd, mode `mode`: its path."""
    temporary = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return temporary


_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2


@functools.cache
def _renameat2():
    """Linux's `renameat2` (glibc 2.28+), or None where there is none."""
    import ctypes

    return getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)


def _rename_with(source: Path, target: Path, flags: int) -> bool:
    """`renameat2(source, target, flags)`: True when done, False when this system or this
    filesystem cannot (the caller falls back); any other failure raises `OSError`."""
    import ctypes

    call = _renameat2()
    if call is None:
        return False
    if call(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    number = ctypes.get_errno()
    if number in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(number, os.strerror(number), str(target))


def swap_files(first: Path, second: Path) -> bool:
    """Exchange two files atomically (`RENAME_EXCHANGE`): what was at `second`, whatever it was
    at that instant, is then at `first`, never lost. False where the filesystem cannot."""
    return _rename_with(first, second, _RENAME_EXCHANGE)


def rename_new(source: Path, target: Path) -> None:
    """Rename `source` to `target`, which must not exist (`FileExistsError` if it does, even one
    created a moment ago): `RENAME_NOREPLACE`, or a hard link where that is not supported."""
    if _rename_with(source, target, _RENAME_NOREPLACE):
        return
    os.link(source, target)  # FileExistsError when the target exists
    os.unlink(source)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str | Path, text: str, mode: int | None = None) -> None:
    """Write `text` to `path` so that a crash at any point leaves the old file or the new one:
    a temporary file in the same directory, fsync, rename over, fsync the directory. The new
    file keeps the old one's mode, unless `mode` is given (e.g. 0o600 for a secret)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = path.lstat().st_mode & 0o777 if path.exists() and not path.is_symlink() else 0o644
    temporary = write_temporary(path, text, mode)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_if_changed(path: str | Path, text: str, mode: int | None = None) -> bool:
    """Write `text` atomically unless the file holds exactly that already (its mode is still
    set). True when it wrote. A symbolic link at `path` is never read or chmodded through: it
    is replaced by the file (the rename replaces the link itself)."""
    path = Path(path)
    if path.exists() and not path.is_symlink() and read_exact(path) == text:
        if mode is not None and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
        return False
    write_atomically(path, text, mode=mode)
    return True


def jail_problem(root: Path, relative: str | Path, directory: bool = False) -> str | None:
    """Why `relative` (under the project `root`) cannot be written, locked, chmodded or
    cleaned, or None: it must stay inside the project once every symbolic link on the way is
    resolved, every existing ancestor must be a directory, and the target itself a file (or a
    directory, for `directory`) or nothing yet."""
    relative = Path(relative)
    path = root / relative
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        return f"leads out of the project (to {resolved}): nothing is written outside it"
    ancestor = root
    for part in relative.parts[:-1]:
        ancestor = ancestor / part
        if ancestor.exists() and not ancestor.is_dir():
            return (
                f"needs {ancestor.relative_to(root).as_posix()} to be a directory, but it is a file"
            )
    if path.exists():
        if directory and not path.is_dir():
            return "is a file where a directory is needed"
        if not directory and path.is_dir():
            return "is a directory where a file is needed"
    return None


def jailed(root: Path, relative: str | Path, directory: bool = False) -> Path:
    """`root / relative`, after `jail_problem` found nothing; else `InvalidInput` naming it."""
    from migration_pipeline.lib.problems import InvalidInput, Problem

    problem = jail_problem(root, relative, directory)
    if problem is not None:
        raise InvalidInput([Problem(Path(relative).as_posix(), None, (), problem)])
    return root / relative
