"""The rollback phase, on demand: back to Serverless as the pre-cutover snapshot recorded it.
An op in its own job: nothing in the asset graph can start it."""

import dagster as dg

from migration_pipeline.cutover.defs import latest_snapshot
from migration_pipeline.deployments import DEPLOYMENTS, ROLLBACK_JOB
from migration_pipeline.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource


@dg.op(
    description="Switches back to the agent type the snapshot recorded (SERVERLESS) and "
    "restores the locations document and the deployment settings. Changes only what "
    "differs: safe at any point after the snapshot, and safe to run twice."
)
def restore_serverless(
    context: dg.OpExecutionContext, dagster_plus: DagsterPlusResource
) -> dg.Output[list]:
    from migration_pipeline.deployments import refuse_beside_another_action
    from migration_pipeline.rollback.core import restore

    deployment = dagster_plus.deployment_for(context)
    refuse_beside_another_action(context.instance, deployment, context.run_id, "rollback")
    snapshot = latest_snapshot(context.instance, deployment)
    if snapshot is None:
        raise dg.Failure(
            "No pre-cutover snapshot: there is nothing to roll back to.", allow_retries=False
        )
    with dagster_plus.session(context) as client:
        restored = restore(client, snapshot)
    context.log.info(f"restored: {', '.join(restored) or 'nothing (already as before)'}")
    return dg.Output(restored, metadata={"restored": restored, "agent_type": snapshot.agent_type})


@dg.job(
    name=ROLLBACK_JOB,
    partitions_def=DEPLOYMENTS,
    executor_def=dg.in_process_executor,
    op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Switch back to SERVERLESS and restore the locations document and settings "
    "from the pre-cutover snapshot.",
)
def rollback_job():
    restore_serverless()
