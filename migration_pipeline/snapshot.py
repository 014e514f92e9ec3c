"""What must survive the cutover: read just before the switch (runs, schedules and sensors, the
deployment settings, the locations document), verified against by the finish, restored by the
rollback, and the document the deploy may not go over where it changed since. Shared by those
three phases, so none of them reaches into another for it. Plain data and a client; nothing
here knows Dagster."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migration_pipeline.lib.record import dataclass_record

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.plus.types import Instigator, LocationEntry

NEWEST_RUNS_KEPT = 100


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

    @property
    def settings_expected_after(self) -> dict[str, Any]:
        from migration_pipeline.inventory.core import settings_after_cutover

        return settings_after_cutover(self.settings, tuple(self.settings_removed_at_cutover))[0]


def instigator_key(instigator: Instigator) -> str:
    """How the snapshot names a schedule or sensor: "location/kind/name"."""
    return f"{instigator.location}/{instigator.kind}/{instigator.name}"


def instigator_states(client: DagsterPlusClient) -> tuple[dict[str, str], list[LocationEntry]]:
    workspace = client.workspace()
    states = {instigator_key(i): i.status for e in workspace for i in e.instigators}
    return states, workspace


def not_loaded(workspace: list[LocationEntry]) -> list[str]:
    """Locations whose schedules and sensors cannot be read, so nothing could verify them."""
    return [e.name for e in workspace if not e.is_loaded]


SNAPSHOT = dataclass_record(
    Snapshot, "pre-cutover snapshot", "pre_cutover_snapshot", "cutover", entry="snapshot"
)


def take_snapshot(
    client: DagsterPlusClient,
    deployment_id: int,
    agent_type: str,
    settings_removed_at_cutover: tuple[str, ...] = (),
    clock: Callable[[], float] = time.time,
) -> Snapshot:
    states, _ = instigator_states(client)
    return Snapshot(
        deployment=client.deployment,
        deployment_id=deployment_id,
        agent_type=agent_type,
        taken_at=clock(),
        run_counts=client.run_counts_by_status(),
        newest_run_ids=[r.run_id for r in client.runs(limit=NEWEST_RUNS_KEPT)],
        instigators=states,
        settings=client.deployment_settings(),
        locations_document=client.locations_as_document(),
        settings_removed_at_cutover=tuple(settings_removed_at_cutover),
    )
