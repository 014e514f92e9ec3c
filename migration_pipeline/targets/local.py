"""Local agent (`ProcessUserCodeLauncher`): code runs from the agent's Python environment, so
there are no images and no container context."""

from __future__ import annotations

from typing import Any

from migration_pipeline.targets.settings import LocalSettings

CONTAINER_CONTEXT_KEY = None
LABEL = "Local"


def container_context(settings: LocalSettings) -> dict[str, Any]:
    return {}
