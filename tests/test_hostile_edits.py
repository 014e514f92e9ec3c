"""Hostile input, valid files the edit used to blame on the user: flow style anywhere, a key
left empty with a trailing comment, YAML 1.1 readings, and the legacy form as real repositories
have it (the old dagster-cloud-cicd-action's `locations.yaml`, hooli-data-eng-pipelines).
Each one is planned and applied, and the result is what `dagster-cloud ci` reads."""

from __future__ import annotations

import pytest
import yaml
from support.hostile import assert_clean_success, assert_refused, plan, tree, write

from migration_pipeline.cloud_yaml.edit import Edits, apply_edits
from migration_pipeline.cloud_yaml.model import load_cloud_yaml

REGISTRY = "ghcr.io/acme"


def read_as_dagster_cloud_ci(project) -> dict:
    """dagster_cloud.yaml as `dagster-cloud ci` reads it (PyYAML and the CLI's own model)."""
    from dagster_cloud_cli.config.models import load_dagster_cloud_yaml

    text = (project / "dagster_cloud.yaml").read_text()
    load_dagster_cloud_yaml(text)  # raises on anything the CLI would refuse
    return yaml.safe_load(text)


def locations(project) -> dict[str, dict]:
    return {loc["location_name"]: loc for loc in read_as_dagster_cloud_ci(project)["locations"]}


@pytest.mark.parametrize(
    "text",
    [
        "{locations: [{location_name: a, code_source: {package_name: a}}]}\n",
        "{locations: [{location_name: a, code_source: {package_name: a}},\n"
        "             {location_name: b, code_source: {package_name: b}}]}\n",
        "locations: [{location_name: a, code_source: {package_name: a}}]\n",
        "locations:\n  - {location_name: a, code_source: {package_name: a}}\n",
        "locations:\n  - location_name: a\n    code_source: {package_name: a}\n"
        "    build: {\n      directory: .,\n    }\n",
        "locations:\n  - location_name: a\n    code_source: {package_name: a}\n"
        "    build: {directory: ., registry: ghcr.io/mine/a}\n",
        "locations:\n  - location_name: a\n    code_source:\n      package_name: a\n"
        "    container_context: {k8s: {env_vars: [A=1]}}\n",
    ],
    ids=[
        "document_on_one_line",
        "document_over_two_lines",
        "locations_flow_list",
        "location_flow_map",
        "build_flow_over_lines",
        "build_flow_with_registry",
        "container_context_flow",
    ],
)
def test_flow_style_wherever_it_stands(tmp_path, text):
    project = write(tmp_path / "p", {"dagster_cloud.yaml": text, "requirements.txt": ""})
    assert_clean_success(plan(project, registry=REGISTRY))
    for name, location in locations(project).items():
        assert location["build"]["registry"] in (f"{REGISTRY}/{name}", "ghcr.io/mine/a")
        assert location["container_context"]["k8s"]["namespace"] == "dagster-cloud"
    assert_clean_success(plan(project))  # and a second apply changes nothing
    assert "Nothing to write" in plan(project).out


def test_an_empty_registry_with_a_trailing_comment_is_filled_in_place(tmp_path):
    text = (
        "locations:\n  - location_name: a\n    code_source:\n      package_name: a\n"
        "    build:\n      directory: .\n      registry:   # filled in by the CI\n"
    )
    project = write(tmp_path / "p", {"dagster_cloud.yaml": text, "requirements.txt": ""})
    assert_clean_success(plan(project))
    written = (project / "dagster_cloud.yaml").read_text()
    assert "      registry: ghcr.io/acme/a   # filled in by the CI\n" in written
    assert locations(project)["a"]["build"]["registry"] == "ghcr.io/acme/a"


