"""Issue 21: the migration under races, retries and re-runs. Each test is one numbered
scenario of the issue; in-process runs against the sandbox, time and "a run in flight" made by
the test (a run record in the state a concurrent run would have), never raced."""

from __future__ import annotations

import dagster as dg
import pytest
from conftest import client_for
from dagster._core.storage.dagster_run import DagsterRun
from migration_env import MigrationEnv, step_failure_message
from support.agent import fake_agent

from migration_pipeline.deployments import latest_cutover, progress


@pytest.fixture
def sandbox(start_sandbox, clock):
    return start_sandbox(clock=clock)


@pytest.fixture
def env(sandbox, tmp_path, monkeypatch, registry) -> MigrationEnv:
    return MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, registry=registry)


def in_flight(env: MigrationEnv, job_name: str, status=dg.DagsterRunStatus.STARTED) -> str:
    """A run of `job_name` for the env's deployment, as a concurrent launch would leave it."""
    run = env.instance.add_run(
        DagsterRun(job_name=job_name, status=status, tags={"dagster/partition": env.deployment})
    )
    return run.run_id


def switches(sandbox) -> list[str]:
    return [e["detail"]["to"] for e in sandbox.state.events("agent_type_switched")]


def migrated(env: MigrationEnv, sandbox) -> None:
    """Prepared, cut over, and finished by the run the sensor requests once the agent runs."""
    env.prepare()
    assert env.run("cutover").success
    with fake_agent(sandbox, env.stored_agent_token()):
        (request,) = env.sensor_tick().run_requests
        assert env.run("finish_hybrid_migration", tags=request.tags).success


def deploys(sandbox) -> int:
    return len(sandbox.state.events("location_deployed"))


# 1 -------------------------------------------------------------------------------------------


def test_1_a_finish_before_any_cutover_deploys_nothing(env, sandbox):
    env.prepare()
    with fake_agent(sandbox, env.stored_agent_token()):
        finish = env.run("finish_hybrid_migration", raise_on_error=False)
    assert not finish.success
    message = step_failure_message(finish)
    assert "no cutover switched it (run the cutover job first)" in message
    assert "Nothing was deployed." in message
    assert deploys(sandbox) == 0 and switches(sandbox) == []


def test_1_a_finish_after_a_rollback_deploys_nothing(env, sandbox):
    env.prepare()
    assert env.run("cutover").success
    assert env.run("rollback_to_serverless").success
    deployed = deploys(sandbox)
    finish = env.run("finish_hybrid_migration", raise_on_error=False)
    assert not finish.success
    assert "it is SERVERLESS" in step_failure_message(finish)
    assert deploys(sandbox) == deployed


# 2 -------------------------------------------------------------------------------------------


def test_2_a_rollback_while_a_cutover_runs_or_retries_refuses(env, sandbox):
    env.prepare()
    assert env.run("cutover").success  # switched once
    running = in_flight(env, "cutover")  # a second cutover, between two op retries
    rollback = env.run("rollback_to_serverless", raise_on_error=False)
    assert not rollback.success
    message = step_failure_message(rollback)
    assert f"cutover run {running[:8]} (STARTED) is in flight" in message
    assert "Nothing was changed." in message
    assert switches(sandbox) == ["HYBRID"]  # never switched back (and then again)


@pytest.mark.parametrize("job", ["rollback_to_serverless", "finish_hybrid_migration"])
def test_2_a_cutover_beside_a_rollback_or_a_finish_refuses(env, sandbox, job):
    env.prepare()
    in_flight(env, job, dg.DagsterRunStatus.NOT_STARTED)
    cutover = env.run("cutover", raise_on_error=False)
    assert not cutover.success
    assert f"{job} run" in step_failure_message(cutover)
    assert switches(sandbox) == []


# 3 -------------------------------------------------------------------------------------------


def test_3_no_finish_beside_a_rollback_in_flight(env, sandbox):
    env.prepare()
    assert env.run("cutover").success
    rolling_back = in_flight(env, "rollback_to_serverless")
    with fake_agent(sandbox, env.stored_agent_token()):
        tick = env.sensor_tick()
        assert not tick.run_requests
        assert f"rollback_to_serverless run {rolling_back[:8]} is in flight" in tick.skip_message
        finish = env.run("finish_hybrid_migration", raise_on_error=False)
    assert not finish.success and "is in flight" in step_failure_message(finish)
    assert deploys(sandbox) == 0


