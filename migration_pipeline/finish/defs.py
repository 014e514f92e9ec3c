"""The finish phase, launched by hybrid_agent_ready_sensor: deploy the Hybrid locations, wait
until every one is LOADED, verify that nothing was lost, run the chosen first runs on the new
agent. Deploying is an op; what it leaves,
the deployment as Hybrid serves it, is recorded as the `hybrid_deployment` asset with the
nothing-lost checks, which the UI can also run again on their own (they only read)."""

import time
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from migration_pipeline.deployments import DEPLOYMENTS, FINISH_JOB, latest_cutover
from migration_pipeline.readiness.sensor import AGENT_READY_TAG
from migration_pipeline.records import latest, log_check_evaluation, readable
from migration_pipeline.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource

if TYPE_CHECKING:
    from migration_pipeline.finish.core import Verification
    from migration_pipeline.snapshot import Snapshot

GROUP = "finish"
DEPLOYMENT_KEY = dg.AssetKey("hybrid_deployment")
CHECKS = {
    "no_run_lost": "Every run recorded before the cutover is still there and no count of "
    "finished runs went down.",
    "schedules_and_sensors_kept": "Every schedule and sensor is in the running state it had "
    "before.",
    "every_location_loaded": "Every code location is LOADED on the Hybrid agent.",
    "deployment_settings_kept": "The deployment settings are as before, less only what the plan "
    "removed at cutover.",
}

hybrid_deployment = dg.AssetSpec(
    DEPLOYMENT_KEY,
    group_name=GROUP,
    partitions_def=DEPLOYMENTS,
    kinds={"dagster"},
    deps=["pre_cutover_snapshot"],
    description="The deployment as its Hybrid agent serves it after the migration: locations, "
    "images, load status, and the no-agent window with its parts. Recorded by the finish job.",
)


def check_outcomes(
    verification: "Verification", snapshot: "Snapshot"
) -> list[tuple[str, bool, dict]]:
    """(check name, passed, metadata) of each nothing-lost check: the same for the finish op and
    for the checks run again from the UI."""
    return [
        (
            "no_run_lost",
            verification.runs_kept,
            {
                "lost_run_ids": verification.lost_run_ids[:20],
                "runs_checked": len(snapshot.newest_run_ids),
                "runs_by_status_before_after": dg.MetadataValue.json(
                    {k: list(v) for k, v in verification.count_changes.items()}
                ),
            },
        ),
        (
            "schedules_and_sensors_kept",
            not verification.instigator_changes,
            {
                "checked": len(snapshot.instigators),
                "changed": dg.MetadataValue.json(
                    {k: list(v) for k, v in verification.instigator_changes.items()}
                ),
            },
        ),
        (
            "every_location_loaded",
            verification.every_location_loaded,
            {
                "locations": verification.locations,
                "not_loaded": dg.MetadataValue.json(verification.not_loaded),
            },
        ),
        (
            "deployment_settings_kept",
            not verification.settings_changes,
            {
                "removed_as_planned": list(snapshot.settings_removed_at_cutover),
                "changed": dg.MetadataValue.json(
                    {k: list(v) for k, v in verification.settings_changes.items()}
                ),
            },
        ),
    ]


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            name,
            asset=DEPLOYMENT_KEY,
            blocking=True,
            description=text,
            partitions_def=DEPLOYMENTS,
        )
        for name, text in CHECKS.items()
    ],
    description="Compares Dagster+ now with the pre-cutover snapshot. Reads only.",
)
def verify_nothing_lost(context: dg.AssetCheckExecutionContext, dagster_plus: DagsterPlusResource):
    from migration_pipeline.finish.core import verify
    from migration_pipeline.snapshot import SNAPSHOT

    deployment = dagster_plus.deployment_for(context)
    snapshot = latest(context.instance, SNAPSHOT, deployment)
    if snapshot is None:
        for name in CHECKS:
            yield dg.AssetCheckResult(
                check_name=name,
                passed=False,
                metadata={"why": "no pre-cutover snapshot to compare with"},
            )
        return
    with dagster_plus.client(deployment=deployment) as client:
        verification = verify(client, snapshot)
    for name, passed, metadata in check_outcomes(verification, snapshot):
        yield dg.AssetCheckResult(check_name=name, passed=passed, metadata=metadata)


