"""The per_location strategy: locations moved to the Hybrid agent one at a time through an
agent queue while the deployment is still Serverless, against the sandbox over HTTP with an
agent that speaks the agent API (the real Local agent does it in test_per_location_e2e.py)."""

from __future__ import annotations

import pytest
import yaml
from conftest import client_for
from support.agent import fake_agent

from dagster_plus_sandbox.serving import serving_timeline
from migration_pipeline.cutover.moves import (
    MoveFailed,
    move_one_at_a_time,
    version_serves_queues,
)
from migration_pipeline.finish.core import downtime_parts
from migration_pipeline.lib.problems import InvalidInput
from migration_pipeline.plus.types import locations_by_name
from migration_pipeline.snapshot import take_snapshot
from migration_pipeline.targets import get_target, load_target_settings
from migration_pipeline.targets.agent import AgentSetup

QUEUE = "hybrid-migration"


def _desired(document: dict) -> dict:
    return {
        "locations": [
            {**loc, "image": f"registry.test/{loc['location_name']}:1", "agent_queue": QUEUE}
            for loc in document["locations"]
        ]
    }


def _timeline_since(sandbox, start: float):
    """prod's serving timeline from `start` (both locations on the Serverless agent) to now."""
    import time

    return serving_timeline(
        sandbox.state.events(),
        "prod",
        "SERVERLESS",
        sandbox.state.timing,
        start,
        time.time(),
        {"analytics": None, "ml_models": None},
    )


def _moves(sandbox, admin):
    token = admin.create_agent_token("queue agent").token.get_secret_value()
    deployment = admin.current_deployment()
    snapshot = take_snapshot(admin, deployment.id, deployment.agent_type)
    desired = _desired(snapshot.locations_document)
    return token, snapshot, desired


def test_locations_move_one_at_a_time_and_the_deployment_is_never_unserved(sandbox, admin):
    import time

    token, snapshot, desired = _moves(sandbox, admin)
    start = time.time()
    seen = []
    with fake_agent(sandbox, token, label="queue agent", queues=[QUEUE], interval=0.05):
        moves = move_one_at_a_time(
            admin, desired, snapshot, 10, 0.05, on_moved=lambda m: seen.append(m.location)
        )
        assert seen == ["analytics", "ml_models"]
        assert all(m.moved and m.queue == QUEUE for m in moves)
        assert all(0 <= m.unserved_seconds < 5 for m in moves)
        assert admin.current_deployment().agent_type == "SERVERLESS"
        assert {e.name: e.is_loaded for e in admin.workspace()} == {
            "analytics": True,
            "ml_models": True,
        }
        assert locations_by_name(admin.locations_as_document()) == locations_by_name(desired)
        # Again: nothing is deployed twice.
        events_before = len(sandbox.state.events("location_deployed"))
        again = move_one_at_a_time(admin, desired, snapshot, 10, 0.05)
        assert [m.moved for m in again] == [False, False]
        assert len(sandbox.state.events("location_deployed")) == events_before
    timeline = _timeline_since(sandbox, start)
    assert timeline.deployment_unserved == []
    # One location at a time: never both unserved at once.
    (a,), (m,) = timeline.location_unserved["analytics"], timeline.location_unserved["ml_models"]
    assert a[1] <= m[0]


def test_a_location_that_fails_to_load_goes_back_and_the_rest_never_lose_their_agent(
    sandbox, admin
):
    import time

    token, snapshot, desired = _moves(sandbox, admin)
    start = time.time()
    broken = {"registry.test/ml_models:1": "ImportError: no module named ml_models"}
    with fake_agent(
        sandbox, token, label="queue agent", queues=[QUEUE], broken=broken, interval=0.05
    ):
        with pytest.raises(MoveFailed) as failed:
            move_one_at_a_time(admin, desired, snapshot, 10, 0.05)
    assert failed.value.location == "ml_models" and failed.value.sent_back
    assert [m.location for m in failed.value.moved] == ["analytics"]
    assert "ImportError" in str(failed.value) and "still SERVERLESS" in str(failed.value)
    now = locations_by_name(admin.locations_as_document())
    before = locations_by_name(snapshot.locations_document)
    assert now["ml_models"] == before["ml_models"]  # its Serverless document again
    assert now["analytics"]["agent_queue"] == QUEUE  # the moved one stays where it is
    time.sleep(sandbox.state.timing["location_load_seconds"] + 0.1)
    timeline = _timeline_since(sandbox, start)
    assert timeline.deployment_unserved == []
    assert {e.name: e.load_status for e in admin.workspace()}["ml_models"] == "LOADED"


