"""The GraphQL side of the sandbox: the schema in schema.graphql, executed by graphql-core.

Because a real schema parses and validates every document, any client that speaks Dagster+'s
dialect works unchanged (Dagster's CLI, its agent, our own client), whatever names it gives its
operations: the two different agent queries named `WorkspaceEntries` are told apart by the
fields they select, not by their name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLScalarType,
    build_schema,
    execute,
    parse,
    validate,
)
from graphql.language import FieldNode, OperationDefinitionNode

from dagster_plus_sandbox.state import (
    AgentView,
    Deployment,
    LocationView,
    SandboxState,
    Token,
)

ADMIN_NEEDED = "Organization Admin"
EDITOR_NEEDED = "Editor (or Admin) on the deployment"


@lru_cache(maxsize=1)
def schema():
    sdl = resources.files("dagster_plus_sandbox").joinpath("schema.graphql").read_text()
    built = build_schema(sdl)
    for name in ("GenericScalar", "JSONString"):
        scalar = built.type_map[name]
        assert isinstance(scalar, GraphQLScalarType)
        scalar.serialize = _identity
        scalar.parse_value = _identity
        scalar.parse_literal = _parse_literal
    return built


def _identity(value):
    return value


def _parse_literal(node, variables=None):
    from graphql import value_from_ast_untyped

    return value_from_ast_untyped(node, variables)


@lru_cache(maxsize=256)
def parse_document(query: str) -> tuple[DocumentNode | None, tuple[str, ...]]:
    """The parsed, validated document, or None and the errors (cached: clients repeat queries)."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return None, (error.message,)
    errors = validate(schema(), document)
    if errors:
        return None, tuple(e.message for e in errors)
    return document, ()


# Root fields that only group the operations under them.
NAMESPACE_FIELDS = {"userCloudAgent", "defsState"}


def operations_touched(document: DocumentNode) -> set[str]:
    """Root field names of a document, with `userCloudAgent` opened up to its own fields."""
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
                    s.name.value for s in selection.selection_set.selections
                    if isinstance(s, FieldNode)
                )
    return names


@dataclass
class RequestContext:
    state: SandboxState
    token: Token
    deployment: Deployment


def run_graphql(state: SandboxState, document: DocumentNode, variables: dict | None,
                operation_name: str | None, token: Token, deployment: Deployment) -> dict:
    context = RequestContext(state, token, deployment)
    result = execute(schema(), document, root_value=Root(context),
                     variable_values=variables or {}, operation_name=operation_name)
    out: dict[str, Any] = {"data": result.data}
    if result.errors:
        out["errors"] = [e.formatted for e in result.errors]
    return out


# -- shapes ------------------------------------------------------------------------------------


def _unauthorized(operation: str, needed: str) -> dict:
    return {"__typename": "UnauthorizedError",
            "message": f"Not authorized to {operation}: this needs {needed}."}


def _python_error(message: str) -> dict:
    return {"__typename": "PythonError", "message": message, "className": None, "stack": [],
            "errorChain": []}


def _deployment(state: SandboxState, deployment: Deployment) -> dict:
    return {
        "__typename": "DagsterCloudDeployment",
        "deploymentName": deployment.name,
        "deploymentId": deployment.id,
        "deploymentType": deployment.type,
        "agentType": deployment.agent_type,
        "isBranchDeployment": deployment.type == "BRANCH",
        "workspaceEntries": lambda info, agentQueues=None: _workspace_entries(
            state, deployment, agentQueues),
    }


def _agent(view: AgentView) -> dict:
    return {
        "id": view.id,
        "agentLabel": view.label,
        "agentType": view.agent_type,
        "status": view.status,
        "lastHeartbeatTime": view.last_heartbeat,
        "metadata": [
            {"key": key, "value": value if isinstance(value, str) else json.dumps(value)}
            for key, value in view.metadata.items()
        ],
        "errors": [
            {"timestamp": e.get("timestamp"), "error": _python_error(e.get("message", ""))}
            for e in view.errors
        ],
        "codeServerStates": [],
    }


def _token(token: Token, value: str) -> dict:
    return {"__typename": "DagsterCloudAgentToken", "id": token.id, "token": value,
            "description": token.description, "revoked": token.revoked,
            "createTimestamp": token.created}


