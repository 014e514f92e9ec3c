"""Scenarios: what an organization looks like when the sandbox first starts.

A scenario is a YAML (or JSON) mapping; `DEFAULT_SCENARIO` below is the built-in one and shows
every key. Token values are generated at seeding unless the scenario names them, so no
credential is ever written into the repository.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dagster_plus_sandbox.schemas import enum_values

DEFAULT_SCENARIO: dict[str, Any] = {
    "organization": "acme",
    "timing": {
        # How long the Serverless agent keeps answering NOT_RUNNING after the switch to Hybrid.
        "serverless_shutdown_seconds": 5.0,
        # How long Serverless takes to come back after a switch back from Hybrid.
        "serverless_provision_seconds": 2.0,
        # An agent is RUNNING while its last heartbeat is at most this old (the real agent
        # heartbeats every 30 s).
        "heartbeat_window_seconds": 60.0,
        # How long the Serverless agent takes to load a location (a Hybrid agent reports it).
        "location_load_seconds": 1.0,
    },
    "tokens": [
        {"name": "admin", "kind": "user", "role": "ADMIN", "user": "admin@acme.test"},
        {"name": "viewer", "kind": "user", "role": "VIEWER", "user": "viewer@acme.test"},
    ],
    "deployments": [
        {
            "name": "prod",
            "agent_type": "SERVERLESS",
            "settings": {
                "run_queue": {"max_concurrent_runs": 10},
                "non_isolated_runs": {"enabled": True, "max_concurrent_non_isolated_runs": 1},
            },
            "locations": [
                {
                    "location_name": "analytics",
                    "code_source": {"package_name": "analytics"},
                    "working_directory": "analytics",
                },
                {
                    "location_name": "ml_models",
                    "code_source": {"module_name": "ml_models.definitions"},
                    "working_directory": "ml_models",
                },
            ],
            "instigators": {
                "analytics": {
                    "schedules": [
                        {"name": "daily_refresh", "cron": "0 6 * * *", "status": "RUNNING"},
                        {"name": "weekly_rollup", "cron": "0 7 * * 1", "status": "STOPPED"},
                    ],
                    "sensors": [{"name": "new_files_sensor", "status": "RUNNING"}],
                },
                "ml_models": {
                    "schedules": [
                        {"name": "nightly_train", "cron": "0 2 * * *", "status": "RUNNING"}
                    ],
                    "sensors": [],
                },
            },
            "runs": {
                "count": 250,
                "seed": 7,
                "statuses": {"SUCCESS": 0.85, "FAILURE": 0.1, "CANCELED": 0.05},
                "jobs": ["daily_refresh_job", "weekly_rollup_job", "train_job"],
            },
        },
        {
            "name": "staging",
            "agent_type": "SERVERLESS",
            "type": "PRODUCTION",
            "settings": {},
            "locations": [],
        },
        # A branch deployment (type BRANCH) names its base deployment and its branch:
        # {"name": "<40 hex>", "type": "BRANCH", "parent": "prod",
        #  "branch": {"repoName": "acme/data", "branchName": "feature", "pullRequestStatus": "OPEN"}}
    ],
    # Faults active from the start (see faults.py for the keys).
    "faults": [],
}


# Bounds on what a scenario may ask the sandbox to seed: far above any test's or demo's needs
# (the scale benchmark seeds 100,000 runs), far below what would exhaust memory or disk.
MAX_RUNS_PER_DEPLOYMENT = 1_000_000
MAX_TIMING_SECONDS = 3600.0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _runs_problem(runs: Any) -> str | None:
    """What is wrong with a deployment's `runs:` spec, or None."""
    if runs is None:
        return None
    if not isinstance(runs, dict):
        return "a mapping (count, seed, statuses, jobs)"
    unknown = set(runs) - {"count", "seed", "statuses", "jobs"}
    if unknown:
        return f"unknown keys {sorted(unknown)}"
    count = runs.get("count", 0)
    if not isinstance(count, int) or isinstance(count, bool):
        return f"count: a whole number, not {count!r}"
    if not 0 <= count <= MAX_RUNS_PER_DEPLOYMENT:
        return f"count: between 0 and {MAX_RUNS_PER_DEPLOYMENT:,}, not {count:,}"
    seed = runs.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"seed: a whole number, not {seed!r}"
    statuses = runs.get("statuses", {"SUCCESS": 1.0})
    if not isinstance(statuses, dict) or not statuses:
        return "statuses: a mapping of run status to weight"
    known = enum_values("user", "RunStatus")
    for status, weight in statuses.items():
        if status not in known:
            return f"statuses: {status!r} is not a run status ({', '.join(known)})"
        if not _number(weight) or not 0 <= weight < float("inf"):
            return f"statuses.{status}: a weight of 0 or more, not {weight!r}"
    if sum(statuses.values()) <= 0:
        return "statuses: at least one weight above 0"
    jobs = runs.get("jobs", ["job"])
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, str) and j for j in jobs):
        return "jobs: a list of job names"
    return None


