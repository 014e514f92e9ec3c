"""Hostile input, values Dagster+, Docker or Kubernetes would reject later: refused at the plan,
with the file, the line and what the value must look like, instead of failing at the deploy,
the image build or the agent's install."""

from __future__ import annotations

import json

import pytest
from support.hostile import (
    OK_CLOUD,
    assert_clean_success,
    assert_refused,
    plan,
    plan_with_settings,
    tree,
    write,
)


@pytest.fixture
def project(tmp_path):
    return write(tmp_path / "project", {"dagster_cloud.yaml": OK_CLOUD, "requirements.txt": ""})


@pytest.mark.parametrize(
    "name",
    ["team/etl", "my etl", "x" * 200, "", "-etl", ".etl", "etl:v2", "ètl", "etl*"],
    ids=[
        "slash",
        "space",
        "200_characters",
        "empty",
        "leading_dash",
        "leading_dot",
        "colon",
        "non_ascii",
        "star",
    ],
)
def test_a_location_name_docker_or_dagster_would_refuse(project, name):
    (project / "dagster_cloud.yaml").write_text(
        f"locations:\n  - location_name: {json.dumps(name)}\n"
        "    code_source:\n      package_name: ok\n"
    )
    before = tree(project)
    assert_refused(plan(project), "dagster_cloud.yaml:2: locations[0].location_name:")
    assert tree(project) == before


def test_a_legacy_location_keyed_by_a_name_with_a_space(project):
    (project / "dagster_cloud.yaml").write_text("locations:\n  my etl:\n    package_name: ok\n")
    before = tree(project)
    assert_refused(plan(project), "dagster_cloud.yaml:2: locations.my etl:")
    assert tree(project) == before


@pytest.mark.parametrize("name", ["etl", "etl-2", "etl_2", "etl.v2", "E1", "x" * 63])
def test_names_that_every_tool_takes(project, name):
    (project / "dagster_cloud.yaml").write_text(
        f"locations:\n  - location_name: {name}\n    code_source:\n      package_name: ok\n"
    )
    assert_clean_success(plan(project))


@pytest.mark.parametrize(
    "target,settings,fragment",
    [
        ("kubernetes", "namespace: Data\n", "namespace:"),
        ("kubernetes", "namespace: data_team\n", "namespace:"),
        ("kubernetes", f"namespace: {'n' * 64}\n", "namespace:"),
        ("kubernetes", "namespace: -data\n", "namespace:"),
        ("kubernetes", "env_secrets: [Snowflake]\n", "env_secrets[0]:"),
        ("kubernetes", "image_pull_secrets: [regcred_1]\n", "image_pull_secrets[0]:"),
        ("kubernetes", "resources: {limits: {memory: lots}}\n", "resources.limits.memory:"),
        ("docker", 'networks: ["a b"]\n', "networks[0]:"),
        ("docker", 'networks: [""]\n', "networks[0]:"),
        ("docker", "agent_network: -x\n", "agent_network:"),
        ("ecs", "aws_region: US-EAST-1\n", "aws_region:"),
        ("ecs", "aws_region: mars-central-1a\n", "aws_region:"),
        ("ecs", "cpu: 256m\n", "cpu:"),
    ],
)
def test_a_setting_the_platform_would_refuse(project, tmp_path, target, settings, fragment):
    before = tree(project)
    outcome = plan_with_settings(project, tmp_path, settings, target, "localhost:5000/acme")
    assert_refused(outcome, "settings.yaml:", fragment)
    assert tree(project) == before


@pytest.mark.parametrize(
    "registry",
    [
        "evil.azurecr.io.attacker.example",
        "acme.azurecr.io",
        "azurecr.io/acme",
        "acmedata.azurecr.io.evil/x",
        "ghcr.io/acme",
    ],
)
def test_only_an_azure_container_registry_for_azure(project, registry):
    before = tree(project)
    assert_refused(plan(project, target="azure", registry=registry), "--registry:")
    assert tree(project) == before


def test_an_azure_container_registry_is_taken(project):
    assert_clean_success(plan(project, target="azure", registry="acmedata.azurecr.io/dagster"))


# -- two locations, one image (issue 20, class 4) ----------------------------------------------


def _cloud(*names: str) -> str:
    return "locations:\n" + "".join(
        f"  - location_name: {name}\n    code_source:\n      package_name: pkg{i}\n"
        for i, name in enumerate(names)
    )


@pytest.mark.parametrize(
    ("names", "layout"),
    [
        (("Analytics", "analytics"), "per_location"),  # the slug lowercases
        (("etl.", "etl"), "per_location"),  # and trims a trailing '.', '-' or '_'
        (("etl_", "etl-"), "per_location"),
        (("a" * 60 + "xyz", "a" * 60 + "uvw"), "shared"),  # the CI's tag keeps 60 characters
        (("Reports", "reports"), "shared"),
    ],
)
def test_two_locations_that_would_share_an_image_are_refused_with_both_names(
    tmp_path, names, layout
):
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    (tmp_path / "dagster_cloud.yaml").write_text(_cloud(*names))
    settings = load_target_settings(
        "kubernetes", f"image_layout: {layout}\n", registry="ghcr.io/acme"
    )
    with pytest.raises(InvalidInput) as refused:
        make_plan(read_project(tmp_path), "kubernetes", settings)
    message = str(refused.value)
    assert f"locations {names[0]!r} and {names[1]!r} would share one image" in message
    assert message.startswith("dagster_cloud.yaml:")


def test_distinct_names_in_a_shared_repository_are_fine(tmp_path):
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    (tmp_path / "dagster_cloud.yaml").write_text(_cloud("etl", "etl2", "a" * 59 + "b"))
    settings = load_target_settings("kubernetes", "image_layout: shared\n", registry="ghcr.io/a")
    plan = make_plan(read_project(tmp_path), "kubernetes", settings)
    assert set(plan.images.values()) == {"ghcr.io/a"}


def test_dg_projects_sharing_the_registry_their_build_yaml_names_are_fine(tmp_path):
    """dg pushes `{registry}:{location}-{id}`: one registry for a workspace is dg's own way."""
    from test_dg_projects import project_files, workspace

    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    root = tmp_path / "repo"
    files = {
        "dg.toml": workspace("a", "b"),
        "build.yaml": "registry: ghcr.io/acme/dagster\n",
        **project_files("a", "a"),
        **project_files("b", "b"),
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    settings = load_target_settings("kubernetes", "", registry="ghcr.io/other")
    plan = make_plan(read_project(root), "kubernetes", settings)
    assert plan.images == {"a": "ghcr.io/acme/dagster", "b": "ghcr.io/acme/dagster"}
