"""The Hybrid agent types: each implements `AgentTarget` (base.py): its container context in
dagster_cloud.yaml, where its token is kept, the files that install its agent, and the command."""

from __future__ import annotations

from migration_pipeline.lib.problems import InvalidInput, Problem, did_you_mean
from migration_pipeline.targets.azure import AzureTarget
from migration_pipeline.targets.base import AgentTarget, needs_images
from migration_pipeline.targets.docker import DockerTarget
from migration_pipeline.targets.ecs import EcsTarget
from migration_pipeline.targets.kubernetes import KubernetesTarget
from migration_pipeline.targets.local import LocalTarget
from migration_pipeline.targets.settings import TargetSettings, load_target_settings

AGENT_TARGETS: dict[str, AgentTarget] = {
    target.name: target
    for target in (KubernetesTarget(), EcsTarget(), DockerTarget(), AzureTarget(), LocalTarget())
}
TARGETS = tuple(AGENT_TARGETS)


def get_target(name: str) -> AgentTarget:
    if name not in AGENT_TARGETS:
        raise InvalidInput(
            [
                Problem(
                    "target",
                    None,
                    (),
                    f'unknown target "{name}"'
                    f"{did_you_mean(name, TARGETS)}; one of {', '.join(TARGETS)}",
                )
            ]
        )
    return AGENT_TARGETS[name]


__all__ = [
    "TARGETS",
    "AgentTarget",
    "TargetSettings",
    "get_target",
    "load_target_settings",
    "needs_images",
]
