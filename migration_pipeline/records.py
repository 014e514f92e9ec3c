"""The one state channel: everything this code location hands from one run to a later one is a
typed, versioned record, written and read here and nowhere else.

- An asset's value (the inventories, the plan, the applied project, the images, the agent's
  install files) is recorded by `RecordsIOManager` as JSON in its materialization's metadata
  (visible in the UI) and loaded from there by whatever reads it later; no pickle crosses runs.
- A record an op writes (the agent token, the pre-cutover snapshot, the deploy document) goes
  through `record_metadata`; the switch and the cutover's deploy are tags on the cutover run
  (`switch_tags`, `deploy_tags`), written the moment they happen.

Each record names its version. One this code wrote reads as it was written; an older one is
upgraded (or, where no upgrade exists, refused with the job to run again); a newer one (a later
version of this code location wrote it, then it was downgraded) is refused. A refusal is a
`dg.Failure` that says which record, which versions and what to do, never a `TypeError`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import dagster as dg

from migration_pipeline.lib.plain import UnreadableRecord

if TYPE_CHECKING:
    from migration_pipeline.agent.install import AgentInstall
    from migration_pipeline.agent.token import RecordedToken
    from migration_pipeline.cutover.core import Snapshot
    from migration_pipeline.images.publish import PublishedImage
    from migration_pipeline.inventory.core import Inventory
    from migration_pipeline.inventory.organization import OrganizationInventory
    from migration_pipeline.plan.applied import AppliedProject
    from migration_pipeline.plan.model import PlannedMigration

T = TypeVar("T")


@dataclass(frozen=True)
class Record(Generic[T]):
    """One kind of record: where it lives, its version, and how it becomes plain JSON and back.

    `upgrades[n]` turns version n's plain data into version n+1's; `legacy` reads the
    materialization metadata written before the record had an entry of its own (version 0)."""

    what: str  # as the messages name it
    asset: str  # the asset whose materializations carry it
    writer: str  # the job that records it again
    version: int
    to_plain: Callable[[T], Any]
    from_plain: Callable[[Any, Record[T]], T]  # raises UnreadableRecord
    entry: str = "record"
    upgrades: Mapping[int, Callable[[Any], Any]] = field(default_factory=dict)
    legacy: Callable[[Mapping[str, Any]], Any] | None = None

    @property
    def version_entry(self) -> str:
        return f"{self.entry}_version"


def record_metadata(kind: Record[T], value: T) -> dict[str, dg.MetadataValue]:
    """The metadata entries that record `value` as `kind` (its JSON and its version)."""
    return {
        kind.entry: dg.MetadataValue.json(kind.to_plain(value)),
        kind.version_entry: dg.MetadataValue.int(kind.version),
    }


def typed_record(kind: Record[T], metadata: Mapping[str, Any]) -> T:
    """The record of `kind` in one materialization's metadata (raw values, not MetadataValues),
    upgraded to this version and typed."""
    raw = metadata.get(kind.entry)
    version = metadata.get(kind.version_entry)
    if raw is None:
        raw, version = (kind.legacy(metadata), 0) if kind.legacy is not None else (None, 0)
        if raw is None:
            raise UnreadableRecord(
                f"the newest materialization of {kind.asset} holds no {kind.what}: an older "
                f"version of this code location made it, before it recorded one; run "
                f"{kind.writer} again"
            )
    # Records written before records carried a version are version 1: the same shape.
    version = 1 if version is None else version
    if not isinstance(version, int) or isinstance(version, bool) or version > kind.version:
        raise UnreadableRecord(
            f"the {kind.what} was recorded by a newer version of this code location (record "
            f"version {version!r}; this one reads up to {kind.version}): run the newer version, "
            f"or run {kind.writer} again with this one"
        )
    while version < kind.version:
        upgrade = kind.upgrades.get(version)
        if upgrade is None:
            raise UnreadableRecord(
                f"the {kind.what} was recorded by an older version of this code location "
                f"(record version {version}; this one reads {kind.version}, with no upgrade "
                f"from it): run {kind.writer} again"
            )
        raw, version = upgrade(raw), version + 1
    return kind.from_plain(raw, kind)


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


def _raw_metadata(event: dg.EventLogRecord | None) -> dict[str, Any] | None:
    if event is None or event.asset_materialization is None:
        return None
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def latest(instance: dg.DagsterInstance, kind: Record[T], deployment: str | None) -> T | None:
    """The record of the newest materialization of `kind`'s asset (the deployment's partition;
    None: an unpartitioned asset); None when there is none."""
    key = dg.AssetKey(kind.asset)
    if deployment is None:
        event = instance.get_latest_materialization_event(key)
        metadata = (
            {k: v.value for k, v in event.asset_materialization.metadata.items()}
            if event is not None and event.asset_materialization is not None
            else None
        )
    else:
        metadata = _raw_metadata(latest_materialization(instance, key, deployment))
    if metadata is None:
        return None
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


# -- the records ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    from migration_pipeline.lib.plain import as_plain

    return as_plain(value)


def _typed(cls_path: str) -> Callable[[Any, Record[Any]], Any]:
    """from_plain for the dataclass at `module:Class`, imported when a record is read."""

    def read(raw: Any, kind: Record[Any]) -> Any:
        import importlib

        from migration_pipeline.lib.plain import from_plain

        module, name = cls_path.split(":")
        return from_plain(
            getattr(importlib.import_module(module), name), raw, kind.what, kind.writer
        )

    return read


def _inventory_from(raw: Any, kind: Record[Any]) -> Inventory:
    from migration_pipeline.inventory.core import inventory_from
    from migration_pipeline.lib.problems import InvalidInput

    try:
        return inventory_from(raw, "the recorded serverless_inventory")
    except InvalidInput as error:
        raise UnreadableRecord(
            f"the inventory recorded earlier cannot be read by this version of the code "
            f"location ({error}): run {kind.writer} again"
        ) from None


def _plan_plain(planned: PlannedMigration) -> dict[str, Any]:
    return {
        "project_dir": planned.project_dir,
        "plan": _plain(planned.plan),
        "settings": planned.settings.model_dump(mode="json"),
    }


def _plan_from(raw: Any, kind: Record[Any]) -> PlannedMigration:
    from pydantic import ValidationError

    from migration_pipeline.plan.model import MigrationPlan, PlannedMigration
    from migration_pipeline.targets import get_target

    if not isinstance(raw, dict) or not {"project_dir", "plan", "settings"} <= set(raw):
        raise UnreadableRecord(
            "the migration plan recorded earlier is not a plan this version can read: run "
            "plan_migration again"
        )
    plan = _typed("migration_pipeline.plan.model:MigrationPlan")(raw["plan"], kind)
    assert isinstance(plan, MigrationPlan)
    try:
        settings = get_target(plan.target).settings_model.model_validate(raw["settings"])
    except (ValidationError, KeyError, ValueError) as error:
        raise UnreadableRecord(
            f"the target settings recorded with the migration plan cannot be read by this "
            f"version ({str(error).splitlines()[0]}): run plan_migration again"
        ) from None
    return PlannedMigration(str(raw["project_dir"]), plan, settings)


def _images_plain(images: dict[str, PublishedImage]) -> dict[str, Any]:
    return {name: _plain(image) for name, image in sorted(images.items())}


def _images_from(raw: Any, kind: Record[Any]) -> dict[str, PublishedImage]:
    if not isinstance(raw, dict):
        raise UnreadableRecord(
            "the published images recorded earlier are not a mapping of location to image: "
            "run prepare_hybrid_agent again"
        )
    read = _typed("migration_pipeline.images.publish:PublishedImage")
    return {str(name): read(image, kind) for name, image in raw.items()}


def _document_sha256(document: Any) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _deploy_document_plain(document: dict[str, Any]) -> dict[str, Any]:
    return {"document": document, "sha256": _document_sha256(document)}


def _deploy_document_from(raw: Any, kind: Record[Any]) -> dict[str, Any]:
    """The document, once its hash says it is the one recorded (a record edited since, in the
    event log, is refused: it is not what the plan and the images were checked against)."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("document"), dict)
        or _document_sha256(raw["document"]) != raw.get("sha256")
    ):
        raise UnreadableRecord(
            f"the {kind.what} recorded with the images does not match its recorded sha256: "
            f"run {kind.writer} again"
        )
    return raw["document"]


