"""Validate a dagster_cloud.yaml with the real schemas, in short messages with file and line.

1. `dagster_cloud_cli.config.models.DagsterCloudYaml`: the file as `dagster-cloud ci` reads it
   (both forms, `defaults`, `build`, unknown keys, one code source, unique names).
2. `dagster_cloud.workspace.config_schema` on each location with `defaults` merged and `build`
   set aside (that schema does not know `build`): what Dagster+ accepts on deploy.
3. The container context schemas of `dagster_k8s`, `dagster_aws` and `dagster_docker`, which the
   agents apply when they launch code servers and runs (`validate_config`, not
   `create_from_config`, which would read environment variables).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from migration_pipeline.cloud_yaml.model import (
    CODE_SOURCE_KEYS,
    SERVERLESS_ONLY_KEYS,
    CloudYaml,
    LocationRef,
)
from migration_pipeline.lib.problems import KeyPath, Problem, did_you_mean, shown

# container_context key -> the agent that reads it
AGENT_OF_CONTAINER_CONTEXT = {
    "k8s": "Kubernetes",
    "ecs": "Amazon ECS",
    "docker": "Docker",
    "aca": "Azure Container Apps",
}


def validate_cloud_yaml(
    cloud: CloudYaml, container_context_key: str | None = None, before_rewrite: bool = False
) -> list[Problem]:
    """Every problem in the file. `container_context_key` ("k8s", "ecs", "docker" or None for a
    Local agent) flags a container context meant for another agent. `before_rewrite`: the
    user's file, whose placeholder registries the rewrite replaces (so they are not judged)."""
    problems = _check_file_model(cloud)
    if problems:
        return problems
    problems = _yaml11_problems(cloud)
    for ref in cloud.locations:
        problems += _value_problems(cloud, ref, cloud.merged_location(ref), before_rewrite)
    if problems:
        return problems
    for ref in cloud.locations:
        location = cloud.merged_location(ref)
        problems += _check_location_schema(cloud, ref, location)
        context = location.get("container_context") or {}
        for key in context:
            if key != container_context_key and key in AGENT_OF_CONTAINER_CONTEXT:
                target = (
                    f"the {AGENT_OF_CONTAINER_CONTEXT[container_context_key]} agent"
                    if container_context_key
                    else "a Local agent (which has none)"
                )
                problems.append(
                    cloud.source.problem(
                        cloud.source_path(ref, ("container_context", key)),
                        f"is for the {AGENT_OF_CONTAINER_CONTEXT[key]} agent, but the target is "
                        f"{target}: remove it or choose the matching target",
                    )
                )
        if not problems:
            problems += _check_container_contexts(cloud, ref, context)
    return problems


# -- 1. the file as dagster-cloud ci reads it --------------------------------------------------


def _check_file_model(cloud: CloudYaml) -> list[Problem]:
    from dagster_cloud_cli.config.models import DagsterCloudYaml
    from pydantic import ValidationError

    problems = _duplicate_names(cloud)
    document = cloud.modern_document()
    for section in [document.get("defaults") or {}, *document["locations"]]:
        for key in SERVERLESS_ONLY_KEYS:
            section.pop(key, None)  # known: the rewrite removes them
    # dagster_cloud_cli's CodeSource validator assumes a mapping and would crash on anything else.
    shapes = [
        cloud.source.problem(
            cloud.source_path(ref, ("code_source",)),
            f"must be a mapping such as {{package_name: ...}}, got "
            f"{shown(location['code_source'])}",
        )
        for ref, location in zip(cloud.locations, document["locations"], strict=True)
        if location.get("code_source") is not None and not isinstance(location["code_source"], dict)
    ]
    if shapes:
        return problems + shapes
    try:
        DagsterCloudYaml.model_validate(document)
    except ValidationError as error:
        for item in error.errors():
            problem = _pydantic_problem(cloud, item)
            if problem is not None and problem not in problems:
                problems.append(problem)
    return problems


