"""Issue 21: the migration's actions in random interleavings, through Dagster+ (the sandbox, over
HTTP, with the real client) and a real Dagster instance, over a fixed list of seeds.

Each seed launches cutovers, rollbacks and manual finishes, ticks the real readiness sensor
(which launches finishes of its own), starts the migration's agent, lets the new CI ship an
image, and injects one-shot faults (a 503, or an answer lost after Dagster+ acted) into the
calls; a step that fails transiently is retried later, as the ops' RetryPolicy does, with other
runs' steps in between. Each step is the very function the op runs (`snapshot_before_switch`,
`switch_recorded`, `deploy_at_once`, `deploy_planned_locations`, `restore`, each behind
`refuse_beside_another_action` as its op is), through `DagsterPlusResource.session`'s error
mapping. After every step, Dagster+'s own event log must show:

- at most one switch per run, in its own direction (a cutover to HYBRID, a rollback back);
- a HYBRID deployment has its switch recorded (a lost answer included);
- no deploy by the migration onto a deployment that was not HYBRID at that moment;
- no image the CI shipped replaced by the migration's older one (until a rollback, which says
  what it overwrites and is the user's choice).

Time is not involved: a step is a call, never a wait.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest
from conftest import client_for
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.dagster_run import DagsterRun
from migration_env import sensor_tick
from support.agent import heartbeat

from migration_pipeline.agent.serving import AGENT_IDENTITY, AgentIdentity
from migration_pipeline.cutover.defs import snapshot_before_switch, switch_recorded
from migration_pipeline.deployments import (
    CUTOVER_JOB,
    FINISH_JOB,
    PARTITION_TAG,
    ROLLBACK_JOB,
    add_deployment_partitions,
    latest_cutover,
    refuse_beside_another_action,
)
from migration_pipeline.finish.deploy import deploy_at_once, deploy_planned_locations
from migration_pipeline.images.publish import DEPLOY_DOCUMENT
from migration_pipeline.records import latest, record_metadata
from migration_pipeline.resources import DagsterPlusResource
from migration_pipeline.rollback.core import restore
from migration_pipeline.snapshot import SNAPSHOT, take_snapshot

SEEDS = range(200)  # fixed: every run of the suite plays the same 200 interleavings
LABEL = "migration_pipeline interleavings agent"
MAX_RETRIES = 2  # DAGSTER_PLUS_RETRY's
FAULT_OPERATIONS = (
    "updateDeploymentAgentType",
    "deployLocations",
    "reconcileLocationsFromDocument",
    "locationsAsDocument",
    "deploymentByName",
)
log = logging.getLogger("interleavings")


@dataclass
class Run:
    job: str
    steps: list[str]
    run_id: str = ""
    attempts: int = 0
    done: bool = False
    switches: list[str] = field(default_factory=list)


@dataclass
class World:
    """One seed: the instance, Dagster+, and what the seed has left to do."""

    instance: dg.DagsterInstance
    sandbox: Any
    resource: DagsterPlusResource
    runs: list[Run]
    ticks: int
    ci_ships: int
    faults: int
    agent_started: bool = False
    cursor: str | None = None
    ci_images: dict[str, str] = field(default_factory=dict)  # shipped since the last rollback

    def session(self):
        context = SimpleNamespace(log=log, has_partition_key=True, partition_key="prod")
        return self.resource.session(context)


@pytest.fixture
def sandbox(start_sandbox):
    return start_sandbox()


@pytest.fixture
def instance():
    """One in-memory instance for every seed, wiped between them (a new one costs 0.1 s)."""
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def test_no_interleaving_switches_twice_deploys_onto_serverless_or_downgrades(
    sandbox, instance, monkeypatch
):
    monkeypatch.setenv("DAGSTER_CLOUD_URL", sandbox.url)
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT", sandbox.deployment)
    monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", sandbox.token("admin"))
    admin = client_for(sandbox)
    deployment = admin.deployment_by_name("prod")
    serverless = take_snapshot(admin, deployment.id, deployment.agent_type)
    hybrid_document = {
        "locations": [
            {**loc, "image": f"registry.test/{loc['location_name']}:migration"}
            for loc in serverless.locations_document["locations"]
        ]
    }
    agent_token = admin.create_agent_token("interleavings").token.get_secret_value()
    resource = DagsterPlusResource(
        url=sandbox.url,
        deployment="prod",
        api_token=sandbox.token("admin"),
        max_attempts=1,  # every fault reaches the step, whose retry is the test's
        backoff_seconds=0.0,
    )
    outcomes: dict[str, int] = {}
    for seed in SEEDS:
        restore(admin, serverless)  # each seed starts from the Serverless deployment
        sandbox.faults.clear()
        instance.wipe()  # and from an instance with no runs and no records
        world = new_world(seed, instance, sandbox, resource, serverless, hybrid_document)
        first_event = len(sandbox.state.events())
        play(random.Random(seed), world, agent_token, first_event, seed)
        for run in world.runs:
            key = f"{run.job}:{'done' if run.done else 'open'}:{len(run.switches)}"
            outcomes[key] = outcomes.get(key, 0) + 1
    # The seeds reach the outcomes that matter: switches both ways, and refusals.
    assert outcomes.get(f"{CUTOVER_JOB}:done:1") and outcomes.get(f"{ROLLBACK_JOB}:done:1")
    assert outcomes.get(f"{CUTOVER_JOB}:done:0") and outcomes.get(f"{FINISH_JOB}:done:0")


def new_world(seed, instance, sandbox, resource, serverless, hybrid_document) -> World:
    rng = random.Random(seed)
    add_deployment_partitions(instance, ["prod"])
    for key, metadata in (
        ("pre_cutover_snapshot", record_metadata(SNAPSHOT, serverless)),
        ("code_location_images", record_metadata(DEPLOY_DOCUMENT, hybrid_document)),
        ("hybrid_agent_install_files", record_metadata(AGENT_IDENTITY, AgentIdentity(LABEL))),
    ):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=key, partition="prod", metadata=metadata)
        )
    runs = [Run(CUTOVER_JOB, ["preflight", "snapshot", "switch", "deploy_at_once"])]
    runs += [Run(CUTOVER_JOB, ["preflight", "snapshot", "switch", "deploy_at_once"])] * (
        rng.random() < 0.3
    )
    runs += [Run(ROLLBACK_JOB, ["restore"]) for _ in range(rng.choice([0, 0, 1, 1, 2]))]
    runs += [Run(FINISH_JOB, ["deploy"]) for _ in range(rng.choice([0, 1, 1, 2]))]
    return World(
        instance,
        sandbox,
        resource,
        [Run(r.job, list(r.steps)) for r in runs],
        ticks=rng.randint(1, 4),
        ci_ships=rng.choice([0, 1]),
        faults=rng.randint(0, 3),
    )


def play(rng: random.Random, world: World, agent_token: str, first_event: int, seed: int):
    """Pick any enabled action at random until none is left, checking after each."""
    for _ in range(200):
        actions = enabled(world)
        if not actions:
            return
        kind, run = rng.choice(actions)
        before = len(world.sandbox.state.events())
        if kind in ("launch", "step"):
            assert run is not None
            (launch if kind == "launch" else step)(world, run)
        elif kind == "tick":
            tick(world)
        elif kind == "agent":
            world.agent_started = True
            heartbeat(
                world.sandbox, agent_token, "interleavings", "K8sUserCodeLauncher", label=LABEL
            )
        elif kind == "ci":
            ship(world, rng)
        elif kind == "fault":
            world.faults -= 1
            world.sandbox.faults.add(
                operation=rng.choice(FAULT_OPERATIONS),
                kind=rng.choice(["http_503", "drop_after"]),
                count=1,
            )
        check(world, run if kind == "step" else None, before, first_event, seed)
    raise AssertionError(f"seed {seed}: the interleaving did not end")


def enabled(world: World) -> list[tuple[str, Run | None]]:
    actions: list[tuple[str, Run | None]] = []
    for run in world.runs:
        if not run.run_id:
            actions.append(("launch", run))
        elif not run.done:
            actions.append(("step", run))
    actions += [("tick", None)] * (world.ticks > 0)
    actions += [("agent", None)] * (not world.agent_started)
    actions += [("fault", None)] * (world.faults > 0)
    hybrid = world.sandbox.state.deployment("prod").agent_type == "HYBRID"
    actions += [("ci", None)] * (world.ci_ships > 0 and hybrid)
    return actions


def launch(world: World, run: Run, tags: dict[str, str] | None = None) -> None:
    stored = world.instance.add_run(
        DagsterRun(
            job_name=run.job,
            status=dg.DagsterRunStatus.NOT_STARTED,
            tags={PARTITION_TAG: "prod", **(tags or {})},
        )
    )
    run.run_id = stored.run_id


def step(world: World, run: Run) -> None:
    """The run's next step, as its op runs it; a transient failure is retried later (at most
    MAX_RETRIES times), a Failure that forbids retries ends the run."""
    name = run.steps[0]
    instance = world.instance
    try:
        with world.session() as client:
            if name in ("preflight", "deploy", "restore"):
                action = {CUTOVER_JOB: "cutover", FINISH_JOB: "finish", ROLLBACK_JOB: "rollback"}
                refuse_beside_another_action(instance, "prod", run.run_id, action[run.job])
            if name == "snapshot":
                taken, new = snapshot_before_switch(instance, client, ())
                if new:  # recorded, as record_pre_cutover_snapshot records it
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization(
                            asset_key="pre_cutover_snapshot",
                            partition="prod",
                            metadata=record_metadata(SNAPSHOT, taken),
                        )
                    )
            elif name == "switch":
                snapshot = latest(instance, SNAPSHOT, "prod")
                assert snapshot is not None
                switch_recorded(instance, client, run.run_id, snapshot, 1_000.0 + len(run.steps))
            elif name == "deploy_at_once":
                deploy_at_once(instance, client, run.run_id)
            elif name == "deploy":
                deploy_planned_locations(instance, client)
            elif name == "restore":
                snapshot = latest(instance, SNAPSHOT, "prod")
                assert snapshot is not None
                restore(client, snapshot)
    except dg.Failure as failure:
        if not failure.allow_retries:
            return end(world, run, dg.DagsterRunStatus.FAILURE)
        return retry_or_fail(world, run)
    except Exception:  # transient: left to the op's RetryPolicy
        return retry_or_fail(world, run)
    run.steps.pop(0)
    run.attempts = 0
    if not run.steps:
        end(world, run, dg.DagsterRunStatus.SUCCESS)


def retry_or_fail(world: World, run: Run) -> None:
    run.attempts += 1
    if run.attempts > MAX_RETRIES:
        end(world, run, dg.DagsterRunStatus.FAILURE)


def end(world: World, run: Run, status: dg.DagsterRunStatus) -> None:
    run.done = True
    event = (
        DagsterEventType.RUN_SUCCESS
        if status == dg.DagsterRunStatus.SUCCESS
        else DagsterEventType.RUN_FAILURE
    )
    world.instance.report_dagster_event(
        DagsterEvent(event_type_value=event.value, job_name=run.job), run.run_id
    )
    if run.job == ROLLBACK_JOB and status == dg.DagsterRunStatus.SUCCESS:
        world.ci_images.clear()  # the rollback put the Serverless document back, as it said


def tick(world: World) -> None:
    world.ticks -= 1
    result = sensor_tick(world.instance, world.cursor)
    world.cursor = result.cursor or world.cursor
    for request in result.run_requests or []:
        run = Run(FINISH_JOB, ["deploy"])
        world.runs.append(run)
        launch(world, run, dict(request.tags))


def ship(world: World, rng: random.Random) -> None:
    """The new CI deploys a newer image of one location onto the Hybrid deployment."""
    world.ci_ships -= 1
    state = world.sandbox.state
    location = rng.choice(state.locations(state.existing_deployment("prod"))).document
    image = f"registry.test/{location['location_name']}:ci-{rng.randint(1, 10**6)}"
    world.sandbox.faults.clear()  # the CI's own call is not the migration's to fail
    with client_for(world.sandbox) as admin:
        admin.deploy_locations({"locations": [{**location, "image": image}]})
    world.ci_images[location["location_name"]] = image


def check(world: World, run: Run | None, before: int, first_event: int, seed: int) -> None:
    events = world.sandbox.state.events()
    if run is not None:
        direction = "HYBRID" if run.job == CUTOVER_JOB else "SERVERLESS"
        for event in events[before:]:
            if event["kind"] == "agent_type_switched":
                run.switches.append(event["detail"]["to"])
                assert run.job != FINISH_JOB, (seed, "a finish switched", run)
                assert event["detail"]["to"] == direction, (seed, "switched the wrong way", run)
                assert len(run.switches) <= 1, (seed, "switched twice in one run", run)
    agent_type = "SERVERLESS"
    for event in events[first_event:]:
        if event["kind"] == "agent_type_switched":
            agent_type = event["detail"]["to"]
        elif event["kind"] == "location_deployed" and ":migration" in str(event["detail"]["image"]):
            assert agent_type == "HYBRID", (seed, "deployed onto a SERVERLESS deployment", event)
    state = world.sandbox.state
    if state.existing_deployment("prod").agent_type == "HYBRID":
        # Only a cutover switches to HYBRID, and it records the switch the moment it happens.
        assert latest_cutover(world.instance, "prod") is not None, (seed, "unrecorded switch")
    current = {
        loc.name: loc.document.get("image")
        for loc in state.locations(state.existing_deployment("prod"))
    }
    for name, image in world.ci_images.items():
        assert current.get(name) == image, (seed, f"{name}'s CI image was replaced", current)
