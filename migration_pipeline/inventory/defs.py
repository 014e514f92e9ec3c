"""The inventory phase: what the Serverless deployment has, before anything changes. Reads only."""

from typing import TYPE_CHECKING, Any

import dagster as dg

from migration_pipeline.deployments import (
    DEPLOYMENTS,
    add_deployment_partitions,
    deployment_partitions,
)
from migration_pipeline.records import RECORDS_IO_MANAGER
from migration_pipeline.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource

if TYPE_CHECKING:
    from migration_pipeline.inventory.core import Inventory
    from migration_pipeline.inventory.organization import OrganizationInventory
else:  # Dagster reads these at load; the types load on use (definitions.ASSET_VALUE_MODULES)
    Inventory = OrganizationInventory = Any

GROUP = "inventory"


@dg.asset(
    io_manager_key=RECORDS_IO_MANAGER,
    group_name=GROUP,
    retry_policy=DAGSTER_PLUS_RETRY,
    partitions_def=DEPLOYMENTS,
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
    partitions_def=DEPLOYMENTS,
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
    io_manager_key=RECORDS_IO_MANAGER,
    group_name=GROUP,
    retry_policy=DAGSTER_PLUS_RETRY,
    description="Every full deployment of the organization: its agent type, its code locations "
    "and its runs, whether it is to migrate (SERVERLESS) or already Hybrid (reported, "
    "skipped, never switched twice), and how far its migration got; the number of branch "
    "deployments, which follow their base. Adds each deployment to migrate as a partition of "
    "every migration asset and job.",
    kinds={"dagster"},
)
def organization_inventory(
    context: dg.AssetExecutionContext, dagster_plus: DagsterPlusResource
) -> dg.Output[OrganizationInventory]:
    from migration_pipeline.deployments import progress
    from migration_pipeline.inventory.organization import (
        render_deployments,
        take_organization_inventory,
    )

    with dagster_plus.session(context) as client:
        inventory = take_organization_inventory(client)
    added = add_deployment_partitions(context.instance, inventory.to_migrate)
    states = {
        name: progress(context.instance, name) for name in deployment_partitions(context.instance)
    }
    context.log.info(
        f"{len(inventory.deployments)} full deployments, to migrate: "
        f"{', '.join(inventory.to_migrate) or 'none'}"
        + (f"; added as partitions: {', '.join(added)}" if added else "")
    )
    return dg.Output(
        inventory,
        metadata={
            "deployments": len(inventory.deployments),
            "to_migrate": inventory.to_migrate,
            "already_hybrid": [d.name for d in inventory.deployments if d.agent_type == "HYBRID"],
            "partitions_added": added,
            "progress": dg.MetadataValue.json({name: p.state for name, p in states.items()}),
            "branch_deployments": inventory.branch_deployments,
            "locations": sum(d.locations for d in inventory.deployments),
            "runs": sum(d.runs for d in inventory.deployments),
            "table": dg.MetadataValue.md(
                render_deployments(inventory, {name: p.summary() for name, p in states.items()})
            ),
        },
    )


@dg.asset_check(
    asset=organization_inventory,
    description="Every deployments partition is one of the organization's full deployments "
    "(a deployment deleted since it was added cannot be migrated).",
)
def every_partition_is_a_full_deployment(
    context: dg.AssetCheckExecutionContext, organization_inventory: OrganizationInventory
) -> dg.AssetCheckResult:
    found = {d.name for d in organization_inventory.deployments}
    partitions = deployment_partitions(context.instance)
    unknown = [name for name in partitions if name not in found]
    return dg.AssetCheckResult(
        passed=not unknown,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"partitions": list(partitions), "not_full_deployments": unknown},
    )


organization_job = dg.define_asset_job(
    "list_deployments",
    selection=[organization_inventory],
    executor_def=dg.in_process_executor,
    description="Read the organization's full deployments and add those still on Serverless "
    "as partitions of every migration asset and job. Changes nothing in Dagster+.",
)

inventory_job = dg.define_asset_job(
    "inventory",
    selection=[serverless_inventory],
    executor_def=dg.in_process_executor,
    partitions_def=DEPLOYMENTS,
    description="Read one Serverless deployment (a partition) and record what it has. "
    "Changes nothing.",
)