def test_the_agent_serves_the_queue_alone_for_per_location_and_beside_the_default_otherwise():
    def files(target: str, text: str) -> dict:
        setup = AgentSetup(
            organization="acme",
            deployment="prod",
            agent_label="label",
            settings=load_target_settings(target, text),
            token_reference="ref",
        )
        return get_target(target).agent_files(setup)

    local = yaml.safe_load(files("local", "strategy: per_location\n")["dagster.yaml"])
    assert local["agent_queues"] == {
        "include_default_queue": False,
        "additional_queues": [QUEUE],
    }
    routed = yaml.safe_load(files("docker", "agent_queue: gpu\n")["dagster.yaml"])
    assert routed["agent_queues"] == {"include_default_queue": True, "additional_queues": ["gpu"]}
    assert "agent_queues" not in yaml.safe_load(files("local", "")["dagster.yaml"])
    helm = yaml.safe_load(
        files("kubernetes", "strategy: per_location\nagent_queue: q\n")["values.yaml"]
    )
    assert helm["dagsterCloud"]["agentQueues"] == {
        "includeDefaultQueue": False,
        "additionalQueues": ["q"],
    }
    with pytest.raises(InvalidInput, match="ECS CloudFormation"):
        load_target_settings("ecs", "strategy: per_location\n")


def test_the_agent_config_is_one_the_real_agent_reads():
    """DagsterCloudAgentInstance's own schema takes the generated agent_queues."""
    from dagster._config import process_config
    from dagster_cloud.instance import DagsterCloudAgentInstance

    schema = DagsterCloudAgentInstance.config_schema()
    setup = AgentSetup(
        organization="acme",
        deployment="prod",
        agent_label="label",
        settings=load_target_settings("local", "strategy: per_location\n"),
        token_reference="ref",
    )
    config = yaml.safe_load(get_target("local").agent_files(setup)["dagster.yaml"])
    queues = {"agent_queues": config["agent_queues"]}
    result = process_config(schema["agent_queues"].config_type, queues["agent_queues"])
    assert result.success, result.errors


def test_agent_versions_that_serve_queues():
    assert version_serves_queues("1.13.27") and version_serves_queues("1.6.0")
    assert not version_serves_queues("1.5.14") and not version_serves_queues(None)


def test_no_window_when_every_location_was_on_the_hybrid_agent_before_the_switch():
    parts = downtime_parts(100.0, 100.0, 100.1, 100.2, 105.0, 99.0, deployed_any=False)
    assert parts["downtime_seconds"] == 0.0 and parts["seen_loaded_seconds"] == 5.0
    # A location that reloaded after the switch is a window again.
    assert downtime_parts(100.0, 100.0, 100.1, 100.2, 105.0, 103.0, deployed_any=False)[
        "downtime_seconds"
    ] == pytest.approx(3.0)


def test_the_plan_says_which_strategy_and_why(tmp_path):
    from migration_pipeline.plan.core import strategy_reason

    assert "per_location" in strategy_reason(
        load_target_settings("local", "strategy: per_location\n")
    )
    assert "no-agent" in strategy_reason(load_target_settings("local")) or "nothing serves" in (
        strategy_reason(load_target_settings("local"))
    )


@pytest.fixture
def sandbox(start_sandbox):
    return start_sandbox()


@pytest.fixture
def admin(sandbox):
    with client_for(sandbox) as client:
        yield client


# -- through the jobs ----------------------------------------------------------------------


@pytest.fixture
def env(sandbox, tmp_path, monkeypatch, registry):
    from migration_env import MigrationEnv

    env = MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, registry=registry)
    env.settings_text = "strategy: per_location\n"
    return env


def test_the_cutover_moves_then_switches_and_the_finish_measures_no_window(env, sandbox, admin):
    import dagster as dg

    document_before = admin.locations_as_document()
    env.prepare()
    # Without the migration's agent running nothing moves (refused before anything changes).
    refused = env.run("cutover", raise_on_error=False)
    assert not refused.success and "is not RUNNING" in str(refused.all_events)
    assert admin.locations_as_document() == document_before
    assert admin.current_deployment().agent_type == "SERVERLESS"

    with fake_agent(sandbox, env.stored_agent_token(), queues=[QUEUE], interval=0.05):
        cutover = env.run("cutover")
        checks = {e.asset_check_key.name: e.passed for e in cutover.get_asset_check_evaluations()}
        assert checks["every_location_on_the_hybrid_agent"] is True
        observed = [
            e.event_specific_data.asset_observation.metadata["location"].value
            for e in cutover.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]
        assert observed == ["analytics", "ml_models"]  # one at a time, in the plan's order
        assert admin.current_deployment().agent_type == "HYBRID"
        tick = env.sensor_tick()
        (request,) = tick.run_requests
        finish = env.run("finish_hybrid_migration", tags=request.tags)
    outcome = finish.output_for_node("verify_hybrid_deployment")
    assert outcome["failed_checks"] == [] and outcome["deployed"] == []
    assert outcome["downtime_seconds"] == 0.0
    moved = {loc["location_name"]: loc for loc in admin.locations_as_document()["locations"]}
    assert {loc["agent_queue"] for loc in moved.values()} == {QUEUE}
    switched = sandbox.state.events("agent_type_switched")
    deploys = sandbox.state.events("location_deployed")
    assert len(switched) == 1 and all(d["id"] < switched[0]["id"] for d in deploys)
    assert dg.AssetKey("hybrid_location_moves") in {
        e.asset_key for e in cutover.get_asset_materialization_events() or []
    } or env.instance.get_latest_materialization_event(dg.AssetKey("hybrid_location_moves"))

    # After the switch no location can go back on its own: no Serverless agent would serve it.
    one = env.run(
        "rollback_to_serverless",
        {"ops": {"restore_serverless": {"config": {"locations": ["analytics"]}}}},
        raise_on_error=False,
    )
    assert not one.success and "Roll back the whole deployment" in str(one.all_events)
    whole = env.run("rollback_to_serverless")
    assert "locations_document" in whole.output_for_node("restore_serverless")
    assert admin.current_deployment().agent_type == "SERVERLESS"
    assert admin.locations_as_document() == document_before


