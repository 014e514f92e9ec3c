"""The pure core: (project files, target settings, inventory) -> MigrationPlan.

No Dagster, no network, no disk: every input is plain data and so is the plan, which lists
every file to write with its new content, every Dagster+ change, and every warning, and renders
itself as a unified diff and a markdown summary. `apply.apply_plan` writes it.

`make_plan` checks what every layout needs, finds the repository's layout
(`layouts.detect`) and hands it to that layout's planner: `plan.legacy` for a
`dagster_cloud.yaml`, `plan.dg` for a dg project or workspace. What both planners use is in
`plan.common`.
"""

from __future__ import annotations

from dataclasses import replace

from migration_pipeline.inventory.core import Inventory, value_problems
from migration_pipeline.layouts.detect import detect_layout
from migration_pipeline.layouts.files import ProjectFiles
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.plan.dg import make_dg_plan
from migration_pipeline.plan.legacy import make_legacy_plan
from migration_pipeline.plan.model import MigrationPlan
from migration_pipeline.targets import get_target, needs_images
from migration_pipeline.targets.settings import TargetSettings


def make_plan(
    project: ProjectFiles,
    target_name: str,
    settings: TargetSettings,
    inventory: Inventory | None = None,
) -> MigrationPlan:
    """Plan the migration of `project` to `target_name`. Raises `InvalidInput` (nothing to
    write) when an input is wrong."""
    target = get_target(target_name)
    if needs_images(target) and not settings.registry:
        raise InvalidInput(
            [
                Problem(
                    "--registry",
                    None,
                    (),
                    f"is required for target "
                    f"{target_name}: the agent pulls each location's image from it "
                    "(e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/acme)",
                )
            ]
        )
    if inventory is not None:
        found = value_problems(inventory)
        if found:
            raise InvalidInput(
                [Problem("the inventory", None, (key,), text) for key, text in found.items()]
            )
    layout = detect_layout(project, settings.layout)
    if layout.is_dg:
        plan = make_dg_plan(project, layout, target_name, settings, inventory)
    else:
        plan = make_legacy_plan(project, layout, target_name, settings, inventory)
    problems = [
        Problem(
            "the target settings",
            None,
            (key,),
            f"names {', '.join(unknown)}, which this plan does not deploy (its "
            f"locations: {', '.join(plan.locations)})",
        )
        for key, names in (("move_order", settings.move_order), ("first_run", settings.first_run))
        if (unknown := [name for name in names if name not in plan.locations])
    ]
    if problems:
        raise InvalidInput(problems)
    return replace(
        plan,
        strategy=settings.strategy,
        strategy_reason=strategy_reason(settings, inventory),
    )


def queues_in_use(inventory: Inventory | None) -> list[str]:
    """The agent queues the deployment's locations are routed to already (so the organization
    has agent queues); none known without an inventory."""
    if inventory is None:
        return []
    locations = inventory.locations_document.get("locations") or []
    return sorted({str(loc["agent_queue"]) for loc in locations if loc.get("agent_queue")})


def strategy_reason(settings: TargetSettings, inventory: Inventory | None = None) -> str:
    """Why the cutover goes the way the settings chose, said in the plan, with what the
    inventory shows of the organization's agent queues."""
    if settings.strategy == "per_location":
        in_use = queues_in_use(inventory)
        known = (
            f"this deployment routes locations to agent queues already ({', '.join(in_use)}), "
            "so the organization has them"
            if in_use
            else "whether the organization has agent queues (a Dagster+ Pro feature) is in no "
            "field of Dagster+'s API: the first move shows it, and a location that does not "
            "load through the queue goes back to the Serverless agent at once"
        )
        order = (
            f"{', '.join(settings.move_order)} first (move_order), then the plan's order"
            if settings.move_order
            else "in the plan's order"
        )
        return (
            f"per_location (the target settings ask): each location moves to the Hybrid agent "
            f"({order}) "
            f"through agent queue {settings.routed_queue!r} while the Serverless agent keeps "
            "serving the others, then the switch deactivates a Serverless agent that serves "
            f"nothing. Needs an agent of dagster-cloud 1.6.0 or later, RUNNING before the "
            f"cutover (checked before anything changes); {known}."
        )
    return (
        "switch (the default): the switch deactivates the Serverless agent, then every location "
        "is deployed to the Hybrid agent at once; nothing serves the deployment until the "
        "Hybrid agent has loaded them. `strategy: per_location` avoids that window where the "
        "organization has agent queues."
    )
