"""Issue 20, class 5: an interrupted apply knows every file it put in place, and what it says
afterwards is true; an edit saved at any moment of the apply is never overwritten.

The moments are reached by wrapping the apply's own rename primitives (`swap_files`,
`rename_new`): a signal or an editor's save lands exactly between two system calls, with no
race against a clock."""

from __future__ import annotations

import os
import signal

import pytest
from support.hostile import OK_CLOUD, assert_clean_success, assert_refused, plan, tree, write
from test_hostile_apply import run_child

from migration_pipeline.lib import files as files_lib
from migration_pipeline.plan import apply
from migration_pipeline.plan.apply import BACKUP_DIR, apply_plan

OLD = f"# ours\n{OK_CLOUD}"
USERS_EDIT = "# saved by the user's editor while the apply ran\n" + OK_CLOUD


@pytest.fixture
def project(tmp_path):
    return write(tmp_path / "project", {"dagster_cloud.yaml": OLD, "requirements.txt": ""})


def with_file(before: dict, name: str, text: str) -> dict:
    """`tree(project)` as `before`, with one file (a regular file, mode 0644) holding `text`."""
    return {**before, name: ("file", text.encode(), 0o644)}


def wrap(monkeypatch, name: str, before=None, after=None, nth: int = 1) -> None:
    """Run `before`/`after` around the `nth` call of the apply's primitive `name`."""
    real, calls = getattr(apply, name), []

    def wrapped(source, target):
        calls.append(target)
        if len(calls) == nth and before:
            before(source, target)
        done = real(source, target)
        if len(calls) == nth and after:
            after(source, target)
        return done

    monkeypatch.setattr(apply, name, wrapped)


# -- signals: the apply acts on them only between two steps -----------------------------------


