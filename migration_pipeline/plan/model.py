"""The plan as data: every file to write with its old and new text, every Dagster+ change,
every warning; it renders itself as a unified diff and a markdown summary. Light on purpose:
the Dagster layer annotates its assets with these types at import time."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from migration_pipeline.lib.markdown import cell, table
from migration_pipeline.lib.plain import as_plain, from_plain
from migration_pipeline.lib.record import Record

if TYPE_CHECKING:
    from migration_pipeline.targets.settings import TargetSettings


@dataclass(frozen=True)
class PlannedFile:
    path: str  # relative to the project directory
    old: str | None  # None: the file does not exist yet
    new: str
    reason: str

    @property
    def action(self) -> str:
        return "create" if self.old is None else ("unchanged" if self.old == self.new else "update")

    def diff(self) -> str:
        before = (self.old or "").splitlines(keepends=True)
        after = self.new.splitlines(keepends=True)
        return "".join(
            difflib.unified_diff(
                before,
                after,
                fromfile="/dev/null" if self.old is None else f"a/{self.path}",
                tofile=f"b/{self.path}",
            )
        )


@dataclass(frozen=True)
class PlanWarning:
    message: str
    file: str | None = None
    line: int | None = None
    fix: str | None = None

    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""


@dataclass(frozen=True)
class SettingsChange:
    """Dagster+ deployment settings to change at cutover."""

    before: dict[str, Any]
    after: dict[str, Any]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class MigrationPlan:
    target: str
    cloud_yaml: str
    files: tuple[PlannedFile, ...]
    images: dict[str, str]  # location -> image repository (containerized targets)
    settings_change: SettingsChange | None
    warnings: tuple[PlanWarning, ...]
    changes: tuple[str, ...]  # what the dagster_cloud.yaml rewrite does, one line each
    python_version: str
    python_version_source: str
    locations: tuple[str, ...] = field(default=())
    ci_secrets: tuple[str, ...] = field(default=())  # repository secrets the new CI needs
    # The organization uses branch deployments: the agent serves them and the CI makes them.
    branch_deployments: bool = False
    # location -> how its image is built, when not from its build directory's Dockerfile:
    # `dockerfile` (project-relative) and `target` (a build stage), from the old action's file.
    image_options: dict[str, dict[str, str]] = field(default_factory=dict)
    # legacy | dg_project | dg_workspace (layouts.detect), and how the report says it.
    layout: str = "legacy"
    layout_description: str = ""
    # The locations that deploy under the name the deployment has them by (dg layouts).
    names_kept: tuple[str, ...] = field(default=())
    names_checked: bool = False  # the deployment's locations were read (an inventory)
    strategy: str = "switch"  # switch | per_location (targets.settings)
    strategy_reason: str = ""

    @property
    def changed_files(self) -> tuple[PlannedFile, ...]:
        return tuple(f for f in self.files if f.action != "unchanged")

    def diff(self) -> str:
        return "".join(f.diff() for f in self.changed_files)

    def as_dict(self) -> dict[str, Any]:
        return as_plain(self)

    def summary_markdown(self) -> str:
        return render_summary(self)


@dataclass(frozen=True)
class PlannedMigration:
    """The plan asset's value: the plan, where it applies, and the settings it was made with."""

    project_dir: str
    plan: MigrationPlan
    settings: TargetSettings


def _planned_plain(planned: PlannedMigration) -> dict[str, Any]:
    return {
        "project_dir": planned.project_dir,
        "plan": as_plain(planned.plan),
        "settings": planned.settings.model_dump(mode="json"),
    }


def _planned_from(raw: Any, kind: Record[PlannedMigration]) -> PlannedMigration:
    """The plan, and its settings typed by its target's own settings model."""
    from pydantic import ValidationError

    from migration_pipeline.targets import get_target

    if not isinstance(raw, dict) or not {"project_dir", "plan", "settings"} <= set(raw):
        raise kind.refused("recorded earlier is not a plan this version can read")
    plan = from_plain(MigrationPlan, raw["plan"], kind.what, kind.writer)
    try:
        settings = get_target(plan.target).settings_model.model_validate(raw["settings"])
    except (ValidationError, KeyError, ValueError) as error:
        why = str(error).splitlines()[0]
        raise kind.refused(f"has target settings this version cannot read ({why})") from None
    return PlannedMigration(str(raw["project_dir"]), plan, settings)


PLAN: Record[PlannedMigration] = Record(
    "migration plan",
    "migration_plan",
    "plan_migration",
    1,
    _planned_plain,
    _planned_from,
    asset_value=True,
)


# -- the summary -------------------------------------------------------------------------------


def render_summary(plan: MigrationPlan) -> str:
    lines = [f"## Migration plan: Serverless to Hybrid ({plan.target})", ""]
    if plan.layout_description:
        lines += [f"- Layout: {plan.layout_description}"]
    if plan.layout != "legacy":
        lines += [
            f"- Location names kept: {len(plan.names_kept)}/{len(plan.locations)}"
            if plan.names_checked
            else "- Location names kept: not checked (no inventory of the deployment)"
        ]
    lines += [
        f"- Code locations: {len(plan.locations)} ({', '.join(plan.locations)})",
        f"- Files: {len([f for f in plan.files if f.action == 'create'])} to create, "
        f"{len([f for f in plan.files if f.action == 'update'])} to update, "
        f"{len([f for f in plan.files if f.action == 'unchanged'])} unchanged",
        f"- Python for the images: {plan.python_version} (from {plan.python_version_source})",
        f"- Strategy: {plan.strategy_reason or plan.strategy}",
        "- Branch deployments: "
        + (
            "in use, so the agent's config serves them"
            + (" and the CI makes one per pull request" if plan.ci_secrets else "")
            if plan.branch_deployments
            else "none seen"
        ),
        f"- Warnings: {len(plan.warnings)}",
        "",
    ]
    lines += [
        "### Files",
        "",
        table(["file", "action", "why"], [[f"`{f.path}`", f.action, f.reason] for f in plan.files]),
    ]
    if plan.changes:
        heading = f"`{plan.cloud_yaml}`" if plan.layout == "legacy" else "the dg project files"
        lines += ["", f"### Changes to {heading}", ""]
        lines += [f"- {cell(change)}" for change in plan.changes]
    if plan.images:
        lines += [
            "",
            "### Images",
            "",
            table(
                ["location", "image repository"],
                [[name, f"`{repo}`"] for name, repo in plan.images.items()],
            ),
        ]
    if plan.ci_secrets:
        lines += [
            "",
            "### CI",
            "",
            "The Serverless CI is replaced by a Hybrid one (see the diff). Set these "
            "repository secrets (CI/CD variables on GitLab): "
            + ", ".join(f"`{s}`" for s in plan.ci_secrets)
            + ".",
        ]
    lines += ["", "### Dagster+ changes at cutover", ""]
    if plan.settings_change is None:
        lines += ["- Deployment settings not read (no inventory): run the inventory first."]
    elif plan.settings_change.removed:
        lines += [
            f"- Remove the deployment setting `{key}` (now "
            f"`{plan.settings_change.before[key]}`), as the target settings ask"
            for key in plan.settings_change.removed
        ]
    else:
        lines += ["- Deployment settings are kept as they are."]
    lines += ["- Switch the deployment's agent type to HYBRID."]
    if plan.warnings:
        lines += [
            "",
            "### Warnings",
            "",
            table(
                ["where", "what", "how to fix"],
                [[w.where(), w.message, w.fix or ""] for w in plan.warnings],
            ),
        ]
    return "\n".join(lines) + "\n"
