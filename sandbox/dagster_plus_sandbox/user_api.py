"""The user API (user_api.graphql): what a person, a CI job or this project asks Dagster+.

Who may do what, as Dagster+ documents it: reading needs any token; deploying code locations
and creating branch deployments need an Editor or Admin user token or an agent token (Dagster's
Hybrid CI deploys with an agent token); switching the agent type, agent tokens and deployment
settings need an Organization Admin's user token. Anything else gets `UnauthorizedError`.
"""

from __future__ import annotations

import json
from typing import Any

from graphql import GraphQLError

from dagster_plus_sandbox.api import (
    RequestContext,
    python_error,
    workspace_entries,
    workspace_entry,
)
from dagster_plus_sandbox.state import AgentView, Deployment, LocationView, SandboxState, Token

ADMIN_NEEDED = "an Organization Admin's user token"
EDITOR_NEEDED = "Editor (or Admin) on the deployment, or an agent token"


def _unauthorized(operation: str, needed: str) -> dict:
    return {
        "__typename": "UnauthorizedError",
        "message": f"Not authorized to {operation}: this needs {needed}.",
    }


LAUNCHER_NEEDED = "Launcher, Editor or Admin on the deployment (a user token)"


def _run_not_found(run_id: str) -> dict:
    return {
        "__typename": "RunNotFoundError",
        "runId": run_id,
        "message": f"Run {run_id} could not be found.",
    }


def run_shape(record: Any) -> dict:
    """A run of the deployment's real storage as the user API's Run."""
    run = record.dagster_run
    return {
        "__typename": "Run",
        "id": run.run_id,
        "runId": run.run_id,
        "status": run.status.value,
        "jobName": run.job_name,
        "tags": [{"key": k, "value": v} for k, v in run.tags.items()],
        "creationTime": record.create_timestamp.timestamp(),
        "startTime": record.start_time,
        "endTime": record.end_time,
    }


# The event types logsForRun answers with, by DagsterEventType (see user_api.graphql).
_EVENT_TYPES = {
    "STEP_FAILURE": "ExecutionStepFailureEvent",
    "STEP_START": "ExecutionStepStartEvent",
    "STEP_SUCCESS": "ExecutionStepSuccessEvent",
    "RUN_FAILURE": "RunFailureEvent",
    "RUN_START": "RunStartEvent",
    "RUN_ENQUEUED": "RunEnqueuedEvent",
    "RUN_DEQUEUED": "RunDequeuedEvent",
    "RUN_STARTING": "RunStartingEvent",
    "RUN_SUCCESS": "RunSuccessEvent",
    "ENGINE_EVENT": "EngineEvent",
}


def _python_error_of(info: Any) -> dict | None:
    if info is None:
        return None
    shape = python_error(info.message, info.cls_name)
    shape["stack"] = list(info.stack)
    shape["cause"] = _python_error_of(info.cause)
    return shape


def event_shape(entry: Any) -> dict | None:
    """One stored event as the user API's DagsterRunEvent (None: a type it leaves out)."""
    import logging

    event = entry.dagster_event
    typename = "LogMessageEvent" if event is None else _EVENT_TYPES.get(event.event_type.name)
    if typename is None:
        return None
    shape: dict[str, Any] = {
        "__typename": typename,
        "runId": entry.run_id,
        "message": (event.message if event is not None and event.message else entry.user_message),
        "timestamp": str(int(entry.timestamp * 1000)),
        "level": logging.getLevelName(entry.level),
        "stepKey": entry.step_key,
        "eventType": event.event_type.name if event is not None else None,
        "pipelineName": entry.job_name or "",
    }
    if typename in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent"):
        data = event.event_specific_data if event is not None else None
        shape["error"] = _python_error_of(getattr(data, "error", None) or entry.error_info)
    return shape


def _not_found(message: str) -> dict:
    return {"__typename": "DeploymentNotFoundError", "message": message}