def _duplicate_names(cloud: CloudYaml) -> list[Problem]:
    seen: dict[str, LocationRef] = {}
    problems = []
    for ref in cloud.locations:
        if cloud.form == "modern" and ref.name in seen:
            first = cloud.source.line_of(seen[ref.name].path)
            problems.append(
                cloud.source.problem(
                    ref.path + ("location_name",),
                    f'duplicate location name "{ref.name}" (first at line {first})',
                )
            )
        seen.setdefault(ref.name, ref)
    return problems


def _model_at(loc: tuple) -> Any:
    """The pydantic model that holds the field at `loc`, for did-you-mean suggestions."""
    from dagster_cloud_cli.config import models

    model: Any = models.DagsterCloudYaml
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = {
            "locations": models.Location,
            "defaults": models.LocationDefaults,
            "code_source": models.CodeSource,
            "build": models.Build,
        }.get(str(part))
        if field is None:
            return None
        model = field
    return model


def _source_path(cloud: CloudYaml, loc: tuple) -> KeyPath:
    if len(loc) >= 2 and loc[0] == "locations" and isinstance(loc[1], int):
        return cloud.source_path(cloud.locations[loc[1]], tuple(loc[2:]))
    return tuple(loc)


def _pydantic_problem(cloud: CloudYaml, item: Mapping[str, Any]) -> Problem | None:
    loc, kind = tuple(item["loc"]), item["type"]
    if kind == "value_error" and loc == ("locations",):
        return None  # duplicate names: reported with their lines by _duplicate_names
    path = _source_path(cloud, loc)
    if kind == "extra_forbidden":
        model = _model_at(loc)
        choices = list(model.model_fields) if model is not None else []
        if cloud.form == "legacy" and len(loc) == 3 and loc[0] == "locations":
            choices += list(CODE_SOURCE_KEYS)
        return cloud.source.problem(
            path, f'unknown key "{loc[-1]}"{did_you_mean(loc[-1], choices)}'
        )
    if kind == "missing":
        return cloud.source.problem(path[:-1], f'is missing the required key "{loc[-1]}"')
    if kind == "value_error" and "code_source" in loc:
        message = item["msg"].removeprefix("Value error, ")
        if "only one of" in message:
            message = "has two code sources: " + message.split(": ", 1)[1] + "; keep exactly one"
        elif "must be specified" in message:
            message = "has no code source: set exactly one of " + ", ".join(CODE_SOURCE_KEYS)
        return cloud.source.problem(path, message)
    if kind.endswith("_type"):
        expected = {
            "string_type": "a string",
            "dict_type": "a mapping",
            "model_type": "a mapping",
            "list_type": "a list",
            "bool_type": "true or false",
            "int_type": "a whole number",
        }.get(kind, kind)
        return cloud.source.problem(path, f"must be {expected}, got {shown(item.get('input'))}")
    return cloud.source.problem(path, item["msg"])


def _yaml11_problems(cloud: CloudYaml) -> list[Problem]:
    """Values that `dagster-cloud ci` (PyYAML, YAML 1.1) reads otherwise than written: `yes`,
    `no`, `on`, `off` are booleans there, `0777` a number..."""
    from migration_pipeline.lib.yaml_source import yaml11_reading

    problems: list[Problem] = []

    def compare(ours: Any, theirs: Any, path: KeyPath) -> None:
        if isinstance(ours, dict) and isinstance(theirs, dict):
            for key, value in ours.items():
                if key in theirs:
                    compare(value, theirs[key], path + (key,))
                else:
                    problems.append(
                        cloud.source.problem(
                            path + (key,),
                            f'the key "{key}" reads as another key for dagster-cloud ci (YAML '
                            "1.1): quote it",
                        )
                    )
        elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
            for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
                compare(mine, other, path + (index,))
        elif type(ours) is not type(theirs) or ours != theirs:
            problems.append(
                cloud.source.problem(
                    path,
                    f"{shown(ours)} reads as {shown(theirs)} for dagster-cloud ci, which reads "
                    'YAML 1.1 (yes/no/on/off are booleans there): quote it, e.g. "yes"',
                )
            )

    compare(cloud.source.plain(), yaml11_reading(cloud.source.text), ())
    return problems


