"""Rewrite a Serverless dagster_cloud.yaml for a Hybrid agent type.

For every location: set `build.registry` (containerized agents), add the target's
`container_context` section (or `executable_path` for a Local agent), keep everything the user
wrote, and drop what only Serverless understands. A value the user already set is never
overwritten: when it differs from what the target would set, the plan says so and keeps it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from migration_pipeline.cloud_yaml.convert import to_list_form
from migration_pipeline.cloud_yaml.edit import Edits, apply_edits
from migration_pipeline.cloud_yaml.model import (
    SERVERLESS_ONLY_KEYS,
    CloudYaml,
    LocationRef,
    load_cloud_yaml,
)
from migration_pipeline.lib.problems import InvalidInput, KeyPath, format_path, shown
from migration_pipeline.lib.yaml_source import to_plain
from migration_pipeline.targets.base import AgentTarget, needs_images
from migration_pipeline.targets.settings import TargetSettings


@dataclass(frozen=True)
class Conflict:
    """A value the user set that differs from what the target would set: kept as it is."""

    location: str
    path: KeyPath
    line: int | None
    kept: Any
    wanted: Any

    def __str__(self) -> str:
        return (
            f"{format_path(self.path)} (line {self.line}): kept your {self.kept!r}; "
            f"the target settings would set {self.wanted!r}"
        )


@dataclass
class Rewrite:
    text: str
    cloud: CloudYaml  # the rewritten file, parsed
    changes: list[str] = field(default_factory=list)  # one line per change, for the summary
    conflicts: list[Conflict] = field(default_factory=list)
    images: dict[str, str] = field(default_factory=dict)  # location -> image repository


def image_repository(registry: str, location: str, layout: str) -> str:
    """Where a location's image goes: its own repository, or the shared one."""
    if layout == "shared":
        return registry
    slug = re.sub(r"[^a-z0-9._-]+", "-", location.lower()).strip("-._") or "location"
    return f"{registry}/{slug}"


def desired_location_keys(
    target: AgentTarget, settings: TargetSettings, location: str
) -> dict[str, Any]:
    desired: dict[str, Any] = {}
    if needs_images(target) and settings.registry:
        desired["build"] = {
            "registry": image_repository(settings.registry, location, settings.image_layout)
        }
    context = target.container_context(settings)
    if target.container_context_key and context:
        desired["container_context"] = {target.container_context_key: context}
    executable_path = getattr(settings, "executable_path", None)
    if executable_path:
        desired["executable_path"] = executable_path
    if settings.routed_queue:
        desired["agent_queue"] = settings.routed_queue
    return desired


def rewrite_cloud_yaml(cloud: CloudYaml, target: AgentTarget, settings: TargetSettings) -> Rewrite:
    converted = cloud.form == "legacy"
    if converted:
        # `dagster-cloud ci` reads only the list form: without it no Hybrid CI could run.
        # Converted first, so that every edit below works on the list form.
        cloud = load_cloud_yaml(to_list_form(cloud), cloud.name)
    edits = Edits()
    rewrite = Rewrite(text=cloud.source.text, cloud=cloud)
    if converted:
        rewrite.changes.append(
            "converted the legacy form (locations keyed by name) to the list "
            "form that `dagster-cloud ci` reads; comments kept"
        )
    expected = to_plain(cloud.source.data)

    for key in SERVERLESS_ONLY_KEYS:
        defaults = cloud.source.data.get("defaults") or {}
        if key in defaults:
            edits.remove.append(("defaults", key))
            del expected["defaults"][key]
            rewrite.changes.append(f"defaults: removed `{key}` (Serverless only)")

    replaced = _replace_placeholder_registries(cloud, target, edits, expected, rewrite)
    for ref in cloud.locations:
        node = cloud.location_node(ref)
        for key in SERVERLESS_ONLY_KEYS:
            if key in node._ok:  # noqa: SLF001 - own keys only, not merged ones
                edits.remove.append(ref.path + (key,))
                _node_at(expected, ref.path).pop(key, None)
                rewrite.changes.append(f"{ref.name}: removed `{key}` (Serverless only)")
        desired = desired_location_keys(target, settings, ref.name)
        if "build" in desired:
            rewrite.images[ref.name] = desired["build"]["registry"]
        effective = cloud.merged_location(ref)
        if replaced and isinstance(effective.get("build"), dict):
            effective = {
                **effective,
                "build": {k: v for k, v in effective["build"].items() if k != "registry"},
            }
        _plan_additions(
            cloud, ref, ref.path, node, desired, effective, edits, expected, rewrite, ()
        )

    if edits:
        rewrite.text = apply_edits(cloud.source, edits)
        # The edit works on text; check that the file now means exactly what was intended.
        rewrite.cloud = load_cloud_yaml(rewrite.text, cloud.name)
        if to_plain(rewrite.cloud.source.data) != expected:
            raise InvalidInput(
                [
                    cloud.source.problem(
                        (),
                        "migration-pipeline cannot edit this file's layout safely (its edit "
                        "would not mean what was planned); your file is valid. Please report "
                        "it, with the file",
                    )
                ]
            )
    return rewrite


