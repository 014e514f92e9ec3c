"""The rollback phase, on demand: back to Serverless as the pre-cutover snapshot recorded it.
An op in its own job: nothing in the asset graph can start it."""

import dagster as dg
from pydantic import Field

from migration_pipeline.deployments import DEPLOYMENTS, ROLLBACK_JOB
from migration_pipeline.records import latest
from migration_pipeline.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource


class RollbackConfig(dg.Config):
    locations: list[str] = Field(
        default=[],  # pydantic copies it; default_factory=list would cost the load ~3 ms
        description="Only these locations, back to their Serverless documents (the default "
        "queue), while the deployment is still SERVERLESS (strategy per_location, before its "
        "switch); the others stay on the Hybrid agent, the agent type and the token as they "
        "are. Empty: the whole deployment.",
    )


@dg.op(
    description="Says first what it will delete or overwrite that changed since the "
    "pre-cutover snapshot, then switches back to the agent type the snapshot recorded "
    "(SERVERLESS) and restores the locations document and the deployment settings, revokes the "
    "migration's agent token and says to stop the Hybrid agent. Changes only what differs: "
    "safe at any point after the snapshot, and safe to run twice."
)
def restore_serverless(
    context: dg.OpExecutionContext, config: RollbackConfig, dagster_plus: DagsterPlusResource
) -> dg.Output[list]:
    from migration_pipeline.deployments import refuse_beside_another_action
    from migration_pipeline.rollback.core import (
        RollbackIncomplete,
        overwritten_by_rollback,
        restore,
        restore_locations,
    )
    from migration_pipeline.snapshot import SNAPSHOT

    deployment = dagster_plus.deployment_for(context)
    refuse_beside_another_action(context.instance, deployment, context.run_id, "rollback")
    snapshot = latest(context.instance, SNAPSHOT, deployment)
    if snapshot is None:
        raise dg.Failure(
            "No pre-cutover snapshot: there is nothing to roll back to.", allow_retries=False
        )
    if config.locations:
        with dagster_plus.session(context) as client:
            try:
                restored = restore_locations(client, snapshot, config.locations)
            except RollbackIncomplete as error:
                raise dg.Failure(str(error), allow_retries=False) from None
        context.log.info(
            f"back on the Serverless agent: {', '.join(restored) or 'none (already there)'}; "
            "the other locations, the agent type and the agent token are as they were"
        )
        return dg.Output(restored, metadata={"restored_locations": restored})
    with dagster_plus.session(context) as client:
        overwritten = overwritten_by_rollback(
            client.locations_as_document(),
            client.deployment_settings(),
            snapshot,
            _deployed_document(context.instance, deployment),
        )
        for what, names in overwritten.items():
            if names:  # said before anything changes, so the log shows it first
                context.log.warning(
                    f"changed since the pre-cutover snapshot, {what.replace('_', ' ')} by the "
                    f"rollback: {', '.join(names)}"
                )
        try:
            restored = restore(client, snapshot)
        except RollbackIncomplete as error:
            raise dg.Failure(str(error), allow_retries=False) from None
        token = _revoke_migration_token(context, client, deployment)
    context.log.info(f"restored: {', '.join(restored) or 'nothing (already as before)'}")
    context.log.warning(
        f"Stop the Hybrid agent of {deployment} now (its install files are in "
        f"dagster_cloud_agent/{deployment}/: `kubectl delete -f`, `docker compose down`, or "
        "stop the ECS service): it has no deployment to serve."
    )
    return dg.Output(
        restored,
        metadata={
            "restored": restored,
            "agent_type": snapshot.agent_type,
            "agent_token": token,
            **{what: names for what, names in overwritten.items()},
        },
    )


def _deployed_document(instance: dg.DagsterInstance, deployment: str) -> dict | None:
    """The document the migration deployed (recorded with its images), if any: one this
    version cannot read only makes the report less precise, so it is not a reason to stop."""
    from migration_pipeline.images.publish import DEPLOY_DOCUMENT

    try:
        return latest(instance, DEPLOY_DOCUMENT, deployment)
    except dg.Failure:
        return None


def _revoke_migration_token(context, client, deployment: str) -> str:
    """Revoke the agent token the migration created for this deployment; what happened."""
    from migration_pipeline.agent.token import AGENT_TOKEN
    from migration_pipeline.plus.errors import DagsterPlusError

    try:
        recorded = latest(context.instance, AGENT_TOKEN, deployment)
    except dg.Failure as error:  # the rollback goes on: the deployment matters more
        context.log.warning(f"the migration's agent token was not revoked: {error}")
        return f"not revoked: {error}"
    if recorded is None:
        return "none was created by this migration"
    token_id = recorded.token_id
    try:
        found = client.revoke_agent_token(token_id)
    except DagsterPlusError as error:
        context.log.warning(
            f"the migration's agent token {token_id} was not revoked ({error}): revoke it in "
            "Dagster+ (Organization settings > Tokens)"
        )
        return f"{token_id}: not revoked ({error})"
    context.log.info(
        f"revoked the migration's agent token {token_id}; to roll forward again, run "
        "create_agent_token and prepare_hybrid_agent (a new token, new install files) first"
    )
    return f"{token_id}: revoked" if found else f"{token_id}: already gone"


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
