"""Issue 20, class 7: a settings or inventory value of the wrong type is refused with the file,
the line (YAML), the key path, the type expected and the value found; nothing of the wrong type
is read as something else (`"false"` as true, `true` as 1, `2.0` as 2)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import client_for, make_scenario
from support.hostile import OK_CLOUD, assert_clean_success, assert_refused, plan, tree, write
from support.inventory import inventory_of

from migration_pipeline.inventory.core import inventory_from, take_inventory
from migration_pipeline.lib.problems import InvalidInput
from migration_pipeline.targets import load_target_settings


@pytest.fixture
def project(tmp_path):
    return write(tmp_path / "project", {"dagster_cloud.yaml": OK_CLOUD, "requirements.txt": ""})


SETTINGS = [
    # (target, settings text, the line, what the message says)
    (
        "kubernetes",
        'insecure_registry: "false"\n',
        1,
        "insecure_registry: expected true or false, "
        "got the string 'false' (write true or false, without quotes)",
    ),
    (
        "kubernetes",
        "prove_images: 'no'\n",
        1,
        "prove_images: expected true or false, got the string 'no'",
    ),
    (
        "kubernetes",
        "# ok\nremove_non_isolated_runs: 1\n",
        2,
        "remove_non_isolated_runs: expected true or false, got 1 (a number)",
    ),
    (
        "kubernetes",
        "max_parallel_builds: true\n",
        1,
        "max_parallel_builds: expected a whole number, got true (a boolean)",
    ),
    (
        "kubernetes",
        "max_parallel_builds: 2.5\n",
        1,
        "max_parallel_builds: expected a whole number, got 2.5 (a number)",
    ),
    (
        "kubernetes",
        'max_parallel_builds: "4"\n',
        1,
        "max_parallel_builds: expected a whole number, got the string '4'",
    ),
    (
        "kubernetes",
        "python_version: 3.10\n",
        1,
        "python_version: expected a string, got 3.1 (a number) (quote it to make it a string)",
    ),
    (
        "kubernetes",
        "env_secrets: db-credentials\n",
        1,
        "env_secrets: expected a list, got the string 'db-credentials'",
    ),
    (
        "kubernetes",
        "resources:\n  limits: [memory, 2Gi]\n",
        2,
        "resources.limits: expected a mapping, got a list",
    ),
    (
        "kubernetes",
        "resources:\n  limits:\n    memory: true\n",
        3,
        "resources.limits.memory: expected a string, got true (a boolean)",
    ),
    (
        "ecs",
        "secrets:\n  - name: DB\n    valueFrom: 7\n",
        3,
        "secrets[0].valueFrom: expected a string, got 7 (a number)",
    ),
    ("ecs", "cpu: false\n", 1, "cpu: expected a string, got false (a boolean)"),
    ("docker", "container_kwargs: [1, 2]\n", 1, "container_kwargs: expected a mapping, got a list"),
    ("docker", "networks: {a: b}\n", 1, "networks: expected a list, got a mapping"),
    (
        "kubernetes",
        "deployment_order: prod\n",
        1,
        "deployment_order: expected a list, got the string 'prod'",
    ),
]


@pytest.mark.parametrize("target,text,line,message", SETTINGS)
def test_a_setting_of_the_wrong_type_is_refused_with_its_line_and_types(
    project, tmp_path, target, text, line, message
):
    settings = tmp_path / "settings.yaml"
    settings.write_text(text)
    before = tree(project)
    registry = "acme.azurecr.io" if target == "azure" else "ghcr.io/acme"
    outcome = plan(project, "--settings", str(settings), target=target, registry=registry)
    assert_refused(outcome, f"{settings}:{line}: {message}")
    assert tree(project) == before


@pytest.mark.parametrize(
    "target,text,check",
    [
        # What Kubernetes and ECS themselves read as numbers is taken as the number's text.
        ("kubernetes", "resources: {limits: {cpu: 1}, requests: {cpu: 0.5}}", "resources"),
        ("ecs", "cpu: 256\nmemory: 512\n", "cpu"),
        ("kubernetes", "insecure_registry: false\nmax_parallel_builds: 4\n", "max_parallel_builds"),
    ],
)
def test_numbers_where_the_platform_reads_numbers_are_taken(target, text, check):
    settings = load_target_settings(target, text, registry="ghcr.io/acme")
    value = getattr(settings, check)
    if check == "resources":
        assert value.limits == {"cpu": "1"} and value.requests == {"cpu": "0.5"}
    elif check == "cpu":
        assert (settings.cpu, settings.memory) == ("256", "512")
    else:
        assert value == 4 and settings.insecure_registry is False


INVENTORY = [
    (
        {"uses_branch_deployments": "false"},
        "uses_branch_deployments: expected true or false, got the string 'false'",
    ),
    (
        {"settings": {"non_isolated_runs": {"enabled": "false"}}},
        "settings.non_isolated_runs.enabled: expected true or false, got the string 'false'",
    ),
    (
        {
            "settings": {
                "non_isolated_runs": {"enabled": True, "max_concurrent_non_isolated_runs": "2"}
            }
        },
        "settings.non_isolated_runs.max_concurrent_non_isolated_runs: expected a whole "
        "number, got the string '2'",
    ),
    (
        {"settings": {"non_isolated_runs": "on"}},
        "settings.non_isolated_runs: expected a mapping, got the string 'on'",
    ),
    ({"deployment_id": "1"}, "deployment_id: expected a whole number, got the string '1'"),
    ({"deployment_id": True}, "deployment_id: expected a whole number, got true (a boolean)"),
    (
        {"run_counts": {"SUCCESS": -5}},
        "run_counts.SUCCESS: expected a number greater than or equal to 0, got -5 (a number)",
    ),
    ({"run_counts": {"SUCCESS": 2.5}}, "run_counts.SUCCESS: expected a whole number, got 2.5"),
    ({"locations": [{"name": "a", "load_status": "LOADED"}]}, "locations[0].error: is missing"),
    ({"locations": ["a"]}, "locations[0]: expected a mapping, got the string 'a'"),
    (
        {"locations_document": {"locations": "analytics"}},
        "locations_document.locations: expected a list, got the string 'analytics'",
    ),
    (
        {"agents": [{"id": "a", "label": None, "status": "RUNNING", "last_heartbeat_time": "now"}]},
        "agents[0].last_heartbeat_time: expected a number, got the string 'now'",
    ),
    (
        {"instigators": [{"location": "a", "name": 3, "kind": "schedule", "status": "RUNNING"}]},
        "instigators[0].name: expected a string, got 3 (a number)",
    ),
    ({"settings": []}, "settings: expected a mapping, got a list"),
    ({"inventory_version": 2}, "inventory_version: unknown key: this is not an inventory"),
]


@pytest.mark.parametrize("change,message", INVENTORY)
def test_an_inventory_value_of_the_wrong_type_is_refused_with_its_key_path(
    project, tmp_path, change, message
):
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({**dataclasses.asdict(inventory_of()), **change}))
    before = tree(project)
    assert_refused(plan(project, "--inventory", str(path)), f"{path}: {message}")
    assert tree(project) == before


def test_a_whole_inventory_of_the_right_types_is_read(project, tmp_path):
    path = tmp_path / "inventory.json"
    raw = dataclasses.asdict(
        inventory_of(
            settings={"non_isolated_runs": {"enabled": False}, "run_queue": {"x": [1]}},
            run_counts={"SUCCESS": 3},
            uses_branch_deployments=True,
        )
    )
    path.write_text(json.dumps(raw))
    assert_clean_success(plan(project, "--inventory", str(path), apply=False))
    read = inventory_from(raw, str(path))
    assert read.settings == raw["settings"]  # keys the migration does not read are kept whole


def test_dagster_plus_answering_a_setting_of_the_wrong_type_is_refused(start_sandbox):
    # The settings document as stored: a string where Dagster+ keeps a boolean.
    scenario = make_scenario()
    spec = scenario.deployments[0]
    spec["settings"] = {"non_isolated_runs": {"enabled": "false"}}
    sandbox = start_sandbox(scenario)
    with client_for(sandbox) as client, pytest.raises(InvalidInput) as refused:
        take_inventory(client)
    assert "Dagster+'s answers" in str(refused.value)
    assert "settings.non_isolated_runs.enabled: expected true or false, got the string 'false'" in (
        str(refused.value)
    )
