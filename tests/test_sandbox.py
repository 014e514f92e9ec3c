"""The sandbox as a server: routes, tokens, timed behaviour, state, faults, command line."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import requests
import yaml
from conftest import client_for, make_scenario
from support.agent import heartbeat, upload_entry

from dagster_plus_sandbox import Sandbox
from migration_pipeline.plus import InvalidLocationError, NotAuthorizedError

CURRENT = "query { currentDeployment { deploymentName agentType } }"


def post(
    sandbox: Sandbox,
    query: str,
    token: str | None,
    path: str = "/graphql",
    headers: dict | None = None,
    variables: dict | None = None,
    agent_api: bool = False,
) -> requests.Response:
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Dagster-Cloud-Api-Token"] = token
    base = sandbox.agent_url if agent_api else sandbox.url
    return requests.post(
        base + path,
        json={"query": query, "variables": variables or {}},
        headers=all_headers,
        timeout=10,
    )


@pytest.fixture
def sandbox(start_sandbox, clock):
    """On a manual clock: each test steps through the timed windows (Serverless shutdown 0.6 s,
    provisioning 0.3 s, heartbeat window 1 s) with `clock.advance`, never racing them."""
    return start_sandbox(clock=clock)


def test_healthz_and_unknown_routes(sandbox):
    assert requests.get(sandbox.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(sandbox.url + "/nope", timeout=5).status_code == 404
    assert post(sandbox, CURRENT, sandbox.token("admin"), path="/a/b/graphql").status_code == 404


def test_missing_unknown_and_revoked_tokens_get_401(sandbox, admin):
    missing = post(sandbox, CURRENT, None)
    assert missing.status_code == 401 and "Missing API token" in missing.json()["error"]
    unknown = post(sandbox, CURRENT, "user:acme:" + "f" * 32)
    assert unknown.status_code == 401 and "f" * 32 not in unknown.text
    agent_token = admin.create_agent_token("to revoke")
    value = agent_token.token.get_secret_value()
    assert post(sandbox, CURRENT, value).status_code == 200
    revoke = "mutation($id: Int!) { revokeAgentToken(tokenId: $id) { __typename } }"
    assert post(sandbox, revoke, sandbox.token("admin"), variables={"id": agent_token.id}).ok
    assert post(sandbox, CURRENT, value).status_code == 401


def test_deployment_from_path_header_or_default(sandbox):
    token = sandbox.token("admin")
    name = lambda r: r.json()["data"]["currentDeployment"]["deploymentName"]  # noqa: E731
    assert name(post(sandbox, CURRENT, token)) == "prod"
    assert name(post(sandbox, CURRENT, token, path="/staging/graphql")) == "staging"
    assert (
        name(post(sandbox, CURRENT, token, headers={"Dagster-Cloud-Deployment": "staging"}))
        == "staging"
    )
    missing = post(sandbox, CURRENT, token, path="/nope/graphql")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_invalid_documents_answer_graphql_errors(sandbox):
    response = post(sandbox, "query { currentDeployment { noSuchField } }", sandbox.token("admin"))
    assert response.status_code == 200
    assert "noSuchField" in response.json()["errors"][0]["message"]
    assert "errors" in post(sandbox, "query {", sandbox.token("admin")).json()


def test_viewer_gets_unauthorized_for_switch_and_token_creation(sandbox):
    viewer = sandbox.token("viewer")
    switch = post(
        sandbox,
        "mutation { updateDeploymentAgentType(deploymentAgentType: HYBRID) "
        "{ __typename ... on UnauthorizedError { message } } }",
        viewer,
    )
    assert switch.json()["data"]["updateDeploymentAgentType"]["__typename"] == "UnauthorizedError"
    create = post(
        sandbox,
        'mutation { createAgentToken(description: "x") '
        "{ __typename ... on UnauthorizedError { message } } }",
        viewer,
    )
    assert create.json()["data"]["createAgentToken"]["__typename"] == "UnauthorizedError"
    assert sandbox.state.events() == []  # nothing changed
    # A user token cannot act as an agent: the agent API is another host, for agent tokens.
    pop = "mutation { userCloudAgent { popUserCloudAgentRequests { requestId } } }"
    assert post(sandbox, pop, sandbox.token("admin"), agent_api=True).status_code == 401
    assert (
        "Cannot query field 'userCloudAgent'"
        in post(sandbox, pop, sandbox.token("admin")).json()["errors"][0]["message"]
    )


def test_switch_to_hybrid_then_serverless_agent_goes_away(sandbox, admin, clock):
    assert [a.status for a in admin.agents()] == ["RUNNING"]
    assert admin.serverless_status() == "ACTIVE"
    assert all(e.load_status == "LOADED" for e in admin.workspace())

    switched = admin.update_deployment_agent_type("HYBRID")
    assert switched.agent_type == "HYBRID"
    agents = admin.agents()
    assert [a.status for a in agents] == ["NOT_RUNNING"]
    assert admin.serverless_status() == "DELETING"  # a ServerlessAgentStatus value
    assert all(e.load_status == "LOADING" for e in admin.workspace())

    clock.advance(0.5)  # within the 0.6 s shutdown
    assert [a.status for a in admin.agents()] == ["NOT_RUNNING"]
    assert admin.serverless_status() == "DELETING"
    clock.advance(0.2)
    assert admin.agents() == []
    assert admin.serverless_status() == "INACTIVE"
    # Switching again to the type it has changes nothing.
    admin.update_deployment_agent_type("HYBRID")
    assert len(sandbox.state.events("agent_type_switched")) == 1


@pytest.mark.parametrize(
    "launcher", ["ProcessUserCodeLauncher", "DockerUserCodeLauncher", "K8sUserCodeLauncher"]
)
def test_a_location_is_loaded_only_when_a_running_agent_reports_it(sandbox, admin, launcher, clock):
    """Whatever the launcher: LOADED (or its load error) is the agent's own report, newer than
    the location's last deploy, while the agent runs. No timer stands in for it."""
    from dagster._serdes import deserialize_value

    admin.update_deployment_agent_type("HYBRID")
    agent_token = admin.create_agent_token("agent").token.get_secret_value()
    heartbeat(sandbox, agent_token, "agent-1", launcher)
    hybrid = [a for a in admin.agents() if a.id == "agent-1"]
    assert [(a.id, a.status, a.label) for a in hybrid] == [("agent-1", "RUNNING", "test agent")]
    assert hybrid[0].metadata["version"] == "1.13.27"
    assert {e.load_status for e in admin.workspace()} == {"LOADING"}  # no report yet

    answer = upload_entry(sandbox, agent_token, "analytics")
    assert answer.status_code == 200 and deserialize_value(answer.text).updated is True
    assert upload_entry(sandbox, agent_token, "ml_models", "No module named 'ml_models'").ok
    by_name = {e.name: e for e in admin.workspace()}
    assert by_name["analytics"].is_loaded
    assert {i.name for i in by_name["analytics"].instigators} == {
        "daily_refresh",
        "weekly_rollup",
        "new_files_sensor",
    }
    assert by_name["ml_models"].error == "No module named 'ml_models'"

    # A report older than the location's last deploy does not count.
    admin.deploy_locations(
        {
            "locations": [
                {
                    "location_name": "analytics",
                    "code_source": {"package_name": "analytics"},
                    "image": "registry.test/analytics:2",
                }
            ]
        }
    )
    assert {e.name: e.load_status for e in admin.workspace()}["analytics"] == "LOADING"
    assert upload_entry(sandbox, sandbox.token("admin"), "analytics").status_code == 401
    assert upload_entry(sandbox, agent_token, "analytics").ok
    assert {e.name: e.load_status for e in admin.workspace()}["analytics"] == "LOADED"

    # Past the heartbeat window the agent is NOT_RUNNING and nothing is served.
    clock.advance(1.0)  # the window's last instant: still RUNNING
    assert [a.status for a in admin.agents()] == ["RUNNING"]
    clock.advance(0.01)
    assert [a.status for a in admin.agents()] == ["NOT_RUNNING"]
    assert {e.load_status for e in admin.workspace()} == {"LOADING"}


