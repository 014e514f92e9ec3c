"""The plan for a repository deployed from a `dagster_cloud.yaml` (or `build.yaml`, or the old
dagster-cloud-cicd-action's `locations.yaml`): the file rewritten for the target agent, a
Dockerfile per build directory, the Hybrid CI, and the warnings. Pure, as `plan.core` says.
"""

from __future__ import annotations

from collections import defaultdict

from migration_pipeline.cloud_yaml.model import MIGRATED_NAME, CloudYaml, load_cloud_yaml
from migration_pipeline.cloud_yaml.rewrite import rewrite_cloud_yaml
from migration_pipeline.cloud_yaml.validate import validate_cloud_yaml
from migration_pipeline.inventory.core import Inventory
from migration_pipeline.layouts.detect import Layout
from migration_pipeline.layouts.files import ProjectFiles
from migration_pipeline.lib.paths import escapes_project, normalize
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.plan.common import (
    BuildDirectories,
    build_directories,
    dockerignore_file,
    feature_warnings,
    refuse_image_collisions,
    refuse_writes_out_of_the_project,
    replace_serverless_ci,
    settings_change,
)
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
)
from migration_pipeline.plan.scan import (
    serverless_python_version,
)
from migration_pipeline.targets import get_target, needs_images
from migration_pipeline.targets.settings import TargetSettings


def make_legacy_plan(
    project: ProjectFiles,
    layout: Layout,
    target_name: str,
    settings: TargetSettings,
    inventory: Inventory | None,
) -> MigrationPlan:
    """Plan the migration of the `dagster_cloud.yaml` `layout` found. Raises `InvalidInput`
    (nothing to write) when an input is wrong."""
    target = get_target(target_name)
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

    from migration_pipeline.ci.common import ImageBuild

    ci = replace_serverless_ci(
        project,
        tuple(
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
        ),
        written_name,
        version,
        inventory,
        settings,
        needs_images(target),
    )
    files += ci.files
    warnings += ci.warnings

    warnings += feature_warnings(
        project,
        _location_roots(directories),
        [ref.name for ref in cloud.locations],
        target_name,
        inventory,
        settings,
    )
    warnings += [PlanWarning(note, name) for note in layout.notes]

    refuse_writes_out_of_the_project(project, files)
    refuse_image_collisions(dict(rewrite.images), settings.image_layout, written_name)
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
        ci_secrets=tuple(ci.secrets),
        branch_deployments=ci.branch_deployments,
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
                names.ci_text_problem(dockerfile)
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
