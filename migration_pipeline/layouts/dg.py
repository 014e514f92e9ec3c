"""A dg project or workspace, read as `dg plus deploy` reads it (dagster-dg-core and
dagster-dg-cli 1.13.27), into `DgLayout`: one `DgProject` per code location.

What dg does, and this reader with it:
- a standalone project (`[tool.dg] directory_type = "project"`) is one location; a workspace
  (`dg.toml`, `[[workspace.projects]] path = ...`) is one per project;
- a project's location name is `[tool.dg.project] code_location_name`, else the name of the
  project's folder (`DgContext.code_location_name`), so a project at the top of a repository
  deploys under the name of the folder it was checked out into;
- its code source is `module_name: <code_location_target_module or root_module.definitions>`;
- `build.yaml` is `{registry, directory}`, `directory` relative to the file; the workspace's
  file gives defaults and a project's overrides them (`merge_build_configs`: deep merge, project
  wins);
- `container_context.yaml` holds `k8s:`, `ecs:` or `docker:`; the workspace's and a project's
  are merged by `DagsterCloudConfigDefaultsMerger().merge` on the bare mapping, so every list is
  concatenated and de-duplicated (an env var set at both levels appears twice);
- `dg plus deploy start` writes `{"locations": [...]}` from these into its state directory
  (`_dagster_cloud_entry_for_project`): that document is what `deploy_document` returns here.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from migration_pipeline.layouts.detect import (
    DG_PROJECT,
    DG_WORKSPACE,
    Layout,
    dg_directory_type,
    parent,
)
from migration_pipeline.layouts.files import ProjectFiles
from migration_pipeline.lib.names import (
    ci_text_problem,
    image_reference_problem,
    image_repository_problem,
    location_name_problem,
    placeholder_reason,
    plain_text_problem,
)
from migration_pipeline.lib.paths import escapes_project, normalize
from migration_pipeline.lib.problems import InvalidInput, Problem, did_you_mean
from migration_pipeline.lib.toml_source import TomlSource
from migration_pipeline.lib.yaml_source import parse_yaml, to_plain

PROJECT_KEYS = (
    "root_module",
    "defs_module",
    "code_location_target_module",
    "code_location_name",
    "registry_modules",
    "agent_queue",
    "image",
)
BUILD_KEYS = ("registry", "directory")
CONTAINER_CONTEXT_KEYS = ("k8s", "ecs", "docker")
DEFAULT_TARGET_SUBMODULE = "definitions"  # dg's _DEFAULT_PROJECT_CODE_LOCATION_TARGET_MODULE
# The name the deploy document made from a dg layout goes by in messages and checks.
DOCUMENT_NAME = "the dagster_cloud.yaml dg plus deploy makes"
MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class YamlConfig:
    """A dg YAML config file (`build.yaml`, `container_context.yaml`): where, and its data."""

    path: str  # project-relative
    data: dict[str, Any]
    # A build.yaml in the old dagster_cloud.yaml shape (`locations:` with one location), read
    # as that location's {registry, directory}: the plan rewrites it in dg's shape.
    old_shape: bool = False


@dataclass(frozen=True)
class DgProject:
    """One dg project: one code location."""

    path: str  # its folder, project-relative ("." at the top)
    pyproject: str  # its pyproject.toml, project-relative
    folder_name: str  # what dg names the location when code_location_name is not set
    root_module: str
    target_module: str  # the code source's module_name
    code_location_name: str | None  # as set in [tool.dg.project]
    name_line: int | None
    agent_queue: str | None = None
    image: str | None = None
    build: YamlConfig | None = None  # the project's own build.yaml
    container_context: YamlConfig | None = None  # the project's own container_context.yaml
    uses_uv: bool = False  # a uv.lock in the project's folder
    src_layout: bool = False  # the root module is under src/
    requires_python: str | None = None
    python_version_file: str | None = None  # .python-version, as written

    @property
    def name(self) -> str:
        """The location name dg deploys this project under."""
        return self.code_location_name or self.folder_name

    def file(self, name: str) -> str:
        return _in(self.path, name)


@dataclass(frozen=True)
class DgLayout:
    layout: Layout
    projects: tuple[DgProject, ...]
    workspace_build: YamlConfig | None = None
    workspace_container_context: YamlConfig | None = None

    def merged_build(self, project: DgProject) -> dict[str, Any]:
        """`merge_build_configs(workspace, project)`, with `directory` made project-relative
        (dg makes it absolute) from the file that set it."""
        merged: dict[str, Any] = {}
        for config in (self.workspace_build, project.build):
            if config is None:
                continue
            for key, value in config.data.items():
                if value is None:
                    continue
                if key == "directory":
                    value = normalize(f"{parent(config.path)}/{value}")
                merged[key] = value
        return merged

    def merged_container_context(self, project: DgProject) -> dict[str, Any]:
        from dagster_cloud_cli.config.merger import DagsterCloudConfigDefaultsMerger

        workspace = self.workspace_container_context
        own = project.container_context
        return DagsterCloudConfigDefaultsMerger().merge(
            copy.deepcopy(workspace.data) if workspace else {},
            copy.deepcopy(own.data) if own else {},
        )

    def build_directory(self, project: DgProject) -> str:
        """Where its image is built from: build.yaml's directory, else the project folder."""
        return self.merged_build(project).get("directory") or project.path