FIRST_RUNS_CHECK = "first_runs_succeed"


@dg.asset_check(
    asset=DEPLOYMENT_KEY,
    name=FIRST_RUNS_CHECK,
    partitions_def=DEPLOYMENTS,
    description="The run chosen for each location in the target settings (first_run) "
    "succeeded on the new agent: proof that the code runs there, not only loads. Evaluated by "
    "the finish job, which launches the runs; run again here it reads those runs' status "
    "again. Blocking for the finish only when the settings say first_run_blocking.",
)
def first_runs_succeed(
    context: dg.AssetCheckExecutionContext, dagster_plus: DagsterPlusResource
) -> dg.AssetCheckResult:
    deployment = dagster_plus.deployment_for(context)
    records = context.instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=DEPLOYMENT_KEY, asset_partitions=[deployment]), limit=20
    ).records
    runs = next(
        (
            observation.metadata["first_run_ids"]
            for record in records
            if (observation := record.asset_observation) is not None
            and "first_run_ids" in observation.metadata
        ),
        None,
    )
    if runs is None or not runs.value:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"why": "no first runs recorded: the finish job launches them"},
        )
    with dagster_plus.client(deployment=deployment) as client:
        status = {
            location: (run.status if (run := client.run(run_id)) else "NOT_FOUND")
            for location, run_id in dict(runs.value).items()
        }
    return dg.AssetCheckResult(
        passed=all(s == "SUCCESS" for s in status.values()),
        metadata={"status": dg.MetadataValue.json(status)},
    )


class FinishConfig(dg.Config):
    load_timeout_seconds: float = Field(default=600, description="How long to wait for LOADED.")
    poll_seconds: float = Field(default=1.0, description="How often to look.")
    error_settle_seconds: float = Field(
        default=20,
        description="How long a location's load error must stand before the finish fails: "
        "right after the switch an agent may load the previous (Serverless) document and "
        "report that attempt's error before it loads the deploy.",
    )


@dg.op(
    description="Deploys every location as the rewritten dagster_cloud.yaml says, with its "
    "image: only those that differ, so a re-execution redeploys nothing."
)
def deploy_hybrid_locations(
    context: dg.OpExecutionContext, dagster_plus: DagsterPlusResource
) -> dict:
    from migration_pipeline.deployments import refuse_beside_another_action
    from migration_pipeline.finish.deploy import (
        Deployed,
        deploy_planned_locations,
        left_alone_message,
    )
    from migration_pipeline.lib.plain import as_plain

    deployment = dagster_plus.deployment_for(context)
    refuse_beside_another_action(context.instance, deployment, context.run_id, "finish")
    started = time.time()
    cutover = latest_cutover(context.instance, deployment)
    with dagster_plus.session(context) as client:
        planned = deploy_planned_locations(context.instance, client)
    locations, to_deploy = planned.locations, planned.deployed
    if planned.left_alone:
        context.log.warning(left_alone_message(planned.left_alone))
    if not to_deploy and cutover is not None and cutover.deployed_at is not None:
        context.log.info("the cutover run deployed every location already: not redeploying")
        return as_plain(
            Deployed(
                locations,
                cutover.deployed_locations,
                cutover.deploy_started_at or cutover.deployed_at,
                cutover.deployed_at,
                at_cutover=True,
            )
        )
    context.log.info(
        f"deployed {', '.join(to_deploy)}"
        if to_deploy
        else "every location is already deployed as planned: not redeploying"
    )
    # Plain data to the next op: a re-execution after an upgrade of this code location reads it.
    return as_plain(Deployed(locations, tuple(to_deploy), started, time.time()))


