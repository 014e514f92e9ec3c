"""The plan for a dg project or workspace: what `dg plus deploy` reads, written for a Hybrid agent.

Per project (one code location each):
- `pyproject.toml`: `[tool.dg.project] code_location_name` where it is not set, so the Hybrid
  deploy updates the live location instead of creating a second one (edited with tomlkit:
  comments, order and formatting kept);
- containerized targets: `build.yaml` (`registry`, `directory`), `container_context.yaml`
  (the target settings under `k8s:`, `ecs:` or `docker:`), a Dockerfile (uv when the project
  has a `uv.lock`, pip otherwise) and a `.dockerignore` in its build directory;
- Local: no file but the name; the deploy gives each location its module, its working
  directory and the executable (see `local_deploy_keys`).

Pure: `ProjectFiles` and settings in, `MigrationPlan` out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from migration_pipeline.inventory.core import Inventory
from migration_pipeline.layouts.detect import Layout
from migration_pipeline.layouts.dg import (
    DOCUMENT_NAME,
    DgLayout,
    DgProject,
    deploy_document,
    read_dg,
)
from migration_pipeline.layouts.files import ProjectFiles
from migration_pipeline.lib.names import placeholder_reason
from migration_pipeline.lib.problems import InvalidInput, Problem, format_path, shown
from migration_pipeline.plan.common import (
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
from migration_pipeline.plan.model import MigrationPlan, PlannedFile, PlanWarning
from migration_pipeline.targets import get_target, needs_images
from migration_pipeline.targets.base import AgentTarget
from migration_pipeline.targets.settings import TargetSettings

NAME_KEY = ("tool", "dg", "project", "code_location_name")


@dataclass(frozen=True)
class KeptName:
    """The location name a project deploys under after the migration, and why."""

    project: DgProject
    name: str
    why: str
    written: bool  # the plan writes code_location_name (it was not set)
    live: bool | None  # the deployment has a location of this name (None: no inventory)


def make_dg_plan(
    project: ProjectFiles,
    layout: Layout,
    target_name: str,
    settings: TargetSettings,
    inventory: Inventory | None,
) -> MigrationPlan:
    target = get_target(target_name)
    dg = read_dg(project, layout)
    if inventory is not None and inventory.agent_type == "HYBRID":
        raise InvalidInput(
            [
                Problem(
                    layout.file,
                    layout.line,
                    (),
                    f"is deployed to {inventory.deployment}, which is already HYBRID: there is "
                    "nothing to migrate, and no file was rewritten",
                )
            ]
        )
    kept, warnings = keep_location_names(dg, inventory)
    files = name_files(project, kept, settings.routed_queue)
    images: dict[str, str] = {}
    versions = {p.path: python_version(project, p, settings) for p in dg.projects}
    if needs_images(target):
        images = image_repositories(dg, kept, settings)
        build, build_warnings = build_files(project, dg, kept, images, settings)
        context, context_warnings = container_context_files(project, dg, target, settings)
        files += build + context
        warnings += build_warnings + context_warnings
        docker, docker_warnings = dockerfiles(project, dg, kept, versions, settings)
        files += docker
        warnings += docker_warnings
    else:
        warnings += local_warnings(dg, settings)
    warnings += doubled_list_warnings(dg)
    warnings += [PlanWarning(p.message, p.file) for p in project.unreadable]
    warnings += [PlanWarning(note, layout.file, layout.line) for note in layout.notes]
    names = [k.name for k in kept]
    roots = {k.project.path: [k.name] for k in kept}
    warnings += feature_warnings(project, roots, names, target_name, inventory, settings)
    ci = replace_serverless_ci(
        project,
        image_builds(dg, kept, images) if images else (),
        layout.file,
        ci_python_version(versions),
        inventory,
        settings,
        needs_images(target),
        dg_target_path=layout.root,
    )
    files += ci.files
    warnings += ci.warnings
    refuse_writes_out_of_the_project(project, files)
    refuse_image_collisions(
        images,
        settings.image_layout,
        layout.file,
        chosen=frozenset(
            k.name
            for k in kept
            if placeholder_reason(dg.merged_build(k.project).get("registry")) is None
        ),
    )
    problems = planned_document_problems(project, files, layout, target, settings)
    if problems:
        raise InvalidInput(problems)
    version_values = set(versions.values())
    first = next(iter(versions.values()), (DEFAULT_PYTHON_VERSION, "default"))
    return MigrationPlan(
        target=target_name,
        cloud_yaml=layout.file,
        files=tuple(files),
        images=images,
        settings_change=settings_change(inventory, settings),
        warnings=tuple(warnings),
        changes=tuple(name_changes(kept)),
        python_version=first[0]
        if len(version_values) <= 1
        else ", ".join(sorted({v for v, _ in version_values})),
        python_version_source=first[1]
        if len(version_values) <= 1
        else "per project: " + "; ".join(f"{p}: {v} ({s})" for p, (v, s) in versions.items()),
        locations=tuple(names),
        layout=layout.kind,
        layout_description=f"{layout.describe(len(dg.projects))} ({layout.where()})",
        names_kept=tuple(k.name for k in kept if k.live),
        names_checked=inventory is not None,
        ci_secrets=tuple(ci.secrets),
        branch_deployments=ci.branch_deployments,
    )


# -- names -------------------------------------------------------------------------------------


def keep_location_names(
    dg: DgLayout, inventory: Inventory | None
) -> tuple[list[KeptName], list[PlanWarning]]:
    """Each project's location name after the migration: the one it sets; else the live
    location dg would deploy it as (its folder's name), else the live location that loads the
    project's module; else the folder name. Written into pyproject.toml where it was not set,
    so no checkout folder can change it."""
    live_document = (inventory.locations_document.get("locations") if inventory else None) or []
    live: dict[str, dict[str, Any]] = {
        loc["location_name"]: loc
        for loc in live_document
        if isinstance(loc, dict) and isinstance(loc.get("location_name"), str)
    }
    known = inventory is not None
    taken: set[str] = {p.code_location_name for p in dg.projects if p.code_location_name}
    kept: list[KeptName] = []
    warnings: list[PlanWarning] = []
    for p in dg.projects:
        if p.code_location_name:
            name, why, written = p.code_location_name, "set in [tool.dg.project]", False
        else:
            loading = [
                n
                for n, loc in live.items()
                if (loc.get("code_source") or {}).get("module_name") == p.target_module
                and n not in taken
            ]
            if p.folder_name in live and p.folder_name not in taken:
                name, why = p.folder_name, "dg's default, the project folder's name"
            elif len(loading) == 1:
                name, why = loading[0], f"the live location that loads {p.target_module}"
            else:
                name, why = p.folder_name, "dg's default, the project folder's name"
            written = True
            taken.add(name)
            if p.path == ".":
                warnings.append(
                    PlanWarning(
                        f"a project at the top of the repository deploys under the name of the "
                        f"folder CI checks it out into (on GitHub, the repository's name), "
                        f"not {p.folder_name!r} by right: the plan sets code_location_name = "
                        f"{name!r} so that every checkout deploys the same location",
                        p.pyproject,
                    )
                )
        is_live = (name in live) if known else None
        kept.append(KeptName(p, name, why, written, is_live))
        if known and not is_live:
            others = ", ".join(sorted(n for n in live if n not in taken)) or "none"
            warnings.append(
                PlanWarning(
                    f"{p.path}: deploys as {name!r}, which the deployment does not have: the "
                    f"Hybrid deploy creates a new location beside the Serverless ones (live "
                    f"locations not matched to a project: {others})",
                    p.pyproject,
                    p.name_line,
                    fix="set code_location_name in [tool.dg.project] to the live location's name",
                )
            )
    matched = {k.name for k in kept}
    for name in sorted(n for n in live if n not in matched):
        warnings.append(
            PlanWarning(
                f"the live location {name!r} has no project here: after the switch no Hybrid "
                "image serves it (it stays in the deployment, failing to load)",
                fix="add its project to the workspace, or delete the location once migrated",
            )
        )
    return kept, warnings


def name_files(
    project: ProjectFiles, kept: list[KeptName], agent_queue: str | None
) -> list[PlannedFile]:
    """Each project's pyproject.toml with code_location_name (where not set) and the target
    settings' agent_queue (where the project sets none)."""
    from migration_pipeline.lib.toml_source import parse_toml, set_toml_key

    table = NAME_KEY[:-1]
    files = []
    for k in kept:
        queue = agent_queue if agent_queue and not k.project.agent_queue else None
        if not k.written and not queue:
            continue
        path = k.project.pyproject
        old = project.text(path) or ""
        new = old
        why = []
        if k.written:
            new = set_toml_key(parse_toml(new, path), table, NAME_KEY[-1], k.name)
            why.append(f"keeps the location's name: code_location_name = {k.name!r} ({k.why})")
        if queue:
            new = set_toml_key(parse_toml(new, path), table, "agent_queue", queue)
            why.append(f"agent_queue = {queue!r}, as the target settings ask")
        files.append(PlannedFile(path, old, new, "; ".join(why)))
    return files


def name_changes(kept: list[KeptName]) -> list[str]:
    return [
        f"{k.project.pyproject}: set {format_path(NAME_KEY)} = {k.name!r} ({k.why})"
        if k.written
        else f"{k.project.pyproject}: keeps code_location_name = {k.name!r}"
        for k in kept
    ]


# -- images ------------------------------------------------------------------------------------


def image_builds(dg: DgLayout, kept: list[KeptName], images: dict[str, str]) -> tuple:
    """One CI image build per project: its build directory, its repository, the Dockerfile dg
    plus deploy would use (`<build directory>/Dockerfile`)."""
    from migration_pipeline.ci.common import ImageBuild

    return tuple(ImageBuild(k.name, dg.build_directory(k.project), images[k.name]) for k in kept)


def ci_python_version(versions: dict[str, tuple[str, str]]) -> str:
    """The CI's Python: the newest the projects' images use (dg itself runs on it)."""
    return max(
        (v for v, _ in versions.values()),
        key=lambda v: int(v.split(".")[1]),
        default=DEFAULT_PYTHON_VERSION,
    )


def image_repositories(
    dg: DgLayout, kept: list[KeptName], settings: TargetSettings
) -> dict[str, str]:
    """Location -> the repository its image is pushed to: the registry the project's build.yaml
    (or the workspace's) already names, if real; else the planned one."""
    from migration_pipeline.cloud_yaml.rewrite import image_repository

    assert settings.registry
    repositories = {}
    for k in kept:
        current = dg.merged_build(k.project).get("registry")
        if current and placeholder_reason(current) is None:
            repositories[k.name] = str(current)
        else:
            repositories[k.name] = image_repository(
                settings.registry, k.name, settings.image_layout
            )
    return repositories


def build_files(
    project: ProjectFiles,
    dg: DgLayout,
    kept: list[KeptName],
    images: dict[str, str],
    settings: TargetSettings,
) -> tuple[list[PlannedFile], list[PlanWarning]]:
    """Each project's build.yaml with its registry and build directory. A registry already set
    is kept unless it is a placeholder, which is replaced and reported."""
    from migration_pipeline.lib.yaml_source import with_values
    from migration_pipeline.targets.agent import dump

    files, warnings = [], []
    for k in kept:
        p = k.project
        path = p.file("build.yaml")
        old = project.text(path)
        merged = dg.merged_build(p)
        values: dict[str, Any] = {}
        current = merged.get("registry")
        reason = placeholder_reason(current) if current is not None else None
        if current is None or reason:
            values["registry"] = images[k.name]
            if current is not None:
                warnings.append(
                    PlanWarning(
                        f"{k.name}: build.yaml's registry {shown(current)} {reason}: replaced "
                        f"by {images[k.name]}",
                        (p.build or dg.workspace_build).path  # type: ignore[union-attr]
                        if (p.build or dg.workspace_build)
                        else path,
                    )
                )
        if not merged.get("directory"):
            values["directory"] = "."
        if p.build is not None and p.build.old_shape:
            new = dump(
                f"dg's build config for {k.name}: converted from the old dagster_cloud.yaml "
                "shape (dg refuses `locations:` here)",
                {**p.build.data, **values},
            )
            warnings.append(
                PlanWarning(
                    f"{k.name}: build.yaml was in the old dagster_cloud.yaml shape, which dg "
                    "refuses: rewritten as {registry, directory}",
                    path,
                )
            )
        elif not values:
            continue
        elif old is None:
            new = dump(
                f"dg's build config for {k.name}: where dg plus deploy builds and pushes its image",
                values,
            )
        else:
            new = with_values(old, path, values)
        files.append(
            PlannedFile(
                path,
                old,
                new,
                f"{k.name}: the registry its image is pushed to, the directory it is built from",
            )
        )
    return files, warnings


def container_context_files(
    project: ProjectFiles, dg: DgLayout, target: AgentTarget, settings: TargetSettings
) -> tuple[list[PlannedFile], list[PlanWarning]]:
    """Each project's container_context.yaml with the target settings under the platform's key.
    What the project (or the workspace) already sets is kept; a differing value is reported."""
    from migration_pipeline.lib.yaml_source import with_values
    from migration_pipeline.targets.agent import dump

    key = target.container_context_key
    desired = target.container_context(settings)
    files: list[PlannedFile] = []
    warnings: list[PlanWarning] = []
    if not key or not desired:
        return files, warnings
    for p in dg.projects:
        path = p.file("container_context.yaml")
        effective = dg.merged_container_context(p).get(key) or {}
        missing = {k: v for k, v in desired.items() if k not in effective}
        for k, v in desired.items():
            if k in effective and effective[k] != v:
                warnings.append(
                    PlanWarning(
                        f"{p.name}: {key}.{k}: kept your {shown(effective[k])}; the target "
                        f"settings would set {shown(v)}",
                        path
                        if p.container_context
                        else (
                            dg.workspace_container_context.path
                            if dg.workspace_container_context
                            else path
                        ),
                    )
                )
        if not missing:
            continue
        old = project.text(path)
        new = (
            dump(
                f"dg's container context for {p.name}: the {target.label} agent's settings",
                {key: missing},
            )
            if old is None or not old.strip()
            else with_values(old, path, missing, under=key)
        )
        files.append(
            PlannedFile(path, old, new, f"{p.name}: the {target.label} agent's settings ({key}:)")
        )
    return files, warnings


def python_version(
    project: ProjectFiles, p: DgProject, settings: TargetSettings
) -> tuple[str, str]:
    """(version, where it came from) for a project's image, the first of: the target settings,
    the project's .python-version, the Serverless CI's PYTHON_VERSION, the lowest minor version
    its requires-python admits. A version the project's requires-python refuses is passed over
    (the target settings' too: the image could not install the project)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    from migration_pipeline.plan.scan import serverless_python_version

    try:
        allowed = SpecifierSet(p.requires_python) if isinstance(p.requires_python, str) else None
    except InvalidSpecifier:
        allowed = None
    candidates: list[tuple[str, str]] = []
    if settings.python_version:
        candidates.append((settings.python_version, "the target settings"))
    match = re.match(r"(3\.\d+)", p.python_version_file or "")
    if match:
        candidates.append((match.group(1), p.file(".python-version")))
    found = serverless_python_version(project)
    if found:
        candidates.append((found[0], f"{found[1]}:{found[2]}"))
    for version, source in candidates:
        if allowed is None or allowed.contains(f"{version}.0", prereleases=True):
            return version, source
    if allowed is not None:
        for minor in range(8, 20):
            if allowed.contains(f"3.{minor}.0", prereleases=True):
                return f"3.{minor}", f"{p.pyproject} requires-python {p.requires_python!r}"
    return DEFAULT_PYTHON_VERSION, "Serverless's default (the project names no Python version)"


def dockerfiles(
    project: ProjectFiles,
    dg: DgLayout,
    kept: list[KeptName],
    versions: dict[str, tuple[str, str]],
    settings: TargetSettings,
) -> tuple[list[PlannedFile], list[PlanWarning]]:
    """A Dockerfile and .dockerignore in each build directory, where dg plus deploy looks
    (`<build directory>/Dockerfile`)."""
    files: list[PlannedFile] = []
    warnings: list[PlanWarning] = []
    for k in kept:
        p = k.project
        directory = dg.build_directory(p)
        prefix = "" if directory == "." else directory + "/"
        dockerfile = prefix + "Dockerfile"
        dependency_text = (project.text(p.pyproject) or "") + (
            project.text(prefix + "requirements.txt") or ""
        )
        build = BuildContext(
            locations=(k.name,),
            python_version=versions[p.path][0],
            base_image=settings.base_image,
            has_requirements=project.has(prefix + "requirements.txt"),
            has_pyproject=project.has(prefix + "pyproject.toml"),
            has_setup_py=project.has(prefix + "setup.py"),
            pre_install_hook=project.has(prefix + PRE_INSTALL_HOOK),
            post_install_hook=project.has(prefix + POST_INSTALL_HOOK),
            mentions_dagster_cloud="dagster-cloud" in dependency_text
            or "dagster_cloud" in dependency_text,
            editable=directory == p.path,
            uv=p.uses_uv and directory == p.path,
        )
        generated = render_dockerfile(build)
        existing = project.text(dockerfile)
        if existing is not None and existing != generated:
            warnings.append(
                PlanWarning(
                    f"kept your Dockerfile for {k.name}: check that it installs dagster-cloud",
                    dockerfile,
                )
            )
        else:
            files.append(
                PlannedFile(
                    dockerfile,
                    existing,
                    generated,
                    f"builds {k.name} ("
                    + ("uv sync from its uv.lock" if build.uv else "pip")
                    + f", Python {build.python_version}; replaces the Serverless PEX build)",
                )
            )
        ignore = dockerignore_file(project, directory, DOCKERIGNORE)
        if ignore is not None:
            files.append(ignore)
    return files, warnings


# -- what the plan says without writing --------------------------------------------------------


def local_deploy_keys(dg: DgLayout, settings: TargetSettings) -> dict[str, dict[str, Any]]:
    """Per location, what a Local agent needs beyond dg's document: the working directory its
    code server starts in (the project, or its `src/`: the root module's parent) and, when the
    settings name one, the Python that has the project installed."""
    executable = getattr(settings, "executable_path", None)
    keys: dict[str, dict[str, Any]] = {}
    for p in dg.projects:
        working = p.file("src") if p.src_layout else p.path
        keys[p.name] = {
            "working_directory": working,
            **({"executable_path": executable} if executable else {}),
        }
    return keys


def local_warnings(dg: DgLayout, settings: TargetSettings) -> list[PlanWarning]:
    if getattr(settings, "executable_path", None):
        return []
    return [
        PlanWarning(
            f"a Local agent runs {', '.join(p.name for p in dg.projects)} with its own Python "
            "(working directory: each project's src/ or folder): install the projects into the "
            "agent's environment, or set executable_path in the target settings to a Python "
            "that has them (e.g. a project's .venv/bin/python after uv sync)",
            dg.layout.file,
        )
    ]


def doubled_list_warnings(dg: DgLayout) -> list[PlanWarning]:
    """Lists set in both the workspace's and a project's container_context.yaml: dg
    concatenates them and drops exact duplicates, so an env var set to different values at
    both levels reaches the container twice."""
    workspace = dg.workspace_container_context
    if workspace is None:
        return []
    warnings = []
    for p in dg.projects:
        if p.container_context is None:
            continue
        for path, ours, theirs in _lists_in_both(workspace.data, p.container_context.data, ()):
            # dg drops an entry the other list has as it is; one that differs stays beside it.
            same = {repr(item) for item in ours}
            named = {_identity(item) for item in ours}
            both = sorted(
                {_identity(i) for i in theirs if repr(i) not in same and _identity(i) in named}
            )
            if both:
                warnings.append(
                    PlanWarning(
                        f"{p.name}: {format_path(path)} sets {', '.join(both)} in both "
                        f"{workspace.path} and {p.container_context.path}, to different values: "
                        "dg concatenates the two lists, so the container gets both",
                        p.container_context.path,
                        fix="set each value at one level only",
                    )
                )
    return warnings


def _lists_in_both(a: Any, b: Any, path: tuple) -> list[tuple[tuple, list, list]]:
    if isinstance(a, list) and isinstance(b, list):
        return [(path, a, b)]
    if isinstance(a, dict) and isinstance(b, dict):
        return [found for k in a if k in b for found in _lists_in_both(a[k], b[k], path + (k,))]
    return []


def _identity(item: Any) -> str:
    """An env var by its name (`NAME=value` or `NAME`), a named object by its name."""
    if isinstance(item, str):
        return item.split("=", 1)[0]
    if isinstance(item, dict) and "name" in item:
        return str(item["name"])
    return repr(item)


def dg_deploy_document(dg: DgLayout, target: AgentTarget, settings: TargetSettings):
    """The document the migration deploys for a dg layout: dg's own, and for a Local agent the
    keys it needs to find the code."""
    return deploy_document(dg, None if needs_images(target) else local_deploy_keys(dg, settings))


def dg_cloud_yaml(dg: DgLayout, target: AgentTarget, settings: TargetSettings):
    """`dg_deploy_document` as a `CloudYaml`, which the later phases and the checks read."""
    import yaml

    from migration_pipeline.cloud_yaml.model import load_cloud_yaml

    return load_cloud_yaml(
        yaml.safe_dump(dg_deploy_document(dg, target, settings), sort_keys=False), DOCUMENT_NAME
    )


def planned_document_problems(
    project: ProjectFiles,
    files: list[PlannedFile],
    layout: Layout,
    target: AgentTarget,
    settings: TargetSettings,
) -> list[Problem]:
    """What Dagster+'s schemas and the target agent's container-context schema find in the
    document dg would deploy once the plan is applied, each named in the dg file it comes
    from (a project's container_context.yaml or build.yaml, or the workspace's)."""
    from dataclasses import replace

    from migration_pipeline.cloud_yaml.validate import validate_cloud_yaml

    planned = replace(project, texts={**project.texts, **{f.path: f.new for f in files}})
    dg = read_dg(planned, layout)
    problems = validate_cloud_yaml(
        dg_cloud_yaml(dg, target, settings), target.container_context_key
    )
    return [_in_dg_files(planned, dg, problem) for problem in problems]


def _in_dg_files(project: ProjectFiles, dg: DgLayout, problem: Problem) -> Problem:
    from migration_pipeline.lib.yaml_source import parse_yaml

    if problem.path[:1] != ("locations",) or len(problem.path) < 3:
        return problem
    index, key, rest = problem.path[1], problem.path[2], tuple(problem.path[3:])
    p = dg.projects[int(index)]
    configs = {
        "container_context": (p.container_context, dg.workspace_container_context),
        "build": (p.build, dg.workspace_build),
    }.get(str(key))
    if configs is None:
        return Problem(p.pyproject, p.name_line, (key, *rest), problem.message)
    own, workspace = configs
    config = own if own is not None and rest[:1] and rest[0] in own.data else workspace or own
    if config is None:
        return Problem(p.pyproject, None, (key, *rest), problem.message)
    source = parse_yaml(project.text(config.path) or "", config.path)
    line = source.line_of(rest) if rest and source.has(rest) else None
    return Problem(config.path, line, rest, problem.message)
