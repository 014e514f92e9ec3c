"""The target settings file: a small YAML file for the chosen agent type. Every key is optional;
every target has sensible defaults (namespace `dagster-cloud` on Kubernetes, and so on).

    # kubernetes
    registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com/acme
    image_layout: per_location      # or `shared`: one repository, the location in the tag
    python_version: "3.11"          # else taken from the Serverless CI workflow, else 3.11
    remove_non_isolated_runs: false # true: drop the deployment's non_isolated_runs at cutover
    deployment_order: [staging, prod]  # prod's cutover waits until staging finished green
    layout: auto                    # or dg / legacy: which to migrate when a repo has both
    agent_queue: hybrid             # route every location to the agents serving this queue
    strategy: per_location          # or `switch` (default): move one location at a time first
    first_run: {analytics: daily_refresh_job}  # run it on the new agent before calling it done
    namespace: data
    env_secrets: [snowflake-credentials]
    service_account_name: dagster-user-code
    resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from migration_pipeline.lib import names
from migration_pipeline.lib.problems import (
    InvalidInput,
    Problem,
    did_you_mean,
    validation_problems,
)


def _checked(problem: Callable[[Any], str | None]) -> AfterValidator:
    """A pydantic validator from a `lib.names` check."""

    def validate(value: Any) -> Any:
        found = problem(value)
        if found is not None:
            raise ValueError(found)
        return value

    return AfterValidator(validate)


Registry = Annotated[str, _checked(names.image_repository_problem)]
ImageReference = Annotated[str, _checked(names.image_reference_problem)]
K8sLabel = Annotated[str, _checked(names.k8s_label_problem)]
K8sSubdomain = Annotated[str, _checked(names.k8s_subdomain_problem)]
EnvVar = Annotated[str, _checked(names.env_var_problem)]
EnvVarName = Annotated[str, _checked(names.env_var_name_problem)]
AwsRegion = Annotated[str, _checked(names.aws_region_problem)]
DockerName = Annotated[str, _checked(names.docker_name_problem)]
PlainText = Annotated[str, _checked(names.plain_text_problem)]
DeploymentName = Annotated[str, _checked(names.deployment_name_problem)]
AgentQueue = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# The queue the per_location strategy routes the locations through when the settings name none.
PER_LOCATION_QUEUE = "hybrid-migration"


def _number_as_text(value: Any) -> Any:
    """A whole number or a decimal written bare where a string of digits is meant (Kubernetes
    reads `cpu: 1` as `cpu: "1"`, ECS `cpu: 256` as "256"); a boolean stays an error."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


NumberText = BeforeValidator(_number_as_text)
# Kubernetes quantities (100m, 1Gi, 0.5, or the bare number 1).
Quantity = Annotated[
    str, NumberText, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|E|Ei)?$")
]
IamRoleArn = Annotated[
    str, Field(pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")
]
SecretArn = Annotated[
    str,
    Field(
        pattern=r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_+=,.@/:-]{1,1024}$"
    ),
]