@dg.op(
    description="Waits until every location is LOADED on the Hybrid agent (a load error "
    "fails it with the location's message), then verifies that nothing was lost and records "
    "the hybrid_deployment asset with the downtime and its parts."
)
def verify_hybrid_deployment(
    context: dg.OpExecutionContext,
    config: FinishConfig,
    dagster_plus: DagsterPlusResource,
    deployed_record: dict,
) -> dg.Output[dict]:
    from migration_pipeline.finish.core import (
        LoadError,
        LoadTimeout,
        downtime_parts,
        verify,
        wait_until_loaded,
    )
    from migration_pipeline.finish.deploy import Deployed
    from migration_pipeline.lib.plain import from_plain
    from migration_pipeline.snapshot import SNAPSHOT

    with readable():
        deployed = from_plain(Deployed, deployed_record, "deploy record", FINISH_JOB)
    deployment = dagster_plus.deployment_for(context)
    snapshot = latest(context.instance, SNAPSHOT, deployment)
    cutover = latest_cutover(context.instance, deployment)
    if snapshot is None or cutover is None:
        raise dg.Failure(
            "No cutover was recorded (run the cutover job first).", allow_retries=False
        )
    agent_ready_at = (
        cutover.cutover_at  # the agent ran before the switch
        if deployed.at_cutover
        else float(context.run.tags.get(AGENT_READY_TAG, deployed.started_at))
    )

    def progress(waiting: list[str]) -> None:
        context.log.info(
            f"waiting for {len(waiting)} of {len(deployed.locations)} locations "
            f"to load: {', '.join(waiting[:10])}"
        )

    with dagster_plus.session(context) as client:
        try:
            entries = wait_until_loaded(
                client,
                list(deployed.locations),
                config.load_timeout_seconds,
                config.poll_seconds,
                progress=progress,
                error_settle_seconds=config.error_settle_seconds,
            )
        except (LoadError, LoadTimeout) as error:
            raise dg.Failure(str(error), allow_retries=False) from None
        loaded_at = time.time()
        verification = verify(client, snapshot)
    reports = [e.updated_at for e in entries if e.updated_at is not None]
    parts = downtime_parts(
        cutover.cutover_at,
        agent_ready_at,
        deployed.started_at,
        deployed.deployed_at,
        loaded_at,
        max(reports) if reports else None,
        deployed_any=bool(deployed.deployed),
    )
    context.log.info(
        f"downtime {parts['downtime_seconds']:.1f}s: "
        + ", ".join(
            f"{k.removesuffix('_seconds')} {v:.1f}s"
            for k, v in parts.items()
            if k != "downtime_seconds"
        )
    )
    context.log_event(
        dg.AssetMaterialization(
            asset_key=DEPLOYMENT_KEY,
            partition=deployment,
            metadata={
                **{k: dg.MetadataValue.float(v) for k, v in parts.items()},
                "cutover_at": dg.MetadataValue.timestamp(cutover.cutover_at),
                "deployed_at": dg.MetadataValue.timestamp(deployed.deployed_at),
                # The cutover run deploys at once when the agent already runs; else this run.
                "deployed_by": "cutover" if deployed.at_cutover else "finish",
                "deployed": list(deployed.deployed),
                "load_status": dg.MetadataValue.json({e.name: e.load_status for e in entries}),
            },
        )
    )
    failed = []
    for name, passed, metadata in check_outcomes(verification, snapshot):
        log_check_evaluation(
            context,
            dg.AssetCheckEvaluation(
                asset_key=DEPLOYMENT_KEY,
                check_name=name,
                passed=passed,
                metadata=metadata,
                partition=deployment,
            ),
        )
        if not passed:
            failed.append(name)
    # This op records and succeeds (a failing op would drop what it logged); the next one
    # fails the run when a check failed, as a blocking check would.
    return dg.Output(
        {
            "locations": list(deployed.locations),
            "deployed": list(deployed.deployed),
            "failed_checks": failed,
            # The no-agent window, for the runs created inside it (prove_first_runs).
            "cutover_at": cutover.cutover_at,
            "window_closed_at": cutover.cutover_at + parts["downtime_seconds"],
            **parts,
        },
        metadata={k: dg.MetadataValue.float(v) for k, v in parts.items()},
    )


