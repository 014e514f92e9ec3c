"""What the GitHub and GitLab Hybrid CI share: the image builds, the organization, the deploy
triggers of the Serverless CI they replace. Pure functions over plain data.

Both follow Dagster's Hybrid flow with the CLIs of the pinned release. For a `dagster_cloud.yaml`
project: `dagster-cloud ci init` (which also validates dagster_cloud.yaml with the CLI's own
model, and in a pull or merge request creates the branch deployment), a build and push per
location, `ci set-build-output`, `ci deploy`, `ci status`. For a dg project or workspace the
same steps through dg (`DgCommands`): `dg plus deploy start` (which writes its own
dagster_cloud.yaml from the dg files and runs `ci init` on it), a build and push per project,
`dg plus deploy set-build-output`, `finish`, `status`, every one with `--target-path`. `ci check`
is not used: 1.13.27 deprecates it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import yaml

from migration_pipeline.lib.problems import InvalidInput
from migration_pipeline.lib.yaml_source import load_plain

CLI_VERSION = "1.13.27"  # the dagster-cloud CLI the generated CI installs: the pinned release
CI_SECRET = "DAGSTER_CLOUD_API_TOKEN"


@dataclass(frozen=True)
class ImageBuild:
    location: str
    context: str  # the build directory, relative to the repository
    repository: str  # where the image goes (build.registry)
    dockerfile: str | None = None  # another Dockerfile than the context's, repository-relative
    target: str | None = None  # a build stage

    @property
    def tag_suffix(self) -> str:
        """The location as it may stand in an image tag (`[A-Za-z0-9_.-]`)."""
        return re.sub(r"[^A-Za-z0-9_.-]", "-", self.location)[:60] or "location"


@dataclass(frozen=True)
class CiSetup:
    builds: tuple[ImageBuild, ...]
    dagster_cloud_url: str
    organization: str
    deployment: str
    python_version: str
    cloud_yaml: str = "dagster_cloud.yaml"
    branch_deployments: bool = False
    # A dg project or workspace: the folder `dg plus deploy --target-path` names ("." at the
    # top). None: a dagster_cloud.yaml project, deployed with `dagster-cloud ci`.
    dg_target_path: str | None = None

    def __post_init__(self) -> None:
        """The last guard: no value reaches a generated workflow with the runner's syntax in
        it (each was checked where it came in, with its file and line)."""
        from migration_pipeline.lib.names import ci_text_problem

        values = [
            self.dagster_cloud_url,
            self.organization,
            self.deployment,
            self.python_version,
            self.cloud_yaml,
            self.dg_target_path,
            *(
                v
                for b in self.builds
                for v in (b.location, b.context, b.repository, b.dockerfile, b.target)
            ),
        ]
        unsafe = [p for v in values if v is not None and (p := ci_text_problem(v))]
        if unsafe:
            raise ValueError(f"not written into the CI: {unsafe[0]}")

    @property
    def commands(self) -> DeployCommands:
        return DgCommands() if self.dg_target_path is not None else CloudCiCommands()

    def variables(self) -> dict[str, str]:
        """What the CI's environment holds for the commands (the same on GitHub and GitLab)."""
        return {
            "DAGSTER_CLOUD_ORGANIZATION": self.organization,
            "DAGSTER_CLOUD_URL": self.dagster_cloud_url,
            "DAGSTER_CLOUD_DEPLOYMENT": self.deployment,
            **(
                {"DAGSTER_PROJECT_DIR": self.dg_target_path}
                if self.dg_target_path is not None
                else {"DAGSTER_CLOUD_YAML": self.cloud_yaml}
            ),
        }


class CloudCiCommands:
    """`dagster-cloud ci` on the repository's dagster_cloud.yaml. Every value comes from the
    environment (`$LOCATION_NAME`, ...), never from the command line's text."""

    install = f"pip install dagster-cloud=={CLI_VERSION}"
    start = (
        'dagster-cloud ci init --project-dir . --dagster-cloud-yaml-path "$DAGSTER_CLOUD_YAML" '
        '--deployment "$DAGSTER_CLOUD_DEPLOYMENT"'
    )
    set_build_output = (
        'dagster-cloud ci set-build-output --location-name "$LOCATION_NAME" '
        '--image-tag "$IMAGE_TAG-$LOCATION_TAG"'
    )
    finish = "dagster-cloud ci deploy"
    status = "dagster-cloud ci status --output-format markdown"

    @staticmethod
    def set_build_output_quoted(location: str, tag: str) -> str:
        """The same with the location and tag written in, shell-quoted (GitLab's script)."""
        return (
            f"dagster-cloud ci set-build-output --location-name {shlex.quote(location)} "
            f'--image-tag "$IMAGE_TAG"-{shlex.quote(tag)}'
        )

    close = "dagster-cloud ci branch-deployment . --mark-closed"


