"""End to end with real parts, on the shared instance a platform team would run
(instance/dagster.yaml: PostgreSQL storage, Dagster's run queue with the cutover limit): the
sandbox, a real Local agent (`dagster-cloud agent run` from the generated install files), a real
`dagster-daemon` running the readiness sensor, which launches the finish run on its own after the
cutover, and a second process, a webserver on the same instance, that sees the same history and
through which the cutovers of three deployments are launched at once and run one after the
other."""

from __future__ import annotations

import copy
import os
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest
from conftest import client_for
from migration_env import MigrationEnv, write_project
from support.postgres import postgres_server
from support.processes import background, wait_for
from support.servers import free_port

from dagster_plus_sandbox.scenario import DEFAULT_SCENARIO
from migration_pipeline.lib.history import migration_runs

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SHARED_INSTANCE = TESTS.parent / "instance" / "dagster.yaml"


@pytest.fixture
def shared_home(tmp_path, monkeypatch):
    """DAGSTER_HOME with the shipped instance/dagster.yaml, on a throwaway PostgreSQL."""
    with postgres_server() as connection:
        for name, value in connection.items():
            monkeypatch.setenv(name, value)
        home = tmp_path / "home"
        home.mkdir()
        shutil.copy(SHARED_INSTANCE, home / "dagster.yaml")
        yield home


