"""The generated Hybrid CI, executed: every `dagster-cloud` command of the GitHub workflow and of
the GitLab job runs, in order, with the real `dagster-cloud` CLI of the pinned release against
the sandbox, with the workflow's own environment (its `env:`, the step's `env:` and the
variables GitHub or GitLab give a job). Only the registry login and the build and push steps are
stood in for, by the project's own builder pushing to the local registry; `if:` conditions are
evaluated as GitHub would for the event.

Covered: a push to main (the locations deployed at the pushed images), a pull request (a branch
deployment that has them) and, on GitHub, the pull request closed (the branch deployment marked
closed).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import make_scenario
from migration_env import SCENARIO_PROJECT, write_project
from plan_corpus import WORKFLOW as SERVERLESS_WORKFLOW
from support.agent import fake_agent
from support.inventory import inventory_of

from migration_pipeline.ci.common import CloudCiCommands, DgCommands
from migration_pipeline.images.builders import choose_builder
from migration_pipeline.layouts.files import read_project
from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.targets import load_target_settings

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SERVERLESS_GITLAB = """\
deploy:
  script:
    - dagster-cloud serverless deploy-python-executable --location-name analytics
"""
SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hybrid_org(start_sandbox):
    """An organization right after its cutover: prod is HYBRID and uses branch deployments."""
    raw = make_scenario().__dict__
    deployments = [dict(d) for d in raw["deployments"]]
    deployments[0]["agent_type"] = "HYBRID"
    return start_sandbox(make_scenario(deployments=deployments))


def planned_project(
    tmp_path: Path, sandbox, registry: str, ci_files: dict[str, str], settings_text: str = ""
) -> Path:
    """The scenario's repository with a Serverless CI, planned for Kubernetes and applied, in
    a git repository as CI checks it out."""
    project = write_project(tmp_path / "data", {**SCENARIO_PROJECT, **ci_files})
    inventory = inventory_of(organization_url=sandbox.url, uses_branch_deployments=True)
    settings = load_target_settings(
        "kubernetes", "organization: acme\n" + settings_text, registry=f"{registry}/acme"
    )
    plan = make_plan(read_project(project), "kubernetes", settings, inventory)
    apply_plan(plan, project)
    git = ["git", "-C", str(project), "-c", "user.name=Dev", "-c", "user.email=dev@acme.test"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "Move to Hybrid"], check=True)
    return project


def run_dagster_cloud(command: str, env: dict[str, str], cwd: Path) -> str:
    """A `dagster-cloud` (or `dg`) command of the CI, run as the CI's shell runs it."""
    assert command.lstrip().startswith(("dagster-cloud ", "dg ")), command
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def base_env(tmp_path: Path) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "NO_PROXY", "no_proxy")
    }
    return {**keep, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def push_image(builder, context: Path, image: str) -> None:
    """The stand-in for a build and push step: the project's builder, the local registry."""
    builder.build(context, context / "Dockerfile", image)
    builder.push(image)


# -- GitHub Actions ----------------------------------------------------------------------------


def lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else value


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """The few GitHub expression forms the generated workflow uses: context lookups, string
    literals, ==, !=, &&, || and always()."""
    python = re.sub(
        r"\b(github|env|secrets|runner)(\.[A-Za-z_][\w-]*)+",
        lambda m: repr(lookup(context, m.group(0))),
        expression,
    )
    python = python.replace("&&", " and ").replace("||", " or ").replace("always()", "True")
    return eval(python, {"__builtins__": {}}, {})  # noqa: S307 - our own expressions


def interpolate(text: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", lambda m: str(evaluate(m.group(1), context)), text)


def run_github_workflow(
    project: Path,
    workflow: dict,
    event_name: str,
    event: dict,
    tmp_path: Path,
    token: str,
    builder,
    run_id: str,
) -> list[str]:
    """Run the workflow's job for one event; returns the `dagster-cloud` commands it ran."""
    event_path = tmp_path / f"event-{run_id}.json"
    event_path.write_text(json.dumps(event))
    runner_temp = tmp_path / f"runner-{run_id}"
    runner_temp.mkdir()
    summary = runner_temp / "summary.md"
    summary.touch()
    github = {
        "sha": SHA,
        "run_id": run_id,
        "run_attempt": "1",
        "event_name": event_name,
        "ref": event.get("ref", "refs/pull/7/merge"),
        "event": event,
        "repository": "acme/data",
        "workspace": str(project),
        "actor": "dev",
    }
    context: dict[str, Any] = {
        "github": github,
        "secrets": {"DAGSTER_CLOUD_API_TOKEN": token},
        "runner": {"temp": str(runner_temp)},
        "env": {},
    }
    for key, value in workflow["env"].items():
        context["env"][key] = interpolate(str(value), context)
    runner_env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION": "__run",
        "CI": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_SHA": SHA,
        "GITHUB_REPOSITORY": "acme/data",
        "GITHUB_RUN_ID": run_id,
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event_path),
        "GITHUB_WORKSPACE": str(project),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(runner_temp),
    }
    ran = []
    for step in workflow["jobs"]["dagster_plus_deploy"]["steps"]:
        if "if" in step and not evaluate(step["if"], context):
            continue
        uses = step.get("uses", "")
        if uses.startswith("docker/build-push-action"):
            push_image(
                builder,
                project / step["with"]["context"],
                interpolate(step["with"]["tags"], context),
            )
        elif "run" in step and step["run"].startswith(("dagster-cloud ", "dg ")):
            env = {
                **base_env(tmp_path),
                **runner_env,
                **context["env"],
                **{k: interpolate(str(v), context) for k, v in (step.get("env") or {}).items()},
            }
            run_dagster_cloud(interpolate(step["run"], context), env, project)
            ran.append(step["run"].split(" --")[0])
        elif "run" in step:  # installed: the venv's
            assert step["run"] in (CloudCiCommands.install, DgCommands.install), step["run"]
        # checkout, setup-python, the logins, setup-buildx: the runner's own, stood in for.
    return ran


