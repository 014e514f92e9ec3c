"""Prepare the agent, cut over, finish, roll back: the part with downtime.

prepare_hybrid_agent  code_location_images, hybrid_agent_token, hybrid_agent_install_files
                      (Serverless still serves)
cutover               pre_cutover_snapshot, deactivate_serverless_agent (no agent from here)
(sensor)              hybrid_agent_ready_sensor launches finish once a Hybrid agent RUNS
finish_hybrid_migration  hybrid_locations + checks: nothing lost, all LOADED, the downtime
rollback_to_serverless   serverless_restored
"""

import json
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from migration_pipeline.defs.images import code_location_images, missing_images
from migration_pipeline.defs.project import (
    applied_cloud_yaml_problems,
    load_applied_cloud_yaml,
    target_and_settings,
)
from migration_pipeline.defs.resources import DAGSTER_PLUS_RETRY, DagsterPlusResource
from migration_pipeline.images.dockerfile import AGENT_DIR

CUTOVER_KEY = dg.AssetKey("deactivate_serverless_agent")
ROLLBACK_KEY = dg.AssetKey("serverless_restored")
AGENT_READY_TAG = "migration_pipeline/agent_ready_at"
CUTOVER_RUN_TAG = "migration_pipeline/cutover_run_id"


def _agent_dir(project_files: dict) -> Path:
    return Path(project_files["project_dir"]) / AGENT_DIR


# -- prepare -----------------------------------------------------------------------------------


@dg.asset(group_name="migration", kinds={"dagster"},
          description="One agent token for the Hybrid agent, stored at once where the target keeps "
          "secrets (a 0600 Secret manifest or env file, or AWS Secrets Manager). Found again by "
          "its description on re-execution: never a second one. Its value is never recorded.")
def hybrid_agent_token(context: dg.AssetExecutionContext, dagster_plus: DagsterPlusResource,
                       hybrid_project_files: dict) -> dg.Output[dict]:
    from migration_pipeline.cutover import agent_token_description, ensure_agent_token
    from migration_pipeline.secrets import store_agent_token

    target, settings = target_and_settings(hybrid_project_files)
    description = agent_token_description(dagster_plus.deployment)
    with dagster_plus.session(context) as client:
        token, created = ensure_agent_token(client, description)
    stored = store_agent_token(
        target.module.TOKEN_STORE, token.token, _agent_dir(hybrid_project_files),
        dagster_plus.deployment, namespace=getattr(settings, "namespace", None),
        aws_region=getattr(settings, "aws_region", None))
    organization = token.token.get_secret_value().split(":")[1]
    context.log.info(f"agent token {token.id} ({'created' if created else 'reused'}) stored in "
                     f"{stored.kind}: {stored.reference}")
    return dg.Output(
        {"token_id": token.id, "description": description, "store": stored.kind,
         "reference": stored.reference, "organization": organization},
        metadata={"token_id": token.id, "created": created, "description": description,
                  "stored_in": stored.kind, "reference": stored.reference},
    )


class AgentInstallConfig(dg.Config):
    agent_api_url: str = Field(
        default="", description="The agent API's URL, written into the agent's config. Leave "
        "empty for Dagster+: the agent derives https://<org>.agent[.<region>].dagster.cloud from "
        "its token. Set it for a stand-in such as the embedded sandbox (its agent_url).")


@dg.asset(group_name="migration", kinds={"dagster"},
          description="The files that install the Hybrid agent, as one would write them by hand: "
          "Helm values and manifests (kubernetes, azure), CloudFormation parameters (ecs), the "
          "agent's dagster.yaml and a compose file (docker) or run command (local). The agent "
          "reports a label unique to this migration; the readiness sensor waits for it.")
