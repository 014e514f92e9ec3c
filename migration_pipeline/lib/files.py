"""Writing the user's files: atomically (never half a file) and with a backup."""

from __future__ import annotations

import os
from pathlib import Path


def read_exact(path: str | Path) -> str:
    """A text file as it is on disk: UTF-8, line endings untouched (CRLF stays CRLF)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def read_user_file(path: str | Path, what: str) -> str:
    """A file the user named (settings, inventory), or `InvalidInput` saying what is wrong."""
    from migration_pipeline.lib.problems import InvalidInput, Problem

    try:
        return read_exact(path)
    except FileNotFoundError:
        raise InvalidInput([Problem(str(path), None, (), f"no such {what}")]) from None
    except IsADirectoryError:
        raise InvalidInput(
            [Problem(str(path), None, (), f"is a directory, not a {what}")]
        ) from None
    except UnicodeDecodeError as error:
        raise InvalidInput(
            [Problem(str(path), None, (), f"is not UTF-8 text ({error.reason})")]
        ) from None
    except OSError as error:
        raise InvalidInput(
            [Problem(str(path), None, (), f"cannot be read: {error.strerror}")]
        ) from None


def write_atomically(path: str | Path, text: str, mode: int | None = None) -> None:
    """Write `text` to `path` so that a crash at any point leaves the old file or the new one:
    a temporary file in the same directory, fsync, rename over, fsync the directory. The new
    file keeps the old one's mode, unless `mode` is given (e.g. 0o600 for a secret)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_if_changed(path: str | Path, text: str, mode: int | None = None) -> bool:
    """Write `text` atomically unless the file holds exactly that already (its mode is still
    set). True when it wrote."""
    path = Path(path)
    if path.exists() and read_exact(path) == text:
        if mode is not None and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
        return False
    write_atomically(path, text, mode=mode)
    return True
