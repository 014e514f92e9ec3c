"""The Hybrid CI generated for a dg workspace, executed as test_ci_runs executes the legacy one:
every `dg` and `dagster-cloud` command of the GitHub workflow and of the GitLab job runs, in
order, with the real dg 1.13.27 and dagster-cloud 1.13.27 CLIs against the sandbox; the build
and push steps are stood in for by the project's builder pushing to the local registry (dg's
own `build-and-push` runs `docker build` itself, so the workflow builds with the platform's
action and records the image with `set-build-output`, as dg's Hybrid template does).

A push deploys every project LOADED under its old location name; a pull request makes a branch
deployment; closing it closes that branch deployment.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import make_scenario
from support.agent import fake_agent
from support.inventory import inventory_of
from test_ci_runs import SHA, run_github_workflow, run_gitlab_job

from migration_pipeline.images.builders import choose_builder
from migration_pipeline.layouts.files import read_project
from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.targets import load_target_settings

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "serverless_dg_workspace"
LIVE = {
    "ingest": "ingest.definitions",
    "warehouse_marts": "marts.definitions",
    "ml": "ml.definitions",
}
GITLAB_SERVERLESS = """\
deploy:
  image: python:3.12
  script:
    - python -m uv run dg plus deploy build-and-push --agent-type=serverless
    - python -m uv run dg plus deploy finish
"""


@pytest.fixture
def hybrid_dg_org(start_sandbox):
    """The dg example's organization right after its cutover: prod is HYBRID, with the
    workspace's three locations."""
    raw = make_scenario().__dict__
    prod = dict(raw["deployments"][0])
    prod["agent_type"] = "HYBRID"
    prod["locations"] = [
        {"location_name": name, "code_source": {"module_name": module}}
        for name, module in LIVE.items()
    ]
    return start_sandbox(make_scenario(deployments=[prod, *raw["deployments"][1:]]))


# No base image can be pulled here and the fake agent runs no code, so each project keeps a
# Dockerfile of its own that builds from scratch (the plan keeps a project's Dockerfile). The
# generated Dockerfiles are built for real by the Docker end to end (`make demo-dg`).
SCRATCH = {
    f"projects/{p}/Dockerfile": "FROM scratch\nCOPY . /app\n" for p in ("ingest", "marts", "ml")
}


def migrated_workspace(tmp_path: Path, sandbox, registry: str, extra: dict[str, str]) -> Path:
    """The example workspace planned for Kubernetes and applied, in a git repository."""
    project = tmp_path / "data-platform"
    shutil.copytree(EXAMPLE, project)
    for relative, text in {**SCRATCH, **extra}.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    inventory = inventory_of(
        organization_url=sandbox.url,
        uses_branch_deployments=True,
        locations_document={
            "locations": [
                {"location_name": n, "code_source": {"module_name": m}} for n, m in LIVE.items()
            ]
        },
    )
    settings = load_target_settings(
        "kubernetes", "organization: acme\n", registry=f"{registry}/acme"
    )
    plan = make_plan(read_project(project), "kubernetes", settings, inventory)
    assert plan.names_kept == tuple(LIVE)
    apply_plan(plan, project)
    git = ["git", "-C", str(project), "-c", "user.name=Dev", "-c", "user.email=dev@acme.test"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "Move to Hybrid"], check=True)
    return project


def deployed(sandbox, deployment) -> dict[str, str]:
    return {
        loc["location_name"]: loc["image"] for loc in sandbox.state.location_documents(deployment)
    }


