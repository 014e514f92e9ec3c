"""What one tick of hybrid_agent_ready_sensor costs: Dagster+ requests per tick and time per
tick, against the embedded sandbox, before a cutover, while waiting, and when it fires.

    .venv/bin/python bench/sensor_tick.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import dagster as dg

from dagster_plus_sandbox import Sandbox
from migration_pipeline.definitions import defs

TICKS = 50


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch, Sandbox.start(os.path.join(scratch, "s.db")) as sandbox:
        os.environ.update(DAGSTER_CLOUD_URL=sandbox.url, DAGSTER_CLOUD_DEPLOYMENT="prod",
                          DAGSTER_CLOUD_API_TOKEN=sandbox.token("admin"))
        sensor = defs.get_sensor_def("hybrid_agent_ready_sensor")
        with dg.DagsterInstance.ephemeral() as instance:
            def measure(label: str) -> None:
                times, requests = [], []
                for _ in range(TICKS):
                    context = dg.build_sensor_context(
                        instance=instance, resources={"dagster_plus": defs.resources["dagster_plus"]})
                    before = len(sandbox.operations_seen)
                    start = time.perf_counter()
                    result = sensor.evaluate_tick(context)
                    times.append(time.perf_counter() - start)
                    requests.append(len(sandbox.operations_seen) - before)
                outcome = "fires" if result.run_requests else "skips"
                print(f"{label:<28} {statistics.mean(requests):.1f} requests/tick, "
                      f"{statistics.median(times) * 1000:.1f} ms/tick (median of {TICKS}), {outcome}")

            measure("before a cutover")
            label = "migration_pipeline prod agent (token 1)"
            instance.report_runless_asset_event(dg.AssetMaterialization(
                asset_key="hybrid_agent_install_files",
                metadata={"agent_label": label, "agents_before": []}))
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key="deactivate_serverless_agent"))
            sandbox.state.set_agent_type(sandbox.state.deployment("prod"), "HYBRID")
            measure("after it, no Hybrid agent")
            heartbeat(sandbox, label)
            measure("the migration's agent RUNNING")


def heartbeat(sandbox: Sandbox, label: str) -> None:
    """One heartbeat of an agent with `label`, as Dagster's agent sends it to the agent API."""
    from dagster._serdes import serialize_value
    from dagster_cloud.agent.queries import ADD_AGENT_HEARTBEATS_MUTATION
    from dagster_cloud.api.dagster_cloud_api import AgentHeartbeat
    from dagster_cloud_cli.core.graphql_client import (
        create_agent_graphql_client,
        create_graphql_requests_session,
    )
    from dagster_cloud_cli.core.headers.auth import DagsterCloudInstanceScope

    from migration_pipeline.plus import DagsterPlusClient

    token = DagsterPlusClient(sandbox.url, "prod", sandbox.token("admin")).create_agent_token("b")
    beat = AgentHeartbeat(timestamp=time.time(), agent_id="bench", agent_label=label,
                          agent_type="K8sUserCodeLauncher", metadata={})
    config = {"agent_token": token.token.get_secret_value(), "deployment": "prod"}
    with create_graphql_requests_session() as session:
        create_agent_graphql_client(session, f"{sandbox.agent_url}/graphql", config,
                                    scope=DagsterCloudInstanceScope.DEPLOYMENT).execute(
            ADD_AGENT_HEARTBEATS_MUTATION, variable_values={
                "serializedAgentHeartbeats": [{"deploymentName": "prod",
                                               "serializedAgentHeartbeat": serialize_value(beat)}],
                "serializedErrors": []}, idempotent_mutation=True)


if __name__ == "__main__":
    main()
