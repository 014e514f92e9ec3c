"""Hostile input, the project is a jail: nothing is read through, or written through, a path
that leaves the project directory once symbolic links are resolved; such a plan is refused
with exit 2 before anything is written, inside the project or outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.hostile import OK_CLOUD, assert_clean_success, assert_refused, plan, tree, write

from migration_pipeline.layouts.files import read_project
from migration_pipeline.lib.files import TEMP_MARK
from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.targets import load_target_settings

BUILD_IN = (
    "locations:\n  - location_name: etl\n    code_source:\n      package_name: etl\n"
    "    build:\n      directory: {directory}\n"
)


@pytest.fixture
def outside(tmp_path):
    """A directory next to the project, with a file the test watches."""
    return write(tmp_path / "outside", {"keep.txt": "outside the project\n"})


@pytest.fixture
def project(tmp_path):
    return write(tmp_path / "project", {"dagster_cloud.yaml": OK_CLOUD, "requirements.txt": ""})


def refused_everything_untouched(project, outside, *fragments, **kwargs):
    before, before_outside = tree(project), tree(outside)
    outcome = plan(project, **kwargs)
    assert_refused(outcome, *fragments)
    assert tree(project) == before
    assert tree(outside) == before_outside
    return outcome


def test_a_build_directory_linked_out_of_the_project(project, outside):
    (project / "dagster_cloud.yaml").write_text(BUILD_IN.format(directory="etl"))
    os.symlink(outside, project / "etl")
    refused_everything_untouched(
        project, outside, "etl/Dockerfile:", "symbolic link out of the project"
    )


@pytest.mark.parametrize("directory", ["../../etc", "../outside", "etl/../../x", "/etc", "/"])
def test_a_build_directory_that_climbs_out(project, outside, directory):
    (project / "dagster_cloud.yaml").write_text(BUILD_IN.format(directory=directory))
    refused_everything_untouched(
        project,
        outside,
        "dagster_cloud.yaml:6: locations[0].build.directory:",
        "leads out of the project",
    )


def test_a_backup_directory_linked_out_of_the_project(project, outside):
    os.symlink(outside, project / ".migration_backup")
    refused_everything_untouched(project, outside, ".migration_backup:", "leads out of the project")


def test_an_empty_project_dir_is_not_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path, {"dagster_cloud.yaml": OK_CLOUD})
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    assert_refused(plan(""), "--project-dir:", "is empty")
    assert_refused(plan("   "), "--project-dir:", "is empty")
    assert tree(tmp_path) == before


def test_dagster_cloud_yaml_linked_out_of_the_project_is_not_read(project, outside):
    (outside / "dagster_cloud.yaml").write_text(OK_CLOUD)
    (project / "dagster_cloud.yaml").unlink()
    os.symlink(outside / "dagster_cloud.yaml", project / "dagster_cloud.yaml")
    refused_everything_untouched(
        project, outside, "dagster_cloud.yaml:", "symbolic link out of the project"
    )


def test_a_dockerfile_linked_out_of_the_project_is_not_overwritten(project, outside):
    os.symlink(outside / "keep.txt", project / "Dockerfile")
    refused_everything_untouched(project, outside, "Dockerfile:", "symbolic link out")


def test_a_dockerignore_linked_out_of_the_project(project, outside):
    os.symlink(outside / "keep.txt", project / ".dockerignore")
    refused_everything_untouched(project, outside, ".dockerignore:", "symbolic link out")


def test_a_workflow_directory_linked_out_of_the_project(project, outside):
    (project / ".github").mkdir()
    os.symlink(outside, project / ".github" / "workflows")
    (outside / "deploy.yml").write_text(
        "jobs:\n  d:\n    steps:\n      - uses: dagster-io/dagster-cloud-action/actions/"
        "serverless_prod_deploy@v0.1\n"
    )
    before_outside = tree(outside)
    outcome = plan(project)  # the linked workflows are not read, so not replaced either
    assert_clean_success(outcome)
    assert tree(outside) == before_outside


def test_links_that_stay_inside_the_project_are_fine(project, outside):
    (project / "dagster_cloud.yaml").write_text(BUILD_IN.format(directory="etl"))
    write(project, {"real_etl/requirements.txt": "dagster\n"})
    os.symlink("real_etl", project / "etl")
    outcome = plan(project)
    assert_clean_success(outcome)
    assert (project / "real_etl" / "Dockerfile").is_file()  # written through the inside link


def test_a_path_that_wanders_but_stays_inside_is_fine(project, outside):
    (project / "dagster_cloud.yaml").write_text(BUILD_IN.format(directory="a/../etl"))
    write(project, {"etl/requirements.txt": "dagster\n"})
    assert_clean_success(plan(project))
    assert (project / "etl" / "Dockerfile").is_file()


def test_a_link_made_after_the_plan_is_refused_at_apply(project, outside):
    """Between the plan and the apply, a target becomes a link out: apply checks again."""
    made = make_plan(
        read_project(project),
        "kubernetes",
        load_target_settings("kubernetes", registry="ghcr.io/acme"),
    )
    os.symlink(outside / "keep.txt", project / "Dockerfile")
    before, before_outside = tree(project), tree(outside)
    from migration_pipeline.lib.problems import InvalidInput

    with pytest.raises(InvalidInput, match="Dockerfile: leads out of the project"):
        apply_plan(made, project)
    assert tree(project) == before and tree(outside) == before_outside


# -- what the product writes, locks, chmods and cleans beyond the planned files -----------------


def test_a_lock_file_linked_out_of_the_project_is_not_truncated(project, outside):
    os.symlink(outside / "keep.txt", project / ".migration_pipeline.lock")
    refused_everything_untouched(
        project, outside, ".migration_pipeline.lock:", "leads out of the project"
    )


def test_a_dangling_lock_link_is_refused_not_created_through(project, outside):
    os.symlink(outside / "made-by-the-lock", project / ".migration_pipeline.lock")
    refused_everything_untouched(project, outside, ".migration_pipeline.lock:")
    assert not (outside / "made-by-the-lock").exists()


@pytest.mark.parametrize("linked", ["dagster_cloud_agent", "dagster_cloud_agent/prod"])
def test_an_agent_directory_linked_out_of_the_project_gets_no_file(project, outside, linked):
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.applied import AppliedProject

    (project / linked).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, project / linked)
    applied = AppliedProject(str(project), "local", "dagster_cloud.yaml", {}, (), {})
    before = tree(outside)
    with pytest.raises(InvalidInput) as refused:
        applied.agent_dir("prod")
    assert str(refused.value).startswith("dagster_cloud_agent/prod: leads out of the project")
    assert tree(outside) == before


def test_stale_temporaries_are_never_cleaned_through_a_backup_link(tmp_path, outside):
    """A plan with nothing to back up still cleans this tool's stale temporary files: never in a
    .migration_backup that leads out of the project."""
    stale = outside / f".keep.txt{TEMP_MARK}999999-dead"
    stale.write_text("looks like ours, is not in the project\n")
    project = write(
        tmp_path / "shop",
        {
            "pyproject.toml": '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\n'
            'root_module = "shop"\ncode_location_name = "shop"\n',
            "src/shop/__init__.py": "",
        },
    )
    os.symlink(outside, project / ".migration_backup")
    settings = load_target_settings("local", "executable_path: /opt/venv/bin/python\n")
    plan = make_plan(read_project(project), "local", settings)
    apply_plan(plan, project)
    assert stale.exists()


def test_an_install_script_linked_out_is_replaced_not_chmodded_through(tmp_path, outside):
    from migration_pipeline.lib.files import write_if_changed
    from migration_pipeline.targets.local import RUN_AGENT_SH

    script = outside / "run-agent.sh"
    script.write_text(RUN_AGENT_SH)  # the very text, so only a chmod would be left to do
    script.chmod(0o644)
    link = tmp_path / "run-agent.sh"
    os.symlink(script, link)
    assert write_if_changed(link, RUN_AGENT_SH, 0o755)
    assert not link.is_symlink() and oct(link.stat().st_mode & 0o777) == "0o755"
    assert oct(script.stat().st_mode & 0o777) == "0o644"


def test_a_token_file_linked_out_is_replaced_and_the_token_stays_inside(tmp_path, outside):
    from pydantic import SecretStr

    from migration_pipeline.agent.token import store_agent_token

    agent_dir = tmp_path / "dagster_cloud_agent" / "prod"
    agent_dir.mkdir(parents=True)
    os.symlink(outside / "keep.txt", agent_dir / "agent-token.env")
    token = "agent:acme:" + "e" * 32
    stored = store_agent_token("env_file", SecretStr(token), agent_dir, "prod")
    assert not Path(stored.reference).is_symlink()
    assert token in Path(stored.reference).read_text()
    assert (outside / "keep.txt").read_text() == "outside the project\n"


def test_a_link_planted_at_the_moment_of_the_exchange_is_put_back_untouched(
    project, outside, monkeypatch
):
    # After every check, just before the exchange, dagster_cloud.yaml becomes a link out: the
    # exchange moves the link itself, what came out is not what was planned over, the link is
    # put back; nothing outside is opened for writing.
    from migration_pipeline.plan import apply

    real_swap = apply.swap_files

    def swap_files(first, second):
        if second.name == "dagster_cloud.yaml" and not second.is_symlink():
            second.unlink()
            os.symlink(outside / "keep.txt", second)
        return real_swap(first, second)

    monkeypatch.setattr(apply, "swap_files", swap_files)
    before_outside = tree(outside)
    outcome = plan(project)
    assert_refused(outcome, "dagster_cloud.yaml changed while the apply ran", code=1)
    assert (project / "dagster_cloud.yaml").is_symlink()
    assert tree(outside) == before_outside
    assert not list(project.rglob(f"*{TEMP_MARK}*"))


def test_a_link_planted_where_the_roll_back_removes_a_new_file_is_kept(
    project, outside, monkeypatch
):
    # The Dockerfile is in place; it becomes a link out; the next file fails: the roll-back
    # moves the link aside, sees it is not what it wrote, and puts it back.
    from migration_pipeline.plan import apply

    real_new, calls = apply.rename_new, []

    def rename_new(source, target):
        calls.append(target)
        if len(calls) == 2:
            (project / "Dockerfile").unlink()
            os.symlink(outside / "keep.txt", project / "Dockerfile")
            raise OSError(28, "No space left on device", str(target))
        real_new(source, target)

    monkeypatch.setattr(apply, "rename_new", rename_new)
    before_outside = tree(outside)
    outcome = plan(project)
    assert_refused(
        outcome,
        "NOT removed: Dockerfile (changed since this apply wrote it; it was new): left as it is",
        code=1,
    )
    assert (project / "Dockerfile").is_symlink()
    assert tree(outside) == before_outside
