"""The one deploy of the migration: the recorded deploy document, onto a deployment a cutover
switched to HYBRID, only where Dagster+ still has what the pre-cutover snapshot saw. The cutover
run calls it when the migration's agent already runs; otherwise the finish run does."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dagster as dg

from migration_pipeline.deployments import latest_cutover
from migration_pipeline.images.publish import DEPLOY_DOCUMENT
from migration_pipeline.records import deploy_tags, latest, required
from migration_pipeline.snapshot import SNAPSHOT

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient


@dataclass(frozen=True)
class Deployed:
    """What the finish's deploy op hands to the next op (as plain data)."""

    locations: tuple[str, ...]
    deployed: tuple[str, ...]  # the locations that differed, so were deployed
    started_at: float
    deployed_at: float
    at_cutover: bool = False  # the cutover run deployed, its agent running already


@dataclass(frozen=True)
class PlannedDeploy:
    locations: tuple[str, ...]  # every planned location
    deployed: tuple[str, ...]  # those deployed now
    left_alone: tuple[str, ...]  # changed in Dagster+ since the snapshot: not deployed over


def deploy_planned_locations(
    instance: dg.DagsterInstance, client: DagsterPlusClient
) -> PlannedDeploy:
    """Deploy every location as the recorded deploy document says (the applied project's
    locations with their published images): only those Dagster+ does not have so, so a second
    call deploys nothing, and never over a location changed since the pre-cutover snapshot (a
    newer image the CI shipped). Refuses (nothing deployed) a deployment that is not HYBRID or
    has no recorded switch."""
    deployment = client.deployment_by_name(client.deployment)
    cutover = latest_cutover(instance, deployment.name)
    snapshot = latest(instance, SNAPSHOT, deployment.name)
    if cutover is None or snapshot is None or deployment.agent_type != "HYBRID":
        why = (
            "no cutover switched it (run the cutover job first)"
            if cutover is None or snapshot is None
            else f"it is {deployment.agent_type} (rolled back since the cutover?)"
        )
        raise dg.Failure(
            f"{deployment.name}: the Hybrid locations are deployed only onto a deployment a "
            f"cutover switched to HYBRID, and {why}. Nothing was deployed.",
            allow_retries=False,
        )
    desired = required(instance, DEPLOY_DOCUMENT, "the deploy", deployment.name)
    deployed, left_alone = deploy_what_differs(client, desired, snapshot.locations_document)
    return PlannedDeploy(
        tuple(loc["location_name"] for loc in desired["locations"]),
        tuple(deployed),
        tuple(left_alone),
    )


def deploy_at_once(
    instance: dg.DagsterInstance,
    client: DagsterPlusClient,
    cutover_run_id: str,
    clock: Callable[[], float] = time.time,
) -> tuple[PlannedDeploy | None, str]:
    """The cutover run's deploy, right after its switch, when the migration's agent already
    runs (the window is then the agent's load time alone), recorded on the run as it happens;
    (None, why not) when the agent does not run yet or the deploy failed: the finish run that
    hybrid_agent_ready_sensor launches deploys then. Never raises: the cutover run has
    switched, and its failing would say otherwise."""
    from migration_pipeline.agent.serving import AGENT_IDENTITY, migration_agents
    from migration_pipeline.plus.errors import DagsterPlusError

    try:
        identity = latest(instance, AGENT_IDENTITY, client.deployment)
        if identity is None:
            return None, "no agent install files were recorded: the finish run deploys"
        if not migration_agents(client.agents(), identity, clock()):
            return None, (
                "the migration's agent is not running yet: hybrid_agent_ready_sensor launches "
                "the finish run, which deploys, as soon as it runs"
            )
        started = clock()
        planned = deploy_planned_locations(instance, client)
    except (DagsterPlusError, dg.Failure) as error:
        return None, f"not deployed now ({error}): the finish run deploys"
    instance.add_run_tags(cutover_run_id, deploy_tags(started, clock(), list(planned.deployed)))
    return planned, ""


def left_alone_message(names: tuple[str, ...]) -> str:
    return (
        f"not deployed over {', '.join(names)}: changed in Dagster+ since the pre-cutover "
        "snapshot (a newer image your CI shipped, say), so left as it is"
    )


def locations_to_deploy(
    current: dict[str, Any], desired: dict[str, Any], before: dict[str, Any] | None = None
) -> tuple[list[str], list[str]]:
    """(to deploy, left alone): the desired locations Dagster+ does not have exactly as desired.
    Of those, one that Dagster+ has otherwise than `before` (the pre-cutover snapshot's
    document) left it was changed since by someone else (the new CI shipped an image, say): it
    is left alone, never put back to the migration's older image."""
    from migration_pipeline.plus.types import locations_by_name

    have, had = locations_by_name(current), locations_by_name(before)
    to_deploy: list[str] = []
    left_alone: list[str] = []
    for loc in desired["locations"]:
        name = loc["location_name"]
        if have.get(name) == loc:
            continue
        changed_since = before is not None and name in have and have[name] != had.get(name)
        (left_alone if changed_since else to_deploy).append(name)
    return to_deploy, left_alone


def deploy_what_differs(
    client: DagsterPlusClient, desired: dict[str, Any], before: dict[str, Any] | None = None
) -> tuple[list[str], list[str]]:
    """Deploy the desired locations Dagster+ does not have as desired, except those changed
    since `before` (see `locations_to_deploy`); returns (deployed, left alone). A deploy whose
    answer was lost is checked against the document, not sent again."""
    from migration_pipeline.plus.errors import OutcomeUnknownError

    def only(names: list[str]) -> dict[str, Any]:
        return {"locations": [loc for loc in desired["locations"] if loc["location_name"] in names]}

    to_deploy, left_alone = locations_to_deploy(client.locations_as_document(), desired, before)
    if not to_deploy:
        return [], left_alone
    try:
        client.deploy_locations(only(to_deploy))
    except OutcomeUnknownError:
        current = client.locations_as_document()
        still = [name for name in to_deploy if name in locations_to_deploy(current, desired)[0]]
        if still:  # the lost request never took effect: send what is missing once more
            client.deploy_locations(only(still))
    return to_deploy, left_alone
