"""Contract: Dagster's own `dagster_cloud_cli.gql` functions run unchanged against the sandbox.

If the sandbox drifted from Dagster+'s dialect, these (not our own client) would notice first.
"""

from __future__ import annotations

import pytest
from dagster_cloud_cli import gql


@pytest.fixture
def cli(sandbox):
    with gql.graphql_client_from_url(f"{sandbox.url}/prod", sandbox.token("admin")) as client:
        yield client


@pytest.fixture
def org_cli(sandbox):
    """Organization scope with the deployment in a header, as the CLI sends it."""
    with gql.graphql_client_from_url(sandbox.url, sandbox.token("admin"),
                                     deployment_name="staging") as client:
        yield client


def test_fetch_agent_status(cli):
    assert gql.fetch_agent_status(cli) == [{"status": "RUNNING", "errors": []}]


def test_fetch_agent_type(cli, sandbox):
    assert gql.fetch_agent_type(cli) == gql.DagsterPlusDeploymentAgentType.SERVERLESS
    sandbox.state.set_agent_type(sandbox.state.deployment("prod"), "HYBRID")
    assert gql.fetch_agent_type(cli) == gql.DagsterPlusDeploymentAgentType.HYBRID


def test_fetch_deployment_name_and_full_deployments(cli, org_cli):
    assert gql.fetch_deployment_name(cli) == "prod"
    assert gql.fetch_deployment_name(org_cli) == "staging"
    deployments = gql.fetch_full_deployments(org_cli)
    assert [(d["deploymentName"], d["deploymentType"]) for d in deployments] == [
        ("prod", "PRODUCTION"), ("staging", "DEV")]


def test_fetch_code_locations(cli):
    entries = gql.fetch_code_locations(cli)
    assert [(e["name"], e["loadStatus"]) for e in entries] == [
        ("analytics", "LOADED"), ("ml_models", "LOADED")]
    assert entries[0]["locationOrLoadError"] == {"__typename": "RepositoryLocation",
                                                 "name": "analytics"}


def test_fetch_locations_as_document(cli):
    document = gql.fetch_locations_as_document(cli)
    assert [loc["location_name"] for loc in document["locations"]] == ["analytics", "ml_models"]
    assert document["locations"][1]["code_source"] == {"module_name": "ml_models.definitions"}


def test_deploy_code_locations(cli, sandbox):
    document = gql.fetch_locations_as_document(cli)
    for location in document["locations"]:
        location["image"] = f"registry.test/{location['location_name']}:abc"
    assert gql.deploy_code_locations(cli, document) == ["analytics", "ml_models"]
    assert gql.fetch_locations_as_document(cli) == document
    assert [e["detail"]["image"] for e in sandbox.state.events("location_deployed")] == [
        "registry.test/analytics:abc", "registry.test/ml_models:abc"]


def test_deploy_code_locations_rejects_a_bad_document(cli):
    with pytest.raises(Exception, match="Unable to deploy locations"):
        gql.deploy_code_locations(cli, {"locations": [{"location_name": "x"}]})


def test_add_update_reconcile_delete(cli):
    gql.add_or_update_code_location(cli, {"location_name": "extra",
                                          "code_source": {"python_file": "extra.py"}})
    names = lambda: [l["location_name"] for l in gql.fetch_locations_as_document(cli)["locations"]]  # noqa: E731,E741
    assert names() == ["analytics", "ml_models", "extra"]
    gql.delete_code_location(cli, "extra")
    assert names() == ["analytics", "ml_models"]
    assert gql.reconcile_code_locations(cli, {"locations": [
        {"location_name": "ml_models", "code_source": {"module_name": "ml_models.definitions"}}
    ]}) == ["ml_models"]
    assert names() == ["ml_models"]


def test_get_and_set_deployment_settings(cli):
    settings = gql.get_deployment_settings(cli)
    assert settings["non_isolated_runs"] == {"enabled": True, "max_concurrent_non_isolated_runs": 1}
    del settings["non_isolated_runs"]
    gql.set_deployment_settings(cli, {"settings": settings})
    assert gql.get_deployment_settings(cli) == {"run_queue": {"max_concurrent_runs": 10}}


def test_viewer_cannot_set_deployment_settings(sandbox):
    with gql.graphql_client_from_url(f"{sandbox.url}/prod", sandbox.token("viewer")) as viewer:
        with pytest.raises(Exception, match="UnauthorizedError"):
            gql.set_deployment_settings(viewer, {"settings": {}})


