"""The one state channel: everything this code location hands from one run to a later one is a
typed, versioned record (`lib.record`: each phase declares its own beside its type), written and
read here and nowhere else.

- An asset's value (the inventories, the plan, the applied project, the images, the agent's
  install files) is recorded by `RecordsIOManager` as JSON in its materialization's metadata
  (visible in the UI) and loaded from there by whatever reads it later; no pickle crosses runs.
- A record an asset, op or check writes beside the value (the agent token, the agent's
  identity, the pre-cutover snapshot, the deploy document, the proven images) goes through
  `record_metadata` and is read by `latest`/`required` (`latest_passed_check_record` for a
  check's); the switch and the cutover's deploy are tags on the cutover run (`switch_tags`,
  `deploy_tags`), written the moment they happen.

A record this version cannot read fails the step at once (`readable`), saying which record,
which versions or field, and what to do.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import dagster as dg

from migration_pipeline.lib.plain import UnreadableRecord
from migration_pipeline.lib.record import Record, asset_value_kind, record_entries, typed_record

T = TypeVar("T")


def record_metadata(kind: Record[T], value: T) -> dict[str, dg.MetadataValue]:
    """The metadata entries that record `value` as `kind` (its JSON and its version)."""
    entries = record_entries(kind, value)
    return {
        kind.entry: dg.MetadataValue.json(entries[kind.entry]),
        kind.version_entry: dg.MetadataValue.int(entries[kind.version_entry]),
    }


@contextmanager
def readable() -> Iterator[None]:
    """Where a record is typed again: one this version cannot read fails the step at once with
    what to do, never through the retry policy."""
    try:
        yield
    except UnreadableRecord as error:
        raise dg.Failure(str(error), allow_retries=False) from None


def latest_materialization(
    instance: dg.DagsterInstance, key: str | dg.AssetKey, deployment: str
) -> dg.EventLogRecord | None:
    """The newest materialization of one deployment's partition of an asset."""
    asset_key = key if isinstance(key, dg.AssetKey) else dg.AssetKey(key)
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[deployment]), limit=1
    )
    return result.records[0] if result.records else None


def latest(instance: dg.DagsterInstance, kind: Record[T], deployment: str | None) -> T | None:
    """The record of the newest materialization of `kind`'s asset (the deployment's partition;
    None: an unpartitioned asset); None when there is none."""
    key = dg.AssetKey(kind.asset)
    if deployment is None:
        event = instance.get_latest_materialization_event(key)
        materialization = event.asset_materialization if event is not None else None
    else:
        record = latest_materialization(instance, key, deployment)
        materialization = record.asset_materialization if record is not None else None
    if materialization is None:
        return None
    metadata = {name: value.value for name, value in materialization.metadata.items()}
    with readable():
        return typed_record(kind, metadata)


def required(
    instance: dg.DagsterInstance, kind: Record[T], needed_by: str, deployment: str | None
) -> T:
    """`latest`, or a clear Failure naming the job that records it."""
    value = latest(instance, kind, deployment)
    if value is None:
        where = f" of {deployment}" if deployment else ""
        raise dg.Failure(
            f"{needed_by}{where} needs the {kind.what} ({kind.asset}), which has not been "
            f"recorded{' for it' if deployment else ''} yet: run {kind.writer} first.",
            allow_retries=False,
        )
    return value


def latest_passed_check_record(
    instance: dg.DagsterInstance, kind: Record[T], check_name: str, deployment: str
) -> T | None:
    """The record of `kind` in the newest result of the asset check `check_name` on `kind`'s
    asset, for the deployment, when that result passed; None when it failed or never ran."""
    from dagster._core.event_api import PartitionKeyFilter

    key = dg.AssetCheckKey(dg.AssetKey(kind.asset), check_name)
    execution = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [key], partition_filter=PartitionKeyFilter(key=deployment)
    ).get(key)
    event = execution.event if execution is not None else None
    evaluation = event.dagster_event.event_specific_data if event and event.dagster_event else None
    if not isinstance(evaluation, dg.AssetCheckEvaluation) or not evaluation.passed:
        return None
    with readable():
        return typed_record(kind, {k: v.value for k, v in evaluation.metadata.items()})


RECORDS_IO_MANAGER = "records_io_manager"


