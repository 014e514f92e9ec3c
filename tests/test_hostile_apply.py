"""Hostile conditions during `--apply`, all or nothing: a target that cannot be written is found
before anything is written; a failure or a signal partway restores every file; one apply runs
at a time; only this tool's own stale temporary files are cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.hostile import (
    OK_CLOUD,
    Outcome,
    assert_clean_success,
    assert_refused,
    plan,
    tree,
    write,
)

from migration_pipeline.lib.files import TEMP_MARK
from migration_pipeline.plan.apply import LOCK_FILE, project_lock

PLANNED = {"dagster_cloud.yaml", "Dockerfile", ".dockerignore"}


@pytest.fixture
def project(tmp_path):
    return write(
        tmp_path / "project", {"dagster_cloud.yaml": f"# ours\n{OK_CLOUD}", "requirements.txt": ""}
    )


def test_a_file_where_the_build_directory_should_be(project):
    (project / "dagster_cloud.yaml").write_text(OK_CLOUD + "    build:\n      directory: etl\n")
    (project / "etl").write_text("a file, not a directory\n")
    before = tree(project)
    assert_refused(plan(project), "etl/Dockerfile:", "needs etl to be a directory")
    assert tree(project) == before


def test_a_directory_where_a_file_goes(project):
    (project / ".dockerignore").mkdir()
    before = tree(project)
    assert_refused(plan(project), ".dockerignore:", "is a directory where a file is needed")
    assert tree(project) == before


def test_a_failure_while_renaming_restores_what_was_renamed(project, monkeypatch):
    from migration_pipeline.plan import apply

    before = tree(project)
    real_rename_new, calls = apply.rename_new, []

    def rename_new(source, target):
        calls.append(target)
        if len(calls) == 2:  # dagster_cloud.yaml (an exchange), the Dockerfile, then this one
            raise OSError(28, "No space left on device", str(target))
        real_rename_new(source, target)

    monkeypatch.setattr(apply, "rename_new", rename_new)
    outcome = plan(project)
    monkeypatch.undo()
    assert_refused(
        outcome,
        "apply stopped: could not write",
        "No space left on device",
        "restored to their old content: dagster_cloud.yaml",
        "removed again (they were new): Dockerfile",
        code=1,
    )
    assert "Every file is as it was" in outcome.err
    assert tree(project) == before


def run_child(project, code: str, env: dict[str, str] | None = None) -> Outcome:
    """`migration-pipeline plan --apply` in a child that first runs `code`."""
    script = (
        "import os, signal, sys\n" + code + "\nfrom migration_pipeline.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "plan",
            "--project-dir",
            str(project),
            "--target",
            "kubernetes",
            "--registry",
            "ghcr.io/acme",
            "--apply",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def test_a_file_size_limit_partway_leaves_everything_as_it_was(project):
    # A 60 kB dagster_cloud.yaml cannot be written under a 20 kB limit; the small files can.
    (project / "dagster_cloud.yaml").write_text("# " + "x" * 60_000 + "\n" + OK_CLOUD)
    before = tree(project)
    outcome = run_child(
        project,
        "import resource\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))",
    )
    assert_refused(outcome, "apply stopped: could not write", "File too large", code=1)
    assert tree(project) == before


@pytest.mark.parametrize("signal_name,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_partway_rolls_back_and_says_what(project, signal_name, code):
    before = tree(project)
    # The signal arrives while the Dockerfile is put in place: dagster_cloud.yaml is in place.
    outcome = run_child(
        project,
        "from migration_pipeline.plan import apply\n"
        "real = apply.rename_new\n"
        "def rename_new(source, target):\n"
        f"    os.kill(os.getpid(), signal.{signal_name})\n"
        "    real(source, target)\n"
        "apply.rename_new = rename_new",
    )
    assert_refused(
        outcome,
        f"interrupted ({signal_name})",
        "restored to their old content: dagster_cloud.yaml",
        "removed again (they were new): Dockerfile",
        code=code,
    )
    assert tree(project) == before


def test_one_apply_at_a_time(project):
    with project_lock(project):
        before = tree(project)
        outcome = plan(project)
        assert tree(project) == before
    assert_refused(
        outcome, f"{LOCK_FILE}:", f"another apply is running on this project (pid {os.getpid()})"
    )
    assert not (project / LOCK_FILE).exists()
    assert_clean_success(plan(project))  # and once it is over, the next one runs


def test_a_lock_file_left_by_a_killed_apply_does_not_block(project):
    (project / LOCK_FILE).write_text("999999\n")  # no process holds it
    assert_clean_success(plan(project))
    assert not (project / LOCK_FILE).exists()


def test_a_users_file_named_like_a_temporary_file_is_kept(project):
    write(project, {".Dockerfile.tmp-123": "mine\n", ".dagster_cloud.yaml.tmp-1": "mine too\n"})
    assert_clean_success(plan(project))
    assert (project / ".Dockerfile.tmp-123").read_text() == "mine\n"
    assert (project / ".dagster_cloud.yaml.tmp-1").read_text() == "mine too\n"


def test_only_stale_temporary_files_of_this_tool_are_removed(project):
    dead = f".Dockerfile{TEMP_MARK}999999-0a0b0c0d"  # no such process
    alive = f".Dockerfile{TEMP_MARK}{os.getpid()}-0a0b0c0d"  # another apply, still running
    write(project, {dead: "half", alive: "in flight"})
    assert_clean_success(plan(project))
    assert not (project / dead).exists()
    assert (project / alive).read_text() == "in flight"


def test_after_a_failed_apply_the_next_one_completes(project, monkeypatch):
    from migration_pipeline.plan import apply

    failing = lambda s, t: (_ for _ in ()).throw(OSError(5, "I/O", t))  # noqa: E731
    monkeypatch.setattr(apply, "rename_new", failing)
    assert plan(project).code == 1
    monkeypatch.undo()
    outcome = plan(project)
    assert_clean_success(outcome)
    assert {
        line.split()[1] for line in outcome.out.splitlines() if line.startswith("wrote ")
    } == PLANNED
    assert not list(project.rglob(f"*{TEMP_MARK}*"))
