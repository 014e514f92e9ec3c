"""The plan phase (a dry run: reads only) and the apply phase (writes the project files)."""

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from migration_pipeline.deployments import DEPLOYMENTS
from migration_pipeline.records import RECORDS_IO_MANAGER

if TYPE_CHECKING:
    from migration_pipeline.inventory.core import Inventory
    from migration_pipeline.plan.applied import AppliedProject
    from migration_pipeline.plan.model import PlannedMigration
else:  # Dagster reads these at load; the types load on use (definitions.ASSET_VALUE_MODULES)
    Inventory = AppliedProject = PlannedMigration = Any

GROUP = "plan"


class AgentTarget(str, Enum):
    """The Hybrid agent type to move to."""

    kubernetes = "kubernetes"
    ecs = "ecs"
    docker = "docker"
    azure = "azure"
    local = "local"


class MigrationConfig(dg.Config):
    project_dir: str = Field(
        description="The repository as you check it out: a dagster_cloud.yaml, a dg project "
        "(pyproject.toml with [tool.dg]) or a dg workspace (dg.toml).",
    )
    target: AgentTarget = Field(default=AgentTarget.kubernetes, description="The agent type.")
    registry: str | None = Field(
        default=None,
        description="Image registry and repository prefix, e.g. "
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme (not needed for local).",
    )
    settings_file: str | None = Field(
        default=None, description="Target settings YAML (optional; every key has a default)."
    )


def invalid_input_failure(error) -> dg.Failure:
    return dg.Failure(
        description=error.report(),
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in error.problems))},
        allow_retries=False,
    )


@dg.asset(
    io_manager_key=RECORDS_IO_MANAGER,
    group_name=GROUP,
    partitions_def=DEPLOYMENTS,
    description="The dry run: every file the migration would write, as a diff, every Dagster+ "
    "change and every warning. Reads only.",
    kinds={"python"},
)
def migration_plan(
    context: dg.AssetExecutionContext, config: MigrationConfig, serverless_inventory: Inventory
) -> dg.Output[PlannedMigration]:
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.lib.files import read_user_file
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.plan.model import PlannedMigration
    from migration_pipeline.targets.settings import load_target_settings

    try:
        settings_text = (
            read_user_file(config.settings_file, "settings file") if config.settings_file else None
        )
        settings = load_target_settings(
            config.target.value, settings_text, config.settings_file or "settings", config.registry
        )
        project = read_project(config.project_dir)
        plan = make_plan(project, config.target.value, settings, serverless_inventory)
    except InvalidInput as error:
        raise invalid_input_failure(error) from None
    for warning in plan.warnings:
        context.log.warning(f"{warning.where() or 'plan'}: {warning.message}")
    diff = plan.diff()
    return dg.Output(
        PlannedMigration(str(Path(config.project_dir).resolve()), plan, settings),
        metadata={
            "target": plan.target,
            "files_to_write": len(plan.changed_files),
            "warnings": len(plan.warnings),
            "summary": dg.MetadataValue.md(plan.summary_markdown()),
            "diff": dg.MetadataValue.md(f"```diff\n{diff}```" if diff else "_no file changes_"),
            "images": dg.MetadataValue.json(plan.images),
            "settings_removed_at_cutover": list(plan.settings_change.removed)
            if plan.settings_change
            else [],
            "branch_deployments": plan.branch_deployments,
            "layout": plan.layout_description or f"legacy {plan.cloud_yaml}",
            "location_names_kept": f"{len(plan.names_kept)}/{len(plan.locations)}"
            if plan.layout != "legacy" and plan.names_checked
            else "names from dagster_cloud.yaml"
            if plan.layout == "legacy"
            else "not checked (no inventory)",
        },
    )


