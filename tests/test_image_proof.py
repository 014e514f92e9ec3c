"""Proving images before the switch: the command that loads a location as its code server will,
the proof of each image by digest, and what the cutover's preflight asks of the last proof.
The Docker end-to-end test starts real images; here the runner is a plain function, and the
last test starts a real (unrunnable) image with buildah."""

from __future__ import annotations

from migration_env import MigrationEnv, step_failure_message

from migration_pipeline.images.prove import (
    PROOF_CHECK,
    pinned_reference,
    prove_images,
    unproven_images,
    validate_command,
)
from migration_pipeline.images.publish import PublishedImage


def image(location: str, digest: str = "sha256:" + "a" * 64) -> PublishedImage:
    return PublishedImage(
        location, f"127.0.0.1:5000/acme/{location}:abc-{location}", digest, "abc", True, 1.0
    )


def test_the_command_takes_each_code_source_as_the_code_server_does():
    assert validate_command(
        {"code_source": {"package_name": "analytics"}, "working_directory": "analytics"}
    ) == [
        "dagster",
        "definitions",
        "validate",
        "--package-name",
        "analytics",
        "--working-directory",
        "analytics",
    ]
    assert validate_command(
        {
            "code_source": {"python_file": "repo.py; rm -rf /"},
            "executable_path": "/venv/bin/python",
            "attribute": "defs",
        }
    ) == [
        "/venv/bin/python",
        "-m",
        "dagster",
        "definitions",
        "validate",
        "--python-file",
        "repo.py; rm -rf /",  # one argument, never read by a shell
        "--attribute",
        "defs",
    ]
    assert validate_command({"code_source": {"module_name": "ml.defs"}})[3:] == [
        "--module-name",
        "ml.defs",
    ]


def test_each_image_is_started_by_digest_and_a_failure_keeps_its_last_lines():
    images = {"analytics": image("analytics"), "ml_models": image("ml_models")}
    locations = {
        "analytics": {"code_source": {"package_name": "analytics"}},
        "ml_models": {"code_source": {"module_name": "ml_models.definitions"}},
    }
    started = []

    def run(reference, command, env):
        started.append((reference, command[-1], env["DAGSTER_LOCATION_NAME"]))
        if "ml_models" in reference:
            noise = "\n".join(f"frame {n}" for n in range(30))
            return 1, noise + "\nModuleNotFoundError: No module named 'sklearn'\n"
        return 0, "all code locations passed"

    proofs = prove_images(images, locations, run, parallel=2)
    assert sorted(started) == [
        ("127.0.0.1:5000/acme/analytics@sha256:" + "a" * 64, "analytics", "analytics"),
        ("127.0.0.1:5000/acme/ml_models@sha256:" + "a" * 64, "ml_models.definitions", "ml_models"),
    ]
    assert proofs["analytics"].passed and proofs["analytics"].error == ""
    failed = proofs["ml_models"]
    assert not failed.passed
    assert failed.error.splitlines()[-1] == "ModuleNotFoundError: No module named 'sklearn'"
    assert len(failed.error.splitlines()) == 12


def test_the_preflight_reads_the_proof_check_by_its_name():
    from migration_pipeline.images.defs import images_load_their_definitions

    assert images_load_their_definitions.check_key.name == PROOF_CHECK


def test_a_location_missing_from_the_file_is_not_proven():
    proofs = prove_images({"x": image("x")}, {}, lambda *a: (0, ""))
    assert not proofs["x"].passed and "not in dagster_cloud.yaml" in proofs["x"].error


def test_the_preflight_needs_a_proof_of_exactly_the_images_it_deploys():
    images = {"analytics": image("analytics"), "ml_models": image("ml_models")}
    proven = {name: pinned_reference(i) for name, i in images.items()}
    assert unproven_images(images, proven) == {}
    assert set(unproven_images(images, None)) == {"analytics", "ml_models"}
    rebuilt = {**images, "ml_models": image("ml_models", "sha256:" + "b" * 64)}
    problems = unproven_images(rebuilt, proven)
    assert list(problems) == ["ml_models"]
    assert "sha256:" + "b" * 64 in problems["ml_models"]
    assert "sha256:" + "a" * 64 in problems["ml_models"]  # what was proven instead
    assert unproven_images({}, None) == {}  # a Local agent deploys no image


def test_an_image_that_cannot_start_fails_the_check_and_the_cutover_refuses(
    sandbox, tmp_path, monkeypatch, registry
):
    """A real image that cannot load anything (FROM scratch: no Python in it), started with
    buildah: the blocking check fails naming the location, the prepare job fails, and the
    cutover's preflight refuses with the deployment still SERVERLESS."""
    env = MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, "kubernetes", registry)
    env.prove_images = True
    env.settings_text = "builder: buildah\n"
    (env.project_dir / "unique.txt").write_text(str(tmp_path))
    prepared = env.prepare(raise_on_error=False)
    assert not prepared.success
    (check,) = [
        c
        for c in prepared.get_asset_check_evaluations()
        if c.asset_check_key.name == "images_load_their_definitions"
    ]
    assert not check.passed
    assert check.metadata["proven"].value == {}
    failed = check.metadata["failed"].value
    assert set(failed) == {"analytics", "ml_models"}
    assert all('"dagster": executable file not found' in error for error in failed.values())
    assert "analytics:" in check.description and "ml_models:" in check.description

    cutover = env.run("cutover", raise_on_error=False)
    assert not cutover.success
    message = step_failure_message(cutover)
    assert "the image of analytics is not proven to load its definitions" in message
    assert "Nothing was changed." in message
    from conftest import client_for

    with client_for(sandbox) as admin:
        assert admin.deployment_by_name(sandbox.deployment).agent_type == "SERVERLESS"
