"""Re-execution after a fault at each Dagster+ call of each job ends with exactly one agent
switch, one agent token and one deploy per location.

For every job, a clean run first records which Dagster+ operations it calls; then, for each
operation, on a fresh sandbox: (a) the call fails persistently (HTTP 500 past every retry), the
run fails, the fault clears and the run is re-executed from failure; (b) the call takes effect
but its answer is lost (`drop_after`), and the run must still end right.
"""

from __future__ import annotations

import dagster as dg
import pytest
from conftest import make_scenario
from migration_env import MigrationEnv, agent_url_config, write_project
from support.agent import fake_agent

from dagster_plus_sandbox import Sandbox
from migration_pipeline.definitions import defs
from migration_pipeline.resources import DagsterPlusResource

pytestmark = pytest.mark.slow

# The product's jobs after the plan, in the order a migration runs them.
MIGRATION_ORDER = [
    "create_agent_token",
    "prepare_hybrid_agent",
    "cutover",
    "finish_hybrid_migration",
    "rollback_to_serverless",
]
BEFORE = {job: MIGRATION_ORDER[:i] for i, job in enumerate(MIGRATION_ORDER)}
# Those that call Dagster+ for a Kubernetes target (its prepare_hybrid_agent builds images and
# writes files only; an ECS target's also lists the agents).
JOBS_UNDER_TEST = [job for job in MIGRATION_ORDER if job != "prepare_hybrid_agent"]
# The jobs during which no Hybrid agent runs yet (its token may not even exist).
NO_AGENT_YET = ("create_agent_token", "prepare_hybrid_agent")
# Calls made only by a best-effort step, which logs a failure and goes on: the cutover run's
# deploy at once (after the switch; its finish run deploys instead), and the rollback's
# revocation of the migration's agent token (it says to revoke it by hand).
BEST_EFFORT = {
    "cutover": {"agents", "deployLocations"},
    "rollback_to_serverless": {"revokeAgentToken"},
}


def without_retries(name: str):
    """The product's job under another name, without its op retry policy (a failure fails at
    once): an asset job is selected again, an op job is its graph as a new job."""
    job = next(j for j in defs.jobs or () if j.name == name)
    if isinstance(job, dg.JobDefinition):
        return job.graph.to_job(name=f"{name}_no_retry", executor_def=dg.in_process_executor)
    return dg.define_asset_job(
        f"{name}_no_retry", selection=job.selection, executor_def=dg.in_process_executor
    )


# The same assets, checks and ops with a client that gives up after two quick attempts.
FAULT_DEFS = dg.Definitions(
    assets=list(defs.assets or ()),
    asset_checks=list(defs.asset_checks or ()),
    jobs=[without_retries(name) for name in MIGRATION_ORDER],
    resources={
        **(defs.resources or {}),  # the records I/O manager among them
        "dagster_plus": DagsterPlusResource(
            url=dg.EnvVar("DAGSTER_CLOUD_URL"),
            deployment=dg.EnvVar("DAGSTER_CLOUD_DEPLOYMENT"),
            api_token=dg.EnvVar("DAGSTER_CLOUD_API_TOKEN"),
            max_attempts=2,
            backoff_seconds=0.01,
        ),
    },
)


# Module-level functions, so that dg.reconstructable can find each job again.
def create_agent_token_no_retry():
    return FAULT_DEFS.resolve_job_def("create_agent_token_no_retry")


def prepare_hybrid_agent_no_retry():
    return FAULT_DEFS.resolve_job_def("prepare_hybrid_agent_no_retry")


def cutover_no_retry():
    return FAULT_DEFS.resolve_job_def("cutover_no_retry")


def finish_hybrid_migration_no_retry():
    return FAULT_DEFS.resolve_job_def("finish_hybrid_migration_no_retry")


def rollback_to_serverless_no_retry():
    return FAULT_DEFS.resolve_job_def("rollback_to_serverless_no_retry")


JOBS = {
    "create_agent_token": create_agent_token_no_retry,
    "prepare_hybrid_agent": prepare_hybrid_agent_no_retry,
    "cutover": cutover_no_retry,
    "finish_hybrid_migration": finish_hybrid_migration_no_retry,
    "rollback_to_serverless": rollback_to_serverless_no_retry,
}


def run_config_for(sandbox: Sandbox, job: str) -> dict:
    if job == "finish_hybrid_migration":
        # Inside the window the wait goes on through transient answers until its timeout: a
        # persistent fault on the workspace query fails the finish only then.
        return MigrationEnv.finish_config(
            load_timeout_seconds=10, poll_seconds=0.1, error_settle_seconds=0.5
        )
    return agent_url_config(sandbox) if job == "prepare_hybrid_agent" else {}


