"""Agent install files per target and where the agent token is kept."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from migration_pipeline.agent.token import store_agent_token
from migration_pipeline.targets import get_target, load_target_settings
from migration_pipeline.targets.agent import SECRET_FILES, TOKEN_SECRET_NAME, AgentSetup

TOKEN = "agent:acme:" + "d" * 32
BIN = Path(sys.executable).parent


def setup_for(
    target: str,
    settings_text: str | None = None,
    registry: str | None = None,
    agent_api_url: str = "",
    reference: str = "ref",
    branch_deployments: bool = False,
) -> AgentSetup:
    return AgentSetup(
        organization="acme",
        deployment="prod",
        agent_label="migration_pipeline prod agent (token 7)",
        settings=load_target_settings(target, settings_text, registry=registry),
        token_reference=reference,
        agent_api_url=agent_api_url,
        branch_deployments=branch_deployments,
    )


def write(files: dict[str, str], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)


@pytest.mark.parametrize("target", ["kubernetes", "azure"])
def test_kubernetes_manifests_pass_kubernetes_validate_strict(tmp_path, target):
    registry = "acmedata.azurecr.io/dagster" if target == "azure" else "ghcr.io/acme"
    setup = setup_for(target, "namespace: data\nenv_secrets: [snowflake]\n", registry)
    module = get_target(target)
    write(module.agent_files(setup), tmp_path)
    stored = store_agent_token(
        module.token_store, SecretStr(TOKEN), tmp_path, "prod", namespace="data"
    )
    manifests = [tmp_path / "namespace.yaml", Path(stored.reference)]
    result = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *map(str, manifests)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == 2, result.stdout

    secret = yaml.safe_load(Path(stored.reference).read_text())
    values = yaml.safe_load((tmp_path / "values.yaml").read_text())
    assert (
        values["dagsterCloud"]["agentTokenSecretName"]
        == secret["metadata"]["name"]
        == TOKEN_SECRET_NAME
    )
    assert values["dagsterCloud"]["deployments"] == ["prod"]
    assert values["workspace"]["envSecrets"] == [{"name": "snowflake"}]
    assert secret["metadata"]["namespace"] == "data"
    assert stat.S_IMODE(Path(stored.reference).stat().st_mode) == 0o600
    assert "endpoint" not in values["dagsterCloud"]  # derived from the token on dagster.cloud
    assert values["dagsterCloud"]["agentLabel"] == "migration_pipeline prod agent (token 7)"
    assert values["dagsterCloud"]["branchDeployments"] is False
    install = (tmp_path / "install.sh").read_text()
    assert "helm upgrade --install" in install and TOKEN not in install


@pytest.mark.parametrize(
    "target,launcher", [("docker", "DockerUserCodeLauncher"), ("local", "ProcessUserCodeLauncher")]
)
def test_agent_dagster_yaml_loads_as_an_agent_instance(tmp_path, monkeypatch, target, launcher):
    from dagster import DagsterInstance
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef

    settings = "networks: [shared]\n" if target == "docker" else None
    registry = "localhost:5000/acme" if target == "docker" else None
    module = get_target(target)
    write(
        module.agent_files(
            setup_for(
                target,
                settings,
                registry,
                agent_api_url="http://127.0.0.1:3031",
                branch_deployments=True,
            )
        ),
        tmp_path,
    )
    monkeypatch.setenv("DAGSTER_CLOUD_AGENT_TOKEN", TOKEN)
    config, instance_class = dagster_instance_config(str(tmp_path))
    assert instance_class.__name__ == "DagsterCloudAgentInstance"
    assert config["dagster_cloud_api"]["agent_token"] == {"env": "DAGSTER_CLOUD_AGENT_TOKEN"}
    assert config["dagster_cloud_api"]["url"] == "http://127.0.0.1:3031"
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    assert type(instance.user_code_launcher).__name__ == launcher
    assert instance.deployment_names == ["prod"]
    assert instance.dagster_cloud_api_agent_label == "migration_pipeline prod agent (token 7)"
    assert instance.includes_branch_deployments
    if target == "docker":
        compose = yaml.safe_load((tmp_path / "docker-compose.yaml").read_text())
        agent = compose["services"]["dagster-cloud-agent"]
        assert agent["env_file"] == ["agent-token.env"]
        # The compose file creates the agent's network; the agent and every code server join it.
        assert agent["networks"] == ["dagster-cloud-agent", "shared"]
        assert compose["networks"]["dagster-cloud-agent"] == {
            "name": "dagster-cloud-agent",
            "driver": "bridge",
        }
        assert compose["networks"]["shared"]["external"] is True
        assert instance.user_code_launcher._networks == ["dagster-cloud-agent", "shared"]  # noqa: SLF001
        assert "${HOME}/.docker:/root/.docker:ro" in agent["volumes"]  # registry credentials
    else:
        run = (tmp_path / "run-agent.sh").read_text()
        assert "dagster-cloud agent run" in run and "agent-token.env" in run


def test_run_agent_sh_works_from_any_directory(tmp_path):
    """`bash run-agent.sh` from inside the agent directory, or from elsewhere by path: both run
    the agent from the repository with the token from the env file and DAGSTER_HOME set."""
    repo = tmp_path / "my repo"
    agent_dir = repo / "dagster_cloud_agent" / "prod"
    write(get_target("local").agent_files(setup_for("local")), agent_dir)
    (agent_dir / "agent-token.env").write_text(f"DAGSTER_CLOUD_AGENT_TOKEN={TOKEN}\n")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "dagster-cloud").write_text(
        "#!/usr/bin/env bash\n"
        'printf "%s|%s|%s|%s" "$PWD" "$DAGSTER_HOME" "${DAGSTER_CLOUD_AGENT_TOKEN:0:6}" "$*"\n'
    )
    (fake_bin / "dagster-cloud").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    expected = f"{repo}|{agent_dir}|agent:|agent run {agent_dir}"
    for cwd, script in (
        (agent_dir, "run-agent.sh"),
        (tmp_path, str(agent_dir / "run-agent.sh")),
        (repo, "dagster_cloud_agent/prod/run-agent.sh"),
    ):
        result = subprocess.run(["bash", script], cwd=cwd, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert result.stdout == expected, (cwd, result.stdout)
    command = get_target("local").agent_command(str(agent_dir))
    assert (
        subprocess.run(command, shell=True, env=env, capture_output=True, text=True).stdout
        == expected
    )


def test_env_file_is_private_and_idempotent(tmp_path):
    first = store_agent_token("env_file", SecretStr(TOKEN), tmp_path, "prod")
    assert (
        first.changed
        and Path(first.reference).read_text() == f"DAGSTER_CLOUD_AGENT_TOKEN={TOKEN}\n"
    )
    assert stat.S_IMODE(Path(first.reference).stat().st_mode) == 0o600
    assert not store_agent_token("env_file", SecretStr(TOKEN), tmp_path, "prod").changed
    ignored = (tmp_path / ".gitignore").read_text().split()
    assert set(SECRET_FILES) <= set(ignored)


def test_ecs_token_goes_to_secrets_manager(tmp_path, moto_server):
    import boto3

    stored = store_agent_token(
        "aws_secrets_manager", SecretStr(TOKEN), tmp_path, "prod", aws_region="us-east-1"
    )
    assert stored.changed and stored.reference.startswith("arn:aws:secretsmanager:us-east-1:")
    client = boto3.client("secretsmanager", region_name="us-east-1")
    assert client.get_secret_value(SecretId=stored.reference)["SecretString"] == TOKEN
    again = store_agent_token(
        "aws_secrets_manager", SecretStr(TOKEN), tmp_path, "prod", aws_region="us-east-1"
    )
    assert not again.changed and again.reference == stored.reference
    assert not [p for p in tmp_path.iterdir() if p.name in SECRET_FILES]  # nothing on disk

    setup = setup_for(
        "ecs",
        "aws_region: us-east-1\n",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme",
        reference=stored.reference,
    )
    files = get_target("ecs").agent_files(setup)
    parameters = {
        p["ParameterKey"]: p["ParameterValue"]
        for p in json.loads(files["cloudformation-parameters.json"])
    }
    assert parameters == {
        "DagsterOrganization": "acme",
        "DagsterDeployment": "prod",
        "EnableBranchDeployments": "false",
    }
    with_branches = get_target("ecs").agent_files(
        setup_for(
            "ecs",
            "aws_region: us-east-1\n",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme",
            reference=stored.reference,
            branch_deployments=True,
        )
    )
    assert {"ParameterKey": "EnableBranchDeployments", "ParameterValue": "true"} in json.loads(
        with_branches["cloudformation-parameters.json"]
    )
    assert stored.reference in files["install.sh"] and TOKEN not in "".join(files.values())
    # The token reaches CloudFormation through a private file, never a command-line argument.
    assert '"$token"' not in files["install.sh"].split("python3")[1].split("\n")[0]


def test_no_generated_file_but_the_secret_holds_the_token(tmp_path):
    for target in ("kubernetes", "azure", "docker", "local", "ecs"):
        registry = {
            "azure": "acmedata.azurecr.io/x",
            "local": None,
            "docker": "localhost:5000/x",
            "ecs": "1.dkr.ecr.us-east-1.amazonaws.com/x",
        }.get(target, "ghcr.io/x")
        files = get_target(target).agent_files(setup_for(target, registry=registry))
        assert files and all(TOKEN not in text for text in files.values())
        # no token of any value (Dagster+'s format: agent:<organization>:<32 hex>)
        assert not any(re.search(r"agent:[\w-]+:[0-9a-f]{32}", text) for text in files.values())


def test_local_env_vars_reach_the_agent_as_data_never_as_code(tmp_path):
    """The settings' env_vars land in a 0600 code.env that run-agent.sh exports line by line:
    a value that looks like shell is exported as it is, and nothing in it runs."""
    agent_dir = tmp_path / "repo" / "dagster_cloud_agent" / "prod"
    setup = setup_for(
        "local", "env_vars: ['GREETING=hi $(touch pwned) `touch pwned2` ; x', 'ONLY_NAME']\n"
    )
    files = get_target("local").agent_files(setup)
    assert "ONLY_NAME" not in files["code.env"]  # a bare name is inherited, not written
    write(files, agent_dir)
    (agent_dir / "agent-token.env").write_text(f"DAGSTER_CLOUD_AGENT_TOKEN={TOKEN}\n")
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "dagster-cloud").write_text('#!/usr/bin/env bash\nprintf "%s" "$GREETING"\n')
    (fake_bin / "dagster-cloud").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", str(agent_dir / "run-agent.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi $(touch pwned) `touch pwned2` ; x"
    assert not list(tmp_path.rglob("pwned*"))
    assert "code.env" in SECRET_FILES
