"""The one state channel (issue 21, scenario 9): every record kept between runs is written and
read by `migration_pipeline.records` (each declared beside its type, `lib.record`), carries its
version, and one this version cannot read is
refused by name with what to do, never a `TypeError` or a silent default."""

from __future__ import annotations

import dagster as dg
import pytest

from migration_pipeline.agent.install import AGENT_INSTALL, AgentInstall
from migration_pipeline.agent.serving import AGENT_IDENTITY, AgentIdentity
from migration_pipeline.agent.token import AGENT_TOKEN, RecordedToken
from migration_pipeline.cutover.moves import LOCATION_MOVES, LocationMove, LocationMoves
from migration_pipeline.images.prove import PROVEN_IMAGES
from migration_pipeline.images.publish import DEPLOY_DOCUMENT, IMAGES, PublishedImage
from migration_pipeline.inventory.organization import (
    ORGANIZATION_INVENTORY,
    DeploymentSummary,
    OrganizationInventory,
)
from migration_pipeline.lib.plain import UnreadableRecord, as_plain
from migration_pipeline.lib.record import Record, record_kinds, typed_record
from migration_pipeline.plan.applied import APPLIED_PROJECT, AppliedProject
from migration_pipeline.records import asset_value_record, cutover_from_run, record_metadata
from migration_pipeline.snapshot import SNAPSHOT, Snapshot

SNAPSHOT_VALUE = Snapshot("prod", 1, "SERVERLESS", 1.0, {"SUCCESS": 2}, ["a", "b"], {}, {}, {})
DOCUMENT = {"locations": [{"location_name": "etl", "image": "r/etl:1"}]}
SAMPLES: dict[str, object] = {
    ORGANIZATION_INVENTORY.what: OrganizationInventory(
        "https://acme.dagster.cloud", (DeploymentSummary("prod", 1, "SERVERLESS", 3, 10),), 0
    ),
    APPLIED_PROJECT.what: AppliedProject("/p", "kubernetes", "dagster_cloud.yaml", {}, ("a",), {}),
    IMAGES.what: {"etl": PublishedImage("etl", "r/etl:1", "sha256:" + "0" * 64, "1", True, 2.0)},
    DEPLOY_DOCUMENT.what: DOCUMENT,
    AGENT_TOKEN.what: RecordedToken(7, "migration_pipeline prod", "env_file", "/a/.env", "acme"),
    AGENT_INSTALL.what: AgentInstall("/a", "local", "run.sh", "label", ("x",), False, ("run.sh",)),
    AGENT_IDENTITY.what: AgentIdentity("label", ("x",)),
    PROVEN_IMAGES.what: {"etl": "r/etl@sha256:" + "0" * 64},
    SNAPSHOT.what: SNAPSHOT_VALUE,
    LOCATION_MOVES.what: LocationMoves(
        "prod",
        "per_location",
        "hybrid-migration",
        (LocationMove("etl", "hybrid-migration", True, 10.0, 12.5, 2.5),),
        "ml",
        "ml did not load on the Hybrid agent",
    ),
}


def raw(metadata: dict[str, dg.MetadataValue]) -> dict[str, object]:
    """Metadata as a materialization's record hands it back (the values)."""
    return {key: value.value for key, value in metadata.items()}


@pytest.mark.parametrize("kind", [k for k in record_kinds() if k.what in SAMPLES], ids=str)
def test_each_record_reads_back_as_written(kind: Record):
    value = SAMPLES[kind.what]
    assert typed_record(kind, raw(record_metadata(kind, value))) == value


def test_every_kind_of_record_is_covered_and_every_asset_value_is_one():
    from migration_pipeline.definitions import ASSET_VALUE_MODULES, defs
    from migration_pipeline.records import RECORDS_IO_MANAGER

    graph = defs.resolve_asset_graph()
    valued = [
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
        and graph.get(key).assets_def.get_io_manager_key_for_asset_key(key) == RECORDS_IO_MANAGER
    ]
    assert sorted(valued) == sorted(ASSET_VALUE_MODULES)  # each says where its record is
    assert all(asset_value_record(key, ASSET_VALUE_MODULES) for key in valued)  # ...and there
    # The inventory and the plan are read back end to end (test_plan_assets); the rest here.
    assert {k.what for k in record_kinds()} - set(SAMPLES) == {
        "Serverless inventory",
        "migration plan",
    }