def _deploy_data(document: dict) -> str:
    """The serialized CodeLocationDeployData that Dagster's agents read from a workspace entry."""
    from dagster._serdes import serialize_value
    from dagster_cloud_cli.core.workspace import CodeLocationDeployData

    code_source = document.get("code_source") or {}
    return serialize_value(CodeLocationDeployData(
        image=document.get("image"),
        python_file=code_source.get("python_file"),
        package_name=code_source.get("package_name"),
        module_name=code_source.get("module_name"),
        autoload_defs_module_name=code_source.get("autoload_defs_module_name"),
        working_directory=document.get("working_directory"),
        executable_path=document.get("executable_path"),
        attribute=document.get("attribute"),
        container_context=document.get("container_context") or {},
    ))


def _workspace_entry(view: LocationView) -> dict:
    return {
        "__typename": "WorkspaceEntry",
        "locationName": view.name,
        "serializedDeploymentMetadata": _deploy_data(view.document),
        "hasOutdatedData": view.outdated,
        "hasLoadError": view.error is not None,
        "metadataTimestamp": view.updated_at,
    }


def _workspace_entries(state: SandboxState, deployment: Deployment,
                       agent_queues: list[str | None] | None) -> list[dict]:
    # A Serverless deployment's locations are served by the Serverless agent, not by Hybrid ones.
    if deployment.agent_type != "HYBRID":
        return []
    return [
        _workspace_entry(view) for view in state.locations(deployment)
        if agent_queues is None or view.document.get("agent_queue") in agent_queues
    ]


def _location_entry(state: SandboxState, deployment: Deployment, view: LocationView) -> dict:
    if view.load_status == "LOADING":
        location = None
    elif view.error is not None:
        location = _python_error(view.error)
    else:
        instigators = state.instigators(deployment, view.name)
        location = {
            "__typename": "RepositoryLocation",
            "name": view.name,
            "repositories": [{
                "name": "__repository__",
                "schedules": [
                    {"name": s["name"], "cronSchedule": s["cron"],
                     "scheduleState": {"id": f"{view.name}:{s['name']}", "status": s["status"]}}
                    for s in instigators["schedule"]
                ],
                "sensors": [
                    {"name": s["name"],
                     "sensorState": {"id": f"{view.name}:{s['name']}", "status": s["status"]}}
                    for s in instigators["sensor"]
                ],
            }],
        }
    return {"id": view.name, "name": view.name, "loadStatus": view.load_status,
            "updatedTimestamp": view.updated_at, "locationOrLoadError": location}


