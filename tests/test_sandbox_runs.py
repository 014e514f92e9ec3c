"""The sandbox's runs: launched through the user API, queued until an agent serving the location
asks for requests, handed out once as LAUNCH_RUN, and written back through the agent API's
storage documents exactly as `dagster-cloud` 1.13.27 sends them (its own documents and its own
serialization of an event). The real agent and run worker: tests/test_agent_runs.py."""

from __future__ import annotations

import inspect

import pytest
import requests
from conftest import client_for
from graphql import parse, validate
from support.agent import agent_graphql, heartbeat

from dagster_plus_sandbox.runs import LocationCode
from dagster_plus_sandbox.schemas import schema

STORAGE_ROOTS = {"runs", "eventLogs"}


def _documents() -> dict[str, str]:
    """Every GraphQL document of dagster-cloud's run and event-log storage clients."""
    from dagster_cloud.storage.event_logs import queries as event_queries
    from dagster_cloud.storage.runs import queries as run_queries

    return {
        f"{module.__name__.rsplit('.', 2)[-2]}.{name}": value
        for module in (run_queries, event_queries)
        for name, value in inspect.getmembers(module)
        if isinstance(value, str) and ("query " in value or "mutation " in value)
    }


def _storage_fields(document: str) -> set[tuple[str, str, str]]:
    """(operation, root, field) of each storage field a document selects."""
    out = set()
    from graphql import FieldNode, OperationDefinitionNode

    for definition in parse(document).definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        operation = definition.operation
        for root in definition.selection_set.selections:
            if not isinstance(root, FieldNode) or root.name.value not in STORAGE_ROOTS:
                continue
            for field in root.selection_set.selections if root.selection_set else ():
                if isinstance(field, FieldNode):
                    out.add((operation.value, root.name.value, field.name.value))
    return out


def test_the_storage_fields_served_are_exactly_dagster_clouds_and_its_documents_validate():
    """Each run or event-log field the agent API serves is one a dagster-cloud document
    selects, and every such document validates against the sandbox's agent schema."""
    agent_schema = schema("agent")
    served = set()
    for operation, root_type in (
        ("query", agent_schema.query_type),
        ("mutation", agent_schema.mutation_type),
    ):
        for root in STORAGE_ROOTS:
            for field in root_type.fields[root].type.of_type.fields:
                served.add((operation, root, field))
    documents = _documents()
    selected = {f for text in documents.values() for f in _storage_fields(text)}
    assert served <= selected, f"served but sent by no dagster-cloud document: {served - selected}"
    validated = []
    for name, text in documents.items():
        if _storage_fields(text) and _storage_fields(text) <= served:
            assert validate(agent_schema, parse(text)) == [], name
            validated.append(name)
    # The run worker's and the agent's: runs by id, tags, events, the pool config.
    assert {
        "runs.GET_RUN_BY_ID_QUERY",
        "runs.ADD_RUN_TAGS_MUTATION",
        "event_logs.STORE_EVENT_MUTATION",
        "event_logs.STORE_EVENT_BATCH_MUTATION",
        "event_logs.GET_POOL_CONFIG_QUERY",
        "event_logs.GET_RECORDS_FOR_RUN_QUERY",
    } <= set(validated)


LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PipelineNotFoundError { message }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""


def _user(sandbox, query: str, variables: dict, token: str = "admin") -> dict:
    answer = requests.post(
        f"{sandbox.url}/prod/graphql",
        json={"query": query, "variables": variables},
        headers={"Dagster-Cloud-Api-Token": sandbox.token(token)},
        timeout=10,
    ).json()
    assert "errors" not in answer, answer
    return answer["data"]


def _params(job: str = "daily_refresh_job", location: str = "analytics") -> dict:
    return {
        "executionParams": {
            "selector": {
                "jobName": job,
                "repositoryName": "__repository__",
                "repositoryLocationName": location,
            },
            "executionMetadata": {"tags": [{"key": "team", "value": "data"}]},
        }
    }


