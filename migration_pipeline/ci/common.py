"""What the GitHub and GitLab Hybrid CI share: the image builds, the organization, the deploy
triggers of the Serverless CI they replace. Pure functions over plain data.

Both follow Dagster's Hybrid flow for a `dagster_cloud.yaml` project, with the `dagster-cloud`
CLI of the pinned release: `ci init` (which also validates dagster_cloud.yaml with the CLI's own
model, and in a pull or merge request creates the branch deployment), a build and push per
location, `ci set-build-output`, `ci deploy`, `ci status`. `ci check` is not used: 1.13.27
deprecates it (its replacement, `dg plus deploy start`, needs a `dg` project, which a
Serverless-era repository is not).
"""

from __future__ import annotations

import re
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


def dagster_cloud_url_of(workflow_text: str) -> str | None:
    """The DAGSTER_CLOUD_URL a Serverless CI file names, if any."""
    match = re.search(r"""DAGSTER_CLOUD_URL\s*:\s*["']?(https?://[^"'\s]+)""", workflow_text)
    return match.group(1) if match else None


def github_triggers(workflow_texts: list[str]) -> dict[str, Any]:
    """The `on:` of the Serverless workflows, merged: the Hybrid workflow deploys on the same
    events (pushes to the same branches, pull requests, manual runs)."""
    triggers: dict[str, Any] = {}
    for text in workflow_texts:
        try:
            data = load_plain(text, "workflow")  # bounded: aliases and depth
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
