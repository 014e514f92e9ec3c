"""A migration under test: the sandbox's default deployment, a repository that matches it, a
Dagster instance on disk, and the code location's jobs run in process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from migration_pipeline.definitions import defs
from migration_pipeline.deployments import add_deployment_partitions

SCENARIO_PROJECT = {
    "dagster_cloud.yaml": (
        "# The Serverless repository of the sandbox's default scenario.\n"
        "locations:\n"
        "  - location_name: analytics\n"
        "    code_source:\n"
        "      package_name: analytics\n"
        "    working_directory: analytics\n"
        "  - location_name: ml_models\n"
        "    code_source:\n"
        "      module_name: ml_models.definitions\n"
        "    working_directory: ml_models\n"
    ),
    "analytics/analytics/__init__.py": (
        "import dagster as dg\n\n\n@dg.asset\ndef daily_table():\n    return 1\n\n\n"
        "daily_refresh_job = dg.define_asset_job('daily_refresh_job', selection=[daily_table])\n"
        "defs = dg.Definitions(assets=[daily_table], jobs=[daily_refresh_job], schedules=[\n"
        "    dg.ScheduleDefinition(name='daily_refresh', job=daily_refresh_job,\n"
        "                          cron_schedule='0 6 * * *')])\n"
    ),
    "analytics/requirements.txt": "dagster\n",
    # No base image can be pulled here, so the repository's own Dockerfile (which the plan keeps)
    # builds from scratch.
    "Dockerfile": "FROM scratch\nCOPY . /app\n",
    "ml_models/ml_models/__init__.py": "",
    "ml_models/ml_models/definitions.py": (
        "import dagster as dg\n\n\n@dg.asset\ndef model():\n    return 1\n\n\n"
        "defs = dg.Definitions(assets=[model])\n"
    ),
}


def write_project(root: Path, files: dict[str, str] = SCENARIO_PROJECT) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class MigrationEnv:
    def __init__(
        self,
        sandbox,
        project_dir: Path,
        dagster_home: Path,
        target: str,
        monkeypatch,
        registry: str | None = None,
    ):
        self.sandbox = sandbox
        self.registry = f"{registry}/acme" if registry else None
        self.project_dir = project_dir
        self.target = target
        self.monkeypatch = monkeypatch
        self.settings_text: str | None = None  # a target settings file, when set
        # The scenario's images are FROM scratch, with nothing in them to start: their proof is
        # opted out of, as the settings allow. The Docker end-to-end test proves real images.
        self.prove_images = False
        monkeypatch.setenv("DAGSTER_CLOUD_URL", sandbox.url)
        monkeypatch.setenv("DAGSTER_CLOUD_DEPLOYMENT", sandbox.deployment)
        self.use_token("admin")
        dagster_home.mkdir(parents=True, exist_ok=True)
        self.instance = dg.DagsterInstance.local_temp(str(dagster_home))
        # The partition every partitioned job runs for, as list_deployments would add it.
        self.deployment = sandbox.deployment
        add_deployment_partitions(self.instance, [self.deployment])
        self.sensor_cursor: str | None = None  # the sensor's cursor, where a test keeps it

    @classmethod
    def in_tmp(
        cls, sandbox, tmp_path: Path, monkeypatch, target: str = "kubernetes", registry=None
    ) -> MigrationEnv:
        """The scenario's repository in `tmp_path/repo`, the instance in `tmp_path/home`."""
        return cls(
            sandbox,
            write_project(tmp_path / "repo"),
            tmp_path / "home",
            target,
            monkeypatch,
            registry,
        )

    def use_token(self, name: str) -> None:
        self.monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", self.sandbox.token(name))

    def run(
        self,
        job_name: str,
        run_config: dict | None = None,
        tags: dict | None = None,
        raise_on_error: bool = True,
        deployment: str | None = None,
    ):
        """Run a job in process; a partitioned one for `deployment` (default: the env's)."""
        return run_job(
            job_name,
            self.instance,
            deployment or self.deployment,
            run_config=run_config or {},
            tags=tags,
            raise_on_error=raise_on_error,
        )

    def plan_config(self) -> dict:
        config = {"project_dir": str(self.project_dir), "target": self.target}
        if self.registry:
            config["registry"] = self.registry
        text = (self.settings_text or "") + ("" if self.prove_images else "prove_images: false\n")
        if text:
            settings = self.project_dir.parent / "target-settings.yaml"
            settings.write_text(text)
            config["settings_file"] = str(settings)
        return {"ops": {"migration_plan": {"config": config}}}

    def prepare(self, raise_on_error: bool = True, deployment: str | None = None):
        """Plan, apply, agent token, images and install files: everything before the cutover.
        Returns the prepare_hybrid_agent run (images and install files)."""
        assert self.run("plan_migration", self.plan_config(), deployment=deployment).success
        assert self.run("apply_migration_files", deployment=deployment).success
        assert self.run("create_agent_token", deployment=deployment).success
        return self.run(
            "prepare_hybrid_agent",
            self.agent_url_config(),
            raise_on_error=raise_on_error,
            deployment=deployment,
        )

    def agent_url_config(self) -> dict:
        return agent_url_config(self.sandbox)

    @staticmethod
    def finish_config(
        load_timeout_seconds: float = 600, poll_seconds: float = 1.0, error_settle_seconds=20
    ) -> dict:
        """Run config for finish_hybrid_migration's wait for LOADED."""
        return {
            "ops": {
                "verify_hybrid_deployment": {
                    "config": {
                        "load_timeout_seconds": load_timeout_seconds,
                        "poll_seconds": poll_seconds,
                        "error_settle_seconds": error_settle_seconds,
                    }
                }
            }
        }

    @property
    def agent_dir(self) -> Path:
        return self.agent_dir_of(self.deployment)

    def agent_dir_of(self, deployment: str) -> Path:
        return self.project_dir / "dagster_cloud_agent" / deployment

    def stored_agent_token(self, deployment: str | None = None) -> str:
        """The agent token as the target stored it (the secret file)."""
        agent_dir = self.agent_dir_of(deployment or self.deployment)
        secret = agent_dir / "agent-token-secret.yaml"
        if secret.exists():
            return yaml.safe_load(secret.read_text())["stringData"]["DAGSTER_CLOUD_AGENT_TOKEN"]
        return (agent_dir / "agent-token.env").read_text().strip().split("=", 1)[1]

    def sensor_tick(self, cursor: str | None = None):
        return sensor_tick(self.instance, cursor)