def _loaded_by_an_agent(sandbox, location: str = "analytics") -> None:
    """What the agent reports after loading a location: its code, as runs.py keeps it."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster_cloud_cli.core.workspace import CodeLocationDeployData as DeployData

    sandbox.state.runs.deployment("prod").record_code(
        location,
        LocationCode(
            {"__repository__": ModuleCodePointer("analytics", "defs", None)},
            "/usr/bin/python3",
            None,
            DeployData(package_name="analytics"),
        ),
    )


@pytest.fixture
def hybrid(sandbox):
    admin = client_for(sandbox)
    admin.update_deployment_agent_type("HYBRID")
    return admin


def _pop(agent) -> list[dict]:
    from dagster_cloud.agent.queries import GET_USER_CLOUD_REQUESTS_QUERY

    return agent.execute(
        GET_USER_CLOUD_REQUESTS_QUERY,
        variable_values={
            "forBranchDeployments": False,
            "forFullDeployments": ["prod"],
            "limit": 10,
            "agentQueues": [None],
        },
    )["data"]["userCloudAgent"]["popUserCloudAgentRequests"]


def _load_all(sandbox, agent) -> None:
    """Serve the deployment's workspace check and report each location loaded."""
    for request in _pop(agent):
        assert request["requestApi"] == "CHECK_FOR_WORKSPACE_UPDATES"
    for view in sandbox.state.locations(sandbox.state.deployment("prod")):
        sandbox.state.record_upload("prod", view.name, None)


