"""The whole organization: each full deployment is a partition, migrated on its own, staging
before prod when the target settings say so; a failed or rolled-back staging stops prod."""

from __future__ import annotations

import copy

import pytest
from conftest import client_for, make_scenario
from migration_env import MigrationEnv, step_failure_message
from support.agent import fake_agent

from dagster_plus_sandbox.scenario import DEFAULT_SCENARIO
from migration_pipeline.deployments import (
    Progress,
    latest_materialization,
    order_problems,
    progress,
)


def staging_and_prod():
    """prod as the default scenario has it, and a staging with the same locations and runs of
    its own (the same repository deploys both)."""
    prod = copy.deepcopy(DEFAULT_SCENARIO["deployments"][0])
    staging = copy.deepcopy(prod)
    staging.update(name="staging", type="PRODUCTION")
    staging["runs"] = {**staging["runs"], "count": 40, "seed": 11}
    return make_scenario(deployments=[prod, staging])


@pytest.fixture
def sandbox(start_sandbox):
    return start_sandbox(staging_and_prod())


@pytest.fixture
def env(sandbox, tmp_path, monkeypatch, registry) -> MigrationEnv:
    env = MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, registry=registry)
    env.settings_text = "deployment_order: [staging, prod]\n"
    return env


def agent_type(sandbox, deployment: str) -> str:
    return client_for(sandbox).for_deployment(deployment).current_deployment().agent_type


def finish(env, sandbox, deployment: str, **agent):
    """The deployment's agent runs; the sensor's next tick (its cursor kept, as the daemon keeps
    it) requests exactly that deployment's finish run, which runs."""
    with fake_agent(sandbox, env.stored_agent_token(deployment), deployment=deployment, **agent):
        tick = env.sensor_tick(cursor=env.sensor_cursor)
        (request,) = tick.run_requests
        env.sensor_cursor = tick.cursor
        assert request.partition_key == deployment
        return env.run(
            "finish_hybrid_migration",
            env.finish_config(poll_seconds=0.1, error_settle_seconds=0.5),
            tags=request.tags,
            deployment=deployment,
            raise_on_error=False,
        )