def test_3_two_finishes_never_deploy_side_by_side(env, sandbox):
    env.prepare()
    assert env.run("cutover").success
    in_flight(env, "finish_hybrid_migration")  # the sensor's, say
    with fake_agent(sandbox, env.stored_agent_token()):
        manual = env.run("finish_hybrid_migration", raise_on_error=False)
    assert not manual.success and "finish_hybrid_migration run" in step_failure_message(manual)
    assert deploys(sandbox) == 0


# 4 -------------------------------------------------------------------------------------------


def test_4_a_cutover_or_finish_re_run_never_puts_back_an_older_image(env, sandbox):
    admin = client_for(sandbox)
    migrated(env, sandbox)
    # Weeks later the new CI ships analytics:v2.
    document = admin.locations_as_document()
    shipped = dict(document["locations"][0], image="registry.example/acme/analytics:v2")
    admin.deploy_locations({"locations": [shipped]})
    deployed = deploys(sandbox)
    with fake_agent(sandbox, env.stored_agent_token()):
        again = env.run("cutover")
        finish = env.run("finish_hybrid_migration")
    assert again.output_for_node("deactivate_serverless_agent")["switched"] is False
    assert finish.output_for_node("verify_hybrid_deployment")["deployed"] == []
    now = {loc["location_name"]: loc["image"] for loc in admin.locations_as_document()["locations"]}
    assert now["analytics"] == "registry.example/acme/analytics:v2"
    assert deploys(sandbox) == deployed and switches(sandbox) == ["HYBRID"]
    logs = [e.user_message for e in env.instance.all_logs(finish.run_id)]
    assert any("not deployed over analytics: changed in Dagster+" in m for m in logs)


# 5 -------------------------------------------------------------------------------------------


def test_5_a_cutover_failing_after_the_switch_is_seen_as_switched(env, sandbox, monkeypatch):
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.plus.errors import NotAuthorizedError

    env.prepare()
    real_switch, real_settings = (
        DagsterPlusClient.update_deployment_agent_type,
        DagsterPlusClient.deployment_settings,
    )
    switched = []

    def switch(self, *args, **kwargs):
        switched.append(True)
        return real_switch(self, *args, **kwargs)

    def settings(self):  # every call after the switch is refused, for good
        if switched:
            raise NotAuthorizedError("deploymentSettings", "the role changed meanwhile")
        return real_settings(self)

    monkeypatch.setattr(DagsterPlusClient, "update_deployment_agent_type", switch)
    monkeypatch.setattr(DagsterPlusClient, "deployment_settings", settings)
    cutover = env.run("cutover", raise_on_error=False)
    monkeypatch.setattr(DagsterPlusClient, "update_deployment_agent_type", real_switch)
    monkeypatch.setattr(DagsterPlusClient, "deployment_settings", real_settings)
    assert not cutover.success and switches(sandbox) == ["HYBRID"]
    record = latest_cutover(env.instance, env.deployment)
    assert record is not None and record.run_id == cutover.run_id
    assert env.instance.get_run_by_id(record.run_id).status == dg.DagsterRunStatus.FAILURE
    switched_at = record.cutover_at
    assert switched_at > 0
    assert progress(env.instance, env.deployment).state == "switched"
    with fake_agent(sandbox, env.stored_agent_token()):
        (request,) = env.sensor_tick().run_requests  # the finish is launched all the same
        assert request.run_key == f"finish:{cutover.run_id}"
        # A re-execution of the cutover keeps the real switch time.
        again = env.run("cutover")
    assert again.output_for_node("deactivate_serverless_agent")["cutover_time"] == switched_at
    assert switches(sandbox) == ["HYBRID"]


# 7 -------------------------------------------------------------------------------------------


