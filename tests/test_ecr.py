"""Amazon ECR end to end, with one login: the images asset creates each repository and
publishes to it, its blocking check finds every image, and the cutover's preflight finds them
too, each through the same credential resolver (ECR's `get_authorization_token`, on
moto_server) and the registry host (a real registry behind TLS, see support/ecr.py)."""

from __future__ import annotations

import boto3
import pytest
import requests
from migration_env import MigrationEnv
from support import ecr

from migration_pipeline.images.registry import manifest_digest, resolve_credentials


@pytest.fixture
def ecr_env(tmp_path, monkeypatch, moto_server):
    with ecr.ecr_registry(tmp_path / "ecr") as environment:
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        yield environment


def test_publish_check_and_preflight_all_log_in_to_ecr(sandbox, tmp_path, monkeypatch, ecr_env):
    env = MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, "ecs", ecr.HOST)
    env.settings_text = f"aws_region: {ecr.REGION}\n"
    prepared = env.prepare()
    assert prepared.success
    checks = {e.check_name: e.passed for e in prepared.get_asset_check_evaluations()}
    assert checks["images_exist_in_registry"] is True

    images = prepared.output_for_node("code_location_images")
    repositories = boto3.client("ecr", region_name=ecr.REGION).describe_repositories()
    assert sorted(r["repositoryName"] for r in repositories["repositories"]) == [
        "acme/analytics",
        "acme/ml_models",
    ]
    for image in images.values():
        repository = image.image.rsplit(":", 1)[0]
        assert repository.startswith(f"{ecr.HOST}/acme/")
        login = resolve_credentials(repository)
        assert login is not None and login.username == "AWS"
        assert manifest_digest(repository, image.tag, login) == image.digest

    cutover = env.run("cutover")
    assert cutover.success  # its preflight found every image in ECR
    assert client_agent_type(sandbox) == "HYBRID"


def test_preflight_names_an_image_missing_from_ecr_and_changes_nothing(
    sandbox, tmp_path, monkeypatch, ecr_env
):
    env = MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, "ecs", ecr.HOST)
    env.settings_text = f"aws_region: {ecr.REGION}\n"
    images = env.prepare().output_for_node("code_location_images")
    gone = images["ml_models"]
    repository = gone.image.rsplit(":", 1)[0]
    name = repository.split("/", 1)[1]
    deleted = requests.delete(
        f"https://{ecr.HOST}/v2/{name}/manifests/{gone.digest}",
        auth=("AWS", ecr.PASSWORD),
        timeout=10,
    )
    assert deleted.status_code == 202

    events_before = sandbox.state.events()
    cutover = env.run("cutover", raise_on_error=False)
    assert not cutover.success
    (failure,) = [e for e in cutover.all_events if e.event_type_value == "STEP_FAILURE"]
    assert gone.image in str(failure.event_specific_data.error)
    assert sandbox.state.events() == events_before
    assert client_agent_type(sandbox) == "SERVERLESS"


def client_agent_type(sandbox) -> str:
    from conftest import client_for

    return client_for(sandbox).current_deployment().agent_type
