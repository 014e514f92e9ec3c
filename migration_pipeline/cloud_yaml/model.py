"""`dagster_cloud.yaml` (or its older name `build.yaml`) in both forms seen in real repos:

    locations:                      # modern: a list
      - location_name: analytics
        code_source: {package_name: analytics}

    locations:                      # legacy: a mapping keyed by location name
      analytics:
        package_name: analytics

with an optional `defaults:` block merged into every location, comments, anchors and aliases.

The legacy form also comes as the old dagster-cloud-cicd-action wrote it, in `locations.yaml`:
`build: <directory>` as a string, the location's own `registry`, and the image build options
`dockerfile` and `target` (at the location or in `build`). They read as the list form's
`build: {directory, registry}`; the build options, which `dagster-cloud ci` does not know, are
kept apart (`image_options`) for the image build and the CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from migration_pipeline.lib.problems import InvalidInput, KeyPath, did_you_mean
from migration_pipeline.lib.yaml_source import YamlSource, parse_yaml, to_plain

# The file `dagster-cloud ci` reads: what a migrated project has (locations.yaml is converted).
MIGRATED_NAME = "dagster_cloud.yaml"
# What the old dagster-cloud-cicd-action read at a legacy location, beyond the code source.
IMAGE_OPTION_KEYS = ("dockerfile", "target")
TOP_LEVEL_KEYS = ("locations", "defaults")
CODE_SOURCE_KEYS = ("python_file", "package_name", "module_name", "autoload_defs_module_name")
# Keys only Dagster's Serverless (PEX) deploys understand. `dagster-cloud ci` rejects them in the
# file, but they appear where a Serverless locations document was copied into it; the rewrite
# drops them.
SERVERLESS_ONLY_KEYS = ("pex_metadata", "pex_bundle")


@dataclass(frozen=True)
class LocationRef:
    name: str
    path: KeyPath  # ("locations", index) in the modern form, ("locations", name) in the legacy one


@dataclass
class CloudYaml:
    source: YamlSource
    form: str  # "modern" | "legacy"
    locations: list[LocationRef]

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def defaults(self) -> dict[str, Any]:
        return to_plain(self.source.data.get("defaults")) or {}

    def location_node(self, ref: LocationRef) -> CommentedMap:
        return self.source.node(ref.path)

    def modern_location(self, ref: LocationRef) -> dict[str, Any]:
        """The location as plain data in the modern form (defaults not merged)."""
        location = to_plain(self.location_node(ref)) or {}
        if self.form == "modern":
            return location
        converted: dict[str, Any] = {"location_name": ref.name}
        code_source = {k: location.pop(k) for k in CODE_SOURCE_KEYS if k in location}
        if code_source:
            converted["code_source"] = code_source
        build = location.pop("build", None)
        if isinstance(build, str):
            build = {"directory": build}
        if isinstance(build, dict):
            build = {k: v for k, v in build.items() if k not in IMAGE_OPTION_KEYS}
        registry = location.pop("registry", None)
        if registry is not None:
            build = {**(build if isinstance(build, dict) else {}), "registry": registry}
        for key in IMAGE_OPTION_KEYS:
            location.pop(key, None)
        if build is not None:
            converted["build"] = build
        converted.update(location)
        return converted

    def image_options(self, ref: LocationRef) -> dict[str, str]:
        """The old action's `dockerfile` and `target` of a legacy location (at the location or
        in its `build`): how its image is built. Empty for the list form."""
        if self.form != "legacy":
            return {}
        location = to_plain(self.location_node(ref)) or {}
        build = location.get("build")
        options = {k: build[k] for k in IMAGE_OPTION_KEYS if isinstance(build, dict) and k in build}
        options.update({k: location[k] for k in IMAGE_OPTION_KEYS if k in location})
        return {k: str(v) for k, v in options.items() if v is not None}

    def modern_document(self) -> dict[str, Any]:
        """The whole file as plain data in the modern form, for the schemas."""
        document: dict[str, Any] = {"locations": [self.modern_location(r) for r in self.locations]}
        if "defaults" in self.source.data:
            document = {"defaults": to_plain(self.source.data["defaults"]), **document}
        return document

    def source_path(self, ref: LocationRef, modern_path: KeyPath) -> KeyPath:
        """Where a key of a location's modern form stands in this file."""
        if self.form == "legacy" and modern_path[:1] == ("code_source",):
            return ref.path + modern_path[1:]
        if self.form == "legacy" and modern_path[:1] == ("location_name",):
            return ref.path
        return ref.path + modern_path

    def merged_location(self, ref: LocationRef) -> dict[str, Any]:
        """The location with `defaults:` merged in, as `dagster-cloud ci` merges it."""
        from dagster_cloud_cli.config.merger import DagsterCloudConfigDefaultsMerger

        defaults = _without_none(self.defaults)
        location = _without_none(self.modern_location(ref))
        if not defaults:
            return location
        return DagsterCloudConfigDefaultsMerger().merge(defaults, location)

    def deploy_document(self, images: dict[str, str]) -> dict[str, Any]:
        """The locations document to deploy: each location as this file says (defaults merged,
        `build` set aside) with its image, as `dagster-cloud ci deploy` sends it."""
        locations = []
        for ref in self.locations:
            merged = self.merged_location(ref)
            location = {k: merged[k] for k in DEPLOY_KEYS if merged.get(k) not in (None, {}, [])}
            if merged["location_name"] in images:
                location["image"] = images[merged["location_name"]]
            locations.append(location)
        return {"locations": locations}