def test_a_launched_run_is_queued_then_handed_once_to_an_agent_serving_its_location(
    sandbox, hybrid
):
    from dagster._serdes import deserialize_value

    _loaded_by_an_agent(sandbox)
    launched = _user(sandbox, LAUNCH, _params())["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess"
    run_id = launched["run"]["runId"]
    assert launched["run"]["status"] == "QUEUED"
    token = hybrid.create_agent_token("runs").token.get_secret_value()
    with agent_graphql(sandbox, token) as agent:
        heartbeat(sandbox, token, "a1", "ProcessUserCodeLauncher")
        _load_all(sandbox, agent)
        (request,) = [r for r in _pop(agent) if r["requestApi"] == "LAUNCH_RUN"] or [None]
        assert _pop(agent) == []  # handed out once
    run = deserialize_value(request["requestBody"]).request_args.dagster_run
    assert run.run_id == run_id and run.status.value == "STARTING"
    assert run.tags["team"] == "data"
    assert run.remote_job_origin.location_name == "analytics"
    assert run.job_code_origin.repository_origin.executable_path == "/usr/bin/python3"
    assert (
        sandbox.state.run_page(sandbox.state.deployment("prod"), run_ids=[run_id])[0]["status"]
        == "STARTING"
    )


def test_a_run_stays_queued_while_no_agent_serves_its_location(sandbox, hybrid):
    _loaded_by_an_agent(sandbox)
    hybrid.deploy_locations(
        {
            "locations": [
                {**loc, "agent_queue": "other"} if loc["location_name"] == "analytics" else loc
                for loc in hybrid.locations_as_document()["locations"]
            ]
        }
    )
    run_id = _user(sandbox, LAUNCH, _params())["launchRun"]["run"]["runId"]
    token = hybrid.create_agent_token("runs").token.get_secret_value()
    with agent_graphql(sandbox, token) as agent:  # serves the default queue only
        heartbeat(sandbox, token, "a1", "ProcessUserCodeLauncher")
        _load_all(sandbox, agent)
        assert [r for r in _pop(agent) if r["requestApi"] == "LAUNCH_RUN"] == []
    runs = sandbox.state.runs.deployment("prod").instance
    assert runs.get_run_by_id(run_id).status.value == "QUEUED"


def test_events_stored_through_the_agent_api_drive_the_run_and_read_back(sandbox, hybrid):
    from dagster import DagsterEvent, DagsterEventType
    from dagster._core.events.log import EventLogEntry
    from dagster._utils.error import SerializableErrorInfo
    from dagster_cloud.storage.event_logs.queries import STORE_EVENT_MUTATION
    from dagster_cloud.storage.event_logs.storage import _input_for_event
    from dagster_cloud.storage.runs.queries import ADD_RUN_TAGS_MUTATION, GET_RUN_BY_ID_QUERY

    _loaded_by_an_agent(sandbox)
    run_id = _user(sandbox, LAUNCH, _params())["launchRun"]["run"]["runId"]
    token = hybrid.create_agent_token("runs").token.get_secret_value()

    def entry(kind: DagsterEventType, error: SerializableErrorInfo | None = None) -> dict:
        from dagster._core.events import JobFailureData

        data = JobFailureData(error=error) if error else None
        event = DagsterEvent(kind.value, "daily_refresh_job", event_specific_data=data)
        return _input_for_event(
            EventLogEntry(
                error_info=None,
                level=40 if error else 20,
                user_message="",
                run_id=run_id,
                timestamp=1.0,
                job_name="daily_refresh_job",
                dagster_event=event,
            )
        )

    with agent_graphql(sandbox, token) as agent:
        store = lambda e: agent.execute(STORE_EVENT_MUTATION, variable_values={"eventRecord": e})  # noqa: E731
        store(entry(DagsterEventType.RUN_START))
        agent.execute(
            ADD_RUN_TAGS_MUTATION,
            variable_values={"runId": run_id, "jsonNewTags": '{"dagster/agent_label": "mine"}'},
        )
        store(
            entry(
                DagsterEventType.RUN_FAILURE,
                SerializableErrorInfo("the table is not there", [], "ValueError"),
            )
        )
        serialized = agent.execute(GET_RUN_BY_ID_QUERY, variable_values={"runId": run_id})
    from dagster._serdes import deserialize_value

    stored = deserialize_value(serialized["data"]["runs"]["getRunById"])
    assert stored.status.value == "FAILURE"
    answer = _user(
        sandbox,
        """query($runId: ID!) {
          runOrError(runId: $runId) { ... on Run { status tags { key value } } }
          logsForRun(runId: $runId) { ... on EventConnection { events {
            __typename ... on RunFailureEvent { error { message className } } } } }
        }""",
        {"runId": run_id},
    )
    assert answer["runOrError"]["status"] == "FAILURE"
    assert {"key": "dagster/agent_label", "value": "mine"} in answer["runOrError"]["tags"]
    (failure,) = [e for e in answer["logsForRun"]["events"] if e["__typename"] == "RunFailureEvent"]
    assert failure["error"] == {"message": "the table is not there", "className": "ValueError"}
    listed = sandbox.state.run_page(sandbox.state.deployment("prod"), run_ids=[run_id])
    assert listed[0]["status"] == "FAILURE"


def test_launching_needs_a_launcher_and_a_known_location(sandbox, hybrid):
    viewer = _user(sandbox, LAUNCH, _params(), token="viewer")["launchRun"]
    assert viewer["__typename"] == "UnauthorizedError"
    missing = _user(sandbox, LAUNCH, _params(location="nowhere"))["launchRun"]
    assert missing["__typename"] == "PipelineNotFoundError"
    # A location no Hybrid agent has loaded yet (the no-agent window): queued, as in Dagster+;
    # it runs the code the agent reports once it serves.
    queued = _user(sandbox, LAUNCH, _params())["launchRun"]
    assert queued["__typename"] == "LaunchRunSuccess" and queued["run"]["status"] == "QUEUED"
    _loaded_by_an_agent(sandbox)
    wrong_repository = {**_params()}
    wrong_repository["executionParams"]["selector"]["repositoryName"] = "nope"
    refused = _user(sandbox, LAUNCH, wrong_repository)["launchRun"]
    assert refused["__typename"] == "PythonError" and "nope" in refused["message"]


def test_a_run_queued_before_any_agent_loaded_runs_the_code_the_agent_reports(sandbox, hybrid):
    """Launched inside the no-agent window: Dagster+ has the location (the Serverless agent
    loaded it) but no Hybrid agent has reported its code yet. The run waits QUEUED and, once
    handed to the agent that loaded the location, carries that agent's code."""
    from dagster._serdes import deserialize_value

    run_id = _user(sandbox, LAUNCH, _params())["launchRun"]["run"]["runId"]
    token = hybrid.create_agent_token("runs").token.get_secret_value()
    with agent_graphql(sandbox, token) as agent:
        heartbeat(sandbox, token, "a1", "ProcessUserCodeLauncher")
        _load_all(sandbox, agent)  # the deployment says LOADED, the code is not reported yet
        assert [r for r in _pop(agent) if r["requestApi"] == "LAUNCH_RUN"] == []
        _loaded_by_an_agent(sandbox)
        (request,) = [r for r in _pop(agent) if r["requestApi"] == "LAUNCH_RUN"]
    run = deserialize_value(request["requestBody"]).request_args.dagster_run
    assert run.run_id == run_id
    assert run.job_code_origin.repository_origin.code_pointer.module == "analytics"
