"""Docker agent (`DockerUserCodeLauncher`): per-location `container_context.docker`."""

from __future__ import annotations

import shlex
from typing import Any

from migration_pipeline.targets.agent import (
    TOKEN_ENV_FILE,
    AgentSetup,
    agent_instance_config,
    dump,
)
from migration_pipeline.targets.settings import DockerSettings

AGENT_IMAGE = "docker.io/dagster/dagster-cloud-agent:1.13.27"


class DockerTarget:
    """The Docker agent (`DockerUserCodeLauncher`), run from a compose file."""

    name = "docker"
    label = "Docker"
    container_context_key: str | None = "docker"
    token_store = "env_file"
    sets_agent_label = True  # dagster_cloud_api.agent_label
    settings_model = DockerSettings

    def container_context(self, settings: DockerSettings) -> dict[str, Any]:
        return settings.set_fields("networks", "env_vars", "container_kwargs")

    def agent_command(self, agent_dir: str) -> str:
        return f"docker compose --project-directory {shlex.quote(agent_dir)} up -d"

    def agent_files(self, setup: AgentSetup) -> dict[str, str]:
        return docker_agent_files(setup)


def docker_agent_files(setup: AgentSetup) -> dict[str, str]:
    settings: DockerSettings = setup.settings  # type: ignore[assignment]
    networks = [
        settings.agent_network,
        *[n for n in settings.networks if n != settings.agent_network],
    ]
    config = agent_instance_config(
        setup, "DockerUserCodeLauncher", "dagster_cloud.workspace.docker", {"networks": networks}
    )
    service: dict[str, Any] = {
        "image": AGENT_IMAGE,
        "command": ["dagster-cloud", "agent", "run", "/opt/dagster/agent"],
        "environment": {"DAGSTER_HOME": "/opt/dagster/agent", "DOCKER_CONFIG": "/root/.docker"},
        "env_file": [TOKEN_ENV_FILE],
        "volumes": [
            "./dagster.yaml:/opt/dagster/agent/dagster.yaml:ro",
            "/var/run/docker.sock:/var/run/docker.sock",
            # `docker login` credentials, so the agent can pull from private registries.
            "${HOME}/.docker:/root/.docker:ro",
        ],
        "networks": networks,
        "restart": "unless-stopped",
    }
    compose: dict[str, Any] = {
        "services": {"dagster-cloud-agent": service},
        "networks": {
            settings.agent_network: {"name": settings.agent_network, "driver": "bridge"},
            **{name: {"name": name, "external": True} for name in networks[1:]},
        },
    }
    return {
        "dagster.yaml": dump(
            "Dagster+ Docker agent (DockerUserCodeLauncher): code servers join "
            f"the {settings.agent_network} network",
            config,
        ),
        "docker-compose.yaml": dump(
            "Runs the Dagster+ Docker agent: docker compose up -d. It "
            f"creates the {settings.agent_network} network",
            compose,
        ),
    }