def deployment_shape(state: SandboxState, deployment: Deployment) -> dict:
    branch = deployment.branch or {}
    return {
        "__typename": "DagsterCloudDeployment",
        "organizationId": 1,
        "organizationName": state.organization,
        "deploymentId": deployment.id,
        "deploymentName": deployment.name,
        "deploymentStatus": "ACTIVE",
        "deploymentType": deployment.type,
        "deploymentSettings": {"settings": deployment.settings},
        "isBranchDeployment": deployment.is_branch,
        "agentType": deployment.agent_type,
        "workspaceEntries": lambda info, agentQueues=None: workspace_entries(
            state, deployment, agentQueues
        ),
        "branchDeploymentGitMetadata": {
            "branchName": branch.get("branchName"),
            "repoName": branch.get("repoName"),
            "branchUrl": branch.get("branchUrl"),
            "pullRequestUrl": branch.get("pullRequestUrl"),
            "pullRequestStatus": branch.get("pullRequestStatus"),
            "pullRequestNumber": branch.get("pullRequestNumber"),
        }
        if branch
        else None,
        "latestCommit": deployment.latest_commit,
        "parentDeployment": lambda info: (
            deployment_shape(state, parent)
            if deployment.parent_id is not None
            and (parent := state.deployment(id=deployment.parent_id))
            else None
        ),
    }


def _agent(view: AgentView) -> dict:
    return {
        "id": view.id,
        "agentLabel": view.label,
        "status": view.status,
        "lastHeartbeatTime": view.last_heartbeat,
        "metadata": [
            {"key": key, "value": value if isinstance(value, str) else json.dumps(value)}
            for key, value in view.metadata.items()
        ],
        "errors": [
            {"timestamp": e.get("timestamp"), "error": python_error(e.get("message", ""))}
            for e in view.errors
        ],
        "codeServerStates": [],
    }


def _agent_token(token: Token, value: str) -> dict:
    return {
        "__typename": "DagsterCloudAgentToken",
        "id": token.id,
        "token": value,
        "description": token.description,
        "revoked": token.revoked,
        "createTimestamp": token.created,
        "revokeTimestamp": None,
    }


def _location_entry(state: SandboxState, deployment: Deployment, view: LocationView) -> dict:
    if view.load_status == "LOADING":
        location = None
    elif view.error is not None:
        location = python_error(view.error)
    else:
        instigators = state.instigators(deployment, view.name)

        def state_of(kind: str, item: dict) -> dict:
            return {
                "id": f"{view.name}:{kind}:{item['name']}",
                "name": item["name"],
                "status": item["status"],
                "repositoryName": "__repository__",
                "repositoryLocationName": view.name,
            }

        location = {
            "__typename": "RepositoryLocation",
            "id": view.name,
            "name": view.name,
            "repositories": [
                {
                    "id": f"{view.name}:__repository__",
                    "name": "__repository__",
                    "schedules": [
                        {
                            "id": f"{view.name}:{s['name']}",
                            "name": s["name"],
                            "cronSchedule": s["cron"] or "",
                            "scheduleState": state_of("schedule", s),
                        }
                        for s in instigators["schedule"]
                    ],
                    "sensors": [
                        {
                            "id": f"{view.name}:{s['name']}",
                            "name": s["name"],
                            "sensorState": state_of("sensor", s),
                        }
                        for s in instigators["sensor"]
                    ],
                }
            ],
        }
    return {
        "id": view.name,
        "name": view.name,
        "loadStatus": view.load_status,
        "updatedTimestamp": view.entry_updated_at,
        "locationOrLoadError": location,
    }


def _validated_locations(document: Any) -> tuple[list[dict], list[str]]:
    """The document's locations in the modern form, as Dagster+ validates them on deploy; or
    no locations and the errors."""
    from dagster_cloud.workspace.config_schema import process_workspace_config

    if not isinstance(document, dict):
        return [], ["The document must be a mapping with a `locations` key."]
    try:
        processed = process_workspace_config(document)
    except Exception as error:  # the schema raises CheckError with the messages joined
        return [], [str(error).splitlines()[0] if str(error) else type(error).__name__]
    locations = processed.get("locations") or []
    names = [location["location_name"] for location in locations]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return [], [f"Duplicate location names: {', '.join(duplicates)}"]
    return locations, []


