"""The readiness sensor: launches the finish job once per cutover, as soon as the migration's own
agent runs. Every second counts while there is no agent, so it ticks often, with one `agents`
query a tick and none before a cutover."""

import time

import dagster as dg

from migration_pipeline.agent.defs import recorded_agent_identity
from migration_pipeline.cutover.defs import latest_cutover
from migration_pipeline.resources import DagsterPlusResource

AGENT_READY_TAG = "migration_pipeline/agent_ready_at"
CUTOVER_RUN_TAG = "migration_pipeline/cutover_run_id"
FINISH_JOB = "finish_hybrid_migration"
ROLLBACK_JOB = "rollback_to_serverless"


def rolled_back_since(instance: dg.DagsterInstance, cutover_run_id: str) -> bool:
    """Whether a rollback succeeded after that cutover run."""
    cutover = instance.get_run_record_by_id(cutover_run_id)
    rollbacks = instance.get_run_records(
        dg.RunsFilter(job_name=ROLLBACK_JOB, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1
    )
    return bool(rollbacks and cutover and rollbacks[0].create_timestamp > cutover.create_timestamp)


def build_hybrid_agent_ready_sensor(minimum_interval_seconds: int = 10) -> dg.SensorDefinition:
    @dg.sensor(
        name="hybrid_agent_ready_sensor",
        job_name=FINISH_JOB,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches finish_hybrid_migration once per cutover, as soon as the agent "
        "with the migration's label is RUNNING with a recent heartbeat. A rejected token or a "
        "missing role fails the tick, visibly.",
    )
    def hybrid_agent_ready_sensor(
        context: dg.SensorEvaluationContext, dagster_plus: DagsterPlusResource
    ):
        from migration_pipeline.agent.serving import migration_agents, waiting_message
        from migration_pipeline.plus.errors import DagsterPlusError, NotAuthorizedError

        cutover = latest_cutover(context.instance)
        if cutover is None:
            return dg.SkipReason("No cutover yet: nothing to wait for.")
        if context.cursor == cutover.run_id:
            return dg.SkipReason(
                f"The finish run for cutover {cutover.run_id} was already requested."
            )
        if rolled_back_since(context.instance, cutover.run_id):
            return dg.SkipReason("Rolled back to Serverless after the last cutover.")
        identity = recorded_agent_identity(context.instance)
        if identity is None:
            return dg.SkipReason(
                "No agent install files were written (run prepare_hybrid_agent): "
                "no agent label to wait for."
            )
        label, agents_before = identity
        try:
            with dagster_plus.client() as client:
                agents = client.agents()
        except NotAuthorizedError:
            raise  # no retry fixes this: the tick fails and shows why
        except DagsterPlusError as error:
            return dg.SkipReason(f"Could not ask Dagster+ for its agents: {error}")
        now = time.time()
        if not migration_agents(agents, label, agents_before, now):
            return dg.SkipReason(waiting_message(agents, label))
        context.update_cursor(cutover.run_id)
        return dg.RunRequest(
            run_key=f"finish:{cutover.run_id}",
            tags={AGENT_READY_TAG: str(now), CUTOVER_RUN_TAG: cutover.run_id},
        )

    return hybrid_agent_ready_sensor
