"""Agent queues in the sandbox, as Dagster+ routes them: a location's `agent_queue` decides
which agents serve it; the Serverless agent serves the default queue only, so a SERVERLESS
deployment can have locations on a Hybrid agent's queue beside its own (the mixed setup of
Dagster's guide "Deploying to both Serverless and Hybrid code locations")."""

from __future__ import annotations

import pytest
from support.agent import heartbeat, upload_entry

from dagster_plus_sandbox.serving import serving_timeline
from dagster_plus_sandbox.state import served_queues


@pytest.fixture
def sandbox(start_sandbox, clock):
    return start_sandbox(clock=clock)


def _status(admin) -> dict[str, str]:
    return {e.name: e.load_status for e in admin.workspace()}


def _queued(admin, name: str, queue: str | None) -> None:
    document = next(
        loc for loc in admin.locations_as_document()["locations"] if loc["location_name"] == name
    )
    admin.deploy_locations({"locations": [{**document, "agent_queue": queue}]})


def _entries(sandbox, token: str, queues: list[str | None]) -> list[str]:
    from dagster_cloud.agent.queries import WORKSPACE_ENTRIES_QUERY
    from support.agent import agent_graphql

    with agent_graphql(sandbox, token) as client:
        data = client.execute(
            WORKSPACE_ENTRIES_QUERY,
            variable_values={
                "deploymentNames": ["prod"],
                "includeAllServerlessDeployments": False,
                "agentQueues": queues,
            },
        )["data"]["deployments"][0]["workspaceEntries"]
    return [e["locationName"] for e in data]


def test_a_queued_location_moves_to_the_hybrid_agent_while_the_rest_stay_serverless(
    sandbox, admin, clock
):
    token = admin.create_agent_token("queue agent").token.get_secret_value()
    clock.advance(5)
    assert set(_status(admin).values()) == {"LOADED"}
    _queued(admin, "analytics", "hybrid")
    clock.advance(5)  # the Serverless agent would have loaded it long ago: not its queue
    assert _status(admin) == {"analytics": "LOADING", "ml_models": "LOADED"}
    # A Hybrid agent of the default queue is given nothing on a SERVERLESS deployment (its
    # Serverless agent serves that queue); one of the named queue is given that location only.
    assert _entries(sandbox, token, [None]) == []
    assert _entries(sandbox, token, ["hybrid"]) == ["analytics"]
    assert _entries(sandbox, token, ["hybrid", None]) == ["analytics"]
    # A report from an agent that does not serve the queue loads nothing.
    heartbeat(sandbox, token, "a1", "ProcessUserCodeLauncher", queues=[None])
    upload_entry(sandbox, token, "analytics")
    assert _status(admin)["analytics"] == "LOADING"
    heartbeat(sandbox, token, "a2", "ProcessUserCodeLauncher", queues=["hybrid"])
    assert _status(admin) == {"analytics": "LOADED", "ml_models": "LOADED"}
    assert admin.current_deployment().agent_type == "SERVERLESS"
    # The switch leaves the queued location with its agent; the default queue needs one.
    admin.update_deployment_agent_type("HYBRID")
    assert _status(admin) == {"analytics": "LOADED", "ml_models": "LOADING"}
    assert _entries(sandbox, token, ["hybrid"]) == ["analytics"]
    assert _entries(sandbox, token, [None]) == ["ml_models"]


def test_the_deploy_data_carries_the_queue_and_requests_go_to_that_queues_agents(
    sandbox, admin, clock
):
    from dagster._serdes import deserialize_value
    from dagster_cloud.agent.queries import GET_USER_CLOUD_REQUESTS_QUERY, WORKSPACE_ENTRIES_QUERY
    from support.agent import agent_graphql

    token = admin.create_agent_token("queue agent").token.get_secret_value()
    _queued(admin, "analytics", "hybrid")

    def pop(queues):
        with agent_graphql(sandbox, token) as client:
            return client.execute(
                GET_USER_CLOUD_REQUESTS_QUERY,
                variable_values={
                    "forBranchDeployments": False,
                    "forFullDeployments": ["prod"],
                    "agentQueues": queues,
                },
            )["data"]["userCloudAgent"]["popUserCloudAgentRequests"]

    assert pop([None]) == []  # nothing of the default queue is a Hybrid agent's here
    assert [r["requestApi"] for r in pop(["hybrid"])] == ["CHECK_FOR_WORKSPACE_UPDATES"]
    assert pop(["hybrid"]) == []  # once per deploy
    with agent_graphql(sandbox, token) as client:
        entry = client.execute(
            WORKSPACE_ENTRIES_QUERY,
            variable_values={
                "deploymentNames": ["prod"],
                "includeAllServerlessDeployments": False,
                "agentQueues": ["hybrid"],
            },
        )["data"]["deployments"][0]["workspaceEntries"][0]
    assert deserialize_value(entry["serializedDeploymentMetadata"]).agent_queue == "hybrid"


def test_served_queues_read_the_agents_own_config():
    assert served_queues(None) == [None]  # an agent that sends none: the default queue
    assert served_queues(
        {
            "__class__": "AgentQueuesConfig",
            "include_default_queue": False,
            "additional_queues": ["q"],
        }
    ) == ["q"]
    assert served_queues({"include_default_queue": True, "additional_queues": ["q"]}) == ["q", None]


TIMING = {"location_load_seconds": 1.0, "serverless_provision_seconds": 2.0}


def _event(at, kind, **detail):
    return {"at": at, "deployment": "prod", "kind": kind, "detail": detail}


def test_the_timeline_of_a_move_one_location_at_a_time_has_no_moment_unserved():
    events = [
        _event(10, "location_deployed", location="a", agent_queue="q"),
        _event(12, "location_reported", location="a", error=None),
        _event(13, "location_deployed", location="b", agent_queue="q"),
        _event(16, "location_reported", location="b", error=None),
        _event(20, "agent_type_switched", **{"from": "SERVERLESS", "to": "HYBRID"}),
    ]
    timeline = serving_timeline(events, "prod", "SERVERLESS", TIMING, 0, 30, {"a": None, "b": None})
    assert timeline.deployment_unserved == []
    assert timeline.location_unserved == {"a": [(10, 12)], "b": [(13, 16)]}
    assert timeline.location_unserved_seconds("b") == 3


def test_the_timeline_of_a_switch_shows_the_no_agent_window():
    events = [
        _event(10, "agent_type_switched", **{"from": "SERVERLESS", "to": "HYBRID"}),
        _event(11, "location_deployed", location="a", agent_queue=None),
        _event(11, "location_deployed", location="b", agent_queue=None),
        _event(13, "location_reported", location="a", error=None),
        _event(14, "location_reported", location="b", error="ImportError"),
    ]
    timeline = serving_timeline(events, "prod", "SERVERLESS", TIMING, 0, 30, {"a": None, "b": None})
    assert timeline.deployment_unserved == [(10, 13)]
    assert timeline.deployment_unserved_seconds == 3
    assert timeline.location_unserved["b"] == [(10, 30)]  # its load error: never served
