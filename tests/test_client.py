"""The Dagster+ client against the real sandbox, with every fault kind."""

from __future__ import annotations

import logging

import pytest
from conftest import client_for
from support.servers import free_port

from migration_pipeline.plus import (
    DagsterPlusClient,
    DagsterPlusPythonError,
    DagsterPlusUnavailableError,
    DeploymentNotFoundError,
    NotAuthorizedError,
    OutcomeUnknownError,
)


@pytest.mark.parametrize("kind", ["http_500", "http_503", "http_429", "drop"])
def test_transient_faults_are_retried_to_success(sandbox, kind):
    sandbox.faults.add(operation="agents", kind=kind, count=2)
    with client_for(sandbox) as client:
        agents = client.agents()
        assert [a.status for a in agents] == ["RUNNING"]
        assert client.requests_sent == 3


def test_latency_within_the_timeout_is_waited_out_and_beyond_it_retried(sandbox):
    sandbox.faults.add(operation="serverless", kind="latency", seconds=0.3, count=1)
    with client_for(sandbox, timeout=2) as client:
        assert client.serverless_status() == "ACTIVE"
        assert client.requests_sent == 1
    sandbox.faults.add(operation="serverless", kind="latency", seconds=1.5, count=1)
    with client_for(sandbox, timeout=0.5) as client:
        assert client.serverless_status() == "ACTIVE"
        assert client.requests_sent == 2


def test_backoff_is_exponential_and_bounded_and_honours_retry_after(sandbox):
    slept: list[float] = []
    sandbox.faults.add(operation="agents", kind="http_503", count=6)
    with DagsterPlusClient(
        sandbox.url,
        "prod",
        sandbox.token("admin"),
        max_attempts=7,
        backoff_seconds=0.5,
        max_backoff_seconds=4,
        sleep=slept.append,
    ) as c:
        c.agents()
    assert slept == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]

    slept.clear()
    sandbox.faults.add(operation="agents", kind="http_429", retry_after=3, count=1)
    sandbox.faults.add(operation="agents", kind="http_429", retry_after=900, count=1)
    with DagsterPlusClient(
        sandbox.url, "prod", sandbox.token("admin"), sleep=slept.append, max_retry_after_seconds=10
    ) as c:
        c.agents()
    assert slept == [3.0, 10.0]


def test_retries_are_bounded_and_the_error_says_what_happened(sandbox, caplog):
    sandbox.faults.add(operation="deploymentSettings", kind="http_503", count=10)
    with client_for(sandbox, max_attempts=3) as client, caplog.at_level(logging.WARNING):
        with pytest.raises(DagsterPlusUnavailableError) as raised:
            client.deployment_settings()
        assert client.requests_sent == 3
    message = str(raised.value)
    assert "deploymentSettings" in message and "HTTP 503 on all 3 attempts" in message
    assert "retry 1/2" in caplog.text and "retry 2/2" in caplog.text


def test_unreachable_server_is_reported_as_such():
    port = free_port()
    client = DagsterPlusClient(
        f"http://127.0.0.1:{port}", "prod", "user:acme:x", max_attempts=2, sleep=lambda s: None
    )
    with pytest.raises(DagsterPlusUnavailableError, match="connection refused"):
        client.agents()


def test_401_fails_at_once_with_a_clear_message(sandbox):
    with DagsterPlusClient(sandbox.url, "prod", "user:acme:" + "a" * 32) as client:
        with pytest.raises(NotAuthorizedError) as raised:
            client.agents()
        assert client.requests_sent == 1
    assert "rejected" in str(raised.value) and "DAGSTER_CLOUD_API_TOKEN" in str(raised.value)


def test_non_admin_cannot_switch_or_create_tokens_and_is_told_why(sandbox):
    with client_for(sandbox, "viewer") as viewer:
        with pytest.raises(NotAuthorizedError) as switch:
            viewer.update_deployment_agent_type("HYBRID")
        assert viewer.requests_sent == 1
        with pytest.raises(NotAuthorizedError, match="Organization Admin"):
            viewer.create_agent_token("nope")
        with pytest.raises(NotAuthorizedError, match="Editor"):
            viewer.deploy_locations({"locations": []})
        # Reading is fine for a viewer.
        assert viewer.current_deployment().agent_type == "SERVERLESS"
    assert "updateDeploymentAgentType" in str(switch.value)
    assert "Organization Admin" in str(switch.value)
    assert sandbox.state.events() == []