def _value_problems(
    cloud: CloudYaml, ref: LocationRef, location: dict, placeholders_allowed: bool
) -> list[Problem]:
    """The values that end up in a file this migration writes (a Dockerfile, the CI, the image
    tags) or in a name Docker or Kubernetes checks: each must be what it claims to be. With
    `placeholders_allowed` (the file before the rewrite), a registry that holds a template's
    placeholder is not judged: the rewrite replaces it."""
    from migration_pipeline.lib import names
    from migration_pipeline.lib.paths import escapes_project

    checks: list[tuple[KeyPath, str | None]] = [
        (("location_name",), names.location_name_problem(location.get("location_name"))),
    ]
    build = location.get("build")
    if isinstance(build, dict):
        directory = build.get("directory")
        if directory is not None:
            problem = names.ci_text_problem(directory, "a build directory")
            if problem is None and escapes_project(str(directory)):
                problem = (
                    f"{directory!r} leads out of the project: a build directory is relative to "
                    f"{cloud.name} and stays inside the project"
                )
            checks.append((("build", "directory"), problem))
        if build.get("registry") is not None and (
            not placeholders_allowed or names.placeholder_reason(build["registry"]) is None
        ):
            checks.append(
                (("build", "registry"), names.image_repository_problem(build["registry"]))
            )
    if location.get("image") is not None:
        checks.append((("image",), names.image_reference_problem(location["image"])))
    for key in ("working_directory", "executable_path"):
        if location.get(key) is not None:
            checks.append(((key,), names.plain_text_problem(location[key], key)))
    working = location.get("working_directory")
    if isinstance(working, str) and working.startswith("/"):  # the Dockerfile's WORKDIR
        checks.append((("working_directory",), names.image_path_problem(working)))
    for key, value in (location.get("code_source") or {}).items():
        if value is not None:
            checks.append((("code_source", key), names.plain_text_problem(value, key)))
    return [
        cloud.source.problem(cloud.source_path(ref, path), problem)
        for path, problem in checks
        if problem is not None
    ]


# -- 2 and 3. the Dagster+ location schema and the agents' container context schemas -----------


def _check_location_schema(cloud: CloudYaml, ref: LocationRef, location: dict) -> list[Problem]:
    from dagster._config import validate_config
    from dagster_cloud.workspace.config_schema import LOCATION_CONFIG_SCHEMA

    deployable = {k: v for k, v in location.items() if k != "build"}
    result = validate_config(LOCATION_CONFIG_SCHEMA, deployable)
    return [
        _config_problem(cloud, ref, (), LOCATION_CONFIG_SCHEMA, error)
        for error in result.errors or []
    ]


@lru_cache(maxsize=1)
def container_context_schemas() -> dict[str, Any]:
    from dagster_aws.ecs.container_context import ECS_CONTAINER_CONTEXT_SCHEMA
    from dagster_docker.container_context import DOCKER_CONTAINER_CONTEXT_SCHEMA
    from dagster_k8s.job import DagsterK8sJobConfig

    return {
        "k8s": DagsterK8sJobConfig.config_type_container_context(),
        "ecs": ECS_CONTAINER_CONTEXT_SCHEMA,
        "docker": DOCKER_CONTAINER_CONTEXT_SCHEMA,
    }