def test_switch_back_to_serverless_provisions_again(sandbox, admin, clock):
    admin.update_deployment_agent_type("HYBRID")
    admin.update_deployment_agent_type("SERVERLESS")
    assert admin.serverless_status() == "PROVISIONING"
    assert {e.load_status for e in admin.workspace()} == {"LOADING"}
    clock.advance(0.31)  # past the 0.3 s provisioning
    assert admin.serverless_status() == "ACTIVE"
    clock.advance(0.2)  # and each location's 0.2 s load
    assert {e.load_status for e in admin.workspace()} == {"LOADED"}


def test_agents_get_workspace_entries_only_when_hybrid(sandbox, admin):
    agent_token = admin.create_agent_token("agent").token.get_secret_value()
    query = (
        "query($names: [String!]!) { deployments(deploymentNames: $names, "
        "includeAllServerlessDeployments: false) { deploymentName workspaceEntries "
        "{ locationName serializedDeploymentMetadata } } }"
    )

    def entries():
        answer = post(sandbox, query, agent_token, variables={"names": ["prod"]}, agent_api=True)
        return answer.json()["data"]["deployments"][0]["workspaceEntries"]

    assert entries() == []
    admin.update_deployment_agent_type("HYBRID")
    got = entries()
    assert [e["locationName"] for e in got] == ["analytics", "ml_models"]
    from dagster._serdes import deserialize_value

    deploy_data = deserialize_value(got[0]["serializedDeploymentMetadata"])
    assert deploy_data.package_name == "analytics"
    assert deploy_data.working_directory == "analytics"


