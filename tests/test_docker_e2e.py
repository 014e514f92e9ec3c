"""The containerized path end to end, with real parts: a Docker engine on a private socket, the
example repository planned for the Docker agent (registry, `container_context.docker`), its
generated Dockerfile built with docker and pushed to a real registry, the real `dagster-cloud
agent` run from the generated compose file in a container, one code-server container per
location from the pushed images, and each location LOADED only when the agent reports it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from conftest import make_scenario
from migration_env import MigrationEnv
from support.processes import wait_for

from dagster_plus_sandbox import Sandbox
from dagster_plus_sandbox.scenario import load_scenario
from demo.docker import docker, docker_engine, python_base_image, remove_all_containers

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "serverless_repo"
ENGINE_DIR = Path("/tmp/migration-pipeline-docker")  # kept between runs: its images are a cache


@pytest.fixture(scope="module")
def engine():
    with docker_engine(ENGINE_DIR) as docker_host:
        remove_all_containers(docker_host)
        yield docker_host


@pytest.fixture(scope="module")
def base_image(engine):
    return python_base_image(engine, log=lambda message: None)


@pytest.fixture
def agent_network(engine):
    """A Docker network this test makes, for the agent, its code servers and the sandbox's
    agent API (on the network's gateway): every address stays on this machine."""
    name = f"mp-e2e-{uuid.uuid4().hex[:8]}"
    third = int(uuid.uuid4().hex[:2], 16) % 200 + 20
    docker(engine, "network", "create", "--subnet", f"172.31.{third}.0/24", name)
    yield name, f"172.31.{third}.1"
    docker(engine, "network", "rm", name, check=False)


def test_the_example_migrates_to_a_real_docker_agent(
    engine, base_image, agent_network, registry, tmp_path, monkeypatch
):
    network, gateway = agent_network
    scenario = load_scenario(EXAMPLE / "sandbox_scenario.yaml")
    scenario.timing.update(make_scenario().timing)
    scenario.timing["heartbeat_window_seconds"] = 60.0
    sandbox = Sandbox.start(tmp_path / "state.db", scenario, agent_host=gateway)
    project = tmp_path / "repo"
    shutil.copytree(EXAMPLE, project)
    monkeypatch.setenv("DOCKER_HOST", engine)
    env = MigrationEnv(sandbox, project, tmp_path / "home", "docker", monkeypatch, registry)
    env.settings_text = (
        f"builder: docker\nbase_image: {base_image}\nagent_network: {network}\n"
        "insecure_registry: true\n"
    )
    try:
        prepared = env.prepare()
        assert prepared.success
        install = prepared.output_for_node("hybrid_agent_install_files")
        override = tmp_path / "engine-override.yaml"
        override.write_text(
            "services:\n  dagster-cloud-agent:\n    volumes:\n"
            f"      - {engine.removeprefix('unix://')}:/var/run/docker.sock\n"
            f"      - {tmp_path}/docker-config:/root/.docker:ro\n"
        )
        (tmp_path / "docker-config").mkdir()
        compose = [
            "docker-compose",
            "--project-directory",
            install.agent_dir,
            "-f",
            f"{install.agent_dir}/docker-compose.yaml",
            "-f",
            str(override),
        ]
        compose_env = {**os.environ, "DOCKER_HOST": engine}
        up = subprocess.run(
            [*compose, "up", "-d"], capture_output=True, text=True, env=compose_env, timeout=120
        )
        assert up.returncode == 0, up.stderr
        try:
            from conftest import client_for

            admin = client_for(sandbox)
            wait_for(
                lambda: [
                    a for a in admin.agents() if a.label == install.agent_label and a.is_running
                ],
                60,
                "the Docker agent to heartbeat",
            )
            assert env.run("cutover").success
            finish = env.run("finish_hybrid_migration", run_config=env.finish_config(120, 1.0))
            assert finish.success
            loaded = {e.name: e.load_status for e in admin.workspace()}
            assert loaded == {"analytics": "LOADED", "ml_models": "LOADED", "reporting": "LOADED"}
            servers = docker(
                engine, "ps", "--filter", "label=dagster_grpc_server", "--format", "{{.Image}}"
            ).stdout.split()
            assert len(servers) == 3 and all(s.startswith(registry) for s in servers)
        finally:
            logs = subprocess.run(
                [*compose, "logs", "--no-color"], capture_output=True, text=True, env=compose_env
            )
            (tmp_path / "agent.log").write_text(logs.stdout + logs.stderr)
            subprocess.run([*compose, "down"], capture_output=True, env=compose_env, timeout=120)
    finally:
        sandbox.stop()
