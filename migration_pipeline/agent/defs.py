"""The agent phase: one agent token (an action on Dagster+, so an op in a job of its own), then
the files that install the agent (data, an asset). Serverless still serves throughout: install
and start the agent now, it waits for the cutover."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, field_validator

from migration_pipeline.deployments import DEPLOYMENTS
from migration_pipeline.records import RECORDS_IO_MANAGER, record_metadata, required
from migration_pipeline.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource

if TYPE_CHECKING:
    from migration_pipeline.agent.install import AgentInstall
    from migration_pipeline.plan.applied import AppliedProject
else:  # Dagster reads these at load; the types load on use (definitions.ASSET_VALUE_MODULES)
    AgentInstall = AppliedProject = Any

GROUP = "agent"
TOKEN_KEY = dg.AssetKey("hybrid_agent_token")

# Where the token is kept (never its value): recorded by the create_agent_token job, which is
# the only thing that can change it, so it cannot be materialized from the asset graph.
hybrid_agent_token = dg.AssetSpec(
    TOKEN_KEY,
    group_name=GROUP,
    partitions_def=DEPLOYMENTS,
    kinds={"dagster"},
    description="Where the Hybrid agent's token is kept (a 0600 Secret manifest or env file, or "
    "AWS Secrets Manager) and its id; never its value. Recorded by the create_agent_token job.",
)


@dg.op(
    description="One agent token for the Hybrid agent (Organization Admin), found again by "
    "its description on re-execution: never a second one. Stored at once where the target "
    "keeps secrets; its value is never recorded."
)
def ensure_hybrid_agent_token(
    context: dg.OpExecutionContext, dagster_plus: DagsterPlusResource
) -> dict:
    from migration_pipeline.agent.token import (
        AGENT_TOKEN,
        RecordedToken,
        agent_token_description,
        ensure_agent_token,
        store_agent_token,
    )
    from migration_pipeline.plan.applied import APPLIED_PROJECT

    deployment = dagster_plus.deployment_for(context)
    applied = required(context.instance, APPLIED_PROJECT, "create_agent_token", deployment)
    settings = applied.target_settings()
    description = agent_token_description(deployment)
    with dagster_plus.session(context) as client:
        token, created = ensure_agent_token(client, description)
    stored = store_agent_token(
        applied.target.token_store,
        token.token,
        applied.agent_dir(deployment),
        deployment,
        namespace=getattr(settings, "namespace", None),
        aws_region=getattr(settings, "aws_region", None),
    )
    recorded = RecordedToken(
        token_id=token.id,
        description=description,
        store=stored.kind,
        reference=stored.reference,
        organization=token.token.get_secret_value().split(":")[1],
    )
    context.log.info(
        f"agent token {token.id} ({'created' if created else 'reused'}) stored in "
        f"{stored.kind}: {stored.reference}"
    )
    context.log_event(
        dg.AssetMaterialization(
            asset_key=TOKEN_KEY,
            partition=deployment,
            metadata={
                **record_metadata(AGENT_TOKEN, recorded),
                "token_id": recorded.token_id,
                "stored_in": f"{recorded.store}: {recorded.reference}",
                "created": created,
            },
        )
    )
    return {"token_id": recorded.token_id, "created": created}


@dg.job(
    name="create_agent_token",
    partitions_def=DEPLOYMENTS,
    executor_def=dg.in_process_executor,
    op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Create (or find again) the Hybrid agent's token and store it where the "
    "target keeps secrets. Needs an Organization Admin's token. Serverless still serves.",
)
def create_agent_token_job():
    ensure_hybrid_agent_token()


class AgentInstallConfig(dg.Config):
    """Where the agent reaches Dagster+ (empty: Dagster+ itself)."""

    agent_api_url: str = Field(
        default="",
        description="The agent API's URL, written into the agent's config. Leave "
        "empty for Dagster+: the agent derives https://<org>.agent[.<region>].dagster.cloud from "
        "its token. Set it for a stand-in such as the embedded sandbox (its agent_url).",
    )

    @field_validator("agent_api_url")
    @classmethod
    def _a_url(cls, value: str) -> str:
        from migration_pipeline.lib.names import url_problem

        problem = url_problem(value, "the agent API's URL") if value else None
        if problem:
            raise ValueError(problem)
        return value


@dg.asset(
    io_manager_key=RECORDS_IO_MANAGER,
    group_name=GROUP,
    kinds={"dagster"},
    partitions_def=DEPLOYMENTS,
    deps=[hybrid_agent_token],
    description="The files that install the Hybrid agent, as one would write them by hand: "
    "Helm values and manifests (kubernetes, azure), CloudFormation parameters (ecs), the "
    "agent's dagster.yaml and a compose file (docker) or run script (local). The agent "
    "reports a label unique to this migration; the readiness sensor waits for it. Reads "
    "Dagster+ only.",
)
def hybrid_agent_install_files(
    context: dg.AssetExecutionContext,
    config: AgentInstallConfig,
    dagster_plus: DagsterPlusResource,
    hybrid_project_files: AppliedProject,
) -> dg.Output[AgentInstall]:
    from migration_pipeline.agent.install import write_install_files
    from migration_pipeline.agent.serving import AGENT_IDENTITY, AgentIdentity
    from migration_pipeline.agent.token import AGENT_TOKEN

    deployment = context.partition_key
    recorded = required(context.instance, AGENT_TOKEN, "hybrid_agent_install_files", deployment)

    def list_agent_ids() -> list[str]:
        with dagster_plus.session(context) as client:
            return [agent.id for agent in client.agents()]

    install, written = write_install_files(
        hybrid_project_files,
        deployment,
        recorded,
        config.agent_api_url,
        list_agent_ids,
    )
    return dg.Output(
        install,
        metadata={
            "agent_dir": install.agent_dir,
            "written": written,
            **record_metadata(
                AGENT_IDENTITY, AgentIdentity(install.agent_label, install.agents_before)
            ),
            "branch_deployments": install.branch_deployments,
            "install": dg.MetadataValue.md(
                f"Install and start the agent before the cutover (it waits, then serves at "
                f"once):\n\n```sh\n{install.command}\n```"
            ),
        },
    )


@dg.asset_check(
    asset=hybrid_agent_install_files,
    blocking=True,
    partitions_def=DEPLOYMENTS,
    description="Every install file reads as its tool reads it: YAML and JSON parse, "
    "shell scripts pass `bash -n`.",
)
def agent_install_files_parse(hybrid_agent_install_files: AgentInstall) -> dg.AssetCheckResult:
    from migration_pipeline.agent.install import install_file_problems

    install = hybrid_agent_install_files
    problems = install_file_problems(Path(install.agent_dir), install.files)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"files": list(install.files), "problems": dg.MetadataValue.json(problems)},
    )


prepare_agent_job = dg.define_asset_job(
    "prepare_hybrid_agent",
    selection=dg.AssetSelection.assets("code_location_images", hybrid_agent_install_files),
    executor_def=dg.in_process_executor,
    op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Publish the images; write the agent's install files (after create_agent_token). "
    "Serverless still serves: install the agent now, it waits for the cutover.",
)