class FirstRun(BaseModel):
    """A job to run on the new agent once every location is LOADED, and its run config."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)
    job: PlainText
    run_config: dict[str, Any] = Field(default_factory=dict)


class TargetSettings(BaseModel):
    """What every target's settings file may hold; each target's model adds its own keys.
    Strict: `"false"` is not read as a boolean, `true` not as a number, `3.11` not as a
    string; each is an error naming the key, the type expected and the value found."""

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)

    registry: Registry | None = Field(None, description="Image registry and repository prefix.")
    image_layout: Literal["per_location", "shared"] = "per_location"
    python_version: str | None = Field(None, pattern=r"^3\.[0-9]{1,2}$")
    base_image: ImageReference | None = Field(
        None, description="A custom base image for the Dockerfiles."
    )
    builder: Literal["docker", "buildah", "podman"] | None = Field(
        None, description="The image builder (default: the first of docker, buildah, podman)."
    )
    max_parallel_builds: int = Field(2, ge=1, le=16)
    insecure_registry: bool = Field(
        False, description="Plain HTTP to the registry (loopback registries always are)."
    )
    prove_images: bool = Field(
        True,
        description="Start each pushed image and load its definitions before the cutover "
        "(the images_load_their_definitions check, which the preflight requires). false: an "
        "explicit opt-out, for images this machine cannot start (another CPU architecture, "
        "definitions that need secrets to load); the check then warns and the preflight "
        "skips the requirement, saying so.",
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
    layout: Literal["auto", "dg", "legacy"] = Field(
        "auto",
        description="Which layout to migrate when the repository has both a dg project or "
        "workspace and a dagster_cloud.yaml (auto: the one its deploy workflow uses).",
    )
    agent_queue: AgentQueue | None = Field(
        None,
        description="Route every location to the agents that serve this queue (the agent's "
        "agent_queues.additional_queues); unset: the default queue (with strategy "
        f"per_location: {PER_LOCATION_QUEUE!r}).",
    )
    move_order: list[PlainText] = Field(
        default_factory=list,
        description="strategy per_location: the locations to move first, in this order (the "
        "least critical first, say); the others follow in the plan's order.",
    )
    strategy: Literal["switch", "per_location"] = Field(
        "switch",
        description="switch: deactivate the Serverless agent, then deploy every location to "
        "the Hybrid agent (one no-agent window for the whole deployment). per_location: while "
        "the deployment is still Serverless, move the locations one at a time to the Hybrid "
        "agent through an agent queue (a Dagster+ Pro feature), each verified LOADED before "
        "the next, then switch: the Serverless agent deactivated serves nothing.",
    )
    first_run: dict[PlainText, PlainText | FirstRun] = Field(
        default_factory=dict,
        description="location -> job (or {job, run_config}): after every location is LOADED "
        "the finish launches one run of it through Dagster+ on the new agent and waits for it "
        "(the first_runs_succeed check): proof that the code runs there, not only loads.",
    )
    first_run_blocking: bool = Field(
        False,
        description="true: a first run that fails or times out fails the finish run (the "
        "migration is not called finished); false: the check fails, the finish goes on.",
    )
    first_run_timeout_seconds: int = Field(600, ge=10, le=86_400)
    deployment_order: list[DeploymentName] = Field(
        default_factory=list,
        description="Full deployments to move one after another, e.g. [staging, prod]: a "
        "deployment's cutover refuses to start until each one before it has finished with "
        "every check green; a failed or rolled-back one stops the order.",
    )

    @property
    def routed_queue(self) -> str | None:
        """The agent queue every location is deployed with: `agent_queue`, else, for the
        per_location strategy, PER_LOCATION_QUEUE; None: the default queue."""
        if self.agent_queue:
            return self.agent_queue
        return PER_LOCATION_QUEUE if self.strategy == "per_location" else None

    @property
    def agent_queues(self) -> dict[str, Any] | None:
        """The migration's agent's `agent_queues` (its dagster.yaml's, the Helm chart's
        dagsterCloud.agentQueues): the routed queue, and the default queue too unless the
        strategy is per_location (then the agent starts beside the Serverless agent, which
        serves the default queue, and must not compete for it). None: the default queue only."""
        queue = self.routed_queue
        if queue is None:
            return None
        return {
            "include_default_queue": self.strategy != "per_location",
            "additional_queues": [queue],
        }

    @property
    def first_runs(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """location -> (job, run config) of `first_run`."""
        return {
            location: (choice, {}) if isinstance(choice, str) else (choice.job, choice.run_config)
            for location, choice in self.first_run.items()
        }

    def set_fields(self, *names: str, by_alias: bool = False) -> dict[str, Any]:
        """The named settings that are set (not None, not empty), as plain data, in order."""
        data = self.model_dump(include=set(names), exclude_none=True, by_alias=by_alias)
        return {name: data[name] for name in names if data.get(name) not in (None, [], {})}


class _Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, defer_build=True)
    requests: dict[Literal["cpu", "memory"], Quantity] | None = None
    limits: dict[Literal["cpu", "memory"], Quantity] | None = None


class KubernetesSettings(TargetSettings):
    namespace: K8sLabel = "dagster-cloud"
    env_secrets: list[K8sSubdomain] = []
    env_vars: list[EnvVar] = []
    image_pull_secrets: list[K8sSubdomain] = []
    service_account_name: K8sSubdomain | None = None
    resources: _Resources | None = None


class AzureSettings(KubernetesSettings):
    """AKS with Azure Container Registry: the registry is `<name>.azurecr.io[/path]`."""

    registry: Annotated[str, _checked(names.azure_registry_problem)] | None = Field(
        None, description="<name>.azurecr.io[/path]"
    )


class _EcsSecret(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, defer_build=True)
    name: EnvVarName
    value_from: SecretArn = Field(alias="valueFrom")


class EcsSettings(TargetSettings):
    aws_region: AwsRegion | None = Field(None, description="Where the agent token secret is kept.")
    task_role_arn: IamRoleArn | None = None
    execution_role_arn: IamRoleArn | None = None
    cpu: Annotated[str, NumberText] | None = Field(
        None, pattern=r"^[0-9]{1,6}$", description="CPU units, e.g. 256"
    )
    memory: Annotated[str, NumberText] | None = Field(
        None, pattern=r"^[0-9]{1,7}$", description="MiB, e.g. 512"
    )
    env_vars: list[EnvVar] = []
    secrets: list[_EcsSecret] = []
    runtime_platform: (
        dict[
            Literal["cpuArchitecture", "operatingSystemFamily"],
            Annotated[str, Field(pattern=r"^[A-Z0-9_]{1,32}$")],
        ]
        | None
    ) = None

    @model_validator(mode="after")
    def _no_queue_the_agent_could_not_serve(self) -> EcsSettings:
        if self.routed_queue:
            raise ValueError(
                "agent_queue and strategy per_location need an agent that serves the queue, "
                "and the parameters this migration gives Dagster's ECS CloudFormation template "
                "set no agent_queues (whether the template takes them cannot be checked from "
                "here): use strategy switch without agent_queue, or set the queues on the "
                "agent yourself"
            )
        return self


class DockerSettings(TargetSettings):
    # The network the compose file creates: the agent and every code server join it, and the
    # agent reaches each code server by container name on it (DockerUserCodeLauncher).
    agent_network: DockerName = "dagster-cloud-agent"
    networks: list[DockerName] = []  # further networks that exist already, joined as well
    env_vars: list[EnvVar] = []
    container_kwargs: dict[str, Any] | None = None


class LocalSettings(TargetSettings):
    executable_path: PlainText | None = Field(None, description="The Python the Local agent runs.")
    env_vars: list[EnvVar] = Field(
        default_factory=list,
        description="NAME=value: set in the agent's environment, which its code servers and "
        "run workers inherit (a 0600 file beside the agent's token, read as data, never run); "
        "NAME alone: inherited from wherever the agent is started.",
    )


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
        problems = validation_problems(
            error,
            name,
            source.line_of if source is not None else None,
            known_keys=model.model_fields,
            unknown_in=f"for target {target}",
        )
        if registry is not None:  # the registry came from the command line, not the file
            problems = [
                Problem("--registry", None, p.path, p.message) if p.path[:1] == ("registry",) else p
                for p in problems
            ]
        raise InvalidInput(problems) from None