def test_the_github_workflow_deploys_a_push_and_a_pull_request(hybrid_org, registry, tmp_path):
    sandbox = hybrid_org
    project = planned_project(
        tmp_path, sandbox, registry, {".github/workflows/deploy.yml": SERVERLESS_WORKFLOW}
    )
    workflow = yaml.safe_load((project / ".github/workflows/deploy.yml").read_text())
    assert workflow["env"]["DAGSTER_CLOUD_ORGANIZATION"] == "acme"
    builder = choose_builder("buildah", storage=tmp_path / "containers", insecure_registries=True)
    agent_token = sandbox.state.create_agent_token(
        "ci", sandbox.state.authenticate(sandbox.token("admin"))
    )[1]
    with fake_agent(sandbox, agent_token, branch_deployments=True, label="hybrid agent"):
        # A push to main: the full deployment gets the images the run pushed.
        ran = run_github_workflow(
            project,
            workflow,
            "push",
            {"ref": "refs/heads/main", "repository": {"full_name": "acme/data"}},
            tmp_path,
            agent_token,
            builder,
            "101",
        )
        assert ran == [
            "dagster-cloud ci init",
            "dagster-cloud ci set-build-output",
            "dagster-cloud ci set-build-output",
            "dagster-cloud ci deploy",
            "dagster-cloud ci status",
        ]
        tag = f"{SHA}-101-1"
        deployed = {
            loc["location_name"]: loc
            for loc in sandbox.state.location_documents(sandbox.state.deployment("prod"))
        }
        assert {name: loc["image"] for name, loc in deployed.items()} == {
            "analytics": f"{registry}/acme/analytics:{tag}-analytics",
            "ml_models": f"{registry}/acme/ml_models:{tag}-ml_models",
        }
        assert deployed["analytics"]["container_context"] == {"k8s": {"namespace": "dagster-cloud"}}
        for name, loc in deployed.items():
            repository, image_tag = loc["image"].rsplit(":", 1)
            path = repository.split("/", 1)[1]
            assert (
                requests.head(
                    f"http://{registry}/v2/{path}/manifests/{image_tag}",
                    timeout=10,
                    headers={
                        "Accept": "application/vnd.oci.image.manifest.v1+json,"
                        "application/vnd.docker.distribution.manifest.v2+json"
                    },
                ).status_code
                == 200
            ), name
        assert {
            v.name: v.load_status for v in sandbox.state.locations(sandbox.state.deployment("prod"))
        } == {"analytics": "LOADED", "ml_models": "LOADED"}

        # A pull request: `ci init` creates the branch deployment, which gets the images.
        pull_request = {
            "action": "opened",
            "number": 7,
            "repository": {"full_name": "acme/data"},
            "pull_request": {
                "number": 7,
                "state": "open",
                "merged": False,
                "html_url": "https://github.com/acme/data/pull/7",
                "head": {"ref": "feature-x", "sha": SHA},
            },
        }
        run_github_workflow(
            project, workflow, "pull_request", pull_request, tmp_path, agent_token, builder, "102"
        )
        (branch,) = [d for d in sandbox.state.deployments() if d.is_branch]
        assert branch.parent_id == sandbox.state.deployment("prod").id
        assert (
            branch.branch["branchName"] == "feature-x" and branch.branch["pullRequestNumber"] == "7"
        )
        images = {
            loc["location_name"]: loc["image"] for loc in sandbox.state.location_documents(branch)
        }
        assert images == {
            "analytics": f"{registry}/acme/analytics:{SHA}-102-1-analytics",
            "ml_models": f"{registry}/acme/ml_models:{SHA}-102-1-ml_models",
        }
        assert {v.load_status for v in sandbox.state.locations(branch)} == {"LOADED"}

        # Closing the pull request closes its branch deployment, and deploys nothing.
        closed = {
            **pull_request,
            "action": "closed",
            "pull_request": {**pull_request["pull_request"], "state": "closed"},
        }
        deploys = len(sandbox.state.events("location_deployed"))
        ran = run_github_workflow(
            project, workflow, "pull_request", closed, tmp_path, agent_token, builder, "103"
        )
        assert ran == ["dagster-cloud ci branch-deployment ."]  # with --mark-closed
        assert sandbox.state.deployment(name=branch.name).branch["pullRequestStatus"] == "CLOSED"
        assert len(sandbox.state.events("location_deployed")) == deploys