def _location_errors(document: Any) -> list[str]:
    """What is wrong with one location's document, as Dagster+ validates it."""
    from dagster_cloud.workspace.config_schema import validate_workspace_location

    if not isinstance(document, dict):
        return ["The document must be a location mapping."]
    return list(validate_workspace_location(document) or [])


def _invalid(errors: list[str]) -> dict:
    return {"__typename": "InvalidLocationError", "message": "; ".join(errors), "errors": errors}


class UserRoot:
    """Root resolvers: graphql-core calls `UserRoot.<field>(info, **arguments)`."""

    def __init__(self, context: RequestContext):
        self.c = context
        self.state = context.state

    # queries -----------------------------------------------------------------------------------

    def agents(self, info):
        return [_agent(v) for v in self.state.agents(self.c.deployment)]

    def currentDeployment(self, info):
        return deployment_shape(self.state, self.c.deployment)

    def deployments(self, info):
        return [deployment_shape(self.state, d) for d in self.state.deployments()]

    def deploymentByName(self, info, name):
        deployment = self.state.deployment(name=name)
        if deployment is None:
            return _not_found(f"No deployment named {name!r}.")
        return deployment_shape(self.state, deployment)

    def fullDeployments(self, info):
        return [
            deployment_shape(self.state, d) for d in self.state.deployments() if not d.is_branch
        ]

    def branchDeployments(self, info, limit, pullRequestStatus=None):
        found = [
            d
            for d in reversed(self.state.deployments())
            if d.is_branch
            and (
                pullRequestStatus is None
                or (d.branch or {}).get("pullRequestStatus") == pullRequestStatus
            )
        ]
        return {"nodes": [deployment_shape(self.state, d) for d in found[: max(limit, 0)]]}

    def getBranchDeploymentName(self, info, repoName, branchName):
        deployment = self.state.branch_deployment(repoName, branchName)
        if deployment is None:
            raise GraphQLError(f"No branch deployment for {repoName}@{branchName}.")
        return deployment.name

    def serverless(self, info):
        return {
            "id": str(self.c.deployment.id),
            "status": self.state.serverless_status(self.c.deployment),
            "error": None,
        }

    def agentTokensOrError(self, info):
        if not self.c.token.is_admin:
            return _unauthorized("list agent tokens", ADMIN_NEEDED)
        return {
            "__typename": "DagsterCloudAgentTokens",
            "tokens": [_agent_token(t, v) for t, v in self.state.agent_tokens()],
        }

    def locationsAsDocument(self, info):
        return {"document": {"locations": self.state.location_documents(self.c.deployment)}}

    def workspace(self, info):
        return {"workspaceEntries": workspace_entries(self.state, self.c.deployment, None)}

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

    def organizationSettings(self, info):
        # The organization's settings document. The sandbox models none of its keys (SSO,
        # default roles, ...), so it answers an empty document; `dagster-cloud` and `dg plus
        # deploy` read it only to check the token and the URL (`check_connect_dagster_cloud`).
        return {"settings": {}}

    def runsOrError(self, info, filter=None, cursor=None, limit=None):  # noqa: A002 - the API's name
        f = filter or {}
        query = dict(
            statuses=f.get("statuses"),
            run_ids=f.get("runIds"),
            job_name=f.get("pipelineName"),
            created_after=f.get("createdAfter"),
            created_before=f.get("createdBefore"),
        )
        deployment = self.c.deployment
        return {
            "__typename": "Runs",
            "count": lambda info: self.state.run_count(deployment, **query),
            "results": lambda info: [
                {
                    "id": r["run_id"],
                    "runId": r["run_id"],
                    "status": r["status"],
                    "jobName": r["job_name"],
                    "creationTime": r["created"],
                }
                for r in self.state.run_page(deployment, limit=limit, cursor=cursor, **query)
            ],
        }

    def runOrError(self, info, runId):
        runs = self.state.runs.existing(self.c.deployment.name)
        record = runs.instance.get_run_record_by_id(runId) if runs is not None else None
        if record is None:
            return _run_not_found(runId)
        return run_shape(record)

    def logsForRun(self, info, runId, afterCursor=None, limit=None):
        runs = self.state.runs.existing(self.c.deployment.name)
        if runs is None or not runs.instance.has_run(runId):
            return _run_not_found(runId)
        connection = runs.instance.get_records_for_run(runId, cursor=afterCursor, limit=limit)
        events = [event_shape(r.event_log_entry) for r in connection.records]
        return {
            "__typename": "EventConnection",
            "events": [e for e in events if e is not None],
            "cursor": connection.cursor,
            "hasMore": connection.has_more,
        }

    # mutations ---------------------------------------------------------------------------------

    def launchRun(self, info, executionParams):
        from dagster_plus_sandbox.runs import RunNotLaunchable

        token = self.c.token
        if not (token.kind == "user" and token.role in ("ADMIN", "EDITOR")):
            return _unauthorized("launch runs", LAUNCHER_NEEDED)
        selector = executionParams["selector"]
        job = selector.get("jobName") or selector.get("pipelineName")
        location = selector["repositoryLocationName"]
        repository = selector["repositoryName"]
        deployment = self.c.deployment
        names = {view.name for view in self.state.locations(deployment)}
        if not job or location not in names:
            return {
                "__typename": "PipelineNotFoundError",
                "message": f"Could not find Pipeline {location}.{repository}.{job}",
                "pipelineName": job or "",
                "repositoryName": repository,
                "repositoryLocationName": location,
            }
        metadata = executionParams.get("executionMetadata") or {}
        tags = {t["key"]: t["value"] for t in metadata.get("tags") or []}
        run_config = executionParams.get("runConfigData") or {}
        if isinstance(run_config, str):
            import yaml

            run_config = yaml.safe_load(run_config) or {}
        try:
            run = self.state.runs.deployment(deployment.name).launch(
                location, repository, job, run_config, tags
            )
        except RunNotLaunchable as refused:
            return python_error(refused.message, refused.typename)
        self.state.record_launched_run(deployment, run.run_id, job, location)
        runs = self.state.runs.deployment(deployment.name)
        return {
            "__typename": "LaunchRunSuccess",
            "run": run_shape(runs.instance.get_run_record_by_id(run.run_id)),
        }

    def updateDeploymentAgentType(self, info, deploymentAgentType=None, deploymentId=None):
        if not self.c.token.is_admin:
            return _unauthorized("switch the deployment's agent type", ADMIN_NEEDED)
        if deploymentAgentType is None:
            return python_error("deploymentAgentType is required.")
        deployment = (
            self.state.deployment(id=deploymentId)
            if deploymentId is not None
            else self.c.deployment
        )
        if deployment is None:
            return _not_found(f"No deployment with id {deploymentId}.")
        return deployment_shape(
            self.state, self.state.set_agent_type(deployment, deploymentAgentType)
        )

    def createAgentToken(self, info, description=None):
        if not self.c.token.is_admin:
            return _unauthorized("create an agent token", ADMIN_NEEDED)
        return _agent_token(*self.state.create_agent_token(description, self.c.token))

    def revokeAgentToken(self, info, tokenId):
        if not self.c.token.is_admin:
            return _unauthorized("revoke an agent token", ADMIN_NEEDED)
        revoked = self.state.revoke_agent_token(tokenId)
        if revoked is None:
            return {
                "__typename": "DagsterCloudTokenNotFoundError",
                "message": f"No agent token with id {tokenId}.",
            }
        return _agent_token(*revoked)

    def _deploy(self, document, kind: str, success: str, reconcile: bool = False):
        if not self.c.token.can_edit:
            return _unauthorized("deploy code locations", EDITOR_NEEDED)
        locations, errors = _validated_locations(document)
        if errors:
            return _invalid(errors)
        deployment = self.c.deployment
        if reconcile:
            keep = {location["location_name"] for location in locations}
            for existing in self.state.location_documents(deployment):
                if existing["location_name"] not in keep:
                    self.state.delete_location(deployment, existing["location_name"])
        names = set(self.state.upsert_locations(deployment, locations, kind))
        return {
            "__typename": success,
            "locations": [
                workspace_entry(view)
                for view in self.state.locations(deployment)
                if view.name in names
            ],
        }

    def deployLocations(self, info, document):
        return self._deploy(document, "location_deployed", "DeployLocationsSuccess")

    def reconcileLocationsFromDocument(self, info, document):
        return self._deploy(
            document, "location_reconciled", "ReconcileLocationsSuccess", reconcile=True
        )

    def addOrUpdateLocationFromDocument(self, info, document):
        if not self.c.token.can_edit:
            return _unauthorized("add or update a code location", EDITOR_NEEDED)
        errors = _location_errors(document)
        if errors:
            return _invalid(errors)
        deployment = self.c.deployment
        self.state.upsert_locations(deployment, [document], "location_updated")
        view = next(
            v for v in self.state.locations(deployment) if v.name == document["location_name"]
        )
        return workspace_entry(view)

    def deleteLocation(self, info, locationName):
        if not self.c.token.can_edit:
            return _unauthorized("delete a code location", EDITOR_NEEDED)
        if not self.state.delete_location(self.c.deployment, locationName):
            return python_error(f"No code location named {locationName!r}.")
        return {"__typename": "DeleteLocationSuccess", "locationName": locationName}

    def setDeploymentSettings(self, info, deploymentSettings, deploymentId=None):
        if not self.c.token.is_admin:
            return _unauthorized("change deployment settings", ADMIN_NEEDED)
        deployment = (
            self.state.deployment(id=deploymentId)
            if deploymentId is not None
            else self.c.deployment
        )
        if deployment is None:
            return _not_found(f"No deployment with id {deploymentId}.")
        settings = deploymentSettings.get("settings")
        if not isinstance(settings, dict):
            return python_error("deploymentSettings.settings must be a mapping.")
        return {
            "__typename": "DeploymentSettings",
            "settings": self.state.set_settings(deployment, settings),
        }

    def createOrUpdateBranchDeployment(
        self, info, branchData, commit, baseDeploymentName=None, snapshotBaseCondition=None
    ):
        if not self.c.token.can_edit:
            return _unauthorized("create a branch deployment", EDITOR_NEEDED)
        base = (
            self.state.deployment(name=baseDeploymentName)
            if baseDeploymentName
            else next((d for d in self.state.deployments() if not d.is_branch), None)
        )
        if base is None or base.is_branch:
            return _not_found(
                f"No full deployment named {baseDeploymentName!r} to base the branch deployment on."
            )
        return deployment_shape(
            self.state, self.state.upsert_branch_deployment(branchData, commit, base)
        )

    def deleteDeployment(self, info, deploymentId):
        deployment = self.state.deployment(id=deploymentId)
        if deployment is None:
            return _not_found(f"No deployment with id {deploymentId}.")
        allowed = self.c.token.can_edit if deployment.is_branch else self.c.token.is_admin
        if not allowed:
            return _unauthorized(
                "delete this deployment", EDITOR_NEEDED if deployment.is_branch else ADMIN_NEEDED
            )
        if not deployment.is_branch and sum(not d.is_branch for d in self.state.deployments()) == 1:
            return {
                "__typename": "DeleteFinalDeploymentError",
                "message": "The last full deployment cannot be deleted.",
            }
        shape = deployment_shape(self.state, deployment)
        self.state.delete_deployment(deployment)
        return shape

    def markCliEvent(self, info, durationSeconds, eventType, message=None, success=None, tags=None):
        return "ok"
