"""What the legacy and the dg planners share: the build directories of a locations document,
the Serverless-only features found in the code, the Hybrid CI that replaces the Serverless one,
the deployment settings changed at cutover, the .dockerignore. Pure functions."""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from migration_pipeline.cloud_yaml.model import CloudYaml
from migration_pipeline.inventory.core import Inventory, settings_after_cutover
from migration_pipeline.layouts.files import ProjectFiles, link_described
from migration_pipeline.lib.paths import normalize
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.plan.model import (
    PlannedFile,
    PlanWarning,
    SettingsChange,
)
from migration_pipeline.plan.scan import (
    ci_makes_branch_deployments,
    scan_python,
    serverless_workflows,
)
from migration_pipeline.targets.agent import AGENT_DIR
from migration_pipeline.targets.settings import TargetSettings

IO_MANAGER_ADVICE = {
    "ecs": "dagster_aws.s3.S3PickleIOManager (a bucket the ECS task role can write)",
    "kubernetes": "an object-store I/O manager such as dagster_aws.s3.S3PickleIOManager or "
    "dagster_gcp.GCSPickleIOManager",
    "azure": "dagster_azure.adls2.ADLS2PickleIOManager (an ADLS Gen2 container)",
    "docker": "an object-store I/O manager (dagster_aws.s3.S3PickleIOManager, ...) or "
    "dg.FilesystemIOManager on a mounted volume",
    "local": "dg.FilesystemIOManager (a directory the Local agent's machine keeps)",
}


BuildDirectories = dict[str, list[tuple[str, dict[str, Any]]]]


def build_directories(cloud: CloudYaml) -> BuildDirectories:
    """Build directory (project-relative) -> [(location, merged config)]."""
    base = cloud.name.rsplit("/", 1)[0] if "/" in cloud.name else "."
    directories: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for ref in cloud.locations:
        merged = cloud.merged_location(ref)
        directory = (merged.get("build") or {}).get("directory") or "."
        directories[normalize(f"{base}/{directory}")].append((ref.name, merged))
    return directories


def _locations_of(path: str, roots: dict[str, list[str]]) -> tuple[str, ...]:
    """The locations whose code holds `path` (the deepest directory wins)."""
    best: tuple[str, ...] = ()
    best_length = -1
    for root, names in roots.items():
        prefix = "" if root == "." else root + "/"
        if path.startswith(prefix) and len(prefix) > best_length:
            best, best_length = tuple(names), len(prefix)
    return best


def feature_warnings(
    project: ProjectFiles,
    roots: dict[str, list[str]],
    location_names: list[str],
    target: str,
    inventory: Inventory | None,
    settings: TargetSettings,
) -> list[PlanWarning]:
    """What the code uses that only Serverless had (non-isolated runs, the Serverless I/O
    manager), found in its Python files; `roots` maps a folder to the locations whose code is
    there."""
    findings, broken = scan_python(project)
    warnings = [
        PlanWarning(
            "does not parse as Python, so it was not scanned for Serverless-only features", path
        )
        for path in broken
    ]
    non_isolated = (inventory.settings.get("non_isolated_runs") if inventory else None) or {}
    kept = not settings.remove_non_isolated_runs
    for f in findings:
        if f.kind == "isolation_tag" and (kept and non_isolated.get("enabled")):
            warnings.append(
                PlanWarning(
                    "asks for a non-isolated run (`dagster/isolation` tag): Hybrid agents run these "
                    "too (in the code server), and the deployment's `non_isolated_runs` setting is "
                    "kept, so the tag keeps working",
                    f.file,
                    f.line,
                    fix="give the code server enough memory and CPU for these runs, or drop the tag "
                    "and give the job `executor_def=dg.in_process_executor` (one process per run) "
                    "or `dg.multiprocess_executor`",
                )
            )
        elif f.kind == "isolation_tag":
            warnings.append(
                PlanWarning(
                    "asks for a non-isolated run (`dagster/isolation` tag), but the deployment's "
                    "`non_isolated_runs` setting is "
                    + ("removed at cutover" if non_isolated.get("enabled") else "not enabled")
                    + ": the run will be isolated",
                    f.file,
                    f.line,
                    fix="drop the tag and give the job `executor_def=dg.in_process_executor` to keep "
                    "its steps in one process (or `dg.multiprocess_executor` to run them in "
                    "parallel)",
                )
            )
        elif f.kind == "serverless_io_manager":
            warnings.append(
                PlanWarning(
                    "uses the Serverless I/O manager, whose storage Hybrid agents cannot reach",
                    f.file,
                    f.line,
                    fix=f"replace it with {IO_MANAGER_ADVICE[target]}; rematerialize (or copy) the "
                    "outputs that downstream assets still read",
                )
            )
    if not non_isolated.get("enabled"):
        return warnings
    if kept:
        warnings.append(
            PlanWarning(
                "the deployment's `non_isolated_runs` setting is kept: Hybrid agents run "
                "non-isolated runs too, in the code server (set `remove_non_isolated_runs: true` in "
                "the target settings to remove it at cutover)",
                fix="size the code servers' containers for these runs; or isolate each run and keep "
                "its steps in one process with `executor=dg.in_process_executor` "
                "(`dg.multiprocess_executor` for parallel steps)",
            )
        )
        return warnings
    definitions = [f for f in findings if f.kind == "definitions"]
    covered: set[str] = set()
    for f in definitions:
        locations = _locations_of(f.file, roots)
        covered.update(locations)
        warnings.append(
            PlanWarning(
                f"runs of {', '.join(locations) or 'this code'} could run non-isolated (the "
                "deployment's `non_isolated_runs` setting, removed at cutover as the target settings "
                "ask)",
                f.file,
                f.line,
                fix="add `executor=dg.in_process_executor` to this Definitions to keep each "
                "run's steps in one process, or `dg.multiprocess_executor` for parallel "
                "steps",
            )
        )
    for location in location_names:
        if location not in covered:
            warnings.append(
                PlanWarning(
                    f"{location}: runs could run non-isolated before the cutover; after it each run "
                    "is isolated. Give its jobs `executor_def=dg.in_process_executor` where that "
                    "mattered"
                )
            )
    return warnings


