"""Hostile input against the command line: run `migration-pipeline plan`, then check what a
user must always get: the exit code, a message of the shape `file[:line]: what`, never a
traceback, and files byte-identical (or a complete, consistent apply)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OK_LOCATION = "  - location_name: ok\n    code_source:\n      package_name: ok\n"
OK_CLOUD = f"locations:\n{OK_LOCATION}"
# `file[:line]: ...` as the first line of a refusal (the file may be a flag such as --registry).
PROBLEM_LINE = re.compile(r"^\S[^:\n]*(:\d+)?: .+")


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def plan(
    project: Path | str,
    *extra: str,
    target: str = "kubernetes",
    apply: bool = True,
    registry: str | None = "ghcr.io/acme",
) -> Outcome:
    """`migration-pipeline plan` in this process, its streams captured."""
    from migration_pipeline.cli import main

    args = ["plan", "--project-dir", str(project), "--target", target]
    if registry is not None and target != "local" and "--registry" not in extra:
        args += ["--registry", registry]
    args += list(extra)
    if apply:
        args.append("--apply")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return Outcome(code, out.getvalue(), err.getvalue())


def plan_with_settings(
    project: Path, settings_dir: Path, settings: str, target: str, registry: str
) -> Outcome:
    """`plan` with a settings file of this text (written into `settings_dir`)."""
    path = settings_dir / "settings.yaml"
    path.write_text(settings)
    return plan(project, "--settings", str(path), target=target, registry=registry)


def plan_in_subprocess(
    project: Path | str,
    *extra: str,
    target: str = "kubernetes",
    timeout: float = 60,
    env: dict[str, str] | None = None,
    registry: str | None = "ghcr.io/acme",
) -> Outcome:
    """The same in a child process: for what could hang or exhaust memory."""
    args = [
        sys.executable,
        "-m",
        "migration_pipeline.cli",
        "plan",
        "--project-dir",
        str(project),
        "--target",
        target,
    ]
    if registry is not None and target != "local":
        args += ["--registry", registry]
    done = subprocess.run(
        [*args, *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_refused(outcome: Outcome, *fragments: str, code: int = 2) -> None:
    """Exit `code`, every fragment in stderr, the first line `file[:line]: what`, no
    traceback anywhere, and the closing line that says nothing was written."""
    text = outcome.out + outcome.err
    assert outcome.code == code, f"exit {outcome.code}, wanted {code}:\n{text[-3000:]}"
    assert "Traceback" not in text and 'File "' not in text, text[-3000:]
    first = outcome.err.strip().splitlines()[0] if outcome.err.strip() else ""
    assert PROBLEM_LINE.match(first), f"not `file[:line]: what`: {first!r}"
    for fragment in fragments:
        assert fragment in outcome.err, f"{fragment!r} not in:\n{outcome.err}"
    if code == 2:
        assert outcome.err.rstrip().endswith("Nothing was written."), outcome.err


def assert_clean_success(outcome: Outcome) -> None:
    text = outcome.out + outcome.err
    assert outcome.code == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def tree(root: Path) -> dict[str, tuple]:
    """Everything under `root`, symbolic links and modes included, for byte-identity."""
    found: dict[str, tuple] = {}
    if not root.exists():
        return found
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[relative] = ("dir", stat.S_IMODE(info.st_mode))
            elif stat.S_ISREG(info.st_mode):
                found[relative] = ("file", path.read_bytes(), stat.S_IMODE(info.st_mode))
            else:
                found[relative] = ("special", stat.S_IFMT(info.st_mode))
    return found
