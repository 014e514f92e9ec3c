"""One module per agent type (kubernetes, ecs, docker, azure, local), each with:

- `LABEL`, `CONTAINER_CONTEXT_KEY` (None for local) and `TOKEN_STORE` (where the agent token goes);
- `container_context(settings)`: the section each location gets in dagster_cloud.yaml;
- `agent_files(setup)`: the files that install the agent, and `agent_command(agent_dir)`: how.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType

from migration_pipeline.targets.settings import TARGETS, load_target_settings


@dataclass(frozen=True)
class Target:
    name: str
    module: ModuleType

    @property
    def label(self) -> str:
        return self.module.LABEL

    @property
    def container_context_key(self) -> str | None:
        return self.module.CONTAINER_CONTEXT_KEY

    @property
    def needs_images(self) -> bool:
        # Every containerized agent runs each location from an image; a Local agent does not.
        return self.container_context_key is not None


def get_target(name: str) -> Target:
    return Target(name, import_module(f"migration_pipeline.targets.{name}"))


__all__ = ["TARGETS", "Target", "get_target", "load_target_settings"]