class RecordsIOManager(dg.IOManager):
    """Asset values as versioned records in their materializations' metadata: what a later run
    loads is what the UI shows, typed again by this version (or refused, saying why).

    `record_modules`: each asset whose value it keeps -> the module that declares its record
    (beside the value's type), imported when a value is first written or read, not when the
    code location loads (definitions.py wires it)."""

    def __init__(self, record_modules: Mapping[str, str]) -> None:
        self._record_modules = dict(record_modules)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        context.add_output_metadata(dict(record_metadata(self._kind(context.asset_key), obj)))

    def load_input(self, context: dg.InputContext) -> Any:
        kind = self._kind(context.asset_key)
        deployment = context.asset_partition_key if context.has_asset_partitions else None
        return required(context.instance, kind, f"{context.op_def.name}'s input", deployment)

    def _kind(self, key: dg.AssetKey) -> Record[Any]:
        return asset_value_record(key.to_user_string(), self._record_modules)


def asset_value_record(asset: str, record_modules: Mapping[str, str]) -> Record[Any]:
    """The record that is `asset`'s value, its declaring module imported on first use."""
    if asset in record_modules:
        importlib.import_module(record_modules[asset])
    kind = asset_value_kind(asset)
    if kind is None:  # a programming error: every asset with a value declares its record
        raise dg.Failure(
            f"{asset} declares no record (lib.record.Record; definitions.ASSET_VALUE_MODULES)"
        )
    return kind


# -- the cutover run's tags: the switch and the deploy ---------------------------------------

TAGS_VERSION = 1
TAGS_VERSION_TAG = "migration_pipeline/records_version"
CUTOVER_AT_TAG = "migration_pipeline/cutover_at"  # on the cutover run that switched
# On a cutover run that deployed the Hybrid locations itself (its agent was running already).
DEPLOY_STARTED_TAG = "migration_pipeline/deploy_started_at"
DEPLOYED_AT_TAG = "migration_pipeline/deployed_at"
DEPLOYED_LOCATIONS_TAG = "migration_pipeline/deployed_locations"


def switch_tags(cutover_at: float) -> dict[str, str]:
    """The tags that record the switch on the cutover run (at once, before anything else)."""
    return {CUTOVER_AT_TAG: repr(cutover_at), TAGS_VERSION_TAG: str(TAGS_VERSION)}


def deploy_tags(started: float, deployed_at: float, locations: list[str]) -> dict[str, str]:
    """The tags that record the deploy a cutover run made itself."""
    return {
        DEPLOY_STARTED_TAG: repr(started),
        DEPLOYED_AT_TAG: repr(deployed_at),
        DEPLOYED_LOCATIONS_TAG: ",".join(locations),
        TAGS_VERSION_TAG: str(TAGS_VERSION),
    }


@dataclass(frozen=True)
class CutoverRecord:
    run_id: str
    created_at: float  # when the cutover run was created
    cutover_at: float  # when the deployment was switched
    ended_at: float | None
    # When the cutover run deployed the Hybrid locations itself (None: the finish run does).
    deploy_started_at: float | None = None
    deployed_at: float | None = None
    deployed_locations: tuple[str, ...] = ()


def cutover_from_run(record: dg.RunRecord) -> CutoverRecord:
    """The switch (and the deploy, if it made one) a cutover run's tags record; a tag this
    version cannot read is a Failure that says which run and what to do."""
    tags = record.dagster_run.tags
    run = record.dagster_run.run_id[:8]
    version = tags.get(TAGS_VERSION_TAG, "1")
    with readable():
        if version != str(TAGS_VERSION):
            raise UnreadableRecord(
                f"the switch recorded on cutover run {run} was recorded by another version of "
                f"this code location (record version {version!r}; this one reads "
                f"{TAGS_VERSION}): finish or roll back with the version that switched"
            )
        try:
            return CutoverRecord(
                record.dagster_run.run_id,
                record.create_timestamp.timestamp(),
                float(tags[CUTOVER_AT_TAG]),
                record.end_time,
                float(tags[DEPLOY_STARTED_TAG]) if DEPLOY_STARTED_TAG in tags else None,
                float(tags[DEPLOYED_AT_TAG]) if DEPLOYED_AT_TAG in tags else None,
                tuple(filter(None, tags.get(DEPLOYED_LOCATIONS_TAG, "").split(","))),
            )
        except ValueError as error:
            raise UnreadableRecord(
                f"the switch recorded on cutover run {run} is not a time ({error}): its tags "
                f"were edited; set {CUTOVER_AT_TAG} back to the time of the switch"
            ) from None


def log_check_evaluation(
    context: dg.OpExecutionContext, evaluation: dg.AssetCheckEvaluation
) -> None:
    """Record an asset check's result from an op that recorded the asset (the cutover's snapshot,
    the finish's Hybrid deployment), as the check itself would."""
    # OpExecutionContext.log_event handles AssetCheckEvaluation; its annotation omits it.
    context.log_event(evaluation)  # type: ignore[arg-type]
