"""A Docker engine and a Python base image for the containerized demo and tests.

There is no Docker Hub here: the base image is a Debian bookworm root file system made with
debootstrap and imported into the engine, with the pinned Dagster family installed into a
virtual environment from wheels downloaded on the host (so no container ever needs the
network). It is made once and reused while its inputs are unchanged. It is the harness's image,
given to the plan as the `base_image` setting: the Dockerfiles the plan generates stay the ones
a user would get.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENGINE_SCRIPT = PROJECT_DIR / "scripts" / "docker-engine.sh"
DOCKER = "/usr/bin/docker"  # Debian's CLI, which matches its engine
DAGSTER_FAMILY = ("dagster==1.13.27", "dagster-cloud==1.13.27", "dagster-cloud-cli==1.13.27")
# What Dagster's agent image adds for DockerUserCodeLauncher (dagster-cloud's `docker` extra).
AGENT_EXTRAS = ("dagster-docker==0.29.27",)
DEBOOTSTRAP = (
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "bookworm",
)
# The name the generated compose file gives the agent's image: the base image is tagged with
# it in this engine only (Dagster's own image cannot be pulled here).
AGENT_IMAGE = "docker.io/dagster/dagster-cloud-agent:1.13.27"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "migration-pipeline"


@contextmanager
def docker_engine(directory: Path) -> Iterator[str]:
    """dockerd on a private socket in `directory` (kept between runs: its images are the
    cache); yields DOCKER_HOST. Stopped by its PID on exit."""
    started = subprocess.run(
        ["bash", str(ENGINE_SCRIPT), "start", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if started.returncode != 0:
        raise RuntimeError(f"the Docker engine did not start: {started.stderr[-2000:]}")
    docker_host = started.stdout.strip().rsplit("=", 1)[-1]
    try:
        yield docker_host
    finally:
        subprocess.run(["bash", str(ENGINE_SCRIPT), "stop", str(directory)], timeout=120)


def docker(
    docker_host: str, *args: str, check: bool = True, **kwargs
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DOCKER, "-H", docker_host, *args],
        check=check,
        capture_output=True,
        text=True,
        **kwargs,
    )


def _has_image(docker_host: str, name: str) -> bool:
    return docker(docker_host, "image", "inspect", name, check=False).returncode == 0


def python_base_image(docker_host: str, log=print) -> str:
    """The tag of the Debian + Python 3.11 + Dagster family image, made when missing. The
    agent's image (the same plus dagster-docker) is made beside it, under the name the
    generated compose file uses."""
    inputs = hashlib.sha256(repr((DEBOOTSTRAP, DAGSTER_FAMILY, AGENT_EXTRAS)).encode()).hexdigest()[
        :12
    ]
    tag = f"migration-pipeline/python-dagster:{inputs}"
    agent = f"migration-pipeline/dagster-cloud-agent:{inputs}"
    if _has_image(docker_host, tag) and _has_image(docker_host, agent):
        docker(docker_host, "tag", agent, AGENT_IMAGE)
        return tag
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    debian = f"migration-pipeline/debian-python:{inputs}"
    if not _has_image(docker_host, debian):
        _import_debian(docker_host, cache / f"debian-python-{inputs}.tar", debian, log)
    wheels = _wheels(cache / f"wheels-{inputs}", log)
    log("  installing the Dagster family into the base image (no network in the container)")
    _install_and_commit(
        docker_host,
        debian,
        wheels,
        "python3 -m venv /opt/venv && " + _PIP_INSTALL + " ".join(DAGSTER_FAMILY),
        tag,
    )
    _install_and_commit(docker_host, tag, wheels, _PIP_INSTALL + " ".join(AGENT_EXTRAS), agent)
    docker(docker_host, "tag", agent, AGENT_IMAGE)
    return tag


_PIP_INSTALL = "/opt/venv/bin/pip install --quiet --no-index --find-links /wheels "
_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _import_debian(docker_host: str, rootfs_tar: Path, name: str, log) -> None:
    if not rootfs_tar.exists():
        log("  making a Debian bookworm + Python root file system (debootstrap, ~1 min)")
        with tempfile.TemporaryDirectory(dir=rootfs_tar.parent) as scratch:
            rootfs = Path(scratch) / "rootfs"
            subprocess.run(
                ["debootstrap", *DEBOOTSTRAP, str(rootfs)], check=True, capture_output=True
            )
            partial = rootfs_tar.with_suffix(".partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
            partial.rename(rootfs_tar)
    with open(rootfs_tar, "rb") as handle:
        subprocess.run(
            [DOCKER, "-H", docker_host, "import", "-", name],
            stdin=handle,
            check=True,
            capture_output=True,
        )


def _wheels(wheels: Path, log) -> Path:
    """The pinned family's wheels, downloaded on the host (this host is Debian bookworm with
    Python 3.11 on x86_64, as the image is), so no container needs the network."""
    if not wheels.exists():
        log("  downloading the pinned Dagster family's wheels (pip download, on the host)")
        partial = wheels.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--dest",
                str(partial),
                *DAGSTER_FAMILY,
                *AGENT_EXTRAS,
            ],
            check=True,
            capture_output=True,
        )
        partial.rename(wheels)
    return wheels


def _install_and_commit(docker_host: str, image: str, wheels: Path, script: str, tag: str) -> None:
    name = f"migration-pipeline-build-{tag.rsplit(':', 1)[-1]}"
    docker(docker_host, "rm", "-f", name, check=False)
    docker(
        docker_host,
        "run",
        "--name",
        name,
        "--network",
        "none",
        "-v",
        f"{wheels}:/wheels:ro",
        image,
        "sh",
        "-c",
        script,
    )
    docker(
        docker_host,
        "commit",
        "--change",
        f"ENV PATH={_PATH}",
        "--change",
        "ENV PIP_NO_INDEX=1",
        name,
        tag,
    )
    docker(docker_host, "rm", "-f", name, check=False)


def remove_all_containers(docker_host: str) -> None:
    """The private engine's containers from an earlier, interrupted run (an agent started with
    `restart: unless-stopped` comes back with the engine)."""
    ids = docker(docker_host, "ps", "-aq").stdout.split()
    if ids:
        docker(docker_host, "rm", "-f", *ids, check=False)