def test_token_creation_is_retried_only_when_the_server_did_not_act(sandbox, admin):
    sandbox.faults.add(operation="createAgentToken", kind="http_503", count=1)
    sandbox.faults.add(operation="createAgentToken", kind="http_429", count=1)
    admin.create_agent_token("first")
    assert len(sandbox.state.events("agent_token_created")) == 1

    # The answer is lost after the token was made: no blind retry, so no second token.
    sandbox.faults.add(operation="createAgentToken", kind="drop_after", count=1)
    with pytest.raises(OutcomeUnknownError, match="read the current state"):
        admin.create_agent_token("second")
    assert [t.description for t in admin.agent_tokens()] == ["first", "second"]
    assert len(sandbox.state.events("agent_token_created")) == 2

    sandbox.faults.add(operation="createAgentToken", kind="http_500", count=1)
    with pytest.raises(OutcomeUnknownError):
        admin.create_agent_token("third")


def test_idempotent_switch_survives_a_lost_answer_and_switches_once(sandbox, admin):
    sandbox.faults.add(operation="updateDeploymentAgentType", kind="drop_after", count=1)
    assert admin.update_deployment_agent_type("HYBRID").agent_type == "HYBRID"
    assert admin.requests_sent == 2
    assert len(sandbox.state.events("agent_type_switched")) == 1


def test_union_errors_become_exceptions(sandbox, admin):
    with pytest.raises(DagsterPlusPythonError, match="No code location named 'ghost'"):
        admin.delete_location("ghost")
    with pytest.raises(DeploymentNotFoundError, match="prod, staging"):
        admin.deployment_by_name("nope")


def test_every_operation_round_trips(sandbox, admin):
    deployment = admin.deployment_by_name("prod")
    assert deployment.agent_type == "SERVERLESS" and deployment.id == 1
    assert [d.name for d in admin.full_deployments()] == ["prod", "staging"]
    document = admin.locations_as_document()
    location = dict(document["locations"][0], image="registry.test/analytics:2")
    assert admin.add_or_update_location(location) == "analytics"
    assert admin.reconcile_locations({"locations": [location]}) == ["analytics"]
    assert [loc["location_name"] for loc in admin.locations_as_document()["locations"]] == [
        "analytics"
    ]
    admin.delete_location("analytics")
    assert admin.locations_as_document() == {"locations": []}
    settings = admin.deployment_settings()
    settings.pop("non_isolated_runs")
    assert admin.set_deployment_settings(settings) == settings
    assert admin.update_deployment_agent_type("HYBRID", deployment.id).agent_type == "HYBRID"


def test_the_token_never_appears_in_output(sandbox, caplog, capsys):
    token = sandbox.token("admin")
    texts = []
    sandbox.faults.add(operation="*", kind="http_503", count=20)
    with caplog.at_level(logging.DEBUG):
        with client_for(sandbox, max_attempts=2) as client:
            texts.append(repr(client))
            texts.append(str(client.__dict__))
            for call in (client.agents, client.workspace, lambda: client.create_agent_token("x")):
                with pytest.raises(Exception) as raised:
                    call()
                texts += [str(raised.value), repr(raised.value)]
        sandbox.faults.clear()
        with client_for(sandbox) as client:
            created = client.create_agent_token("kept secret")
            texts += [repr(created), str(created)]
            assert created.token.get_secret_value() not in repr(created)
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    assert texts and all(token not in text for text in texts)


def test_403_fails_at_once_naming_the_role_needed():
    """Dagster+ answers 403 where a token is valid but not allowed (e.g. an IP allow-list)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Forbidden(BaseHTTPRequestHandler):
        hits = 0

        def do_POST(self):  # noqa: N802
            Forbidden.hits += 1
            body = b'{"error": "Forbidden"}'
            self.send_response(403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = DagsterPlusClient(
            f"http://127.0.0.1:{server.server_port}",
            "prod",
            "user:acme:" + "c" * 32,
            sleep=lambda s: None,
        )
        with pytest.raises(NotAuthorizedError) as raised:
            client.update_deployment_agent_type("HYBRID")
    finally:
        server.shutdown()
        server.server_close()
    assert Forbidden.hits == 1
    assert "HTTP 403" in str(raised.value) and "Organization Admin" in str(raised.value)
    assert "c" * 32 not in str(raised.value)
