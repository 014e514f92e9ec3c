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
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    execute_sync,
    parse,
    validate,
)
from graphql.language import FieldNode, OperationDefinitionNode

from dagster_plus_sandbox.schemas import ApiName, schema
from dagster_plus_sandbox.state import (
    DEFAULT_QUEUE,
    Deployment,
    LocationView,
    SandboxState,
    Token,
)

MAX_DOCUMENT_TOKENS = 20_000
# A document's text: a real client's is a few kB (values travel as variables). Only documents
# of at most CACHED_DOCUMENT_BYTES are cached, so the cache holds at most 512 x 16 kB of text.
MAX_DOCUMENT_BYTES = 100_000
CACHED_DOCUMENT_BYTES = 16_000
# Fields an operation selects once its fragments are expanded: an alias or fragment "bomb"
# (a fragment spreading another twice, twenty deep) would select millions from a few hundred
# tokens. The largest document the product, Dagster's CLI or its agent sends selects about a
# hundred. Dagster+ documents no such limit; this one is the sandbox's own.
MAX_SELECTED_FIELDS = 2_000


def parse_document(
    query: str, api: ApiName = "user"
) -> tuple[DocumentNode | None, tuple[str, ...]]:
    """The parsed document, validated against one API's schema, or None and the errors
    (documents of a few kB are cached: clients repeat their queries)."""
    if len(query) > MAX_DOCUMENT_BYTES:
        return None, (
            f"The document is {len(query):,} characters; at most {MAX_DOCUMENT_BYTES:,} are read "
            "(send values as variables).",
        )
    if len(query) <= CACHED_DOCUMENT_BYTES:
        return _parse_cached(query, api)
    return _parse(query, api)


@lru_cache(maxsize=512)
def _parse_cached(query: str, api: ApiName) -> tuple[DocumentNode | None, tuple[str, ...]]:
    return _parse(query, api)


def _parse(query: str, api: ApiName) -> tuple[DocumentNode | None, tuple[str, ...]]:
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
    selected = selected_fields(document, MAX_SELECTED_FIELDS)
    if selected > MAX_SELECTED_FIELDS:
        return None, (
            f"The document selects more than {MAX_SELECTED_FIELDS:,} fields once its fragments "
            "are expanded; the sandbox serves at most that many per document.",
        )
    return document, ()


def selected_fields(document: DocumentNode, limit: int) -> int:
    """How many fields the document's operations select with every fragment expanded, counted
    up to just past `limit` (a fragment is counted once and reused, so a bomb costs nothing
    to measure). The document is valid already: its fragments exist and do not cycle."""
    from graphql.language import FragmentDefinitionNode, FragmentSpreadNode, InlineFragmentNode

    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}

    def count(selection_set) -> int:
        total = 0
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                total += 1 + count(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                total += count(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in sizes:
                    sizes[name] = count(fragments[name].selection_set)
                total += sizes[name]
            if total > limit:
                return limit + 1
        return total

    return sum(
        count(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


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
            agent_queue=document.get("agent_queue"),
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


def hybrid_served(
    state: SandboxState, deployment: Deployment, agent_queues: list[str | None] | None
) -> list[LocationView]:
    """The locations Hybrid agents serve, of the queues asked for (None: every queue): on a
    HYBRID deployment every location; on a SERVERLESS one only those routed to a named queue,
    since its Serverless agent serves the default queue (`dagster_cloud_cli` 1.13.27,
    commands/ci/__init__.py: "serverless agents only serve the default agent queue")."""
    hybrid = deployment.agent_type == "HYBRID"
    return [
        view
        for view in state.locations(deployment)
        if (hybrid or view.agent_queue is not DEFAULT_QUEUE)
        and (agent_queues is None or view.agent_queue in agent_queues)
    ]


def workspace_entries(
    state: SandboxState, deployment: Deployment, agent_queues: list[str | None] | None
) -> list[dict]:
    """The workspace entries of `hybrid_served`."""
    return [workspace_entry(view) for view in hybrid_served(state, deployment, agent_queues)]
