"""No token value in any log, event, run config, tag, metadata value, stored output or generated
file, except the secret files themselves, which are mode 0600."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from migration_env import MigrationEnv
from support.agent import fake_agent

from migration_pipeline.targets.agent import SECRET_FILES


@pytest.mark.parametrize("target", ["kubernetes", "local"])
def test_the_whole_migration_leaks_no_token(
    sandbox, tmp_path, monkeypatch, caplog, capsys, target, registry
):
    home = tmp_path / "home"
    env = MigrationEnv.in_tmp(
        sandbox, tmp_path, monkeypatch, target, registry if target != "local" else None
    )
    with caplog.at_level(logging.DEBUG):
        env.prepare()
        agent_token = env.stored_agent_token()
        env.run("cutover")
        launcher = "ProcessUserCodeLauncher" if target == "local" else "K8sUserCodeLauncher"
        with fake_agent(sandbox, agent_token, launcher=launcher):
            (request,) = env.sensor_tick().run_requests
            if target == "local":  # a Local agent reports what it loaded
                from support.agent import upload_entry

                for location in ("analytics", "ml_models"):
                    upload_entry(sandbox, agent_token, location)
            finish = env.run(
                "finish_hybrid_migration", tags=request.tags, run_config=env.finish_config(20, 0.2)
            )
            assert finish.success
        env.run("rollback_to_serverless")
    tokens = {
        "admin": sandbox.token("admin"),
        "viewer": sandbox.token("viewer"),
        "agent": agent_token,
    }
    assert all(tokens.values())

    captured = capsys.readouterr()
    texts = {"logs": caplog.text, "stdout": captured.out, "stderr": captured.err}
    runs = env.instance.get_runs()
    assert len(runs) == 7  # plan, apply, token, prepare, cutover, finish, rollback
    for run in runs:
        texts[f"run {run.job_name} config and tags"] = repr(run.run_config) + repr(run.tags)
        texts[f"run {run.job_name} events"] = "\n".join(
            repr(record) for record in env.instance.all_logs(run.run_id)
        )
    for text in texts.values():
        for name, token in tokens.items():
            assert token not in text, f"the {name} token leaked"

    secret_files = []
    for root in (env.project_dir, home):
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if path.name in SECRET_FILES:
                secret_files.append(path)
                assert stat.S_IMODE(path.stat().st_mode) == 0o600
                continue
            data = path.read_bytes()
            for name, token in tokens.items():
                assert token.encode() not in data, f"the {name} token is in {path}"
    if target == "kubernetes":
        assert_not_in_images(env, tokens)
    assert [p.name for p in secret_files] == (
        ["agent-token-secret.yaml"] if target == "kubernetes" else ["agent-token.env"]
    )
    assert agent_token in Path(secret_files[0]).read_text()


def assert_not_in_images(env, tokens: dict[str, str]) -> None:
    """Every layer of every pushed image, unpacked: the agent's install files (and its token) sit
    in the repository but must never be built into an image."""
    import gzip

    import requests

    images = env.run("prepare_hybrid_agent").output_for_node("code_location_images")
    assert images
    for image in images.values():
        repository, _, _ = image.image.rpartition(":")
        host, _, name = repository.partition("/")
        manifest = requests.get(
            f"http://{host}/v2/{name}/manifests/{image.digest}",
            timeout=10,
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        ).json()
        assert manifest["layers"]
        for layer in manifest["layers"]:
            blob = requests.get(
                f"http://{host}/v2/{name}/blobs/{layer['digest']}", timeout=30
            ).content
            data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
            assert b"analytics" in data  # the layer really holds the repository's files
            for label, token in tokens.items():
                assert token.encode() not in data, f"the {label} token is in {image.image}"