def test_the_agents_own_documents_run_against_the_sandbox(sandbox, admin):
    """Every document a Dagster+ agent sends, through the agent's own GraphQL client. The two
    different queries named `WorkspaceEntries` must both work."""
    from dagster_cloud.agent import queries
    from dagster_cloud.agent.dagster_cloud_agent import DEPLOYMENT_INFO_QUERY
    from dagster_cloud.secrets.loader import SECRETS_QUERY
    from dagster_cloud.workspace.user_code_launcher.user_code_launcher import (
        INIT_UPLOAD_LOCATIONS_QUERY,
    )
    from dagster_cloud_cli.core.graphql_client import (
        create_agent_graphql_client,
        create_graphql_requests_session,
    )
    from dagster_cloud_cli.core.headers.auth import DagsterCloudInstanceScope

    admin.update_deployment_agent_type("HYBRID")
    agent_token = admin.create_agent_token("contract").token.get_secret_value()
    config = {"agent_token": agent_token, "deployment": "prod"}
    with create_graphql_requests_session() as session:
        org = create_agent_graphql_client(session, f"{sandbox.url}/graphql",
                                          {"agent_token": agent_token},
                                          scope=DagsterCloudInstanceScope.ORGANIZATION)
        dep = create_agent_graphql_client(session, f"{sandbox.url}/graphql", config,
                                          scope=DagsterCloudInstanceScope.DEPLOYMENT)

        found = org.execute(queries.DEPLOYMENTS_QUERY, variable_values={"deploymentNames": ["prod", "nope"]})
        assert found["data"]["deployments"] == [{"deploymentName": "prod"}]

        entries = dep.execute(queries.WORKSPACE_ENTRIES_QUERY, variable_values={
            "deploymentNames": ["prod"], "includeAllServerlessDeployments": False,
            "agentQueues": [None]})["data"]["deployments"][0]["workspaceEntries"]
        assert [e["locationName"] for e in entries] == ["analytics", "ml_models"]
        assert {e["hasLoadError"] for e in entries} == {False}

        init = dep.execute(INIT_UPLOAD_LOCATIONS_QUERY)["data"]["workspace"]["workspaceEntries"]
        assert [e["locationName"] for e in init] == ["analytics", "ml_models"]

        assert dep.execute(DEPLOYMENT_INFO_QUERY)["data"]["deploymentInfo"] == {"deploymentName": "prod"}
        # Locations not yet loaded by any Hybrid agent are outdated; Dagster+ asks the agent, once
        # per deploy, to check for workspace updates (load them and upload what it found).
        assert {e["hasOutdatedData"] for e in entries} == {True}
        pop = {"forBranchDeployments": False, "forFullDeployments": ["prod"], "limit": 10,
               "agentQueues": [None]}
        (request,) = org.execute(queries.GET_USER_CLOUD_REQUESTS_QUERY, variable_values=pop)[
            "data"]["userCloudAgent"]["popUserCloudAgentRequests"]
        assert request["requestApi"] == "CHECK_FOR_WORKSPACE_UPDATES"
        from dagster._serdes import deserialize_value

        assert deserialize_value(request["requestBody"]).deployment_name == "prod"
        assert org.execute(queries.GET_USER_CLOUD_REQUESTS_QUERY, variable_values=pop)[
            "data"]["userCloudAgent"]["popUserCloudAgentRequests"] == []
        assert dep.execute(SECRETS_QUERY, variable_values={"locationName": "analytics"})[
            "data"]["scopedSecrets"] == []

        from dagster._serdes import serialize_value
        from dagster_cloud.api.dagster_cloud_api import AgentHeartbeat

        beat = AgentHeartbeat(timestamp=0.0, agent_id="contract-agent", agent_label=None,
                              agent_type="ProcessUserCodeLauncher", metadata={})
        org.execute(queries.ADD_AGENT_HEARTBEATS_MUTATION, variable_values={
            "serializedAgentHeartbeats": [{"deploymentName": "prod",
                                           "serializedAgentHeartbeat": serialize_value(beat)}],
            "serializedErrors": []}, idempotent_mutation=True)
        agents = org.execute(queries.GET_AGENTS_QUERY, variable_values={"heartbeatedSince": None})
        assert {"id": "contract-agent", "status": "RUNNING"} in agents["data"]["agents"]


def test_every_document_of_our_client_validates_against_the_sandbox_schema():
    from dagster_plus_sandbox.api import parse_document
    from migration_pipeline.plus import documents

    texts = {name: value for name, value in vars(documents).items()
             if name.isupper() and not name.startswith("_") and isinstance(value, str)}
    texts["run_counts_by_status"] = documents.run_counts_by_status()
    assert len(texts) >= 18
    for name, text in texts.items():
        document, errors = parse_document(text)
        assert document is not None, f"{name}: {errors}"
