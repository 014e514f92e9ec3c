"""Every transient fault kind at every Dagster+ call of every job: latency, 503, 429 with
Retry-After and a dropped connection are absorbed by the client's retries (the run succeeds at
once), and a slow agent heartbeat only slows the finish; every case still ends with one agent
switch, one agent token and one deploy per location.

A job's starting state is prepared once and copied for each case (the sandbox's SQLite file and
the Dagster instance's directory), so the matrix stays within a minute or two.
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from support.agent import fake_agent
from test_cutover_faults import BEFORE, JOBS, JOBS_UNDER_TEST, NO_AGENT_YET, Case, run_config_for

from dagster_plus_sandbox import Sandbox

pytestmark = pytest.mark.slow

TRANSIENT = [
    {"kind": "latency", "seconds": 0.3, "count": 1},
    {"kind": "http_503", "count": 1},
    {"kind": "http_429", "retry_after": 0.05, "count": 1},
    {"kind": "drop", "count": 1},
]


@dataclass(frozen=True)
class Template:
    """A job's starting state, stopped: every case starts from a copy of it."""

    job: str
    state_path: Path  # the sandbox's SQLite file
    home: Path  # the Dagster instance's directory
    agent_token: str | None

    @classmethod
    def prepare(cls, job: str, root: Path, monkeypatch, registry: str) -> Template:
        case = Case(job, root, monkeypatch, registry)
        token = case.env.stored_agent_token() if BEFORE[job] else None
        case.sandbox.stop()
        return cls(job, Path(case.sandbox.state.path), root / "home", token)


class Copy:
    """A case started from a copy of a prepared state."""

    def __init__(self, template: Template, root: Path, monkeypatch):
        self.job = template.job
        root.mkdir(parents=True)
        shutil.copy(template.state_path, root / "state.db")
        shutil.copytree(template.home, root / "home")
        self.sandbox = Sandbox.start(root / "state.db")
        monkeypatch.setenv("DAGSTER_CLOUD_URL", self.sandbox.url)
        self.instance = dg.DagsterInstance.local_temp(str(root / "home"))
        self.agent_token = template.agent_token

    def run(self) -> dg.ExecutionResult:
        agent = (
            fake_agent(self.sandbox, self.agent_token)
            if self.agent_token and self.job not in NO_AGENT_YET
            else nullcontext()
        )
        with agent:
            return dg.execute_job(
                dg.reconstructable(JOBS[self.job]),
                self.instance,
                run_config=run_config_for(self.sandbox, self.job),
                raise_on_error=False,
            )

    def events(self) -> list[dict]:
        return self.sandbox.state.events()

    def close(self) -> None:
        self.sandbox.stop()


def one_of_each(job: str, events: list[dict], operation: str) -> None:
    switches = [e["detail"]["to"] for e in events if e["kind"] == "agent_type_switched"]
    tokens = [e for e in events if e["kind"] == "agent_token_created"]
    deploys = [e["detail"]["location"] for e in events if e["kind"] == "location_deployed"]
    assert len(tokens) == 1, (operation, tokens)
    if job not in NO_AGENT_YET:
        assert switches.count("HYBRID") == 1, (operation, switches)
    if job in ("finish_hybrid_migration", "rollback_to_serverless"):
        assert sorted(deploys) == ["analytics", "ml_models"], (operation, deploys)


@pytest.mark.parametrize("job", JOBS_UNDER_TEST)
def test_every_transient_fault_at_every_call_is_absorbed(job, tmp_path, monkeypatch, registry):
    template = Template.prepare(job, tmp_path / "template", monkeypatch, registry)

    clean = Copy(template, tmp_path / "clean", monkeypatch)
    seen = len(clean.sandbox.operations_seen)
    assert clean.run().success
    operations = set().union(*list(clean.sandbox.operations_seen)[seen:])
    clean.close()
    assert operations

    cases = [(operation, fault) for operation in sorted(operations) for fault in TRANSIENT]
    if job == "finish_hybrid_migration":  # the agent's heartbeats arrive late
        cases.append(
            ("addAgentHeartbeats", {"kind": "latency", "seconds": 0.5, "count": 3, "api": "agent"})
        )
    for number, (operation, fault) in enumerate(cases):
        case = Copy(template, tmp_path / f"case-{number}", monkeypatch)
        case.sandbox.faults.add(operation=operation, **fault)
        result = case.run()
        assert result.success, f"{job}: {fault['kind']} at {operation} failed the run"
        one_of_each(job, case.events(), f"{fault['kind']} at {operation}")
        case.close()