def test_loading_the_location_imports_no_phase_types_yet_each_asset_value_finds_its_record():
    """The phases' types stay out of the load (issue 21's load target): the records I/O
    manager imports the module that declares an asset's record when it first needs it."""
    import subprocess
    import sys

    from migration_pipeline.definitions import ASSET_VALUE_MODULES

    script = (
        "import sys, migration_pipeline.definitions as d; "
        "print(sorted(m for m in sys.modules if m.startswith('migration_pipeline.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert not [module for module in ASSET_VALUE_MODULES.values() if f"'{module}'" in loaded]
    for module in ("snapshot", "agent.token", "agent.serving", "images.publish", "plan.model"):
        assert f"'migration_pipeline.{module}'" not in loaded, module
    for asset, module in ASSET_VALUE_MODULES.items():
        kind = asset_value_record(asset, ASSET_VALUE_MODULES)
        assert kind.asset == asset and kind.asset_value
        assert kind.from_plain.__module__ in (module, "migration_pipeline.lib.record")
    with pytest.raises(dg.Failure, match="declares no record"):
        asset_value_record("pre_cutover_snapshot", ASSET_VALUE_MODULES)


def test_a_record_from_before_versions_reads_as_version_one():
    metadata = {"snapshot": as_plain(SNAPSHOT_VALUE)}  # no snapshot_version: an older writer
    assert typed_record(SNAPSHOT, metadata) == SNAPSHOT_VALUE
    older = {
        k: v for k, v in as_plain(SNAPSHOT_VALUE).items() if k != "settings_removed_at_cutover"
    }
    assert typed_record(SNAPSHOT, {"snapshot": older}) == SNAPSHOT_VALUE  # its field's default


def test_a_record_from_a_newer_version_is_refused_with_what_to_do():
    metadata = {**raw(record_metadata(SNAPSHOT, SNAPSHOT_VALUE)), "snapshot_version": 2}
    with pytest.raises(UnreadableRecord) as refused:
        typed_record(SNAPSHOT, metadata)
    message = str(refused.value)
    assert "pre-cutover snapshot" in message and "newer version" in message
    assert "record version 2; this one reads up to 1" in message and "run cutover" in message


def test_a_record_missing_a_field_or_of_the_wrong_type_is_refused_by_field():
    plain = as_plain(SNAPSHOT_VALUE)
    with pytest.raises(UnreadableRecord, match="pre-cutover snapshot .*deployment_id"):
        typed_record(
            SNAPSHOT, {"snapshot": {k: v for k, v in plain.items() if k != "deployment_id"}}
        )
    with pytest.raises(UnreadableRecord, match="run_counts.*run cutover again"):
        typed_record(SNAPSHOT, {"snapshot": {**plain, "run_counts": ["SUCCESS"]}})


def test_a_materialization_without_its_record_is_refused_not_taken_for_none():
    with pytest.raises(UnreadableRecord, match="install files record is not in.*prepare"):
        typed_record(AGENT_INSTALL, {"agent_label": "x", "agents_before": []})


def test_the_token_recorded_before_it_had_a_record_entry_is_read():
    legacy = {"token_id": 7, "description": "d", "store": "env_file", "reference": "/a/.env"}
    assert typed_record(AGENT_TOKEN, {**legacy, "organization": "acme", "created": True}) == (
        RecordedToken(7, "d", "env_file", "/a/.env", "acme")
    )
    with pytest.raises(UnreadableRecord, match="organization"):
        typed_record(AGENT_TOKEN, legacy)


def test_install_files_recorded_before_records_still_name_the_agent_in_the_window():
    # What an older version wrote: the sensor, inside the no-agent window, must still read it.
    assert typed_record(AGENT_IDENTITY, {"agent_label": "l", "agents_before": ["a"]}) == (
        AgentIdentity("l", ("a",))
    )
    unlabelled = typed_record(AGENT_IDENTITY, {"agent_label": "", "agents_before": ["a"]})
    assert unlabelled == AgentIdentity(None, ("a",))


def test_the_deploy_document_is_read_only_with_its_hash():
    metadata = raw(record_metadata(DEPLOY_DOCUMENT, DOCUMENT))
    assert len(metadata["deploy"]["sha256"]) == 64
    edited = {**metadata, "deploy": {**metadata["deploy"], "document": {"locations": []}}}
    with pytest.raises(UnreadableRecord, match="does not match its recorded sha256"):
        typed_record(DEPLOY_DOCUMENT, edited)
    # Recorded before the document had a record of its own: two entries.
    digest = metadata["deploy"]["sha256"]
    two_entries = {"deploy_document": DOCUMENT, "deploy_document_sha256": digest}
    assert typed_record(DEPLOY_DOCUMENT, two_entries) == DOCUMENT
    with pytest.raises(UnreadableRecord, match="sha256"):
        typed_record(DEPLOY_DOCUMENT, {**two_entries, "deploy_document_sha256": "0" * 64})


def test_a_switch_tagged_by_another_version_is_refused_by_run():
    from dagster._core.storage.dagster_run import DagsterRun

    from migration_pipeline.records import TAGS_VERSION_TAG, switch_tags

    with dg.DagsterInstance.ephemeral() as instance:
        tags = {**switch_tags(5.0), "dagster/partition": "prod"}
        run = instance.add_run(DagsterRun(job_name="cutover", tags=tags))
        (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
        assert cutover_from_run(record).cutover_at == 5.0
        instance.add_run_tags(run.run_id, {TAGS_VERSION_TAG: "2"})
        (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))
        with pytest.raises(dg.Failure, match=f"cutover run {run.run_id[:8]}.*version '2'"):
            cutover_from_run(record)
