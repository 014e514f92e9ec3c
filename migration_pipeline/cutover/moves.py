"""The per_location strategy's core: while the deployment is still Serverless, move its code
locations to the Hybrid agent one at a time through an agent queue (the mixed setup of
Dagster's guide "Deploying to both Serverless and Hybrid code locations": the Serverless agent
serves the default queue only, a Hybrid agent a named one). Each move deploys one location
with its Hybrid image and the queue, waits until the Hybrid agent reports it LOADED, and checks
its schedules and sensors are all there; a location that fails goes back to its Serverless
document at once and the moves stop. The switch afterwards deactivates a Serverless agent that
serves nothing. Plain data and a client; nothing here knows Dagster."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from migration_pipeline.lib.record import dataclass_record
from migration_pipeline.plus.types import locations_by_name

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.plus.types import LocationEntry
    from migration_pipeline.snapshot import Snapshot

# Agents serve queues from dagster-cloud 1.6.0 on (Dagster's docs, "Routing requests to
# specific agents").
QUEUES_SINCE = "1.6.0"


@dataclass(frozen=True)
class LocationMove:
    """One location's move, as it happened."""

    location: str
    queue: str | None
    moved: bool  # False: it was on the queue and LOADED already (a re-run), or left alone
    deployed_at: float | None
    reported_at: float | None  # Dagster+'s time of the Hybrid agent's report (updatedTimestamp)
    unserved_seconds: float  # from the deploy to the report: served by neither agent
    left_alone: bool = False  # changed in Dagster+ since the snapshot: not deployed over

    def as_row(self) -> list[Any]:
        state = "left alone" if self.left_alone else "moved" if self.moved else "already there"
        return [self.location, self.queue or "(default)", state, f"{self.unserved_seconds:.2f}s"]


@dataclass(frozen=True)
class LocationMoves:
    """What the cutover's moves did, recorded as the hybrid_location_moves asset."""

    deployment: str
    strategy: str  # switch | per_location
    queue: str | None
    moves: tuple[LocationMove, ...] = ()
    failed: str | None = None  # the location that did not load (sent back), if one did not
    reason: str | None = None

    @property
    def every_location_moved(self) -> bool:
        return self.failed is None and not any(m.left_alone for m in self.moves)

    @property
    def longest_unserved_seconds(self) -> float:
        return max((m.unserved_seconds for m in self.moves), default=0.0)


LOCATION_MOVES = dataclass_record(
    LocationMoves, "location moves", "hybrid_location_moves", "cutover", entry="location_moves"
)


class MoveFailed(Exception):
    """A location did not load on the Hybrid agent: it was sent back to its Serverless
    document, and the locations after it were not moved."""

    def __init__(self, location: str, reason: str, moved: list[LocationMove], sent_back: bool):
        self.location, self.moved, self.sent_back = location, moved, sent_back
        back = (
            "it was sent back to its Serverless document (the default queue) at once"
            if sent_back
            else "sending it back failed too: redeploy its Serverless document (see the "
            "pre_cutover_snapshot) or run rollback_to_serverless"
        )
        done = ", ".join(m.location for m in moved) or "none"
        super().__init__(
            f"{location} did not load on the Hybrid agent: {reason}. {back}. Moved before it "
            f"(still on the Hybrid agent, served): {done}. The deployment is still SERVERLESS; "
            "fix the cause and run the cutover again (moved locations are not moved twice)."
        )


def version_serves_queues(version: str | None) -> bool:
    """Whether an agent of this dagster-cloud version serves agent queues (1.6.0 on)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version or "") >= Version(QUEUES_SINCE)
    except InvalidVersion:
        return False


class UnknownMoveOrder(ValueError):
    """move_order names a location the deploy document lacks (nothing was changed)."""


def move_order(desired: dict[str, Any], first: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The locations in the order they move: those named in `first` (the target settings'
    move_order) in that order, then the rest in the deploy document's (the plan's) order."""
    planned = [loc["location_name"] for loc in desired["locations"]]
    unknown = [name for name in first if name not in planned]
    if unknown:
        raise UnknownMoveOrder(
            f"move_order names {', '.join(unknown)}, which the plan does not deploy (it has "
            f"{', '.join(planned)})"
        )
    return [*dict.fromkeys(first), *[name for name in planned if name not in first]]