def _deploy_document_v1(metadata: Mapping[str, Any]) -> Any:
    # Before version 1 the document and its hash were two entries of their own.
    document, digest = metadata.get("deploy_document"), metadata.get("deploy_document_sha256")
    if document is None:
        return None
    return {"document": document, "sha256": digest or _document_sha256(document)}


def _token_v1(metadata: Mapping[str, Any]) -> Any:
    # Before version 1 the token's fields were the materialization's own metadata entries.
    fields = ("token_id", "description", "store", "reference", "organization")
    return {name: metadata[name] for name in fields if name in metadata} or None


ORGANIZATION_INVENTORY: Record[OrganizationInventory] = Record(
    "organization inventory",
    "organization_inventory",
    "inventory_organization",
    1,
    _plain,
    _typed("migration_pipeline.inventory.organization:OrganizationInventory"),
)
INVENTORY: Record[Inventory] = Record(
    "Serverless inventory",
    "serverless_inventory",
    "inventory_serverless_deployment",
    1,
    lambda inventory: inventory.as_dict(),
    _inventory_from,
)
PLAN: Record[PlannedMigration] = Record(
    "migration plan", "migration_plan", "plan_migration", 1, _plan_plain, _plan_from
)
APPLIED_PROJECT: Record[AppliedProject] = Record(
    "applied project",
    "hybrid_project_files",
    "apply_migration_files",
    1,
    _plain,
    _typed("migration_pipeline.plan.applied:AppliedProject"),
)
IMAGES: Record[dict[str, PublishedImage]] = Record(
    "published images",
    "code_location_images",
    "prepare_hybrid_agent",
    1,
    _images_plain,
    _images_from,
)
DEPLOY_DOCUMENT: Record[dict[str, Any]] = Record(
    "deploy document",
    "code_location_images",
    "prepare_hybrid_agent",
    1,
    _deploy_document_plain,
    _deploy_document_from,
    entry="deploy",
    legacy=_deploy_document_v1,
    upgrades={0: lambda raw: raw},
)
AGENT_TOKEN: Record[RecordedToken] = Record(
    "agent token record",
    "hybrid_agent_token",
    "create_agent_token",
    1,
    _plain,
    _typed("migration_pipeline.agent.token:RecordedToken"),
    legacy=_token_v1,
    upgrades={0: lambda raw: raw},
)
AGENT_INSTALL: Record[AgentInstall] = Record(
    "agent install files record",
    "hybrid_agent_install_files",
    "prepare_hybrid_agent",
    1,
    _plain,
    _typed("migration_pipeline.agent.install:AgentInstall"),
)
SNAPSHOT: Record[Snapshot] = Record(
    "pre-cutover snapshot",
    "pre_cutover_snapshot",
    "cutover",
    1,
    _plain,
    _typed("migration_pipeline.cutover.core:Snapshot"),
    entry="snapshot",
)