@dg.op(
    # Launching is not idempotent (a retry would launch the runs again); each Dagster+ call
    # inside is retried by the client where that is safe.
    retry_policy=dg.RetryPolicy(max_retries=0),
    description="Launches the run the target settings chose for each location (first_run) "
    "through Dagster+, on the new agent, and waits for each: records the first_runs_succeed "
    "check with each run's id, agent and duration, or its error and the step that failed. "
    "Reports the runs created during the no-agent window: which agent launched them, how "
    "they ended.",
)
def prove_first_runs(
    context: dg.OpExecutionContext, dagster_plus: DagsterPlusResource, outcome: dict
) -> dict:
    from migration_pipeline.finish.first_runs import (
        first_run_outcome,
        run_first_runs,
        runs_queued_in_window,
    )
    from migration_pipeline.plan.applied import APPLIED_PROJECT
    from migration_pipeline.records import required

    deployment = dagster_plus.deployment_for(context)
    applied = required(context.instance, APPLIED_PROJECT, FINISH_JOB, deployment)
    settings = applied.target_settings()
    chosen = settings.first_runs
    runs = []
    with dagster_plus.session(context) as client:
        if chosen:
            runs = run_first_runs(
                client,
                chosen,
                deployment,
                settings.first_run_timeout_seconds,
                progress=lambda waiting: context.log.info(
                    f"waiting for the first runs of {', '.join(waiting)}"
                ),
            )
        # Runs created while no agent served (a schedule's tick, a launch from the UI): Dagster+
        # queued them; the Hybrid agent launched them once it served.
        in_window = runs_queued_in_window(
            client,
            outcome["cutover_at"],
            outcome["window_closed_at"],
            settings.first_run_timeout_seconds,
        )
    passed, metadata, summary = first_run_outcome(runs, bool(chosen))
    context.log.info(f"First runs: {summary}")
    window_summary = "; ".join(r.summary() for r in in_window) or "none"
    context.log.info(f"Runs queued during the no-agent window: {window_summary}")
    context.log_event(
        dg.AssetObservation(
            asset_key=DEPLOYMENT_KEY,
            partition=deployment,
            metadata={
                "first_run_ids": dg.MetadataValue.json({r.location: r.run_id for r in runs}),
                "runs_queued_in_window": dg.MetadataValue.json(
                    [
                        {"run_id": r.run_id, "job": r.job, "status": r.status, "agent": r.agent}
                        for r in in_window
                    ]
                ),
            },
        )
    )
    log_check_evaluation(
        context,
        dg.AssetCheckEvaluation(
            asset_key=DEPLOYMENT_KEY,
            check_name=FIRST_RUNS_CHECK,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR if chosen else dg.AssetCheckSeverity.WARN,
            description=summary,
            metadata={"runs": dg.MetadataValue.json(metadata["runs"]), "summary": summary},
            partition=deployment,
        ),
    )
    failed = list(outcome["failed_checks"])
    if chosen and not passed and settings.first_run_blocking:
        failed.append(FIRST_RUNS_CHECK)
    return {
        **outcome,
        "failed_checks": failed,
        "first_runs": [
            {
                "location": r.location,
                "job": r.job,
                "run_id": r.run_id,
                "status": r.status,
                "agent": r.agent,
                "seconds": r.seconds,
                "summary": r.summary(),
            }
            for r in runs
        ],
        "first_runs_summary": summary,
        "runs_queued_in_window": [
            {"run_id": r.run_id, "job": r.job, "status": r.status, "agent": r.agent}
            for r in in_window
        ],
        "runs_queued_in_window_summary": window_summary,
    }


@dg.op(
    description="Fails the finish run when a nothing-lost check failed (they are blocking), or "
    "a first run failed and the settings say first_run_blocking."
)
def require_nothing_lost(outcome: dict) -> None:
    if outcome["failed_checks"]:
        raise dg.Failure(
            f"These checks failed: {', '.join(outcome['failed_checks'])}"
            " (see the hybrid_deployment asset's checks).",
            allow_retries=False,
        )


@dg.job(
    name=FINISH_JOB,
    partitions_def=DEPLOYMENTS,
    executor_def=dg.in_process_executor,
    op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Deploy the Hybrid locations, wait until LOADED, verify nothing was lost, then "
    "prove the code runs on the new agent (the first runs chosen in the target settings) and "
    "report the runs queued during the no-agent window. Launched by hybrid_agent_ready_sensor "
    "once the migration's agent runs.",
)
def finish_job():
    require_nothing_lost(prove_first_runs(verify_hybrid_deployment(deploy_hybrid_locations())))
