"""A real `dagster-cloud agent run` (Local agent, ProcessUserCodeLauncher) against the sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import client_for

pytestmark = pytest.mark.slow

# The real agent heartbeats every 30 s, so the window must be longer for it to stay RUNNING.
WINDOW = 35.0


def start_agent(home: Path, url: str, deployment: str, agent_token: str) -> subprocess.Popen:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "instance_class": {"module": "dagster_cloud.instance", "class": "DagsterCloudAgentInstance"},
        "dagster_cloud_api": {"url": url, "deployment": deployment,
                              "agent_token": {"env": "DAGSTER_CLOUD_AGENT_TOKEN"},
                              "agent_label": "sandbox test agent"},
        "user_code_launcher": {"module": "dagster_cloud.workspace.user_code_launcher",
                               "class": "ProcessUserCodeLauncher"},
    }))
    # The token goes in the environment, not on the command line where `ps` would show it.
    env = dict(os.environ, DAGSTER_HOME=str(home), DAGSTER_CLOUD_AGENT_TOKEN=agent_token)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-cloud"), "agent", "run", str(home)],
        env=env, stdout=open(home / "agent.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)


def test_real_local_agent_heartbeats_and_goes_not_running_when_it_stops(start_sandbox, tmp_path):
    sandbox = start_sandbox(timing={"heartbeat_window_seconds": WINDOW})
    admin = client_for(sandbox)
    agent_token = admin.create_agent_token("test local agent").token.get_secret_value()
    agent = start_agent(tmp_path / "agent", sandbox.url, sandbox.deployment, agent_token)
    try:
        deadline = time.monotonic() + 30
        running = []
        while time.monotonic() < deadline and not running:
            time.sleep(0.5)
            assert agent.poll() is None, (tmp_path / "agent" / "agent.log").read_text()[-3000:]
            running = [a for a in admin.agents() if not a.is_serverless and a.is_running]
        assert running, "the agent was not RUNNING within 30 s"
        assert running[0].label == "sandbox test agent"
        assert running[0].metadata.get("version") == "1.13.27"
    finally:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)

    stopped_at = time.monotonic()
    last_beat = running[0].last_heartbeat_time
    # Still RUNNING right after it died: the window has not passed yet.
    assert [a.status for a in admin.agents() if not a.is_serverless] == ["RUNNING"]
    deadline = stopped_at + WINDOW + 10
    statuses = []
    while time.monotonic() < deadline:
        statuses = [a.status for a in admin.agents() if not a.is_serverless]
        if statuses == ["NOT_RUNNING"]:
            break
        time.sleep(1)
    assert statuses == ["NOT_RUNNING"]
    assert time.time() - last_beat >= WINDOW
    log = (tmp_path / "agent" / "agent.log").read_text()
    assert agent_token not in log
