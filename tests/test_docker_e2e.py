"""The containerized path end to end, with real parts: a Docker engine on a private socket, the
example repository planned for the Docker agent (registry, `container_context.docker`), its
generated Dockerfile built with docker and pushed to a real registry, each image started and its
definitions loaded before the switch, the real `dagster-cloud agent` run from the generated
compose file in a container, one code-server container per location from the pushed images,
and each location LOADED only when the agent reports it. And the refusal: an image whose code
does not import fails the proof, and the cutover changes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests
import yaml
from conftest import client_for, make_scenario
from migration_env import MigrationEnv, run_demo, step_failure_message
from support.leaks import assert_tokens_only_in_the_token_file
from support.processes import wait_for

from dagster_plus_sandbox import Sandbox
from dagster_plus_sandbox.scenario import load_scenario
from demo.docker import (
    agent_network,
    compose_agent,
    docker,
    docker_engine,
    docker_settings,
    python_base_image,
    remove_all_containers,
)

pytestmark = pytest.mark.slow

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXAMPLE = PROJECT_DIR / "examples" / "serverless_repo"
ENGINE_DIR = Path("/tmp/migration-pipeline-docker")  # kept between runs: its images are a cache
LOCATIONS = ["analytics", "ml_models", "reporting"]


@pytest.fixture(scope="module")
def engine():
    with docker_engine(ENGINE_DIR) as docker_host:
        remove_all_containers(docker_host)
        yield docker_host


@pytest.fixture(scope="module")
def base_image(engine):
    return python_base_image(engine, log=lambda message: None)


@pytest.fixture
def docker_migration(engine, base_image, registry, tmp_path, monkeypatch):
    """The example's sandbox (its agent API on a test network's gateway), a copy of the example
    repository, and a MigrationEnv for the docker target that proves its images."""
    with agent_network(engine) as (network, gateway):
        scenario = load_scenario(EXAMPLE / "sandbox_scenario.yaml")
        scenario.timing.update(make_scenario().timing)
        scenario.timing["heartbeat_window_seconds"] = 60.0
        sandbox = Sandbox.start(tmp_path / "state.db", scenario, agent_host=gateway)
        project = tmp_path / "repo"
        shutil.copytree(EXAMPLE, project)
        monkeypatch.setenv("DOCKER_HOST", engine)
        env = MigrationEnv(sandbox, project, tmp_path / "home", "docker", monkeypatch, registry)
        env.prove_images = True
        (tmp_path / "exports").mkdir()
        env.settings_text = docker_settings(base_image, network, tmp_path / "exports")
        try:
            yield env
        finally:
            sandbox.stop()


def test_the_example_migrates_to_a_real_docker_agent(docker_migration, engine, registry, tmp_path):
    env = docker_migration
    # The finish's first run: the example's export_orders_job in a run container of the real
    # Docker agent, writing to a host directory mounted at /exports.
    exports = tmp_path / "exports"
    prepared = env.prepare()
    assert prepared.success
    checks = {c.check_name: c for c in prepared.get_asset_check_evaluations()}
    proof = checks["images_load_their_definitions"]
    assert proof.passed and sorted(proof.metadata["proven"].value) == LOCATIONS
    images = prepared.output_for_node("code_location_images")
    assert sorted(images) == LOCATIONS
    assert all(i.image.startswith(f"{registry}/acme/") for i in images.values())
    install = prepared.output_for_node("hybrid_agent_install_files")
    rewritten = yaml.safe_load((env.project_dir / "dagster_cloud.yaml").read_text())
    for location in rewritten["locations"]:
        assert location["build"]["registry"] == f"{registry}/acme/{location['location_name']}"
        assert location["container_context"]["docker"]["env_vars"] == [
            "ACME_ENVIRONMENT=hybrid",
            "ANALYTICS_EXPORT_LABEL=finance",
            "ANALYTICS_EXPORT_DIR=/exports",
        ]

    with (
        client_for(env.sandbox) as admin,
        compose_agent(Path(install.agent_dir), engine, tmp_path / "agent"),
    ):
        wait_for(
            lambda: [a for a in admin.agents() if a.label == install.agent_label and a.is_running],
            90,
            "the Docker agent to heartbeat",
        )
        assert env.run("cutover").success
        finish = env.run("finish_hybrid_migration", run_config=env.finish_config(120, 0.5))
        assert finish.success
        (first_runs,) = [
            e for e in finish.get_asset_check_evaluations() if e.check_name == "first_runs_succeed"
        ]
        assert first_runs.passed, first_runs.metadata
        run = first_runs.metadata["runs"].value["analytics"]
        assert run["status"] == "SUCCESS" and run["agent"] == install.agent_label
        # It ran in a container of the job's image, and wrote where the agent's host can read.
        assert sorted(p.name for p in exports.rglob("result")) == ["result"]
        tags = admin.run(run["run_id"]).tags
        assert tags["dagster/agent_label"] == install.agent_label
        # The Docker agent's run launcher ran it in a container of the location's image.
        assert tags["dagster/image"] == images["analytics"].image
        assert tags["docker/container_id"]
        # Its events, as the run worker in the container wrote them, read back through the user
        # API: the env var from the settings reached the code.
        answer = requests.post(
            f"{env.sandbox.url}/prod/graphql",
            json={
                "query": "query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection"
                " { events { __typename ... on MessageEvent { message stepKey } } } } }",
                "variables": {"runId": run["run_id"]},
            },
            headers={"Dagster-Cloud-Api-Token": env.sandbox.token("admin")},
            timeout=30,
        ).json()
        events = answer["data"]["logsForRun"]["events"]
        assert {"__typename": "ExecutionStepSuccessEvent", "stepKey": "export_orders"} in [
            {"__typename": e["__typename"], "stepKey": e.get("stepKey")} for e in events
        ]
        assert any(e.get("message") == "exporting orders for finance" for e in events), events
        assert {e.name: e.load_status for e in admin.workspace()} == dict.fromkeys(
            LOCATIONS, "LOADED"
        )
        servers = docker(
            engine, "ps", "--filter", "label=dagster_grpc_server", "--format", "{{.Image}}"
        ).stdout.split()
        # One code-server container per location, each from the image the cutover deployed,
        # with the location's container_context applied by the agent.
        assert sorted(servers) == sorted(i.image for i in images.values())
        ids = docker(engine, "ps", "-q", "--filter", "label=dagster_grpc_server").stdout.split()
        for container in ids:
            environment = docker(
                engine, "inspect", "--format", "{{json .Config.Env}}", container
            ).stdout
            assert "ACME_ENVIRONMENT=hybrid" in json.loads(environment)
    assert docker(engine, "ps", "-q").stdout.split() == []  # the agent removed its servers


def test_an_image_whose_code_does_not_import_is_refused(docker_migration):
    env = docker_migration
    reports = env.project_dir / "reporting" / "reports.py"
    reports.write_text("import weasyprint  # not installed in the image\n" + reports.read_text())
    prepared = env.prepare(raise_on_error=False)
    assert not prepared.success
    (proof,) = [
        c
        for c in prepared.get_asset_check_evaluations()
        if c.check_name == "images_load_their_definitions"
    ]
    assert not proof.passed
    assert proof.metadata["failed"].value.keys() == {"reporting"}
    assert "reporting: " in proof.description
    assert "No module named 'weasyprint'" in proof.metadata["failed"].value["reporting"]
    assert sorted(proof.metadata["proven"].value) == ["analytics", "ml_models"]

    with client_for(env.sandbox) as admin:
        before = (admin.locations_as_document(), admin.deployment_settings())
        cutover = env.run("cutover", raise_on_error=False)
        assert not cutover.success
        message = step_failure_message(cutover)
        assert "the image of reporting is not proven to load its definitions" in message
        assert "Nothing was changed." in message
        assert admin.deployment_by_name(env.sandbox.deployment).agent_type == "SERVERLESS"
        assert (admin.locations_as_document(), admin.deployment_settings()) == before


def test_make_demo_docker_reports_the_containerized_migration(engine, base_image, tmp_path):
    """`make demo-docker` as a user runs it (here in the test's engine, whose base image is
    made already): its report, and no token outside the agent's token file."""
    demo = run_demo(tmp_path, "--agent", "docker", "--docker-dir", str(ENGINE_DIR), timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    for expected in (
        "## Migration plan: Serverless to Hybrid (docker)",
        "Agent: docker",
        "Downtime (no agent): ",
        "the cutover run deployed at once: the agent was running",
        "containers started ",
        "First runs: analytics export_orders_job succeeded on migration_pipeline prod agent",
        "Runs queued during the no-agent window: export_orders_job SUCCESS (launched by "
        "migration_pipeline prod agent",
        "Runs: 4000 before, 4002 after",
        "Locations LOADED on the Hybrid agent: analytics, ml_models, reporting",
        "Checks: deployment_settings_kept passed, every_location_loaded passed, "
        "first_runs_succeed passed, no_run_lost passed, schedules_and_sensors_kept passed",
        "Project files written: dagster_cloud.yaml, Dockerfile, .dockerignore",
        "Agent files (dagster_cloud_agent/prod/): .gitignore, agent-token.env, dagster.yaml, "
        "docker-compose.yaml",
        "Images pushed: 3 (",
        "Images proven: 3 (",
    ):
        assert expected in out, expected
    downtime = json.loads((tmp_path / "work" / "downtime.json").read_text())
    assert downtime["agent"] == "docker" and downtime["deployed_by"] == "cutover"
    assert downtime["container_start_seconds"] > 0 and downtime["code_load_seconds"] > 0
    assert downtime["downtime_seconds"] == pytest.approx(
        downtime["waiting_for_agent_seconds"]
        + downtime["until_deploy_seconds"]
        + downtime["deploying_seconds"]
        + downtime["loading_seconds"],
        abs=0.01,
    )
    assert "Started container" in (tmp_path / "work" / "agent" / "agent.log").read_text()
    assert_tokens_only_in_the_token_file(out + demo.stderr, tmp_path / "home", tmp_path / "work")
    assert docker(engine, "ps", "-aq").stdout.split() == []  # the demo left no container


def test_make_demo_docker_per_location_moves_each_location_without_downtime(engine, tmp_path):
    """`make demo-docker STRATEGY=per_location`: the real Docker agent, serving only the
    migration's queue, starts its code-server containers one location at a time while the
    Serverless agent serves the rest; then the switch. The sandbox's event log shows no moment
    with no agent serving the deployment."""
    demo = run_demo(
        tmp_path,
        "--agent",
        "docker",
        "--strategy",
        "per_location",
        "--docker-dir",
        str(ENGINE_DIR),
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    for expected in (
        "Strategy: per_location",
        "analytics moved to queue 'hybrid-migration'",
        "reporting moved to queue 'hybrid-migration'",
        "Downtime (no agent): 0.0s",
        "The sandbox's event log: no agent served the deployment for 0.0s",
        "First runs: analytics export_orders_job succeeded on migration_pipeline prod agent",
        "Locations LOADED on the Hybrid agent: analytics, ml_models, reporting",
        "Checks: deployment_settings_kept passed, every_location_loaded passed, "
        "first_runs_succeed passed, no_run_lost passed, schedules_and_sensors_kept passed",
    ):
        assert expected in out, expected
    downtime = json.loads((tmp_path / "work" / "downtime.json").read_text())
    assert downtime["event_log_deployment_unserved_seconds"] == 0.0
    assert all(0 < s < 60 for s in downtime["event_log_location_unserved_seconds"].values())
    assert_tokens_only_in_the_token_file(out + demo.stderr, tmp_path / "home", tmp_path / "work")
    assert docker(engine, "ps", "-aq").stdout.split() == []  # the demo left no container


def test_make_demo_dg_migrates_the_dg_workspace_to_the_docker_agent(engine, tmp_path):
    """`make demo-dg` as a user runs it: the dg workspace's three projects built from the
    generated Dockerfiles (uv from a uv.lock, pip editable without one), pushed, proven to load
    their definitions (dg's load_from_defs_folder finds each project's pyproject.toml), served
    by the real Docker agent under their old location names."""
    demo = run_demo(
        tmp_path,
        "--example",
        "dg",
        "--agent",
        "docker",
        "--docker-dir",
        str(ENGINE_DIR),
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    out = demo.stdout
    for expected in (
        "Layout: dg workspace (3 projects)",
        "Location names kept: 3/3 (ingest, warehouse_marts, ml)",
        "Agent: docker",
        "Runs: 1500 before, 1500 after",
        "Locations LOADED on the Hybrid agent: ingest, warehouse_marts, ml",
        # No first run chosen for this example: said, as a warning.
        "Checks: deployment_settings_kept passed, every_location_loaded passed, "
        "first_runs_succeed warned, no_run_lost passed, schedules_and_sensors_kept passed",
        "First runs: none chosen",
        "Images pushed: 3 (",
        "Images proven: 3 (",
    ):
        assert expected in out, expected
    repo = tmp_path / "work" / "repo"
    assert "uv sync --frozen --no-dev" in (repo / "projects/ingest/Dockerfile").read_text()
    assert "pip install -e ." in (repo / "projects/ml/Dockerfile").read_text()
    assert_tokens_only_in_the_token_file(out + demo.stderr, tmp_path / "home", tmp_path / "work")
    assert docker(engine, "ps", "-aq").stdout.split() == []  # the demo left no container
