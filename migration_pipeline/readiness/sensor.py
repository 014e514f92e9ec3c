"""The readiness sensor: launches one finish run per deployment's cutover, as soon as that
deployment's migration agent runs. Every second counts while there is no agent, so it ticks
often: one `agents` query per deployment waiting for its agent, none for the others."""

import json
import time
from typing import Any

import dagster as dg

from migration_pipeline.deployments import (
    FINISH_JOB,
    actions_in_flight,
    deployment_partitions,
    latest_cutover,
    rollback_since,
)
from migration_pipeline.records import latest
from migration_pipeline.resources import DagsterPlusResource

AGENT_READY_TAG = "migration_pipeline/agent_ready_at"
CUTOVER_RUN_TAG = "migration_pipeline/cutover_run_id"
# A tick stays well under Dagster's sensor timeout (60 s), whatever Dagster+ answers: each
# `agents` query has a short deadline, one retry and a short Retry-After, and no deployment is
# asked once the tick could no longer finish its query within the budget.
TICK_BUDGET_SECONDS = 40.0
QUERY_BOUNDS: dict[str, Any] = {"timeout": 5.0, "max_attempts": 2, "max_retry_after_seconds": 2.0}
# One query at worst: each attempt's deadline, and the longest wait between two attempts.
WORST_QUERY_SECONDS = (
    QUERY_BOUNDS["max_attempts"] * QUERY_BOUNDS["timeout"]
    + (QUERY_BOUNDS["max_attempts"] - 1) * QUERY_BOUNDS["max_retry_after_seconds"]
)


def _requested(cursor: str | None) -> dict[str, str]:
    """deployment -> the cutover run whose finish run was requested (the sensor's cursor)."""
    try:
        value = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def build_hybrid_agent_ready_sensor(
    minimum_interval_seconds: int = 10, clock=time.monotonic
) -> dg.SensorDefinition:
    @dg.sensor(
        name="hybrid_agent_ready_sensor",
        job_name=FINISH_JOB,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches finish_hybrid_migration once per deployment's cutover, as soon "
        "as the agent with that migration's label is RUNNING with a recent heartbeat. Each "
        "deployment is asked on its own: a rejected token or a missing role for one is shown "
        "for it (and fails the tick when every deployment asked was refused); a tick stays "
        "under 40 s whatever Dagster+ answers.",
    )
    def hybrid_agent_ready_sensor(
        context: dg.SensorEvaluationContext, dagster_plus: DagsterPlusResource
    ):
        from migration_pipeline.agent.serving import (
            AGENT_IDENTITY,
            migration_agents,
            waiting_message,
        )
        from migration_pipeline.plus.errors import DagsterPlusError, NotAuthorizedError

        requested = _requested(context.cursor)
        requests: list[dg.RunRequest] = []
        reasons: list[str] = []
        refused: list[NotAuthorizedError] = []
        asked = 0
        started = clock()
        # One connection pool for the tick, each query scoped to its deployment.
        with dagster_plus.client(**QUERY_BOUNDS) as organization:
            for deployment in deployment_partitions(context.instance):
                cutover = latest_cutover(context.instance, deployment)
                if cutover is None:
                    continue
                if requested.get(deployment) == cutover.run_id:
                    reasons.append(f"{deployment}: the finish run of its cutover was requested")
                    continue
                if rollback_since(context.instance, cutover, deployment) is not None:
                    reasons.append(f"{deployment}: rolled back to Serverless after its cutover")
                    continue
                busy = actions_in_flight(context.instance, deployment)
                if busy:
                    run = busy[0].dagster_run
                    reasons.append(
                        f"{deployment}: its {run.job_name} run {run.run_id[:8]} is in flight"
                    )
                    continue
                try:
                    identity = latest(context.instance, AGENT_IDENTITY, deployment)
                except dg.Failure as error:  # this deployment's record, not the others'
                    reasons.append(f"{deployment}: {error.description}")
                    continue
                if identity is None:
                    reasons.append(f"{deployment}: no agent install files were written")
                    continue
                if clock() - started > TICK_BUDGET_SECONDS - WORST_QUERY_SECONDS:
                    reasons.append(f"{deployment}: not asked this tick (its time was spent)")
                    continue
                asked += 1
                try:
                    agents = organization.for_deployment(deployment).agents()
                except NotAuthorizedError as error:  # this deployment's, not the others'
                    refused.append(error)
                    context.log.error(f"{deployment}: {error}")
                    reasons.append(f"{deployment}: {error}")
                    continue
                except DagsterPlusError as error:
                    reasons.append(f"{deployment}: could not ask Dagster+ for its agents: {error}")
                    continue
                now = time.time()
                if not migration_agents(agents, identity, now):
                    reasons.append(f"{deployment}: {waiting_message(agents, identity.label)}")
                    continue
                requested[deployment] = cutover.run_id
                requests.append(
                    dg.RunRequest(
                        run_key=f"finish:{cutover.run_id}",
                        partition_key=deployment,
                        tags={AGENT_READY_TAG: str(now), CUTOVER_RUN_TAG: cutover.run_id},
                    )
                )
        if refused and len(refused) == asked:
            raise refused[0]  # every deployment asked was refused: no retry fixes it; shown
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=json.dumps(requested))
        return dg.SkipReason("; ".join(reasons) or "No cutover yet: nothing to wait for.")

    return hybrid_agent_ready_sensor
