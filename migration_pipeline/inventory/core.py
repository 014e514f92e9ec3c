"""What a Serverless deployment has before the migration: read through the Dagster+ client,
kept as plain data, rendered as markdown. No Dagster code here."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, NotRequired

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    with_config,
)
from typing_extensions import TypedDict

from migration_pipeline.lib.markdown import table
from migration_pipeline.lib.plain import as_plain
from migration_pipeline.lib.record import Record

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


# The inventory's parts, typed strictly (`"false"` is not a boolean, `true` not a number), so
# that an inventory file or an answer of the wrong shape is refused with its key path and the
# type expected (`inventory_from`), never read as something else.
class AgentRecord(TypedDict):
    id: StrictStr
    label: StrictStr | None
    status: StrictStr
    last_heartbeat_time: StrictFloat  # strict, yet a whole number of seconds is taken too


class LocationRecord(TypedDict):
    name: StrictStr
    load_status: StrictStr
    error: StrictStr | None


class InstigatorRecord(TypedDict):
    location: StrictStr
    name: StrictStr
    kind: StrictStr
    status: StrictStr


@with_config(ConfigDict(extra="allow"))
class NonIsolatedRuns(TypedDict):
    enabled: NotRequired[StrictBool]
    max_concurrent_non_isolated_runs: NotRequired[StrictInt]


@with_config(ConfigDict(extra="allow"))
class DeploymentSettings(TypedDict):
    """The deployment's settings document; only what the migration reads is typed, every other
    key is kept as it is (the cutover and the rollback write the document back whole)."""

    non_isolated_runs: NotRequired[NonIsolatedRuns]


@with_config(ConfigDict(extra="allow"))
class LocationsDocument(TypedDict):
    locations: NotRequired[list[dict[StrictStr, Any]]]


@dataclass(frozen=True)
class Inventory:
    """A snapshot of one deployment, as plain JSON-able data."""

    organization_url: StrictStr
    deployment: StrictStr
    deployment_id: StrictInt
    agent_type: StrictStr
    serverless_status: StrictStr
    agents: list[AgentRecord]
    locations_document: LocationsDocument
    locations: list[LocationRecord]
    settings: DeploymentSettings
    run_counts: dict[StrictStr, Annotated[StrictInt, Field(ge=0)]]
    instigators: list[InstigatorRecord] = field(default_factory=list)
    # The organization has branch deployments, so its CI makes them and its agent serves them.
    uses_branch_deployments: StrictBool = False

    @property
    def run_total(self) -> int:
        return sum(self.run_counts.values())

    def as_dict(self) -> dict[str, Any]:
        return as_plain(self)


@functools.cache
def _inventory_adapter():
    from pydantic import TypeAdapter

    return TypeAdapter(Inventory)


def inventory_from(raw: Any, source: str) -> Inventory:
    """An inventory from plain data (an inventory file, or what Dagster+ answered), checked
    against the types above: `InvalidInput` naming `source`, each key path, the type expected
    and the value found. Unknown top-level keys are refused (a file that is not an inventory)."""
    import dataclasses

    from pydantic import ValidationError

    from migration_pipeline.lib.problems import InvalidInput, Problem, validation_problems

    fields = [f.name for f in dataclasses.fields(Inventory)]
    if not isinstance(raw, dict):
        raise InvalidInput(
            [Problem(source, None, (), f"is not an inventory (a mapping of {', '.join(fields)})")]
        )
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        keys = ", ".join(fields)
        raise InvalidInput(
            [
                Problem(
                    source, None, (key,), f"unknown key: this is not an inventory (keys: {keys})"
                )
                for key in unknown
            ]
        )
    try:
        inventory = _inventory_adapter().validate_python(raw)
    except ValidationError as error:
        raise InvalidInput(validation_problems(error, source)) from None
    problems = [
        Problem(source, None, (key,), problem) for key, problem in value_problems(inventory).items()
    ]
    if problems:
        raise InvalidInput(problems)
    return inventory


def _inventory_record(raw: Any, kind: Record[Inventory]) -> Inventory:
    from migration_pipeline.lib.problems import InvalidInput

    try:
        return inventory_from(raw, f"the recorded {kind.asset}")
    except InvalidInput as error:
        raise kind.refused(f"recorded earlier cannot be read by this version ({error})") from None


INVENTORY: Record[Inventory] = Record(
    "Serverless inventory",
    "serverless_inventory",
    "inventory",
    1,
    lambda inventory: inventory.as_dict(),
    _inventory_record,
    asset_value=True,
)


def take_inventory(client: DagsterPlusClient) -> Inventory:
    """Read everything the migration needs to plan and to verify against, one call each; what
    Dagster+ answered is checked as an inventory file would be."""
    deployment = client.deployment_by_name(client.deployment)
    workspace = client.workspace()
    raw = dict(
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
    return inventory_from(raw, f"Dagster+'s answers ({client.url}, {deployment.name})")


def render_sections(inventory: Inventory) -> dict[str, str]:
    """One markdown table per section, keyed by section name."""
    from migration_pipeline.plus.types import locations_by_name

    code_sources = locations_by_name(dict(inventory.locations_document))
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