class Case:
    """A fresh sandbox and instance, taken up to just before `job`."""

    def __init__(self, job: str, root, monkeypatch, registry: str):
        self.job = job
        root.mkdir(parents=True)
        self.sandbox = Sandbox.start(root / "state.db", make_scenario())
        self.env = MigrationEnv(
            self.sandbox,
            write_project(root / "repo"),
            root / "home",
            "kubernetes",
            monkeypatch,
            registry,
        )
        assert self.env.run("plan_migration", self.env.plan_config()).success
        assert self.env.run("apply_migration_files").success
        for before in BEFORE[job]:
            with self.agent():
                assert self.env.run(before, run_config_for(self.sandbox, before)).success

    def agent(self):
        token = self.env.stored_agent_token() if self.env.agent_dir.exists() else None
        if token is None or self.job in NO_AGENT_YET:
            from contextlib import nullcontext

            return nullcontext()
        return fake_agent(self.sandbox, token)

    def execute(self, reexecute_from: str | None = None) -> dg.ExecutionResult:
        options = (
            dg.ReexecutionOptions.from_failure(reexecute_from, self.env.instance)
            if reexecute_from
            else None
        )
        with self.agent():
            return dg.execute_job(
                dg.reconstructable(JOBS[self.job]),
                self.env.instance,
                run_config=run_config_for(self.sandbox, self.job),
                reexecution_options=options,
                raise_on_error=False,
            )

    def operations(self) -> set[str]:
        ops: set[str] = set()
        for seen in self.sandbox.operations_seen:
            ops |= seen
        return ops

    def assert_one_of_each(self, operation: str, failed_once: bool = False) -> None:
        events = self.sandbox.state.events()
        switches = [e["detail"]["to"] for e in events if e["kind"] == "agent_type_switched"]
        tokens = [e for e in events if e["kind"] == "agent_token_created"]
        deploys = [e["detail"]["location"] for e in events if e["kind"] == "location_deployed"]
        assert tokens and len(tokens) == 1, (operation, tokens)
        # A rollback whose reconcile failed put the agent type back (the deployment worked as
        # before it); its re-execution rolled back.
        put_back = (
            failed_once
            and self.job == "rollback_to_serverless"
            and operation == "reconcileLocationsFromDocument"
        )
        if self.job not in NO_AGENT_YET and not put_back:
            assert switches.count("HYBRID") == 1, (operation, switches)
        if self.job in ("finish_hybrid_migration", "rollback_to_serverless"):
            assert sorted(deploys) == ["analytics", "ml_models"], (operation, deploys)
        if self.job == "rollback_to_serverless":
            if put_back:
                assert switches == ["HYBRID", "SERVERLESS", "HYBRID", "SERVERLESS"], switches
            else:
                assert switches == ["HYBRID", "SERVERLESS"], (operation, switches)
            assert len([e for e in events if e["kind"] == "location_reconciled"]) == 2

    def close(self) -> None:
        self.sandbox.stop()


@pytest.mark.parametrize("job", JOBS_UNDER_TEST)
def test_reexecution_after_a_fault_at_each_call(job, tmp_path, monkeypatch, registry):
    with monkeypatch.context() as patch:
        clean = Case(job, tmp_path / "clean", patch, registry)
        seen_before = len(clean.sandbox.operations_seen)
        assert clean.execute().success
        operations = set().union(*list(clean.sandbox.operations_seen)[seen_before:])
        clean.assert_one_of_each("none")
        clean.close()
    assert operations, "the job called nothing"

    for operation in sorted(operations):
        with monkeypatch.context() as patch:
            case = Case(job, tmp_path / f"fail-{operation}", patch, registry)
            case.sandbox.faults.add(operation=operation, kind="http_500", count=1000)
            failed = case.execute()
            if operation in BEST_EFFORT.get(job, ()):
                assert failed.success, f"{job}: a fault on best-effort {operation} failed it"
                deployed = [
                    e for e in case.sandbox.state.events() if e["kind"] == "location_deployed"
                ]
                if job == "cutover":
                    assert deployed == [], "the failed deploy at once deployed something"
            else:
                assert not failed.success, (
                    f"{job}: a persistent fault on {operation} did not fail it"
                )
                case.sandbox.faults.clear()
                again = case.execute(reexecute_from=failed.run_id)
                assert again.success, f"{job}: re-execution after a fault on {operation} failed"
            case.assert_one_of_each(operation, failed_once=not failed.success)
            case.close()

        with monkeypatch.context() as patch:
            case = Case(job, tmp_path / f"lost-{operation}", patch, registry)
            case.sandbox.faults.add(operation=operation, kind="drop_after", count=1)
            result = case.execute()
            if not result.success:  # a lost answer may fail the step; re-execution completes
                result = case.execute(reexecute_from=result.run_id)
            assert result.success, f"{job}: a lost answer from {operation} was not recovered"
            case.assert_one_of_each(operation)
            case.close()