@dataclass
class Scenario:
    organization: str
    timing: dict[str, float]
    tokens: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    faults: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> Scenario:
        unknown = set(raw) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"scenario: unknown keys {sorted(unknown)}")
        timing = dict(DEFAULT_SCENARIO["timing"])
        given = raw.get("timing") or {}
        if not isinstance(given, dict):
            raise ValueError("scenario: timing: a mapping of seconds")
        for key, value in given.items():
            if key not in timing:
                raise ValueError(f"scenario: timing.{key}: unknown (one of {sorted(timing)})")
            if not _number(value) or not 0 <= value <= MAX_TIMING_SECONDS:
                raise ValueError(
                    f"scenario: timing.{key}: seconds between 0 and {MAX_TIMING_SECONDS:g}, "
                    f"not {value!r}"
                )
        timing.update(given)
        deployments = raw.get("deployments") or []
        if not deployments:
            raise ValueError("scenario: at least one deployment is needed")
        names: set[str] = set()
        for index, spec in enumerate(deployments):
            where = f"scenario: deployments[{index}]"
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise ValueError(f"{where}: a mapping with a `name` is needed")
            kind = spec.get("type", "PRODUCTION")
            if kind not in ("PRODUCTION", "BRANCH"):
                raise ValueError(
                    f"{where}.type: {kind!r} is not a DagsterCloudDeploymentType "
                    "(PRODUCTION or BRANCH)"
                )
            if spec.get("agent_type", "SERVERLESS") not in ("SERVERLESS", "HYBRID"):
                raise ValueError(f"{where}.agent_type: SERVERLESS or HYBRID")
            if kind == "BRANCH" and spec.get("parent") not in names:
                raise ValueError(
                    f"{where}.parent: a branch deployment names its base deployment, "
                    "listed before it"
                )
            runs_problem = _runs_problem(spec.get("runs"))
            if runs_problem:
                raise ValueError(f"{where}.runs: {runs_problem}")
            if spec["name"] in names:
                raise ValueError(f"{where}.name: {spec['name']!r} is listed twice")
            names.add(spec["name"])
        return cls(
            organization=raw.get("organization", DEFAULT_SCENARIO["organization"]),
            timing={k: float(v) for k, v in timing.items()},
            tokens=raw.get("tokens") or DEFAULT_SCENARIO["tokens"],
            deployments=deployments,
            faults=raw.get("faults") or [],
        )


MAX_SCENARIO_BYTES = 10_000_000


def load_scenario(path: str | Path | None) -> Scenario:
    """The scenario in `path` (YAML or JSON), or the built-in default."""
    if path is None:
        return Scenario.from_mapping(DEFAULT_SCENARIO)
    with open(path, "rb") as handle:
        data = handle.read(MAX_SCENARIO_BYTES + 1)
    if len(data) > MAX_SCENARIO_BYTES:
        raise ValueError(f"{path}: larger than {MAX_SCENARIO_BYTES:,} bytes: not a scenario")
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ValueError(f"{path}{line}: invalid YAML: {error.problem}") from None
    except (yaml.YAMLError, RecursionError) as error:
        raise ValueError(f"{path}: invalid YAML: {type(error).__name__}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a scenario is a mapping, got {type(raw).__name__}")
    return Scenario.from_mapping(raw)


def new_token_value(kind: str, organization: str) -> str:
    """A token in Dagster+'s format, `<user|agent>:<organization>:<32 hex>`."""
    return f"{kind}:{organization}:{uuid.uuid4().hex}"


def generate_runs(spec: dict[str, Any], now: float) -> list[tuple[str, str, str, float]]:
    """Deterministic historical runs `(run_id, status, job_name, creation_time)`, oldest first."""
    count = spec.get("count", 0)  # checked by Scenario.from_mapping
    rng = random.Random(spec.get("seed", 0))
    statuses = spec.get("statuses") or {"SUCCESS": 1.0}
    jobs = spec.get("jobs") or ["job"]
    names, weights = list(statuses), list(statuses.values())
    start = now - 86400.0 * 30
    step = (now - start) / max(count, 1)
    return [
        (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            rng.choices(names, weights)[0],
            jobs[i % len(jobs)],
            start + i * step,
        )
        for i in range(count)
    ]
