"""The cutover core: what must survive (the snapshot), what to deploy, whether it survived.

The functions that read Dagster+ take a client; the decisions (what to deploy, what was lost,
how long the deployment had no agent) are pure functions over plain data.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from migration_pipeline.plus import DagsterPlusClient, OutcomeUnknownError
from migration_pipeline.plus.types import Agent, AgentToken

NEWEST_RUNS_KEPT = 100
TERMINAL_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")


@dataclass(frozen=True)
class Snapshot:
    """What must survive the cutover, read just before it."""

    deployment: str
    deployment_id: int
    agent_type: str
    taken_at: float
    run_counts: dict[str, int]
    newest_run_ids: list[str]
    instigators: dict[str, str]  # "location/kind/name" -> RUNNING | STOPPED
    settings: dict[str, Any]
    locations_document: dict[str, Any]
    # The deployment settings the plan removes at cutover (none unless the target settings ask).
    settings_removed_at_cutover: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def settings_expected_after(self) -> dict[str, Any]:
        from migration_pipeline.inventory import settings_after_cutover

        return settings_after_cutover(self.settings, tuple(self.settings_removed_at_cutover))[0]


def instigator_states(client: DagsterPlusClient) -> tuple[dict[str, str], list[Any]]:
    workspace = client.workspace()
    states = {f"{i.location}/{i.kind}/{i.name}": i.status for e in workspace for i in e.instigators}
    return states, workspace


def take_snapshot(client: DagsterPlusClient, deployment_id: int, agent_type: str,
                  settings_removed_at_cutover: tuple[str, ...] = ()) -> Snapshot:
    states, workspace = instigator_states(client)
    not_loaded = [e.name for e in workspace if not e.is_loaded]
    if not_loaded:
        # Schedules and sensors of a location that is not loaded cannot be read, so nothing
        # could verify them afterwards.
        raise ValueError(f"these code locations are not loaded, so their schedules and sensors "
                         f"cannot be recorded: {', '.join(not_loaded)}; fix them first")
    return Snapshot(
        deployment=client.deployment,
        deployment_id=deployment_id,
        agent_type=agent_type,
        taken_at=time.time(),
        run_counts=client.run_counts_by_status(),
        newest_run_ids=[r.run_id for r in client.runs(limit=NEWEST_RUNS_KEPT)],
        instigators=states,
        settings=client.deployment_settings(),
        locations_document=client.locations_as_document(),
        settings_removed_at_cutover=tuple(settings_removed_at_cutover),
    )


# -- the agent token ---------------------------------------------------------------------------


def agent_token_description(deployment: str) -> str:
    return f"migration_pipeline: Hybrid agent for {deployment}"


def ensure_agent_token(client: DagsterPlusClient, description: str) -> tuple[AgentToken, bool]:
    """The live agent token with this description, created if there is none: (token, created).
    Never creates a second one, even when a creation's answer was lost."""
    existing = [t for t in client.agent_tokens() if t.description == description and not t.revoked]
    if existing:
        return existing[0], False
    try:
        return client.create_agent_token(description), True
    except OutcomeUnknownError:
        found = [t for t in client.agent_tokens() if t.description == description and not t.revoked]
        if found:
            return found[0], True
        # Dagster+ has no such token: the lost request never took effect, so send it once more.
        return client.create_agent_token(description), True


# -- deploying ---------------------------------------------------------------------------------

DEPLOY_KEYS = ("location_name", "code_source", "working_directory", "executable_path",
               "attribute", "container_context", "agent_queue", "image")


def deploy_document(merged_locations: list[dict[str, Any]], images: dict[str, str]
                    ) -> dict[str, Any]:
    """The locations document to deploy: each location as the rewritten dagster_cloud.yaml says
    (defaults merged, `build` set aside) with its image, as `dagster-cloud ci deploy` sends it."""
    locations = []
    for merged in merged_locations:
        location = {k: merged[k] for k in DEPLOY_KEYS if merged.get(k) not in (None, {}, [])}
        if merged["location_name"] in images:
            location["image"] = images[merged["location_name"]]
        locations.append(location)
    return {"locations": locations}


