"""The agent API (agent_api.graphql): what a Hybrid agent and the code servers it starts ask and
tell Dagster+, with an agent token, on the agent host. Heartbeats in; the locations to serve and
the requests to answer out."""

from __future__ import annotations

import json
import uuid

from dagster_plus_sandbox.api import RequestContext, hybrid_served, workspace_entries
from dagster_plus_sandbox.state import Deployment


class AgentRoot:
    """Root resolvers: graphql-core calls `AgentRoot.<field>(info, **arguments)`."""

    def __init__(self, context: RequestContext):
        self.c = context
        self.state = context.state

    def agents(self, info, heartbeatedSince=None):
        return [
            {"id": v.id, "status": v.status}
            for v in self.state.agents(self.c.deployment, heartbeatedSince)
        ]

    def deployments(self, info, deploymentNames, includeAllServerlessDeployments=False):
        wanted = set(deploymentNames)
        return [
            {
                "deploymentName": d.name,
                "isBranchDeployment": d.is_branch,
                "workspaceEntries": lambda info, agentQueues=None, d=d: workspace_entries(
                    self.state, d, agentQueues
                ),
            }
            for d in self.state.deployments()
            if d.name in wanted
            or (includeAllServerlessDeployments and d.agent_type == "SERVERLESS")
        ]

    def deploymentInfo(self, info):
        return {"deploymentName": self.c.deployment.name, "deploymentType": self.c.deployment.type}

    def workspace(self, info):
        return {"workspaceEntries": workspace_entries(self.state, self.c.deployment, None)}

    def scopedSecrets(self, info, locationName=None):
        # The sandbox keeps no Dagster+ secrets; the code servers an agent starts ask anyway.
        return []

    def latestDefsStateInfo(self, info):
        # Code servers ask for state-backed definitions on start; the sandbox keeps none.
        return None

    def runs(self, info):
        return {"getRuns": [], "getRunRecords": [], "getRunIds": [], "getRunsCount": 0}

    def userCloudAgent(self, info):
        return AgentMutations(self.c)

    def defsState(self, info):
        return {"setLatestDefsStateVersion": lambda info, key, version=None: {"ok": True}}


class AgentMutations:
    def __init__(self, context: RequestContext):
        self.c = context

    def addAgentHeartbeats(self, info, serializedAgentHeartbeats=None, serializedErrors=None):
        errors = [_error_of(e) for e in serializedErrors or []]
        for item in serializedAgentHeartbeats or []:
            heartbeat = json.loads(item["serializedAgentHeartbeat"])
            metadata = {
                k: v
                for k, v in (heartbeat.get("metadata") or {}).items()
                if isinstance(v, (str, int, float)) and v != ""
            }
            heartbeat["metadata"] = metadata
            deployment = item.get("deploymentName") or self.c.deployment.name
            self.c.state.record_heartbeat(deployment, heartbeat, errors)
        return {"ok": True}

    def popUserCloudAgentRequests(
        self, info, limit=None, forBranchDeployments=None, forFullDeployments=None, agentQueues=None
    ):
        """After a deploy, Dagster+ asks the agent to load and upload what changed
        (CHECK_FOR_WORKSPACE_UPDATES), once per deploy, for the full deployments it names and,
        when it serves them, for every Hybrid branch deployment."""
        state = self.c.state
        candidates: list[Deployment] = [
            d
            for d in state.deployments()
            if (d.name in (forFullDeployments or []) and not d.is_branch)
            or (forBranchDeployments and d.is_branch and d.agent_type == "HYBRID")
        ]
        queues = tuple(agentQueues) if agentQueues is not None else None
        requests = []
        for deployment in candidates:
            # Only the deploys this agent's queues route to it.
            revisions = [
                v.revision for v in hybrid_served(state, deployment, agentQueues) if v.outdated
            ]
            if revisions and state.claim_workspace_check(deployment.name, max(revisions), queues):
                requests.append(_check_for_updates_request(deployment))
        return requests[: limit or None]


def _check_for_updates_request(deployment: Deployment) -> dict:
    from dagster._serdes import serialize_value
    from dagster_cloud.api.dagster_cloud_api import DagsterCloudApi, DagsterCloudApiRequest

    request_id = str(uuid.uuid4())
    body = DagsterCloudApiRequest(
        request_id=request_id,
        request_api=DagsterCloudApi.CHECK_FOR_WORKSPACE_UPDATES,
        request_args=None,
        deployment_name=deployment.name,
    )
    return {
        "requestId": request_id,
        "requestApi": "CHECK_FOR_WORKSPACE_UPDATES",
        "requestBody": serialize_value(body),
        "deploymentName": deployment.name,
        "isBranchDeployment": deployment.is_branch,
    }


def _error_of(serialized: str) -> dict:
    raw = json.loads(serialized)
    error = raw.get("error") or {}
    return {"timestamp": raw.get("timestamp"), "message": error.get("message", "")}
