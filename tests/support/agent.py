"""The agent side, as Dagster's own agent speaks it: its GraphQL client and documents on the
sandbox's agent API (`Sandbox.agent_url`), its upload format on the agent host."""

from __future__ import annotations

import threading
import time
import zlib
from contextlib import contextmanager

import requests

from dagster_plus_sandbox import Sandbox


@contextmanager
def agent_graphql(sandbox: Sandbox, agent_token: str, deployment: str = "prod"):
    """Dagster's agent GraphQL client on the sandbox's agent API, scoped to one deployment."""
    from dagster_cloud_cli.core.graphql_client import (
        create_agent_graphql_client,
        create_graphql_requests_session,
    )
    from dagster_cloud_cli.core.headers.auth import DagsterCloudInstanceScope

    config = {"agent_token": agent_token, "deployment": deployment}
    with create_graphql_requests_session() as session:
        yield create_agent_graphql_client(
            session,
            f"{sandbox.agent_url}/graphql",
            config,
            scope=DagsterCloudInstanceScope.DEPLOYMENT,
        )


def heartbeat(
    sandbox: Sandbox,
    agent_token: str,
    agent_id: str,
    launcher: str,
    deployment: str = "prod",
    label: str | None = "test agent",
    queues: list[str | None] | None = None,
) -> None:
    """Send a heartbeat exactly as Dagster's agent serializes and sends it; `queues` as the
    agent's `agent_queues` config gives them (None in it: the default queue)."""
    from dagster._serdes import serialize_value
    from dagster_cloud.agent import AgentQueuesConfig
    from dagster_cloud.agent.queries import ADD_AGENT_HEARTBEATS_MUTATION
    from dagster_cloud.api.dagster_cloud_api import AgentHeartbeat

    queues = [None] if queues is None else queues
    beat = AgentHeartbeat(
        timestamp=time.time(),
        agent_id=agent_id,
        agent_label=label,
        agent_type=launcher,
        metadata={"version": "1.13.27"},
        agent_queues_config=AgentQueuesConfig(
            include_default_queue=None in queues,
            additional_queues=[q for q in queues if q is not None] or None,
        ),
    )
    with agent_graphql(sandbox, agent_token, deployment) as client:
        result = client.execute(
            ADD_AGENT_HEARTBEATS_MUTATION,
            variable_values={
                "serializedAgentHeartbeats": [
                    {
                        "deploymentName": deployment,
                        "serializedAgentHeartbeat": serialize_value(beat),
                    }
                ],
                "serializedErrors": [],
            },
            idempotent_mutation=True,
        )
    assert result["data"]["userCloudAgent"]["addAgentHeartbeats"]["ok"]


def upload_entry(
    sandbox: Sandbox,
    agent_token: str,
    location: str,
    error: str | None = None,
    deployment: str = "prod",
):
    """PUT a workspace entry exactly as Dagster's agent does (legacy server upload)."""
    from dagster._serdes import serialize_value
    from dagster._utils.error import SerializableErrorInfo
    from dagster_cloud.api.dagster_cloud_api import DagsterCloudUploadWorkspaceEntry
    from dagster_cloud_cli.core.workspace import CodeLocationDeployData

    entry = DagsterCloudUploadWorkspaceEntry(
        location_name=location,
        code_location_deploy_data=CodeLocationDeployData(package_name=location),
        upload_location_data=None,
        serialized_error_info=SerializableErrorInfo(error, [], "ImportError") if error else None,
    )
    return requests.put(
        sandbox.agent_url + "/upload_workspace_entry",
        headers={"Dagster-Cloud-Api-Token": agent_token, "Dagster-Cloud-Deployment": deployment},
        files={"workspace_entry.tmp": zlib.compress(serialize_value(entry).encode())},
        timeout=10,
    )


@contextmanager
def fake_agent(
    sandbox: Sandbox,
    agent_token: str,
    launcher: str = "K8sUserCodeLauncher",
    agent_id: str = "fake-agent",
    interval: float = 0.2,
    label: str | None = None,
    broken: dict[str, str] | None = None,
    branch_deployments: bool = False,
    deployment: str = "prod",
    queues: list[str | None] | None = None,
):
    """An agent in a thread that speaks the agent API as Dagster's agent does, without running
    code: it heartbeats (with `label`, by default the label the migration's install files set,
    and the agent `queues` it serves, by default the default queue), asks for requests, and
    reports every outdated location it is given as loaded, or failed with `broken[image]`
    when its image is listed there."""
    queues = [None] if queues is None else queues
    if label is None:
        label = migration_label_for(sandbox, agent_token, deployment)
    stop = threading.Event()
    served = {deployment}

    def one_round():
        from dagster._serdes import deserialize_value
        from dagster_cloud.agent.queries import (
            GET_USER_CLOUD_REQUESTS_QUERY,
            WORKSPACE_ENTRIES_QUERY,
        )

        with agent_graphql(sandbox, agent_token, deployment) as client:
            requests_ = client.execute(
                GET_USER_CLOUD_REQUESTS_QUERY,
                variable_values={
                    "forBranchDeployments": branch_deployments,
                    "forFullDeployments": [deployment],
                    "limit": 10,
                    "agentQueues": queues,
                },
            )["data"]["userCloudAgent"]["popUserCloudAgentRequests"]
            served.update(r["deploymentName"] for r in requests_)
            deployments = client.execute(
                WORKSPACE_ENTRIES_QUERY,
                variable_values={
                    "deploymentNames": sorted(served),
                    "includeAllServerlessDeployments": False,
                    "agentQueues": queues,
                },
            )["data"]["deployments"]
        for entries in deployments:
            heartbeat(
                sandbox,
                agent_token,
                agent_id,
                launcher,
                entries["deploymentName"],
                label=label,
                queues=queues,
            )
            for entry in entries["workspaceEntries"]:
                if not entry["hasOutdatedData"]:
                    continue
                image = deserialize_value(entry["serializedDeploymentMetadata"]).image
                upload_entry(
                    sandbox,
                    agent_token,
                    entry["locationName"],
                    (broken or {}).get(image),
                    entries["deploymentName"],
                )

    def loop():
        from dagster_cloud_cli.core.errors import DagsterCloudHTTPError

        while not stop.is_set():
            try:
                one_round()
            except (DagsterCloudHTTPError, requests.HTTPError) as error:
                if "401" in str(error):
                    return  # its token was revoked (a rollback does): nothing more to serve
                raise
            stop.wait(interval)

    # running before the caller goes on
    heartbeat(sandbox, agent_token, agent_id, launcher, deployment, label=label, queues=queues)
    one_round()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def migration_label_for(sandbox: Sandbox, agent_token: str, deployment: str = "prod") -> str:
    """The label the migration gives the agent of this token."""
    from migration_pipeline.targets.agent import migration_agent_label

    token = sandbox.state.authenticate(agent_token)
    assert token is not None and token.kind == "agent"
    return migration_agent_label(deployment, token.id)
