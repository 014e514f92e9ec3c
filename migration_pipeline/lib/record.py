"""What a record kept between runs is, as plain data: its kind (what it is, where it lives, its
version, how it becomes JSON and back) and how one read back is checked, upgraded and typed.
Pure: each phase declares its records beside their types; `migration_pipeline.records` writes
and reads them in Dagster (metadata, tags, the I/O manager), and nothing else does.

Each record names its version. One this code wrote reads as it was written; an older one is
upgraded (or, where no upgrade exists, refused with the job to run again); a newer one (a later
version of this code location wrote it, then it was downgraded) is refused; so is one missing
a field or holding the wrong type. A refusal says which record, which versions or field, and
what to do: never a `TypeError`, never a silent default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from migration_pipeline.lib.plain import UnreadableRecord, as_plain, from_plain

T = TypeVar("T")

_KINDS: dict[str, Record[Any]] = {}  # what -> kind, as each phase declares its records


@dataclasses.dataclass(frozen=True)
class Record(Generic[T]):
    """One kind of record. `upgrades[n]` turns version n's plain data into version n+1's;
    `legacy` reads the materialization metadata written before the record had an entry of its
    own into version 1's plain data. `asset_value`: the asset's value itself, which the records
    I/O manager writes and loads."""

    what: str  # as the messages name it
    asset: str  # the asset whose materializations carry it
    writer: str  # the job that records it again
    version: int
    to_plain: Callable[[T], Any]
    from_plain: Callable[[Any, Record[T]], T]  # raises UnreadableRecord
    entry: str = "record"
    upgrades: Mapping[int, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    legacy: Callable[[Mapping[str, Any]], Any] | None = None
    asset_value: bool = False

    def __post_init__(self) -> None:
        _KINDS[self.what] = self

    @property
    def version_entry(self) -> str:
        return f"{self.entry}_version"

    def typed(self, raw: Any) -> T:
        """This version's plain data (as `to_plain` made it, handed from one op to the next and
        kept for a re-execution) typed again; `UnreadableRecord` saying why not."""
        return self.from_plain(raw, self)

    def refused(self, why: str) -> UnreadableRecord:
        return UnreadableRecord(f"the {self.what} {why}: run {self.writer} again")


def dataclass_record(cls: type[T], what: str, asset: str, writer: str, **options: Any) -> Record[T]:
    """The record of a dataclass, field by field (`lib.plain`); version 1 unless `options`
    say otherwise."""
    return Record(
        what,
        asset,
        writer,
        options.pop("version", 1),
        as_plain,
        lambda raw, kind: from_plain(cls, raw, kind.what, kind.writer),
        **options,
    )


def record_entries(kind: Record[T], value: T) -> dict[str, Any]:
    """The metadata entries that record `value` as `kind`: its JSON and its version."""
    return {kind.entry: kind.to_plain(value), kind.version_entry: kind.version}


def typed_record(kind: Record[T], metadata: Mapping[str, Any]) -> T:
    """The record of `kind` in one materialization's metadata (its values), upgraded to this
    version and typed; `UnreadableRecord` saying why not."""
    raw = metadata.get(kind.entry)
    version = metadata.get(kind.version_entry)
    if raw is None:
        raw = kind.legacy(metadata) if kind.legacy is not None else None
        if raw is None:
            raise kind.refused(
                f"is not in the newest materialization of {kind.asset}: an older version of "
                "this code location made it, before it recorded one"
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
            raise kind.refused(
                f"was recorded by an older version of this code location (record version "
                f"{version}; this one reads {kind.version}, with no upgrade from it)"
            )
        raw, version = upgrade(raw), version + 1
    return kind.typed(raw)


def asset_value_kind(asset: str) -> Record[Any] | None:
    """The record that is `asset`'s value (declared when its type's module was imported)."""
    return next((k for k in _KINDS.values() if k.asset_value and k.asset == asset), None)


def record_kinds() -> tuple[Record[Any], ...]:
    """Every kind of record declared so far."""
    return tuple(_KINDS.values())
