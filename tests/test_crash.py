"""Crash safety: `apply` killed with SIGKILL at each kind of moment leaves every user file
either as it was or as planned (never partial), a backup of every replaced file, and a next run
that completes; an image publish killed midway completes on the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from migration_pipeline.layouts.files import read_project
from migration_pipeline.lib.files import TEMP_MARK
from migration_pipeline.plan.apply import LOCK_FILE, apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.targets import load_target_settings

pytestmark = pytest.mark.slow

LOCATIONS = 20
# Apply in a child process that kills itself (SIGKILL, as an OOM killer or a pulled plug would)
# at a chosen rename of the apply, just before it or just after it: every write of apply goes
# through one atomic rename (`os.replace` for a backup, an exchange for a replaced file, a
# no-replace rename for a new one), so these are the moments where a half-done apply can be
# caught. CRASH_AT=0 counts the renames and lets the apply finish.
APPLY = """
import os, signal, sys
from migration_pipeline.plan import apply
from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.layouts.files import read_project
from migration_pipeline.targets import load_target_settings

crash_at, when = int(os.environ["CRASH_AT"]), os.environ["CRASH_WHEN"]
renames = 0

def counted(real):
    def rename(source, target):
        global renames
        renames += 1
        if renames == crash_at and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        done = real(source, target)
        if renames == crash_at and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return done
    return rename

os.replace = counted(os.replace)
apply.swap_files = counted(apply.swap_files)
apply.rename_new = counted(apply.rename_new)
plan = make_plan(read_project(sys.argv[1]), "kubernetes",
                 load_target_settings("kubernetes", registry="ghcr.io/acme"))
apply_plan(plan, sys.argv[1])
print(renames, flush=True)
"""


def make_project(root: Path) -> dict[str, str]:
    files = {
        "dagster_cloud.yaml": "# many locations\nlocations:\n"
        + "".join(
            f"  - location_name: loc_{i}\n    code_source:\n      package_name: loc_{i}\n"
            f"    build:\n      directory: loc_{i}\n"
            for i in range(LOCATIONS)
        )
    }
    for i in range(LOCATIONS):
        files[f"loc_{i}/requirements.txt"] = "dagster\n"
        files[f"loc_{i}/.dockerignore"] = ".venv\n"  # a user's file: kept
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def apply_in_child(root: Path, crash_at: int, when: str = "before") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", APPLY, str(root)],
        env={**os.environ, "CRASH_AT": str(crash_at), "CRASH_WHEN": when},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_apply_killed_at_each_kind_of_moment_leaves_old_or_new_files(tmp_path):
    counted = apply_in_child(make_project_dir(tmp_path / "count"), 0)
    assert counted.returncode == 0, counted.stderr[-2000:]
    renames = int(counted.stdout.split()[-1])
    assert renames > LOCATIONS  # a Dockerfile per location, dagster_cloud.yaml and its backup
    # The first write, the second, one in the middle, the last: each just before its rename
    # (the temporary file is complete, the target still old) and just after it.
    moments = [(n, when) for n in (1, 2, renames // 2, renames) for when in ("before", "after")]
    for crash_at, when in moments:
        root = tmp_path / f"crash-{crash_at}-{when}"
        originals = make_project(root)
        plan = make_plan(
            read_project(root),
            "kubernetes",
            load_target_settings("kubernetes", registry="ghcr.io/acme"),
        )
        planned = {f.path: f for f in plan.files}
        killed = apply_in_child(root, crash_at, when)
        assert killed.returncode == -signal.SIGKILL, (crash_at, when, killed.stderr[-2000:])

        written = 0
        for relative, planned_file in planned.items():
            path = root / relative
            text = path.read_text() if path.exists() else None
            assert text in (planned_file.old, planned_file.new), f"{relative} is partial"
            if text == planned_file.new and planned_file.old is not None:
                backups = list((root / ".migration_backup").glob(f"*/{relative}"))
                assert backups and backups[0].read_text() == planned_file.old
            written += text == planned_file.new
        assert all(
            (root / r).read_text() == t for r, t in originals.items() if r not in planned
        )  # nothing else touched
        if crash_at == renames // 2:
            assert 0 < written < len(planned), "the middle of the apply was not the middle"

        result = apply_plan(
            make_plan(
                read_project(root),
                "kubernetes",
                load_target_settings("kubernetes", registry="ghcr.io/acme"),
            ),
            root,
        )
        assert sorted(result.written + result.unchanged) == sorted(planned)
        for relative, planned_file in planned.items():
            assert (root / relative).read_text() == planned_file.new
        assert not list(root.rglob(f"*{TEMP_MARK}*"))
        assert not (root / LOCK_FILE).exists()


def make_project_dir(root: Path) -> Path:
    make_project(root)
    return root


# Publish four images in a child process (its own session) that kills its whole process group,
# the builder's processes too, right after the builder's n-th `build` or `push` returns: an
# image built but not pushed, or pushed while the others are still building.
PUBLISH = """
import os, signal, sys, threading
from pathlib import Path
from migration_pipeline.images.builders import choose_builder
from migration_pipeline.images.publish import ImageJob, publish_all
root, registry = Path(sys.argv[1]), sys.argv[2]
step, nth = os.environ.get("CRASH_AFTER", "none:0").split(":")
jobs = []
for i in range(4):
    directory = root / f"loc_{i}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text("FROM scratch\\nCOPY . /app\\n")
    (directory / "data.bin").write_bytes((f"{root.name}-{i}".encode() * 2_000_000))
    jobs.append(ImageJob(f"loc_{i}", directory, directory / "Dockerfile",
                         f"{registry}/crash/{root.name}-{i}"))
builder = choose_builder("buildah", storage=root / "containers")
calls, lock = {"build": 0, "push": 0}, threading.Lock()
for name in ("build", "push"):
    def wrapped(*args, _real=getattr(builder, name), _name=name):
        result = _real(*args)
        with lock:
            calls[_name] += 1
            crash = _name == step and calls[_name] == int(nth)
        if crash:
            os.killpg(0, signal.SIGKILL)
        return result
    setattr(builder, name, wrapped)
images, errors = publish_all(jobs, builder, 2, log=lambda message: None)
print(";".join(f"{name}={image.tag}@{image.digest}" for name, image in sorted(images.items())),
      flush=True)
sys.exit(1 if errors else 0)
"""


@pytest.mark.parametrize("crash_after", ["build:1", "push:1", "push:3"])
def test_image_publish_killed_midway_completes_on_the_next_run(tmp_path, registry, crash_after):
    from migration_pipeline.images.registry import manifest_digest

    # Its own image names and contents: the registry is shared by the whole session.
    root = tmp_path / f"run-{crash_after.replace(':', '-')}"
    killed = subprocess.run(
        [sys.executable, "-c", PUBLISH, str(root), registry],
        env={**os.environ, "CRASH_AFTER": crash_after},
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    again = subprocess.run(
        [sys.executable, "-c", PUBLISH, str(root), registry],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    published = dict(item.split("=", 1) for item in again.stdout.splitlines()[-1].split(";"))
    assert sorted(published) == [f"loc_{i}" for i in range(4)]
    for i, (_, reference) in enumerate(sorted(published.items())):
        tag, digest = reference.split("@")
        assert manifest_digest(f"{registry}/crash/{root.name}-{i}", tag) == digest
