"""Docker agent (`DockerUserCodeLauncher`): per-location `container_context.docker`."""

from __future__ import annotations

from typing import Any

from migration_pipeline.targets.settings import DockerSettings

CONTAINER_CONTEXT_KEY = "docker"
LABEL = "Docker"


def container_context(settings: DockerSettings) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if settings.networks:
        context["networks"] = list(settings.networks)
    if settings.env_vars:
        context["env_vars"] = list(settings.env_vars)
    if settings.container_kwargs:
        context["container_kwargs"] = dict(settings.container_kwargs)
    return context