def test_7_one_deployment_refused_does_not_block_the_others(env, sandbox, monkeypatch):
    from migration_env import record_cutover

    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.plus.errors import NotAuthorizedError

    env.prepare()
    assert env.run("cutover").success
    # A second deployment waiting for its agent, whose agents query Dagster+ refuses.
    record_cutover(env.instance, "migration_pipeline staging agent (token 1)", deployment="staging")
    real_agents = DagsterPlusClient.agents

    def agents(self):
        if self.deployment == "staging":
            raise NotAuthorizedError("agents", "no access to staging")
        return real_agents(self)

    monkeypatch.setattr(DagsterPlusClient, "agents", agents)
    with fake_agent(sandbox, env.stored_agent_token()):
        tick = env.sensor_tick()
    (request,) = tick.run_requests
    assert request.partition_key == "prod"


def test_7_a_tick_stops_asking_before_its_budget_is_spent(env):
    from migration_env import record_cutover

    from migration_pipeline.readiness import sensor as readiness

    for name in ("prod", "staging", "dev"):
        record_cutover(env.instance, f"migration_pipeline {name} agent (token 1)", deployment=name)
    times = iter([0.0, 0.0, 1.0, 30.0, 31.0, 32.0])  # the tick's start, then before each query
    built = readiness.build_hybrid_agent_ready_sensor(clock=lambda: next(times))
    tick = evaluate(env, built)
    assert "dev: not asked this tick (its time was spent)" in tick.skip_message


def evaluate(env: MigrationEnv, sensor: dg.SensorDefinition):
    from dagster._core.definitions.partitions.context import partition_loading_context

    from migration_pipeline.definitions import defs

    context = dg.build_sensor_context(
        instance=env.instance,
        resources=dict(defs.resources or {}),
        repository_def=defs.get_repository_def(),
    )
    with partition_loading_context(dynamic_partitions_store=env.instance):
        return sensor.evaluate_tick(context)


# 8 -------------------------------------------------------------------------------------------


def test_8_the_deploy_sends_the_recorded_document_not_the_disk(env, sandbox):
    admin = client_for(sandbox)
    prepared = env.prepare()
    recorded = prepared.asset_materializations_for_node("code_location_images")[0].metadata
    document = recorded["deploy"].value["document"]
    assert recorded["deploy_version"].value == 1
    assert env.run("cutover").success  # no agent yet: the finish deploys
    # Between the switch and the finish: a `git checkout` of another branch, say.
    (env.project_dir / "dagster_cloud.yaml").write_text("locations: []\n")
    with fake_agent(sandbox, env.stored_agent_token()):
        (request,) = env.sensor_tick().run_requests
        assert env.run("finish_hybrid_migration", tags=request.tags).success
    assert admin.locations_as_document() == document


# 6 -------------------------------------------------------------------------------------------


class Blinking:
    """A client whose workspace answers fail `failures` times (each kind once, in turn), then
    show every location LOADED."""

    def __init__(self, failures: int):
        from migration_pipeline.plus.errors import (
            DagsterPlusPythonError,
            DagsterPlusUnavailableError,
            OutcomeUnknownError,
        )

        kinds = [DagsterPlusPythonError, DagsterPlusUnavailableError, OutcomeUnknownError]
        self.errors = [kinds[i % 3]("workspace", f"blip {i}") for i in range(failures)]
        self.calls = 0

    def workspace(self):
        from migration_pipeline.plus.types import LocationEntry

        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return [LocationEntry("analytics", "LOADED", None)]


def test_6_transient_answers_inside_the_window_are_waited_through():
    from migration_pipeline.finish.core import wait_until_loaded

    now = [0.0]
    client = Blinking(failures=5)
    entries = wait_until_loaded(
        client,
        ["analytics"],
        timeout_seconds=60,
        poll_seconds=1,
        clock=lambda: now[0],
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
    )
    assert [e.name for e in entries] == ["analytics"] and client.calls == 6


def test_6_transient_answers_past_the_timeout_say_what_dagster_plus_answered():
    from migration_pipeline.finish.core import LoadTimeout, wait_until_loaded

    now = [0.0]
    with pytest.raises(LoadTimeout, match="Dagster\\+ last answered: .*blip"):
        wait_until_loaded(
            Blinking(failures=1000),
            ["analytics"],
            timeout_seconds=10,
            poll_seconds=1,
            clock=lambda: now[0],
            sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
        )


