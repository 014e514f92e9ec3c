"""Issue 20, class 8: what the user can act on gets a message naming the file and what to do
(exit 2, or 1 for an apply that stopped), never "unexpected error" or a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.hostile import (
    OK_CLOUD,
    assert_clean_success,
    assert_refused,
    plan,
    plan_in_subprocess,
    tree,
    write,
)

from migration_pipeline.images.builders import BuildError
from migration_pipeline.images.publish import content_hash
from migration_pipeline.plan.apply import LOCK_FILE

BUILD_ETL = OK_CLOUD + "    build:\n      directory: etl\n"


@pytest.fixture
def project(tmp_path):
    return write(tmp_path / "project", {"dagster_cloud.yaml": OK_CLOUD, "requirements.txt": ""})


@pytest.fixture
def deep():
    """Make `root/d/d/.../d`, `levels` deep (level by level: os.makedirs recurses), and remove
    it afterwards bottom-up (pytest's own clean-up, shutil.rmtree, recurses too)."""
    made: list[Path] = []

    def make(root: Path, levels: int) -> Path:
        here = root
        for _ in range(levels):
            here = here / "d"
            here.mkdir()
            made.append(here)
        return here

    yield make
    for directory in reversed(made):
        for entry in directory.iterdir():
            if not entry.is_dir() or entry.is_symlink():
                entry.unlink()
        directory.rmdir()


# -- symbolic link loops ----------------------------------------------------------------------


def test_a_symlink_loop_elsewhere_in_the_project_is_passed_over(project):
    os.symlink("b", project / "a")
    os.symlink("a", project / "b")
    os.symlink("loop", project / "loop")
    assert_clean_success(plan(project))


def test_a_symlink_loop_at_dagster_cloud_yaml_is_named(tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    os.symlink("dagster_cloud.yaml", project / "dagster_cloud.yaml")
    assert_refused(
        plan(project), "dagster_cloud.yaml: is a symbolic link that leads nowhere (a loop)"
    )


@pytest.mark.parametrize("where", ["etl", "etl/Dockerfile"])
def test_a_symlink_loop_where_the_plan_writes_is_refused_with_what_to_do(project, where):
    (project / "dagster_cloud.yaml").write_text(BUILD_ETL)
    if where != "etl":
        (project / "etl").mkdir()
    os.symlink(Path(where).name, project / where)
    before = tree(project)
    assert_refused(plan(project), f"{where}, a symbolic link that leads nowhere", "remove the link")
    assert tree(project) == before


def test_a_project_directory_that_is_a_symlink_loop(tmp_path):
    os.symlink("loop", tmp_path / "loop")
    assert_refused(plan(tmp_path / "loop"), "loop: is a symbolic link that leads nowhere")


# -- odd project directories and trees --------------------------------------------------------


def test_proc_as_the_project_directory_is_not_a_project():
    outcome = plan_in_subprocess("/proc", timeout=120)
    assert_refused(
        outcome, "/proc: has no dagster_cloud.yaml at its top", "is this the repository?"
    )


def test_a_tree_1500_directories_deep_is_read_down_to_a_limit_with_a_warning(project, deep):
    bottom = deep(project, 1500)
    (bottom / "definitions.py").write_text("import dagster\n")
    outcome = plan(project, apply=False)
    assert_clean_success(outcome)
    assert "is 100 directories deep: what is below it was not read" in outcome.out


# -- the lock file and the directory it lives in ----------------------------------------------


def test_a_lock_file_that_is_a_fifo_is_named_and_kept(project):
    os.mkfifo(project / LOCK_FILE)
    outcome = plan(project)
    assert_refused(outcome, f"{LOCK_FILE}: is a FIFO (named pipe), where this tool keeps its lock")
    assert (project / LOCK_FILE).exists()  # the user's FIFO: not removed
    assert not (project / "Dockerfile").exists()


def test_a_lock_file_that_is_a_directory_is_named(project):
    (project / LOCK_FILE).mkdir()
    assert_refused(plan(project), f"{LOCK_FILE}: is a directory where a file is needed")


def chattr(flag: str, path: Path) -> None:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} is not possible here: {done.stderr.strip()}")


def test_an_immutable_project_directory_says_so(project):
    chattr("+i", project)
    try:
        before = tree(project)
        outcome = plan(project)
        assert tree(project) == before
    finally:
        chattr("-i", project)
    assert_refused(
        outcome, f"{LOCK_FILE}: cannot be created (Operation not permitted)", "lsattr -d"
    )


def test_an_immutable_file_stops_the_apply_with_what_to_do(project):
    chattr("+i", project / "dagster_cloud.yaml")
    try:
        outcome = plan(project)
    finally:
        chattr("-i", project / "dagster_cloud.yaml")
    assert_refused(
        outcome,
        "could not write (dagster_cloud.yaml): Operation not permitted; is the file or its "
        "directory immutable (`lsattr`)?",
        code=1,
    )
    assert "Every file is as it was before this apply." in outcome.err
    assert not (project / "Dockerfile").exists()


# -- YAML tags --------------------------------------------------------------------------------

TAGGED = [
    # (the dagster_cloud.yaml tail, its line, the key path, the tag)
    (
        "    container_context:\n      docker:\n        container_kwargs:\n"
        "          labels: !secret {team: data}\n",
        8,
        "locations[0].container_context.docker.container_kwargs.labels",
        "!secret",
    ),
    (
        "    container_context:\n      docker:\n        container_kwargs: "
        "!!python/object/apply:os.system [id]\n",
        7,
        "locations[0].container_context.docker.container_kwargs",
        "!!python/object/apply:os.system",
    ),
    ("    working_directory: !env WORKDIR\n", 5, "locations[0].working_directory", "!env"),
    ("    image: !include image.txt\n", 5, "locations[0].image", "!include"),
]


@pytest.mark.parametrize("tail,line,path,tag", TAGGED)
def test_a_custom_yaml_tag_is_named_with_its_line_and_key(project, tail, line, path, tag):
    (project / "dagster_cloud.yaml").write_text(OK_CLOUD + tail)
    before = tree(project)
    assert_refused(
        plan(project, target="docker", registry="localhost:5000/acme"),
        f"dagster_cloud.yaml:{line}: {path}: has the YAML tag {tag}",
        "write the value itself, without the tag",
    )
    assert tree(project) == before


def test_a_tag_in_the_settings_file_is_named(project, tmp_path):
    settings = tmp_path / "docker.yaml"
    settings.write_text("container_kwargs:\n  environment: !vault secret/data/app\n")
    assert_refused(
        plan(project, "--settings", str(settings), target="docker", registry="localhost:5000/a"),
        f"{settings}:2: container_kwargs.environment: has the YAML tag !vault",
    )


def test_binary_and_set_values_are_named(project):
    (project / "dagster_cloud.yaml").write_text(OK_CLOUD + "    image: !!binary aGVsbG8=\n")
    assert_refused(plan(project), "locations[0].image: is an explicit YAML type")


def test_the_plain_tags_are_read_as_their_values(project):
    (project / "dagster_cloud.yaml").write_text(
        OK_CLOUD.replace("package_name: ok", "package_name: !!str ok")
    )
    assert_clean_success(plan(project))


def test_gitlab_reference_tags_in_the_old_ci_do_not_stop_the_plan(project):
    write(
        project,
        {
            ".gitlab-ci.yml": ".setup:\n  script: [echo hi]\ndeploy:\n  variables:\n"
            "    DAGSTER_CLOUD_URL: https://acme.dagster.cloud\n"
            "  script:\n    - !reference [.setup, script]\n    - dagster-cloud serverless deploy\n"
        },
    )
    outcome = plan(project, apply=False)
    assert_clean_success(outcome)


# -- the image step's build context -----------------------------------------------------------


def test_the_build_context_hash_walks_any_depth_and_never_follows_a_link(tmp_path, deep):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("one")
    os.symlink(outside, context / "link")
    os.symlink("..", context / "up")  # a loop through the context
    (deep(context, 1500) / "x.py").write_text("1\n")
    first = content_hash(context, context / "Dockerfile")
    outside.write_text("two")  # the link's target changes; what the builder sends does not
    assert content_hash(context, context / "Dockerfile") == first
    (context / "x.py").write_text("new\n")
    assert content_hash(context, context / "Dockerfile") != first


def test_a_dockerignore_that_is_a_fifo_is_a_build_error_not_a_hang(tmp_path):
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    os.mkfifo(context / ".dockerignore")
    with pytest.raises(BuildError, match=r"\.dockerignore: is not a regular file"):
        content_hash(context, context / "Dockerfile")
