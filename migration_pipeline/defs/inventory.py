"""The inventory phase: what the Serverless deployment has, before anything changes."""

import dagster as dg

from migration_pipeline.defs.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource


@dg.asset(
    group_name="migration",
    retry_policy=DAGSTER_PLUS_RETRY,
    description="The Serverless deployment as it is: agent type, agents, code locations and "
    "their load status, deployment settings, runs by status, schedules and sensors.",
    kinds={"dagster"},
)
def serverless_inventory(
    context: dg.AssetExecutionContext, dagster_plus: DagsterPlusResource
) -> dg.Output[dict]:
    from migration_pipeline.inventory import render_sections, take_inventory

    with dagster_plus.session(context) as client:
        inventory = take_inventory(client)
    sections = render_sections(inventory)
    context.log.info(
        f"{inventory.deployment}: {inventory.agent_type}, {len(inventory.locations)} locations, "
        f"{inventory.run_total} runs, {len(inventory.agents)} agents"
    )
    return dg.Output(
        inventory.as_dict(),
        metadata={
            "deployment": inventory.deployment,
            "agent_type": inventory.agent_type,
            "location_count": len(inventory.locations),
            "run_count": inventory.run_total,
            "uses_branch_deployments": inventory.uses_branch_deployments,
            "non_isolated_runs": dg.MetadataValue.json(
                inventory.settings.get("non_isolated_runs") or {}),
            "locations_document": dg.MetadataValue.json(inventory.locations_document),
            **{name: dg.MetadataValue.md(table) for name, table in sections.items()},
        },
    )


inventory_job = dg.define_asset_job(
    "inventory",
    selection=[serverless_inventory],
    executor_def=dg.in_process_executor,
    description="Read the Serverless deployment and record what it has. Changes nothing.",
)
