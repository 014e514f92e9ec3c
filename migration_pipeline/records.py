"""What one run hands a later one: each data asset's materialization carries its value as a JSON
`record` in its metadata, visible in the UI, so the ops of a later job (token, cutover, finish)
read exactly what the asset recorded, typed again by its dataclass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

RECORD = "record"


def record_metadata(value: dict[str, Any]) -> dict[str, dg.MetadataValue]:
    return {RECORD: dg.MetadataValue.json(value)}


def latest_record(
    instance: dg.DagsterInstance, key: str | dg.AssetKey, needed_by: str, deployment: str
) -> dict[str, Any]:
    """The record of the newest materialization of the deployment's partition of the asset; a
    clear Failure when there is none."""
    return latest_entry(instance, key, RECORD, needed_by, deployment)


def latest_entry(
    instance: dg.DagsterInstance,
    key: str | dg.AssetKey,
    entry_name: str,
    needed_by: str,
    deployment: str,
) -> dict[str, Any]:
    """One JSON metadata entry of the newest materialization of the deployment's partition of
    the asset; a clear Failure when there is none (not materialized yet, or by an older version
    of this code location that did not record it)."""
    from migration_pipeline.deployments import latest_materialization

    asset_key = key if isinstance(key, dg.AssetKey) else dg.AssetKey(key)
    event = latest_materialization(instance, asset_key, deployment)
    value = None
    if event is not None and event.asset_materialization is not None:
        entry = event.asset_materialization.metadata.get(entry_name)
        value = entry.value if entry is not None else None
    if not isinstance(value, dict):
        what = (
            "which has not been materialized for it yet"
            if event is None
            else f"whose newest materialization has no {entry_name!r} (made by an older version "
            "of this code location)"
        )
        raise dg.Failure(
            f"{needed_by} of {deployment} needs {asset_key.to_user_string()}, {what}: run the "
            "job that makes it first.",
            allow_retries=False,
        )
    return value


@contextmanager
def readable() -> Iterator[None]:
    """Where a record is typed again: one this version cannot read fails the step at once with
    what to do (`lib.plain.from_plain` says which field), never through the retry policy."""
    from migration_pipeline.lib.plain import UnreadableRecord

    try:
        yield
    except UnreadableRecord as error:
        raise dg.Failure(str(error), allow_retries=False) from None


def log_check_evaluation(
    context: dg.OpExecutionContext, evaluation: dg.AssetCheckEvaluation
) -> None:
    """Record an asset check's result from an op that recorded the asset (the cutover's snapshot,
    the finish's Hybrid deployment), as the check itself would."""
    # OpExecutionContext.log_event handles AssetCheckEvaluation; its annotation omits it.
    context.log_event(evaluation)  # type: ignore[arg-type]
