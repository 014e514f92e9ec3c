"""Local agent (`ProcessUserCodeLauncher`): code runs from the agent's Python environment, so
there are no images and no container context."""

from __future__ import annotations

from typing import Any

from migration_pipeline.targets.agent import (
    TOKEN_ENV_FILE,
    AgentSetup,
    agent_instance_config,
    dump,
)
from migration_pipeline.targets.settings import LocalSettings

CONTAINER_CONTEXT_KEY = None
LABEL = "Local"
TOKEN_STORE = "env_file"


def container_context(settings: LocalSettings) -> dict[str, Any]:
    return {}


def agent_command(agent_dir: str) -> str:
    """The exact command that runs the agent, from the repository (the locations' relative
    working directories start there); the token comes from the 0600 env file, never from the
    command line."""
    return (f'cd "{agent_dir}/.." && set -a && . "{agent_dir}/{TOKEN_ENV_FILE}" && set +a && '
            f'DAGSTER_HOME="{agent_dir}" exec dagster-cloud agent run "{agent_dir}"')


def agent_files(setup: AgentSetup) -> dict[str, str]:
    config = agent_instance_config(setup, "ProcessUserCodeLauncher",
                                   "dagster_cloud.workspace.user_code_launcher")
    return {
        "dagster.yaml": dump("Dagster+ Local agent (ProcessUserCodeLauncher)", config),
        "run-agent.sh": "#!/usr/bin/env bash\n# Runs the Dagster+ Local agent with the token "
                        "from agent-token.env (never on the command line).\nset -euo pipefail\n"
                        + agent_command('$(cd "$(dirname "$0")" && pwd)') + "\n",
    }
