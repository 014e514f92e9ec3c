"""What both GraphQL APIs share: the schemas (user_api.graphql, agent_api.graphql) executed by
graphql-core, and the shapes of the objects both return.

Because a real schema parses and validates every document, any client that speaks Dagster+'s
dialect works unchanged (Dagster's CLI, its agent, our own client), whatever names it gives its
operations; and a document that uses a field of the other API fails validation here as it would
against Dagster+ (the agent's `agents(heartbeatedSince:)` on the user API, for one).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
    execute_sync,
    parse,
    validate,
)
from graphql.language import FieldNode, OperationDefinitionNode

from dagster_plus_sandbox.state import Deployment, LocationView, SandboxState, Token

ApiName = Literal["user", "agent"]
SCHEMA_FILES: dict[ApiName, str] = {"user": "user_api.graphql", "agent": "agent_api.graphql"}


@lru_cache(maxsize=2)
def schema(api: ApiName) -> GraphQLSchema:
    sdl = resources.files("dagster_plus_sandbox").joinpath(SCHEMA_FILES[api]).read_text()
    built = build_schema(sdl)
    for name in ("GenericScalar", "JSONString"):
        scalar = built.type_map.get(name)
        if isinstance(scalar, GraphQLScalarType):
            # graphql-core keeps these as instance attributes (a scalar's own functions).
            scalar.serialize = _identity  # type: ignore[method-assign]
            scalar.parse_value = _identity  # type: ignore[method-assign]
            scalar.parse_literal = _parse_literal  # type: ignore[method-assign]
    return built


def _identity(value):
    return value


def _parse_literal(node, variables=None):
    from graphql import value_from_ast_untyped

    return value_from_ast_untyped(node, variables)


MAX_DOCUMENT_TOKENS = 20_000


@lru_cache(maxsize=512)
def parse_document(
    query: str, api: ApiName = "user"
) -> tuple[DocumentNode | None, tuple[str, ...]]:
    """The parsed document, validated against one API's schema, or None and the errors (cached:
    clients repeat their queries)."""
    try:
        # Bounded: a real client's document has a few hundred tokens.
        document = parse(query, max_tokens=MAX_DOCUMENT_TOKENS)
    except GraphQLError as error:
        return None, (error.message,)
    except RecursionError:
        return None, ("The document is nested too deeply.",)
    try:
        errors = validate(schema(api), document)
    except RecursionError:
        return None, ("The document is nested too deeply.",)
    if errors:
        return None, tuple(e.message for e in errors)
    return document, ()


# Root fields that only group the operations under them.
NAMESPACE_FIELDS = {"userCloudAgent", "defsState", "runs"}


def operations_touched(document: DocumentNode) -> set[str]:
    """Root field names of a document, with namespaces (`userCloudAgent`) opened up."""
    names: set[str] = set()
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for selection in definition.selection_set.selections:
            if not isinstance(selection, FieldNode):
                continue
            names.add(selection.name.value)
            if selection.name.value in NAMESPACE_FIELDS and selection.selection_set is not None:
                names.update(
                    s.name.value
                    for s in selection.selection_set.selections
                    if isinstance(s, FieldNode)
                )
    return names


@dataclass
class RequestContext:
    state: SandboxState
    token: Token
    deployment: Deployment


def run_graphql(
    api: ApiName,
    root: Any,
    document: DocumentNode,
    variables: dict | None,
    operation_name: str | None,
) -> dict:
    result = execute_sync(
        schema(api),
        document,
        root_value=root,
        variable_values=variables or {},
        operation_name=operation_name,
    )
    out: dict[str, Any] = {"data": result.data}
    if result.errors:
        out["errors"] = [e.formatted for e in result.errors]
    return out


# -- shapes both APIs return -------------------------------------------------------------------


def python_error(message: str, class_name: str | None = None) -> dict:
    return {
        "__typename": "PythonError",
        "message": message,
        "className": class_name,
        "stack": [],
        "cause": None,
        "causes": [],
        "errorChain": [],
    }


def deploy_data(document: dict) -> str:
    """The serialized CodeLocationDeployData that Dagster's agents read from a workspace entry."""
    from dagster._serdes import serialize_value
    from dagster_cloud_cli.core.workspace import CodeLocationDeployData

    code_source = document.get("code_source") or {}
    return serialize_value(
        CodeLocationDeployData(
            image=document.get("image"),
            python_file=code_source.get("python_file"),
            package_name=code_source.get("package_name"),
            module_name=code_source.get("module_name"),
            autoload_defs_module_name=code_source.get("autoload_defs_module_name"),
            working_directory=document.get("working_directory"),
            executable_path=document.get("executable_path"),
            attribute=document.get("attribute"),
            container_context=document.get("container_context") or {},
        )
    )


def workspace_entry(view: LocationView) -> dict:
    return {
        "__typename": "WorkspaceEntry",
        "locationName": view.name,
        "serializedDeploymentMetadata": deploy_data(view.document),
        "hasOutdatedData": view.outdated,
        "hasLoadError": view.error is not None,
        "metadataTimestamp": view.updated_at,
        "dataUpdatedTimestamp": view.updated_at,
    }


def workspace_entries(
    state: SandboxState, deployment: Deployment, agent_queues: list[str | None] | None
) -> list[dict]:
    """What a Hybrid agent serves: nothing for a Serverless deployment (its own agent serves it)."""
    if deployment.agent_type != "HYBRID":
        return []
    return [
        workspace_entry(view)
        for view in state.locations(deployment)
        if agent_queues is None or view.document.get("agent_queue") in agent_queues
    ]
