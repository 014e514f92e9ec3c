"""The target settings file: a small YAML file for the chosen agent type. Every key is optional;
every target has sensible defaults (namespace `dagster-cloud` on Kubernetes, and so on).

    # kubernetes
    registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com/acme
    image_layout: per_location      # or `shared`: one repository, the location in the tag
    python_version: "3.11"          # else taken from the Serverless CI workflow, else 3.11
    remove_non_isolated_runs: false # true: drop the deployment's non_isolated_runs at cutover
    namespace: data
    env_secrets: [snowflake-credentials]
    service_account_name: dagster-user-code
    resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from migration_pipeline.lib.problems import InvalidInput, Problem, did_you_mean

# What a registry may look like: host[:port]/path, lower case (Docker's reference grammar).
REGISTRY = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$")


class TargetSettings(BaseModel):
    """What every target's settings file may hold; each target's model adds its own keys."""

    model_config = ConfigDict(extra="forbid")

    registry: str | None = Field(None, description="Image registry and repository prefix.")
    image_layout: Literal["per_location", "shared"] = "per_location"
    python_version: str | None = Field(None, pattern=r"^3\.\d+$")
    base_image: str | None = Field(None, description="A custom base image for the Dockerfiles.")
    builder: Literal["docker", "buildah", "podman"] | None = Field(
        None, description="The image builder (default: the first of docker, buildah, podman)."
    )
    max_parallel_builds: int = Field(2, ge=1, le=16)
    insecure_registry: bool = Field(
        False, description="Plain HTTP to the registry (loopback registries always are)."
    )
    organization: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="The Dagster+ organization, for the generated CI (default: from the URL).",
    )
    remove_non_isolated_runs: bool = Field(
        False,
        description="Remove the deployment's `non_isolated_runs` setting at cutover. "
        "Hybrid agents run non-isolated runs too, so it is kept unless this asks.",
    )

    @field_validator("registry")
    @classmethod
    def _registry_shape(cls, value: str | None) -> str | None:
        if value is not None and not REGISTRY.match(value):
            raise ValueError(
                f"{value!r} is not a registry reference (lower-case host[:port]/path, "
                "no scheme, no tag)"
            )
        return value

    def set_fields(self, *names: str, by_alias: bool = False) -> dict[str, Any]:
        """The named settings that are set (not None, not empty), as plain data, in order."""
        data = self.model_dump(include=set(names), exclude_none=True, by_alias=by_alias)
        return {name: data[name] for name in names if data.get(name) not in (None, [], {})}


class _Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: dict[Literal["cpu", "memory"], str] | None = None
    limits: dict[Literal["cpu", "memory"], str] | None = None


class KubernetesSettings(TargetSettings):
    namespace: str = "dagster-cloud"
    env_secrets: list[str] = []
    env_vars: list[str] = []
    image_pull_secrets: list[str] = []
    service_account_name: str | None = None
    resources: _Resources | None = None


class AzureSettings(KubernetesSettings):
    """AKS with Azure Container Registry: the registry is `<name>.azurecr.io[/path]`."""

    @field_validator("registry")
    @classmethod
    def _acr(cls, value: str | None) -> str | None:
        if value is not None and ".azurecr.io" not in value:
            raise ValueError(
                f"{value!r} is not an Azure Container Registry (<name>.azurecr.io[/path])"
            )
        return value


class _EcsSecret(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str
    value_from: str = Field(alias="valueFrom")


class EcsSettings(TargetSettings):
    aws_region: str | None = Field(None, description="Where the agent token secret is kept.")
    task_role_arn: str | None = Field(None, pattern=r"^arn:aws")
    execution_role_arn: str | None = Field(None, pattern=r"^arn:aws")
    cpu: str | None = Field(None, pattern=r"^\d+$", description="CPU units, e.g. 256")
    memory: str | None = Field(None, pattern=r"^\d+$", description="MiB, e.g. 512")
    env_vars: list[str] = []
    secrets: list[_EcsSecret] = []
    runtime_platform: dict[Literal["cpuArchitecture", "operatingSystemFamily"], str] | None = None


class DockerSettings(TargetSettings):
    # The network the compose file creates: the agent and every code server join it, and the
    # agent reaches each code server by container name on it (DockerUserCodeLauncher).
    agent_network: str = Field("dagster-cloud-agent", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    networks: list[str] = []  # further networks that exist already, joined as well
    env_vars: list[str] = []
    container_kwargs: dict[str, Any] | None = None


class LocalSettings(TargetSettings):
    executable_path: str | None = Field(None, description="The Python the Local agent runs.")


SETTINGS_MODELS: dict[str, type[TargetSettings]] = {
    "kubernetes": KubernetesSettings,
    "ecs": EcsSettings,
    "docker": DockerSettings,
    "azure": AzureSettings,
    "local": LocalSettings,
}
TARGETS = tuple(SETTINGS_MODELS)


def load_target_settings(
    target: str, text: str | None = None, name: str = "settings.yaml", registry: str | None = None
) -> TargetSettings:
    """The settings for `target` from a settings file's text (None: all defaults); a
    `registry` given on the command line wins over the file's."""
    if target not in SETTINGS_MODELS:
        raise InvalidInput(
            [
                Problem(
                    name,
                    None,
                    (),
                    f'unknown target "{target}"'
                    f"{did_you_mean(target, TARGETS)}; one of {', '.join(TARGETS)}",
                )
            ]
        )
    from migration_pipeline.lib.yaml_source import parse_yaml, to_plain

    model = SETTINGS_MODELS[target]
    source = parse_yaml(text, name) if text is not None else None
    raw = to_plain(source.data) if source is not None else None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput([Problem(name, 1, (), "must be a mapping of settings")])
    if registry is not None:
        raw = {**raw, "registry": registry}
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            path = tuple(item["loc"])
            from_command_line = path[:1] == ("registry",) and registry is not None
            file = "--registry" if from_command_line else name
            line = source.line_of(path) if source is not None and not from_command_line else None
            if item["type"] == "extra_forbidden":
                message = (
                    f'unknown key "{path[-1]}" for target {target}'
                    f"{did_you_mean(str(path[-1]), model.model_fields)}"
                )
            else:
                message = item["msg"].removeprefix("Value error, ")
            problems.append(Problem(file, line, path, message))
        raise InvalidInput(problems) from None
