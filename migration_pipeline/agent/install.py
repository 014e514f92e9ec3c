"""The agent's install files, as the migration writes them and the readiness sensor reads them
back: where they are, the label the agent will report, how to start it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class AgentInstall:
    agent_dir: str
    target: str
    command: str  # installs or runs the agent
    agent_label: str | None  # what the agent reports; None where the install cannot set one
    agents_before: tuple[str, ...]  # agent ids listed before the install (for unlabelled agents)
    branch_deployments: bool
    files: tuple[str, ...]


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
