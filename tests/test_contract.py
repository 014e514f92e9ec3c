"""Contract: Dagster's own clients run unchanged against the sandbox, each on its own API, and
every GraphQL document this product sends is valid on the API it goes to.

- `dagster_cloud_cli.gql` (the CLI a person or a CI job runs) on the user API;
- the agent's own documents, with the agent's own GraphQL client, on the agent API;
- each document of the product package validated against the user schema the sandbox serves
  (which is derived from the public Dagster+ user schema), and the one document for the user's
  own Dagster webserver (history.py) against dagster-graphql's schema.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil

import pytest
import requests
from dagster_cloud_cli import gql
from support.agent import agent_graphql

import migration_pipeline


@pytest.fixture
def cli(sandbox):
    with gql.graphql_client_from_url(f"{sandbox.url}/prod", sandbox.token("admin")) as client:
        yield client


@pytest.fixture
def org_cli(sandbox):
    """Organization scope with the deployment in a header, as the CLI sends it."""
    with gql.graphql_client_from_url(
        sandbox.url, sandbox.token("admin"), deployment_name="staging"
    ) as client:
        yield client


def test_fetch_agent_status(cli):
    assert gql.fetch_agent_status(cli) == [{"status": "RUNNING", "errors": []}]


def test_fetch_agent_type(cli, sandbox):
    assert gql.fetch_agent_type(cli) == gql.DagsterPlusDeploymentAgentType.SERVERLESS
    sandbox.state.set_agent_type(sandbox.state.deployment("prod"), "HYBRID")
    assert gql.fetch_agent_type(cli) == gql.DagsterPlusDeploymentAgentType.HYBRID


def test_fetch_deployment_name_full_deployments_and_by_name(cli, org_cli):
    assert gql.fetch_deployment_name(cli) == "prod"
    assert gql.fetch_deployment_name(org_cli) == "staging"
    deployments = gql.fetch_full_deployments(org_cli)
    # DagsterCloudDeploymentType is PRODUCTION | BRANCH: a staging deployment is a full one.
    assert [(d["deploymentName"], d["deploymentType"]) for d in deployments] == [
        ("prod", "PRODUCTION"),
        ("staging", "PRODUCTION"),
    ]
    assert gql.get_deployment_by_name(org_cli, "staging")["deploymentId"] == 2
    with pytest.raises(Exception, match="Unable to find deployment nope"):
        gql.get_deployment_by_name(org_cli, "nope")


def test_fetch_code_locations(cli):
    entries = gql.fetch_code_locations(cli)
    assert [(e["name"], e["loadStatus"]) for e in entries] == [
        ("analytics", "LOADED"),
        ("ml_models", "LOADED"),
    ]
    assert entries[0]["locationOrLoadError"] == {
        "__typename": "RepositoryLocation",
        "name": "analytics",
    }


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
        "registry.test/analytics:abc",
        "registry.test/ml_models:abc",
    ]


def test_deploy_code_locations_rejects_a_bad_document(cli):
    with pytest.raises(Exception, match="Unable to deploy locations"):
        gql.deploy_code_locations(cli, {"locations": [{"location_name": "x"}]})


def test_add_update_reconcile_delete(cli):
    gql.add_or_update_code_location(
        cli, {"location_name": "extra", "code_source": {"python_file": "extra.py"}}
    )
    names = lambda: [l["location_name"] for l in gql.fetch_locations_as_document(cli)["locations"]]  # noqa: E731,E741
    assert names() == ["analytics", "ml_models", "extra"]
    gql.delete_code_location(cli, "extra")
    assert names() == ["analytics", "ml_models"]
    assert gql.reconcile_code_locations(
        cli,
        {
            "locations": [
                {
                    "location_name": "ml_models",
                    "code_source": {"module_name": "ml_models.definitions"},
                }
            ]
        },
    ) == ["ml_models"]
    assert names() == ["ml_models"]


def test_get_and_set_deployment_settings(cli):
    settings = gql.get_deployment_settings(cli)
    assert settings["non_isolated_runs"] == {"enabled": True, "max_concurrent_non_isolated_runs": 1}
    del settings["non_isolated_runs"]
    gql.set_deployment_settings(cli, {"settings": settings})
    assert gql.get_deployment_settings(cli) == {"run_queue": {"max_concurrent_runs": 10}}


def test_organization_settings_as_the_cli_checks_the_connection(org_cli, sandbox, monkeypatch):
    """`dg plus deploy start` checks the URL and token with `check_connect_dagster_cloud`,
    which reads `organizationSettings` (CloudQuery.organizationSettings: OrganizationSettings
    { settings: GenericScalar } in the public user schema); a bad token fails it."""
    from dagster_cloud_cli.commands.ci import checks

    assert gql.get_organization_settings(org_cli) == {}
    monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", sandbox.token("admin"))
    assert checks.check_connect_dagster_cloud(sandbox.url).errors == []
    monkeypatch.setenv("DAGSTER_CLOUD_API_TOKEN", "user:acme:" + "0" * 32)
    assert checks.check_connect_dagster_cloud(sandbox.url).errors


def test_viewer_cannot_set_deployment_settings(sandbox):
    with gql.graphql_client_from_url(f"{sandbox.url}/prod", sandbox.token("viewer")) as viewer:
        with pytest.raises(Exception, match="UnauthorizedError"):
            gql.set_deployment_settings(viewer, {"settings": {}})


def test_branch_deployments_as_ci_init_creates_them(org_cli, sandbox):
    """What `dagster-cloud ci init` does in a pull request: create (then update) the branch
    deployment of the branch, based on a full deployment; find it again by name; delete it."""
    arguments = dict(
        repo_name="acme/data",
        branch_name="feature-x",
        commit_hash="abc123",
        timestamp=1.0,
        pull_request_status="OPEN",
        pull_request_number="7",
        base_deployment_name="prod",
    )
    name = gql.create_or_update_branch_deployment(org_cli, **arguments)
    assert (
        gql.create_or_update_branch_deployment(org_cli, **{**arguments, "commit_hash": "def456"})
        == name
    )
    assert (
        gql.get_branch_deployment_name(org_cli, repo_name="acme/data", branch_name="feature-x")
        == name
    )
    deployment = sandbox.state.deployment(name=name)
    assert deployment.type == "BRANCH" and deployment.latest_commit["commitHash"] == "def456"
    assert deployment.agent_type == "SERVERLESS"  # served like its base deployment
    assert name not in [d["deploymentName"] for d in gql.fetch_full_deployments(org_cli)]
    assert gql.delete_branch_deployment(org_cli, name) == deployment.id
    assert sandbox.state.deployment(name=name) is None


def test_an_agent_token_deploys_on_the_user_api_but_cannot_administer(sandbox, admin):
    """Dagster's Hybrid CI deploys with an agent token on the user API; what needs an
    Organization Admin (switching, tokens, settings) stays refused."""
    agent_token = admin.create_agent_token("ci").token.get_secret_value()
    with gql.graphql_client_from_url(f"{sandbox.url}/prod", agent_token) as agent_cli:
        assert gql.fetch_deployment_name(agent_cli) == "prod"
        document = gql.fetch_locations_as_document(agent_cli)
        assert gql.deploy_code_locations(agent_cli, document) == ["analytics", "ml_models"]
        with pytest.raises(Exception, match="UnauthorizedError"):
            gql.set_deployment_settings(agent_cli, {"settings": {}})
        switched = agent_cli.execute(
            "mutation { updateDeploymentAgentType(deploymentAgentType: HYBRID) { __typename } }"
        )
        assert switched["data"]["updateDeploymentAgentType"]["__typename"] == "UnauthorizedError"
    assert sandbox.state.deployment("prod").agent_type == "SERVERLESS"


def test_the_agents_own_documents_run_on_the_agent_api(start_sandbox, clock):
    """Every document a Dagster+ agent sends, through the agent's own GraphQL client, on the
    agent host. The two different queries named `WorkspaceEntries` must both work. Time moves
    only when the test says: the Serverless agent shuts down once its window has passed."""
    from conftest import FAST_TIMING, client_for
    from dagster._serdes import deserialize_value, serialize_value
    from dagster_cloud.agent import queries
    from dagster_cloud.agent.dagster_cloud_agent import DEPLOYMENT_INFO_QUERY
    from dagster_cloud.api.dagster_cloud_api import AgentHeartbeat
    from dagster_cloud.secrets.loader import SECRETS_QUERY
    from dagster_cloud.storage.defs_state.queries import (
        GET_LATEST_DEFS_STATE_INFO_QUERY,
        SET_LATEST_VERSION_MUTATION,
    )
    from dagster_cloud.storage.runs.queries import GET_RUN_RECORDS_QUERY, GET_RUNS_QUERY
    from dagster_cloud.workspace.user_code_launcher.user_code_launcher import (
        DEPLOYMENT_INFO_QUERY as DEPLOYMENT_TYPE_QUERY,
    )
    from dagster_cloud.workspace.user_code_launcher.user_code_launcher import (
        INIT_UPLOAD_LOCATIONS_QUERY,
    )

    sandbox = start_sandbox(clock=clock)
    admin = client_for(sandbox)
    admin.update_deployment_agent_type("HYBRID")
    agent_token = admin.create_agent_token("contract").token.get_secret_value()
    with agent_graphql(sandbox, agent_token) as agent:
        found = agent.execute(
            queries.DEPLOYMENTS_QUERY, variable_values={"deploymentNames": ["prod", "nope"]}
        )
        assert found["data"]["deployments"] == [{"deploymentName": "prod"}]

        entries = agent.execute(
            queries.WORKSPACE_ENTRIES_QUERY,
            variable_values={
                "deploymentNames": ["prod"],
                "includeAllServerlessDeployments": False,
                "agentQueues": [None],
            },
        )["data"]["deployments"][0]["workspaceEntries"]
        assert [e["locationName"] for e in entries] == ["analytics", "ml_models"]
        assert {e["hasLoadError"] for e in entries} == {False}

        init = agent.execute(INIT_UPLOAD_LOCATIONS_QUERY)["data"]["workspace"]["workspaceEntries"]
        assert [e["locationName"] for e in init] == ["analytics", "ml_models"]

        assert agent.execute(DEPLOYMENT_INFO_QUERY)["data"]["deploymentInfo"] == {
            "deploymentName": "prod"
        }
        assert agent.execute(DEPLOYMENT_TYPE_QUERY)["data"]["deploymentInfo"] == {
            "deploymentType": "PRODUCTION"
        }
        # Locations not yet loaded by any Hybrid agent are outdated; Dagster+ asks the agent, once
        # per deploy, to check for workspace updates (load them and upload what it found).
        assert {e["hasOutdatedData"] for e in entries} == {True}
        pop = {
            "forBranchDeployments": False,
            "forFullDeployments": ["prod"],
            "limit": 10,
            "agentQueues": [None],
        }
        (request,) = agent.execute(queries.GET_USER_CLOUD_REQUESTS_QUERY, variable_values=pop)[
            "data"
        ]["userCloudAgent"]["popUserCloudAgentRequests"]
        assert request["requestApi"] == "CHECK_FOR_WORKSPACE_UPDATES"
        assert deserialize_value(request["requestBody"]).deployment_name == "prod"
        assert (
            agent.execute(queries.GET_USER_CLOUD_REQUESTS_QUERY, variable_values=pop)["data"][
                "userCloudAgent"
            ]["popUserCloudAgentRequests"]
            == []
        )
        assert (
            agent.execute(SECRETS_QUERY, variable_values={"locationName": "analytics"})["data"][
                "scopedSecrets"
            ]
            == []
        )
        assert agent.execute(GET_LATEST_DEFS_STATE_INFO_QUERY)["data"] == {
            "latestDefsStateInfo": None
        }
        assert agent.execute(
            SET_LATEST_VERSION_MUTATION, variable_values={"key": "k", "version": "1"}
        )["data"]["defsState"]["setLatestDefsStateVersion"]["ok"]
        assert (
            agent.execute(GET_RUNS_QUERY, variable_values={"filters": {"statuses": ["STARTED"]}})[
                "data"
            ]["runs"]["getRuns"]
            == []
        )
        assert (
            agent.execute(GET_RUN_RECORDS_QUERY, variable_values={"limit": 5})["data"]["runs"][
                "getRunRecords"
            ]
            == []
        )

        beat = AgentHeartbeat(
            timestamp=0.0,
            agent_id="contract-agent",
            agent_label="mine",
            agent_type="ProcessUserCodeLauncher",
            metadata={},
        )
        agent.execute(
            queries.ADD_AGENT_HEARTBEATS_MUTATION,
            variable_values={
                "serializedAgentHeartbeats": [
                    {"deploymentName": "prod", "serializedAgentHeartbeat": serialize_value(beat)}
                ],
                "serializedErrors": [],
            },
            idempotent_mutation=True,
        )
        agents = agent.execute(queries.GET_AGENTS_QUERY, variable_values={"heartbeatedSince": None})
        assert {"id": "contract-agent", "status": "RUNNING"} in agents["data"]["agents"]
    # ... and the user API shows it, with its label; the Serverless agent, still shutting down
    # right after the switch, is gone once its shutdown window has passed.
    assert ("serverless", None) in [(a.id, a.label) for a in admin.agents()]
    clock.advance(FAST_TIMING["serverless_shutdown_seconds"] + 0.1)
    assert [(a.id, a.label) for a in admin.agents()] == [("contract-agent", "mine")]
    admin.close()


def test_each_api_refuses_the_other_ones_tokens_and_shapes(sandbox, admin):
    agent_token = admin.create_agent_token("contract").token.get_secret_value()

    def post(url, token, query):
        return requests.post(
            url, json={"query": query}, timeout=10, headers={"Dagster-Cloud-Api-Token": token}
        )

    # A user token on the agent host: 401, whatever it asks.
    for path_query in ("query { deploymentInfo { deploymentName } }",):
        refused = post(f"{sandbox.agent_url}/graphql", sandbox.token("admin"), path_query)
        assert refused.status_code == 401 and sandbox.token("admin") not in refused.text
    upload = requests.put(
        f"{sandbox.agent_url}/upload_workspace_entry",
        timeout=10,
        headers={"Dagster-Cloud-Api-Token": sandbox.token("admin")},
    )
    assert upload.status_code == 401
    # The agent API's shapes are not part of the user API, for any token.
    for token in (sandbox.token("admin"), agent_token):
        answer = post(
            f"{sandbox.url}/prod/graphql", token, "query { agents(heartbeatedSince: 0) { id } }"
        ).json()
        assert "Unknown argument 'heartbeatedSince'" in answer["errors"][0]["message"]
        answer = post(
            f"{sandbox.url}/graphql",
            token,
            'query { deployments(deploymentNames: ["prod"]) { deploymentName } }',
        ).json()
        assert "Unknown argument 'deploymentNames'" in answer["errors"][0]["message"]
        answer = post(
            f"{sandbox.url}/graphql",
            token,
            "mutation { userCloudAgent { addAgentHeartbeats { ok } } }",
        ).json()
        assert "Cannot query field 'userCloudAgent'" in answer["errors"][0]["message"]
    # And the user API's shapes are not part of the agent API.
    answer = post(
        f"{sandbox.agent_url}/graphql", agent_token, "query { currentDeployment { agentType } }"
    ).json()
    assert "Cannot query field 'currentDeployment'" in answer["errors"][0]["message"]
    # Uploads go to the agent host only.
    assert (
        requests.put(
            f"{sandbox.url}/upload_workspace_entry",
            timeout=10,
            headers={"Dagster-Cloud-Api-Token": agent_token},
        ).status_code
        == 404
    )


# -- every document the product sends ----------------------------------------------------------


def _product_modules():
    for info in pkgutil.walk_packages(migration_pipeline.__path__, "migration_pipeline."):
        yield importlib.import_module(info.name)


def _graphql_documents(module) -> dict[str, str]:
    """The module-level strings of a module that are GraphQL operations."""
    from graphql import GraphQLSyntaxError, OperationDefinitionNode, parse

    found = {}
    for name, value in vars(module).items():
        if not isinstance(value, str) or not value.lstrip().startswith(("query", "mutation")):
            continue
        try:
            document = parse(value)
        except GraphQLSyntaxError:
            continue
        if any(isinstance(d, OperationDefinitionNode) for d in document.definitions):
            found[f"{module.__name__}.{name}"] = value
    return found


def test_every_graphql_document_of_the_product_is_valid_on_the_api_it_goes_to():
    from dagster_graphql.schema import create_schema
    from graphql import parse, validate

    from dagster_plus_sandbox.api import parse_document
    from migration_pipeline.plus import documents

    documents_by_module = {m.__name__: _graphql_documents(m) for m in _product_modules()}
    user_api = {
        k: v
        for docs in documents_by_module.values()
        for k, v in docs.items()
        if not k.startswith("migration_pipeline.lib.history.")
    }
    user_api["migration_pipeline.plus.documents.run_counts_by_status()"] = (
        documents.run_counts_by_status()
    )
    # Every Dagster+ call goes through the client's documents: no stray document elsewhere.
    assert {k.rsplit(".", 1)[0] for k in user_api} == {"migration_pipeline.plus.documents"}, sorted(
        user_api
    )
    assert len(user_api) >= 20
    for name, text in user_api.items():
        document, errors = parse_document(text, "user")
        assert document is not None, f"{name}: {errors}"
        # ... and none is an agent-API document that the user API happens to accept.
        _, agent_errors = parse_document(text, "agent")
        assert agent_errors, f"{name} is also valid on the agent API: which host is it for?"

    history = documents_by_module["migration_pipeline.lib.history"]
    assert history
    for name, text in history.items():
        assert not validate(create_schema().graphql_schema, parse(text)), name


def test_no_product_source_spells_an_agent_api_shape():
    """A static check besides the one above: no string of a product module (docstrings aside)
    holds the agent API's arguments or mutations, whatever the string looks like."""
    agent_only = (
        "heartbeatedSince",
        "deploymentNames",
        "userCloudAgent",
        "addAgentHeartbeats",
        "popUserCloudAgentRequests",
        "includeAllServerlessDeployments",
    )
    for module in _product_modules():
        source = importlib.util.find_spec(module.__name__).origin
        tree = ast.parse(open(source, encoding="utf-8").read())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        strings = [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
        ]
        for text in strings:
            hits = [word for word in agent_only if word in text]
            assert not hits, f"{module.__name__}: {hits} in {text[:80]!r}"
