"""The finish core: wait until every Hybrid location is LOADED (the deploy is in the cutover
core, which either run makes), verify that nothing was lost, and split the no-agent window into
its parts. Functions take a client (and a clock where time matters) and return plain data;
nothing here knows Dagster."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.plus.types import LocationEntry
    from migration_pipeline.snapshot import Snapshot

TERMINAL_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")
# -- waiting -----------------------------------------------------------------------------------


class LoadError(Exception):
    """Locations failed to load on the Hybrid agent."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__(
            "These code locations failed to load on the Hybrid agent:\n"
            + "\n".join(f"  {name}: {message}" for name, message in errors.items())
        )


class LoadTimeout(Exception):
    """Locations were still not LOADED when the time was up."""

    def __init__(self, seconds: float, waiting: list[str], last_error: str | None = None):
        self.waiting = waiting
        super().__init__(
            f"Still not LOADED after {seconds:g}s: {', '.join(waiting)}. Check the "
            "agent's logs; re-execute to wait again (nothing is redeployed)."
            + (f" Dagster+ last answered: {last_error}" if last_error else "")
        )


def wait_until_loaded(
    client: DagsterPlusClient,
    names: list[str],
    timeout_seconds: float,
    poll_seconds: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[list[str]], None] | None = None,
    progress_every_seconds: float = 5.0,
    error_settle_seconds: float = 0.0,
) -> list[LocationEntry]:
    """The workspace once every named location is LOADED. Raises `LoadError` once a load error
    has stood for `error_settle_seconds` (an agent that loaded the deployment's previous
    document between the switch and the deploy reports that attempt's error, then loads the
    deploy), and `LoadTimeout` when `timeout_seconds` pass; calls `progress(waiting)` now and
    then. Inside the no-agent window a transient answer (Dagster+ unavailable after the
    client's own retries, a server error, a lost answer) is not fatal: the wait goes on until
    `timeout_seconds`; only an error no retry fixes (a rejected token) ends it at once."""
    from migration_pipeline.plus.errors import (
        DagsterPlusPythonError,
        DagsterPlusUnavailableError,
        OutcomeUnknownError,
    )

    deadline = clock() + timeout_seconds
    last_report = float("-inf")
    errors_since: dict[tuple[str, str], float] = {}  # (location, error) -> first seen
    last_error: str | None = None
    while True:
        try:
            entries = [e for e in client.workspace() if e.name in names]
        except (DagsterPlusUnavailableError, DagsterPlusPythonError, OutcomeUnknownError) as error:
            last_error = str(error)
            if clock() > deadline:
                raise LoadTimeout(timeout_seconds, sorted(names), last_error) from None
            sleep(poll_seconds)
            continue
        now = clock()
        errors_since = {
            (e.name, e.error): errors_since.get((e.name, e.error), now) for e in entries if e.error
        }
        settled = {
            name: error
            for (name, error), since in errors_since.items()
            if now - since >= error_settle_seconds
        }
        if settled:
            raise LoadError(settled)
        waiting = sorted(set(names) - {e.name for e in entries if e.is_loaded})
        if not waiting:
            return entries
        if now > deadline:
            if errors_since:
                raise LoadError({name: error for name, error in errors_since})
            raise LoadTimeout(timeout_seconds, waiting, last_error)
        if progress is not None and now - last_report >= progress_every_seconds:
            progress(waiting)
            last_report = now
        sleep(poll_seconds)


# -- verifying ---------------------------------------------------------------------------------


@dataclass
class Verification:
    lost_run_ids: list[str] = field(default_factory=list)
    count_changes: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # status -> (before, after)
    instigator_changes: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    not_loaded: dict[str, str] = field(default_factory=dict)  # location -> LOADING | error
    locations: int = 0
    # setting -> (expected, found): what differs from the snapshot less the planned removals
    settings_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def runs_kept(self) -> bool:
        """No run lost: every recorded run id is still there, and no count of finished runs went
        down (runs may finish or start meanwhile, so counts may only grow)."""
        finished_went_down = any(
            after < before
            for status, (before, after) in self.count_changes.items()
            if status in TERMINAL_STATUSES
        )
        total_before = sum(before for before, _ in self.count_changes.values())
        total_after = sum(after for _, after in self.count_changes.values())
        return not self.lost_run_ids and not finished_went_down and total_after >= total_before

    @property
    def every_location_loaded(self) -> bool:
        return self.locations > 0 and not self.not_loaded


