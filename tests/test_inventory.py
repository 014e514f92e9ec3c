"""The inventory asset, materialized on a real Dagster instance against the sandbox."""

from __future__ import annotations

import dagster as dg
from migration_env import run_job

from migration_pipeline.inventory.core import render_markdown
from migration_pipeline.inventory.defs import serverless_inventory
from migration_pipeline.resources import DagsterPlusResource


def resources_with(dagster_plus) -> dict:
    """The resources the inventory asset needs: Dagster+, and the records its value goes to."""
    from migration_pipeline.definitions import ASSET_VALUE_MODULES
    from migration_pipeline.records import RECORDS_IO_MANAGER, RecordsIOManager

    return {"dagster_plus": dagster_plus, RECORDS_IO_MANAGER: RecordsIOManager(ASSET_VALUE_MODULES)}


def test_inventory_job_records_the_deployment(plus_env):
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job("inventory", instance)
        assert result.success
        inventory = result.output_for_node("serverless_inventory")
        assert inventory.deployment == "prod" and inventory.agent_type == "SERVERLESS"
        assert inventory.run_total == 250
        assert [loc["name"] for loc in inventory.locations] == ["analytics", "ml_models"]
        assert all(loc["load_status"] == "LOADED" for loc in inventory.locations)
        assert inventory.settings["non_isolated_runs"] == {
            "enabled": True,
            "max_concurrent_non_isolated_runs": 1,
        }
        assert inventory.uses_branch_deployments is False
        assert {(i["name"], i["status"]) for i in inventory.instigators} >= {
            ("daily_refresh", "RUNNING"),
            ("weekly_rollup", "STOPPED"),
        }

        (materialization,) = result.asset_materializations_for_node("serverless_inventory")
        metadata = materialization.metadata
        assert metadata["run_count"].value == 250
        assert metadata["agent_type"].value == "SERVERLESS"
        assert metadata["non_isolated_runs"].value == {
            "enabled": True,
            "max_concurrent_non_isolated_runs": 1,
        }
        assert metadata["uses_branch_deployments"].value is False
        assert "| prod | 1 | SERVERLESS | ACTIVE | 250 | 2 | none |" in metadata["deployment"].value
        assert "| non_isolated_runs |" in metadata["deployment_settings"].value
        assert "| analytics | LOADED |" in metadata["code_locations"].value
        assert metadata["locations_document"].value == inventory.locations_document

        # The token is nowhere in what Dagster recorded.
        token = plus_env.token("admin")
        records = instance.all_logs(result.run_id)
        assert records and not any(token in str(r) for r in records)
        run = instance.get_run_by_id(result.run_id)
        assert token not in str(run.run_config)


def test_inventory_against_a_hybrid_deployment_without_agent(plus_env):
    plus_env.state.set_agent_type(plus_env.state.deployment("prod"), "HYBRID")
    resource = DagsterPlusResource(
        url=plus_env.url, deployment="prod", api_token=plus_env.token("viewer")
    )
    result = dg.materialize([serverless_inventory], resources=resources_with(resource))
    inventory = result.output_for_node("serverless_inventory")
    assert inventory.agent_type == "HYBRID"
    assert {loc["load_status"] for loc in inventory.locations} == {"LOADING"}
    assert "no schedules or sensors" in render_markdown(inventory)


