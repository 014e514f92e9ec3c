"""The agent's install files, as the migration writes them and the readiness sensor reads them
back: where they are, the label the agent will report, how to start it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from migration_pipeline.lib.record import dataclass_record

if TYPE_CHECKING:
    from migration_pipeline.agent.token import RecordedToken
    from migration_pipeline.plan.applied import AppliedProject


@dataclass(frozen=True)
class AgentInstall:
    agent_dir: str
    target: str
    command: str  # installs or runs the agent
    agent_label: str | None  # what the agent reports; None where the install cannot set one
    agents_before: tuple[str, ...]  # agent ids listed before the install (for unlabelled agents)
    branch_deployments: bool
    files: tuple[str, ...]


AGENT_INSTALL = dataclass_record(
    AgentInstall,
    "agent install files record",
    "hybrid_agent_install_files",
    "prepare_hybrid_agent",
    asset_value=True,
)


def write_install_files(
    applied: AppliedProject,
    deployment: str,
    token: RecordedToken,
    agent_api_url: str,
    list_agent_ids: Callable[[], list[str]],
) -> tuple[AgentInstall, list[str]]:
    """Write the target's install files into the project's agent directory (only those that
    changed). Returns what the readiness sensor needs and the names written. `list_agent_ids`
    is asked only for a target whose install files cannot set the agent's label."""
    from migration_pipeline.lib.files import write_if_changed
    from migration_pipeline.targets.agent import AgentSetup, migration_agent_label

    target = applied.target
    label = migration_agent_label(deployment, token.token_id)
    setup = AgentSetup(
        organization=token.organization,
        deployment=deployment,
        agent_label=label,
        settings=applied.target_settings(),
        token_reference=token.reference,
        agent_api_url=agent_api_url,
        branch_deployments=applied.branch_deployments,
    )
    files = target.agent_files(setup)
    written = [
        name
        for name, text in files.items()
        if write_if_changed(applied.agent_dir(deployment) / name, text, _mode(name))
    ]
    # Targets whose install files cannot carry a label (Dagster's ECS template has no such
    # parameter): the sensor then waits for an agent that was not there before the install.
    agents_before = () if target.sets_agent_label else tuple(sorted(list_agent_ids()))
    install = AgentInstall(
        agent_dir=str(applied.agent_dir(deployment)),
        target=target.name,
        command=target.agent_command(str(applied.agent_dir(deployment))),
        agent_label=label if target.sets_agent_label else None,
        agents_before=agents_before,
        branch_deployments=setup.branch_deployments,
        files=tuple(sorted(files)),
    )
    return install, written


def install_file_problems(agent_dir: Path, names: tuple[str, ...]) -> list[str]:
    """Each install file as its tool would read it: YAML and JSON parse, shell scripts pass
    `bash -n`. The problems, one line each (none: all fine)."""
    problems = []
    for name in names:
        path = agent_dir / name
        try:
            text = path.read_text()
            if name.endswith((".yaml", ".yml")):
                yaml.safe_load(text)
            elif name.endswith(".json"):
                json.loads(text)
            elif name.endswith(".sh"):
                result = subprocess.run(
                    ["bash", "-n", str(path)], capture_output=True, text=True, timeout=30
                )
                if result.returncode:
                    problems.append(f"{name}: {result.stderr.strip()}")
        except (OSError, ValueError, yaml.YAMLError) as error:
            problems.append(f"{name}: {error}")
    return problems


def _mode(name: str) -> int:
    """Scripts run; env files may hold secrets (0600); the rest is read."""
    if name.endswith(".sh"):
        return 0o755
    return 0o600 if name.endswith(".env") else 0o644