def deploy_what_differs(client: DagsterPlusClient, desired: dict[str, Any]) -> list[str]:
    """Deploy the desired locations Dagster+ does not have as desired; returns their names.
    A deploy whose answer was lost is checked against the document, not sent again."""
    to_deploy = locations_to_deploy(client.locations_as_document(), desired)
    if not to_deploy:
        return []
    try:
        client.deploy_locations({"locations": [loc for loc in desired["locations"]
                                               if loc["location_name"] in to_deploy]})
    except OutcomeUnknownError:
        still = locations_to_deploy(client.locations_as_document(), desired)
        if still:  # the lost request never took effect: send what is missing once more
            client.deploy_locations({"locations": [loc for loc in desired["locations"]
                                                   if loc["location_name"] in still]})
    return to_deploy


def locations_to_deploy(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """Names of the desired locations that Dagster+ does not have exactly as desired."""
    have = {loc.get("location_name"): loc for loc in current.get("locations") or []}
    return [loc["location_name"] for loc in desired["locations"]
            if have.get(loc["location_name"]) != loc]


# -- verifying ---------------------------------------------------------------------------------


@dataclass
class Verification:
    lost_run_ids: list[str] = field(default_factory=list)
    count_changes: dict[str, tuple[int, int]] = field(default_factory=dict)  # status -> (before, after)
    instigator_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    not_loaded: dict[str, str] = field(default_factory=dict)  # location -> LOADING | error
    # setting -> (expected, found): what differs from the snapshot less the planned removals
    settings_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def runs_kept(self) -> bool:
        """No run lost: every recorded run id is still there, and no count of finished runs went
        down (runs may finish or start meanwhile, so counts may only grow)."""
        finished_went_down = any(after < before for status, (before, after)
                                 in self.count_changes.items() if status in TERMINAL_STATUSES)
        total_before = sum(before for before, _ in self.count_changes.values())
        total_after = sum(after for _, after in self.count_changes.values())
        return not self.lost_run_ids and not finished_went_down and total_after >= total_before


def compare_runs(snapshot: Snapshot, counts_now: dict[str, int], present_ids: set[str],
                 verification: Verification) -> None:
    verification.lost_run_ids = [r for r in snapshot.newest_run_ids if r not in present_ids]
    for status in sorted(set(snapshot.run_counts) | set(counts_now)):
        before, after = snapshot.run_counts.get(status, 0), counts_now.get(status, 0)
        verification.count_changes[status] = (before, after)


def compare_instigators(before: dict[str, str], after: dict[str, str],
                        verification: Verification) -> None:
    verification.instigator_changes = {
        key: (before.get(key), after.get(key))
        for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)
    }


def compare_settings(expected: dict[str, Any], found: dict[str, Any],
                     verification: Verification) -> None:
    verification.settings_changes = {
        key: (expected.get(key), found.get(key))
        for key in sorted(set(expected) | set(found)) if expected.get(key) != found.get(key)
    }


# -- the new agent -----------------------------------------------------------------------------

# How old the last heartbeat of a RUNNING agent may be for it to count as serving (the real
# agent heartbeats every 30 s).
RECENT_HEARTBEAT_SECONDS = 90.0


def migration_agents(agents: list[Agent], label: str | None, agents_before: list[str],
                     now: float) -> list[Agent]:
    """The agents that are the migration's own and serve now: RUNNING with a recent heartbeat
    and the label its install files set (or, for a target whose install cannot set a label, not
    among the agents listed before it was installed). Nothing here depends on how Dagster+
    shows its Serverless agent."""
    return [a for a in agents
            if a.is_running and a.heartbeated_within(RECENT_HEARTBEAT_SECONDS, now)
            and (a.label == label if label else a.id not in agents_before)]


def downtime_parts(cutover_at: float, agent_ready_at: float, deploy_started_at: float,
                   deployed_at: float, loaded_at: float) -> dict[str, float]:
    """The no-agent window (cutover to every location LOADED) and its parts."""
    return {
        "downtime_seconds": round(loaded_at - cutover_at, 3),
        "waiting_for_agent_seconds": round(agent_ready_at - cutover_at, 3),
        "until_finish_started_seconds": round(deploy_started_at - agent_ready_at, 3),
        "deploying_seconds": round(deployed_at - deploy_started_at, 3),
        "loading_seconds": round(loaded_at - deployed_at, 3),
    }
