"""Docker agent (`DockerUserCodeLauncher`): per-location `container_context.docker`."""

from __future__ import annotations

from typing import Any

from migration_pipeline.targets.agent import (
    TOKEN_ENV_FILE,
    AgentSetup,
    agent_instance_config,
    dump,
)
from migration_pipeline.targets.settings import DockerSettings

CONTAINER_CONTEXT_KEY = "docker"
LABEL = "Docker"
TOKEN_STORE = "env_file"
AGENT_IMAGE = "docker.io/dagster/dagster-cloud-agent:1.13.27"


def container_context(settings: DockerSettings) -> dict[str, Any]:
    return settings.set_fields("networks", "env_vars", "container_kwargs")


def agent_command(agent_dir: str) -> str:
    return f'docker compose --project-directory "{agent_dir}" up -d'


def agent_files(setup: AgentSetup) -> dict[str, str]:
    settings: DockerSettings = setup.settings  # type: ignore[assignment]
    launcher = {"networks": list(settings.networks)} if settings.networks else None
    config = agent_instance_config(setup, "DockerUserCodeLauncher", "dagster_cloud.workspace.docker",
                                   launcher)
    service: dict[str, Any] = {
        "image": AGENT_IMAGE,
        "command": ["dagster-cloud", "agent", "run", "/opt/dagster/agent"],
        "environment": {"DAGSTER_HOME": "/opt/dagster/agent"},
        "env_file": [TOKEN_ENV_FILE],
        "volumes": ["./dagster.yaml:/opt/dagster/agent/dagster.yaml:ro",
                    "/var/run/docker.sock:/var/run/docker.sock"],
        "restart": "unless-stopped",
    }
    compose: dict[str, Any] = {"services": {"dagster-cloud-agent": service}}
    if settings.networks:
        service["networks"] = list(settings.networks)
        compose["networks"] = {name: {"external": True} for name in settings.networks}
    return {
        "dagster.yaml": dump("Dagster+ Docker agent (DockerUserCodeLauncher)", config),
        "docker-compose.yaml": dump("Runs the Dagster+ Docker agent: docker compose up -d", compose),
    }
