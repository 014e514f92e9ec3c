"""Actions are ops, data are assets: "Materialize all" (every asset and every check in the
repository, as the UI offers) changes nothing on Dagster+, and no asset is named after an
action."""

from __future__ import annotations

import dagster as dg
import pytest
from migration_env import MigrationEnv

from dagster_plus_sandbox.api import schema
from migration_pipeline.definitions import defs

ACTION_WORDS = (
    "deactivate",
    "switch",
    "deploy",
    "restore",
    "rollback",
    "create",
    "revoke",
    "delete",
    "update",
    "remove",
    "reconcile",
)


def user_api_mutations() -> set[str]:
    mutation = schema("user").mutation_type
    assert mutation is not None
    return set(mutation.fields)


def everything_jobs() -> list[dg.JobDefinition]:
    """Every asset and every asset check, as "Materialize all" and "Execute all checks" launch
    them: one run for the organization, one for a deployment's partition of the rest."""
    organization = dg.AssetSelection.assets("organization_inventory")
    everything = dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks()
    jobs = [
        dg.define_asset_job(
            "organization",
            selection=organization | dg.AssetSelection.checks_for_assets("organization_inventory"),
            executor_def=dg.in_process_executor,
        ),
        dg.define_asset_job(
            "deployment",
            selection=everything
            - organization
            - dg.AssetSelection.checks_for_assets("organization_inventory"),
            executor_def=dg.in_process_executor,
        ),
    ]
    merged = dg.Definitions.merge(defs, dg.Definitions(jobs=jobs))
    return [merged.resolve_job_def(job.name) for job in jobs]


def test_no_asset_is_named_after_an_action_and_actions_are_ops_of_jobs():
    graph = defs.resolve_asset_graph()
    keys = [key.to_user_string() for key in graph.get_all_asset_keys()]
    op_names = {
        node.name for job in defs.resolve_all_job_defs() for node in job.graph.node_dict.values()
    }
    for key in keys:
        assert not key.startswith(ACTION_WORDS), key
    assert "deactivate_serverless_agent" not in keys
    assert "deactivate_serverless_agent" in op_names
    assert "deactivate_serverless_agent" in {
        node.name for node in defs.resolve_job_def("cutover").graph.node_dict.values()
    }
    # What the action jobs record (the token, the snapshot, the Hybrid deployment) cannot be
    # materialized from the asset graph: only its job records it.
    for key in ("hybrid_agent_token", "pre_cutover_snapshot", "hybrid_deployment"):
        assert not graph.get(dg.AssetKey(key)).is_materializable, key
    # Assets are grouped by phase.
    groups = {graph.get(dg.AssetKey(key)).group_name for key in keys}
    assert groups == {"inventory", "plan", "images", "agent", "cutover", "finish"}


@pytest.mark.parametrize("moment", ["fresh", "after the token"])
def test_materializing_everything_changes_nothing_on_dagster_plus(
    sandbox, tmp_path, monkeypatch, registry, moment
):
    env = MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, registry=registry)
    if moment == "after the token":  # then every asset can be made, the install files too
        assert env.run("plan_migration", env.plan_config()).success
        assert env.run("apply_migration_files").success
        assert env.run("create_agent_token").success
    events_before = sandbox.state.events()
    seen_before = len(sandbox.operations_seen)

    config = {"ops": {**env.plan_config()["ops"], **env.agent_url_config()["ops"]}}
    organization, deployment = everything_jobs()
    results = [
        organization.execute_in_process(instance=env.instance, raise_on_error=False),
        deployment.execute_in_process(
            instance=env.instance,
            run_config=config,
            raise_on_error=False,
            partition_key=env.deployment,
        ),
    ]

    materialized = {
        event.asset_key.to_user_string()
        for result in results
        for event in result.get_asset_materialization_events()
    }
    failed = {
        event.step_key
        for result in results
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    }
    # The checks of what only the action jobs record have nothing to check yet, and say so.
    nothing_recorded_yet = {
        "pre_cutover_snapshot_snapshot_is_complete",
        "hybrid_location_moves_every_location_on_the_hybrid_agent",
        "verify_nothing_lost",
    }
    if moment == "after the token":
        assert failed == nothing_recorded_yet
        assert materialized == {
            "serverless_inventory",
            "organization_inventory",
            "migration_plan",
            "hybrid_project_files",
            "code_location_images",
            "hybrid_agent_install_files",
        }
    else:  # the install files wait for create_agent_token, and say so
        assert failed == nothing_recorded_yet | {"hybrid_agent_install_files"}
        assert materialized == {
            "serverless_inventory",
            "organization_inventory",
            "migration_plan",
            "hybrid_project_files",
            "code_location_images",
        }
    operations = set().union(*list(sandbox.operations_seen)[seen_before:])
    assert operations, "the run asked Dagster+ nothing: it did not really run"
    assert not operations & user_api_mutations(), operations & user_api_mutations()
    assert sandbox.state.events() == events_before  # no switch, no deploy, no token