def _validated_locations(document: Any) -> tuple[list[dict] | None, list[str]]:
    """The document's locations in the modern form, as Dagster+ validates them on deploy."""
    from dagster_cloud.workspace.config_schema import process_workspace_config

    if not isinstance(document, dict):
        return None, ["The document must be a mapping with a `locations` key."]
    try:
        processed = process_workspace_config(document)
    except Exception as error:  # the schema raises CheckError with the messages joined
        return None, [str(error).splitlines()[0] if str(error) else type(error).__name__]
    locations = processed.get("locations") or []
    names = [location["location_name"] for location in locations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return None, [f"Duplicate location names: {', '.join(duplicates)}"]
    return locations, []


def _single_location(document: Any) -> tuple[dict | None, list[str]]:
    from dagster_cloud.workspace.config_schema import validate_workspace_location

    if not isinstance(document, dict):
        return None, ["The document must be a location mapping."]
    errors = validate_workspace_location(document)
    return (None, list(errors)) if errors else (document, [])


# -- the root ----------------------------------------------------------------------------------


class Root:
    """Root resolvers: graphql-core calls `Root.<field>(info, **arguments)`."""

    def __init__(self, context: RequestContext):
        self.c = context
        self.state = context.state

    # queries -----------------------------------------------------------------------------------

    def agents(self, info, heartbeatedSince=None):
        return [_agent(v) for v in self.state.agents(self.c.deployment, heartbeatedSince)]

    def currentDeployment(self, info):
        return _deployment(self.state, self.c.deployment)

    def fullDeployments(self, info):
        return [_deployment(self.state, d) for d in self.state.deployments() if d.type != "BRANCH"]

    def deployments(self, info, deploymentNames=None, includeAllServerlessDeployments=False):
        out = []
        for d in self.state.deployments():
            named = deploymentNames is None or d.name in deploymentNames
            serverless = includeAllServerlessDeployments and d.agent_type == "SERVERLESS"
            if named or serverless:
                out.append(_deployment(self.state, d))
        return out

    def deploymentInfo(self, info):
        return {"deploymentName": self.c.deployment.name,
                "deploymentType": self.c.deployment.type}

    def serverless(self, info):
        return {"status": self.state.serverless_status(self.c.deployment)}

    def agentTokensOrError(self, info):
        if not self.c.token.is_admin:
            return _unauthorized("list agent tokens", ADMIN_NEEDED)
        return {"__typename": "DagsterCloudAgentTokens",
                "tokens": [_token(t, v) for t, v in self.state.agent_tokens()]}

    def locationsAsDocument(self, info):
        return {"document": {"locations": self.state.location_documents(self.c.deployment)}}

    def workspace(self, info):
        return {"workspaceEntries": _workspace_entries(self.state, self.c.deployment, None)}

    def workspaceOrError(self, info):
        deployment = self.c.deployment
        return {
            "__typename": "Workspace",
            "id": deployment.name,
            "locationEntries": [
                _location_entry(self.state, deployment, view)
                for view in self.state.locations(deployment)
            ],
        }

    def deploymentSettings(self, info):
        return {"settings": self.c.deployment.settings}

    def runsOrError(self, info, filter=None, cursor=None, limit=None):
        f = filter or {}
        query = dict(statuses=f.get("statuses"), run_ids=f.get("runIds"),
                     job_name=f.get("pipelineName"))
        deployment = self.c.deployment
        return {
            "__typename": "Runs",
            "count": lambda info: self.state.run_count(deployment, **query),
            "results": lambda info: [
                {"id": r["run_id"], "runId": r["run_id"], "status": r["status"],
                 "jobName": r["job_name"], "creationTime": r["created"]}
                for r in self.state.run_page(deployment, limit=limit, cursor=cursor, **query)
            ],
        }

    def scopedSecrets(self, info, locationName=None):
        # The sandbox keeps no Dagster+ secrets; code servers a Local agent starts ask anyway.
        return []

    def latestDefsStateInfo(self, info):
        # Code servers ask for state-backed definitions on start; the sandbox keeps none.
        return None

    # mutations ---------------------------------------------------------------------------------

    def updateDeploymentAgentType(self, info, deploymentAgentType, deploymentId=None):
        if not self.c.token.is_admin:
            return _unauthorized("switch the deployment's agent type", ADMIN_NEEDED)
        deployment = (self.state.deployment(id=deploymentId) if deploymentId is not None
                      else self.c.deployment)
        if deployment is None:
            return {"__typename": "DeploymentNotFoundError",
                    "message": f"No deployment with id {deploymentId}."}
        return _deployment(self.state, self.state.set_agent_type(deployment, deploymentAgentType))

    def createAgentToken(self, info, description=None):
        if not self.c.token.is_admin:
            return _unauthorized("create an agent token", ADMIN_NEEDED)
        return _token(*self.state.create_agent_token(description, self.c.token))

    def revokeAgentToken(self, info, tokenId):
        if not self.c.token.is_admin:
            return _unauthorized("revoke an agent token", ADMIN_NEEDED)
        revoked = self.state.revoke_agent_token(tokenId)
        return _token(*revoked) if revoked else _python_error(f"No agent token with id {tokenId}.")

    def _deploy(self, document, kind: str, success: str, reconcile: bool = False):
        if not self.c.token.can_edit:
            return _unauthorized("deploy code locations", EDITOR_NEEDED)
        locations, errors = _validated_locations(document)
        if errors:
            return {"__typename": "InvalidLocationError", "errors": errors}
        deployment = self.c.deployment
        if reconcile:
            keep = {location["location_name"] for location in locations}
            for existing in self.state.location_documents(deployment):
                if existing["location_name"] not in keep:
                    self.state.delete_location(deployment, existing["location_name"])
        names = self.state.upsert_locations(deployment, locations, kind)
        return {"__typename": success, "locations": [{"locationName": n} for n in names]}

    def deployLocations(self, info, document):
        return self._deploy(document, "location_deployed", "DeployLocationsSuccess")

    def reconcileLocationsFromDocument(self, info, document):
        return self._deploy(document, "location_reconciled", "ReconcileLocationsSuccess",
                            reconcile=True)

    def addOrUpdateLocationFromDocument(self, info, document):
        if not self.c.token.can_edit:
            return _unauthorized("add or update a code location", EDITOR_NEEDED)
        location, errors = _single_location(document)
        if errors:
            return {"__typename": "InvalidLocationError", "errors": errors}
        deployment = self.c.deployment
        self.state.upsert_locations(deployment, [location], "location_updated")
        view = next(v for v in self.state.locations(deployment) if v.name == location["location_name"])
        return _workspace_entry(view)

    def deleteLocation(self, info, locationName):
        if not self.c.token.can_edit:
            return _unauthorized("delete a code location", EDITOR_NEEDED)
        if not self.state.delete_location(self.c.deployment, locationName):
            return _python_error(f"No code location named {locationName!r}.")
        return {"__typename": "DeleteLocationSuccess", "locationName": locationName}

    def setDeploymentSettings(self, info, deploymentSettings):
        if not self.c.token.is_admin:
            return _unauthorized("change deployment settings", ADMIN_NEEDED)
        settings = deploymentSettings.get("settings")
        if not isinstance(settings, dict):
            return _python_error("deploymentSettings.settings must be a mapping.")
        return {"__typename": "DeploymentSettings",
                "settings": self.state.set_settings(self.c.deployment, settings)}

    def defsState(self, info):
        return {"setLatestDefsStateVersion": lambda info, key, version=None: {"ok": True}}

    def userCloudAgent(self, info):
        if self.c.token.kind != "agent":
            raise GraphQLError("userCloudAgent needs an agent token.")
        return AgentMutations(self.c)


class AgentMutations:
    """What an agent writes: heartbeats in, requests out."""

    def __init__(self, context: RequestContext):
        self.c = context

    def addAgentHeartbeats(self, info, serializedAgentHeartbeats=None, serializedErrors=None):
        errors = [_error_of(e) for e in serializedErrors or []]
        for item in serializedAgentHeartbeats or []:
            heartbeat = json.loads(item["serializedAgentHeartbeat"])
            metadata = {k: v for k, v in (heartbeat.get("metadata") or {}).items()
                        if isinstance(v, (str, int, float)) and v != ""}
            heartbeat["metadata"] = metadata
            deployment = item.get("deploymentName") or self.c.deployment.name
            self.c.state.record_heartbeat(deployment, heartbeat, errors)
        return {"ok": True}

    def popUserCloudAgentRequests(self, info, limit=None, forBranchDeployments=None,
                                  forFullDeployments=None, agentQueues=None):
        """After a deploy, Dagster+ asks the agent to load and upload what changed
        (CHECK_FOR_WORKSPACE_UPDATES), once per deploy."""
        requests = []
        for name in forFullDeployments or []:
            deployment = self.c.state.deployment(name=name)
            if deployment is None:
                continue
            outdated = [v.updated_at for v in self.c.state.locations(deployment) if v.outdated]
            if outdated and self.c.state.claim_workspace_check(name, max(outdated)):
                requests.append(_check_for_updates_request(name))
        return requests[: limit or None]


def _check_for_updates_request(deployment: str) -> dict:
    import uuid

    from dagster._serdes import serialize_value
    from dagster_cloud.api.dagster_cloud_api import DagsterCloudApi, DagsterCloudApiRequest

    request_id = str(uuid.uuid4())
    body = DagsterCloudApiRequest(request_id=request_id,
                                  request_api=DagsterCloudApi.CHECK_FOR_WORKSPACE_UPDATES,
                                  request_args=None, deployment_name=deployment)
    return {"requestId": request_id, "requestApi": "CHECK_FOR_WORKSPACE_UPDATES",
            "requestBody": serialize_value(body), "deploymentName": deployment,
            "isBranchDeployment": False}


def _error_of(serialized: str) -> dict:
    raw = json.loads(serialized)
    error = raw.get("error") or {}
    return {"timestamp": raw.get("timestamp"), "message": error.get("message", "")}
