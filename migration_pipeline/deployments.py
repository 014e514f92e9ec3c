"""The organization's full deployments as partitions: every migration asset and job is
partitioned by deployment (one cutover, one finish run, one rollback each), and how far each
deployment's migration got is read back from the instance. The order rule (staging before prod)
is a plain function over that progress."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import dagster as dg

from migration_pipeline.records import (
    CUTOVER_AT_TAG,
    CutoverRecord,
    cutover_from_run,
    latest_materialization,
)

# Checks of a partitioned asset are partitioned too, so each deployment's checks are its own
# (the cutover's preflight and the order read them per deployment). Dagster 1.13 calls a
# partitioned check "preview"; it is what this needs, so its warning is not repeated on every
# load of the code location.
warnings.filterwarnings(
    "ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=Warning
)

# Refreshed by the organization_inventory asset: the full deployments still on SERVERLESS.
DEPLOYMENTS_NAME = "deployments"
DEPLOYMENTS = dg.DynamicPartitionsDefinition(name=DEPLOYMENTS_NAME)
PARTITION_TAG = "dagster/partition"

CUTOVER_JOB = "cutover"
FINISH_JOB = "finish_hybrid_migration"
ROLLBACK_JOB = "rollback_to_serverless"


def deployment_partitions(instance: dg.DagsterInstance) -> list[str]:
    """The deployments added as partitions, in the order they were added."""
    return list(instance.get_dynamic_partitions(DEPLOYMENTS_NAME))


def add_deployment_partitions(instance: dg.DagsterInstance, deployments: list[str]) -> list[str]:
    """Add the deployments that are not partitions yet; returns those added."""
    known = set(deployment_partitions(instance))
    added = [name for name in deployments if name not in known]
    if added:
        instance.add_dynamic_partitions(DEPLOYMENTS_NAME, added)
    return added


def partition_of(context: object) -> str | None:
    """The deployment a run, step or check is for (None outside a partitioned run)."""
    has_key = getattr(context, "has_partition_key", False)
    return context.partition_key if has_key else None  # type: ignore[attr-defined]


def latest_run(
    instance: dg.DagsterInstance,
    job_name: str,
    deployment: str,
    statuses: list[dg.DagsterRunStatus] | None = None,
) -> dg.RunRecord | None:
    """The newest run of a job for one deployment (of those statuses)."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=job_name, statuses=statuses, tags={PARTITION_TAG: deployment}),
        limit=1,
    )
    return records[0] if records else None


@dataclass(frozen=True)
class Progress:
    """How far one deployment's migration got, from what the instance recorded."""

    deployment: str
    planned: bool = False
    images_ready: bool = False
    switched_at: float | None = None  # the newest cutover that switched or found it switched
    cutover_failed: bool = False  # the newest cutover run failed
    finished_at: float | None = None  # a finish run succeeded after that cutover (checks green)
    finish_failed: bool = False  # the newest finish run after that cutover failed
    rolled_back_at: float | None = None  # a rollback succeeded after that cutover
    downtime_seconds: float | None = None  # of the finish, when finished

    @property
    def state(self) -> str:
        if self.rolled_back_at is not None:
            return "rolled back"
        if self.cutover_failed:
            return "cutover failed"
        if self.finished_at is not None:
            return "finished"
        if self.finish_failed:
            return "finish failed"
        if self.switched_at is not None:
            return "switched"
        if self.images_ready:
            return "images ready"
        return "planned" if self.planned else "not planned"

    def summary(self) -> str:
        """The state, with the downtime once finished."""
        if self.state == "finished" and self.downtime_seconds is not None:
            return f"finished (downtime {self.downtime_seconds:.1f}s)"
        return self.state


def earlier_in_order(deployment: str, order: list[str]) -> list[str]:
    """The deployments that come before `deployment` in `order` (none when it is not in it)."""
    return order[: order.index(deployment)] if deployment in order else []


def order_problems(deployment: str, order: list[str], progress: dict[str, Progress]) -> list[str]:
    """Why `deployment`'s cutover must wait for the deployments before it in `order` (none: it
    may go). Each one before it must have finished with every check green, and not have been
    rolled back since: a failed or rolled-back deployment stops the order."""
    problems = []
    for earlier in earlier_in_order(deployment, order):
        done = progress.get(earlier, Progress(earlier))
        if done.state == "finished":
            continue
        problems.append(
            f"{earlier} comes before {deployment} in deployment_order and is "
            f"{done.state}: {deployment}'s cutover waits until {earlier} has finished with "
            "every check green"
            + (" (roll it forward again: cutover, then finish)" if done.rolled_back_at else "")
        )
    return problems


# -- the cutover run that switched (its tags are records: records.cutover_from_run) ------------


