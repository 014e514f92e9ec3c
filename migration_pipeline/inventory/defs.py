"""The inventory phase: what the Serverless deployment has, before anything changes. Reads only."""

import dagster as dg

from migration_pipeline.inventory.core import Inventory
from migration_pipeline.inventory.organization import OrganizationInventory
from migration_pipeline.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource

GROUP = "inventory"


@dg.asset(
    group_name=GROUP,
    retry_policy=DAGSTER_PLUS_RETRY,
    description="The Serverless deployment as it is: agent type, agents, code locations and "
    "their load status, deployment settings, runs by status, schedules and sensors, whether the "
    "organization uses branch deployments.",
    kinds={"dagster"},
)
def serverless_inventory(
    context: dg.AssetExecutionContext, dagster_plus: DagsterPlusResource
) -> dg.Output[Inventory]:
    from migration_pipeline.inventory.core import render_sections, take_inventory

    with dagster_plus.session(context) as client:
        inventory = take_inventory(client)
    sections = render_sections(inventory)
    context.log.info(
        f"{inventory.deployment}: {inventory.agent_type}, {len(inventory.locations)} locations, "
        f"{inventory.run_total} runs, {len(inventory.agents)} agents"
    )
    return dg.Output(
        inventory,
        metadata={
            "deployment": inventory.deployment,
            "agent_type": inventory.agent_type,
            "location_count": len(inventory.locations),
            "run_count": inventory.run_total,
            "uses_branch_deployments": inventory.uses_branch_deployments,
            "non_isolated_runs": dg.MetadataValue.json(
                inventory.settings.get("non_isolated_runs") or {}
            ),
            "locations_document": dg.MetadataValue.json(inventory.locations_document),
            **{name: dg.MetadataValue.md(table) for name, table in sections.items()},
        },
    )


@dg.asset_check(
    asset=serverless_inventory,
    blocking=True,
    description="Every code location is loaded, so its schedules and sensors could "
    "be read: what the nothing-lost checks will compare with.",
)
def every_location_readable(serverless_inventory: Inventory) -> dg.AssetCheckResult:
    not_loaded = {
        loc["name"]: loc["error"] or loc["load_status"]
        for loc in serverless_inventory.locations
        if loc["load_status"] != "LOADED" or loc["error"]
    }
    return dg.AssetCheckResult(
        passed=not not_loaded,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "locations": len(serverless_inventory.locations),
            "not_loaded": dg.MetadataValue.json(not_loaded),
        },
    )


@dg.asset(
    group_name=GROUP,
    retry_policy=DAGSTER_PLUS_RETRY,
    description="Every full deployment of the organization: its agent type, its code locations "
    "and its runs, and whether it is to migrate (SERVERLESS) or already Hybrid (reported, "
    "skipped, never switched twice); the number of branch deployments, which follow their base.",
    kinds={"dagster"},
)
def organization_inventory(
    context: dg.AssetExecutionContext, dagster_plus: DagsterPlusResource
) -> dg.Output[OrganizationInventory]:
    from migration_pipeline.inventory.organization import (
        render_deployments,
        take_organization_inventory,
    )

    with dagster_plus.session(context) as client:
        inventory = take_organization_inventory(client)
    context.log.info(
        f"{len(inventory.deployments)} full deployments, to migrate: "
        f"{', '.join(inventory.to_migrate) or 'none'}"
    )
    return dg.Output(
        inventory,
        metadata={
            "deployments": len(inventory.deployments),
            "to_migrate": inventory.to_migrate,
            "already_hybrid": [d.name for d in inventory.deployments if d.agent_type == "HYBRID"],
            "branch_deployments": inventory.branch_deployments,
            "locations": sum(d.locations for d in inventory.deployments),
            "runs": sum(d.runs for d in inventory.deployments),
            "table": dg.MetadataValue.md(render_deployments(inventory)),
        },
    )


@dg.asset_check(
    asset=organization_inventory,
    description="The deployment this code location migrates (DAGSTER_CLOUD_DEPLOYMENT) is one "
    "of the organization's full deployments and is still SERVERLESS.",
)
def configured_deployment_is_serverless(
    organization_inventory: OrganizationInventory, dagster_plus: DagsterPlusResource
) -> dg.AssetCheckResult:
    found = {d.name: d for d in organization_inventory.deployments}
    deployment = found.get(dagster_plus.deployment)
    return dg.AssetCheckResult(
        passed=deployment is not None and deployment.to_migrate,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "deployment": dagster_plus.deployment,
            "state": deployment.state if deployment else "not a full deployment",
        },
    )


inventory_job = dg.define_asset_job(
    "inventory",
    selection=[serverless_inventory, organization_inventory],
    executor_def=dg.in_process_executor,
    description="Read the Serverless deployment and the organization's full deployments, and "
    "record what they have. Changes nothing.",
)
