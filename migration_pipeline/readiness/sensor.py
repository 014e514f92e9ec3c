"""The readiness sensor: launches one finish run per deployment's cutover, as soon as that
deployment's migration agent runs. Every second counts while there is no agent, so it ticks
often: one `agents` query per deployment waiting for its agent, none for the others."""

import json
import time

import dagster as dg

from migration_pipeline.agent.defs import recorded_agent_identity
from migration_pipeline.deployments import (
    FINISH_JOB,
    deployment_partitions,
    latest_cutover,
    rollback_since,
)
from migration_pipeline.resources import DagsterPlusResource

AGENT_READY_TAG = "migration_pipeline/agent_ready_at"
CUTOVER_RUN_TAG = "migration_pipeline/cutover_run_id"


def _requested(cursor: str | None) -> dict[str, str]:
    """deployment -> the cutover run whose finish run was requested (the sensor's cursor)."""
    try:
        value = json.loads(cursor) if cursor else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def build_hybrid_agent_ready_sensor(minimum_interval_seconds: int = 10) -> dg.SensorDefinition:
    @dg.sensor(
        name="hybrid_agent_ready_sensor",
        job_name=FINISH_JOB,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches finish_hybrid_migration once per deployment's cutover, as soon "
        "as the agent with that migration's label is RUNNING with a recent heartbeat. A "
        "rejected token or a missing role fails the tick, visibly.",
    )
    def hybrid_agent_ready_sensor(
        context: dg.SensorEvaluationContext, dagster_plus: DagsterPlusResource
    ):
        from migration_pipeline.agent.serving import migration_agents, waiting_message
        from migration_pipeline.plus.errors import DagsterPlusError, NotAuthorizedError

        requested = _requested(context.cursor)
        requests: list[dg.RunRequest] = []
        reasons: list[str] = []
        # One connection pool for the tick, each query scoped to its deployment.
        with dagster_plus.client() as organization:
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
                identity = recorded_agent_identity(context.instance, deployment)
                if identity is None:
                    reasons.append(f"{deployment}: no agent install files were written")
                    continue
                label, agents_before = identity
                try:
                    agents = organization.for_deployment(deployment).agents()
                except NotAuthorizedError:
                    raise  # no retry fixes this: the tick fails and shows why
                except DagsterPlusError as error:
                    reasons.append(f"{deployment}: could not ask Dagster+ for its agents: {error}")
                    continue
                now = time.time()
                if not migration_agents(agents, label, agents_before, now):
                    reasons.append(f"{deployment}: {waiting_message(agents, label)}")
                    continue
                requested[deployment] = cutover.run_id
                requests.append(
                    dg.RunRequest(
                        run_key=f"finish:{cutover.run_id}",
                        partition_key=deployment,
                        tags={AGENT_READY_TAG: str(now), CUTOVER_RUN_TAG: cutover.run_id},
                    )
                )
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=json.dumps(requested))
        return dg.SkipReason("; ".join(reasons) or "No cutover yet: nothing to wait for.")

    return hybrid_agent_ready_sensor