def test_an_empty_build_with_a_trailing_comment(tmp_path):
    text = (
        "locations:\n  - location_name: a\n    code_source:\n      package_name: a\n"
        "    build:   # set below\n"
    )
    project = write(tmp_path / "p", {"dagster_cloud.yaml": text, "requirements.txt": ""})
    assert_clean_success(plan(project))
    assert "    build:   # set below\n" in (project / "dagster_cloud.yaml").read_text()
    assert locations(project)["a"]["build"] == {"registry": "ghcr.io/acme/a"}


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n"])
def test_a_location_named_like_a_yaml_1_1_boolean(tmp_path, word):
    text = f"locations:\n  - location_name: {word}\n    code_source:\n      package_name: a\n"
    project = write(tmp_path / "p", {"dagster_cloud.yaml": text})
    before = tree(project)
    outcome = plan(project)
    if word in ("y", "n"):  # PyYAML reads these as strings: nothing to quote
        assert_clean_success(outcome)
        return
    assert_refused(
        outcome, "dagster_cloud.yaml:2: locations[0].location_name:", "YAML 1.1", "quote it"
    )
    assert tree(project) == before


def test_a_quoted_yes_is_a_name(tmp_path):
    text = 'locations:\n  - location_name: "yes"\n    code_source:\n      package_name: a\n'
    project = write(tmp_path / "p", {"dagster_cloud.yaml": text})
    assert_clean_success(plan(project))
    assert list(locations(project)) == ["yes"]


# The old dagster-cloud-cicd-action's examples and hooli-data-eng-pipelines, as they were.
HOOLI = (
    "locations:\n  data-science-pipeline:\n    build: .\n"
    "    registry: 764506304434.dkr.ecr.us-west-2.amazonaws.com/hooli-data-science-prod\n"
    "    package_name: hooli_data_science\n"
)
ACTION_MULTIPLE = (
    "locations:\n  github_action_demo_foo:\n    build: ./foo\n"
    "    registry: 764506304434.dkr.ecr.us-west-2.amazonaws.com/github-action-demo-foo\n"
    "    python_file: repo.py\n  github_action_demo_bar:\n    build: ./bar\n"
    "    registry: 764506304434.dkr.ecr.us-west-2.amazonaws.com/github-action-demo-bar\n"
    "    python_file: repo.py"
)
ACTION_TARGET = (
    "locations:\n  github_action_demo_target_stage:\n    build: .\n    target: first-stage\n"
    "    registry: 764506304434.dkr.ecr.us-west-2.amazonaws.com/github-action-demo-build-target\n"
    "    python_file: repo.py"
)
ACTION_DOCKERFILE = (
    "locations:\n  github_action_demo_custom_dockerfile_name:\n    build: .\n"
    "    dockerfile: CustomDockerfileName\n"
    "    registry: 764506304434.dkr.ecr.us-west-2.amazonaws.com/github-action-demo-minimal\n"
    "    python_file: repo.py"
)
ACTION_CONTEXT = (
    "locations:\n  github_action_demo_container_context:\n    build: .\n"
    "    registry: 764506304434.dkr.ecr.us-west-2.amazonaws.com/github-action-demo-container-"
    "context\n    python_file: repo.py\n    container_context:\n      docker:\n"
    "        env_vars:\n          - BAR_ENV_VAR=bar\n"
)


@pytest.mark.parametrize(
    "name,text,target,extra",
    [
        ("hooli", HOOLI, "ecs", {"requirements.txt": "dagster\n"}),
        ("multiple_locations", ACTION_MULTIPLE, "ecs", {"foo/setup.py": "", "bar/repo.py": ""}),
        ("target_stage", ACTION_TARGET, "ecs", {"Dockerfile": "FROM python:3.11 AS first-stage\n"}),
        ("custom_dockerfile", ACTION_DOCKERFILE, "ecs", {"CustomDockerfileName": "FROM x\n"}),
        ("container_context", ACTION_CONTEXT, "docker", {}),
    ],
)
def test_the_old_actions_locations_yaml_is_converted(tmp_path, name, text, target, extra):
    project = write(tmp_path / name, {"locations.yaml": text, **extra})
    original = load_cloud_yaml(text, "locations.yaml")
    outcome = plan(
        project, target=target, registry="123456789012.dkr.ecr.us-east-1.amazonaws.com/x"
    )
    assert_clean_success(outcome)
    assert (project / "locations.yaml").read_text() == text  # left for the user to delete
    converted = locations(project)
    assert sorted(converted) == sorted(ref.name for ref in original.locations)
    for ref in original.locations:
        legacy = original.source.node(ref.path)
        location = converted[ref.name]
        # Its registry and build directory are the ones it had.
        assert location["build"]["registry"] == legacy["registry"]
        assert location["build"]["directory"] == legacy["build"]
        assert "dockerfile" not in location and "target" not in location
    if name == "custom_dockerfile":
        assert not (project / "Dockerfile").exists()  # built from the user's own
        assert "built from CustomDockerfileName" in outcome.out
    if name == "target_stage":
        assert "stage first-stage" in outcome.out


