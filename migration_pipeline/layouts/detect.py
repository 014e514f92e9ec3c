"""Which layout a repository has, and why: the file and line that say so.

- legacy: a `dagster_cloud.yaml` (or its older names `build.yaml` with `locations:`,
  `locations.yaml`) at the top, read by `dagster-cloud ci`;
- dg project: a `pyproject.toml` with `[tool.dg] directory_type = "project"`, at the top or in a
  subfolder (deployed with `dg plus deploy --target-path <folder>`);
- dg workspace: a `dg.toml` (or `pyproject.toml` `[tool.dg]`) with `directory_type =
  "workspace"`, one code location per `[[workspace.projects]]`.

A repository with both a dg layout and a legacy file is decided by its Serverless deploy
workflow (`dg plus deploy` reads `[tool.dg]` and ignores `dagster_cloud.yaml`; the
dagster-cloud-action's `ci init` reads `dagster_cloud.yaml`), or by `layout:` in the target
settings; if neither decides, the plan asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from migration_pipeline.cloud_yaml import CLOUD_YAML_NAMES
from migration_pipeline.layouts.files import ProjectFiles, ci_files
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.lib.toml_source import TomlSource, parse_toml

LEGACY = "legacy"
DG_PROJECT = "dg_project"
DG_WORKSPACE = "dg_workspace"

# What a deploy workflow runs, by the layout it reads.
DG_WORKFLOW = re.compile(r"\bdg\s+plus\s+deploy\b|dg-deploy-init|actions/utils/dg-cli")
LEGACY_WORKFLOW = re.compile(
    r"dagster-cloud-action/actions/(serverless_(prod|branch)_deploy|build_deploy_pex|"
    r"hybrid_(prod|branch)_deploy|utils/ci-init|utils/deploy)|"
    r"dagster-cloud\s+(ci\s+init|serverless\s+deploy)|\bdagster_cloud\.yaml\b"
)
LEGACY_LOCATIONS_KEY = re.compile(r"^locations\s*:", re.MULTILINE)


@dataclass(frozen=True)
class Layout:
    kind: str  # legacy | dg_project | dg_workspace
    root: str  # the folder the layout's file is in, project-relative ("." at the top)
    file: str  # the file that says so
    line: int | None
    evidence: str  # what was found there
    notes: tuple[str, ...] = ()  # other layouts found, and why this one was taken

    @property
    def is_dg(self) -> bool:
        return self.kind != LEGACY

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def describe(self, projects: int) -> str:
        """As the report says it: `dg workspace (3 projects)`."""
        if self.kind == DG_WORKSPACE:
            return f"dg workspace ({projects} project{'s' if projects != 1 else ''})"
        if self.kind == DG_PROJECT:
            return "dg project" + ("" if self.root == "." else f" in {self.root}/")
        return f"legacy {self.file}"


def parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else "."


def dg_directory_type(project: ProjectFiles, path: str) -> tuple[str, TomlSource] | None:
    """(directory_type, the parsed file) of a dg config file: `dg.toml` (top-level keys) or
    `pyproject.toml` (`[tool.dg]`); None for a file that is not dg's. A broken file that is
    dg's (or may be) is an error with its line."""
    text = project.text(path)
    if text is None:
        return None
    is_dg_toml = path.rsplit("/", 1)[-1] == "dg.toml"
    if not is_dg_toml and "tool.dg" not in text and "[tool]" not in text:
        return None
    source = parse_toml(text, path)
    section = source.data if is_dg_toml else source.get(("tool", "dg"))
    if not isinstance(section, dict):
        return None
    kind = section.get("directory_type")
    if kind is None and isinstance(section.get("project"), dict):
        kind = "project"  # dg's default directory type for a [tool.dg.project]
    if kind not in ("project", "workspace"):
        where = ("directory_type",) if is_dg_toml else ("tool", "dg", "directory_type")
        raise InvalidInput(
            [source.problem(where, f'is {kind!r}: dg knows "project" and "workspace"')]
        )
    return kind, source


def _dg_roots(project: ProjectFiles) -> list[tuple[str, str, TomlSource]]:
    """(directory_type, file, parsed) of every dg config file, shallowest first. A folder with a
    `dg.toml` is read from it alone (dg ignores its pyproject.toml's [tool.dg] then)."""
    found = []
    candidates = sorted(
        (p for p in project.texts if p.rsplit("/", 1)[-1] in ("dg.toml", "pyproject.toml")),
        key=lambda p: (p.count("/"), p.endswith("pyproject.toml"), p),
    )
    with_dg_toml = {parent(p) for p in candidates if p.endswith("dg.toml")}
    for path in candidates:
        if path.endswith("pyproject.toml") and parent(path) in with_dg_toml:
            continue
        kind = dg_directory_type(project, path)
        if kind:
            found.append((kind[0], path, kind[1]))
    return found


