"""What a Serverless deployment has before the migration: read through the Dagster+ client,
kept as plain data, rendered as markdown. No Dagster code here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migration_pipeline.lib.markdown import table
from migration_pipeline.lib.plain import as_plain

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient

# Deployment settings a migration may remove at cutover, only when the target settings ask for
# it: non-isolated runs (and the `dagster/isolation` tag) work on Hybrid agents too, as the
# current Dagster+ run-isolation docs say, so by default every setting is kept.
REMOVABLE_SETTINGS = ("non_isolated_runs",)


def settings_after_cutover(
    settings: dict[str, Any], remove: tuple[str, ...] = ()
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(the settings the Hybrid deployment keeps, the keys taken out): only keys in `remove`
    that are set go."""
    removed = tuple(k for k in remove if k in settings)
    return {k: v for k, v in settings.items() if k not in removed}, removed


@dataclass(frozen=True)
class Inventory:
    """A snapshot of one deployment, as plain JSON-able data."""

    organization_url: str
    deployment: str
    deployment_id: int
    agent_type: str
    serverless_status: str
    agents: list[dict[str, Any]]
    locations_document: dict[str, Any]
    locations: list[dict[str, Any]]
    settings: dict[str, Any]
    run_counts: dict[str, int]
    instigators: list[dict[str, Any]] = field(default_factory=list)
    # The organization has branch deployments, so its CI makes them and its agent serves them.
    uses_branch_deployments: bool = False

    @property
    def run_total(self) -> int:
        return sum(self.run_counts.values())

    def as_dict(self) -> dict[str, Any]:
        return as_plain(self)


def take_inventory(client: DagsterPlusClient) -> Inventory:
    """Read everything the migration needs to plan and to verify against, one call each."""
    deployment = client.deployment_by_name(client.deployment)
    workspace = client.workspace()
    return Inventory(
        organization_url=client.url,
        deployment=deployment.name,
        deployment_id=deployment.id,
        agent_type=deployment.agent_type or "UNKNOWN",
        serverless_status=client.serverless_status(),
        agents=[
            {
                "id": a.id,
                "label": a.label,
                "status": a.status,
                "last_heartbeat_time": a.last_heartbeat_time,
            }
            for a in client.agents()
        ],
        locations_document=client.locations_as_document(),
        locations=[
            {"name": e.name, "load_status": e.load_status, "error": e.error} for e in workspace
        ],
        settings=client.deployment_settings(),
        run_counts=client.run_counts_by_status(),
        instigators=[
            {"location": i.location, "name": i.name, "kind": i.kind, "status": i.status}
            for e in workspace
            for i in e.instigators
        ],
        uses_branch_deployments=client.uses_branch_deployments(),
    )


def render_sections(inventory: Inventory) -> dict[str, str]:
    """One markdown table per section, keyed by section name."""
    code_sources = {
        loc.get("location_name"): loc for loc in inventory.locations_document.get("locations") or []
    }
    return {
        "deployment": table(
            [
                "deployment",
                "id",
                "agent type",
                "serverless",
                "runs",
                "locations",
                "branch deployments",
            ],
            [
                [
                    inventory.deployment,
                    inventory.deployment_id,
                    inventory.agent_type,
                    inventory.serverless_status,
                    inventory.run_total,
                    len(inventory.locations),
                    "in use" if inventory.uses_branch_deployments else "none",
                ]
            ],
            "no deployment",
        ),
        "agents": table(
            ["id", "label", "status"],
            [[a["id"], a["label"] or "", a["status"]] for a in inventory.agents],
            "no agents",
        ),
        "code_locations": table(
            ["location", "load status", "code source", "image", "error"],
            [
                [
                    e["name"],
                    e["load_status"],
                    ", ".join(
                        f"{k}: {v}"
                        for k, v in (
                            code_sources.get(e["name"], {}).get("code_source") or {}
                        ).items()
                    ),
                    code_sources.get(e["name"], {}).get("image") or "",
                    e["error"] or "",
                ]
                for e in inventory.locations
            ],
            "no code locations",
        ),
        "deployment_settings": table(
            ["setting", "value"],
            [[key, value] for key, value in sorted(inventory.settings.items())],
            "no deployment settings",
        ),
        "runs": table(
            ["status", "runs"],
            [[status, count] for status, count in sorted(inventory.run_counts.items())]
            + [["**total**", inventory.run_total]],
            "no runs",
        ),
        "schedules_and_sensors": table(
            ["location", "kind", "name", "status"],
            [[i["location"], i["kind"], i["name"], i["status"]] for i in inventory.instigators],
            "no schedules or sensors (or no location is loaded)",
        ),
    }


def render_markdown(inventory: Inventory) -> str:
    return "\n\n".join(
        f"### {title.replace('_', ' ').capitalize()}\n\n{table}"
        for title, table in render_sections(inventory).items()
    )


def value_problems(inventory: Inventory) -> dict[str, str]:
    """The inventory's values that go into generated files (the deployment into the CI, the
    URL into its environment), checked as any input is."""
    from migration_pipeline.lib import names

    problems = {}
    deployment = names.deployment_name_problem(inventory.deployment)
    if deployment:
        problems["deployment"] = deployment
    url = names.url_problem(inventory.organization_url, "a Dagster+ URL")
    if url:
        problems["organization_url"] = url
    return problems
