"""The agent API (agent_api.graphql): what a Hybrid agent and the code servers it starts ask and
tell Dagster+, with an agent token, on the agent host. Heartbeats in; the locations to serve and
the requests to answer out."""

from __future__ import annotations

import json
import uuid

from dagster_plus_sandbox.api import RequestContext, hybrid_served, workspace_entries
from dagster_plus_sandbox.runs import event_from_input, launch_run_request, runs_filter
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
        return AgentRunStorage(self.state.runs.deployment(self.c.deployment.name).instance)

    def eventLogs(self, info):
        return AgentEventLogStorage(self.state.runs.deployment(self.c.deployment.name))

    def userCloudAgent(self, info):
        return AgentMutations(self.c)

    def defsState(self, info):
        return {"setLatestDefsStateVersion": lambda info, key, version=None: {"ok": True}}


class AgentRunStorage:
    """`runs { ... }`: the deployment's real run storage, as `GraphQLRunStorage` reads and
    writes it (runs.py)."""

    def __init__(self, instance):
        self.instance = instance

    def getRuns(self, info, filters=None, cursor=None, limit=None, bucketBy=None, ascending=False):
        from dagster._serdes import serialize_value

        runs = self.instance.get_runs(
            runs_filter(filters), cursor=cursor, limit=limit, ascending=bool(ascending)
        )
        return [serialize_value(run) for run in runs]

    def getRunRecords(
        self,
        info,
        filters=None,
        limit=None,
        orderBy=None,
        ascending=False,
        cursor=None,
        bucketBy=None,
    ):
        from dagster._serdes import serialize_value

        records = self.instance.get_run_records(
            runs_filter(filters),
            limit=limit,
            order_by=orderBy,
            ascending=bool(ascending),
            cursor=cursor,
        )
        return [
            {
                "storageId": r.storage_id,
                "serializedPipelineRun": serialize_value(r.dagster_run),
                "createTimestamp": r.create_timestamp.timestamp(),
                "updateTimestamp": r.update_timestamp.timestamp(),
                "startTime": r.start_time,
                "endTime": r.end_time,
            }
            for r in records
        ]

    def getRunIds(self, info, filters=None, cursor=None, limit=None):
        return list(self.instance.get_run_ids(runs_filter(filters), cursor=cursor, limit=limit))

    def getRunsCount(self, info, filters=None):
        return self.instance.get_runs_count(runs_filter(filters))

    def getRunById(self, info, runId):
        from dagster._serdes import serialize_value

        run = self.instance.get_run_by_id(runId)
        return serialize_value(run) if run is not None else None

    def hasRun(self, info, runId):
        return self.instance.has_run(runId)

    def addRunTags(self, info, runId, jsonNewTags):
        tags = json.loads(jsonNewTags) if isinstance(jsonNewTags, str) else jsonNewTags
        self.instance.add_run_tags(runId, {str(k): str(v) for k, v in tags.items()})
        return {"ok": True}


class AgentEventLogStorage:
    """`eventLogs { ... }`: the deployment's real event-log storage (runs.py)."""

    def __init__(self, runs):
        self.runs = runs
        self.instance = runs.instance

    def StoreEvent(self, info, eventRecord):
        self.runs.store_events([event_from_input(eventRecord)])
        return {"ok": True}

    def StoreEventBatch(self, info, eventRecords):
        self.runs.store_events([event_from_input(record) for record in eventRecords])
        return {"ok": True}

    def getPoolConfig(self, info):
        config = self.instance.event_log_storage.get_pool_config()
        granularity = config.pool_granularity
        return {
            "poolGranularity": granularity.value if granularity is not None else None,
            "defaultPoolLimit": config.default_pool_limit,
            "opGranularityRunBuffer": config.op_granularity_run_buffer,
        }

    def getRecordsForRun(
        self, info, runId, cursor=None, ofType=None, ofTypes=None, limit=None, ascending=True
    ):
        from dagster import DagsterEventType
        from dagster._serdes import serialize_value

        of_type = (
            DagsterEventType(ofType)
            if ofType
            else {DagsterEventType(t) for t in ofTypes}
            if ofTypes
            else None
        )
        connection = self.instance.get_records_for_run(
            runId, cursor=cursor, of_type=of_type, limit=limit, ascending=ascending
        )

        def entry(e):
            return {
                "errorInfo": serialize_value(e.error_info) if e.error_info else None,
                "level": e.level,
                "userMessage": e.user_message,
                "runId": e.run_id,
                "timestamp": e.timestamp,
                "stepKey": e.step_key,
                "pipelineName": e.job_name,
                "dagsterEvent": serialize_value(e.dagster_event) if e.dagster_event else None,
            }

        return {
            "records": [
                {"storageId": r.storage_id, "eventLogEntry": entry(r.event_log_entry)}
                for r in connection.records
            ],
            "cursor": connection.cursor,
            "hasMore": connection.has_more,
        }


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
        for deployment in candidates:
            # A queued run goes to an agent that serves its location and has loaded it.
            runs = state.runs.existing(deployment.name)
            room = None if not limit else limit - len(requests)
            if runs is None or room == 0 or room is not None and room < 0:
                continue
            loaded = [
                v.name
                for v in hybrid_served(state, deployment, agentQueues)
                if v.load_status == "LOADED" and v.error is None and not v.outdated
            ]
            requests += [
                launch_run_request(run, deployment.name, deployment.is_branch)
                for run in runs.dequeue(loaded, room)
            ]
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