def hybrid_agent_install_files(context: dg.AssetExecutionContext, config: AgentInstallConfig,
                               dagster_plus: DagsterPlusResource, hybrid_project_files: dict,
                               hybrid_agent_token: dict) -> dg.Output[dict]:
    from migration_pipeline.files import write_if_changed
    from migration_pipeline.targets.agent import AgentSetup, migration_agent_label

    target, settings = target_and_settings(hybrid_project_files)
    agent_dir = _agent_dir(hybrid_project_files)
    label = migration_agent_label(dagster_plus.deployment, hybrid_agent_token["token_id"])
    setup = AgentSetup(
        organization=hybrid_agent_token["organization"], deployment=dagster_plus.deployment,
        agent_label=label, settings=settings, token_reference=hybrid_agent_token["reference"],
        agent_api_url=config.agent_api_url,
        branch_deployments=bool(hybrid_project_files.get("branch_deployments")))
    written = [name for name, text in target.module.agent_files(setup).items()
               if write_if_changed(agent_dir / name, text, 0o755 if name.endswith(".sh") else 0o644)]
    # Targets whose install files cannot carry a label (Dagster's ECS template has no such
    # parameter): the sensor then waits for an agent that was not there before the install.
    labelled = target.module.SETS_AGENT_LABEL
    with dagster_plus.session(context) as client:
        agents_before = [] if labelled else sorted(a.id for a in client.agents())
    command = target.module.agent_command(str(agent_dir))
    return dg.Output(
        {"agent_dir": str(agent_dir), "target": target.name, "command": command,
         "agent_label": label if labelled else None, "agents_before": agents_before,
         "branch_deployments": setup.branch_deployments},
        metadata={"agent_dir": str(agent_dir), "written": written,
                  "agent_label": label if labelled else "",
                  "agents_before": agents_before,
                  "branch_deployments": setup.branch_deployments,
                  "install": dg.MetadataValue.md(
                      f"Install and start the agent before the cutover (it waits, then serves "
                      f"at once):\n\n```sh\n{command}\n```")},
    )


# -- cutover -----------------------------------------------------------------------------------


def _check_plan_applied(project_files: dict) -> None:
    problems = applied_cloud_yaml_problems(project_files)
    if problems:
        raise dg.Failure("Preflight: the applied dagster_cloud.yaml is not valid:\n"
                         + "\n".join(str(p) for p in problems) + "\nNothing was changed.",
                         allow_retries=False)


@dg.asset(group_name="migration", kinds={"dagster"},
          description="Preflight (Organization Admin, plan applied, agent token stored, images in "
          "their registry), then what "
          "must survive the cutover: runs by status, the newest run ids, schedules and sensors, "
          "deployment settings, the locations document. Reads only.")
def pre_cutover_snapshot(context: dg.AssetExecutionContext, dagster_plus: DagsterPlusResource,
                         hybrid_project_files: dict, hybrid_agent_token: dict,
                         code_location_images: dict) -> dg.Output[dict]:
    from migration_pipeline.cutover import take_snapshot
    from migration_pipeline.plus import NotAuthorizedError

    _check_plan_applied(hybrid_project_files)
    missing = missing_images(code_location_images, hybrid_project_files)
    if missing:
        raise dg.Failure("Preflight: these images are not in their registry, so the Hybrid agent "
                         "could not start the locations:\n" + "\n".join(
                             f"  {name}: {why}" for name, why in missing.items())
                         + "\nPublish them first. Nothing was changed.", allow_retries=False)
    with dagster_plus.session(context) as client:
        try:
            client.agent_tokens()  # readable by Organization Admins only: changes nothing
        except NotAuthorizedError as error:
            raise dg.Failure(
                f"Preflight: the API token cannot switch the agent type. Organization Admin is "
                f"needed. Nothing was changed. ({error})", allow_retries=False) from None
        deployment = client.deployment_by_name(dagster_plus.deployment)
        if deployment.agent_type == "HYBRID":
            previous = context.instance.get_latest_materialization_event(context.asset_key)
            if previous is None:
                raise dg.Failure(f"{deployment.name} is already HYBRID and no snapshot was taken "
                                 "before: there is nothing to verify against.", allow_retries=False)
            snapshot = previous.asset_materialization.metadata["snapshot"].value
            context.log.info("already HYBRID: keeping the snapshot taken before the cutover")
        else:
            try:
                snapshot = take_snapshot(
                    client, deployment.id, deployment.agent_type,
                    tuple(hybrid_project_files.get("settings_removed_at_cutover") or ())).as_dict()
            except ValueError as error:
                raise dg.Failure(f"Preflight: {error}. Nothing was changed.",
                                 allow_retries=False) from None
    return dg.Output(snapshot, metadata={
        "runs": sum(snapshot["run_counts"].values()),
        "runs_by_status": dg.MetadataValue.json(snapshot["run_counts"]),
        "schedules_and_sensors": len(snapshot["instigators"]),
        "locations": len(snapshot["locations_document"].get("locations") or []),
        "snapshot": dg.MetadataValue.json(snapshot),
    })


@dg.asset(group_name="migration", kinds={"dagster"},
          description="Switches the deployment to HYBRID (the UI's 'Switch to Hybrid') and removes "
          "the deployment settings the plan removes (none unless the target settings ask). The "
          "no-agent window starts here. Switches once: an already HYBRID deployment is left as "
          "it is.")
