"""Azure: the Kubernetes agent on AKS, images in Azure Container Registry."""

from migration_pipeline.targets.kubernetes import KubernetesTarget
from migration_pipeline.targets.settings import AzureSettings


class AzureTarget(KubernetesTarget):
    name = "azure"
    label = "Azure (AKS)"
    settings_model = AzureSettings
