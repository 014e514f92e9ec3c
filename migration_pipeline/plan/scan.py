"""Find what only Serverless provides in the user's project: the Python version of its PEX
builds, the Serverless CI workflow, non-isolated runs asked for in code, the Serverless I/O
manager. Pure functions over `ProjectFiles`."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from migration_pipeline.layouts.files import ProjectFiles, ci_files

PYTHON_VERSION_PATTERNS = (
    re.compile(r"""PYTHON_VERSION\s*[:=]\s*["']?(3\.\d+)"""),
    re.compile(r"""--python-version[\s=]+["']?(3\.\d+)"""),
    re.compile(r"""python[_-]version\s*:\s*["']?(3\.\d+)"""),
)
SERVERLESS_WORKFLOW_MARKERS = (
    "ENABLE_FAST_DEPLOYS",
    "serverless_prod_deploy",
    "serverless_branch_deploy",
    "dagster-cloud serverless",
    # The Serverless quickstart's PEX workflow.
    "actions/build_deploy_pex",
    # dg's Serverless workflows (GitHub and GitLab templates), and a bare `dg plus deploy`,
    # which on a Serverless deployment builds for Serverless.
    "--agent-type=serverless",
    "--agent-type serverless",
    "dg plus deploy",
)
SERVERLESS_IO_MANAGER_NAMES = {"serverless_io_manager", "PickledObjectServerlessIOManager"}
ISOLATION_TAG = "dagster/isolation"


@dataclass(frozen=True)
class Finding:
    """Something in the user's files the migration must tell them about."""

    kind: str  # isolation_tag | serverless_io_manager | serverless_workflow | definitions
    file: str
    line: int
    text: str  # the line as written


def serverless_python_version(project: ProjectFiles) -> tuple[str, str, int] | None:
    """(version, file, line) of the Python version the Serverless CI builds with, if named."""
    for path in sorted(ci_files(project)):
        for number, line in enumerate(project.texts[path].splitlines(), 1):
            for pattern in PYTHON_VERSION_PATTERNS:
                match = pattern.search(line)
                if match:
                    return match.group(1), path, number
    return None


def ci_makes_branch_deployments(text: str) -> bool:
    """Whether a CI file deploys pull or merge requests (to branch deployments)."""
    return bool(
        re.search(
            r"\bpull_request(_target)?\b|merge_request_event|"
            r"serverless_branch_deploy|branch_deployment",
            text,
        )
    )


HYBRID_WORKFLOW = re.compile(r"--agent-type[= ]hybrid|hybrid_(prod|branch)_deploy")


def serverless_workflows(project: ProjectFiles) -> list[Finding]:
    """The CI files that deploy to Serverless: the first line that says so in each. A file
    that deploys with `--agent-type=hybrid` (or the Hybrid actions) is not one."""
    found = []
    for path in sorted(ci_files(project)):
        if HYBRID_WORKFLOW.search(project.texts[path]):
            continue
        for number, line in enumerate(project.texts[path].splitlines(), 1):
            if any(marker in line for marker in SERVERLESS_WORKFLOW_MARKERS):
                found.append(Finding("serverless_workflow", path, number, line.strip()))
                break
    return found


def scan_python(project: ProjectFiles) -> tuple[list[Finding], list[str]]:
    """Findings in the project's Python files, and the files that do not parse."""
    findings: list[Finding] = []
    broken: list[str] = []
    for path in sorted(p for p in project.texts if p.endswith(".py")):
        text = project.texts[path]
        if (
            ISOLATION_TAG not in text
            and "Serverless" not in text
            and "serverless" not in text
            and "Definitions" not in text
        ):
            continue
        try:
            tree = ast.parse(text, filename=path)
        except (SyntaxError, RecursionError, MemoryError):  # not Python, or nested past the parser
            broken.append(path)
            continue
        lines = text.splitlines()
        for node in ast.walk(tree):
            kind = _kind(node)
            if kind:
                number = getattr(node, "lineno", 1)
                findings.append(Finding(kind, path, number, lines[number - 1].strip()))
    unique = {(f.kind, f.file, f.line): f for f in findings}
    return sorted(unique.values(), key=lambda f: (f.file, f.line, f.kind)), broken


def _kind(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and node.value == ISOLATION_TAG:
        return "isolation_tag"
    if isinstance(node, ast.Name) and node.id in SERVERLESS_IO_MANAGER_NAMES:
        return "serverless_io_manager"
    if isinstance(node, ast.Attribute) and node.attr in SERVERLESS_IO_MANAGER_NAMES:
        return "serverless_io_manager"
    if isinstance(node, ast.ImportFrom) and any(
        a.name in SERVERLESS_IO_MANAGER_NAMES for a in node.names
    ):
        return "serverless_io_manager"
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name == "Definitions":
            return "definitions"
    return None
