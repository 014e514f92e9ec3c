"""The whole organization before the migration: every full deployment with its agent type, its
code locations and its runs, read through the user API, one deployment after another. What the
per-deployment migration is planned from; a deployment already on HYBRID is reported and
skipped, never switched twice. No Dagster code here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from migration_pipeline.lib.markdown import table
from migration_pipeline.lib.record import dataclass_record

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient


@dataclass(frozen=True)
class DeploymentSummary:
    name: str
    id: int
    agent_type: str
    locations: int
    runs: int

    @property
    def to_migrate(self) -> bool:
        return self.agent_type == "SERVERLESS"

    @property
    def state(self) -> str:
        if self.to_migrate:
            return "to migrate"
        if self.agent_type == "HYBRID":
            return "already Hybrid: skipped"
        return f"{self.agent_type}: skipped"


@dataclass(frozen=True)
class OrganizationInventory:
    organization_url: str
    deployments: tuple[DeploymentSummary, ...]
    branch_deployments: int

    @property
    def to_migrate(self) -> list[str]:
        return [d.name for d in self.deployments if d.to_migrate]


ORGANIZATION_INVENTORY = dataclass_record(
    OrganizationInventory,
    "organization inventory",
    "organization_inventory",
    "list_deployments",
    asset_value=True,
)


def take_organization_inventory(client: DagsterPlusClient) -> OrganizationInventory:
    """Every full deployment (not branch deployments: they follow their base), read with the
    same token: two requests each (its locations document, its run counts)."""
    summaries = []
    for deployment in sorted(client.full_deployments(), key=lambda d: d.name):
        scoped = client.for_deployment(deployment.name)
        summaries.append(
            DeploymentSummary(
                deployment.name,
                deployment.id,
                deployment.agent_type or "UNKNOWN",
                len(scoped.locations_as_document().get("locations") or []),
                sum(scoped.run_counts_by_status().values()),
            )
        )
    branches = sum(1 for d in client.deployments() if d.is_branch)
    return OrganizationInventory(client.url, tuple(summaries), branches)


def render_deployments(inventory: OrganizationInventory, progress: dict[str, str]) -> str:
    """The deployments, with how far each one's migration got (`progress`: name -> text)."""
    return table(
        ["deployment", "id", "agent type", "locations", "runs", "migration", "progress"],
        [
            [d.name, d.id, d.agent_type, d.locations, d.runs, d.state, progress.get(d.name, "")]
            for d in inventory.deployments
        ],
        "no full deployment",
    )
