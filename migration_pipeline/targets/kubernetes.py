"""Kubernetes agent (Helm chart `dagster-cloud-agent`): per-location `container_context.k8s`."""

from __future__ import annotations

from typing import Any

from migration_pipeline.targets.settings import KubernetesSettings

CONTAINER_CONTEXT_KEY = "k8s"
LABEL = "Kubernetes"


def container_context(settings: KubernetesSettings) -> dict[str, Any]:
    """The `container_context.k8s` every location gets (only what is set)."""
    context: dict[str, Any] = {"namespace": settings.namespace}
    if settings.env_secrets:
        context["env_secrets"] = list(settings.env_secrets)
    if settings.env_vars:
        context["env_vars"] = list(settings.env_vars)
    if settings.image_pull_secrets:
        context["image_pull_secrets"] = [{"name": name} for name in settings.image_pull_secrets]
    if settings.service_account_name:
        context["service_account_name"] = settings.service_account_name
    if settings.resources is not None:
        context["resources"] = settings.resources.model_dump(exclude_none=True)
    return context