class DgCommands:
    """`dg plus deploy` on the dg project or workspace at `$DAGSTER_PROJECT_DIR`; the branch or
    full deployment is `$DEPLOYMENT_TYPE`, set by the CI from the event."""

    install = f"pip install dagster-dg-cli=={CLI_VERSION} dagster-cloud=={CLI_VERSION}"
    start = (
        'dg plus deploy start --organization "$DAGSTER_CLOUD_ORGANIZATION" --deployment '
        '"$DAGSTER_CLOUD_DEPLOYMENT" --deployment-type "$DEPLOYMENT_TYPE" --target-path '
        '"$DAGSTER_PROJECT_DIR" --yes'
    )
    set_build_output = (
        'dg plus deploy set-build-output --location-name "$LOCATION_NAME" --image-tag '
        '"$IMAGE_TAG-$LOCATION_TAG" --target-path "$DAGSTER_PROJECT_DIR"'
    )
    finish = 'dg plus deploy finish --target-path "$DAGSTER_PROJECT_DIR"'

    @staticmethod
    def set_build_output_quoted(location: str, tag: str) -> str:
        return (
            f"dg plus deploy set-build-output --location-name {shlex.quote(location)} "
            f'--image-tag "$IMAGE_TAG"-{shlex.quote(tag)} --target-path "$DAGSTER_PROJECT_DIR"'
        )

    status = "dg plus deploy status --output-format markdown"
    close = 'dagster-cloud ci branch-deployment "$DAGSTER_PROJECT_DIR" --mark-closed'


DeployCommands = CloudCiCommands | DgCommands


def registry_kind(registry: str) -> str:
    host = registry.split("/", 1)[0]
    if re.fullmatch(r"\d+\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com", host):
        return "ecr"
    if host == "ghcr.io":
        return "ghcr"
    if host.endswith(".azurecr.io"):
        return "acr"
    return "generic"


def registry_hosts(builds: tuple[ImageBuild, ...]) -> list[str]:
    return sorted({b.repository.split("/", 1)[0] for b in builds})


# The organization's URL in each form Dagster+ has used: https://<org>.dagster.cloud,
# https://<org>.<region>.dagster.cloud, the same on dagster.plus, and https://dagster.cloud/<org>.
_ORGANIZATION_URL = re.compile(
    r"(?P<org>[a-z0-9][a-z0-9-]*)(?:\.(?P<region>[a-z0-9-]+))?\.dagster\.(?:cloud|plus)"
)


def organization_from_url(url: str) -> str | None:
    """The organization a Dagster+ URL names, or None when the URL is not Dagster+'s."""
    parsed = urlparse(url if "://" in url else f"https://{url}")
    host = (parsed.hostname or "").lower()
    if host in ("dagster.cloud", "dagster.plus"):
        first = parsed.path.strip("/").split("/", 1)[0]
        return first or None
    match = _ORGANIZATION_URL.fullmatch(host)
    if not match or match.group("org") == "www":
        return None
    return match.group("org")


def dagster_cloud_url_in(ci_texts: list[str]) -> str | None:
    """The DAGSTER_CLOUD_URL the Serverless CI files set, read from the parsed documents (a
    workflow's or a job's `env:`, a step's `env:`, GitLab's `variables:`), never from their text
    (a comment is not a setting): the first that is a Dagster+ organization's URL, or None."""
    from migration_pipeline.lib.names import url_problem

    for text in ci_texts:
        try:
            document = load_plain(text, "workflow", any_tags=True)  # bounded; GitLab's tags
        except InvalidInput:
            continue
        for value in _settings_named(document, "DAGSTER_CLOUD_URL"):
            if url_problem(value) is None and organization_from_url(value):
                return value
    return None


def _settings_named(document: Any, key: str) -> list[Any]:
    """`key`'s values in the places a CI file sets its environment."""
    if not isinstance(document, dict):
        return []
    scopes: list[Any] = [document.get("env"), document.get("variables")]
    for job in (
        (document.get("jobs") or {}).values() if isinstance(document.get("jobs"), dict) else []
    ):
        if isinstance(job, dict):
            scopes += [job.get("env")]
            scopes += [s.get("env") for s in job.get("steps") or [] if isinstance(s, dict)]
    scopes += [j.get("variables") for j in document.values() if isinstance(j, dict)]
    return [scope[key] for scope in scopes if isinstance(scope, dict) and key in scope]


def github_triggers(workflow_texts: list[str]) -> dict[str, Any]:
    """The `on:` of the Serverless workflows, merged: the Hybrid workflow deploys on the same
    events (pushes to the same branches, pull requests, manual runs)."""
    triggers: dict[str, Any] = {}
    for text in workflow_texts:
        try:
            data = load_plain(text, "workflow", any_tags=True)  # bounded; GitLab's tags
        except InvalidInput:
            continue
        if not isinstance(data, dict):
            continue
        # GitHub reads the bare key `on` as the event list (YAML 1.1 readers as True).
        on = data.get("on", data.get(True))
        if isinstance(on, str):
            on = {on: None}
        elif isinstance(on, list):
            on = {event: None for event in on if isinstance(event, str)}
        if not isinstance(on, dict):
            continue
        for event, spec in on.items():
            if event not in triggers or triggers[event] is None:
                triggers[str(event)] = spec
            elif isinstance(spec, dict) and isinstance(triggers[event], dict):
                for key, values in spec.items():
                    have = triggers[event].get(key)
                    if isinstance(have, list) and isinstance(values, list):
                        triggers[event][key] = have + [v for v in values if v not in have]
    return triggers


def with_branch_deployments(triggers: dict[str, Any]) -> dict[str, Any]:
    """The triggers plus pull requests (and their closing, which closes the branch deployment),
    as the Hybrid quickstart deploys them."""
    merged = dict(triggers)
    spec = merged.get("pull_request")
    if not isinstance(spec, dict):
        spec = {}
    types = list(spec.get("types") or ["opened", "synchronize", "reopened"])
    if "closed" not in types:
        types.append("closed")
    merged["pull_request"] = {**spec, "types": types}
    return merged


def dump(header: str, data: dict[str, Any]) -> str:
    """YAML text with a comment header; every value goes through the YAML emitter."""
    return header + yaml.safe_dump(data, sort_keys=False, width=10**9, allow_unicode=True)