def test_staging_then_prod_and_a_rolled_back_staging_stops_prod(env, sandbox):
    organization = env.run("list_deployments")
    assert env.instance.get_dynamic_partitions("deployments") == ["prod", "staging"]
    assert organization.output_for_node("organization_inventory").to_migrate == [
        "prod",
        "staging",
    ]
    staging_images = env.prepare(deployment="staging").output_for_node("code_location_images")
    prod_prepared = env.prepare(deployment="prod")
    # One repository: staging's apply wrote the files, prod's finds them as planned.
    staging_apply = latest_materialization(env.instance, "hybrid_project_files", "staging")
    prod_apply = latest_materialization(env.instance, "hybrid_project_files", "prod")
    assert "dagster_cloud.yaml" in staging_apply.asset_materialization.metadata["written"].value
    assert prod_apply.asset_materialization.metadata["written"].value == []
    # The same images (found by content), one agent per deployment, each with its own token.
    prod_images = prod_prepared.output_for_node("code_location_images")
    assert {n: i.image for n, i in prod_images.items()} == {
        n: i.image for n, i in staging_images.items()
    }
    assert not any(image.built for image in prod_images.values())
    assert env.stored_agent_token("staging") != env.stored_agent_token("prod")
    assert len(sandbox.state.events("agent_token_created")) == 2

    # prod's cutover waits for staging: nothing changes.
    refused = env.run("cutover", deployment="prod", raise_on_error=False)
    assert not refused.success
    message = step_failure_message(refused)
    assert "staging comes before prod in deployment_order and is images ready" in message
    assert "Nothing was changed." in message
    assert agent_type(sandbox, "prod") == "SERVERLESS"

    # staging is switched, but a location fails to load: its finish fails, prod still waits.
    assert env.run("cutover", deployment="staging").success
    assert (
        agent_type(sandbox, "staging") == "HYBRID" and agent_type(sandbox, "prod") == "SERVERLESS"
    )
    broken = {staging_images["ml_models"].image: "ModuleNotFoundError: ml_models"}
    failed = finish(env, sandbox, "staging", broken=broken)
    assert not failed.success
    assert progress(env.instance, "staging").state == "finish failed"
    message = step_failure_message(env.run("cutover", deployment="prod", raise_on_error=False))
    assert "staging comes before prod in deployment_order and is finish failed" in message

    # Rolled back, staging still stops prod.
    assert env.run("rollback_to_serverless", deployment="staging").success
    assert agent_type(sandbox, "staging") == "SERVERLESS"
    assert progress(env.instance, "staging").state == "rolled back"
    message = step_failure_message(env.run("cutover", deployment="prod", raise_on_error=False))
    assert "staging comes before prod in deployment_order and is rolled back" in message
    assert agent_type(sandbox, "prod") == "SERVERLESS"
    assert len(sandbox.state.events("agent_type_switched")) == 2  # staging there and back

    # The rollback revoked staging's agent token: rolling forward on it would leave no agent.
    refused = env.run("cutover", deployment="staging", raise_on_error=False)
    assert "agent token" in step_failure_message(refused)
    assert "is revoked (a rollback revokes it)" in step_failure_message(refused)
    assert agent_type(sandbox, "staging") == "SERVERLESS"
    # Rolled forward with a new token and install files: staging finishes with every check
    # green and its downtime recorded...
    assert env.run("create_agent_token", deployment="staging").success
    assert env.run("prepare_hybrid_agent", env.agent_url_config(), deployment="staging").success
    assert env.run("cutover", deployment="staging").success
    assert finish(env, sandbox, "staging").success
    staging = progress(env.instance, "staging")
    assert staging.state == "finished" and staging.downtime_seconds > 0

    # ... so prod's cutover goes, and says what staging's window was before touching prod.
    cutover = env.run("cutover", deployment="prod")
    assert cutover.success and agent_type(sandbox, "prod") == "HYBRID"
    preflight_log = [
        e.user_message
        for e in env.instance.all_logs(cutover.run_id)
        if e.step_key == "cutover_preflight"
    ]
    assert any(
        f"staging (before prod in deployment_order) finished with every check green; its "
        f"downtime was {staging.downtime_seconds:.1f}s" in line
        for line in preflight_log
    )
    assert finish(env, sandbox, "prod").success
    assert progress(env.instance, "prod").state == "finished"
    # staging switched there, back and there again; prod once.
    assert len(sandbox.state.events("agent_type_switched")) == 4

    # The organization's inventory shows where each deployment is.
    again = env.run("list_deployments").asset_materializations_for_node("organization_inventory")[0]
    assert again.metadata["progress"].value == {"prod": "finished", "staging": "finished"}
    assert again.metadata["to_migrate"].value == []
    assert "| staging | " in again.metadata["table"].value
    assert "finished (downtime " in again.metadata["table"].value


def test_the_order_rule_on_its_own():
    order = ["staging", "prod"]
    finished = Progress("staging", True, True, 1.0, finished_at=2.0, downtime_seconds=3.0)
    assert order_problems("prod", order, {"staging": finished}) == []
    assert order_problems("staging", order, {}) == []  # first in the order: nothing to wait for
    assert order_problems("dev", order, {}) == []  # not in the order: not held by it
    (waiting,) = order_problems("prod", order, {})
    assert "staging comes before prod in deployment_order and is not planned" in waiting
    rolled_back = Progress("staging", True, True, 1.0, finished_at=2.0, rolled_back_at=3.0)
    (stopped,) = order_problems("prod", order, {"staging": rolled_back})
    assert "is rolled back" in stopped and "roll it forward again" in stopped
    failed = Progress("staging", True, True, 1.0, finish_failed=True)
    assert "is finish failed" in order_problems("prod", order, {"staging": failed})[0]
    three = ["dev", "staging", "prod"]
    assert len(order_problems("prod", three, {"dev": finished, "staging": failed})) == 1
