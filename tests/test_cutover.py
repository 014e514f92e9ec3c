"""The cutover, the readiness sensor, finish and rollback, in process against the sandbox."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from conftest import client_for
from migration_env import MigrationEnv, record_cutover
from support.agent import fake_agent


@pytest.fixture
def sandbox(start_sandbox, clock):
    """On a manual clock: an agent's heartbeat stays fresh, and the Serverless agent keeps its
    state after a switch, until a test moves time on."""
    return start_sandbox(clock=clock)


@pytest.fixture
def env(sandbox, tmp_path, monkeypatch, registry) -> MigrationEnv:
    return MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, registry=registry)


def requests_during(sandbox, action):
    """What `action` asked Dagster+'s user API (the fake agent speaks the agent API)."""
    before = len(sandbox.operations_seen)
    result = action()
    return result, list(sandbox.operations_seen)[before:]


def test_sensor_waits_for_a_cutover_then_a_running_hybrid_agent_and_fires_once(env, sandbox):
    result, seen = requests_during(sandbox, env.sensor_tick)
    assert not result.run_requests and "No cutover yet" in result.skip_message
    assert seen == []  # before a cutover it does not even ask Dagster+

    prepared = env.prepare()
    label = prepared.output_for_node("hybrid_agent_install_files").agent_label
    assert label.startswith("migration_pipeline prod agent (token ")
    cutover = env.run("cutover")
    result, seen = requests_during(sandbox, env.sensor_tick)
    assert not result.run_requests
    assert result.skip_message.startswith(
        f"prod: Waiting for the migration's agent (label {label!r})"
    )
    assert seen == [{"agents"}]  # one light query a tick

    # Another agent running (someone else's, or whatever Dagster+ lists for Serverless) is not
    # the migration's agent: only the label the install files set counts.
    with fake_agent(sandbox, env.stored_agent_token(), agent_id="other", label="team-b agent"):
        result, _ = requests_during(sandbox, env.sensor_tick)
    assert not result.run_requests and "team-b agent RUNNING" in result.skip_message

    with fake_agent(sandbox, env.stored_agent_token()):
        result, seen = requests_during(sandbox, env.sensor_tick)
    (request,) = result.run_requests
    assert request.run_key == f"finish:{cutover.run_id}" and request.partition_key == "prod"
    assert json.loads(result.cursor) == {"prod": cutover.run_id}
    assert seen == [{"agents"}]

    again, seen = requests_during(sandbox, lambda: env.sensor_tick(cursor=result.cursor))
    assert not again.run_requests
    assert again.skip_message == "prod: the finish run of its cutover was requested"
    assert seen == []


def test_whole_cutover_finish_and_rollback(env, sandbox):
    admin = client_for(sandbox)
    document_before = admin.locations_as_document()
    settings_before = admin.deployment_settings()
    prepared = env.prepare()
    token = env.instance.get_latest_materialization_event(dg.AssetKey("hybrid_agent_token"))
    recorded = token.asset_materialization.metadata
    assert recorded["record"].value["store"] == "kubernetes_secret" and "token" not in recorded

    cutover = env.run("cutover")
    record = cutover.output_for_node("deactivate_serverless_agent")
    # Hybrid agents run non-isolated runs too: by default every setting is kept.
    assert record["switched"] and record["settings_removed"] == []
    assert admin.current_deployment().agent_type == "HYBRID"
    assert admin.deployment_settings() == settings_before

    with fake_agent(sandbox, env.stored_agent_token()):
        tick = env.sensor_tick()
        (request,) = tick.run_requests
        finish = env.run("finish_hybrid_migration", tags=request.tags)
    assert finish.success
    checks = {e.asset_check_key.name: e.passed for e in finish.get_asset_check_evaluations()}
    assert {e.asset_key for e in finish.get_asset_check_evaluations()} == {
        dg.AssetKey("hybrid_deployment")
    }
    assert checks == {
        "no_run_lost": True,
        "schedules_and_sensors_kept": True,
        "every_location_loaded": True,
        "deployment_settings_kept": True,
        # No first_run chosen: nothing proven, said as a warning; the finish goes on.
        "first_runs_succeed": False,
    }
    (first_runs,) = [
        e for e in finish.get_asset_check_evaluations() if e.check_name == "first_runs_succeed"
    ]
    assert first_runs.severity == dg.AssetCheckSeverity.WARN
    assert "none chosen" in first_runs.metadata["summary"].value
    outcome = finish.output_for_node("verify_hybrid_deployment")
    assert outcome["failed_checks"] == []
    assert outcome["deployed"] == ["analytics", "ml_models"]
    assert (
        0
        < outcome["downtime_seconds"]
        == pytest.approx(
            outcome["waiting_for_agent_seconds"]
            + outcome["until_deploy_seconds"]
            + outcome["deploying_seconds"]
            + outcome["loading_seconds"],
            abs=0.01,
        )
    )
    deployed = admin.locations_as_document()["locations"]
    images = prepared.output_for_node("code_location_images")
    assert [loc["image"] for loc in deployed] == [
        images["analytics"].image,
        images["ml_models"].image,
    ]
    assert deployed[0]["image"].startswith(env.registry + "/analytics:")
    assert deployed[0]["container_context"] == {"k8s": {"namespace": "dagster-cloud"}}
    assert "build" not in deployed[0]

    # Finishing again redeploys nothing; cutting over again switches nothing.
    with fake_agent(sandbox, env.stored_agent_token()):
        assert (
            env.run("finish_hybrid_migration").output_for_node("verify_hybrid_deployment")[
                "deployed"
            ]
            == []
        )
    assert env.run("cutover").output_for_node("deactivate_serverless_agent")["switched"] is False
    assert len(sandbox.state.events("agent_type_switched")) == 1
    assert len(sandbox.state.events("location_deployed")) == 2
    assert len(sandbox.state.events("agent_token_created")) == 1

    rollback = env.run("rollback_to_serverless")
    assert rollback.output_for_node("restore_serverless") == ["agent_type", "locations_document"]
    assert admin.current_deployment().agent_type == "SERVERLESS"
    assert admin.locations_as_document() == document_before
    assert admin.deployment_settings() == settings_before
    assert env.run("rollback_to_serverless").output_for_node("restore_serverless") == []
    assert "prod: rolled back to Serverless" in env.sensor_tick().skip_message