def compare_runs(
    snapshot: Snapshot,
    counts_now: dict[str, int],
    present_ids: set[str],
    verification: Verification,
) -> None:
    verification.lost_run_ids = [r for r in snapshot.newest_run_ids if r not in present_ids]
    for status in sorted(set(snapshot.run_counts) | set(counts_now)):
        before, after = snapshot.run_counts.get(status, 0), counts_now.get(status, 0)
        verification.count_changes[status] = (before, after)


def compare_instigators(
    before: dict[str, str], after: dict[str, str], verification: Verification
) -> None:
    verification.instigator_changes = {
        key: (before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def compare_settings(
    expected: dict[str, Any], found: dict[str, Any], verification: Verification
) -> None:
    verification.settings_changes = {
        key: (expected.get(key), found.get(key))
        for key in sorted(set(expected) | set(found))
        if expected.get(key) != found.get(key)
    }


def verify(client: DagsterPlusClient, snapshot: Snapshot) -> Verification:
    """One read of Dagster+ (runs, their ids, the workspace, the settings), compared with the
    snapshot taken before the cutover."""
    from migration_pipeline.snapshot import instigator_states

    verification = Verification()
    compare_runs(
        snapshot,
        client.run_counts_by_status(),
        client.existing_run_ids(snapshot.newest_run_ids),
        verification,
    )
    states, workspace = instigator_states(client)
    compare_instigators(snapshot.instigators, states, verification)
    compare_settings(snapshot.settings_expected_after, client.deployment_settings(), verification)
    verification.locations = len(workspace)
    verification.not_loaded = {
        e.name: e.error or e.load_status for e in workspace if not e.is_loaded
    }
    return verification


# -- the window --------------------------------------------------------------------------------


def downtime_parts(
    cutover_at: float,
    agent_ready_at: float,
    deploy_started_at: float,
    deployed_at: float,
    loaded_at: float,
    reported_at: float | None = None,
    deployed_any: bool = True,
) -> dict[str, float]:
    """The no-agent window and its parts: from the switch to every location LOADED. The window
    ends when Dagster+ got the agent's last load report (`reported_at`, its workspace entries'
    updatedTimestamp) when that is known, else when the finish run saw every location LOADED
    (`loaded_at`). `until_deploy_seconds`: from the agent seen running to the deploy (the
    finish run's launch; about nothing when the cutover run deployed, its agent running
    already). `seen_loaded_seconds`: how much later the finish run saw the end.

    When nothing was deployed after the switch and the agent's last report came before it (the
    per_location strategy moved every location to the Hybrid agent first, and they were still
    LOADED on it after the switch, never reloaded), there was no window: it ends at the switch.
    """
    if not deployed_any and reported_at is not None and reported_at <= cutover_at:
        return {
            "downtime_seconds": 0.0,
            "waiting_for_agent_seconds": 0.0,
            "until_deploy_seconds": 0.0,
            "deploying_seconds": 0.0,
            "loading_seconds": 0.0,
            "seen_loaded_seconds": round(loaded_at - cutover_at, 3),
        }
    # Another machine's clock: kept within the part of the window it belongs to.
    ended_at = loaded_at if reported_at is None else min(max(reported_at, deployed_at), loaded_at)
    return {
        "downtime_seconds": round(ended_at - cutover_at, 3),
        "waiting_for_agent_seconds": round(agent_ready_at - cutover_at, 3),
        "until_deploy_seconds": round(deploy_started_at - agent_ready_at, 3),
        "deploying_seconds": round(deployed_at - deploy_started_at, 3),
        "loading_seconds": round(ended_at - deployed_at, 3),
        "seen_loaded_seconds": round(loaded_at - ended_at, 3),
    }