def hybrid_ci(
    project: ProjectFiles,
    serverless_files: list[str],
    builds: tuple,
    cloud_yaml: str,
    python_version: str,
    inventory: Inventory | None,
    settings: TargetSettings,
    branch_deployments: bool,
    dg_target_path: str | None = None,
):
    """The Hybrid CI in place of the Serverless one: the first Serverless GitHub workflow is
    replaced (on the triggers of all of them); for GitLab a job file to include is written next
    to `.gitlab-ci.yml`. `builds`: one `ci.common.ImageBuild` per location; `dg_target_path`:
    deploy a dg project or workspace with `dg plus deploy` from that folder."""
    from migration_pipeline.ci import common, github, gitlab

    deployment = inventory.deployment if inventory else "prod"
    old_texts = [project.text(f) or "" for f in serverless_files]
    url = (inventory.organization_url if inventory else None) or common.dagster_cloud_url_in(
        old_texts
    )
    warnings: list[PlanWarning] = []
    organization = settings.organization or (common.organization_from_url(url) if url else None)
    if not url:
        url = f"https://{organization or 'ORGANIZATION'}.dagster.cloud"
        warnings.append(
            PlanWarning(
                "the Dagster+ URL is not known (no inventory, none in the old "
                "CI): set DAGSTER_CLOUD_URL in the new CI",
                serverless_files[0],
            )
        )
    if not organization:
        organization = "ORGANIZATION"
        warnings.append(
            PlanWarning(
                f"the Dagster+ organization cannot be read from {url}: set `organization` in the "
                "target settings (the new CI needs DAGSTER_CLOUD_ORGANIZATION)",
                serverless_files[0],
            )
        )
    setup = common.CiSetup(
        builds,
        url,
        organization,
        deployment,
        python_version,
        cloud_yaml,
        branch_deployments,
        dg_target_path,
    )
    files: list[PlannedFile] = []
    secrets: list[str] = []
    workflows = [f for f in serverless_files if f.startswith(".github/")]
    if workflows:
        triggers = common.github_triggers(
            [
                text
                for f, text in zip(serverless_files, old_texts, strict=True)
                if f.startswith(".github/")
            ]
        )
        text, needed = github.hybrid_workflow(setup, triggers)
        files.append(
            PlannedFile(
                workflows[0],
                project.text(workflows[0]),
                text,
                "the Hybrid CI: builds and pushes an image per location, then "
                "deploys"
                + (" (and a branch deployment per pull request)" if branch_deployments else ""),
            )
        )
        secrets += needed
        warnings += [
            PlanWarning(
                f"remove this Serverless workflow: {workflows[0]} now deploys on its triggers too",
                other,
            )
            for other in workflows[1:]
        ]
    if ".gitlab-ci.yml" in serverless_files:
        text, needed = gitlab.hybrid_job(setup)
        files.append(
            PlannedFile(
                gitlab.PATH,
                project.text(gitlab.PATH),
                text,
                "the Hybrid GitLab CI job: builds, pushes, deploys",
            )
        )
        secrets += [s for s in needed if s not in secrets]
        warnings.append(
            PlanWarning(
                f"include {gitlab.PATH} here and remove the Serverless deploy "
                "job: the plan does not edit .gitlab-ci.yml itself",
                ".gitlab-ci.yml",
            )
        )
    return files, secrets, warnings


def settings_change(inventory: Inventory | None, settings: TargetSettings) -> SettingsChange | None:
    if not inventory:
        return None
    before: dict[str, Any] = copy.deepcopy(dict(inventory.settings))
    remove = ("non_isolated_runs",) if settings.remove_non_isolated_runs else ()
    after, removed = settings_after_cutover(before, remove)
    return SettingsChange(before, after, removed)