def test_deploy_rejects_invalid_documents_without_changing_anything(sandbox, admin):
    before = admin.locations_as_document()
    with pytest.raises(InvalidLocationError) as raised:
        admin.deploy_locations(
            {"locations": [{"location_name": "x", "code_source": {}, "no_such_key": 1}]}
        )
    assert "no_such_key" in str(raised.value)
    assert admin.locations_as_document() == before
    assert sandbox.state.events() == []


def test_runs_are_paged_newest_first(sandbox, admin):
    counts = admin.run_counts_by_status()
    assert sum(counts.values()) == 250
    assert set(counts) <= {"SUCCESS", "FAILURE", "CANCELED"}
    seen, cursor = [], None
    while page := admin.runs(limit=60, cursor=cursor):
        seen += page
        cursor = page[-1].run_id
    assert len(seen) == 250 == len({r.run_id for r in seen})
    assert [r.creation_time for r in seen] == sorted((r.creation_time for r in seen), reverse=True)
    failures = admin.runs(limit=500, statuses=["FAILURE"])
    assert len(failures) == counts["FAILURE"] and {r.status for r in failures} == {"FAILURE"}


def test_state_survives_a_restart(tmp_path):
    path = tmp_path / "state.db"
    with Sandbox.start(path, make_scenario()) as first:
        with client_for(first) as admin:
            admin.update_deployment_agent_type("HYBRID")
            agent_token = admin.create_agent_token("kept").token.get_secret_value()
            admin.set_deployment_settings({"run_queue": {"max_concurrent_runs": 3}})
        admin_token = first.token("admin")
    # A different scenario is ignored: the state file wins.
    with Sandbox.start(path, make_scenario(organization="other")) as second:
        assert second.token("admin") == admin_token
        assert second.state.organization == "acme"
        with client_for(second) as admin:
            assert admin.current_deployment().agent_type == "HYBRID"
            assert [t.description for t in admin.agent_tokens()] == ["kept"]
            assert admin.deployment_settings() == {"run_queue": {"max_concurrent_runs": 3}}
        assert post(second, CURRENT, agent_token).status_code == 200


