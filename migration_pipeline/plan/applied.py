"""What apply wrote, as every later phase reads it: the project, its agent target and settings,
the image repositories, and what the plan decided about Dagster+ (settings removed at cutover,
branch deployments). Plain data; reading the applied dagster_cloud.yaml back is the only I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from migration_pipeline.lib.record import dataclass_record

if TYPE_CHECKING:
    from migration_pipeline.cloud_yaml.model import CloudYaml
    from migration_pipeline.lib.problems import Problem
    from migration_pipeline.targets.base import AgentTarget
    from migration_pipeline.targets.settings import TargetSettings


@dataclass(frozen=True)
class AppliedProject:
    project_dir: str
    target_name: str
    cloud_yaml: str  # its file: dagster_cloud.yaml or build.yaml; for dg, pyproject.toml or dg.toml
    images: dict[str, str]  # location -> image repository (containerized targets)
    written: tuple[str, ...]
    settings: dict  # the target settings, as JSON
    settings_removed_at_cutover: tuple[str, ...] = ()
    branch_deployments: bool = False
    image_options: dict[str, dict[str, str]] = field(default_factory=dict)  # see MigrationPlan
    layout: str = "legacy"  # see MigrationPlan: a dg layout is read back from its dg files

    @property
    def target(self) -> AgentTarget:
        from migration_pipeline.targets import get_target

        return get_target(self.target_name)

    def target_settings(self) -> TargetSettings:
        return self.target.settings_model.model_validate(self.settings)

    def agent_dir(self, deployment: str) -> Path:
        """Where the deployment's agent install files (and its token, for env-file targets)
        are written: one directory per deployment, each agent serving its own."""
        from migration_pipeline.lib.files import jailed
        from migration_pipeline.lib.names import deployment_name_problem

        problem = deployment_name_problem(deployment)
        if problem is not None:
            raise ValueError(problem)
        # A dagster_cloud_agent/ (or its deployment's folder) that is a link out of the project
        # is refused: the agent's files, its token among them, are written only inside it.
        from migration_pipeline.targets.agent import AGENT_DIR

        return jailed(Path(self.project_dir), f"{AGENT_DIR}/{deployment}", directory=True)

    def load_cloud_yaml(self) -> CloudYaml:
        """The locations as the deploy reads them: the applied dagster_cloud.yaml, or for a dg
        layout the document `dg plus deploy start` makes from the dg files on disk."""
        from migration_pipeline.cloud_yaml.model import load_cloud_yaml
        from migration_pipeline.lib.files import read_exact

        if self.layout != "legacy":
            return self._dg_document()
        return load_cloud_yaml(
            read_exact(Path(self.project_dir) / self.cloud_yaml), self.cloud_yaml
        )

    def _dg_document(self) -> CloudYaml:
        from migration_pipeline.layouts.detect import detect_layout
        from migration_pipeline.layouts.dg import read_dg
        from migration_pipeline.layouts.files import read_project
        from migration_pipeline.plan.dg import dg_cloud_yaml

        settings = self.target_settings()
        project = read_project(self.project_dir)
        dg = read_dg(project, detect_layout(project, settings.layout))
        return dg_cloud_yaml(dg, self.target, settings)

    def cloud_yaml_problems(self) -> list[Problem]:
        """The problems of the dagster_cloud.yaml on disk for the target agent (none: valid)."""
        from migration_pipeline.cloud_yaml.validate import validate_cloud_yaml
        from migration_pipeline.lib.problems import InvalidInput, Problem

        try:
            return validate_cloud_yaml(self.load_cloud_yaml(), self.target.container_context_key)
        except InvalidInput as error:
            return error.problems
        except OSError as error:
            return [
                Problem(
                    self.cloud_yaml,
                    None,
                    (),
                    f"cannot be read ({error.strerror}): apply the plan first",
                )
            ]


APPLIED_PROJECT = dataclass_record(
    AppliedProject,
    "applied project",
    "hybrid_project_files",
    "apply_migration_files",
    asset_value=True,
)