def deactivate_serverless_agent(context: dg.AssetExecutionContext,
                                dagster_plus: DagsterPlusResource,
                                pre_cutover_snapshot: dict) -> dg.Output[dict]:
    from migration_pipeline.inventory import settings_after_cutover

    with dagster_plus.session(context) as client:
        deployment = client.deployment_by_name(dagster_plus.deployment)
        previous = context.instance.get_latest_materialization_event(context.asset_key)
        if deployment.agent_type == "HYBRID":
            switched = False
            cutover_time = (previous.asset_materialization.metadata["cutover_time"].value
                            if previous is not None else time.time())
            context.log.info(f"{deployment.name} is already HYBRID: not switching again")
        else:
            cutover_time = time.time()
            client.update_deployment_agent_type("HYBRID", deployment.id)
            switched = True
            context.log.warning(f"{deployment.name} switched to HYBRID: no agent serves it until "
                                "the Hybrid agent runs")
        kept, removed = settings_after_cutover(
            client.deployment_settings(),
            tuple(pre_cutover_snapshot.get("settings_removed_at_cutover") or ()))
        if removed:
            client.set_deployment_settings(kept)
            context.log.info(f"removed deployment settings: {', '.join(removed)}")
    return dg.Output(
        {"deployment": deployment.name, "cutover_time": cutover_time, "switched": switched,
         "settings_removed": list(removed)},
        metadata={"cutover_time": dg.MetadataValue.float(cutover_time),
                  "cutover_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cutover_time)),
                  "switched": switched, "settings_removed": list(removed)},
    )


# -- the sensor --------------------------------------------------------------------------------


INSTALL_FILES_KEY = dg.AssetKey("hybrid_agent_install_files")


def build_hybrid_agent_ready_sensor(minimum_interval_seconds: int = 10):
    """The sensor that launches the finish job once the migration's own Hybrid agent RUNS after
    the cutover. Every second counts while there is no agent, so it ticks often, with one
    `agents` query a tick and none before a cutover."""

    @dg.sensor(
        name="hybrid_agent_ready_sensor",
        job_name="finish_hybrid_migration",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches finish_hybrid_migration once per cutover, as soon as the agent "
        "with the migration's label is RUNNING with a recent heartbeat.",
    )
    def hybrid_agent_ready_sensor(context: dg.SensorEvaluationContext,
                                  dagster_plus: DagsterPlusResource):
        from migration_pipeline.cutover import migration_agents
        from migration_pipeline.plus import DagsterPlusError

        cutover = context.instance.get_latest_materialization_event(CUTOVER_KEY)
        if cutover is None:
            return dg.SkipReason("No cutover yet: nothing to wait for.")
        cutover_id = cutover.run_id
        if context.cursor == cutover_id:
            return dg.SkipReason(f"The finish run for cutover {cutover_id} was already requested.")
        rollback = context.instance.get_latest_materialization_event(ROLLBACK_KEY)
        if rollback is not None and rollback.timestamp > cutover.timestamp:
            return dg.SkipReason("Rolled back to Serverless after the last cutover.")
        install = context.instance.get_latest_materialization_event(INSTALL_FILES_KEY)
        if install is None:
            return dg.SkipReason("No agent install files were written (run prepare_hybrid_agent): "
                                 "no agent label to wait for.")
        metadata = install.asset_materialization.metadata
        label = metadata["agent_label"].value or None
        agents_before = list(metadata["agents_before"].value) if "agents_before" in metadata else []
        try:
            with dagster_plus.client() as client:
                agents = client.agents()
        except DagsterPlusError as error:
            return dg.SkipReason(f"Could not ask Dagster+ for its agents: {error}")
        now = time.time()
        ready = migration_agents(agents, label, agents_before, now)
        if not ready:
            wanted = f"label {label!r}" if label else "an agent not listed before the install"
            seen = ", ".join(f"{a.label or a.id} {a.status}" for a in agents) or "none"
            return dg.SkipReason(f"Waiting for the migration's agent ({wanted}) to be RUNNING "
                                 f"with a recent heartbeat; agents seen: {seen}. Start the agent.")
        context.update_cursor(cutover_id)
        return dg.RunRequest(
            run_key=f"finish:{cutover_id}",
            tags={AGENT_READY_TAG: str(now), CUTOVER_RUN_TAG: cutover_id},
        )

    return hybrid_agent_ready_sensor


# -- finish ------------------------------------------------------------------------------------


class FinishConfig(dg.Config):
    load_timeout_seconds: float = Field(default=600, description="How long to wait for LOADED.")
    poll_seconds: float = Field(default=1.0, description="How often to look.")