# -- GitLab CI ---------------------------------------------------------------------------------


def expand(text: str, variables: dict[str, str]) -> str:
    """GitLab's expansion of `$VAR` in a job's variables."""
    return re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), m.group(0)), text)


def run_gitlab_job(
    project: Path, job: dict, ci: dict[str, str], tmp_path: Path, token: str, builder
) -> list[str]:
    variables = {**ci, "DAGSTER_CLOUD_API_TOKEN": token}
    for key, value in job["variables"].items():
        variables[key] = expand(str(value), variables)
    env = {**base_env(tmp_path), "GITLAB_CI": "true", "CI": "true", **variables}
    ran = []
    pending_build: tuple[Path, str] | None = None
    for line in job["script"]:
        words = shlex.split(line.replace('"$IMAGE_TAG"', variables["IMAGE_TAG"]))
        if words[:2] == ["docker", "build"]:
            pending_build = (project / words[-1], words[words.index("-t") + 1])
        elif words[:2] == ["docker", "push"]:
            assert pending_build and pending_build[1] == words[2]
            push_image(builder, *pending_build)
        elif words[0] in ("dagster-cloud", "dg"):
            run_dagster_cloud(line, env, project)
            ran.append(" ".join(words[:3]))
        else:  # the registry login: the local registry needs none
            assert "docker login" in line, line
    for line in job["after_script"]:
        run_dagster_cloud(line.removesuffix(" || true"), env, project)
    return ran


