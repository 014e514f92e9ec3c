"""Azure: the Kubernetes agent on AKS, images in Azure Container Registry."""

from migration_pipeline.targets.kubernetes import (
    CONTAINER_CONTEXT_KEY,
    SETS_AGENT_LABEL,
    TOKEN_STORE,
    agent_command,
    agent_files,
    container_context,
    token_secret_manifest,
)

LABEL = "Azure (AKS)"

__all__ = ["CONTAINER_CONTEXT_KEY", "LABEL", "SETS_AGENT_LABEL", "TOKEN_STORE", "agent_command", "agent_files",
           "container_context", "token_secret_manifest"]