@dg.asset(group_name="migration", kinds={"dagster"},
          description="Deploys every location as the rewritten dagster_cloud.yaml says (only those "
          "that differ), waits until each is LOADED, and reports the downtime and its parts.")
def hybrid_locations(context: dg.AssetExecutionContext, config: FinishConfig,
                     dagster_plus: DagsterPlusResource, hybrid_project_files: dict,
                     code_location_images: dict,
                     deactivate_serverless_agent: dict) -> dg.Output[dict]:
    from migration_pipeline.cutover import deploy_document, deploy_what_differs, downtime_parts

    started = time.time()
    agent_ready_at = float(context.run.tags.get(AGENT_READY_TAG, started))
    cloud = load_applied_cloud_yaml(hybrid_project_files)
    merged = [cloud.merged_location(ref) for ref in cloud.locations]
    images = {name: image["image"] for name, image in code_location_images.items()}
    desired = deploy_document(merged, images)

    with dagster_plus.session(context) as client:
        to_deploy = deploy_what_differs(client, desired)
        context.log.info(f"deployed {', '.join(to_deploy)}" if to_deploy else
                         "every location is already deployed as planned: not redeploying")
        deployed = time.time()
        names = [loc["location_name"] for loc in desired["locations"]]
        entries = _wait_until_loaded(context, client, names, config)
    loaded = time.time()
    parts = downtime_parts(deactivate_serverless_agent["cutover_time"], agent_ready_at, started,
                           deployed, loaded)
    context.log.info(f"downtime {parts['downtime_seconds']:.1f}s: " + ", ".join(
        f"{k.removesuffix('_seconds')} {v:.1f}s" for k, v in parts.items() if k != "downtime_seconds"))
    return dg.Output(
        {"locations": names, "deployed": to_deploy, **parts},
        metadata={**{k: dg.MetadataValue.float(v) for k, v in parts.items()},
                  "deployed": to_deploy,
                  "load_status": dg.MetadataValue.json({e.name: e.load_status for e in entries})},
    )


def _wait_until_loaded(context, client, names: list[str], config: FinishConfig):
    deadline = time.monotonic() + config.load_timeout_seconds
    last_report = 0.0
    while True:
        entries = [e for e in client.workspace() if e.name in names]
        errors = {e.name: e.error for e in entries if e.error}
        if errors:
            raise dg.Failure("These code locations failed to load on the Hybrid agent:\n" + "\n".join(
                f"  {name}: {message}" for name, message in errors.items()), allow_retries=False)
        waiting = sorted(set(names) - {e.name for e in entries if e.is_loaded})
        if not waiting:
            return entries
        if time.monotonic() > deadline:
            raise dg.Failure(f"Still not LOADED after {config.load_timeout_seconds:g}s: "
                             f"{', '.join(waiting)}. Check the agent's logs; re-execute to wait "
                             "again (nothing is redeployed).", allow_retries=False)
        if time.monotonic() - last_report > 5:
            context.log.info(f"waiting for {len(waiting)} of {len(names)} locations to load: "
                             f"{', '.join(waiting[:10])}")
            last_report = time.monotonic()
        time.sleep(config.poll_seconds)


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec("no_run_lost", asset="hybrid_locations", blocking=True,
                          additional_deps=["pre_cutover_snapshot"],
                          description="Every run recorded before the cutover is still there and "
                          "no count of finished runs went down."),
        dg.AssetCheckSpec("schedules_and_sensors_kept", asset="hybrid_locations", blocking=True,
                          additional_deps=["pre_cutover_snapshot"],
                          description="Every schedule and sensor is in the running state it had "
                          "before."),
        dg.AssetCheckSpec("every_location_loaded", asset="hybrid_locations", blocking=True,
                          description="Every code location is LOADED on the Hybrid agent."),
        dg.AssetCheckSpec("deployment_settings_kept", asset="hybrid_locations", blocking=True,
                          additional_deps=["pre_cutover_snapshot"],
                          description="The deployment settings are as before, less only what "
                          "the plan removed at cutover."),
    ],
    ins={"pre_cutover_snapshot": dg.AssetIn()},
)
def verify_nothing_lost(dagster_plus: DagsterPlusResource, pre_cutover_snapshot: dict):
    """One read of Dagster+ (runs, their ids, the workspace), compared with the snapshot."""
    from migration_pipeline.cutover import (
        Snapshot,
        Verification,
        compare_instigators,
        compare_runs,
        compare_settings,
        instigator_states,
    )

    snapshot = Snapshot(**pre_cutover_snapshot)
    verification = Verification()
    with dagster_plus.client() as client:
        compare_runs(snapshot, client.run_counts_by_status(),
                     client.existing_run_ids(snapshot.newest_run_ids), verification)
        states, workspace = instigator_states(client)
        compare_settings(snapshot.settings_expected_after, client.deployment_settings(),
                         verification)
    compare_instigators(snapshot.instigators, states, verification)
    not_loaded = {e.name: e.error or e.load_status for e in workspace if not e.is_loaded}
    yield dg.AssetCheckResult(
        check_name="no_run_lost", passed=verification.runs_kept,
        metadata={"lost_run_ids": verification.lost_run_ids[:20],
                  "runs_checked": len(snapshot.newest_run_ids),
                  "runs_by_status_before_after": dg.MetadataValue.json(
                      {k: list(v) for k, v in verification.count_changes.items()})})
    yield dg.AssetCheckResult(
        check_name="schedules_and_sensors_kept", passed=not verification.instigator_changes,
        metadata={"checked": len(snapshot.instigators), "changed": dg.MetadataValue.json(
            {k: list(v) for k, v in verification.instigator_changes.items()})})
    yield dg.AssetCheckResult(
        check_name="every_location_loaded", passed=bool(workspace) and not not_loaded,
        metadata={"locations": len(workspace), "not_loaded": dg.MetadataValue.json(not_loaded)})
    yield dg.AssetCheckResult(
        check_name="deployment_settings_kept", passed=not verification.settings_changes,
        metadata={"removed_as_planned": list(snapshot.settings_removed_at_cutover),
                  "changed": dg.MetadataValue.json(
                      {k: list(v) for k, v in verification.settings_changes.items()})})