def test_6_an_error_no_retry_fixes_still_ends_the_wait_at_once():
    from migration_pipeline.finish.core import wait_until_loaded
    from migration_pipeline.plus.errors import NotAuthorizedError

    class Refused:
        def workspace(self):
            raise NotAuthorizedError("workspace", "token rejected")

    with pytest.raises(NotAuthorizedError):
        wait_until_loaded(Refused(), ["a"], 60, 1, clock=lambda: 0.0, sleep=lambda s: None)


@pytest.mark.parametrize("kind", ["DagsterPlusPythonError", "OutcomeUnknownError"])
def test_6_a_transient_answer_is_left_to_the_ops_retry_policy(kind):
    from migration_pipeline.plus import errors
    from migration_pipeline.resources import DagsterPlusResource

    resource = DagsterPlusResource(url="http://127.0.0.1:9", api_token="user:acme:" + "0" * 32)
    context = dg.build_op_context()
    with pytest.raises(getattr(errors, kind)), resource.session(context):
        raise getattr(errors, kind)("deployLocations", "lost")


# 10 ------------------------------------------------------------------------------------------


def test_10_the_rollback_says_what_it_overwrites_first_and_revokes_the_token(env, sandbox):
    admin = client_for(sandbox)
    migrated(env, sandbox)
    # Since the migration: a location added, another one's image shipped, a setting changed.
    document = admin.locations_as_document()["locations"]
    admin.deploy_locations(
        {
            "locations": [
                dict(document[0], location_name="added_since", image="r.example/a:1"),
                dict(document[1], image="r.example/ml:v9"),
            ]
        }
    )
    admin.set_deployment_settings({**admin.deployment_settings(), "run_queue": {"x": 1}})
    rollback = env.run("rollback_to_serverless")
    output = rollback.output_for_node("restore_serverless")
    assert "agent_type" in output
    logs = [e.user_message for e in env.instance.all_logs(rollback.run_id)]
    deleted = next(i for i, m in enumerate(logs) if "locations deleted by the rollback" in m)
    restored = next(i for i, m in enumerate(logs) if m.startswith("restored: "))
    assert deleted < restored  # said before it acted
    assert "added_since" in logs[deleted]
    assert any("locations overwritten by the rollback: ml_models" in m for m in logs)
    assert any("settings overwritten by the rollback: run_queue" in m for m in logs)
    assert any("Stop the Hybrid agent of prod now" in m for m in logs)
    (token,) = [t for t in admin.agent_tokens() if "prod" in (t.description or "")]
    assert token.revoked
    assert any(f"revoked the migration's agent token {token.id}" in m for m in logs)


# 9 -------------------------------------------------------------------------------------------


def test_9_an_upgrade_inside_the_window_reads_what_the_older_version_recorded(env, sandbox):
    """Cut over by an older version of this code location (records in its shapes: no versions,
    the deploy document as two entries, the agent's identity as the install files' own entries),
    finished by this one: the sensor and the finish read every record and deploy."""
    import hashlib
    import json

    admin = client_for(sandbox)
    prepared = env.prepare()
    recorded = prepared.asset_materializations_for_node("code_location_images")[0].metadata
    document = recorded["deploy"].value["document"]
    assert env.run("cutover").success  # no agent yet: the finish deploys
    snapshot = (
        env.instance.get_latest_materialization_event(dg.AssetKey("pre_cutover_snapshot"))
        .asset_materialization.metadata["snapshot"]
        .value
    )
    label = (
        prepared.asset_materializations_for_node("hybrid_agent_install_files")[0]
        .metadata["agent_identity"]
        .value["label"]
    )
    older = {
        "pre_cutover_snapshot": {"snapshot": dg.MetadataValue.json(snapshot)},
        "code_location_images": {
            "deploy_document": dg.MetadataValue.json(document),
            "deploy_document_sha256": hashlib.sha256(
                json.dumps(document, sort_keys=True).encode()
            ).hexdigest(),
        },
        "hybrid_agent_install_files": {"agent_label": label, "agents_before": []},
    }
    for key, metadata in older.items():
        env.instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key, partition=env.deployment, metadata=metadata)
        )
    with fake_agent(sandbox, env.stored_agent_token()):
        (request,) = env.sensor_tick().run_requests
        assert env.run("finish_hybrid_migration", tags=request.tags).success
    assert admin.locations_as_document() == document


