"""Runs through the real agent: a run launched through the sandbox's user API is queued, handed
to the real `dagster-cloud agent` (Local: a process) serving its location, executed by a real
run worker that reports through the agent API's storage documents, and read back through the
user API."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import requests
from conftest import client_for
from migration_env import SCENARIO_PROJECT
from support.processes import background, wait_for

from migration_pipeline.agent.token import store_agent_token
from migration_pipeline.targets import get_target, load_target_settings
from migration_pipeline.targets.agent import AgentSetup

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
# The sandbox's default repository, its analytics location with two jobs more: one that logs an
# env var, one that raises.
PROJECT = {
    **SCENARIO_PROJECT,
    "analytics/analytics/__init__.py": (
        "import os\n\nimport dagster as dg\n\n\n"
        "@dg.asset\ndef daily_table():\n    return 1\n\n\n"
        "@dg.op\ndef greet(context):\n"
        "    context.log.info('hello ' + os.environ.get('GREETING', 'nobody'))\n\n\n"
        "@dg.op\ndef explode():\n    raise ValueError('the table is not there')\n\n\n"
        "@dg.job\ndef hello():\n    greet()\n\n\n"
        "@dg.job\ndef broken():\n    explode()\n\n\n"
        "daily_refresh_job = dg.define_asset_job('daily_refresh_job', selection=[daily_table])\n"
        "defs = dg.Definitions(assets=[daily_table], jobs=[daily_refresh_job, hello, broken],\n"
        "    schedules=[dg.ScheduleDefinition(name='daily_refresh', job=daily_refresh_job,\n"
        "                                     cron_schedule='0 6 * * *')])\n"
    ),
}

LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status startTime endTime tags { key value } }
  }
}
"""
LOGS = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on MessageEvent { message stepKey eventType }
        ... on ExecutionStepFailureEvent { error { message className cause { message } } }
      }
    }
  }
}
"""


def graphql(sandbox, query: str, variables: dict) -> dict:
    answer = requests.post(
        f"{sandbox.url}/prod/graphql",
        json={"query": query, "variables": variables},
        headers={"Dagster-Cloud-Api-Token": sandbox.token("admin")},
        timeout=30,
    ).json()
    assert "errors" not in answer, answer
    return answer["data"]


def launch(sandbox, job: str) -> str:
    result = graphql(
        sandbox,
        LAUNCH,
        {
            "executionParams": {
                "selector": {
                    "jobName": job,
                    "repositoryName": "__repository__",
                    "repositoryLocationName": "analytics",
                }
            }
        },
    )["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def write_project_files(root: Path) -> Path:
    from migration_env import write_project

    return write_project(root, PROJECT)


def env_for_agent() -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")


def loaded(admin) -> bool:
    return {e.name: e.load_status for e in admin.workspace()}.get("analytics") == "LOADED"


def env() -> dict[str, str]:
    # GREETING reaches the run from the settings' env_vars, through the generated code.env.
    return dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")


def test_real_local_agent_runs_a_launched_run_and_its_events_read_back(start_sandbox, tmp_path):
    from migration_env import write_project

    sandbox = start_sandbox(timing={"heartbeat_window_seconds": 35.0})
    admin = client_for(sandbox)
    repo = write_project(tmp_path / "repo", PROJECT)
    token = admin.create_agent_token("run agent").token
    agent_dir = repo / "dagster_cloud_agent" / "prod"
    local_target = get_target("local")
    store_agent_token(local_target.token_store, token, agent_dir, "prod")
    setup = AgentSetup(
        organization="acme",
        deployment="prod",
        agent_label="run agent",
        settings=load_target_settings("local", "env_vars: ['GREETING=from the settings']\n"),
        token_reference="env file",
        agent_api_url=sandbox.agent_url,
    )
    for name, text in local_target.agent_files(setup).items():
        (agent_dir / name).write_text(text)
    document = {
        "locations": [
            {
                "location_name": "analytics",
                "code_source": {"package_name": "analytics"},
                "working_directory": str(repo / "analytics"),
            }
        ]
    }
    admin.update_deployment_agent_type("HYBRID")
    admin.reconcile_locations(document)
    # No agent serves the deployment yet: a run launched now waits, QUEUED, as in Dagster+.
    with background(["bash", str(agent_dir / "run-agent.sh")], tmp_path / "first.log", env()):
        wait_for(lambda: loaded(admin), 90, "analytics LOADED by the agent")
    run_id = launch(sandbox, "hello")
    status = lambda: graphql(sandbox, RUN, {"runId": run_id})["runOrError"]["status"]  # noqa: E731
    time.sleep(3)
    assert status() == "QUEUED"
    with background(["bash", str(agent_dir / "run-agent.sh")], tmp_path / "agent.log", env()):
        wait_for(lambda: status() in ("SUCCESS", "FAILURE"), 120, "the run to finish", interval=1)
        run = graphql(sandbox, RUN, {"runId": run_id})["runOrError"]
        events = graphql(sandbox, LOGS, {"runId": run_id})["logsForRun"]["events"]
        assert run["status"] == "SUCCESS", events
        assert any("hello from the settings" in e.get("message", "") for e in events), events
        tags = {t["key"]: t["value"] for t in run["tags"]}
        assert tags["dagster/agent_label"] == "run agent"
        assert run["startTime"] <= run["endTime"]

        failing = launch(sandbox, "broken")
        failed = lambda: graphql(sandbox, RUN, {"runId": failing})["runOrError"]["status"]  # noqa: E731
        wait_for(lambda: failed() in ("SUCCESS", "FAILURE"), 120, "the run to fail", interval=1)
        assert failed() == "FAILURE"
        events = graphql(sandbox, LOGS, {"runId": failing})["logsForRun"]["events"]
        (step_failure,) = [e for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
        assert step_failure["stepKey"] == "explode"
        assert "the table is not there" in step_failure["error"]["cause"]["message"]
    log = (tmp_path / "agent.log").read_text()
    assert "/gen_logs_url" not in log  # the steps' captured logs were uploaded, not refused
    assert token.get_secret_value() not in log


def test_a_first_run_that_raises_fails_the_check_with_its_own_error(
    start_sandbox, tmp_path, monkeypatch
):
    """The whole migration to the real Local agent with `first_run: {analytics: broken}` and
    first_run_blocking: the finish launches the run through Dagster+, the agent runs it, and the
    first_runs_succeed check fails with the run's own error and step; the finish run fails."""
    from migration_env import MigrationEnv

    sandbox = start_sandbox(timing={"heartbeat_window_seconds": 60.0})
    repo = tmp_path / "repo"
    env = MigrationEnv(sandbox, write_project_files(repo), tmp_path / "home", "local", monkeypatch)
    env.settings_text = (
        "first_run: {analytics: broken}\nfirst_run_blocking: true\n"
        "env_vars: ['GREETING=from the settings']\n"
    )
    admin = client_for(sandbox)
    install = env.prepare().output_for_node("hybrid_agent_install_files")
    with background(["bash", "-c", install.command], tmp_path / "agent.log", env_for_agent()):
        wait_for(
            lambda: [a for a in admin.agents() if a.label == install.agent_label and a.is_running],
            60,
            "the Local agent to be RUNNING",
        )
        assert env.run("cutover").success
        finish = env.run(
            "finish_hybrid_migration", run_config=env.finish_config(120, 0.5), raise_on_error=False
        )
    assert not finish.success  # blocking: the migration is not called finished
    (check,) = [
        e for e in finish.get_asset_check_evaluations() if e.check_name == "first_runs_succeed"
    ]
    assert not check.passed
    run = check.metadata["runs"].value["analytics"]
    assert run["status"] == "FAILURE" and run["failed_step"] == "explode"
    assert "the table is not there" in run["error"]
    assert run["agent"] == install.agent_label
    assert "analytics broken failure in step explode" in check.metadata["summary"].value
    failure = finish.output_for_node("prove_first_runs")
    assert failure["failed_checks"] == ["first_runs_succeed"]