def test_the_dg_github_workflow_deploys_a_push_and_a_pull_request(
    hybrid_dg_org, registry, tmp_path
):
    sandbox = hybrid_dg_org
    project = migrated_workspace(tmp_path, sandbox, registry, {})
    workflow = yaml.safe_load((project / ".github/workflows/dagster-plus-deploy.yml").read_text())
    ids = [step.get("id") for step in workflow["jobs"]["dagster_plus_deploy"]["steps"]]
    assert len([i for i in ids if i]) == len({i for i in ids if i})  # GitHub refuses duplicates
    builder = choose_builder("buildah", storage=tmp_path / "containers", insecure_registries=True)
    agent_token = sandbox.state.create_agent_token(
        "ci", sandbox.state.authenticate(sandbox.token("admin"))
    )[1]
    with fake_agent(sandbox, agent_token, branch_deployments=True, label="hybrid agent"):
        ran = run_github_workflow(
            project,
            workflow,
            "push",
            {"ref": "refs/heads/main", "repository": {"full_name": "acme/data-platform"}},
            tmp_path,
            agent_token,
            builder,
            "201",
        )
        assert ran == [
            "dg plus deploy start",
            "dg plus deploy set-build-output",
            "dg plus deploy set-build-output",
            "dg plus deploy set-build-output",
            "dg plus deploy finish",
            "dg plus deploy status",
        ]
        prod = sandbox.state.deployment("prod")
        tag = f"{SHA}-201-1"
        assert deployed(sandbox, prod) == {
            name: f"{registry}/acme/{name}:{tag}-{name}" for name in LIVE
        }
        assert {v.name: v.load_status for v in sandbox.state.locations(prod)} == {
            name: "LOADED" for name in LIVE
        }

        pull_request = {
            "action": "opened",
            "number": 9,
            "repository": {"full_name": "acme/data-platform"},
            "pull_request": {
                "number": 9,
                "state": "open",
                "merged": False,
                "html_url": "https://github.com/acme/data-platform/pull/9",
                "head": {"ref": "feature-y", "sha": SHA},
            },
        }
        run_github_workflow(
            project, workflow, "pull_request", pull_request, tmp_path, agent_token, builder, "202"
        )
        (branch,) = [d for d in sandbox.state.deployments() if d.is_branch]
        assert branch.branch["pullRequestNumber"] == "9"
        assert set(deployed(sandbox, branch)) == set(LIVE)
        assert {v.load_status for v in sandbox.state.locations(branch)} == {"LOADED"}

        closed = {
            **pull_request,
            "action": "closed",
            "pull_request": {**pull_request["pull_request"], "state": "closed"},
        }
        ran = run_github_workflow(
            project, workflow, "pull_request", closed, tmp_path, agent_token, builder, "203"
        )
        assert ran == ['dagster-cloud ci branch-deployment "$DAGSTER_PROJECT_DIR"']
        assert sandbox.state.deployment(name=branch.name).branch["pullRequestStatus"] == "CLOSED"


def test_the_dg_gitlab_job_deploys_the_default_branch(hybrid_dg_org, registry, tmp_path):
    sandbox = hybrid_dg_org
    project = migrated_workspace(tmp_path, sandbox, registry, {".gitlab-ci.yml": GITLAB_SERVERLESS})
    job = yaml.safe_load((project / ".gitlab/dagster-plus-hybrid.yml").read_text())[
        "dagster_plus_hybrid_deploy"
    ]
    tags = [line for line in job["script"] if line.startswith("docker build")]
    assert len({line.split(" -t ")[1].split(" ")[0] for line in tags}) == 3  # a tag per project
    builder = choose_builder("buildah", storage=tmp_path / "containers", insecure_registries=True)
    agent_token = sandbox.state.create_agent_token(
        "ci", sandbox.state.authenticate(sandbox.token("admin"))
    )[1]
    ci = {  # what GitLab gives a job on a push to the default branch
        "CI_COMMIT_SHA": SHA,
        "CI_COMMIT_SHORT_SHA": SHA[:8],
        "CI_PIPELINE_ID": "301",
        "CI_JOB_ID": "1",
        "CI_JOB_URL": "https://gitlab.example/acme/data-platform/-/jobs/1",
        "CI_PROJECT_NAME": "data-platform",
        "CI_PROJECT_URL": "https://gitlab.example/acme/data-platform",
        "CI_COMMIT_REF_NAME": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "push",
        "CI_PROJECT_DIR": str(project),
        "DEPLOYMENT_TYPE": job["rules"][0]["variables"]["DEPLOYMENT_TYPE"],
    }
    with fake_agent(sandbox, agent_token, label="hybrid agent"):
        ran = run_gitlab_job(project, job, ci, tmp_path, agent_token, builder)
    assert ran[0] == "dg plus deploy" and ran[-1] == "dg plus deploy"
    prod = sandbox.state.deployment("prod")
    tag = f"{SHA[:8]}-301-1"
    assert deployed(sandbox, prod) == {
        name: f"{registry}/acme/{name}:{tag}-{name}" for name in LIVE
    }
    assert {v.load_status for v in sandbox.state.locations(prod)} == {"LOADED"}
