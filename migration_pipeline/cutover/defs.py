"""The cutover phase: preflight, the snapshot of what must survive, the per_location strategy's
moves (cutover/moves.py), and the switch to HYBRID.
Actions are ops in the `cutover` job; the snapshot is data, recorded as the `pre_cutover_snapshot`
asset by the op that takes it (the asset graph cannot take it, let alone switch anything).
The no-agent window starts at the switch."""

import time
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from migration_pipeline.deployments import (
    CUTOVER_JOB,
    DEPLOYMENTS,
    latest_cutover,
    rollback_since,
)
from migration_pipeline.records import (
    latest,
    log_check_evaluation,
    readable,
    record_metadata,
    switch_tags,
)
from migration_pipeline.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource

if TYPE_CHECKING:
    from migration_pipeline.cutover.core import Switch
    from migration_pipeline.cutover.moves import LocationMoves
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.snapshot import Snapshot

GROUP = "cutover"
SNAPSHOT_KEY = dg.AssetKey("pre_cutover_snapshot")
# On every cutover run: the run queue's tag limit (instance/dagster.yaml) keeps cutovers apart,
# across deployments.
CUTOVER_TAG = "migration_pipeline/cutover"

pre_cutover_snapshot = dg.AssetSpec(
    SNAPSHOT_KEY,
    group_name=GROUP,
    partitions_def=DEPLOYMENTS,
    kinds={"dagster"},
    description="What must survive the cutover, read just before it: runs by status, the "
    "newest run ids, schedules and sensors, deployment settings, the locations document. "
    "Recorded by the cutover job; the finish checks and the rollback read it.",
)


MOVES_KEY = dg.AssetKey("hybrid_location_moves")
hybrid_location_moves = dg.AssetSpec(
    MOVES_KEY,
    group_name=GROUP,
    partitions_def=DEPLOYMENTS,
    kinds={"dagster"},
    description="With strategy per_location: each code location moved to the Hybrid agent "
    "one at a time through the migration's agent queue while the deployment was still "
    "Serverless, with the time it was served by neither agent. Recorded by the cutover job, "
    "one observation per location as it moves.",
)


@dg.asset_check(
    asset=MOVES_KEY,
    blocking=True,
    partitions_def=DEPLOYMENTS,
    description="Every location is on the Hybrid agent, LOADED with its schedules and sensors, "
    "before the switch (none failed and was sent back, none left alone).",
)
def every_location_on_the_hybrid_agent(
    context: dg.AssetCheckExecutionContext,
) -> dg.AssetCheckResult:
    from migration_pipeline.cutover.moves import LOCATION_MOVES

    moves = latest(context.instance, LOCATION_MOVES, context.partition_key)
    if moves is None:
        return dg.AssetCheckResult(passed=False, metadata={"why": "no moves recorded yet"})
    return dg.AssetCheckResult(**_moves_outcome(moves))


def _moves_outcome(moves: "LocationMoves") -> dict:
    from migration_pipeline.lib.markdown import table

    return {
        "passed": moves.every_location_moved,
        "metadata": {
            "strategy": moves.strategy,
            "moves": dg.MetadataValue.md(
                table(
                    ["location", "queue", "state", "served by neither agent"],
                    [m.as_row() for m in moves.moves],
                )
            ),
            "failed": moves.failed or "",
            "reason": moves.reason or "",
        },
    }


