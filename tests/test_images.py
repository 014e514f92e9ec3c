"""Image publish against a real registry (Debian's docker-registry) with a real builder
(buildah, vfs storage, chroot isolation). Base images cannot be pulled here, so the test
Dockerfiles build FROM scratch."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from support.servers import docker_registry, free_port, htpasswd_line

from migration_pipeline.images.builders import Builder, BuildError, choose_builder
from migration_pipeline.images.publish import ImageJob, content_hash, publish_all
from migration_pipeline.images.registry import (
    Credentials,
    RegistryError,
    ecr_login,
    manifest_digest,
)

DOCKERFILE = "FROM scratch\nCOPY . /app\n"


@pytest.fixture
def builder(tmp_path_factory) -> Builder:
    return choose_builder("buildah", storage=tmp_path_factory.getbasetemp() / "containers")


def location(
    root: Path,
    name: str,
    repository: str,
    dockerfile: str = DOCKERFILE,
    files: dict[str, str] | None = None,
) -> ImageJob:
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    for relative, text in (files or {f"{name}/__init__.py": f"NAME = {name!r}\n"}).items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    return ImageJob(name, directory, directory / "Dockerfile", f"{repository}/{name}")


def test_two_locations_are_pushed_then_reused_when_unchanged(tmp_path, registry, builder):
    jobs = [
        location(tmp_path, "analytics", f"{registry}/acme"),
        location(tmp_path, "ml_models", f"{registry}/acme"),
    ]
    images, errors = publish_all(jobs, builder, log=lambda m: None)
    assert errors == {} and sorted(images) == ["analytics", "ml_models"]
    assert all(image.built for image in images.values())
    for job, image in zip(jobs, (images["analytics"], images["ml_models"]), strict=True):
        assert image.digest.startswith("sha256:")
        assert manifest_digest(job.repository, image.tag) == image.digest

    again, errors = publish_all(jobs, builder, log=lambda m: None)
    assert errors == {}
    assert {name: (image.built, image.digest) for name, image in again.items()} == {
        name: (False, image.digest) for name, image in images.items()
    }

    (jobs[0].context / "analytics" / "__init__.py").write_text("NAME = 'changed'\n")
    changed, _ = publish_all(jobs, builder, log=lambda m: None)
    assert changed["analytics"].built and changed["analytics"].digest != images["analytics"].digest
    assert not changed["ml_models"].built


def test_dockerignored_files_do_not_change_the_content_hash(tmp_path):
    job = location(
        tmp_path, "etl", "r/acme", files={"etl.py": "x = 1\n", ".dockerignore": ".venv\n"}
    )
    before = content_hash(job.context, job.dockerfile)
    (job.context / ".venv").mkdir()
    (job.context / ".venv" / "big").write_text("ignored")
    assert content_hash(job.context, job.dockerfile) == before
    (job.context / "etl.py").write_text("x = 2\n")
    assert content_hash(job.context, job.dockerfile) != before


def test_a_failing_build_names_its_location_and_leaves_the_others_be(tmp_path, registry, builder):
    good = location(tmp_path, "good", f"{registry}/acme")
    bad = location(
        tmp_path,
        "bad",
        f"{registry}/acme",
        dockerfile="FROM scratch\nCOPY no_such_file.txt /app/\n",
    )
    images, errors = publish_all([good, bad], builder, log=lambda m: None)
    assert sorted(images) == ["good"] and sorted(errors) == ["bad"]
    assert "buildah build" in errors["bad"] and "no_such_file.txt" in errors["bad"]

    (bad.context / "Dockerfile").write_text(DOCKERFILE)  # fixed: the re-run picks up from there
    images, errors = publish_all([good, bad], builder, log=lambda m: None)
    assert errors == {} and images["bad"].built and not images["good"].built


def test_an_unreachable_registry_is_a_clear_error_for_its_locations_only(
    tmp_path, registry, builder
):
    closed = free_port()
    jobs = [
        location(tmp_path, "here", f"{registry}/acme"),
        location(tmp_path, "there", f"127.0.0.1:{closed}/acme"),
    ]
    images, errors = publish_all(jobs, builder, log=lambda m: None)
    assert sorted(images) == ["here"]
    assert errors["there"].startswith(f"cannot reach the registry 127.0.0.1:{closed}")


@pytest.fixture
def registry_with_password(tmp_path) -> Iterator[str]:
    """A second docker-registry that wants a user and password (htpasswd, bcrypt)."""
    with docker_registry(
        tmp_path / "registry", htpasswd=htpasswd_line("ci", "right-password")
    ) as address:
        yield address


def test_credentials_come_from_the_environment_and_a_wrong_one_is_named(
    tmp_path, registry_with_password, builder, monkeypatch, caplog
):
    job = location(tmp_path, "private", f"{registry_with_password}/acme")
    monkeypatch.setenv("REGISTRY_USERNAME", "ci")
    monkeypatch.setenv("REGISTRY_PASSWORD", "wrong-password")
    with caplog.at_level(logging.DEBUG):
        images, errors = publish_all([job], builder, log=logging.getLogger("test").info)
    assert images == {} and "private" in errors
    assert "wrong-password" not in errors["private"] + caplog.text

    monkeypatch.setenv("REGISTRY_PASSWORD", "right-password")
    with caplog.at_level(logging.DEBUG):
        images, errors = publish_all([job], builder, log=logging.getLogger("test").info)
    assert errors == {} and images["private"].built
    assert "right-password" not in caplog.text + repr(images)
    credentials = Credentials("ci", SecretStr("right-password"))
    assert (
        manifest_digest(job.repository, images["private"].tag, credentials)
        == images["private"].digest
    )
    with pytest.raises(RegistryError, match="refused the credentials"):
        manifest_digest(
            job.repository, images["private"].tag, Credentials("ci", SecretStr("wrong-password"))
        )


def test_ecr_repository_is_created_and_the_login_obtained(moto_server, caplog):
    import boto3

    repository = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/analytics"
    with caplog.at_level(logging.DEBUG):
        credentials = ecr_login(repository)
    assert credentials.username == "AWS" and credentials.password.get_secret_value()
    names = [
        r["repositoryName"]
        for r in boto3.client("ecr", region_name="us-east-1").describe_repositories()[
            "repositories"
        ]
    ]
    assert names == ["acme/analytics"]
    assert ecr_login(repository).username == "AWS"  # an existing repository is fine
    assert credentials.password.get_secret_value() not in caplog.text + repr(credentials)
    with pytest.raises(RegistryError, match="not an Amazon ECR repository"):
        ecr_login("ghcr.io/acme/x")


def test_no_builder_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(
        BuildError, match="no image builder found: install docker or buildah or podman"
    ):
        choose_builder()


def test_the_images_asset_publishes_checks_and_reuses(sandbox, tmp_path, monkeypatch, registry):
    from migration_env import MigrationEnv

    env = MigrationEnv.in_tmp(sandbox, tmp_path, monkeypatch, registry=registry)
    # Content no other test pushed: the registry is shared, and its cache is by content.
    (env.project_dir / "unique.txt").write_text(str(tmp_path))
    first = env.prepare()
    metadata = first.asset_materializations_for_node("code_location_images")[0].metadata
    assert metadata["built"].value == ["analytics", "ml_models"] and metadata["reused"].value == []
    recorded = metadata["images"].value
    assert all(i["digest"].startswith("sha256:") and i["size_bytes"] > 0 for i in recorded.values())
    (check,) = [
        c
        for c in first.get_asset_check_evaluations()
        if c.asset_check_key.name == "images_exist_in_registry"
    ]
    assert check.passed

    again = env.run("prepare_hybrid_agent")
    metadata = again.asset_materializations_for_node("code_location_images")[0].metadata
    assert metadata["built"].value == [] and metadata["reused"].value == ["analytics", "ml_models"]
    assert metadata["images"].value == recorded


def test_a_build_stage_and_another_dockerfile_as_the_old_action_named_them(
    tmp_path, registry, builder
):
    """`dockerfile` and `target` from an old locations.yaml: the image is the named stage of
    the named Dockerfile, and another stage is another image (its tag differs)."""
    import dataclasses
    import gzip
    import io
    import tarfile

    import requests

    job = location(
        tmp_path,
        f"staged{tmp_path.name[-6:]}",
        f"{registry}/acme",
        files={"first.txt": "first\n", "second.txt": "second\n"},
    )
    (job.context / "Build.dockerfile").write_text(
        "FROM scratch AS first-stage\nCOPY first.txt /first.txt\n"
        "FROM scratch\nCOPY second.txt /second.txt\n"
    )
    staged = dataclasses.replace(
        job, dockerfile=job.context / "Build.dockerfile", target="first-stage"
    )
    images, errors = publish_all([staged], builder, log=lambda m: None)
    assert errors == {}
    image = images[staged.location]
    host, _, name = staged.repository.partition("/")
    manifest = requests.get(
        f"http://{host}/v2/{name}/manifests/{image.digest}",
        timeout=10,
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    files = set()
    for layer in manifest.json()["layers"]:
        blob = requests.get(f"http://{host}/v2/{name}/blobs/{layer['digest']}", timeout=30)
        data = blob.content
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        files |= set(tarfile.open(fileobj=io.BytesIO(data)).getnames())
    assert "first.txt" in files and "second.txt" not in files
    whole, _ = publish_all([dataclasses.replace(staged, target=None)], builder, log=lambda m: None)
    assert whole[staged.location].tag != image.tag