def test_a_non_admin_token_fails_the_preflight_before_anything_changes(env, sandbox):
    env.prepare()
    events_before = sandbox.state.events()
    env.use_token("viewer")
    result = env.run("cutover", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "Organization Admin is needed" in message and "Nothing was changed" in message
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert sandbox.state.events() == events_before
    assert client_for(sandbox).current_deployment().agent_type == "SERVERLESS"


def test_a_location_that_fails_to_load_fails_finish_with_its_message(env, sandbox):
    env.prepare()
    env.run("cutover")
    image = env.run("prepare_hybrid_agent", env.agent_url_config()).output_for_node(
        "code_location_images"
    )["ml_models"]
    with fake_agent(
        sandbox, env.stored_agent_token(), broken={image.image: "ModuleNotFoundError: ml_models"}
    ):
        # The error stands (it is this deploy's): the finish fails once it has settled.
        result = env.run(
            "finish_hybrid_migration",
            env.finish_config(poll_seconds=0.1, error_settle_seconds=0.5),
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "ml_models: ModuleNotFoundError: ml_models" in str(failure.event_specific_data.error)


def test_finish_gives_up_after_its_timeout_and_says_what_is_missing(env, sandbox):
    env.prepare()
    env.run("cutover")
    result = env.run(
        "finish_hybrid_migration", raise_on_error=False, run_config=env.finish_config(0.5, 0.1)
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "Still not LOADED after 0.5s: analytics, ml_models" in str(
        failure.event_specific_data.error
    )


def test_settings_are_removed_only_as_planned_and_then_verified(env, sandbox):
    """With `remove_non_isolated_runs: true`, the cutover removes exactly that setting and the
    check passes; a setting changed by hand meanwhile fails it."""
    admin = client_for(sandbox)
    env.settings_text = "remove_non_isolated_runs: true\n"
    env.prepare()
    record = env.run("cutover").output_for_node("deactivate_serverless_agent")
    assert record["settings_removed"] == ["non_isolated_runs"]
    assert admin.deployment_settings() == {"run_queue": {"max_concurrent_runs": 10}}
    admin.set_deployment_settings({"run_queue": {"max_concurrent_runs": 1}})
    with fake_agent(sandbox, env.stored_agent_token()):
        finish = env.run("finish_hybrid_migration", raise_on_error=False)
    checks = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in finish.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert not checks["deployment_settings_kept"].passed
    assert checks["deployment_settings_kept"].metadata["changed"].value == {
        "run_queue": [{"max_concurrent_runs": 10}, {"max_concurrent_runs": 1}]
    }


@pytest.mark.parametrize("token", ["unknown", "revoked"])
def test_a_rejected_token_fails_the_sensor_tick_and_says_why(env, sandbox, token):
    """No retry fixes a token Dagster+ rejects: the tick fails (the daemon shows it as a failed
    tick with this message) instead of skipping forever."""
    from migration_pipeline.plus.errors import NotAuthorizedError

    record_cutover(env.instance, "migration_pipeline prod agent (token 1)")
    value = "user:acme:not-a-token"
    if token == "revoked":
        created = client_for(sandbox).create_agent_token("revoked before the tick")
        sandbox.state.revoke_agent_token(created.id)
        value = created.token.get_secret_value()
    env.monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", value)
    with pytest.raises(NotAuthorizedError, match="the API token was rejected"):
        env.sensor_tick()


def test_a_passing_outage_only_skips_the_tick(env, sandbox):
    """A Dagster+ outage is not the user's to fix: the tick skips, says so, and the next one
    asks again."""
    record_cutover(env.instance, "migration_pipeline prod agent (token 1)")
    sandbox.faults.add(operation="agents", kind="http_503", count=1000)
    tick = env.sensor_tick()
    assert (
        not tick.run_requests and "prod: could not ask Dagster+ for its agents" in tick.skip_message
    )


def step_log(env, run_id: str, step_key: str) -> list[str]:
    return [e.user_message for e in env.instance.all_logs(run_id) if e.step_key == step_key]


def test_an_agent_running_before_the_cutover_gets_the_deploy_at_once(env, sandbox):
    """The agent was installed first, as the README says: the cutover run deploys right after
    the switch, the finish run deploys nothing and verifies, and the window has no sensor lag
    and no run launch in it."""
    env.prepare()
    with fake_agent(sandbox, env.stored_agent_token()):
        cutover = env.run("cutover")
        logs = step_log(env, cutover.run_id, "deploy_if_the_agent_runs")
        assert any("the migration's agent runs: deployed analytics, ml_models" in m for m in logs)
        deploys = [e for e in sandbox.state.events() if e["kind"] == "location_deployed"]
        assert sorted(e["detail"]["location"] for e in deploys) == ["analytics", "ml_models"]
        (request,) = env.sensor_tick().run_requests
        finish = env.run("finish_hybrid_migration", tags=request.tags)
    assert finish.success
    assert len([e for e in sandbox.state.events() if e["kind"] == "location_deployed"]) == 2
    (materialization,) = finish.asset_materializations_for_node("verify_hybrid_deployment")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["deployed_by"] == "cutover" and metadata["deployed"] == [
        "analytics",
        "ml_models",
    ]
    assert metadata["waiting_for_agent_seconds"] == 0
    outcome = finish.output_for_node("verify_hybrid_deployment")
    assert outcome["failed_checks"] == []


def test_without_a_running_agent_the_cutover_leaves_the_deploy_to_the_finish_run(env, sandbox):
    env.prepare()
    cutover = env.run("cutover")
    logs = step_log(env, cutover.run_id, "deploy_if_the_agent_runs")
    assert any("the migration's agent is not running yet" in m for m in logs)
    assert [e for e in sandbox.state.events() if e["kind"] == "location_deployed"] == []
    with fake_agent(sandbox, env.stored_agent_token()):
        (request,) = env.sensor_tick().run_requests
        finish = env.run("finish_hybrid_migration", tags=request.tags)
    (materialization,) = finish.asset_materializations_for_node("verify_hybrid_deployment")
    assert materialization.metadata["deployed_by"].value == "finish"


def test_the_window_ends_at_the_agents_report_kept_within_its_part():
    from migration_pipeline.finish.core import downtime_parts

    parts = downtime_parts(100.0, 100.0, 100.2, 100.3, 112.0, reported_at=104.3)
    assert parts == {
        "downtime_seconds": 4.3,
        "waiting_for_agent_seconds": 0.0,
        "until_deploy_seconds": 0.2,
        "deploying_seconds": 0.1,
        "loading_seconds": 4.0,
        "seen_loaded_seconds": 7.7,
    }
    # Another clock's report before the deploy or after the finish run saw it: clamped.
    assert downtime_parts(100, 100, 100, 101, 110, reported_at=90)["loading_seconds"] == 0
    assert downtime_parts(100, 100, 100, 101, 110, reported_at=200)["downtime_seconds"] == 10
    assert downtime_parts(100, 103, 109, 110, 115)["downtime_seconds"] == 15  # no report


def test_a_load_error_the_agent_replaces_does_not_fail_the_wait_one_that_stands_does():
    """Right after the switch an agent may load the previous document and report that attempt's
    error, then load the deploy: the wait fails only on an error that stands for its settle
    time (time and answers are the test's)."""
    from migration_pipeline.finish.core import LoadError, wait_until_loaded
    from migration_pipeline.plus.types import LocationEntry

    stale = LocationEntry("a", "LOADED", "Exception: requires an image")
    loaded = LocationEntry("a", "LOADED", None)

    class Workspace:
        def __init__(self, answers):
            self.answers = list(answers)

        def workspace(self):
            return [self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]]

    now = [0.0]

    def wait(answers):
        return wait_until_loaded(
            Workspace(answers),
            ["a"],
            timeout_seconds=600,
            poll_seconds=1.0,
            clock=lambda: now[0],
            sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
            error_settle_seconds=5.0,
        )

    assert wait([stale, stale, stale, loaded]) == [loaded]  # replaced after 3 s
    now[0] = 0.0
    with pytest.raises(LoadError, match="requires an image"):
        wait([stale])  # stands: fails once 5 s have passed
    assert now[0] == 5.0
