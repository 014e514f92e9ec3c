"""`make demo`: the whole migration of `examples/serverless_repo` against the embedded Dagster+
sandbox, to a real Local agent, with no other set-up. `make demo-docker` (`--agent docker`): the
same to a real Docker agent, run from the generated compose file, with images built from the
generated Dockerfile, pushed to a real registry and proven before the switch. `make demo-dg`
(`--example dg --agent docker`): the dg workspace `examples/serverless_dg_workspace` the same way.

Inventory and plan (shown), apply, agent token and install files, the real Local agent started
(it waits while Serverless still serves), the cutover, a real dagster-daemon whose sensor sees
the agent and launches the finish run, verification, and a report. The runs are recorded in
`.dagster_home/`, so `make dev` shows them, their logs and the assets' metadata afterwards.
Dagster's own event lines go to those run logs; `--verbose` prints them here too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from demo.processes import background, wait_for

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "legacy": PROJECT_DIR / "examples" / "serverless_repo",
    "dg": PROJECT_DIR / "examples" / "serverless_dg_workspace",
}
BIN = Path(sys.executable).parent
_start = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _start:6.1f}s] {message}", flush=True)


@contextmanager
def sandbox_process(state_dir: Path, example: Path, agent_host: str | None = None):
    """Start `python -m dagster_plus_sandbox serve` on free ports; yield its JSON banner.
    `agent_host`: where its agent API listens (a Docker network's gateway, for a Docker agent)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_plus_sandbox",
            "serve",
            "--port",
            "0",
            "--json",
            "--state",
            str(state_dir / "sandbox.db"),
            "--scenario",
            str(example / "sandbox_scenario.yaml"),
            *(["--agent-host", agent_host] if agent_host else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            raise SystemExit(f"the Dagster+ sandbox did not start (exit code {process.wait()})")
        yield json.loads(line)
    finally:
        process.terminate()
        process.wait(timeout=10)


class Runner:
    """Runs the location's jobs in process, recorded in the instance; quiet unless verbose."""

    def __init__(self, instance, verbose: bool, deployment: str):
        from demo.location import defs

        self.defs, self.instance, self.verbose = defs, instance, verbose
        self.deployment = deployment  # the partition of every partitioned job

    def __call__(self, job: str, run_config: dict[str, Any] | None = None):
        config = dict(run_config or {})
        if not self.verbose:  # the event lines stay in the run's logs (make dev shows them)
            config["loggers"] = {"console": {"config": {"log_level": "CRITICAL"}}}
        job_def = self.defs.resolve_job_def(job)
        result = job_def.execute_in_process(
            instance=self.instance,
            run_config=config,
            raise_on_error=False,
            partition_key=self.deployment if job_def.partitions_def else None,
        )
        if not result.success:
            errors = [e.step_failure_data.error for e in result.all_events if e.is_step_failure]
            failures = [error.message.strip() for error in errors if error is not None]
            raise SystemExit(f"the {job} job failed:\n" + "\n".join(failures))
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=PROJECT_DIR / ".dagster_home",
        help="the Dagster instance to record the runs in (default: %(default)s)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=PROJECT_DIR / ".demo",
        help="where the example repository is copied and migrated",
    )
    parser.add_argument(
        "--agent",
        choices=["local", "docker"],
        default="local",
        help="the Hybrid agent to migrate to (docker: a Docker engine on a private socket, "
        "a local base image, a registry; see the README)",
    )
    parser.add_argument(
        "--example",
        choices=sorted(EXAMPLES),
        default="legacy",
        help="the repository to migrate: legacy (examples/serverless_repo, a dagster_cloud.yaml) "
        "or dg (examples/serverless_dg_workspace, a dg workspace of three projects)",
    )
    parser.add_argument(
        "--docker-dir",
        type=Path,
        help="with --agent docker: where the private Docker engine keeps its data, kept between "
        "runs as the images' cache (default: WORK_DIR/docker-engine)",
    )
    parser.add_argument(
        "--strategy",
        choices=["switch", "per_location"],
        default="switch",
        help="the cutover's strategy (target settings `strategy`): switch, or per_location "
        "(each location moved to the Hybrid agent through an agent queue before the switch)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print Dagster's event lines too (they are always in the run logs)",
    )
    args = parser.parse_args(argv)
    home = args.dagster_home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    work = args.work_dir.resolve()
    repo = work / "repo"
    shutil.rmtree(repo, ignore_errors=True)
    example = EXAMPLES[args.example]
    shutil.copytree(example, repo)
    os.environ["DAGSTER_HOME"] = str(home)

    with ExitStack() as stack:
        state_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="migration-demo-")))
        containers = (
            docker_setup(
                stack,
                work,
                args.docker_dir,
                tuple(lock.parent for lock in sorted(example.rglob("uv.lock"))),
            )
            if args.agent == "docker"
            else None
        )
        say(
            f"Starting the embedded Dagster+ sandbox: {example.name}'s Serverless 'prod' deployment"
        )
        sandbox = stack.enter_context(
            sandbox_process(state_dir, example, containers.gateway if containers else None)
        )
        say(
            f"Dagster+ sandbox: user API {sandbox['url']}, agent API {sandbox['agent_url']}; "
            f"migrating {repo}"
        )
        # The resource reads these through EnvVar when a run starts, as it would in Dagster+.
        os.environ.update(
            DAGSTER_CLOUD_URL=sandbox["url"],
            DAGSTER_CLOUD_DEPLOYMENT=sandbox["deployment"],
            DAGSTER_CLOUD_API_TOKEN=sandbox["admin_token"],
        )
        process_env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")

        from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

        instance = stack.enter_context(DagsterInstance.get())
        deployment = sandbox["deployment"]
        run = Runner(instance, args.verbose, deployment)

        say("1/6 The organization, then the inventory and plan of prod (a dry run: reads only)")
        organization = run("list_deployments").output_for_node("organization_inventory")
        say(
            f"    full deployments: {', '.join(d.name for d in organization.deployments)}; "
            f"each one to migrate is a partition; this demo migrates {deployment}"
        )
        plan_config: dict[str, Any] = {"project_dir": str(repo), "target": args.agent}
        if containers:
            plan_config.update(containers.plan_config(work, example.name == "serverless_repo"))
        settings_file = Path(plan_config.get("settings_file") or work / "target-settings.yaml")
        existing = settings_file.read_text() if "settings_file" in plan_config else ""
        if args.strategy != "switch":
            existing += f"strategy: {args.strategy}\n"
        exports = work / "exports"
        shutil.rmtree(exports, ignore_errors=True)
        exports.mkdir(parents=True)
        if example.name == "serverless_repo" and not containers:
            # The example's export_orders_job, run on the new agent before the migration is
            # called finished; its env vars reach the code through the agent (env_vars).
            existing += (
                "first_run: {analytics: export_orders_job}\n"
                "env_vars:\n  - ANALYTICS_EXPORT_LABEL=finance\n"
                f"  - ANALYTICS_EXPORT_DIR={exports}\n"
            )
        settings_file.write_text(existing)
        plan_config["settings_file"] = str(settings_file)
        planned = run("plan_migration", {"ops": {"migration_plan": {"config": plan_config}}})
        inventory = planned.output_for_node("serverless_inventory")
        plan = planned.output_for_node("migration_plan").plan
        print(plan.diff() or "(no file changes)", flush=True)
        print(plan.summary_markdown(), flush=True)

        say("2/6 Apply the plan (atomic writes, backups kept)")
        applied = run("apply_migration_files").output_for_node("hybrid_project_files")
        say(f"    wrote {', '.join(applied.written) or 'nothing'}")

        agent_name = "Docker" if containers else "Local"
        say(
            "3/6 Agent token, images (built, pushed, proven) and install files; start the real "
            f"{agent_name} agent"
        )
        run("create_agent_token")
        # The sandbox serves its agent API on a host of its own, as Dagster+ does; the agent's
        # config names it (for Dagster+ the agent derives it from its token).
        install = run(
            "prepare_hybrid_agent",
            {
                "ops": {
                    "hybrid_agent_install_files": {
                        "config": {"agent_api_url": sandbox["agent_url"]}
                    }
                }
            },
        ).output_for_node("hybrid_agent_install_files")
        say(f"    agent: {install.command}")
        if containers:
            from demo.docker import compose_agent

            stack.enter_context(
                compose_agent(Path(install.agent_dir), containers.docker_host, work / "agent")
            )
        else:
            stack.enter_context(
                background(["bash", "-c", install.command], work / "agent.log", process_env)
            )
        workspace = work / "workspace.yaml"
        workspace.write_text(
            "load_from:\n  - python_module:\n      module_name: demo.location\n"
            "      attribute: defs\n      location_name: migration_pipeline\n"
        )
        stack.enter_context(
            background(
                [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                work / "daemon.log",
                process_env,
                cwd=PROJECT_DIR,
            )
        )
        from migration_pipeline.plus.client import DagsterPlusClient

        client = stack.enter_context(
            DagsterPlusClient(sandbox["url"], sandbox["deployment"], sandbox["admin_token"])
        )
        label = install.agent_label
        wait_for(
            lambda: [a for a in client.agents() if a.label == label and a.is_running],
            90,
            f"the {agent_name} agent to heartbeat (its log: .demo/agent.log, or "
            ".demo/agent/agent.log for docker)",
        )
        say(
            f"    the {agent_name} agent ({label!r}) is RUNNING; it waits: the deployment is "
            "still Serverless"
        )

        cutover_started = time.time()
        if args.strategy == "per_location":
            say(
                "4/6 Cutover, per_location: each location to the Hybrid agent through its "
                "agent queue, one at a time, then the switch"
            )
        else:
            say("4/6 Cutover: switch to Hybrid (the no-agent window starts)")
        cutover = run("cutover")
        record = cutover.output_for_node("deactivate_serverless_agent")
        if args.strategy == "switch" and example.name == "serverless_repo":
            # Standing in for a schedule's tick while no agent serves yet: Dagster+ queues the
            # run; the Hybrid agent launches it once it serves analytics.
            queued = client.launch_run("analytics", "export_orders_job")
            status = getattr(client.run(queued), "status", "not found")
            say(
                f"    run {queued} of export_orders_job launched inside the no-agent window (as a "
                f"schedule's tick would be): {status}"
            )

        say("5/6 Waiting for hybrid_agent_ready_sensor (dagster-daemon) to launch the finish run")

        def finish_run():
            runs = instance.get_runs(
                RunsFilter(
                    job_name="finish_hybrid_migration",
                    tags={"dagster/run_key": f"finish:{cutover.run_id}"},
                )
            )
            if runs and runs[0].status == DagsterRunStatus.FAILURE:
                raise SystemExit("the finish run failed: see it with `make dev`")
            return runs[0] if runs and runs[0].status == DagsterRunStatus.SUCCESS else None

        finish = wait_for(finish_run, 300, "the finish run (see .demo/daemon.log)")
        say(f"    finish run {finish.run_id} succeeded")

        say("6/6 Report")
        report(
            instance,
            deployment,
            finish.run_id,
            inventory,
            record,
            applied,
            plan,
            client,
            install,
            containers,
            work / "downtime.json",
            sandbox_timeline(sandbox, deployment, inventory, cutover_started),
        )
    print(
        f"\nThe runs and their metadata are in {home}. To browse them: `make sandbox` in one "
        "terminal, `make dev` in another, then open http://127.0.0.1:3000.",
        flush=True,
    )
    return 0


def report(
    instance,
    deployment,
    finish_run_id,
    inventory,
    record,
    applied,
    plan,
    client,
    install,
    containers,
    downtime_file: Path,
    timeline,
) -> None:
    from dagster import DagsterEventType

    from migration_pipeline.deployments import (
        deployment_partitions,
        latest_materialization,
        progress,
    )

    agent = applied.target_name
    agent_files = sorted(p.name for p in Path(install.agent_dir).iterdir())

    finished = latest_materialization(instance, "hybrid_deployment", deployment)
    assert finished is not None and finished.asset_materialization is not None
    metadata: dict[str, Any] = dict(finished.asset_materialization.metadata)
    evaluations = [
        e.get_dagster_event().event_specific_data
        for e in instance.all_logs(finish_run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    ]
    # passed, or how it did not: a warning (WARN severity: the finish went on), or FAILED.
    checks = {
        evaluation.check_name: "passed"
        if evaluation.passed
        else "warned"
        if evaluation.severity.value == "WARN"
        else "FAILED"
        for evaluation in evaluations
    }
    runs_after = sum(client.run_counts_by_status().values())
    loaded = [e.name for e in client.workspace() if e.is_loaded]
    seconds = {k: v.value for k, v in metadata.items() if k.endswith("_seconds")}
    deployed = metadata["deployed_at"].value
    loading = f"loading {seconds['loading_seconds']:.1f}s"
    started = containers.code_servers_started_at() if containers else []
    if started:
        seconds["container_start_seconds"] = round(max(started) - deployed, 3)
        seconds["code_load_seconds"] = round(
            seconds["loading_seconds"] - seconds["container_start_seconds"], 3
        )
        loading += (
            f" (containers started {seconds['container_start_seconds']:.1f}s after the deploy, "
            f"their code loaded {seconds['code_load_seconds']:.1f}s later)"
        )
    unserved = {
        name: timeline.location_unserved_seconds(name) for name in timeline.location_unserved
    }
    downtime_file.write_text(
        json.dumps(
            {
                "agent": agent,
                "strategy": plan.strategy,
                "deployed_by": metadata["deployed_by"].value,
                **seconds,
                "cutover_to_verified_seconds": round(finished.timestamp - timeline.start, 3),
                "event_log_deployment_unserved_seconds": timeline.deployment_unserved_seconds,
                "event_log_location_unserved_seconds": unserved,
            },
            indent=2,
        )
        + "\n"
    )
    moves = latest_location_moves(instance, deployment) if plan.strategy != "switch" else None
    first_runs, first_run_ids = first_runs_summary(instance, finish_run_id)
    exports = downtime_file.parent / "exports"
    written = [path for run_id in first_run_ids for path in sorted(exports.glob(f"{run_id}/*/*"))]
    window_runs = window_runs_summary(instance, finish_run_id)
    deployer = (
        "the cutover run deployed at once: the agent was running"
        if metadata["deployed_by"].value == "cutover"
        else f"the sensor saw the agent {seconds['waiting_for_agent_seconds']:.1f}s after the "
        f"switch and the finish run deployed {seconds['until_deploy_seconds']:.1f}s later"
    )
    images = install_images(instance, deployment)
    partitions = deployment_partitions(instance)
    layout = (
        [
            f"Layout: {plan.layout_description.rsplit(' (', 1)[0]}",
            f"Location names kept: {len(plan.names_kept)}/{len(plan.locations)} "
            f"({', '.join(plan.locations)})",
        ]
        if plan.layout != "legacy"
        else []
    )
    lines = [
        *layout,
        "Deployments: "
        + ", ".join(f"{name} {progress(instance, name).summary()}" for name in partitions),
        f"Agent: {agent}",
        f"Strategy: {plan.strategy}",
        *(
            [
                f"  {m.location} moved to queue {m.queue!r}: served by neither agent "
                f"{m.unserved_seconds:.2f}s (the sandbox's event log: {unserved.get(m.location, 0):.2f}s)"
                for m in moves.moves
            ]
            if moves
            else []
        ),
        f"Downtime (no agent): {seconds['downtime_seconds']:.1f}s, from the switch to the "
        "agent's last load report"
        + (" (every location was on the Hybrid agent before the switch)" if moves else ""),
        *(
            []
            if moves
            else [
                f"  {deployer}; deploying {seconds['deploying_seconds']:.1f}s, {loading}",
            ]
        ),
        f"  (the finish run, launched by the sensor, verified it "
        f"{seconds['seen_loaded_seconds']:.1f}s after the window closed)",
        f"  The sandbox's event log: no agent served the deployment for "
        f"{timeline.deployment_unserved_seconds:.1f}s; each location was unserved for "
        + ", ".join(f"{name} {value:.1f}s" for name, value in sorted(unserved.items())),
        f"First runs: {first_runs}",
        *(
            [f"  its output, written through the job's filesystem I/O manager: {written[0]}"]
            if written
            else []
        ),
        f"Runs queued during the no-agent window: {window_runs}",
        f"Runs: {inventory.run_total} before, {runs_after} after",
        f"Locations LOADED on the Hybrid agent: {', '.join(loaded)}",
        f"Settings removed at cutover: {', '.join(record['settings_removed']) or 'none'}",
        "Branch deployments: "
        + (
            "in use; the agent's config serves them (dagster_cloud_api.branch_deployments: true)"
            if install.branch_deployments
            else "none in use"
        ),
        "Checks: " + ", ".join(f"{name} {outcome}" for name, outcome in sorted(checks.items())),
        "Project files written: " + (", ".join(applied.written) or "none"),
        f"Agent files (dagster_cloud_agent/{deployment}/): {', '.join(agent_files)} (the token "
        "file is 0600 and git-ignored)",
        *(
            [
                f"Images pushed: {len(images['pushed'])} ({', '.join(images['pushed'])})",
                f"Images proven: {len(images['proven'])} (each started by digest, its "
                "definitions loaded with `dagster definitions validate`)",
            ]
            if images["pushed"]
            else ["Images pushed: none (a Local agent runs code from its own Python environment)"]
        ),
        f"Warnings ({len(plan.warnings)}):",
        *[f"  - {w.where() + ': ' if w.where() else ''}{w.message}" for w in plan.warnings],
    ]
    print("\n".join(lines), flush=True)


def first_runs_summary(instance, finish_run_id: str) -> tuple[str, list[str]]:
    """What the finish's first_runs_succeed check said (its summary line), and the first runs'
    ids."""
    from dagster import DagsterEventType

    for event in instance.all_logs(finish_run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = event.get_dagster_event().event_specific_data
        if evaluation.check_name == "first_runs_succeed":
            runs = evaluation.metadata["runs"].value
            return evaluation.metadata["summary"].value, [r["run_id"] for r in runs.values()]
    return "not recorded", []


def window_runs_summary(instance, finish_run_id: str) -> str:
    """What the finish said of the runs created during the no-agent window."""
    from dagster import DagsterEventType

    for event in instance.all_logs(finish_run_id, of_type=DagsterEventType.ASSET_OBSERVATION):
        observation = event.get_dagster_event().event_specific_data.asset_observation
        if "runs_queued_in_window" in observation.metadata:
            runs = observation.metadata["runs_queued_in_window"].value
            return (
                "; ".join(f"{r['job']} {r['status']} (launched by {r['agent']})" for r in runs)
                or "none"
            )
    return "not recorded"


def latest_location_moves(instance, deployment: str):
    from migration_pipeline.cutover.moves import LOCATION_MOVES
    from migration_pipeline.records import latest

    return latest(instance, LOCATION_MOVES, deployment)


def sandbox_timeline(sandbox: dict[str, Any], deployment: str, inventory, since: float):
    """When the sandbox served each location from `since` (just before the cutover) to now,
    replayed from its event log (GET /_sandbox/events)."""
    import requests

    from dagster_plus_sandbox.serving import serving_timeline

    answer = requests.get(
        sandbox["url"] + "/_sandbox/events",
        headers={"Dagster-Cloud-Api-Token": sandbox["admin_token"]},
        timeout=10,
    )
    answer.raise_for_status()
    return serving_timeline(
        answer.json()["events"],
        deployment,
        "SERVERLESS",
        sandbox["timing"],
        since,
        time.time(),
        {
            loc["location_name"]: loc.get("agent_queue")
            for loc in inventory.locations_document["locations"]
        },
    )


def install_images(instance, deployment: str) -> dict[str, list[str]]:
    """The images the deployment's last code_location_images published, and those its proof
    started."""
    from migration_pipeline.images.prove import PROOF_CHECK, PROVEN_IMAGES
    from migration_pipeline.images.publish import IMAGES
    from migration_pipeline.records import latest_passed_check_record, required

    pushed = required(instance, IMAGES, "the report", deployment)
    return {
        "pushed": [image.image for _, image in sorted(pushed.items())],
        "proven": sorted(
            (
                latest_passed_check_record(instance, PROVEN_IMAGES, PROOF_CHECK, deployment) or {}
            ).values()
        ),
    }


def docker_setup(
    stack: ExitStack, work: Path, engine_dir: Path | None, uv_projects: tuple[Path, ...] = ()
):
    """The Docker engine, base image, registry and network of `--agent docker`; the base image
    can build the example's uv projects offline."""
    from demo.docker import DockerDemo

    say("0/6 Docker: a private engine, the local Python base image, a registry, a network")
    containers = stack.enter_context(DockerDemo.start(work, engine_dir, uv_projects))
    say(
        f"    engine {containers.docker_host}, base image {containers.base_image}, registry "
        f"{containers.registry}, network {containers.network} (gateway {containers.gateway})"
    )
    os.environ["DOCKER_HOST"] = containers.docker_host
    return containers


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TimeoutError as error:
        sys.exit(f"demo: {error}")