def serverless_ci_warnings(project: ProjectFiles, replaced: set[str]) -> list[PlanWarning]:
    """The Serverless deploy workflows the plan did not replace: they stop working at the
    switch."""
    return [
        PlanWarning(
            "this Serverless CI workflow (PEX fast deploys) stops working after the "
            "cutover: replace it with a Hybrid workflow that builds and pushes the images",
            f.file,
            f.line,
        )
        for f in serverless_workflows(project)
        if f.file not in replaced
        and not (f.file == ".gitlab-ci.yml" and replaced)
        and not (f.file.startswith(".github/") and any(r.startswith(".github/") for r in replaced))
    ]


def dockerignore_file(project: ProjectFiles, directory: str, wanted: str) -> PlannedFile | None:
    """The build directory's .dockerignore: written when absent (or as generated); an existing
    one at the top gets the agent's folder added, since it holds the agent's token."""
    prefix = "" if directory == "." else directory + "/"
    ignore = prefix + ".dockerignore"
    existing = project.text(ignore)
    if existing is None or existing == wanted:
        return PlannedFile(
            ignore,
            existing,
            wanted,
            "keeps the VCS, virtualenvs, caches and the agent's token out of the image",
        )
    if directory == "." and AGENT_DIR not in existing.split():
        separator = "" if existing.endswith("\n") else "\n"
        return PlannedFile(
            ignore,
            existing,
            existing + separator + "# Added by migration_pipeline: the agent's token stays out of "
            f"images.\n{AGENT_DIR}\n",
            "keeps the agent's token out of the image",
        )
    return None


def refuse_writes_out_of_the_project(project: ProjectFiles, files: list[PlannedFile]) -> None:
    """Raise `InvalidInput` for any planned file that would be written through a symbolic link
    leading out of the project: the plan writes only inside it."""
    escaping = [
        Problem(
            f.path,
            None,
            (),
            f"would be written through {hit[0]}, {link_described(hit[1])}: the plan writes "
            "only inside the project (remove the link)",
        )
        for f in files
        if (hit := project.leads_outside(f.path))
    ]
    if escaping:
        raise InvalidInput(escaping)


@dataclass(frozen=True)
class CiReplacement:
    """What the plan does about the repository's Serverless CI."""

    files: list[PlannedFile]  # the Hybrid CI written in its place
    secrets: list[str]  # the repository secrets it needs
    warnings: list[PlanWarning]  # what to do by hand, and workflows that stop working
    branch_deployments: bool  # the organization (or its CI) makes branch deployments


def replace_serverless_ci(
    project: ProjectFiles,
    builds: tuple,
    cloud_yaml: str,
    python_version: str,
    inventory: Inventory | None,
    settings: TargetSettings,
    containerized: bool,
    dg_target_path: str | None = None,
) -> CiReplacement:
    """The Hybrid CI for the Serverless workflows found (containerized targets; a Local agent
    has no image to build), and a warning for each Serverless workflow left as it was."""
    serverless_ci = serverless_workflows(project)
    branch_deployments = bool(inventory and inventory.uses_branch_deployments) or any(
        ci_makes_branch_deployments(project.text(f.file) or "") for f in serverless_ci
    )
    files: list[PlannedFile] = []
    secrets: list[str] = []
    warnings: list[PlanWarning] = []
    if containerized and serverless_ci:
        files, secrets, warnings = hybrid_ci(
            project,
            [f.file for f in serverless_ci],
            builds,
            cloud_yaml,
            python_version,
            inventory,
            settings,
            branch_deployments,
            dg_target_path,
        )
    warnings += serverless_ci_warnings(project, {f.path for f in files})
    return CiReplacement(files, secrets, warnings, branch_deployments)


def refuse_image_collisions(
    images: dict[str, str], layout: str, config_file: str, chosen: frozenset[str] = frozenset()
) -> None:
    """Raise `InvalidInput`, naming both locations, when two would share an image: with
    `per_location`, one repository (its slug lowercases and trims the name, so names that differ
    only by case or a trailing '.', '-' or '_' meet); with either layout, one repository and
    one CI tag (the tag keeps a name's first 60 characters; compared without case, to be safe).
    One location would run the other's code. `chosen`: locations whose repository the user
    set (a dg build.yaml's registry, which dg shares between projects by tag): by tag only."""
    from migration_pipeline.ci.common import ImageBuild

    seen: dict[tuple[str, str], str] = {}
    problems = []
    for name, repository in images.items():
        by_repository = layout == "per_location" and name not in chosen
        tag = "" if by_repository else ImageBuild(name, ".", repository).tag_suffix
        key = (repository, tag.lower())
        if key in seen:
            problems.append(
                Problem(
                    config_file,
                    None,
                    (),
                    f"locations {seen[key]!r} and {name!r} would share one image ({repository}"
                    + (f", tag suffix {tag!r}" if tag else "")
                    + "), so one would run the other's code: rename one (names that differ only "
                    "by case, a trailing '.', '-' or '_', or after the 60th character meet)",
                )
            )
        else:
            seen[key] = name
    if problems:
        raise InvalidInput(problems)