def _check_container_contexts(cloud: CloudYaml, ref: LocationRef, context: dict) -> list[Problem]:
    from dagster._config import validate_config

    problems = []
    schemas = container_context_schemas() if context else {}
    for key, value in context.items():
        if key in schemas:
            result = validate_config(schemas[key], value)
            problems += [
                _config_problem(cloud, ref, ("container_context", key), schemas[key], e)
                for e in result.errors or []
            ]
    return problems


def _config_problem(
    cloud: CloudYaml, ref: LocationRef, prefix: KeyPath, schema: Any, error: Any
) -> Problem:
    from dagster._config import ConfigTypeKind, resolve_to_config_type
    from dagster._config.errors import DagsterEvaluationErrorReason as Reason

    stack = [getattr(e, "field_name", getattr(e, "list_index", None)) for e in error.stack.entries]
    modern_path = prefix + tuple(p for p in stack if p is not None)
    path = cloud.source_path(ref, modern_path)
    data = error.error_data
    if error.reason == Reason.FIELD_NOT_DEFINED:
        fields = _fields_at(resolve_to_config_type(schema), stack)
        return cloud.source.problem(
            path + (data.field_name,),
            f'unknown key "{data.field_name}"' + did_you_mean(data.field_name, fields),
        )
    if error.reason == Reason.FIELDS_NOT_DEFINED:
        fields = _fields_at(resolve_to_config_type(schema), stack)
        name = data.field_names[0]
        return cloud.source.problem(
            path + (name,),
            "unknown keys "
            + ", ".join(f'"{n}"' for n in data.field_names)
            + did_you_mean(name, fields),
        )
    if error.reason in (Reason.MISSING_REQUIRED_FIELD, Reason.MISSING_REQUIRED_FIELDS):
        names = getattr(data, "field_names", None) or [data.field_name]
        return cloud.source.problem(
            path,
            "is missing the required key"
            + ("s " if len(names) > 1 else " ")
            + ", ".join(f'"{n}"' for n in names),
        )
    if error.reason == Reason.SELECTOR_FIELD_ERROR:
        incoming = list(data.incoming_fields)
        if len(incoming) > 1:
            return cloud.source.problem(
                path, "has more than one of " + ", ".join(incoming) + "; keep exactly one"
            )
        return cloud.source.problem(
            path,
            "needs exactly one of " + ", ".join(f.name for f in data.config_type_snap.fields or []),
        )
    if error.reason == Reason.RUNTIME_TYPE_MISMATCH:
        snap = data.config_type_snap
        expected = {
            ConfigTypeKind.ARRAY: "a list",
            ConfigTypeKind.STRICT_SHAPE: "a mapping",
            ConfigTypeKind.PERMISSIVE_SHAPE: "a mapping",
            ConfigTypeKind.MAP: "a mapping",
            ConfigTypeKind.SELECTOR: "a mapping",
        }.get(snap.kind)
        if expected is None and snap.kind == ConfigTypeKind.ENUM:
            expected = "one of " + ", ".join(v.value for v in snap.enum_values or [])
        if expected is None:
            expected = {
                "String": "a string",
                "Int": "a whole number",
                "Bool": "true or false",
                "Float": "a number",
            }.get(snap.given_name or "", snap.given_name or "valid")
        return cloud.source.problem(path, f"must be {expected}, got {data.value_rep}")
    return cloud.source.problem(path, error.message.split(". Expected")[0])


def _fields_at(config_type: Any, stack: list) -> list[str]:
    """Field names of the shape reached by `stack` in a config schema."""
    node = config_type
    for part in stack:
        node = _unwrap(node)
        if isinstance(part, int):
            node = getattr(node, "inner_type", node)
        else:
            fields = getattr(node, "fields", None) or {}
            if part not in fields:
                return []
            node = fields[part].config_type
    node = _unwrap(node)
    return list(getattr(node, "fields", None) or {})


def _unwrap(node: Any) -> Any:
    from dagster._config import ConfigTypeKind

    while getattr(node, "kind", None) == ConfigTypeKind.NONEABLE:
        node = node.inner_type
    return node