@dg.asset_check(
    asset=SNAPSHOT_KEY,
    blocking=True,
    partitions_def=DEPLOYMENTS,
    description="The snapshot holds what the checks compare with: a locations "
    "document with every location, run counts that match the run ids kept.",
)
def snapshot_is_complete(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    from migration_pipeline.snapshot import SNAPSHOT

    snapshot = latest(context.instance, SNAPSHOT, context.partition_key)
    if snapshot is None:
        return dg.AssetCheckResult(passed=False, metadata={"why": "no snapshot yet"})
    return dg.AssetCheckResult(**_completeness(snapshot))


def _completeness(snapshot: "Snapshot") -> dict:
    from migration_pipeline.snapshot import NEWEST_RUNS_KEPT

    locations = snapshot.locations_document.get("locations") or []
    runs = sum(snapshot.run_counts.values())
    expected_ids = min(runs, NEWEST_RUNS_KEPT)
    passed = bool(locations) and len(snapshot.newest_run_ids) == expected_ids
    return {
        "passed": passed,
        "metadata": {
            "locations": len(locations),
            "runs": runs,
            "run_ids_kept": len(snapshot.newest_run_ids),
            "schedules_and_sensors": len(snapshot.instigators),
        },
    }


def snapshot_before_switch(
    instance: dg.DagsterInstance, client: "DagsterPlusClient", settings_removed: tuple[str, ...]
) -> "tuple[Snapshot, bool]":
    """The snapshot the switch goes from, and whether it was taken now: a SERVERLESS deployment
    is read now; an already HYBRID one keeps the snapshot taken before its switch (a Failure
    when there is none: nothing could be verified)."""
    from migration_pipeline.snapshot import SNAPSHOT, take_snapshot

    deployment = client.deployment_by_name(client.deployment)
    previous = latest(instance, SNAPSHOT, deployment.name)
    if deployment.agent_type != "HYBRID":
        snapshot = take_snapshot(client, deployment.id, deployment.agent_type, settings_removed)
        return _with_serverless_documents(instance, snapshot, previous), True
    if previous is None:
        raise dg.Failure(
            f"{deployment.name} is already HYBRID and no snapshot was taken before: there is "
            "nothing to verify against.",
            allow_retries=False,
        )
    return previous, False


def _with_serverless_documents(
    instance: dg.DagsterInstance, snapshot: "Snapshot", previous: "Snapshot | None"
) -> "Snapshot":
    """A re-run after per_location moves: the moved locations keep the Serverless documents
    the previous snapshot recorded (moves.keep_serverless_documents)."""
    from migration_pipeline.cutover.moves import keep_serverless_documents
    from migration_pipeline.images.publish import DEPLOY_DOCUMENT

    if previous is None:
        return snapshot
    try:
        desired = latest(instance, DEPLOY_DOCUMENT, snapshot.deployment)
    except dg.Failure:  # unreadable: the preflight has already refused it
        return snapshot
    return keep_serverless_documents(snapshot, previous, desired) if desired else snapshot


def switch_recorded(
    instance: dg.DagsterInstance,
    client: "DagsterPlusClient",
    run_id: str,
    snapshot: "Snapshot",
    now: float,
) -> "tuple[Switch, float]":
    """The switch to HYBRID, once, recorded on the cutover run the moment Dagster+ answers it
    (if anything after it fails for good, the sensor, the progress and the rollback still see a
    switched deployment, with the real switch time). Returns what happened and the time of the
    switch: `now`, or, when an earlier run (or an earlier attempt of this one) switched, its
    time."""
    from migration_pipeline.cutover.core import switch_to_hybrid

    previous = latest_cutover(instance, client.deployment)
    if previous is not None and rollback_since(instance, previous, client.deployment):
        previous = None  # that switch was rolled back: it is not the one in force
    switch = switch_to_hybrid(
        client,
        tuple(snapshot.settings_removed_at_cutover),
        on_switched=lambda: instance.add_run_tags(run_id, switch_tags(now)),
    )
    if switch.switched:
        return switch, now
    cutover_at = previous.cutover_at if previous else now
    instance.add_run_tags(run_id, switch_tags(cutover_at))
    return switch, cutover_at


# -- the ops -----------------------------------------------------------------------------------


@dg.op(
    description="What must hold before anything changes: the deployments before this one in "
    "deployment_order have finished with every check green, the token is an Organization "
    "Admin's, the applied dagster_cloud.yaml (or dg project files) validates, every image is in its registry and "
    "was proven to load its definitions, every location is loaded. Reads only; a failure "
    "changes nothing."
)
def cutover_preflight(context: dg.OpExecutionContext, dagster_plus: DagsterPlusResource) -> list:
    from migration_pipeline.agent.token import AGENT_TOKEN
    from migration_pipeline.cutover.core import preflight_problems
    from migration_pipeline.deployments import (
        earlier_in_order,
        order_problems,
        progress,
        refuse_beside_another_action,
    )
    from migration_pipeline.images.prove import PROOF_CHECK, PROVEN_IMAGES
    from migration_pipeline.images.publish import IMAGES
    from migration_pipeline.plan.applied import APPLIED_PROJECT
    from migration_pipeline.records import latest_passed_check_record, required

    deployment = dagster_plus.deployment_for(context)
    refuse_beside_another_action(context.instance, deployment, context.run_id, "cutover")
    applied = required(context.instance, APPLIED_PROJECT, "the cutover", deployment)
    images = required(context.instance, IMAGES, "the cutover", deployment)
    settings = applied.target_settings()
    order = settings.deployment_order
    before = {
        name: progress(context.instance, name) for name in earlier_in_order(deployment, order)
    }
    for done in before.values():
        if done.state == "finished":
            context.log.info(
                f"{done.deployment} (before {deployment} in deployment_order) finished with "
                f"every check green; its downtime was {done.downtime_seconds or 0:.1f}s"
            )
    problems = order_problems(deployment, order, before)
    if not problems:
        with dagster_plus.session(context) as client:
            problems = preflight_problems(
                client,
                applied,
                images,
                latest_passed_check_record(
                    context.instance, PROVEN_IMAGES, PROOF_CHECK, deployment
                ),
                token.token_id
                if (token := latest(context.instance, AGENT_TOKEN, deployment))
                else None,
            )
    if images and not settings.prove_images:
        context.log.warning(
            "the images were not proven to load their definitions: the target settings say "
            "`prove_images: false`"
        )
    if problems:
        raise dg.Failure(
            f"Preflight of {deployment}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nNothing was changed.",
            metadata={
                "earlier_deployments": dg.MetadataValue.json(
                    {name: done.state for name, done in before.items()}
                )
            },
            allow_retries=False,
        )
    return list(applied.settings_removed_at_cutover)


@dg.op(
    description="Reads what must survive (runs, schedules and sensors, settings, the "
    "locations document) and records it as the pre_cutover_snapshot asset. On an already "
    "HYBRID deployment it keeps the snapshot taken before the switch."
)
def record_pre_cutover_snapshot(
    context: dg.OpExecutionContext,
    dagster_plus: DagsterPlusResource,
    settings_removed_at_cutover: list,
) -> dict:
    from migration_pipeline.snapshot import SNAPSHOT

    with dagster_plus.session(context) as client:
        snapshot, taken = snapshot_before_switch(
            context.instance, client, tuple(settings_removed_at_cutover)
        )
    if not taken:
        context.log.info("already HYBRID: keeping the snapshot taken before the cutover")
        return SNAPSHOT.to_plain(snapshot)
    completeness = _completeness(snapshot)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=SNAPSHOT_KEY,
            partition=snapshot.deployment,
            metadata={
                "runs": sum(snapshot.run_counts.values()),
                "runs_by_status": dg.MetadataValue.json(snapshot.run_counts),
                "schedules_and_sensors": len(snapshot.instigators),
                "locations": len(snapshot.locations_document.get("locations") or []),
                **record_metadata(SNAPSHOT, snapshot),
            },
        )
    )
    log_check_evaluation(
        context,
        dg.AssetCheckEvaluation(
            asset_key=SNAPSHOT_KEY,
            check_name="snapshot_is_complete",
            passed=completeness["passed"],
            metadata=completeness["metadata"],
            partition=snapshot.deployment,
        ),
    )
    # This op records and succeeds (a failing op would drop what it logged); the switch refuses
    # an incomplete snapshot, as a blocking check would.
    return SNAPSHOT.to_plain(snapshot)  # plain data: a re-execution after an upgrade reads it


