"""Azure: the Kubernetes agent on AKS, images in Azure Container Registry."""

from migration_pipeline.targets.kubernetes import CONTAINER_CONTEXT_KEY, container_context

LABEL = "Azure (AKS)"

__all__ = ["CONTAINER_CONTEXT_KEY", "LABEL", "container_context"]
