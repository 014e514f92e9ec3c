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
        return make_dg_plan(project, layout, target_name, settings, inventory)
    return make_legacy_plan(project, layout, target_name, settings, inventory)