def test_scenario_file_seeds_the_organization(tmp_path):
    scenario = {
        "organization": "hooli",
        "tokens": [
            {"name": "admin", "kind": "user", "role": "ADMIN"},
            {"name": "editor", "kind": "user", "role": "EDITOR"},
        ],
        "deployments": [
            {
                "name": "data-prod",
                "agent_type": "SERVERLESS",
                "settings": {"non_isolated_runs": {"enabled": False}},
                "locations": [{"location_name": "etl", "code_source": {"python_file": "etl.py"}}],
                "runs": {"count": 1000, "statuses": {"SUCCESS": 1}},
            }
        ],
        "faults": [{"operation": "agents", "kind": "http_503", "count": 1}],
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    with Sandbox.start(tmp_path / "s.db", path) as sandbox:
        assert sandbox.deployment == "data-prod"
        assert sandbox.token("admin").startswith("user:hooli:")
        assert (
            post(
                sandbox,
                "query { agents { id } }",
                sandbox.token("admin"),
                path="/data-prod/graphql",
            ).status_code
            == 503
        )
        with client_for(sandbox, "editor") as editor:
            assert editor.run_counts_by_status() == {"SUCCESS": 1000}
            assert editor.deploy_locations(
                {
                    "locations": [
                        {
                            "location_name": "etl",
                            "code_source": {"python_file": "etl.py"},
                            "image": "i:1",
                        }
                    ]
                }
            ) == ["etl"]
            with pytest.raises(NotAuthorizedError, match="Organization Admin"):
                editor.update_deployment_agent_type("HYBRID")


def test_bad_scenarios_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown keys"):
        make_scenario(deploymentz=[])
    with pytest.raises(ValueError, match="at least one deployment"):
        make_scenario(deployments=[])
    with pytest.raises(ValueError, match="'DEV' is not a DagsterCloudDeploymentType"):
        make_scenario(deployments=[{"name": "staging", "type": "DEV"}])
    with pytest.raises(ValueError, match="names its base deployment"):
        make_scenario(deployments=[{"name": "b", "type": "BRANCH", "parent": "prod"}])
    with pytest.raises(ValueError, match="listed twice"):
        make_scenario(deployments=[{"name": "prod"}, {"name": "prod"}])
    with pytest.raises(ValueError, match="kind must be one of"):
        Sandbox.start(
            tmp_path / "s.db", make_scenario(faults=[{"operation": "agents", "kind": "boom"}])
        )


def test_fault_control_api(sandbox):
    admin, viewer = sandbox.token("admin"), sandbox.token("viewer")
    url = sandbox.url + "/_sandbox/faults"
    fault = {"operation": "agents", "kind": "http_500", "count": 2}
    assert (
        requests.post(
            url, json={"faults": [fault]}, timeout=5, headers={"Dagster-Cloud-Api-Token": viewer}
        ).status_code
        == 401
    )
    added = requests.post(
        url, json={"faults": [fault]}, timeout=5, headers={"Dagster-Cloud-Api-Token": admin}
    )
    assert added.status_code == 200
    listed = requests.get(url, headers={"Dagster-Cloud-Api-Token": admin}, timeout=5).json()
    assert listed["faults"][0]["kind"] == "http_500"
    assert post(sandbox, "query { agents { id } }", admin).status_code == 500
    # Only the named operation is hit.
    assert post(sandbox, CURRENT, admin).status_code == 200
    assert requests.delete(url, headers={"Dagster-Cloud-Api-Token": admin}, timeout=5).ok
    assert post(sandbox, "query { agents { id } }", admin).status_code == 200
    bad = requests.post(
        url,
        json={"faults": [{"kind": "nope"}]},
        timeout=5,
        headers={"Dagster-Cloud-Api-Token": admin},
    )
    assert bad.status_code == 400


def test_rate_faults_hit_about_that_share(sandbox):
    sandbox.faults.add(operation="currentDeployment", kind="http_500", rate=0.5)
    statuses = [post(sandbox, CURRENT, sandbox.token("admin")).status_code for _ in range(80)]
    assert 15 <= statuses.count(500) <= 65 and statuses.count(200) + statuses.count(500) == 80


def test_command_line_prints_json_and_writes_a_private_env_file(tmp_path):
    env_file = tmp_path / "sandbox.env"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_plus_sandbox",
            "serve",
            "--port",
            "0",
            "--json",
            "--state",
            str(tmp_path / "s.db"),
            "--env-file",
            str(env_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())
        assert set(info) >= {"url", "agent_url", "deployment", "admin_token", "viewer_token"}
        assert info["url"].startswith("http://127.0.0.1:") and info["agent_url"] != info["url"]
        assert requests.get(info["url"] + "/healthz", timeout=5).json()["api"] == "user"
        assert requests.get(info["agent_url"] + "/healthz", timeout=5).json()["api"] == "agent"
        assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
        assert f"DAGSTER_CLOUD_API_TOKEN={info['admin_token']}" in env_file.read_text()
        assert f"DAGSTER_CLOUD_AGENT_URL={info['agent_url']}" in env_file.read_text()
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_a_state_file_of_another_version_is_refused_with_a_message(tmp_path):
    import sqlite3

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('organization', 'acme')")
    with pytest.raises(ValueError, match="another sandbox version .*delete it"):
        Sandbox.create(old, make_scenario())
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(ValueError, match="not a sandbox state file"):
        Sandbox.create(garbage, make_scenario())


def test_faults_hit_the_api_they_name(sandbox, admin):
    agent_token = admin.create_agent_token("agent").token.get_secret_value()
    query = "query { deploymentInfo { deploymentName } }"
    sandbox.faults.add(operation="deploymentInfo", kind="http_503", api="agent")
    assert post(sandbox, query, agent_token, agent_api=True).status_code == 503
    assert post(sandbox, query, agent_token, agent_api=True).status_code == 200
    sandbox.faults.add(operation="*", kind="http_500")  # the user API only, by default
    assert post(sandbox, query, agent_token, agent_api=True).status_code == 200
    assert post(sandbox, CURRENT, sandbox.token("admin")).status_code == 500
    for bad in (
        {"operation": "x", "kind": "latency", "seconds": -1},
        {"operation": "x", "kind": "drop", "api": "both"},
        {"operation": "x", "kind": "drop", "count": 0},
        {"operation": "x", "kind": "drop", "rate": 2},
    ):
        with pytest.raises(ValueError, match="fault:"):
            sandbox.faults.add(**bad)
