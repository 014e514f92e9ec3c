"""The first-run check: one run per chosen location, launched through Dagster+ after every
location is LOADED, and waited for. LOADED proves the code imports; a run proves it runs on the
user's infrastructure (env vars and secrets, the I/O manager's storage, the run launcher, the
image's entry point). Pure over the client: time and sleep are injected."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

FIRST_RUN_TAG = "migration_pipeline/first_run"
AGENT_LABEL_TAG = "dagster/agent_label"
AGENT_ID_TAG = "dagster/agent_id"


@dataclass(frozen=True)
class FirstRun:
    """What one first run did. `status` TIMED_OUT: still unfinished at the timeout;
    NOT_LAUNCHED: Dagster+ refused the launch (`error` says why; no run id)."""

    location: str
    job: str
    run_id: str
    status: str
    agent: str | None  # its label, else its id, as the agent tagged the run
    seconds: float | None  # start to end, as Dagster+ recorded them
    failed_step: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCESS"

    def summary(self) -> str:
        where = f" on {self.agent}" if self.agent else ""
        took = f" in {self.seconds:.1f} s" if self.seconds is not None else ""
        if self.succeeded:
            return f"{self.location} {self.job} succeeded{where}{took}"
        if self.status == "NOT_LAUNCHED":
            return f"{self.location} {self.job} could not be launched: {self.error}"
        look = f" (in Dagster+: Runs, run {self.run_id})"
        if self.status == "TIMED_OUT":
            return f"{self.location} {self.job} did not finish in time{look}"
        step = f" in step {self.failed_step}" if self.failed_step else ""
        return (
            f"{self.location} {self.job} {self.status.lower()}{step}{where}: "
            f"{self.error or 'no error recorded'}{look}"
        )


def wait_for_runs(
    client: Any,
    run_ids: list[str],
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[list[str]], None] | None = None,
) -> dict[str, Any]:
    """Each run as Dagster+ has it once finished, or as last seen at the timeout (None: not
    found)."""
    deadline = clock() + timeout_seconds
    seen: dict[str, Any] = {}
    while True:
        for run_id in run_ids:
            if run_id not in seen or not seen[run_id] or not seen[run_id].finished:
                seen[run_id] = client.run(run_id)
        waiting = [r for r in run_ids if not (seen[r] is not None and seen[r].finished)]
        if not waiting or clock() >= deadline:
            return seen
        if progress is not None:
            progress(waiting)
        sleep(poll_seconds)


def agent_of(run: Any) -> str | None:
    """The agent that ran it, as the agent tagged the run: its label, else its id."""
    return run.tags.get(AGENT_LABEL_TAG) or run.tags.get(AGENT_ID_TAG)


def run_first_runs(
    client: Any,
    chosen: Mapping[str, tuple[str, dict[str, Any]]],
    deployment: str,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[list[str]], None] | None = None,
) -> list[FirstRun]:
    """Launch every chosen (location -> (job, run config)) run at once, then wait until each
    has finished or the timeout passed. A launch Dagster+ refuses (no such job, say) fails that
    location's first run only."""
    from migration_pipeline.plus.errors import DagsterPlusError

    launched: dict[str, str] = {}
    refused: dict[str, str] = {}
    for location, (job, run_config) in chosen.items():
        try:
            launched[location] = client.launch_run(
                location, job, run_config, tags={FIRST_RUN_TAG: deployment}
            )
        except DagsterPlusError as refusal:
            refused[location] = str(refusal)
    location_of = {run_id: location for location, run_id in launched.items()}
    seen = wait_for_runs(
        client,
        list(launched.values()),
        timeout_seconds,
        poll_seconds,
        clock,
        sleep,
        (lambda waiting: progress([location_of[r] for r in waiting])) if progress else None,
    )
    results = [
        FirstRun(location, chosen[location][0], "", "NOT_LAUNCHED", None, None, None, why)
        for location, why in refused.items()
    ]
    for location, run_id in launched.items():
        job = chosen[location][0]
        run = seen.get(run_id)
        if run is None or not run.finished:
            results.append(FirstRun(location, job, run_id, "TIMED_OUT", None, None))
            continue
        seconds = (
            run.end_time - run.start_time
            if run.start_time is not None and run.end_time is not None
            else None
        )
        step, error = (None, None)
        if run.status != "SUCCESS":
            step, error = client.run_failure(run_id)
        results.append(
            FirstRun(location, job, run_id, run.status, agent_of(run), seconds, step, error)
        )
    order = list(chosen)
    return sorted(results, key=lambda r: order.index(r.location))


def first_run_outcome(runs: list[FirstRun], chosen_any: bool) -> tuple[bool, dict[str, Any], str]:
    """(passed, metadata, one line for the report) of the first_runs_succeed check. With no
    run chosen nothing is proven: the check does not pass (the finish records it as a warning)."""
    if not chosen_any:
        return (
            False,
            {"runs": {}},
            "none chosen: LOADED proves the code imports, not that a run works on the new "
            "agent (env vars, secrets, I/O storage, the run launcher); set first_run in the "
            "target settings to prove it",
        )
    failed = [run for run in runs if not run.succeeded]
    metadata = {
        "runs": {
            run.location: {
                "job": run.job,
                "run_id": run.run_id,
                "status": run.status,
                "agent": run.agent,
                "seconds": run.seconds,
                "failed_step": run.failed_step,
                "error": run.error,
            }
            for run in runs
        }
    }
    return not failed, metadata, "; ".join(run.summary() for run in runs)


@dataclass(frozen=True)
class WindowRun:
    """A run created while no agent served (between the switch and the window's end): queued
    by Dagster+, then launched by the Hybrid agent. `status` as last seen."""

    run_id: str
    job: str
    status: str
    agent: str | None

    def summary(self) -> str:
        where = f" by {self.agent}" if self.agent else ""
        return f"{self.job} {self.status}{where} (run {self.run_id})"


def runs_queued_in_window(
    client: Any,
    window_start: float,
    window_end: float,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[WindowRun]:
    """The runs created inside the no-agent window, each waited for until it finished (or the
    timeout): which agent launched it and how it ended."""
    created = client.runs(1000, created_between=(window_start, window_end))
    ids = [run.run_id for run in created]
    seen = wait_for_runs(client, ids, timeout_seconds, poll_seconds, clock, sleep)
    out = []
    for run in created:
        now = seen.get(run.run_id)
        out.append(
            WindowRun(
                run.run_id,
                run.job_name,
                now.status if now is not None else "NOT_FOUND",
                agent_of(now) if now is not None else None,
            )
        )
    return out