# What a deployed location holds (`build` is the CI's, not Dagster+'s).
DEPLOY_KEYS = (
    "location_name",
    "code_source",
    "working_directory",
    "executable_path",
    "attribute",
    "container_context",
    "agent_queue",
    "image",
)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def load_cloud_yaml(text: str, name: str = "dagster_cloud.yaml") -> CloudYaml:
    """Parse and check the file's shape; the schemas are checked by `validate_cloud_yaml`."""
    source = parse_yaml(text, name)
    data = source.data
    if data is None:
        raise InvalidInput([source.problem((), "is empty: it needs a `locations:` list")])
    if not isinstance(data, CommentedMap):
        raise InvalidInput(
            [
                source.problem(
                    (), f"must be a mapping with a `locations:` key, not a {type(data).__name__}"
                )
            ]
        )
    problems = [
        source.problem(
            (key,),
            f'unknown key "{key}"{did_you_mean(key, TOP_LEVEL_KEYS)}; '
            "expected locations and optionally defaults",
        )
        for key in data
        if key not in TOP_LEVEL_KEYS
    ]
    if "locations" not in data:
        problems.append(source.problem((), "has no `locations:` key"))
    if problems:
        raise InvalidInput(problems)

    locations = data["locations"]
    if isinstance(locations, CommentedSeq):
        form = "modern"
        refs = []
        for index, item in enumerate(locations):
            if not isinstance(item, CommentedMap):
                problems.append(
                    source.problem(("locations", index), "each location must be a mapping")
                )
                continue
            refs.append(
                LocationRef(str(item.get("location_name", f"#{index}")), ("locations", index))
            )
    elif isinstance(locations, CommentedMap):
        form = "legacy"
        refs = []
        for key, item in locations.items():
            if not isinstance(item, CommentedMap):
                problems.append(
                    source.problem(("locations", key), "each location must be a mapping")
                )
                continue
            refs.append(LocationRef(str(key), ("locations", key)))
    else:
        raise InvalidInput([source.problem(("locations",), "must be a list of locations")])
    if not len(locations):
        problems.append(
            source.problem(("locations",), "is empty: there is no code location to migrate")
        )
    if "defaults" in data and not isinstance(data["defaults"], (CommentedMap, type(None))):
        problems.append(source.problem(("defaults",), "must be a mapping"))
    if problems:
        raise InvalidInput(problems)
    return CloudYaml(source, form, refs)
