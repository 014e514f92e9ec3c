"""The organization's scale: full deployments of 50 code locations and 10,000 runs each, plus 20
branch deployments, against the sandbox. Prints the organization inventory's time at 2, 5 and
10 deployments (it reads each deployment: it should grow about linearly), the per-deployment
inventory, plan and verification at 10 deployments (they read one deployment: flat), and the
readiness sensor's cost per tick with 1 and with all 10 deployments mid-migration (switched,
waiting for their agents: the sensor asks each one's agents once a tick).

    .venv/bin/python bench/organization_scaling.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the tests' scenario and sensor helpers

LOCATIONS = 50
RUNS = 10_000
BRANCHES = 20


def organization(deployments: int):
    from conftest import make_scenario
    from test_scale import deployment_spec

    specs = [
        deployment_spec("prod" if d == 0 else f"team-{d:02d}", LOCATIONS, RUNS, seed=d)
        for d in range(deployments)
    ]
    for b in range(BRANCHES):
        specs.append(
            {
                "name": f"{b:040x}",
                "type": "BRANCH",
                "parent": "prod",
                "branch": {
                    "repoName": "acme/data",
                    "branchName": f"f{b}",
                    "pullRequestStatus": "OPEN",
                },
            }
        )
    return make_scenario(deployments=specs)


def best_of(function, times: int = 3):
    seconds, result = [], None
    for _ in range(times):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return min(seconds), result


def measure(scratch: Path, count: int) -> dict[str, float]:
    """The organization inventory at `count` deployments; at 10, one deployment's inventory,
    plan and verification, and the sensor's tick (seconds, and its requests)."""
    import os

    import dagster as dg
    from conftest import client_for
    from migration_env import record_cutover, sensor_tick
    from test_scale import project

    from dagster_plus_sandbox import Sandbox
    from migration_pipeline.finish.core import verify
    from migration_pipeline.inventory.core import take_inventory
    from migration_pipeline.inventory.organization import take_organization_inventory
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.snapshot import take_snapshot
    from migration_pipeline.targets import load_target_settings

    figures = {}
    with Sandbox.start(scratch / f"org-{count}.db", organization(count)) as sandbox:
        client = client_for(sandbox)
        figures["organization"], inventory = best_of(lambda: take_organization_inventory(client))
        assert len(inventory.deployments) == count
        assert inventory.branch_deployments == BRANCHES
        assert all(d.locations == LOCATIONS and d.runs == RUNS for d in inventory.deployments)
        if count < 10:
            return figures
        figures["inventory"], one = best_of(lambda: take_inventory(client))
        settings = load_target_settings("kubernetes", registry="ghcr.io/acme")
        figures["plan"], _ = best_of(
            lambda: make_plan(project(LOCATIONS), "kubernetes", settings, one)
        )
        snapshot = take_snapshot(client, one.deployment_id, "SERVERLESS")
        figures["verify"], _ = best_of(lambda: verify(client, snapshot))
        os.environ.update(
            DAGSTER_CLOUD_URL=sandbox.url,
            DAGSTER_CLOUD_DEPLOYMENT="prod",
            DAGSTER_CLOUD_API_TOKEN=sandbox.token("admin"),
        )
        names = [d.name for d in inventory.deployments]
        for waiting in (1, len(names)):
            with dg.DagsterInstance.ephemeral() as instance:
                for name in names[:waiting]:
                    record_cutover(
                        instance, f"migration_pipeline {name} agent (token 1)", 0.0, name
                    )
                before = len(sandbox.operations_seen)
                figures[f"tick_{waiting}"], tick = best_of(lambda: sensor_tick(instance))
                assert not tick.run_requests  # no agent runs: every deployment still waits
                figures[f"tick_{waiting}_requests"] = (len(sandbox.operations_seen) - before) / 3
    return figures


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        figures = {count: measure(Path(scratch), count) for count in (2, 5, 10)}
    print(
        f"organization: N full deployments x {LOCATIONS} locations x {RUNS:,} runs, "
        f"{BRANCHES} branch deployments"
    )
    for count, measured in figures.items():
        seconds = measured["organization"]
        print(
            f"organization inventory, {count:>2} deployments: {seconds:.3f}s "
            f"({seconds / count * 1000:.0f} ms per deployment)"
        )
    ratio = figures[10]["organization"] / figures[2]["organization"]
    print(f"ratio 10 / 2 deployments: {ratio:.1f}x (linear: 5.0x)")
    for phase in ("inventory", "plan", "verify"):
        print(f"one deployment's {phase} at 10 deployments: {figures[10][phase]:.3f}s")
    one, ten = figures[10]["tick_1"], figures[10]["tick_10"]
    for waiting in (1, 10):
        print(
            f"sensor tick, {waiting:>2} of 10 deployments waiting for their agent: "
            f"{figures[10][f'tick_{waiting}_requests']:.0f} requests, "
            f"{figures[10][f'tick_{waiting}'] * 1000:.1f} ms"
        )
    print(f"ratio 10 / 1 waiting: {ten / one:.1f}x (linear: 10.0x)")


if __name__ == "__main__":
    main()