def run_job(job_name: str, instance: dg.DagsterInstance, deployment: str = "prod", **options):
    """Run one of the location's jobs in process; a partitioned one for `deployment` (added
    as a partition first, as list_deployments would)."""
    job = defs.resolve_job_def(job_name)
    if job.partitions_def is not None:
        add_deployment_partitions(instance, [deployment])
        options["partition_key"] = deployment
    return job.execute_in_process(instance=instance, **options)


def location_env(sandbox, dagster_home: Path) -> dict[str, str]:
    """The environment of a Dagster process (dagster dev, the webserver, the daemon) that
    serves this code location against the sandbox."""
    import os

    return dict(
        os.environ,
        DAGSTER_HOME=str(dagster_home),
        DAGSTER_CLOUD_URL=sandbox.url,
        DAGSTER_CLOUD_DEPLOYMENT=sandbox.deployment,
        DAGSTER_CLOUD_API_TOKEN=sandbox.token("admin"),
    )


def agent_url_config(sandbox) -> dict:
    """Run config naming the sandbox's agent API for the agent's config files."""
    return {"ops": {"hybrid_agent_install_files": {"config": {"agent_api_url": sandbox.agent_url}}}}


def sensor_tick(instance: dg.DagsterInstance, cursor: str | None = None):
    """One tick of hybrid_agent_ready_sensor, as the daemon evaluates it (with the instance
    that holds the deployments partitions, which the daemon provides)."""
    from dagster._core.definitions.partitions.context import partition_loading_context

    sensor = defs.resolve_sensor_def("hybrid_agent_ready_sensor")
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=dict(defs.resources or {}),
        repository_def=defs.get_repository_def(),
    )
    with partition_loading_context(dynamic_partitions_store=instance):
        return sensor.evaluate_tick(context)


def record_cutover(
    instance: dg.DagsterInstance, label: str, cutover_at: float = 0.0, deployment: str = "prod"
) -> str:
    """What prepare and cutover leave in the instance for the sensor (install files with the
    agent's label, a successful cutover run), without running them: for sensor-only tests."""
    from dagster._core.storage.dagster_run import DagsterRun

    from migration_pipeline.agent.serving import AGENT_IDENTITY, AgentIdentity
    from migration_pipeline.records import record_metadata, switch_tags

    add_deployment_partitions(instance, [deployment])
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key="hybrid_agent_install_files",
            partition=deployment,
            metadata=record_metadata(AGENT_IDENTITY, AgentIdentity(label)),
        )
    )
    run = instance.add_run(
        DagsterRun(
            job_name="cutover",
            status=dg.DagsterRunStatus.SUCCESS,
            tags={**switch_tags(cutover_at), "dagster/partition": deployment},
        )
    )
    return run.run_id


def step_failure_message(result) -> str:
    """The message of the one step that failed in an in-process run."""
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.event_specific_data.error.message


def run_demo(tmp_path: Path, *options: str, timeout: float = 300):
    """`python -m demo` as `make demo` runs it, its instance and work under `tmp_path`."""
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            *options,
            "--dagster-home",
            str(tmp_path / "home"),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
        timeout=timeout,
    )