class MoveConfig(dg.Config):
    load_timeout_seconds: float = Field(
        600.0, gt=0, description="How long one location may take to load on the Hybrid agent."
    )
    poll_seconds: float = Field(0.5, gt=0, description="How often its load status is read.")


@dg.op(
    description="strategy per_location: while the deployment is still Serverless, moves each "
    "code location to the migration's Hybrid agent through its agent queue, one at a time, "
    "each LOADED with its schedules and sensors before the next; a location that fails goes "
    "back to its Serverless document at once and the run stops. strategy switch: nothing "
    "moves before the switch."
)
def move_locations_one_at_a_time(
    context: dg.OpExecutionContext,
    config: MoveConfig,
    dagster_plus: DagsterPlusResource,
    snapshot_record: dict,
) -> dict:
    from migration_pipeline.cutover.moves import (
        LOCATION_MOVES,
        LocationMoves,
        MoveFailed,
        UnknownMoveOrder,
        move_one_at_a_time,
    )
    from migration_pipeline.images.publish import DEPLOY_DOCUMENT
    from migration_pipeline.plan.applied import APPLIED_PROJECT
    from migration_pipeline.records import required
    from migration_pipeline.snapshot import SNAPSHOT

    with readable():
        snapshot = SNAPSHOT.typed(snapshot_record)
    deployment = snapshot.deployment
    settings = required(
        context.instance, APPLIED_PROJECT, "the cutover", deployment
    ).target_settings()
    if settings.strategy != "per_location":
        context.log.info("strategy switch: every location moves at the switch, none before")
        return {"snapshot": snapshot_record, "failed": None}
    desired = required(context.instance, DEPLOY_DOCUMENT, "the cutover", deployment)

    def record(moves: LocationMoves) -> None:
        outcome = _moves_outcome(moves)
        context.log_event(
            dg.AssetMaterialization(
                asset_key=MOVES_KEY,
                partition=deployment,
                metadata={
                    "moved": sum(m.moved for m in moves.moves),
                    "longest_unserved_seconds": dg.MetadataValue.float(
                        moves.longest_unserved_seconds
                    ),
                    **outcome["metadata"],
                    **record_metadata(LOCATION_MOVES, moves),
                },
            )
        )
        log_check_evaluation(
            context,
            dg.AssetCheckEvaluation(
                asset_key=MOVES_KEY,
                check_name="every_location_on_the_hybrid_agent",
                passed=outcome["passed"],
                metadata=outcome["metadata"],
                partition=deployment,
            ),
        )

    def moved(move) -> None:
        context.log_event(
            dg.AssetObservation(
                asset_key=MOVES_KEY,
                partition=deployment,
                metadata={
                    "location": move.location,
                    "queue": move.queue or "(default)",
                    "moved": move.moved,
                    "left_alone": move.left_alone,
                    "unserved_seconds": dg.MetadataValue.float(move.unserved_seconds),
                },
            )
        )
        context.log.info(
            f"{move.location}: "
            + (
                "changed in Dagster+ since the snapshot, left alone"
                if move.left_alone
                else f"on the Hybrid agent ({move.queue}), LOADED; served by neither agent "
                f"{move.unserved_seconds:.2f}s"
                if move.moved
                else "already on the Hybrid agent and LOADED"
            )
        )

    with dagster_plus.session(context) as client:
        _require_a_queue_agent(context, client, deployment)
        try:
            moves = move_one_at_a_time(
                client,
                desired,
                snapshot,
                config.load_timeout_seconds,
                config.poll_seconds,
                on_moved=moved,
                first=settings.move_order,
            )
        except UnknownMoveOrder as error:
            raise dg.Failure(f"{error}. Nothing was changed.", allow_retries=False) from None
        except MoveFailed as failed:
            record(
                LocationMoves(
                    deployment,
                    settings.strategy,
                    settings.routed_queue,
                    tuple(failed.moved),
                    failed.location,
                    str(failed),
                )
            )
            # This op records and succeeds (a failing op would drop what it logged); the next
            # one stops the run before the switch.
            return {"snapshot": snapshot_record, "failed": str(failed)}
    record(LocationMoves(deployment, settings.strategy, settings.routed_queue, tuple(moves)))
    return {"snapshot": snapshot_record, "failed": None}