# The records that are asset values: RecordsIOManager writes and loads these.
ASSET_VALUES = {
    kind.asset: kind
    for kind in (ORGANIZATION_INVENTORY, INVENTORY, PLAN, APPLIED_PROJECT, IMAGES, AGENT_INSTALL)
}
RECORDS_IO_MANAGER = "records_io_manager"


class RecordsIOManager(dg.ConfigurableIOManager):
    """Asset values as versioned records in their materializations' metadata: what a later run
    loads is what the UI shows, typed again by this version (or refused, saying why)."""

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        context.add_output_metadata(dict(record_metadata(self._kind(context.asset_key), obj)))

    def load_input(self, context: dg.InputContext) -> Any:
        kind = self._kind(context.asset_key)
        deployment = context.asset_partition_key if context.has_asset_partitions else None
        return required(context.instance, kind, f"{context.op_def.name}'s input", deployment)

    @staticmethod
    def _kind(key: dg.AssetKey) -> Record[Any]:
        kind = ASSET_VALUES.get(key.to_user_string())
        if kind is None:  # a programming error: every asset with a value has a record
            raise dg.Failure(f"{key.to_user_string()} has no record kind in records.py")
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


@functools.cache
def record_kinds() -> tuple[Record[Any], ...]:
    """Every kind of record, for the tests and the docs."""
    return (
        ORGANIZATION_INVENTORY,
        INVENTORY,
        PLAN,
        APPLIED_PROJECT,
        IMAGES,
        DEPLOY_DOCUMENT,
        AGENT_TOKEN,
        AGENT_INSTALL,
        SNAPSHOT,
    )


def log_check_evaluation(
    context: dg.OpExecutionContext, evaluation: dg.AssetCheckEvaluation
) -> None:
    """Record an asset check's result from an op that recorded the asset (the cutover's snapshot,
    the finish's Hybrid deployment), as the check itself would."""
    # OpExecutionContext.log_event handles AssetCheckEvaluation; its annotation omits it.
    context.log_event(evaluation)  # type: ignore[arg-type]
