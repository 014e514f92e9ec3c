"""The Hybrid GitHub Actions workflow that replaces the Serverless one.

It follows Dagster's Hybrid flow: `dagster-cloud ci check`, `ci init`, a login to the chosen
registry, a build and push per location tagged `<sha>-<run id>-<attempt>-<location>`,
`ci set-build-output`, `ci deploy`, `ci status`. Pure: data in, YAML text out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

DEFAULT_PATH = ".github/workflows/dagster-cloud-deploy.yml"
TAG = "${{ github.sha }}-${{ github.run_id }}-${{ github.run_attempt }}"


@dataclass(frozen=True)
class ImageBuild:
    location: str
    context: str  # the build directory, relative to the repository
    repository: str  # where the image goes (build.registry)


def registry_kind(registry: str) -> str:
    host = registry.split("/", 1)[0]
    if re.fullmatch(r"\d+\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com", host):
        return "ecr"
    if host == "ghcr.io":
        return "ghcr"
    if host.endswith(".azurecr.io"):
        return "acr"
    return "generic"


def _login_steps(registry: str) -> tuple[list[dict], list[str]]:
    """Steps that log in to the registry, and the repository secrets they need."""
    host = registry.split("/", 1)[0]
    kind = registry_kind(registry)
    if kind == "ecr":
        region = host.split(".")[3]
        return [
            {"name": "Configure AWS credentials",
             "uses": "aws-actions/configure-aws-credentials@v4",
             "with": {"aws-access-key-id": "${{ secrets.AWS_ACCESS_KEY_ID }}",
                      "aws-secret-access-key": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
                      "aws-region": region}},
            {"name": "Log in to Amazon ECR", "uses": "aws-actions/amazon-ecr-login@v2"},
        ], ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    if kind == "ghcr":
        return [{"name": "Log in to GitHub Container Registry", "uses": "docker/login-action@v3",
                 "with": {"registry": "ghcr.io", "username": "${{ github.actor }}",
                          "password": "${{ secrets.GITHUB_TOKEN }}"}}], []
    if kind == "acr":
        return [{"name": "Log in to Azure Container Registry", "uses": "docker/login-action@v3",
                 "with": {"registry": host, "username": "${{ secrets.AZURE_CLIENT_ID }}",
                          "password": "${{ secrets.AZURE_CLIENT_SECRET }}"}}], [
            "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"]
    return [{"name": f"Log in to {host}", "uses": "docker/login-action@v3",
             "with": {"registry": host, "username": "${{ secrets.REGISTRY_USERNAME }}",
                      "password": "${{ secrets.REGISTRY_PASSWORD }}"}}], [
        "REGISTRY_USERNAME", "REGISTRY_PASSWORD"]


def hybrid_workflow(builds: list[ImageBuild], dagster_cloud_url: str, deployment: str,
                    python_version: str, cloud_yaml: str = "dagster_cloud.yaml"
                    ) -> tuple[str, list[str]]:
    """(workflow text, the repository secrets the user must set)."""
    secrets = ["DAGSTER_CLOUD_API_TOKEN"]
    steps: list[dict] = [
        {"name": "Check out", "uses": "actions/checkout@v4"},
        {"name": "Set up Python", "uses": "actions/setup-python@v5",
         "with": {"python-version": python_version}},
        {"name": "Install the Dagster+ CLI", "run": "pip install dagster-cloud"},
        {"name": "Validate the code locations",
         "run": f"dagster-cloud ci check --project-dir . --dagster-cloud-yaml-path {cloud_yaml}"},
        {"name": "Start the build session",
         "run": f"dagster-cloud ci init --project-dir . --dagster-cloud-yaml-path {cloud_yaml} "
                f"--deployment {deployment}"},
    ]
    registries = sorted({b.repository.split("/", 1)[0] + "/" for b in builds})
    permissions = {"contents": "read"}
    for registry in registries:
        login, needed = _login_steps(registry)
        steps += login
        secrets += [s for s in needed if s not in secrets]
        if registry_kind(registry) == "ghcr":
            permissions["packages"] = "write"
    if builds:
        steps.append({"name": "Set up Docker Buildx", "uses": "docker/setup-buildx-action@v3"})
    for build in builds:
        tag = f"{TAG}-{build.location}"
        steps += [
            {"name": f"Build and push {build.location}", "uses": "docker/build-push-action@v6",
             "with": {"context": build.context, "push": True,
                      "tags": f"{build.repository}:{tag}"}},
            {"name": f"Record the image of {build.location}",
             "run": f"dagster-cloud ci set-build-output --location-name {build.location} "
                    f"--image-tag {tag}"},
        ]
    steps += [
        {"name": "Deploy to Dagster+", "run": "dagster-cloud ci deploy"},
        {"name": "Show the deploy status", "run": "dagster-cloud ci status"},
    ]
    env = {"DAGSTER_CLOUD_URL": dagster_cloud_url,
           "DAGSTER_CLOUD_API_TOKEN": "${{ secrets.DAGSTER_CLOUD_API_TOKEN }}",
           "DAGSTER_BUILD_STATEDIR": "/tmp/dagster-build-state"}
    organization = re.match(r"https://([a-z0-9-]+)\.dagster\.cloud", dagster_cloud_url)
    if organization:
        env["DAGSTER_CLOUD_ORGANIZATION"] = organization.group(1)
    workflow = {
        "name": "Dagster+ Hybrid deploy",
        "on": {"push": {"branches": ["main"]}, "workflow_dispatch": {}},
        "concurrency": {"group": "${{ github.workflow }}-${{ github.ref }}",
                        "cancel-in-progress": False},
        "permissions": permissions,
        "env": env,
        "jobs": {"deploy": {"runs-on": "ubuntu-22.04", "steps": steps}},
    }
    header = ("# Dagster+ Hybrid deploy: builds and pushes one image per code location, then "
              "deploys.\n# Generated by migration_pipeline; replaces the Serverless (PEX) "
              "workflow. Repository secrets\n# to set: " + ", ".join(secrets) + ".\n")
    return header + yaml.safe_dump(workflow, sort_keys=False, width=10**9), secrets


def dagster_cloud_url_of(workflow_text: str) -> str | None:
    """The DAGSTER_CLOUD_URL a Serverless workflow names, if any."""
    match = re.search(r"""DAGSTER_CLOUD_URL\s*:\s*["']?(https?://[^"'\s]+)""", workflow_text)
    return match.group(1) if match else None
