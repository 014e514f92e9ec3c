"""End to end with real parts: the sandbox, a real Local agent (`dagster-cloud agent run` from
the generated install files) and a real `dagster-daemon` running the readiness sensor, which
launches the finish run on its own after the cutover."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import pytest
from conftest import client_for
from migration_env import MigrationEnv, write_project
from support.processes import background, wait_for

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def test_daemon_finishes_the_migration_on_its_own_then_rollback(
    start_sandbox, tmp_path, monkeypatch
):
    # The real agent heartbeats every 30 s: the window must be longer for it to stay RUNNING.
    sandbox = start_sandbox(timing={"heartbeat_window_seconds": 60})
    home = tmp_path / "home"
    env = MigrationEnv(sandbox, write_project(tmp_path / "repo"), home, "local", monkeypatch)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
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
        }
        loaded = {e.name: e for e in admin.workspace()}
        assert all(e.is_loaded for e in loaded.values())
        # The agent really loaded the code: the schedule comes from the repository's code.
        assert "daily_refresh" in {i.name for i in loaded["analytics"].instigators}
        assert len(env.instance.get_runs(dg.RunsFilter(job_name="finish_hybrid_migration"))) == 1

        assert env.run("rollback_to_serverless").success
        assert admin.current_deployment().agent_type == "SERVERLESS"
        assert admin.locations_as_document() == document_before
    assert agent.poll() is not None and daemon.poll() is not None