def deploy_document(dg: DgLayout, extra: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The locations document `dg plus deploy start` writes for this layout
    (`_dagster_cloud_entry_for_project` per project), with build directories project-relative.
    `extra` adds keys per location (a Local agent's working directory and executable)."""
    locations = []
    for project in dg.projects:
        build = dg.merged_build(project)
        context = dg.merged_container_context(project)
        entry: dict[str, Any] = {
            "location_name": project.name,
            "code_source": {"module_name": project.target_module},
            **({"build": build} if build else {}),
            **({"container_context": context} if context else {}),
            **({"agent_queue": project.agent_queue} if project.agent_queue else {}),
            **({"image": project.image} if project.image else {}),
        }
        entry.update((extra or {}).get(project.name, {}))
        locations.append(entry)
    return {"locations": locations}


# -- reading -----------------------------------------------------------------------------------


def read_dg(project: ProjectFiles, layout: Layout) -> DgLayout:
    """Read the dg project or workspace `layout` found. Raises `InvalidInput` naming the file
    and line for anything dg would refuse or misread; nothing is written."""
    problems: list[Problem] = []
    paths: list[tuple[str, str, int | None]]
    if layout.kind == DG_PROJECT:
        paths = [(layout.root, layout.file, None)]
        workspace_build = workspace_context = None
    elif layout.kind == DG_WORKSPACE:
        paths = _workspace_projects(project, layout, problems)
        workspace_build = _yaml_config(
            project, _in(layout.root, "build.yaml"), BUILD_KEYS, problems
        )
        workspace_context = _yaml_config(
            project, _in(layout.root, "container_context.yaml"), CONTAINER_CONTEXT_KEYS, problems
        )
    else:
        raise ValueError(f"not a dg layout: {layout.kind}")
    projects = []
    for path, pyproject, line in paths:
        read = _read_project(project, path, pyproject, line, problems)
        if read is not None:
            projects.append(read)
    by_name: dict[str, DgProject] = {}
    for read in projects:
        other = by_name.get(read.name.lower())
        if other is not None:
            problems.append(
                Problem(
                    read.pyproject,
                    read.name_line,
                    ("tool", "dg", "project", "code_location_name"),
                    f"deploys as {read.name!r}, and so does {other.pyproject} ({other.name!r}): "
                    "two projects would be one code location; give each its own "
                    "code_location_name",
                )
            )
        by_name.setdefault(read.name.lower(), read)
    if problems:
        raise InvalidInput(problems)
    return DgLayout(layout, tuple(projects), workspace_build, workspace_context)


def _in(folder: str, name: str) -> str:
    return name if folder == "." else f"{folder}/{name}"


def _workspace_projects(
    project: ProjectFiles, layout: Layout, problems: list[Problem]
) -> list[tuple[str, str, int | None]]:
    """(folder, pyproject.toml, line of its entry) of every `[[workspace.projects]]`."""
    kind = dg_directory_type(project, layout.file)
    assert kind is not None
    source = kind[1]
    prefix: tuple[str, ...] = () if layout.file.endswith("dg.toml") else ("tool", "dg")
    entries = source.get(prefix + ("workspace", "projects"), [])
    where = prefix + ("workspace", "projects")
    if not isinstance(entries, list) or not entries:
        problems.append(source.problem(where, "lists no projects: the workspace deploys nothing"))
        return []
    found: list[tuple[str, str, int | None]] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        raw = entry.get("path") if isinstance(entry, dict) else None
        line = _entry_line(source, index)
        if not isinstance(raw, str) or not raw.strip():
            problems.append(Problem(source.name, line, where + (index,), "needs a `path`"))
            continue

        problem = ci_text_problem(raw, "a project path")
        if problem is not None:
            problems.append(Problem(source.name, line, where + (index, "path"), problem))
            continue
        if raw.startswith("/") or escapes_project(raw) or "\\" in raw:
            problems.append(
                Problem(
                    source.name,
                    line,
                    where + (index, "path"),
                    f"{raw!r} is outside the repository: a workspace's projects are folders in it",
                )
            )
            continue
        folder = normalize(_in(layout.root, raw))
        if folder in seen:
            problems.append(
                Problem(
                    source.name,
                    line,
                    where + (index, "path"),
                    f"{raw!r} is listed twice (first as projects[{seen[folder]}]): dg would "
                    "deploy it twice",
                )
            )
            continue
        seen[folder] = index
        pyproject = _in(folder, "pyproject.toml")
        if project.leads_outside(pyproject):
            problems.append(
                Problem(
                    source.name,
                    line,
                    where + (index, "path"),
                    f"{raw!r} leads out of the repository through a symbolic link",
                )
            )
            continue
        if not project.has(pyproject):
            problems.append(
                Problem(
                    source.name,
                    line,
                    where + (index, "path"),
                    f"{raw!r} has no pyproject.toml: not a dg project",
                )
            )
            continue
        found.append((folder, pyproject, line))
    return found


def _entry_line(source: TomlSource, index: int) -> int | None:
    """The line of the index-th `[[workspace.projects]]` (or `path =` in an inline list)."""
    headers = [
        number
        for number, line in enumerate(source.text.splitlines(), 1)
        if re.match(r"\s*\[\[\s*(tool\.dg\.)?workspace\.projects\s*\]\]", line)
    ]
    if index < len(headers):
        return headers[index]
    paths = [
        number
        for number, line in enumerate(source.text.splitlines(), 1)
        if re.search(r"\bpath\s*=", line)
    ]
    return paths[index] if index < len(paths) else None


def _read_project(
    project: ProjectFiles, path: str, pyproject: str, entry_line: int | None, problems
) -> DgProject | None:
    kind = dg_directory_type(project, pyproject)
    if kind is None or kind[0] != "project":
        problems.append(
            Problem(
                pyproject,
                None,
                ("tool", "dg"),
                'has no [tool.dg] with directory_type = "project": not a dg project',
            )
        )
        return None
    source = kind[1]
    section = source.get(("tool", "dg", "project"))
    table = ("tool", "dg", "project")
    if not isinstance(section, dict):
        problems.append(
            source.problem(("tool", "dg"), "has no [tool.dg.project] table (root_module)")
        )
        return None
    before = len(problems)
    for key in section:
        if key not in PROJECT_KEYS:
            problems.append(
                source.problem(
                    table + (key,),
                    f'unknown key "{key}"{did_you_mean(key, PROJECT_KEYS)}: dg refuses it',
                )
            )
    root_module = section.get("root_module")
    if not isinstance(root_module, str) or not MODULE.fullmatch(root_module):
        problems.append(
            source.problem(
                table + ("root_module",) if "root_module" in section else table,
                "needs root_module, the project's top Python package (dg requires it)"
                if root_module is None
                else f"{root_module!r} is not a Python module name",
            )
        )
    for key in ("code_location_target_module", "defs_module"):
        value = section.get(key)
        if value is not None and (not isinstance(value, str) or not MODULE.fullmatch(value)):
            problems.append(
                source.problem(table + (key,), f"{value!r} is not a Python module name")
            )
    name = section.get("code_location_name")
    if name is not None:
        problem = location_name_problem(name)
        if problem:
            problems.append(source.problem(table + ("code_location_name",), problem))

    for key, check in (("agent_queue", plain_text_problem), ("image", image_reference_problem)):
        value = section.get(key)
        if value is None:
            continue
        problem = check(value) if isinstance(value, str) and value.strip() else "is empty"
        if problem:
            problems.append(source.problem(table + (key,), f"{value!r}: {problem}"))
    build = _yaml_config(project, _in(path, "build.yaml"), BUILD_KEYS, problems)
    context = _yaml_config(
        project, _in(path, "container_context.yaml"), CONTAINER_CONTEXT_KEYS, problems
    )
    if len(problems) > before:
        return None
    # dg names the location after the project's folder: for the top, the repository's own.
    folder_name = PurePosixPath(os.path.abspath(project.root) if path == "." else path).name
    if name is None:
        problem = location_name_problem(folder_name)
        if problem:
            problems.append(
                source.problem(
                    table,
                    "sets no code_location_name, so dg deploys it under its folder's name: "
                    f"{problem}; set code_location_name to the live location's name",
                )
            )
            return None
    root = str(root_module)
    target = section.get("code_location_target_module") or f"{root}.{DEFAULT_TARGET_SUBMODULE}"
    python_file = _in(path, ".python-version")
    return DgProject(
        path=path,
        pyproject=pyproject,
        folder_name=folder_name,
        root_module=root,
        target_module=target,
        code_location_name=name,
        name_line=source.line_of(table + ("code_location_name",)),
        agent_queue=section.get("agent_queue"),
        image=section.get("image"),
        build=build,
        container_context=context,
        uses_uv=project.exists(_in(path, "uv.lock")),
        src_layout=project.exists(_in(path, f"src/{root.replace('.', '/')}/__init__.py"))
        or project.exists(_in(path, f"src/{root.replace('.', '/')}.py")),
        requires_python=source.get(("project", "requires-python")),
        python_version_file=(project.text(python_file) or "").strip() or None,
    )


def _yaml_config(
    project: ProjectFiles, path: str, keys: tuple[str, ...], problems: list[Problem]
) -> YamlConfig | None:
    text = project.text(path)
    if text is None:
        return None
    try:
        source = parse_yaml(text, path)
    except InvalidInput as error:
        problems.extend(error.problems)
        return None
    data = to_plain(source.data)
    if data is None:
        return YamlConfig(path, {})
    if not isinstance(data, dict):
        problems.append(source.problem((), "must be a mapping"))
        return None
    if path.endswith("build.yaml") and "locations" in data:
        return _old_shape_build(source, data, problems)

    if path.endswith("build.yaml"):
        problems += _build_value_problems(source, data)
    for key in data:
        if key not in keys:
            problems.append(
                source.problem(
                    (key,),
                    f'unknown key "{key}"{did_you_mean(str(key), keys)}; '
                    f"dg's {path.rsplit('/', 1)[-1]} holds {', '.join(keys)}",
                )
            )
    return YamlConfig(path, data)


def _old_shape_build(source, data: dict[str, Any], problems: list[Problem]) -> YamlConfig | None:
    """A build.yaml in the old dagster_cloud.yaml shape, which dg's build config refuses
    (extra_forbidden). With one location its build {registry, directory} converts; with more,
    which project gets which cannot be told from the file."""
    locations = data["locations"]
    items = (
        list(locations.values())
        if isinstance(locations, dict)
        else list(locations)
        if isinstance(locations, list)
        else []
    )
    if len(items) != 1 or not isinstance(items[0], dict):
        problems.append(
            source.problem(
                ("locations",),
                "is the old dagster_cloud.yaml shape (`locations:`), which dg's build.yaml "
                "refuses (extra_forbidden: it holds registry and directory only), and it has "
                f"{len(items)} locations: move each one's registry and directory into its "
                "project's build.yaml, or rename this file dagster_cloud.yaml",
            )
        )
        return None
    build = items[0].get("build")
    build = {"directory": build} if isinstance(build, str) else build or {}
    registry = items[0].get("registry", build.get("registry"))
    converted = {
        k: v for k, v in (("registry", registry), ("directory", build.get("directory"))) if v
    }
    return YamlConfig(source.name, converted, old_shape=True)


def _build_value_problems(source, data: dict[str, Any]) -> list[Problem]:
    """A build.yaml's values, which reach the image builds and the CI: the directory stays in
    the repository; a registry is a registry reference, unless it is a template's placeholder
    (which the plan replaces)."""

    problems = []
    directory = data.get("directory")
    if directory is not None:
        problem = ci_text_problem(directory, "a build directory")
        if problem is None and (
            str(directory).startswith("/")
            or "\\" in str(directory)
            or escapes_project(normalize(f"{parent(source.name)}/{directory}"))
        ):
            problem = (
                f"{directory!r} leads out of the repository: a build directory is relative to "
                f"{source.name} and stays inside the repository"
            )
        if problem:
            problems.append(source.problem(("directory",), problem))
    registry = data.get("registry")
    if registry is not None and placeholder_reason(registry) is None:
        problem = image_repository_problem(registry)
        if problem:
            problems.append(source.problem(("registry",), f"{registry!r}: {problem}"))
    return problems
