"""The Hybrid GitHub Actions workflow that replaces the Serverless one.

As Dagster's Hybrid quickstart does: on the old workflow's triggers (pull requests too when the
organization uses branch deployments), `dagster-cloud ci init` (a branch deployment for a pull
request, the full deployment otherwise), a login to each registry, a build and push per location
tagged `<sha>-<run id>-<attempt>-<location>`, `ci set-build-output`, `ci deploy`, `ci status`; a
closed pull request closes its branch deployment. No value of the user's or of Dagster+ is
written into a `run:` line: the steps read them from `env:`. Pure: data in, YAML text out.
"""

from __future__ import annotations

from typing import Any

from migration_pipeline.ci.common import (
    CI_SECRET,
    CiSetup,
    dump,
    registry_hosts,
    registry_kind,
    with_branch_deployments,
)

DEFAULT_PATH = ".github/workflows/dagster-cloud-deploy.yml"
NOT_CLOSING = "github.event.action != 'closed'"
CLOSING = "github.event_name == 'pull_request' && github.event.action == 'closed'"


def _login_steps(host: str) -> tuple[list[dict], list[str]]:
    """Steps that log in to one registry host, and the repository secrets they need."""
    kind = registry_kind(host)
    if kind == "ecr":
        region = host.split(".")[3]
        return [
            {
                "name": "Configure AWS credentials",
                "if": NOT_CLOSING,
                "uses": "aws-actions/configure-aws-credentials@v4",
                "with": {
                    "aws-access-key-id": "${{ secrets.AWS_ACCESS_KEY_ID }}",
                    "aws-secret-access-key": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
                    "aws-region": region,
                },
            },
            {
                "name": "Log in to Amazon ECR",
                "if": NOT_CLOSING,
                "uses": "aws-actions/amazon-ecr-login@v2",
            },
        ], ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    if kind == "ghcr":
        return [
            {
                "name": "Log in to GitHub Container Registry",
                "if": NOT_CLOSING,
                "uses": "docker/login-action@v3",
                "with": {
                    "registry": "ghcr.io",
                    "username": "${{ github.actor }}",
                    "password": "${{ secrets.GITHUB_TOKEN }}",
                },
            }
        ], []
    user, password = (
        ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
        if kind == "acr"
        else ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")
    )
    return [
        {
            "name": f"Log in to {host}",
            "if": NOT_CLOSING,
            "uses": "docker/login-action@v3",
            "with": {
                "registry": host,
                "username": f"${{{{ secrets.{user} }}}}",
                "password": f"${{{{ secrets.{password} }}}}",
            },
        }
    ], [user, password]


def hybrid_workflow(setup: CiSetup, triggers: dict[str, Any]) -> tuple[str, list[str]]:
    """(workflow text, the repository secrets the user must set). `triggers` is the `on:` of
    the workflow it replaces."""
    secrets = [CI_SECRET]
    on = with_branch_deployments(triggers) if setup.branch_deployments else dict(triggers)
    if not on:
        on = {"push": {"branches": ["main"]}}
    on.setdefault("workflow_dispatch", None)
    commands = setup.commands
    steps: list[dict] = [
        {"name": "Check out", "uses": "actions/checkout@v4"},
        {
            "name": "Set up Python",
            "uses": "actions/setup-python@v5",
            "with": {"python-version": setup.python_version},
        },
        {"name": "Install the Dagster+ CLI", "run": commands.install},
    ]
    if setup.branch_deployments:
        # `ci branch-deployment` builds https://<org>.dagster.cloud from the organization when
        # one is set; without it, it uses DAGSTER_CLOUD_URL, which is right for regional URLs too.
        steps.append(
            {
                "name": "Close the branch deployment of a closed pull request",
                "if": CLOSING,
                "env": {"DAGSTER_CLOUD_ORGANIZATION": ""},
                "run": commands.close,
            }
        )
    steps.append(
        {
            "name": "Start the build session (a branch deployment for a pull request)",
            "if": NOT_CLOSING,
            "run": commands.start,
        }
    )
    permissions = {"contents": "read"}
    for host in registry_hosts(setup.builds):
        login, needed = _login_steps(host)
        steps += login
        secrets += [s for s in needed if s not in secrets]
        if registry_kind(host) == "ghcr":
            permissions["packages"] = "write"
    if setup.builds:
        steps.append(
            {
                "name": "Set up Docker Buildx",
                "if": NOT_CLOSING,
                "uses": "docker/setup-buildx-action@v3",
            }
        )
    for build in setup.builds:
        steps += [
            {
                "name": f"Build and push {build.location}",
                "if": NOT_CLOSING,
                "uses": "docker/build-push-action@v6",
                "with": {
                    "context": build.context,
                    **({"file": build.dockerfile} if build.dockerfile else {}),
                    **({"target": build.target} if build.target else {}),
                    "push": True,
                    "tags": f"{build.repository}:${{{{ env.IMAGE_TAG }}}}-{build.tag_suffix}",
                },
            },
            {
                "name": f"Record the image of {build.location}",
                "if": NOT_CLOSING,
                "env": {"LOCATION_NAME": build.location, "LOCATION_TAG": build.tag_suffix},
                "run": commands.set_build_output,
            },
        ]
    steps += [
        {"name": "Deploy to Dagster+", "if": NOT_CLOSING, "run": commands.finish},
        {
            "name": "Show the deploy status",
            "if": f"always() && {NOT_CLOSING}",
            "run": f'{commands.status} >> "$GITHUB_STEP_SUMMARY"',
        },
    ]
    workflow = {
        "name": "Dagster+ Hybrid deploy",
        "on": on,
        "concurrency": {
            "group": "${{ github.ref }}-${{ github.event_name }}",
            "cancel-in-progress": True,
        },
        "permissions": permissions,
        "env": {
            **setup.variables(),
            **(
                {
                    "DEPLOYMENT_TYPE": "${{ github.event_name == 'pull_request' && 'branch' || 'full' }}"
                }
                if setup.dg_target_path is not None
                else {}
            ),
            CI_SECRET: f"${{{{ secrets.{CI_SECRET} }}}}",
            "DAGSTER_BUILD_STATEDIR": "${{ runner.temp }}/dagster-build-state",
            "IMAGE_TAG": "${{ github.sha }}-${{ github.run_id }}-${{ github.run_attempt }}",
        },
        "jobs": {"dagster_plus_deploy": {"runs-on": "ubuntu-22.04", "steps": steps}},
    }
    header = (
        "# Dagster+ Hybrid deploy: builds and pushes one image per code location, then "
        "deploys"
        + (" (a branch deployment for each pull request)" if setup.branch_deployments else "")
        + ".\n"
        "# Generated by migration_pipeline; replaces the Serverless (PEX) workflow"
        + (
            " with dg plus deploy, one image per project"
            if setup.dg_target_path is not None
            else ""
        )
        + ".\n"
        f"# Repository secrets to set: {', '.join(secrets)} ({CI_SECRET}: a Dagster+ agent "
        "token, as Dagster's Hybrid CI docs say).\n"
    )
    return dump(header, workflow), secrets