@pytest.mark.parametrize("signal_name,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_right_after_an_exchange_still_restores_that_file(project, signal_name, code):
    # The old apply's gap: the rename done, the signal before it was recorded as done.
    before = tree(project)
    outcome = run_child(
        project,
        "from migration_pipeline.plan import apply\n"
        "real = apply.swap_files\n"
        "def swap_files(first, second):\n"
        "    done = real(first, second)\n"
        f"    os.kill(os.getpid(), signal.{signal_name})\n"
        "    return done\n"
        "apply.swap_files = swap_files",
    )
    assert_refused(
        outcome,
        f"interrupted ({signal_name})",
        "restored to their old content: dagster_cloud.yaml",
        code=code,
    )
    assert "Every file is as it was before this apply." in outcome.err
    assert tree(project) == before


def test_a_second_signal_during_the_roll_back_does_not_cut_it_short(project):
    before = tree(project)
    # SIGTERM after the Dockerfile is in place; SIGINT again while the roll-back removes it.
    outcome = run_child(
        project,
        "from migration_pipeline.plan import apply\n"
        "real_new, real_remove = apply.rename_new, apply._remove_if\n"
        "def rename_new(source, target):\n"
        "    real_new(source, target)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "def remove_if(path, expected):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real_remove(path, expected)\n"
        "apply.rename_new, apply._remove_if = rename_new, remove_if",
    )
    assert_refused(
        outcome,
        "interrupted (SIGTERM)",
        "restored to their old content: dagster_cloud.yaml",
        "removed again (they were new): Dockerfile",
        code=143,
    )
    assert tree(project) == before


def test_a_signal_after_the_last_file_is_in_place_reports_a_complete_apply(project):
    outcome = run_child(
        project,
        "from migration_pipeline.plan import apply\n"
        "real, calls = apply.rename_new, []\n"
        "def rename_new(source, target):\n"
        "    real(source, target)\n"
        "    calls.append(target)\n"
        "    if len(calls) == 2:\n"  # .dockerignore, the last file
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "apply.rename_new = rename_new",
    )
    assert outcome.code == 130, outcome.err
    assert "SIGINT came after every file was written: the apply is complete" in outcome.err
    assert "Traceback" not in outcome.err
    assert {".dockerignore", "Dockerfile"} <= set(tree(project))
    assert "wrote dagster_cloud.yaml" in outcome.out
    assert_clean_success(plan(project))  # and nothing is left to do
    assert "Nothing to write" in plan(project).out


# -- an edit saved while the apply runs --------------------------------------------------------


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_an_edit_saved_just_before_the_exchange_is_kept(project, monkeypatch, how):
    before = tree(project)

    def save(source, target):  # after every check, after the backup, just before the rename
        if how == "in place":
            target.write_text(USERS_EDIT)
        else:  # as vim and most editors save: a new file renamed over the old one
            (target.parent / ".edit.swp").write_text(USERS_EDIT)
            os.replace(target.parent / ".edit.swp", target)

    wrap(monkeypatch, "swap_files", before=save)
    outcome = plan(project)
    assert_refused(outcome, "dagster_cloud.yaml changed while the apply ran", code=1)
    assert "it is kept as it is now: make the plan again" in outcome.err
    assert (project / "dagster_cloud.yaml").read_text() == USERS_EDIT
    assert tree(project) == with_file(before, "dagster_cloud.yaml", USERS_EDIT)


def test_a_file_created_where_a_new_one_goes_is_kept(project, monkeypatch):
    before = tree(project)
    wrap(
        monkeypatch,
        "rename_new",
        before=lambda source, target: target.write_text("FROM mine\n"),
    )
    outcome = plan(project)
    assert_refused(
        outcome,
        "Dockerfile was created while the apply ran",
        "restored to their old content: dagster_cloud.yaml",
        code=1,
    )
    assert tree(project) == with_file(before, "Dockerfile", "FROM mine\n")


def test_an_edit_after_this_apply_wrote_a_file_is_not_undone_by_the_roll_back(project, monkeypatch):
    # dagster_cloud.yaml is in place; the user edits it; the Dockerfile then fails: the roll-back
    # leaves the user's edit, says so, and keeps the old content in the backup.
    def edit_then_fail(source, target):
        (project / "dagster_cloud.yaml").write_text(USERS_EDIT)
        raise OSError(28, "No space left on device", str(target))

    wrap(monkeypatch, "rename_new", before=edit_then_fail)
    outcome = plan(project)
    assert_refused(
        outcome,
        "NOT restored: dagster_cloud.yaml (changed since this apply wrote it); its old "
        f"content is in {BACKUP_DIR}/",
        "Every other file is as it was before this apply.",
        code=1,
    )
    assert "Every file is as it was" not in outcome.err
    assert (project / "dagster_cloud.yaml").read_text() == USERS_EDIT
    backups = list((project / BACKUP_DIR).glob("*/dagster_cloud.yaml"))
    assert [b.read_text() for b in backups] == [OLD]
    assert not (project / "Dockerfile").exists()


def test_a_restore_that_fails_is_named_and_its_backup_kept(project, monkeypatch):
    wrap(
        monkeypatch,
        "rename_new",
        before=lambda s, t: (_ for _ in ()).throw(OSError(5, "Input/output error", str(t))),
    )
    real_write = apply.write_temporary

    def write_temporary(path, text, mode):  # the roll-back's copy of the old content fails
        if text == OLD:
            raise OSError(28, "No space left on device", str(path))
        return real_write(path, text, mode)

    monkeypatch.setattr(apply, "write_temporary", write_temporary)
    outcome = plan(project)
    assert_refused(
        outcome,
        "NOT restored: dagster_cloud.yaml (could not write (dagster_cloud.yaml): No space left",
        code=1,
    )
    assert "Every file is as it was" not in outcome.err
    backups = list((project / BACKUP_DIR).glob("*/dagster_cloud.yaml"))
    assert [b.read_text() for b in backups] == [OLD]


# -- a filesystem without renameat2 -----------------------------------------------------------


def test_without_renameat2_the_apply_compares_just_before_each_rename(project, monkeypatch):
    monkeypatch.setattr(files_lib, "_renameat2", lambda: None)
    result = apply_plan_for(project)
    assert sorted(result.written) == [".dockerignore", "Dockerfile", "dagster_cloud.yaml"]
    assert not any(".migration-pipeline-tmp-" in name for name in tree(project))


def test_without_renameat2_an_edit_before_the_compare_is_kept(project, monkeypatch):
    monkeypatch.setattr(files_lib, "_renameat2", lambda: None)
    before = tree(project)
    real_read, reads = apply.read_text, []

    def read_text(path, *args):  # the edit lands after the check, before the last compare
        reads.append(path)
        if path.name == "dagster_cloud.yaml" and len(reads) > 1:
            path.write_text(USERS_EDIT)
        return real_read(path, *args)

    monkeypatch.setattr(apply, "read_text", read_text)
    outcome = plan(project)
    assert_refused(outcome, "dagster_cloud.yaml changed while the apply ran", code=1)
    assert tree(project) == with_file(before, "dagster_cloud.yaml", USERS_EDIT)


def apply_plan_for(project):
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    made = make_plan(
        read_project(project),
        "kubernetes",
        load_target_settings("kubernetes", registry="ghcr.io/acme"),
    )
    return apply_plan(made, project)


def test_signal_handlers_are_given_back(project):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    apply_plan_for(project)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
