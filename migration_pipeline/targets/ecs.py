"""Amazon ECS agent (CloudFormation stack): per-location `container_context.ecs`."""

from __future__ import annotations

from typing import Any

from migration_pipeline.targets.settings import EcsSettings

CONTAINER_CONTEXT_KEY = "ecs"
LABEL = "Amazon ECS"


def container_context(settings: EcsSettings) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if settings.env_vars:
        context["env_vars"] = list(settings.env_vars)
    if settings.secrets:
        context["secrets"] = [{"name": s.name, "valueFrom": s.value_from} for s in settings.secrets]
    if settings.task_role_arn:
        context["task_role_arn"] = settings.task_role_arn
    if settings.execution_role_arn:
        context["execution_role_arn"] = settings.execution_role_arn
    resources = {k: v for k, v in (("cpu", settings.cpu), ("memory", settings.memory)) if v}
    if resources:
        context["server_resources"] = dict(resources)
        context["run_resources"] = dict(resources)
    if settings.runtime_platform:
        context["runtime_platform"] = dict(settings.runtime_platform)
    return context
