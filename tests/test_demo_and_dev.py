"""End to end: `make demo`'s whole migration, then `dagster dev -w workspace.yaml` showing its runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests
from migration_env import location_env, run_demo
from support.leaks import assert_tokens_only_in_the_token_file
from support.processes import background
from support.servers import free_port

pytestmark = pytest.mark.slow

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

LOCATION_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name location { name } jobs { name } assetNodes { assetKey { path } } } } } }
"""
RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId jobName status } } } }"


def test_demo_prints_the_inventory_and_dagster_dev_shows_its_run(tmp_path, sandbox):
    home = tmp_path / "home"
    demo = run_demo(tmp_path)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    for expected in (
        "## Migration plan: Serverless to Hybrid (local)",
        "Downtime (no agent): ",
        # The first run, through the sandbox, by the real Local agent, and the run the demo
        # launched inside the no-agent window: two runs more after.
        "First runs: analytics export_orders_job succeeded on migration_pipeline prod agent",
        "  its output, written through the job's filesystem I/O manager: ",
        "Runs queued during the no-agent window: export_orders_job SUCCESS (launched by "
        "migration_pipeline prod agent",
        "Runs: 4000 before, 4002 after",
        "Locations LOADED on the Hybrid agent: analytics, ml_models, reporting",
        "Checks: deployment_settings_kept passed, every_location_loaded passed, "
        "first_runs_succeed passed, no_run_lost passed, schedules_and_sensors_kept passed",
        "Settings removed at cutover: none",
        "Branch deployments: in use; the agent's config serves them",
        "- converted the legacy form (locations keyed by name) to the list form",
        "Project files written: dagster_cloud.yaml",
        "full deployments: prod, staging; each one to migrate is a partition; this demo "
        "migrates prod",
        "Deployments: prod finished (downtime ",
    ):
        assert expected in out, expected
    # Progress and the report only: Dagster's event lines stay in the runs' logs.
    assert " - dagster - " not in out + demo.stderr, (out + demo.stderr)[:2000]
    # No token anywhere the demo wrote, but in the agent's 0600 token file.
    assert_tokens_only_in_the_token_file(out + demo.stderr, home, tmp_path / "work")

    port = free_port()
    env = location_env(sandbox, home)
    with background(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-p", str(port)],
        tmp_path / "dev.log",
        env,
        cwd=PROJECT_DIR,
    ) as dev:
        url = f"http://127.0.0.1:{port}/graphql"
        nodes = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not nodes:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            try:
                answer = requests.post(url, json={"query": LOCATION_QUERY}, timeout=5).json()
                nodes = answer["data"]["repositoriesOrError"]["nodes"]
            except (requests.RequestException, KeyError, TypeError, ValueError):
                time.sleep(1)
        assert nodes, "dagster dev did not serve the code location"
        (repository,) = nodes
        assert repository["location"]["name"] == "migration_pipeline"
        assert "inventory" in {job["name"] for job in repository["jobs"]}
        assert ["serverless_inventory"] in [a["assetKey"]["path"] for a in repository["assetNodes"]]

        runs = requests.post(url, json={"query": RUNS_QUERY}, timeout=10).json()
        results = runs["data"]["runsOrError"]["results"]
        expected = sorted(
            [
                ("list_deployments", "SUCCESS"),
                ("plan_migration", "SUCCESS"),
                ("apply_migration_files", "SUCCESS"),
                ("create_agent_token", "SUCCESS"),
                ("prepare_hybrid_agent", "SUCCESS"),
                ("cutover", "SUCCESS"),
                ("finish_hybrid_migration", "SUCCESS"),
            ]
        )
        assert sorted((r["jobName"], r["status"]) for r in results) == expected

        # The run history through dagster-graphql's DagsterGraphQLClient, as a script would.
        from migration_pipeline.cli import main as cli_main
        from migration_pipeline.lib.history import migration_runs

        runs = migration_runs("127.0.0.1", port)
        assert sorted((r.job_name, r.status) for r in runs) == expected
        assert {r.deployment for r in runs if r.job_name != "list_deployments"} == {"prod"}
        assert all(r.seconds is not None and r.seconds >= 0 for r in runs)
        assert runs[0].job_name == "finish_hybrid_migration"  # newest first
        assert cli_main(["history", "--port", str(port)]) == 0