def test_9_a_rollback_with_an_unreadable_snapshot_fails_with_what_to_do(env, sandbox):
    env.prepare()
    assert env.run("cutover").success
    env.instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="pre_cutover_snapshot",
            partition=env.deployment,
            metadata={"snapshot": dg.MetadataValue.json({"deployment": "prod"})},
        )
    )
    rollback = env.run("rollback_to_serverless", raise_on_error=False)
    message = step_failure_message(rollback)
    assert "the pre-cutover snapshot recorded earlier cannot be read" in message
    assert "TypeError" not in message and switches(sandbox) == ["HYBRID"]


def test_10_a_rollback_whose_reconcile_fails_leaves_the_deployment_as_it_was(
    env, sandbox, monkeypatch
):
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.plus.errors import DagsterPlusUnavailableError

    admin = client_for(sandbox)
    migrated(env, sandbox)
    hybrid_document = admin.locations_as_document()
    real = DagsterPlusClient.reconcile_locations

    def unavailable(self, document):
        raise DagsterPlusUnavailableError("reconcileLocationsFromDocument", "HTTP 503 x5")

    monkeypatch.setattr(DagsterPlusClient, "reconcile_locations", unavailable)
    rollback = env.run("rollback_to_serverless", raise_on_error=False)
    monkeypatch.setattr(DagsterPlusClient, "reconcile_locations", real)
    message = step_failure_message(rollback)
    assert "the agent type was put back to HYBRID, so the deployment works as before" in message
    assert admin.current_deployment().agent_type == "HYBRID"
    assert admin.locations_as_document() == hybrid_document
    assert switches(sandbox) == ["HYBRID", "SERVERLESS", "HYBRID"]
    assert not [t for t in admin.agent_tokens() if t.revoked]  # nothing after it was done
    assert env.run("rollback_to_serverless").success  # and run again, it completes
    assert admin.current_deployment().agent_type == "SERVERLESS"


# The guard under any interleaving -----------------------------------------------------------


SEEDS = range(200)


def test_any_interleaving_lets_at_most_one_action_act_at_a_time():
    """Random interleavings of launches, starts and ends of cutover, finish and rollback runs
    of one deployment (a fixed seed list), through the real guard over a real (in-memory)
    instance: a run whose start finds another launched and not ended is refused, one that finds
    none acts, so no two runs ever act at once. Dagster+ is not involved: 200 seeds take
    seconds."""
    import random

    from migration_pipeline.deployments import ACTION_JOBS, refuse_beside_another_action

    acted = refused = 0
    with dg.DagsterInstance.ephemeral() as instance:
        for seed in SEEDS:
            rng = random.Random(seed)
            deployment = f"d{seed}"
            jobs = [rng.choice(ACTION_JOBS) for _ in range(rng.randint(2, 6))]
            occurrences = [run for run in range(len(jobs)) for _ in range(3)]
            rng.shuffle(occurrences)
            ids: dict[int, str] = {}
            ended: set[int] = set()
            acting: set[int] = set()
            for run, step in _per_run_ordered(occurrences):
                if step == "launch":
                    ids[run] = instance.add_run(
                        DagsterRun(
                            job_name=jobs[run],
                            status=dg.DagsterRunStatus.NOT_STARTED,
                            tags={"dagster/partition": deployment},
                        )
                    ).run_id
                elif step == "start":
                    others = set(ids) - ended - {run}
                    try:
                        refuse_beside_another_action(instance, deployment, ids[run], jobs[run])
                    except dg.Failure:
                        assert others, (seed, jobs, run)  # refused only beside another
                        refused += 1
                        continue
                    assert not others and not acting, (seed, jobs, run)
                    acting.add(run)
                    acted += 1
                else:
                    acting.discard(run)
                    ended.add(run)
                    instance.report_run_canceled(instance.get_run_by_id(ids[run]))
    assert acted and refused  # the seeds reach both outcomes


def _per_run_ordered(occurrences: list[int]) -> list[tuple[int, str]]:
    """Each run's n-th occurrence in the shuffled list is its n-th step: launch, start, end."""
    steps = ("launch", "start", "end")
    seen: dict[int, int] = {}
    ordered = []
    for run in occurrences:
        ordered.append((run, steps[seen.get(run, 0)]))
        seen[run] = seen.get(run, 0) + 1
    return ordered