# -- rollback ----------------------------------------------------------------------------------


@dg.asset(group_name="migration", kinds={"dagster"},
          description="Back to Serverless: the agent type, the locations document and the "
          "deployment settings as the snapshot recorded them. Changes only what differs.")
def serverless_restored(context: dg.AssetExecutionContext, dagster_plus: DagsterPlusResource,
                        pre_cutover_snapshot: dict) -> dg.Output[dict]:
    from migration_pipeline.plus import OutcomeUnknownError

    restored = []
    with dagster_plus.session(context) as client:
        deployment = client.deployment_by_name(dagster_plus.deployment)
        if deployment.agent_type != pre_cutover_snapshot["agent_type"]:
            client.update_deployment_agent_type(pre_cutover_snapshot["agent_type"], deployment.id)
            restored.append("agent_type")
        document = pre_cutover_snapshot["locations_document"]
        if _canonical(client.locations_as_document()) != _canonical(document):
            try:
                client.reconcile_locations(document)
            except OutcomeUnknownError:
                # Send it once more only if the lost request did not take effect.
                if _canonical(client.locations_as_document()) != _canonical(document):
                    client.reconcile_locations(document)
            restored.append("locations_document")
        if client.deployment_settings() != pre_cutover_snapshot["settings"]:
            client.set_deployment_settings(pre_cutover_snapshot["settings"])
            restored.append("settings")
    context.log.info(f"restored: {', '.join(restored) or 'nothing (already as before)'}")
    return dg.Output({"restored": restored, "at": time.time()},
                     metadata={"restored": restored,
                               "agent_type": pre_cutover_snapshot["agent_type"]})


def _canonical(document: dict) -> str:
    return json.dumps(document, sort_keys=True)


# -- jobs --------------------------------------------------------------------------------------

prepare_agent_job = dg.define_asset_job(
    "prepare_hybrid_agent",
    selection=[code_location_images, hybrid_agent_token, hybrid_agent_install_files],
    executor_def=dg.in_process_executor, op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Publish the images; create and store the agent token; write the agent's install "
    "files. Serverless still serves: install the agent now, it waits for the cutover.")

cutover_job = dg.define_asset_job(
    "cutover", selection=[pre_cutover_snapshot, deactivate_serverless_agent],
    executor_def=dg.in_process_executor, op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Preflight, snapshot, switch to HYBRID. The no-agent window starts here; the "
    "sensor finishes as soon as a Hybrid agent runs.")

finish_job = dg.define_asset_job(
    "finish_hybrid_migration", selection=dg.AssetSelection.assets(hybrid_locations),
    executor_def=dg.in_process_executor, op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Deploy the Hybrid locations, wait until LOADED, verify nothing was lost.")

rollback_job = dg.define_asset_job(
    "rollback_to_serverless", selection=[serverless_restored],
    executor_def=dg.in_process_executor, op_retry_policy=DAGSTER_PLUS_RETRY,
    description="Switch back to SERVERLESS and restore the locations document and settings.")