def _legacy_file(project: ProjectFiles, dg_at_top: bool) -> str | None:
    """The legacy locations file at the top. A `build.yaml` there is dg's build config when a
    dg project or workspace is at the top too (dg reads it as such, in any shape), or when it
    is not in the `locations:` shape."""
    present = []
    for name in CLOUD_YAML_NAMES:
        text = project.text(name)
        if text is None:
            continue
        if name == "build.yaml" and (dg_at_top or not LEGACY_LOCATIONS_KEY.search(text)):
            continue
        present.append(name)
    if len(present) > 1:
        raise InvalidInput(
            [
                Problem(
                    present[1],
                    None,
                    (),
                    f"both {present[0]} and {present[1]} exist; keep one (dagster-cloud ci "
                    "reads dagster_cloud.yaml)",
                )
            ]
        )
    return present[0] if present else None


def _workflow_says(project: ProjectFiles) -> tuple[str | None, str]:
    """The layout the deploy workflows read (None: they do not say, or say both), and why."""
    dg_hits, legacy_hits = [], []
    for path in sorted(ci_files(project)):
        for number, line in enumerate((project.text(path) or "").splitlines(), 1):
            code = line.split("#", 1)[0]
            if DG_WORKFLOW.search(code):
                dg_hits.append(f"{path}:{number}")
            elif LEGACY_WORKFLOW.search(code):
                legacy_hits.append(f"{path}:{number}")
    if dg_hits and not legacy_hits:
        return "dg", f"the deploy workflow runs dg plus deploy ({dg_hits[0]})"
    if legacy_hits and not dg_hits:
        return LEGACY, f"the deploy workflow reads dagster_cloud.yaml ({legacy_hits[0]})"
    if dg_hits and legacy_hits:
        return None, f"workflows run both ({dg_hits[0]}, {legacy_hits[0]})"
    return None, "no deploy workflow says which"


def detect_layout(project: ProjectFiles, choice: str = "auto") -> Layout:
    """The layout to migrate. `choice` (the target settings' `layout`) decides between a dg
    layout and a legacy file when the repository has both."""
    roots = _dg_roots(project)
    legacy = _legacy_file(project, any(parent(path) == "." for _, path, _ in roots))
    workspaces = [r for r in roots if r[0] == "workspace"]
    dg: Layout | None = None
    if workspaces:
        kind, path, source = workspaces[0]
        key = ("directory_type",) if path.endswith("dg.toml") else ("tool", "dg", "directory_type")
        others = [p for _, p, _ in workspaces[1:]]
        if others:
            raise InvalidInput(
                [
                    Problem(
                        path,
                        source.line_of(key),
                        (),
                        f"is a dg workspace, and so are {', '.join(others)}: migrate one "
                        "workspace at a time (point --project-dir at it)",
                    )
                ]
            )
        dg = Layout(
            DG_WORKSPACE, parent(path), path, source.line_of(key), 'directory_type = "workspace"'
        )
    else:
        projects = [r for r in roots if r[0] == "project"]
        if len(projects) > 1:
            raise InvalidInput(
                [
                    Problem(
                        projects[0][1],
                        None,
                        (),
                        "is one of several dg projects with no dg workspace over them ("
                        + ", ".join(p for _, p, _ in projects)
                        + "): dg plus deploy deploys one project or one workspace; migrate "
                        "each project with --project-dir at its folder, or add a dg.toml "
                        "workspace",
                    )
                ]
            )
        if projects:
            _, path, source = projects[0]
            line = source.line_of(("tool", "dg", "directory_type")) or source.line_of(
                ("tool", "dg", "project")
            )
            where = parent(path)
            dg = Layout(
                DG_PROJECT,
                where,
                path,
                line,
                'directory_type = "project"'
                + ("" if where == "." else f" (deployed with --target-path {where})"),
            )
    if dg is None and legacy is None:
        raise InvalidInput(
            [
                Problem(
                    project.root,
                    None,
                    (),
                    "has no dagster_cloud.yaml at its top and no dg project or workspace "
                    "(pyproject.toml with [tool.dg], or dg.toml): is this the repository?",
                )
            ]
        )
    if dg is None:
        assert legacy is not None
        return Layout(LEGACY, ".", legacy, None, "the locations file dagster-cloud ci reads")
    if legacy is None:
        return dg
    says, why = _workflow_says(project)
    if choice in (LEGACY, "dg"):
        says, why = choice, f"the target settings say layout: {choice}"
    if says is None:
        raise InvalidInput(
            [
                Problem(
                    legacy,
                    None,
                    (),
                    f"and the dg {dg.kind.removeprefix('dg_')} at {dg.where()} are both here, "
                    f"and {why}: set `layout: dg` (dg plus deploy ignores {legacy}) or "
                    "`layout: legacy` in the target settings",
                )
            ]
        )
    if says == LEGACY:
        return Layout(
            LEGACY,
            ".",
            legacy,
            None,
            "the locations file dagster-cloud ci reads",
            (f"not the dg layout at {dg.where()}: {why}",),
        )
    return Layout(
        dg.kind,
        dg.root,
        dg.file,
        dg.line,
        dg.evidence,
        (f"not {legacy}, which dg plus deploy ignores: {why}",),
    )
