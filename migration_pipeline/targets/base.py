"""What every Hybrid agent type provides, as a small protocol: its container context in
dagster_cloud.yaml, where its token is kept, the files that install its agent and the command
that runs them. One class per agent type implements it (kubernetes, ecs, docker, azure, local).
"""

from __future__ import annotations

from typing import Any, Protocol

from migration_pipeline.targets.agent import AgentSetup
from migration_pipeline.targets.settings import TargetSettings


class AgentTarget(Protocol):
    # Read-only members (properties), so that each class may narrow them, e.g. its own
    # settings model.
    @property
    def name(self) -> str:
        """As the plan's `target` names it."""
        ...

    @property
    def label(self) -> str:
        """For people: "Kubernetes", "Amazon ECS", ..."""
        ...

    @property
    def container_context_key(self) -> str | None:
        """The key under `container_context` in dagster_cloud.yaml (None: a Local agent has
        none)."""
        ...

    @property
    def token_store(self) -> str:
        """kubernetes_secret | aws_secrets_manager | env_file"""
        ...

    @property
    def sets_agent_label(self) -> bool:
        """Whether the install files can set the agent's label (the readiness sensor waits for
        it)."""
        ...

    @property
    def settings_model(self) -> type[TargetSettings]: ...

    def container_context(self, settings: Any) -> dict[str, Any]:
        """The `container_context.<key>` every location gets (only what is set)."""
        ...

    def agent_files(self, setup: AgentSetup) -> dict[str, str]:
        """File name -> text: what installs and configures the agent."""
        ...

    def agent_command(self, agent_dir: str) -> str:
        """The command that installs or runs the agent from `agent_dir`."""
        ...


def needs_images(target: AgentTarget) -> bool:
    """Every containerized agent runs each location from an image; a Local agent does not."""
    return target.container_context_key is not None