def _replace_placeholder_registries(
    cloud: CloudYaml, target: AgentTarget, edits: Edits, expected: Any, rewrite: Rewrite
) -> bool:
    """Remove every `build.registry` (a location's or the defaults') that holds a template's
    placeholder (`<account-id>...`, `${VAR}`, empty): the rewrite sets the planned registry in
    its place (a Local agent takes none). Returns whether any was removed."""
    from migration_pipeline.lib.names import placeholder_reason

    paths: list[tuple[KeyPath, str]] = [(("defaults", "build", "registry"), "defaults")]
    paths += [(ref.path + ("build", "registry"), ref.name) for ref in cloud.locations]
    found = False
    for path, where in paths:
        if not cloud.source.has(path):
            continue
        value = cloud.source.node(path)
        reason = placeholder_reason(value)
        if reason is None:
            continue
        found = True
        edits.remove.append(path)
        parent = _node_at(expected, path[:-1])
        del parent[path[-1]]
        if not parent:  # the edit leaves `build:` with nothing under it: null, as YAML reads it
            _node_at(expected, path[:-2])[path[-2]] = None
        rewrite.changes.append(
            f"{where}: build.registry {shown(value, 80)} {reason}: "
            + (
                "replaced by the planned registry"
                if needs_images(target)
                else "removed (a Local agent uses no image)"
            )
        )
    return found


def _node_at(data: Any, path: KeyPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _plan_additions(
    cloud: CloudYaml,
    ref: LocationRef,
    path: KeyPath,
    node: Any,
    desired: dict[str, Any],
    effective: dict[str, Any],
    edits: Edits,
    expected: Any,
    rewrite: Rewrite,
    modern: KeyPath,
) -> None:
    """Add to the mapping at `path` what `desired` has and the effective config lacks."""
    missing: dict[str, Any] = {}
    for key, value in desired.items():
        current = effective.get(key)
        own = isinstance(node, dict) and key in getattr(node, "_ok", node)
        if current is None:
            missing[key] = value
        elif isinstance(value, dict) and isinstance(current, dict):
            if own and node[key] is not None:
                _plan_additions(
                    cloud,
                    ref,
                    path + (key,),
                    node[key],
                    value,
                    current,
                    edits,
                    expected,
                    rewrite,
                    modern + (key,),
                )
            else:
                # Only inherited (defaults or a `<<` merge): a local mapping with what is
                # missing merges with `defaults`; under `<<` it replaces, so carry it all.
                additions = {k: v for k, v in value.items() if k not in current}
                _record_conflicts(cloud, ref, modern + (key,), current, value, rewrite)
                if additions:
                    merged = key in (node or {}) and key not in getattr(node, "_ok", {})
                    missing[key] = {**copy.deepcopy(current), **additions} if merged else additions
        elif current != value:
            _record_conflicts(cloud, ref, modern, {key: current}, {key: value}, rewrite)
    if missing:
        edits.add_entries(path, missing)
        target = _node_at(expected, path)
        for key, value in missing.items():
            if isinstance(target.get(key), dict) and isinstance(value, dict):
                target[key].update(copy.deepcopy(value))
            else:
                target[key] = copy.deepcopy(value)
        for key, value in missing.items():
            rewrite.changes.append(
                f"{ref.name}: set {format_path(modern + (key,))} = {shown(value, 80)}"
            )


def _record_conflicts(
    cloud: CloudYaml,
    ref: LocationRef,
    modern: KeyPath,
    current: dict,
    wanted: dict,
    rewrite: Rewrite,
) -> None:
    for key, value in wanted.items():
        if key not in current:
            continue
        if isinstance(value, dict) and isinstance(current[key], dict):
            _record_conflicts(cloud, ref, modern + (key,), current[key], value, rewrite)
        elif current[key] != value:
            source_path = cloud.source_path(ref, modern + (key,))
            if not cloud.source.has(source_path):
                source_path = ("defaults",) + modern + (key,)
            rewrite.conflicts.append(
                Conflict(
                    ref.name, source_path, cloud.source.line_of(source_path), current[key], value
                )
            )