@dg.op(
    description="Stops the cutover before the switch when a location did not move to the "
    "Hybrid agent (it was sent back to the Serverless agent; the deployment is still "
    "SERVERLESS)."
)
def stop_unless_every_location_moved(moved: dict) -> dict:
    if moved["failed"]:
        raise dg.Failure(moved["failed"], allow_retries=False)
    return moved["snapshot"]


def _require_a_queue_agent(context: dg.OpExecutionContext, client, deployment: str) -> None:
    """Nothing moves unless the migration's agent runs now, of a version that serves agent
    queues (its heartbeat's `version`); refused before anything changes."""
    from migration_pipeline.agent.serving import AGENT_IDENTITY, migration_agents
    from migration_pipeline.cutover.moves import version_serves_queues

    identity = latest(context.instance, AGENT_IDENTITY, deployment)
    agents = migration_agents(client.agents(), identity, time.time()) if identity else []
    if not agents:
        raise dg.Failure(
            "strategy per_location moves the locations to the migration's Hybrid agent while "
            "the deployment is Serverless, and that agent is not RUNNING: run "
            "prepare_hybrid_agent and start the agent with its command first. Nothing was "
            "changed.",
            allow_retries=False,
        )
    old = [a for a in agents if not version_serves_queues(a.metadata.get("version"))]
    if old:
        raise dg.Failure(
            f"the migration's agent reports dagster-cloud {old[0].metadata.get('version')!r}; "
            "agent queues are served from 1.6.0 on, so a location routed to its queue would "
            "never load. Upgrade the agent (or use strategy switch). Nothing was changed.",
            allow_retries=False,
        )


