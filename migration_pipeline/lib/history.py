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
    host: str = "127.0.0.1", port: int = 3000, limit: int = 200, deadline: float = 20.0
) -> list[MigrationRun]:
    """The migration jobs' runs, newest first, from the webserver's GraphQL API: one POST with a
    deadline for the whole answer and a size bound (`lib.http`), so a silent or trickling
    webserver is an error after `deadline` seconds, never a wait. `RuntimeError` says what."""
    import requests

    from migration_pipeline.lib.http import bounded_request, bounded_session

    url = f"http://{host}:{port}/graphql"
    session = bounded_session()
    try:
        response = bounded_request(
            session,
            "POST",
            url,
            deadline=deadline,
            json={"query": RUNS_QUERY, "variables": {"limit": limit}},
        )
        data = response.json().get("data") if response.ok else None
    except requests.Timeout:
        raise RuntimeError(
            f"the Dagster webserver at {host}:{port} gave no whole answer within {deadline:g}s: "
            "is it a Dagster webserver, and is it up (`dagster dev`)?"
        ) from None
    except (requests.RequestException, ValueError, AttributeError) as error:
        raise RuntimeError(
            f"cannot read runs from the Dagster webserver at {host}:{port}: "
            f"{type(error).__name__}: {error}"
        ) from None
    finally:
        session.close()
    result = (data or {}).get("runsOrError") if isinstance(data, dict) else None
    if not isinstance(result, dict):
        raise RuntimeError(
            f"{url} did not answer as a Dagster webserver does (HTTP {response.status_code})"
        )
    if result.get("__typename") != "Runs":
        raise RuntimeError(f"the webserver could not list runs: {result.get('message')}")
    return [run for run in map(_run_from, result.get("results") or []) if run is not None]


def _run_from(raw: object) -> MigrationRun | None:
    """A run of a migration job, or None for another job's; a run not started yet has no
    `startTime` (queued), one not ended no `endTime`: both are None then."""
    if not isinstance(raw, dict) or raw.get("jobName") not in MIGRATION_JOBS:
        return None
    tags = raw.get("tags")
    tags = tags if isinstance(tags, list) else []
    return MigrationRun(
        str(raw.get("runId", "?")),
        str(raw["jobName"]),
        str(raw.get("status", "?")),
        _seconds(raw.get("startTime")),
        _seconds(raw.get("endTime")),
        next(
            (
                str(t.get("value"))
                for t in tags
                if isinstance(t, dict) and t.get("key") == "dagster/partition"
            ),
            "",
        ),
    )


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