def move_one_at_a_time(
    client: DagsterPlusClient,
    desired: dict[str, Any],
    snapshot: Snapshot,
    timeout_seconds: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    on_moved: Callable[[LocationMove], None] | None = None,
    first: list[str] | tuple[str, ...] = (),
) -> list[LocationMove]:
    """Move each desired location (its Hybrid document, with its agent queue) in turn, each
    LOADED on the Hybrid agent with every schedule and sensor the snapshot saw before the
    next; returns the moves. Idempotent: a location Dagster+ has as desired and LOADED already
    is not deployed again. Raises `MoveFailed` (after sending the failed location back to its
    snapshot document) when one does not load, fails to load, or lacks an instigator, and
    `UnknownMoveOrder` before anything changes."""
    from migration_pipeline.finish.core import LoadError, LoadTimeout, wait_until_loaded
    from migration_pipeline.finish.deploy import deploy_what_differs

    wanted = locations_by_name(desired)
    before = snapshot.locations_document
    serverless = locations_by_name(before)
    order = move_order(desired, first)
    moves: list[LocationMove] = []
    for name in order:
        document = wanted[name]
        started = clock()
        deployed, left_alone = deploy_what_differs(client, {"locations": [document]}, before)
        if left_alone:
            move = LocationMove(name, document.get("agent_queue"), False, None, None, 0.0, True)
            moves.append(move)
            if on_moved:
                on_moved(move)
            continue
        try:
            entries = wait_until_loaded(
                client, [name], timeout_seconds, poll_seconds, clock=clock, sleep=sleep
            )
            missing = _missing_instigators(name, snapshot, entries[0])
            if missing:
                raise LoadError({name: "its " + ", ".join(missing) + " are not there"})
        except (LoadError, LoadTimeout) as error:
            sent_back = _send_back(client, serverless.get(name))
            raise MoveFailed(name, str(error).strip(), moves, sent_back) from None
        reported = entries[0].updated_at
        unserved = max(0.0, (reported or clock()) - started) if deployed else 0.0
        move = LocationMove(
            name,
            document.get("agent_queue"),
            bool(deployed),
            started if deployed else None,
            reported,
            round(unserved, 3),
        )
        moves.append(move)
        if on_moved:
            on_moved(move)
    return moves


def keep_serverless_documents(
    snapshot: Snapshot, previous: Snapshot | None, desired: dict[str, Any]
) -> Snapshot:
    """The snapshot a re-run of a per_location cutover takes, with the Serverless document of
    each location an earlier run moved already: a location Dagster+ now has exactly as the
    migration deploys it, and that the previous snapshot had otherwise, keeps the previous
    snapshot's document. Without this a stopped cutover run again would record the moved
    locations' Hybrid documents as what to roll back to."""
    from dataclasses import replace

    if previous is None:
        return snapshot
    wanted = locations_by_name(desired)
    had = locations_by_name(previous.locations_document)
    kept = []
    for loc in snapshot.locations_document.get("locations") or []:
        name = loc.get("location_name")
        moved_by_us = name in had and loc == wanted.get(name) and had[name] != loc
        kept.append(had[name] if moved_by_us else loc)
    return replace(snapshot, locations_document={**snapshot.locations_document, "locations": kept})


def _missing_instigators(name: str, snapshot: Snapshot, entry: LocationEntry) -> list[str]:
    from migration_pipeline.snapshot import instigator_key

    had = {key for key in snapshot.instigators if key.startswith(f"{name}/")}
    return sorted(had - {instigator_key(i) for i in entry.instigators})


def _send_back(client: DagsterPlusClient, serverless_document: dict[str, Any] | None) -> bool:
    from migration_pipeline.plus.errors import DagsterPlusError

    if serverless_document is None:
        return False
    try:
        client.deploy_locations({"locations": [serverless_document]})
    except DagsterPlusError:
        return False
    return True