@dg.op(
    description="Switches the deployment to HYBRID (the UI's 'Switch to Hybrid') and removes "
    "the deployment settings the plan removes (none unless the target settings ask). The "
    "no-agent window starts here. Switches once: an already HYBRID deployment is left as it "
    "is."
)
def deactivate_serverless_agent(
    context: dg.OpExecutionContext, dagster_plus: DagsterPlusResource, snapshot_record: dict
) -> dg.Output[dict]:
    from migration_pipeline.snapshot import SNAPSHOT

    with readable():
        snapshot = SNAPSHOT.typed(snapshot_record)
    if not _completeness(snapshot)["passed"]:
        raise dg.Failure(
            "The snapshot is incomplete (see pre_cutover_snapshot's "
            "snapshot_is_complete check): nothing could be verified after a switch. "
            "Nothing was changed.",
            allow_retries=False,
        )
    with dagster_plus.session(context) as client:
        switch, cutover_at = switch_recorded(
            context.instance, client, context.run_id, snapshot, time.time()
        )
    if switch.switched:
        context.log.warning(
            f"{switch.deployment} switched to HYBRID: no agent serves it until "
            "the Hybrid agent runs"
        )
    else:
        context.log.info(f"{switch.deployment} is already HYBRID: not switching again")
    if switch.settings_removed:
        context.log.info(f"removed deployment settings: {', '.join(switch.settings_removed)}")
    record = {
        "deployment": switch.deployment,
        "cutover_time": cutover_at,
        "switched": switch.switched,
        "settings_removed": list(switch.settings_removed),
    }
    return dg.Output(
        record,
        metadata={
            "cutover_time": dg.MetadataValue.float(cutover_at),
            "cutover_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutover_at)),
            "switched": switch.switched,
            "settings_removed": list(switch.settings_removed),
        },
    )


@dg.op(
    description="When the migration's own agent is already RUNNING (installed before the "
    "cutover, as the README says), deploys the Hybrid locations at once, so the no-agent "
    "window is the agent's load time, not the sensor's tick and a run launch as well. "
    "Otherwise, or if the deploy fails, it leaves the deploy to the finish run that "
    "hybrid_agent_ready_sensor launches; it never fails the cutover run after the switch."
)
def deploy_if_the_agent_runs(
    context: dg.OpExecutionContext, dagster_plus: DagsterPlusResource, switched: dict
) -> None:
    from migration_pipeline.finish.deploy import deploy_at_once, left_alone_message

    deployment = dagster_plus.deployment_for(context)
    with dagster_plus.client(deployment=deployment) as client:
        planned, why_not = deploy_at_once(context.instance, client, context.run_id)
    if planned is None:
        context.log.info(why_not)
        return
    if planned.left_alone:
        context.log.warning(left_alone_message(planned.left_alone))
    context.log.info(
        f"the migration's agent runs: deployed "
        f"{', '.join(planned.deployed) or 'nothing (already so)'} "
        f"{time.time() - switched['cutover_time']:.1f}s after the switch"
    )


@dg.job(
    name=CUTOVER_JOB,
    partitions_def=DEPLOYMENTS,
    tags={CUTOVER_TAG: "switch"},
    executor_def=dg.in_process_executor,
    op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Preflight, snapshot, (strategy per_location: every location moved to the "
    "migration's agent through its agent queue, one at a time, while Serverless serves the "
    "rest), switch to HYBRID, and the deploy at once when the migration's agent already runs. "
    "With strategy switch the no-agent window starts here; "
    "hybrid_agent_ready_sensor launches the finish (deploy if not yet, verify) as soon as the "
    "migration's agent runs.",
)
def cutover_job():
    deploy_if_the_agent_runs(
        deactivate_serverless_agent(
            stop_unless_every_location_moved(
                move_locations_one_at_a_time(record_pre_cutover_snapshot(cutover_preflight()))
            )
        )
    )
