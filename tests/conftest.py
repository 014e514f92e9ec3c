"""Shared fixtures: a real sandbox on loopback, fresh for each test, with fast timing."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator

import requests

import pytest

from dagster_plus_sandbox import Sandbox
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


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[str]:
    """A real OCI registry (Debian's docker-registry) on loopback: yields `127.0.0.1:PORT`."""
    import shutil
    import subprocess

    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        pytest.fail("Debian's docker-registry is not installed (.ci/run installs it)")
    port = free_port()
    root = tmp_path_factory.mktemp("registry")
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
                      "log:\n  level: warn\n")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(root / "registry.log", "w"))
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("docker-registry did not start: " + (root / "registry.log").read_text())
        time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def start_sandbox(tmp_path) -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox with a scenario built from the default one plus overrides."""
    started: list[Sandbox] = []

    def start(scenario: Scenario | None = None, state_name: str = "state.db", **overrides) -> Sandbox:
        sandbox = Sandbox.start(tmp_path / state_name, scenario or make_scenario(**overrides))
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(start_sandbox) -> Sandbox:
    return start_sandbox()


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