def test_the_gitlab_job_deploys_the_default_branch_and_a_merge_request(
    hybrid_org, registry, tmp_path
):
    """Planned with `strategy: per_location`: the CI keeps deploying each location with the
    migration's agent queue, and the agent of that queue serves them."""
    sandbox = hybrid_org
    project = planned_project(
        tmp_path,
        sandbox,
        registry,
        {".gitlab-ci.yml": SERVERLESS_GITLAB},
        "strategy: per_location\n",
    )
    job = yaml.safe_load((project / ".gitlab/dagster-plus-hybrid.yml").read_text())[
        "dagster_plus_hybrid_deploy"
    ]
    assert job["variables"]["DAGSTER_CLOUD_ORGANIZATION"] == "acme"
    assert {"if": "$CI_PIPELINE_SOURCE == 'merge_request_event'"} in job["rules"]
    builder = choose_builder("buildah", storage=tmp_path / "containers", insecure_registries=True)
    agent_token = sandbox.state.create_agent_token(
        "ci", sandbox.state.authenticate(sandbox.token("admin"))
    )[1]
    ci = {
        "CI_COMMIT_SHA": SHA,
        "CI_COMMIT_SHORT_SHA": SHA[:8],
        "CI_PIPELINE_ID": "201",
        "CI_JOB_ID": "9",
        "CI_JOB_URL": "https://gitlab.example/acme/data/-/jobs/9",
        "CI_PROJECT_NAME": "data",
        "CI_PROJECT_URL": "https://gitlab.example/acme/data",
        "CI_COMMIT_REF_NAME": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_COMMIT_BRANCH": "main",
        "CI_PIPELINE_SOURCE": "push",
    }
    with fake_agent(
        sandbox,
        agent_token,
        branch_deployments=True,
        label="hybrid agent",
        queues=["hybrid-migration"],
    ):
        ran = run_gitlab_job(project, job, ci, tmp_path, agent_token, builder)
        assert ran == [
            "dagster-cloud ci init",
            "dagster-cloud ci set-build-output",
            "dagster-cloud ci set-build-output",
            "dagster-cloud ci deploy",
        ]
        images = {
            loc["location_name"]: loc["image"]
            for loc in sandbox.state.location_documents(sandbox.state.deployment("prod"))
        }
        tag = f"{SHA[:8]}-201-9"
        assert {
            loc["agent_queue"]
            for loc in sandbox.state.location_documents(sandbox.state.deployment("prod"))
        } == {"hybrid-migration"}
        assert {
            v.load_status for v in sandbox.state.locations(sandbox.state.deployment("prod"))
        } == {"LOADED"}
        assert images == {
            "analytics": f"{registry}/acme/analytics:{tag}-analytics",
            "ml_models": f"{registry}/acme/ml_models:{tag}-ml_models",
        }

        merge_request = {
            **ci,
            "CI_PIPELINE_ID": "202",
            "CI_JOB_ID": "10",
            "CI_COMMIT_REF_NAME": "feature-y",
            "CI_COMMIT_BRANCH": "feature-y",
            "CI_MERGE_REQUEST_IID": "3",
            "CI_PIPELINE_SOURCE": "merge_request_event",
        }
        run_gitlab_job(project, job, merge_request, tmp_path, agent_token, builder)
        (branch,) = [d for d in sandbox.state.deployments() if d.is_branch]
        assert branch.branch["branchName"] == "feature-y"
        assert {
            loc["location_name"]: loc["image"] for loc in sandbox.state.location_documents(branch)
        } == {
            "analytics": f"{registry}/acme/analytics:{SHA[:8]}-202-10-analytics",
            "ml_models": f"{registry}/acme/ml_models:{SHA[:8]}-202-10-ml_models",
        }
        assert {v.load_status for v in sandbox.state.locations(branch)} == {"LOADED"}