def test_a_failed_move_stops_the_cutover_before_the_switch_and_one_location_can_go_back(
    env, sandbox, admin
):
    prepared = env.prepare()
    images = prepared.output_for_node("code_location_images")
    broken = {images["ml_models"].image: "ModuleNotFoundError: No module named 'ml_models'"}
    with fake_agent(
        sandbox, env.stored_agent_token(), queues=[QUEUE], broken=broken, interval=0.05
    ):
        cutover = env.run(
            "cutover",
            {"ops": {"move_locations_one_at_a_time": {"config": {"load_timeout_seconds": 10}}}},
            raise_on_error=False,
        )
    assert not cutover.success
    message = str(cutover.all_events)
    assert "ml_models did not load on the Hybrid agent" in message
    assert "ModuleNotFoundError" in message and "still SERVERLESS" in message
    checks = {e.asset_check_key.name: e.passed for e in cutover.get_asset_check_evaluations()}
    assert checks["every_location_on_the_hybrid_agent"] is False
    assert admin.current_deployment().agent_type == "SERVERLESS"
    assert sandbox.state.events("agent_type_switched") == []
    now = {loc["location_name"]: loc for loc in admin.locations_as_document()["locations"]}
    assert now["analytics"]["agent_queue"] == QUEUE and "agent_queue" not in now["ml_models"]

    back = env.run(
        "rollback_to_serverless",
        {"ops": {"restore_serverless": {"config": {"locations": ["analytics"]}}}},
    )
    assert back.output_for_node("restore_serverless") == ["analytics"]
    assert (
        "agent_queue"
        not in {loc["location_name"]: loc for loc in admin.locations_as_document()["locations"]}[
            "analytics"
        ]
    )
    assert sandbox.state.events("agent_token_revoked") == []  # the agent stays the user's


def test_the_move_order_puts_the_named_locations_first_and_refuses_unknown_ones():
    from migration_pipeline.cutover.moves import move_order

    desired = {"locations": [{"location_name": n} for n in ("a", "b", "c")]}
    assert move_order(desired) == ["a", "b", "c"]
    assert move_order(desired, ["c"]) == ["c", "a", "b"]
    with pytest.raises(ValueError, match="names x, which the plan does not deploy"):
        move_order(desired, ["x"])


def test_a_move_order_naming_a_location_the_plan_lacks_is_refused_at_plan_time(tmp_path):
    from migration_env import write_project

    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.plan.core import make_plan

    project = read_project(write_project(tmp_path / "repo"))
    settings = load_target_settings("local", "strategy: per_location\nmove_order: [ml_models]\n")
    plan = make_plan(project, "local", settings)
    assert plan.strategy == "per_location" and "ml_models first (move_order)" in (
        plan.strategy_reason
    )
    with pytest.raises(InvalidInput) as refused:
        make_plan(project, "local", load_target_settings("local", "move_order: [ml_modles]\n"))
    assert "move_order" in str(refused.value) and "ml_modles" in str(refused.value)


def test_a_cutover_run_again_after_a_failed_move_still_rolls_back_to_serverless(
    env, sandbox, admin
):
    """The second run's snapshot is taken with analytics already on the queue: it must still
    record analytics' Serverless document, or the rollback would leave it on the queue."""
    document_before = admin.locations_as_document()
    prepared = env.prepare()
    images = prepared.output_for_node("code_location_images")
    broken = {images["ml_models"].image: "ModuleNotFoundError: No module named 'ml_models'"}
    with fake_agent(
        sandbox, env.stored_agent_token(), queues=[QUEUE], broken=broken, interval=0.05
    ):
        first = env.run(
            "cutover",
            {"ops": {"move_locations_one_at_a_time": {"config": {"load_timeout_seconds": 10}}}},
            raise_on_error=False,
        )
    assert not first.success
    with fake_agent(sandbox, env.stored_agent_token(), queues=[QUEUE], interval=0.05):
        second = env.run("cutover")
    moved = [
        e.event_specific_data.asset_observation.metadata
        for e in second.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert [(m["location"].value, m["moved"].value) for m in moved] == [
        ("analytics", False),  # moved by the first run: not deployed again
        ("ml_models", True),
    ]
    assert admin.current_deployment().agent_type == "HYBRID"
    env.run("rollback_to_serverless")
    assert admin.current_deployment().agent_type == "SERVERLESS"
    assert admin.locations_as_document() == document_before
