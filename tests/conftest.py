"""Shared fixtures: a real sandbox on loopback, fresh for each test, with fast timing; a real
registry; moto_server."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator

import pytest
from support import servers
from support.servers import docker_registry

from dagster_plus_sandbox import ManualClock, Sandbox
from dagster_plus_sandbox.clock import Clock
from dagster_plus_sandbox.scenario import DEFAULT_SCENARIO, Scenario
from migration_pipeline.plus import DagsterPlusClient

FAST_TIMING = {
    "serverless_shutdown_seconds": 0.6,
    "serverless_provision_seconds": 0.3,
    "heartbeat_window_seconds": 1.0,
    "location_load_seconds": 0.2,
}


def make_scenario(**overrides) -> Scenario:
    raw = copy.deepcopy(DEFAULT_SCENARIO)
    raw["timing"] = {**FAST_TIMING, **overrides.pop("timing", {})}
    raw.update(overrides)
    return Scenario.from_mapping(raw)


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[str]:
    """A real OCI registry (Debian's docker-registry) on loopback: yields `127.0.0.1:PORT`."""
    with docker_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


@pytest.fixture
def moto_server(tmp_path, monkeypatch) -> Iterator[str]:
    """moto_server on loopback, and the AWS environment every boto3 client here reads."""
    with servers.moto_server(tmp_path) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield url


@pytest.fixture
def start_sandbox(tmp_path) -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox with a scenario built from the default one plus overrides."""
    started: list[Sandbox] = []

    def start(
        scenario: Scenario | None = None,
        state_name: str = "state.db",
        clock: Clock = time.time,
        **overrides,
    ) -> Sandbox:
        sandbox = Sandbox.start(
            tmp_path / state_name, scenario or make_scenario(**overrides), clock=clock
        )
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(start_sandbox) -> Sandbox:
    return start_sandbox()


@pytest.fixture
def clock() -> ManualClock:
    """Time for a sandbox that moves only when the test says (`clock.advance(seconds)`)."""
    return ManualClock()


@pytest.fixture
def plus_env(sandbox, monkeypatch) -> Sandbox:
    """The code location's resource pointed at the sandbox, as its EnvVars read it."""
    monkeypatch.setenv("DAGSTER_CLOUD_URL", sandbox.url)
    monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT", sandbox.deployment)
    monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", sandbox.token("admin"))
    return sandbox


def client_for(sandbox: Sandbox, token_name: str = "admin", **kwargs) -> DagsterPlusClient:
    kwargs.setdefault("backoff_seconds", 0.01)
    kwargs.setdefault("max_backoff_seconds", 0.05)
    kwargs.setdefault("max_retry_after_seconds", 0.05)
    return DagsterPlusClient(sandbox.url, sandbox.deployment, sandbox.token(token_name), **kwargs)


@pytest.fixture
def admin(sandbox) -> Iterator[DagsterPlusClient]:
    with client_for(sandbox) as client:
        yield client
