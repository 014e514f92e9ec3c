"""Past migration runs and their outcome, from a Dagster webserver, for users who inspect
history from scripts: `migration-pipeline history [--host 127.0.0.1] [--port 3000]`."""

from __future__ import annotations

import time
from dataclasses import dataclass

MIGRATION_JOBS = (
    "list_deployments",
    "inventory",
    "plan_migration",
    "apply_migration_files",
    "create_agent_token",
    "prepare_hybrid_agent",
    "cutover",
    "finish_hybrid_migration",
    "rollback_to_serverless",
)

RUNS_QUERY = """
query MigrationRuns($limit: Int) {
  runsOrError(limit: $limit) {
    __typename
    ... on Runs { results { runId jobName status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""


@dataclass(frozen=True)
class MigrationRun:
    run_id: str
    job_name: str
    status: str
    start_time: float | None
    end_time: float | None
    deployment: str = ""  # the run's partition: the deployment it migrated ("" for the org)

    @property
    def seconds(self) -> float | None:
        return None if not (self.start_time and self.end_time) else self.end_time - self.start_time


def migration_runs(
    host: str = "127.0.0.1", port: int = 3000, limit: int = 200
) -> list[MigrationRun]:
    """The migration jobs' runs, newest first, through dagster-graphql's DagsterGraphQLClient."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    client = DagsterGraphQLClient(host, port_number=port)
    # The client has no public "list runs" call; its `_execute` runs any document with the
    # client's transport and error handling.
    try:
        data = client._execute(RUNS_QUERY, {"limit": limit})  # noqa: SLF001
    except DagsterGraphQLClientError as error:
        raise RuntimeError(
            f"cannot read runs from the Dagster webserver at {host}:{port}: {error}"
        ) from None
    result = data["runsOrError"]
    if result["__typename"] != "Runs":
        raise RuntimeError(f"the webserver could not list runs: {result.get('message')}")
    return [
        MigrationRun(
            r["runId"],
            r["jobName"],
            r["status"],
            r["startTime"],
            r["endTime"],
            next((t["value"] for t in r.get("tags") or [] if t["key"] == "dagster/partition"), ""),
        )
        for r in result["results"]
        if r["jobName"] in MIGRATION_JOBS
    ]


def render(runs: list[MigrationRun]) -> str:
    if not runs:
        return "No migration runs yet."
    lines = [
        f"{'started (UTC)':<20} {'deployment':<12} {'job':<24} {'status':<10} {'seconds':>8}  "
        "run id"
    ]
    for run in runs:
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(run.start_time))
            if run.start_time
            else "-"
        )
        seconds = f"{run.seconds:.1f}" if run.seconds is not None else "-"
        lines.append(
            f"{started:<20} {run.deployment or '-':<12} {run.job_name:<24} {run.status:<10} "
            f"{seconds:>8}  {run.run_id}"
        )
    return "\n".join(lines)
