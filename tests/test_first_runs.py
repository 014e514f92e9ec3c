"""The first-run check's core over a client that answers as Dagster+ would, on an injected clock:
runs launched at once, waited for until finished or the timeout, each failure read from its
events; the runs created inside the no-agent window reported with their agent and outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

from migration_pipeline.finish.first_runs import (
    FIRST_RUN_TAG,
    first_run_outcome,
    run_first_runs,
    runs_queued_in_window,
)
from migration_pipeline.plus.types import Run, RunDetail


@dataclass
class FakeDagsterPlus:
    """Runs move through their statuses one step per `run` call; `ends` says how each ends."""

    ends: dict[str, str]  # job -> SUCCESS | FAILURE | NEVER
    launched: list[tuple[str, str, dict, dict]] = field(default_factory=list)
    polls: dict[str, int] = field(default_factory=dict)
    created: list[Run] = field(default_factory=list)

    def launch_run(self, location, job, run_config=None, tags=None):
        if job not in self.ends:
            from migration_pipeline.plus.errors import DagsterPlusError

            raise DagsterPlusError("launchRun", f"Could not find Pipeline {location}.{job}")
        self.launched.append((location, job, run_config or {}, tags or {}))
        run_id = f"run-{len(self.launched)}"
        self.created.append(Run(run_id, "QUEUED", job, 100.0))
        return run_id

    def run(self, run_id):
        job = next(r.job_name for r in self.created if r.run_id == run_id)
        self.polls[run_id] = self.polls.get(run_id, 0) + 1
        steps = ["QUEUED", "STARTING", "STARTED"]
        end = self.ends[job]
        status = steps[min(self.polls[run_id] - 1, 2)]
        if self.polls[run_id] > 3 and end != "NEVER":
            status = end
        return RunDetail(
            run_id,
            status,
            job,
            100.0,
            101.0,
            103.5 if status in ("SUCCESS", "FAILURE") else None,
            {"dagster/agent_label": "hybrid agent"},
        )

    def run_failure(self, run_id):
        return "explode", "ValueError: the table is not there"

    def runs(self, limit=100, cursor=None, statuses=None, created_between=None):
        start, end = created_between
        return [r for r in self.created if start <= r.creation_time <= end][:limit]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_first_runs_succeed_and_fail_with_their_own_error():
    client = FakeDagsterPlus({"export": "SUCCESS", "broken": "FAILURE"})
    clock = Clock()
    runs = run_first_runs(
        client,
        {"analytics": ("export", {"ops": {}}), "ml": ("broken", {})},
        "prod",
        timeout_seconds=60,
        poll_seconds=2,
        clock=clock,
        sleep=clock.sleep,
    )
    assert [(loc, job, tags) for loc, job, _, tags in client.launched] == [
        ("analytics", "export", {FIRST_RUN_TAG: "prod"}),
        ("ml", "broken", {FIRST_RUN_TAG: "prod"}),
    ]
    ok, bad = runs
    assert ok.succeeded and ok.agent == "hybrid agent" and ok.seconds == 2.5
    assert not bad.succeeded and bad.failed_step == "explode"
    passed, metadata, summary = first_run_outcome(runs, True)
    assert not passed
    assert metadata["runs"]["ml"]["error"] == "ValueError: the table is not there"
    assert summary == (
        "analytics export succeeded on hybrid agent in 2.5 s; "
        "ml broken failure in step explode on hybrid agent: ValueError: the table is not there "
        "(in Dagster+: Runs, run run-2)"
    )


def test_a_run_that_never_finishes_times_out_on_the_clock():
    client = FakeDagsterPlus({"slow": "NEVER"})
    clock = Clock()
    (run,) = run_first_runs(
        client, {"a": ("slow", {})}, "prod", 30, 2, clock=clock, sleep=clock.sleep
    )
    assert run.status == "TIMED_OUT" and clock.now >= 30
    assert "did not finish in time" in run.summary()


def test_no_run_chosen_is_said_and_does_not_pass():
    passed, metadata, summary = first_run_outcome([], False)
    assert not passed and metadata == {"runs": {}}
    assert "none chosen" in summary and "set first_run" in summary


def test_runs_created_inside_the_window_are_reported_with_their_outcome():
    client = FakeDagsterPlus({"tick": "SUCCESS", "later": "SUCCESS"})
    client.launch_run("analytics", "tick")  # created at 100.0
    client.created.append(Run("outside", "SUCCESS", "later", 200.0))
    clock = Clock()
    (window_run,) = runs_queued_in_window(client, 99.0, 105.0, 60, 1, clock, clock.sleep)
    assert (window_run.job, window_run.status, window_run.agent) == (
        "tick",
        "SUCCESS",
        "hybrid agent",
    )


def test_a_launch_dagster_plus_refuses_fails_that_location_only():
    client = FakeDagsterPlus({"export": "SUCCESS"})
    clock = Clock()
    refused, ok = run_first_runs(
        client,
        {"analytics": ("typo_job", {}), "ml": ("export", {})},
        "prod",
        60,
        2,
        clock=clock,
        sleep=clock.sleep,
    )
    assert (refused.status, refused.run_id) == ("NOT_LAUNCHED", "")
    assert "could not be launched" in refused.summary() and "typo_job" in refused.summary()
    assert ok.succeeded


def test_a_first_run_naming_a_location_the_plan_lacks_is_refused_at_plan_time(tmp_path):
    import pytest
    from migration_env import write_project

    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets.settings import load_target_settings

    project = read_project(write_project(tmp_path / "repo"))
    settings = load_target_settings(
        "local", "first_run: {analytics: {job: daily_refresh_job, run_config: {ops: {}}}}\n"
    )
    assert settings.first_runs == {"analytics": ("daily_refresh_job", {"ops": {}})}
    assert make_plan(project, "local", settings).locations
    with pytest.raises(InvalidInput) as refused:
        make_plan(project, "local", load_target_settings("local", "first_run: {analytcs: x}\n"))
    assert "first_run" in str(refused.value) and "analytcs" in str(refused.value)
