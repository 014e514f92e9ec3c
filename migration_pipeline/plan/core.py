"""The pure core: (project files, target settings, inventory) -> MigrationPlan.

No Dagster, no network, no disk: every input is plain data and so is the plan, which lists
every file to write with its new content, every Dagster+ change, and every warning, and renders
itself as a unified diff and a markdown summary. `apply.apply_plan` writes it.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from migration_pipeline.cloud_yaml.model import MIGRATED_NAME, CloudYaml, load_cloud_yaml
from migration_pipeline.cloud_yaml.rewrite import rewrite_cloud_yaml
from migration_pipeline.cloud_yaml.validate import validate_cloud_yaml
from migration_pipeline.inventory.core import Inventory, settings_after_cutover, value_problems
from migration_pipeline.layouts.detect import detect_layout
from migration_pipeline.layouts.files import ProjectFiles
from migration_pipeline.lib.paths import escapes_project, normalize
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.plan.dockerfile import (
    DEFAULT_PYTHON_VERSION,
    DOCKERIGNORE,
    POST_INSTALL_HOOK,
    PRE_INSTALL_HOOK,
    BuildContext,
    render_dockerfile,
)
from migration_pipeline.plan.model import (
    MigrationPlan,
    PlannedFile,
    PlanWarning,
    SettingsChange,
)
from migration_pipeline.plan.scan import (
    ci_makes_branch_deployments,
    scan_python,
    serverless_python_version,
    serverless_workflows,
)
from migration_pipeline.targets import get_target, needs_images
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


# -- making the plan ---------------------------------------------------------------------------


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
        from migration_pipeline.plan.dg import make_dg_plan

        return make_dg_plan(project, layout, target_name, settings, inventory)
    name = layout.file
    original = project.text(name) or ""
    cloud = load_cloud_yaml(original, name)
    problems = validate_cloud_yaml(cloud, target.container_context_key, before_rewrite=True)
    if problems:
        raise InvalidInput(problems)

    rewrite = rewrite_cloud_yaml(cloud, target, settings)
    rewritten = rewrite.cloud
    directories = build_directories(rewritten)  # build directory -> its locations, merged
    problems = validate_cloud_yaml(rewritten, target.container_context_key)
    if problems:
        raise InvalidInput(problems)

    warnings: list[PlanWarning] = [PlanWarning(str(c), name, c.line) for c in rewrite.conflicts]
    warnings += [PlanWarning(p.message, p.file) for p in project.unreadable]
    written_name = MIGRATED_NAME if name == "locations.yaml" else name
    files = [
        PlannedFile(
            written_name,
            original if written_name == name else project.text(written_name),
            rewrite.text,
            f"rewritten for the {target.label} agent"
            + ("" if written_name == name else f" (from {name}, in the list form)"),
        )
    ]
    if written_name != name:
        warnings.append(
            PlanWarning(
                f"the old dagster-cloud-cicd-action's file: dagster-cloud ci reads "
                f"{written_name}, which the plan writes from it; delete {name} once the new "
                "CI runs",
                name,
            )
        )
    image_options, option_warnings = _image_options(project, cloud, directories)
    warnings += option_warnings

    version = settings.python_version
    version_source = "the target settings"
    if version is None:
        detected = serverless_python_version(project)
        if detected:
            version, file, line = detected
            version_source = f"{file}:{line}"
        else:
            version, version_source = DEFAULT_PYTHON_VERSION, "default (no PYTHON_VERSION found)"

    if needs_images(target):
        own_dockerfile = {
            directory
            for directory, locations in directories.items()
            if all("dockerfile" in image_options.get(n, {}) for n, _ in locations)
        }
        for planned, warning in _dockerfiles(
            project, directories, version, settings.base_image, own_dockerfile
        ):
            if planned:
                files.append(planned)
            if warning:
                warnings.append(warning)

    ci_secrets: list[str] = []
    replaced: set[str] = set()
    serverless_ci = serverless_workflows(project)
    uses_branch_deployments = bool(inventory and inventory.uses_branch_deployments) or any(
        ci_makes_branch_deployments(project.text(f.file) or "") for f in serverless_ci
    )
    if needs_images(target) and serverless_ci:
        from migration_pipeline.ci.common import ImageBuild

        builds = tuple(
            ImageBuild(
                name,
                directory,
                rewrite.images[name],
                image_options.get(name, {}).get("dockerfile"),
                image_options.get(name, {}).get("target"),
            )
            for directory, locations in sorted(directories.items())
            for name, _ in locations
            if name in rewrite.images
        )
        ci_files, ci_secrets, ci_warnings = hybrid_ci(
            project,
            [f.file for f in serverless_ci],
            builds,
            written_name,
            version,
            inventory,
            settings,
            uses_branch_deployments,
        )
        files += ci_files
        warnings += ci_warnings
        replaced = {f.path for f in ci_files}

    warnings += feature_warnings(
        project,
        _location_roots(directories),
        [ref.name for ref in cloud.locations],
        target_name,
        inventory,
        settings,
    )
    warnings += serverless_ci_warnings(project, replaced)
    warnings += [PlanWarning(note, name) for note in layout.notes]

    escaping = [
        Problem(
            f.path,
            None,
            (),
            f"would be written through {hit[0]}, a symbolic link out of the project "
            f"(to {hit[1]}): the plan writes only inside the project",
        )
        for f in files
        if (hit := project.leads_outside(f.path))
    ]
    if escaping:
        raise InvalidInput(escaping)
    return MigrationPlan(
        target=target_name,
        cloud_yaml=written_name,
        files=tuple(files),
        images=dict(rewrite.images),
        settings_change=settings_change(inventory, settings),
        warnings=tuple(warnings),
        changes=tuple(rewrite.changes),
        python_version=version,
        python_version_source=version_source,
        locations=tuple(ref.name for ref in cloud.locations),
        ci_secrets=tuple(ci_secrets),
        branch_deployments=uses_branch_deployments,
        image_options=image_options,
    )


STAGE_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"


def _image_options(
    project: ProjectFiles, cloud: CloudYaml, directories: BuildDirectories
) -> tuple[dict[str, dict[str, str]], list[PlanWarning]]:
    """The old action's `dockerfile` and `target` per location, checked: the Dockerfile must
    be a file in the project (relative to the build directory), the target a stage name."""
    import re

    from migration_pipeline.lib import names

    directory_of = {n: d for d, locations in directories.items() for n, _ in locations}
    options: dict[str, dict[str, str]] = {}
    warnings: list[PlanWarning] = []
    problems: list[Problem] = []
    for ref in cloud.locations:
        requested = cloud.image_options(ref)
        if not requested:
            continue
        chosen: dict[str, str] = {}
        directory = directory_of.get(ref.name, ".")
        dockerfile = requested.get("dockerfile")
        if dockerfile is not None:
            path = normalize(f"{directory}/{dockerfile}")
            if (
                names.plain_text_problem(dockerfile)
                or escapes_project(dockerfile)
                or escapes_project(path)
                or "\\" in dockerfile
            ):
                problems.append(
                    cloud.source.problem(
                        ref.path + ("dockerfile",),
                        f"{dockerfile!r} is not a Dockerfile inside the project",
                    )
                )
            elif not project.exists(path):
                warnings.append(
                    PlanWarning(
                        f"{ref.name}: names the Dockerfile {path}, which is not in the project: "
                        "its image is built from the generated Dockerfile instead",
                        cloud.name,
                    )
                )
            else:
                chosen["dockerfile"] = path
        target = requested.get("target")
        if target is not None:
            if re.fullmatch(STAGE_NAME, target) is None:
                problems.append(
                    cloud.source.problem(
                        ref.path + ("target",), f"{target!r} is not a Dockerfile stage name"
                    )
                )
            elif "dockerfile" in chosen or project.has(f"{directory}/Dockerfile"):
                chosen["target"] = target
        if chosen:
            options[ref.name] = chosen
            warnings.append(
                PlanWarning(
                    f"{ref.name}: its image is built from "
                    f"{chosen.get('dockerfile', directory + '/Dockerfile')}"
                    + (f", stage {chosen['target']}" if "target" in chosen else "")
                    + " as the old dagster-cloud-cicd-action built it (the images step and the "
                    "new CI do the same)",
                    cloud.name,
                )
            )
    if problems:
        raise InvalidInput(problems)
    return options, warnings


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
    url = (inventory.organization_url if inventory else None) or common.dagster_cloud_url_of(
        "".join(old_texts)
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


def build_directories(cloud: CloudYaml) -> BuildDirectories:
    """Build directory (project-relative) -> [(location, merged config)]."""
    base = cloud.name.rsplit("/", 1)[0] if "/" in cloud.name else "."
    directories: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for ref in cloud.locations:
        merged = cloud.merged_location(ref)
        directory = (merged.get("build") or {}).get("directory") or "."
        directories[normalize(f"{base}/{directory}")].append((ref.name, merged))
    return directories


def _dockerfiles(
    project: ProjectFiles,
    directories: BuildDirectories,
    python_version: str,
    base_image: str | None,
    own_dockerfile: set[str] | None = None,
):
    for directory, locations in sorted(directories.items()):
        prefix = "" if directory == "." else directory + "/"
        if directory in (own_dockerfile or set()):  # built from the Dockerfile the action named
            continue
        names = tuple(name for name, _ in locations)
        dockerfile = prefix + "Dockerfile"
        dependency_text = "".join(
            project.text(prefix + f) or ""
            for f in ("requirements.txt", "pyproject.toml", "setup.py", "setup.cfg")
        )
        working = {merged.get("working_directory") for _, merged in locations}
        build = BuildContext(
            locations=names,
            python_version=python_version,
            base_image=base_image,
            has_requirements=project.has(prefix + "requirements.txt"),
            has_pyproject=project.has(prefix + "pyproject.toml"),
            has_setup_py=project.has(prefix + "setup.py"),
            pre_install_hook=project.has(prefix + PRE_INSTALL_HOOK),
            post_install_hook=project.has(prefix + POST_INSTALL_HOOK),
            working_directory=working.pop() if len(working) == 1 else None,
            mentions_dagster_cloud="dagster-cloud" in dependency_text
            or "dagster_cloud" in dependency_text,
        )
        generated = render_dockerfile(build)
        existing = project.text(dockerfile)
        reason = f"builds {', '.join(names)} (replaces the Serverless PEX build)"
        if existing is not None and existing != generated:
            yield (
                None,
                PlanWarning(
                    f"kept your Dockerfile for {', '.join(names)}: check that it installs "
                    "dagster-cloud and does what the Serverless hooks did",
                    dockerfile,
                ),
            )
        else:
            yield PlannedFile(dockerfile, existing, generated, reason), None
            if not (build.has_requirements or build.has_pyproject or build.has_setup_py):
                yield (
                    None,
                    PlanWarning(
                        f"{directory} has no requirements.txt, pyproject.toml or setup.py: the image "
                        f"for {', '.join(names)} installs only dagster-cloud",
                        dockerfile,
                    ),
                )
        ignore = dockerignore_file(project, directory, DOCKERIGNORE)
        if ignore is not None:
            yield ignore, None


def _location_roots(directories: BuildDirectories) -> dict[str, list[str]]:
    """Directory -> the locations whose code is there: their working directory, else their
    build directory."""
    roots: dict[str, list[str]] = defaultdict(list)
    for directory, locations in directories.items():
        for name, merged in locations:
            working = merged.get("working_directory")
            root = (
                directory
                if not working or working.startswith("/")
                else normalize(f"{directory}/{working}")
            )
            roots[root].append(name)
    return roots


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


def settings_change(inventory: Inventory | None, settings: TargetSettings) -> SettingsChange | None:
    if not inventory:
        return None
    before = copy.deepcopy(inventory.settings)
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
