"""Crash safety: `apply` killed with SIGKILL at random moments leaves every user file either
as it was or as planned (never partial), a backup of every replaced file, and a next run that
completes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.plan.project import read_project
from migration_pipeline.targets import load_target_settings

pytestmark = pytest.mark.slow

LOCATIONS = 150
APPLY = """
import sys
from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.plan.project import read_project
from migration_pipeline.targets import load_target_settings
plan = make_plan(read_project(sys.argv[1]), "kubernetes",
                 load_target_settings("kubernetes", registry="ghcr.io/acme"))
print("applying", flush=True)
apply_plan(plan, sys.argv[1])
print("done", flush=True)
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
        files[f"loc_{i}/.dockerignore"] = ".venv\n"  # replaced? no: a user's file is kept
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return files


def test_apply_killed_at_random_moments_leaves_old_or_new_files(tmp_path):
    rng = random.Random(2026)
    killed_midway = 0
    for attempt in range(12):
        root = tmp_path / f"p{attempt}"
        originals = make_project(root)
        plan = make_plan(
            read_project(root),
            "kubernetes",
            load_target_settings("kubernetes", registry="ghcr.io/acme"),
        )
        planned = {f.path: f for f in plan.files}
        process = subprocess.Popen(
            [sys.executable, "-c", APPLY, str(root)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == "applying"
        time.sleep(rng.uniform(0.0, 0.06))  # an apply of this project takes about 0.07 s
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

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
        killed_midway += 0 < written < len(planned)

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
        assert not list(root.rglob(".*.tmp-*"))
    assert killed_midway, "no kill landed in the middle of an apply: make the project bigger"


PUBLISH = """
import sys
from pathlib import Path
from migration_pipeline.images.builders import choose_builder
from migration_pipeline.images.publish import ImageJob, publish_all
root, registry = Path(sys.argv[1]), sys.argv[2]
jobs = []
for i in range(4):
    directory = root / f"loc_{i}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text("FROM scratch\\nCOPY . /app\\n")
    (directory / "data.bin").write_bytes((f"{root.name}-{i}".encode() * 2_000_000))
    jobs.append(ImageJob(f"loc_{i}", directory, directory / "Dockerfile",
                         f"{registry}/crash/{root.name}-{i}"))
print("publishing", flush=True)
images, errors = publish_all(jobs, choose_builder("buildah", storage=root / "containers"), 2,
                             log=lambda message: None)
print(";".join(f"{name}={image.tag}@{image.digest}" for name, image in sorted(images.items())),
      flush=True)
sys.exit(1 if errors else 0)
"""


def test_image_publish_killed_midway_completes_on_the_next_run(tmp_path, registry):
    from migration_pipeline.images.registry import manifest_digest

    rng = random.Random(7)
    for attempt in range(3):
        root = tmp_path / f"run{attempt}"
        process = subprocess.Popen(
            [sys.executable, "-c", PUBLISH, str(root), registry],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert process.stdout.readline().strip() == "publishing"
        time.sleep(rng.uniform(0.05, 0.5))
        os.killpg(process.pid, signal.SIGKILL)  # the builder's processes too
        process.wait(timeout=10)

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
