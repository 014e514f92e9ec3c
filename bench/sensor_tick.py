"""What one tick of hybrid_agent_ready_sensor costs: Dagster+ requests per tick and time per
tick, against the embedded sandbox, before a cutover, while waiting, and when it fires.

    .venv/bin/python bench/sensor_tick.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

from dagster_plus_sandbox import Sandbox
from migration_pipeline.plus import DagsterPlusClient

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the demo's and the tests' helpers
from migration_env import record_cutover, sensor_tick  # noqa: E402  (the tests' helpers)
from support.agent import heartbeat  # noqa: E402

TICKS = 50


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as scratch,
        Sandbox.start(os.path.join(scratch, "s.db")) as sandbox,
    ):
        os.environ.update(
            DAGSTER_CLOUD_URL=sandbox.url,
            DAGSTER_CLOUD_DEPLOYMENT="prod",
            DAGSTER_CLOUD_API_TOKEN=sandbox.token("admin"),
        )
        with dg.DagsterInstance.ephemeral() as instance:

            def measure(label: str) -> None:
                times, requests = [], []
                for _ in range(TICKS):
                    before = len(sandbox.operations_seen)
                    start = time.perf_counter()
                    result = sensor_tick(instance)
                    times.append(time.perf_counter() - start)
                    requests.append(len(sandbox.operations_seen) - before)
                outcome = "fires" if result.run_requests else "skips"
                print(
                    f"{label:<28} {statistics.mean(requests):.1f} requests/tick, "
                    f"{statistics.median(times) * 1000:.1f} ms/tick (median of {TICKS}), {outcome}"
                )

            measure("before a cutover")
            token = (
                DagsterPlusClient(sandbox.url, "prod", sandbox.token("admin"))
                .create_agent_token("bench agent")
                .token
            )
            label = "migration_pipeline prod agent (token 1)"
            record_cutover(instance, label, cutover_at=time.time())
            sandbox.state.set_agent_type(sandbox.state.existing_deployment("prod"), "HYBRID")
            measure("after it, no Hybrid agent")
            heartbeat(
                sandbox, token.get_secret_value(), "bench", "K8sUserCodeLauncher", label=label
            )
            measure("the migration's agent RUNNING")


if __name__ == "__main__":
    main()
