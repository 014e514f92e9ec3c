"""`make demo STRATEGY=per_location` as a user runs it: the real Local agent, its dagster.yaml
serving only the migration's agent queue, started while prod is still Serverless; the cutover
moves the three locations to it one at a time (each LOADED through the queue while the
Serverless agent keeps serving the others), then switches; the sandbox's event log shows no
moment with no agent serving the deployment."""

from __future__ import annotations

import json

import pytest
import yaml
from migration_env import run_demo

pytestmark = pytest.mark.slow


def test_make_demo_per_location_moves_one_location_at_a_time_without_downtime(tmp_path):
    demo = run_demo(tmp_path, "--strategy", "per_location")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    for expected in (
        "- Strategy: per_location (the target settings ask)",
        "analytics: set agent_queue = 'hybrid-migration'",
        "Strategy: per_location",
        "analytics moved to queue 'hybrid-migration'",
        "ml_models moved to queue 'hybrid-migration'",
        "reporting moved to queue 'hybrid-migration'",
        "Downtime (no agent): 0.0s",
        "The sandbox's event log: no agent served the deployment for 0.0s",
        # The first run on the queue's agent; no window, so no run queued in it.
        "First runs: analytics export_orders_job succeeded on migration_pipeline prod agent",
        "Runs queued during the no-agent window: none",
        "Runs: 4000 before, 4001 after",
        "Locations LOADED on the Hybrid agent: analytics, ml_models, reporting",
        "Checks: deployment_settings_kept passed, every_location_loaded passed, "
        "first_runs_succeed passed, no_run_lost passed, schedules_and_sensors_kept passed",
    ):
        assert expected in out, expected
    work = tmp_path / "work"
    downtime = json.loads((work / "downtime.json").read_text())
    assert downtime["strategy"] == "per_location"
    assert downtime["downtime_seconds"] == 0.0
    assert downtime["event_log_deployment_unserved_seconds"] == 0.0
    unserved = downtime["event_log_location_unserved_seconds"]
    assert set(unserved) == {"analytics", "ml_models", "reporting"}
    # Each was unserved while its move lasted: the agent's workspace poll (5 s at most) and
    # its load, never the whole migration.
    assert all(0 < seconds < 30 for seconds in unserved.values()), unserved
    agent_config = yaml.safe_load((work / "repo/dagster_cloud_agent/prod/dagster.yaml").read_text())
    assert agent_config["agent_queues"] == {
        "include_default_queue": False,
        "additional_queues": ["hybrid-migration"],
    }
    cloud = yaml.safe_load((work / "repo/dagster_cloud.yaml").read_text())
    assert {loc["agent_queue"] for loc in cloud["locations"]} == {"hybrid-migration"}