def test_daemon_finishes_the_migration_on_its_own_then_rollback(
    start_sandbox, tmp_path, monkeypatch, shared_home
):
    # The real agent heartbeats every 30 s: the window must be longer for it to stay RUNNING.
    # prod, and two more full deployments of the same repository (their own runs).
    prod = DEFAULT_SCENARIO["deployments"][0]
    others = [
        {**copy.deepcopy(prod), "name": name, "runs": {**prod["runs"], "count": 30, "seed": seed}}
        for name, seed in (("staging", 11), ("dev", 13))
    ]
    sandbox = start_sandbox(
        timing={"heartbeat_window_seconds": 60}, deployments=[copy.deepcopy(prod), *others]
    )
    home = shared_home
    env = MigrationEnv(sandbox, write_project(tmp_path / "repo"), home, "local", monkeypatch)
    assert type(env.instance.run_storage).__name__ == "PostgresRunStorage"
    admin = client_for(sandbox)
    document_before = admin.locations_as_document()

    prepared = env.prepare()
    install = prepared.output_for_node("hybrid_agent_install_files")
    command, label = install.command, install.agent_label
    process_env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}", DAGSTER_HOME=str(home))
    processes = ExitStack()
    agent = processes.enter_context(
        background(["bash", "-c", command], tmp_path / "agent.log", process_env)
    )
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_file:\n"
        f"      relative_path: {TESTS / 'daemon_location.py'}\n"
        f"      working_directory: {TESTS}\n"
        "      location_name: migration_pipeline\n"
    )
    daemon = processes.enter_context(
        background(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            tmp_path / "daemon.log",
            process_env,
        )
    )
    with processes:
        # Install the agent first: it waits while Serverless still serves.
        wait_for(
            lambda: [a for a in admin.agents() if a.label == label and a.is_running],
            30,
            "the Local agent to be RUNNING (through the sandbox's agent API)",
        )
        cutover = env.run("cutover")
        assert cutover.success

        def finished():
            runs = env.instance.get_runs(dg.RunsFilter(job_name="finish_hybrid_migration"))
            assert all(r.status != dg.DagsterRunStatus.FAILURE for r in runs), (
                tmp_path / "daemon.log"
            ).read_text()[-3000:]
            return [r for r in runs if r.status == dg.DagsterRunStatus.SUCCESS]

        (run,) = wait_for(finished, 180, "the daemon's finish run to succeed", interval=1)
        assert run.tags.get("dagster/sensor_name") == "hybrid_agent_ready_sensor"
        assert run.tags["dagster/run_key"] == f"finish:{cutover.run_id}"
        evaluations = [
            e.get_dagster_event().event_specific_data
            for e in env.instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        checks = {evaluation.check_name: evaluation.passed for evaluation in evaluations}
        assert checks == {
            "no_run_lost": True,
            "schedules_and_sensors_kept": True,
            "every_location_loaded": True,
            "deployment_settings_kept": True,
            "first_runs_succeed": False,  # none chosen here: a warning, the finish goes on
        }
        loaded = {e.name: e for e in admin.workspace()}
        assert all(e.is_loaded for e in loaded.values())
        # The agent really loaded the code: the schedule comes from the repository's code.
        assert "daily_refresh" in {i.name for i in loaded["analytics"].instigators}
        assert len(env.instance.get_runs(dg.RunsFilter(job_name="finish_hybrid_migration"))) == 1

        assert env.run("rollback_to_serverless").success
        assert admin.current_deployment().agent_type == "SERVERLESS"
        assert admin.locations_as_document() == document_before

        # A second process on the same instance: a webserver, read through its GraphQL API.
        port = free_port()
        processes.enter_context(
            background(
                [str(BIN / "dagster-webserver"), "-w", str(workspace), "-p", str(port)],
                tmp_path / "webserver.log",
                process_env,
            )
        )
        history = wait_for(lambda: _runs(port), 120, "the webserver to answer", interval=1)
        assert {"cutover", "finish_hybrid_migration", "rollback_to_serverless"} <= {
            r.job_name for r in history if r.status == "SUCCESS"
        }

        # The cutovers of three deployments, launched at once, go through the run queue one at
        # a time (prod, rolled back above, is Serverless again; the rollback revoked its agent
        # token, so prod is prepared again: a new token, new install files).
        from dagster_graphql import DagsterGraphQLClient

        for other in ("prod", "staging", "dev"):
            env.prepare(deployment=other)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        # Each cutover takes a few seconds (its preflight's first call is slow), so that two of
        # them would overlap if the queue let them.
        sandbox.faults.add(operation="agentTokensOrError", kind="latency", seconds=3, count=3)
        launched = {
            client.submit_job_execution(
                "cutover",
                repository_location_name="migration_pipeline",
                tags={"dagster/partition": deployment},
            ): deployment
            for deployment in ("prod", "staging", "dev")
        }

        def cutovers_ended():
            runs = {r.run_id: r for r in _runs(port) or [] if r.run_id in launched}
            done = [r for r in runs.values() if r.status in ("SUCCESS", "FAILURE")]
            return sorted(done, key=lambda r: r.start_time or 0) if len(done) == 3 else None

        ended = wait_for(cutovers_ended, 240, "the three queued cutovers to end", interval=2)
        assert [r.status for r in ended] == ["SUCCESS"] * 3, (tmp_path / "daemon.log").read_text()[
            -3000:
        ]
        for earlier, later in zip(ended, ended[1:], strict=False):
            assert earlier.end_time is not None and later.start_time is not None
            assert later.start_time >= earlier.end_time, "two cutovers ran at once"
        for deployment in ("prod", "staging", "dev"):
            assert admin.for_deployment(deployment).current_deployment().agent_type == "HYBRID"
        switches = [e for e in sandbox.state.events() if e["kind"] == "agent_type_switched"]
        assert [(e["deployment"], e["detail"]["to"]) for e in switches[:2]] == [
            ("prod", "HYBRID"),
            ("prod", "SERVERLESS"),
        ]
        # One switch each, in the order the queue ran them.
        assert [(e["deployment"], e["detail"]["to"]) for e in switches[2:]] == [
            (launched[r.run_id], "HYBRID") for r in ended
        ]
    assert agent.poll() is not None and daemon.poll() is not None


def _runs(port: int):
    try:
        return migration_runs("127.0.0.1", port, 50)
    except RuntimeError:
        return None
