"""One module per agent type: container context defaults (and, later, agent install files)."""

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