def test_the_old_actions_options_reach_the_ci_and_the_image_build(tmp_path):
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    workflow = (
        "on: {push: {branches: [main]}}\njobs:\n  deploy:\n    steps:\n"
        "      - uses: dagster-io/dagster-cloud-action/actions/serverless_prod_deploy@v0.1\n"
    )
    project = write(
        tmp_path / "p",
        {
            "locations.yaml": ACTION_TARGET.replace(
                "    target:", "    dockerfile: Other\n    target:"
            ),
            "Other": "FROM python:3.11 AS first-stage\n",
            ".github/workflows/deploy.yml": workflow,
        },
    )
    made = make_plan(
        read_project(project),
        "ecs",
        load_target_settings("ecs", registry="123456789012.dkr.ecr.us-east-1.amazonaws.com/x"),
    )
    location = "github_action_demo_target_stage"
    assert made.image_options == {location: {"dockerfile": "Other", "target": "first-stage"}}
    ci = yaml.safe_load(next(f.new for f in made.files if f.path.startswith(".github/")))
    steps = ci["jobs"]["dagster_plus_deploy"]["steps"]
    build = next(s for s in steps if s.get("name", "").startswith("Build"))
    assert build["with"]["file"] == "Other" and build["with"]["target"] == "first-stage"


@pytest.mark.parametrize("dockerfile", ["../../etc/passwd", "/etc/passwd"])
def test_an_old_action_dockerfile_outside_the_project_is_refused(tmp_path, dockerfile):
    project = write(
        tmp_path / "p",
        {"locations.yaml": ACTION_DOCKERFILE.replace("CustomDockerfileName", dockerfile)},
    )
    before = tree(project)
    assert_refused(plan(project, target="ecs"), "locations.yaml:4:", "not a Dockerfile inside")
    assert tree(project) == before


def test_a_layout_the_tool_cannot_edit_says_so_and_shows_the_lines():
    text = (
        "locations:\n  - location_name: a\n    code_source: {package_name: a,\n"
        "      # a comment inside the flow mapping\n    }\n"
    )
    cloud = load_cloud_yaml(text)
    edits = Edits()
    edits.add_entries(("locations", 0, "code_source"), {"x": 1})
    from migration_pipeline.lib.problems import InvalidInput

    with pytest.raises(InvalidInput) as raised:
        apply_edits(cloud.source, edits)
    message = str(raised.value)
    assert "migration-pipeline cannot edit this layout" in message
    assert "your file is valid" in message
    assert "3 |     code_source: {package_name: a," in message


def test_what_held_before_still_holds_a_bom_and_crlf_are_kept(tmp_path):
    text = (
        "\ufefflocations:\r\n  - location_name: a\r\n    code_source:\r\n      package_name: a\r\n"
    )
    project = write(tmp_path / "p", {"dagster_cloud.yaml": ""})
    (project / "dagster_cloud.yaml").write_bytes(text.encode())
    assert_clean_success(plan(project, target="local"))
    written = (project / "dagster_cloud.yaml").read_bytes()
    assert written.startswith(b"\xef\xbb\xbflocations:\r\n") and b"\n" not in written.replace(
        b"\r\n", b""
    )


@pytest.mark.parametrize(
    "tagged",
    ['!!python/object/apply:os.system ["touch /tmp/pwned-by-yaml"]', "!!python/name:os.system"],
)
def test_what_held_before_still_holds_python_tags_are_refused(tmp_path, tagged):
    import os

    text = f"locations:\n  - location_name: {tagged}\n    code_source:\n      package_name: a\n"
    project = write(tmp_path / "p", {"dagster_cloud.yaml": text})
    before = tree(project)
    assert_refused(plan(project), "dagster_cloud.yaml:2:")
    assert tree(project) == before and not os.path.exists("/tmp/pwned-by-yaml")
