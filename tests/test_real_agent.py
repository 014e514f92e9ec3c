"""A real `dagster-cloud agent run` (Local agent, ProcessUserCodeLauncher) against the sandbox,
started from the install files and command the migration generates for a Local agent."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from conftest import client_for
from support.processes import background, wait_for

from migration_pipeline.agent.token import store_agent_token
from migration_pipeline.targets import get_target, load_target_settings
from migration_pipeline.targets.agent import AgentSetup

pytestmark = pytest.mark.slow

# The real agent heartbeats every 30 s, so the window must be longer for it to stay RUNNING.
WINDOW = 35.0
BIN = Path(sys.executable).parent


def test_real_local_agent_heartbeats_and_goes_not_running_when_it_stops(start_sandbox, tmp_path):
    sandbox = start_sandbox(timing={"heartbeat_window_seconds": WINDOW})
    local_target = get_target("local")
    admin = client_for(sandbox)
    token = admin.create_agent_token("test local agent").token
    agent_dir = tmp_path / "repo" / "dagster_cloud_agent" / "prod"
    store_agent_token(local_target.token_store, token, agent_dir, "prod")
    # The agent reaches the sandbox's agent API, a host of its own as Dagster+'s is.
    setup = AgentSetup(
        organization="acme",
        deployment="prod",
        agent_label="sandbox test agent",
        settings=load_target_settings("local"),
        token_reference="env file",
        agent_api_url=sandbox.agent_url,
    )
    for name, text in local_target.agent_files(setup).items():
        (agent_dir / name).write_text(text)
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    with background(
        ["bash", str(agent_dir / "run-agent.sh")], tmp_path / "agent.log", env
    ) as agent:
        running = wait_for(
            lambda: [a for a in admin.agents() if a.label == "sandbox test agent" and a.is_running],
            30,
            "the agent to be RUNNING",
        )
        assert agent.poll() is None
        assert running[0].label == "sandbox test agent"
        assert running[0].metadata.get("version") == "1.13.27"
    assert agent.poll() is not None  # the agent process was ended

    last_beat = running[0].last_heartbeat_time
    # Right after it stopped the window has not passed yet: still RUNNING.
    mine = lambda: [a.status for a in admin.agents() if a.label == "sandbox test agent"]  # noqa: E731
    assert mine() == ["RUNNING"]
    wait_for(
        lambda: mine() == ["NOT_RUNNING"], WINDOW + 10, "the agent to be NOT_RUNNING", interval=1
    )
    assert time.time() - last_beat >= WINDOW
    assert token.get_secret_value() not in (tmp_path / "agent.log").read_text()


def test_real_local_agent_serves_exactly_its_queues_locations(start_sandbox, tmp_path):
    """The real agent with `agent_queues` (the migration's per_location config) loads the
    location routed to its queue while the deployment is Serverless, keeps it across the switch,
    and never loads a default-queue location (the agent checks its workspace every 5 s)."""
    from migration_env import write_project

    sandbox = start_sandbox(timing={"heartbeat_window_seconds": WINDOW})
    admin = client_for(sandbox)
    repo = write_project(tmp_path / "repo")
    token = admin.create_agent_token("queue agent").token
    agent_dir = repo / "dagster_cloud_agent" / "prod"
    local_target = get_target("local")
    store_agent_token(local_target.token_store, token, agent_dir, "prod")
    setup = AgentSetup(
        organization="acme",
        deployment="prod",
        agent_label="queue agent",
        settings=load_target_settings("local", "strategy: per_location\nagent_queue: q\n"),
        token_reference="env file",
        agent_api_url=sandbox.agent_url,
    )
    for name, text in local_target.agent_files(setup).items():
        (agent_dir / name).write_text(text)
    document = {loc["location_name"]: loc for loc in admin.locations_as_document()["locations"]}
    admin.deploy_locations({"locations": [{**document["analytics"], "agent_queue": "q"}]})
    status = lambda: {e.name: e.load_status for e in admin.workspace()}  # noqa: E731
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    with background(["bash", str(agent_dir / "run-agent.sh")], tmp_path / "agent.log", env):
        wait_for(
            lambda: status() == {"analytics": "LOADED", "ml_models": "LOADED"},
            60,
            "analytics LOADED by the queue's agent, ml_models by the Serverless agent",
        )
        (agent,) = [a for a in admin.agents() if a.label == "queue agent"]
        assert agent.is_running
        admin.update_deployment_agent_type("HYBRID")
        time.sleep(8)  # more than the agent's 5 s workspace check
        assert status() == {"analytics": "LOADED", "ml_models": "LOADING"}
    reported = [e["detail"]["location"] for e in sandbox.state.events("location_reported")]
    assert "analytics" in reported and "ml_models" not in reported  # never given, never loaded
    assert token.get_secret_value() not in (tmp_path / "agent.log").read_text()