def latest_cutover(instance: dg.DagsterInstance, deployment: str) -> CutoverRecord | None:
    """The deployment's newest cutover run that switched it (or found it switched), whatever
    became of the run afterwards: the switch is tagged on the run the moment it happens, so a
    cutover that failed after the switch still counts as one (the deployment is HYBRID)."""
    records = instance.get_run_records(
        dg.RunsFilter(job_name=CUTOVER_JOB, tags={PARTITION_TAG: deployment}), limit=50
    )
    record = next((r for r in records if CUTOVER_AT_TAG in r.dagster_run.tags), None)
    return cutover_from_run(record) if record is not None else None


# -- one action at a time per deployment ---------------------------------------------------------

# The jobs that change a deployment in Dagster+ (plus the deploy the cutover may make): at most
# one of them runs for a deployment at a time, whatever the instance's run queue allows.
ACTION_JOBS = (CUTOVER_JOB, FINISH_JOB, ROLLBACK_JOB)
IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def actions_in_flight(
    instance: dg.DagsterInstance, deployment: str, except_run_id: str | None = None
) -> list[dg.RunRecord]:
    """The deployment's cutover, finish and rollback runs that are queued or running (other
    than `except_run_id`), newest first."""
    records = instance.get_run_records(
        dg.RunsFilter(statuses=IN_FLIGHT, tags={PARTITION_TAG: deployment}), limit=50
    )
    return [
        r
        for r in records
        if r.dagster_run.job_name in ACTION_JOBS and r.dagster_run.run_id != except_run_id
    ]


def refuse_beside_another_action(
    instance: dg.DagsterInstance, deployment: str, run_id: str, action: str
) -> None:
    """`dg.Failure` (nothing changed) when another cutover, finish or rollback of this
    deployment is queued or running: two of them at once could switch twice or deploy over a
    rollback. Each run checks this before it changes anything, so of two that overlap, the
    later one always sees the earlier."""
    others = actions_in_flight(instance, deployment, run_id)
    if not others:
        return
    listed = ", ".join(
        f"{r.dagster_run.job_name} run {r.dagster_run.run_id[:8]} ({r.dagster_run.status.value})"
        for r in others
    )
    raise dg.Failure(
        f"{deployment}: {listed} is in flight; the {action} does not run beside it. Wait for it "
        f"to end (or terminate it from the UI), then launch the {action} again. Nothing was "
        "changed.",
        allow_retries=False,
    )


def _run_after(
    instance: dg.DagsterInstance,
    job_name: str,
    deployment: str,
    after: float,
    statuses: list[dg.DagsterRunStatus] | None = None,
) -> dg.RunRecord | None:
    run = latest_run(instance, job_name, deployment, statuses)
    return run if run is not None and run.create_timestamp.timestamp() > after else None


def rollback_since(
    instance: dg.DagsterInstance, cutover: CutoverRecord, deployment: str
) -> dg.RunRecord | None:
    """The deployment's newest successful rollback, when it came after that cutover run."""
    success = [dg.DagsterRunStatus.SUCCESS]
    return _run_after(instance, ROLLBACK_JOB, deployment, cutover.created_at, success)


def progress(instance: dg.DagsterInstance, deployment: str) -> Progress:
    """One deployment's progress, read from its partition's runs and materializations."""
    planned = latest_materialization(instance, "migration_plan", deployment) is not None
    images_ready = latest_materialization(instance, "code_location_images", deployment) is not None
    last_cutover = latest_run(instance, CUTOVER_JOB, deployment)
    cutover = latest_cutover(instance, deployment)
    # A cutover run that failed after the switch switched: that is "switched", not "failed".
    cutover_failed = (
        last_cutover is not None
        and last_cutover.dagster_run.status == dg.DagsterRunStatus.FAILURE
        and (cutover is None or cutover.run_id != last_cutover.dagster_run.run_id)
    )
    if cutover is None:
        return Progress(deployment, planned, images_ready, cutover_failed=cutover_failed)
    finish = _run_after(instance, FINISH_JOB, deployment, cutover.created_at)
    rollback = rollback_since(instance, cutover, deployment)
    finished_at = downtime = None
    finish_failed = False
    if finish is not None and finish.dagster_run.status == dg.DagsterRunStatus.SUCCESS:
        finished_at = finish.end_time
        record = latest_materialization(instance, "hybrid_deployment", deployment)
        entry = (
            record.asset_materialization.metadata.get("downtime_seconds")
            if record is not None and record.asset_materialization is not None
            else None
        )
        downtime = float(entry.value) if entry is not None else None  # type: ignore[arg-type]
    elif finish is not None:
        finish_failed = finish.dagster_run.status == dg.DagsterRunStatus.FAILURE
    return Progress(
        deployment,
        planned,
        images_ready,
        cutover.cutover_at,
        cutover_failed,
        finished_at,
        finish_failed,
        rollback.end_time if rollback is not None else None,
        downtime,
    )