@dg.asset(
    io_manager_key=RECORDS_IO_MANAGER,
    group_name=GROUP,
    partitions_def=DEPLOYMENTS,
    description="The Hybrid project files written: the rewritten dagster_cloud.yaml (for a dg "
    "project: code_location_name, build.yaml, container_context.yaml), a Dockerfile "
    "per build directory, .dockerignore, the Hybrid CI. Atomic, with a backup; a second run "
    "writes nothing (so the second deployment of one repository writes nothing either).",
    kinds={"python"},
)
def hybrid_project_files(
    context: dg.AssetExecutionContext, migration_plan: PlannedMigration
) -> dg.Output[AppliedProject]:
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.applied import AppliedProject
    from migration_pipeline.plan.apply import ApplyFailed, apply_plan

    plan = migration_plan.plan
    try:
        result = apply_plan(plan, migration_plan.project_dir)
    except InvalidInput as error:
        raise invalid_input_failure(error) from None
    except ApplyFailed as failure:
        raise dg.Failure(failure.report(), allow_retries=False) from None
    for path in result.written:
        context.log.info(
            f"wrote {path}"
            + (f" (backup {result.backups[path]})" if path in result.backups else "")
        )
    if result.late_signal:  # the run was asked to stop: it stops, with every file written
        import signal

        context.log.warning(
            f"{result.late_signal} came after every file was written: the apply is complete; "
            "a re-run writes nothing"
        )
        signal.raise_signal(signal.Signals[result.late_signal])
    applied = AppliedProject(
        project_dir=migration_plan.project_dir,
        target_name=plan.target,
        cloud_yaml=plan.cloud_yaml,
        images=dict(plan.images),
        written=tuple(result.written),
        settings=migration_plan.settings.model_dump(mode="json"),
        settings_removed_at_cutover=plan.settings_change.removed if plan.settings_change else (),
        branch_deployments=plan.branch_deployments,
        image_options=dict(plan.image_options),
        layout=plan.layout,
    )
    return dg.Output(
        applied,
        metadata={
            "written": result.written,
            "unchanged": result.unchanged,
            "backups": dg.MetadataValue.json(result.backups),
            "project_dir": migration_plan.project_dir,
        },
    )


@dg.asset_check(
    asset=hybrid_project_files,
    blocking=True,
    partitions_def=DEPLOYMENTS,
    description="The written dagster_cloud.yaml (for a dg project: the one dg plus deploy makes "
    "from its files) validates with Dagster+'s schemas "
    "and the target agent's container context schema.",
)
def hybrid_dagster_cloud_yaml_is_valid(hybrid_project_files: AppliedProject) -> dg.AssetCheckResult:
    problems = hybrid_project_files.cloud_yaml_problems()
    path = Path(hybrid_project_files.project_dir) / hybrid_project_files.cloud_yaml
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={
            "file": str(path),
            "problems": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in problems) or "_none_"),
        },
    )


# What the Launchpad shows first, when this checkout has the example: the example repository
# planned for Kubernetes (a dry run: it writes nothing, so the placeholder registry is harmless).
# Set your repository, target and registry.
EXAMPLE_PROJECT = Path(__file__).resolve().parents[2] / "examples" / "serverless_repo"
EXAMPLE_REGISTRY = "registry.example.com/acme"
LAUNCHPAD_DEFAULT = (
    {
        "ops": {
            "migration_plan": {
                "config": {
                    "project_dir": str(EXAMPLE_PROJECT),
                    "target": "kubernetes",
                    "registry": EXAMPLE_REGISTRY,
                }
            }
        }
    }
    if (EXAMPLE_PROJECT / "dagster_cloud.yaml").is_file()
    else None
)

plan_job = dg.define_asset_job(
    "plan_migration",
    selection=dg.AssetSelection.assets("serverless_inventory", "migration_plan"),
    executor_def=dg.in_process_executor,
    config=LAUNCHPAD_DEFAULT,
    description="The dry run: read the deployment and plan every change. Writes nothing.",
)

apply_files_job = dg.define_asset_job(
    "apply_migration_files",
    selection=dg.AssetSelection.assets(hybrid_project_files),
    executor_def=dg.in_process_executor,
    description="Write the planned project files (atomically, with a backup) and validate them.",
)