def test_inventory_fails_clearly_and_at_once_with_a_bad_token(plus_env):
    resource = DagsterPlusResource(
        url=plus_env.url, deployment="prod", api_token="user:acme:" + "b" * 32
    )
    result = dg.materialize(
        [serverless_inventory], resources=resources_with(resource), raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "token was rejected" in str(failure.event_specific_data.error)
    # A rejected token is not worth the RetryPolicy's wait.
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_an_outage_longer_than_the_client_retries_is_retried_by_the_step(plus_env):
    resource = DagsterPlusResource(
        url=plus_env.url,
        deployment="prod",
        api_token=plus_env.token("admin"),
        backoff_seconds=0.01,
        max_attempts=2,
    )
    plus_env.faults.add(operation="deploymentByName", kind="http_503", count=2)
    result = dg.materialize([serverless_inventory], resources=resources_with(resource))
    assert result.success
    assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_transient_faults_do_not_fail_the_inventory(plus_env):
    plus_env.faults.add(operation="*", kind="http_503", rate=0.3)
    resource = DagsterPlusResource(
        url=plus_env.url,
        deployment="prod",
        api_token=plus_env.token("admin"),
        backoff_seconds=0.01,
        max_attempts=8,
    )
    result = dg.materialize([serverless_inventory], resources=resources_with(resource))
    assert result.success
    assert result.output_for_node("serverless_inventory").run_total == 250


def test_inventory_records_that_the_organization_uses_branch_deployments(plus_env):
    from conftest import client_for

    with client_for(plus_env) as admin:
        assert not admin.uses_branch_deployments()
        plus_env.state.upsert_branch_deployment(
            {"repoName": "acme/data", "branchName": "feature"},
            {"commitHash": "a", "timestamp": 1.0},
            plus_env.state.deployment("prod"),
        )
        assert admin.uses_branch_deployments()
    resource = DagsterPlusResource(
        url=plus_env.url, deployment="prod", api_token=plus_env.token("viewer")
    )
    result = dg.materialize([serverless_inventory], resources=resources_with(resource))
    inventory = result.output_for_node("serverless_inventory")
    assert inventory.uses_branch_deployments is True
    assert "| in use |" in render_markdown(inventory)


def test_the_organization_inventory_lists_every_full_deployment(plus_env):
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job("list_deployments", instance)
        partitions = instance.get_dynamic_partitions("deployments")
    organization = result.output_for_node("organization_inventory")
    assert partitions == ["prod", "staging"]
    assert [(d.name, d.agent_type, d.locations, d.runs) for d in organization.deployments] == [
        ("prod", "SERVERLESS", 2, 250),
        ("staging", "SERVERLESS", 0, 0),
    ]
    assert organization.to_migrate == ["prod", "staging"]
    (materialization,) = result.asset_materializations_for_node("organization_inventory")
    assert materialization.metadata["to_migrate"].value == ["prod", "staging"]
    assert "| prod | " in materialization.metadata["table"].value
    assert materialization.metadata["partitions_added"].value == ["prod", "staging"]
    assert materialization.metadata["progress"].value == {
        "prod": "not planned",
        "staging": "not planned",
    }
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "every_partition_is_a_full_deployment" and check.passed


def test_a_deployment_already_on_hybrid_is_reported_and_skipped(start_sandbox, monkeypatch):
    from conftest import client_for, make_scenario

    from dagster_plus_sandbox.scenario import DEFAULT_SCENARIO
    from migration_pipeline.inventory.organization import (
        render_deployments,
        take_organization_inventory,
    )

    deployments = [dict(d) for d in DEFAULT_SCENARIO["deployments"]]
    deployments[1]["agent_type"] = "HYBRID"
    deployments.append(
        {
            "name": "a" * 40,
            "type": "BRANCH",
            "parent": "prod",
            "branch": {"repoName": "acme/data", "branchName": "x", "pullRequestStatus": "OPEN"},
        }
    )
    sandbox = start_sandbox(make_scenario(deployments=deployments))
    with client_for(sandbox) as client:
        organization = take_organization_inventory(client)
    monkeypatch.setenv("DAGSTER_CLOUD_URL", sandbox.url)
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT", sandbox.deployment)
    monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", sandbox.token("admin"))
    with dg.DagsterInstance.ephemeral() as instance:
        assert run_job("list_deployments", instance).success
        # Only the deployment to migrate is a partition: staging can never be switched twice.
        assert instance.get_dynamic_partitions("deployments") == ["prod"]
    assert organization.to_migrate == ["prod"]
    assert organization.branch_deployments == 1
    assert [d.state for d in organization.deployments] == [
        "to migrate",
        "already Hybrid: skipped",
    ]
    rendered = render_deployments(organization, {"prod": "planned"})
    assert "| staging | " in rendered and "already Hybrid: skipped" in rendered
    assert "| to migrate | planned |" in rendered
