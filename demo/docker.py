"""A Docker engine and a Python base image for the containerized demo and tests.

There is no Docker Hub here: the base image is a Debian bookworm root file system made with
debootstrap and imported into the engine, with the pinned Dagster family installed into a
virtual environment from wheels downloaded on the host (so no container ever needs the
network). It is made once and reused while its inputs are unchanged. It is the harness's image,
given to the plan as the `base_image` setting: the Dockerfiles the plan generates stay the ones
a user would get.

For projects that build (dg projects: `pip install .` with their build backend, or `uv sync
--frozen` from a uv.lock) the image also carries, still offline: a wheelhouse of the build
tools (`PIP_FIND_LINKS`) and a uv cache filled on the host from the given lock files
(`UV_CACHE_DIR`, `UV_OFFLINE=1`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from migration_pipeline.targets.docker import AGENT_IMAGE  # the name the compose file uses

PROJECT_DIR = Path(__file__).resolve().parent.parent
ENGINE_SCRIPT = PROJECT_DIR / "scripts" / "docker-engine.sh"
DOCKER = "/usr/bin/docker"  # Debian's CLI, which matches its engine
DAGSTER_FAMILY = ("dagster==1.13.27", "dagster-cloud==1.13.27", "dagster-cloud-cli==1.13.27")
# What Dagster's agent image adds for DockerUserCodeLauncher (dagster-cloud's `docker` extra).
AGENT_EXTRAS = ("dagster-docker==0.29.27",)
# What a project's own build needs offline: create-dagster's build backend (and editables, which
# it asks for to install a project editable), and uv.
BUILD_TOOLS = ("hatchling==1.33.0", "editables==0.5", "uv==0.13.9")
DEBOOTSTRAP = (
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates",
    "bookworm",
)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "migration-pipeline"


@contextmanager
def docker_engine(directory: Path) -> Iterator[str]:
    """dockerd on a private socket in `directory` (kept between runs: its images are the
    cache); yields DOCKER_HOST. Stopped by its PID on exit, unless it was running already
    (then whoever started it stops it)."""
    socket = directory / "docker.sock"
    if (
        socket.is_socket()
        and docker(f"unix://{socket}", "info", check=False, timeout=30).returncode == 0
    ):
        yield f"unix://{socket}"
        return
    started = subprocess.run(
        ["bash", str(ENGINE_SCRIPT), "start", str(directory)],
        capture_output=True,
        text=True,
        timeout=600,
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


def python_base_image(docker_host: str, log=print, uv_projects: tuple[Path, ...] = ()) -> str:
    """The tag of the Debian + Python 3.11 + Dagster family image, made when missing. The
    agent's image (the same plus dagster-docker) is made beside it, under the name the
    generated compose file uses. `uv_projects`: project folders with a uv.lock whose locked
    packages the image's uv cache holds."""
    locks = [(project / "uv.lock").read_bytes() for project in uv_projects]
    family = hashlib.sha256(repr((DEBOOTSTRAP, DAGSTER_FAMILY, AGENT_EXTRAS)).encode()).hexdigest()[
        :12
    ]
    inputs = hashlib.sha256(repr((family, BUILD_TOOLS, locks)).encode()).hexdigest()[:12]
    tag = f"migration-pipeline/python-dagster:{inputs}"
    agent = f"migration-pipeline/dagster-cloud-agent:{family}"
    if _has_image(docker_host, tag) and _has_image(docker_host, agent):
        docker(docker_host, "tag", agent, AGENT_IMAGE)
        return tag
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    debian = f"migration-pipeline/debian-python:{family}"
    if not _has_image(docker_host, debian):
        _import_debian(docker_host, cache / f"debian-python-{family}.tar", debian, log)
    wheels = _wheels(cache / f"wheels-{family}", (*DAGSTER_FAMILY, *AGENT_EXTRAS), log)
    family_image = f"migration-pipeline/python-dagster-family:{family}"
    if not _has_image(docker_host, family_image):
        log("  installing the Dagster family into the base image (no network in the container)")
        _install_and_commit(
            docker_host,
            debian,
            wheels,
            "python3 -m venv /opt/venv && " + _PIP_INSTALL + " ".join(DAGSTER_FAMILY),
            family_image,
        )
    if not _has_image(docker_host, agent):
        _install_and_commit(
            docker_host, family_image, wheels, _PIP_INSTALL + " ".join(AGENT_EXTRAS), agent
        )
    docker(docker_host, "tag", agent, AGENT_IMAGE)
    tools = _wheels(cache / f"build-tools-{inputs}", BUILD_TOOLS, log)
    uv_cache = _uv_cache(cache / f"uv-cache-{inputs}", tools, uv_projects, log)
    log("  adding the build tools' wheelhouse and the uv cache (offline builds)")
    _install_and_commit(
        docker_host,
        family_image,
        tools,
        "cp -r /wheels /opt/wheelhouse" + (" && cp -r /uv-cache /opt/uv-cache" if uv_cache else ""),
        tag,
        mounts=[f"{uv_cache}:/uv-cache:ro"] if uv_cache else [],
        env=[
            "PIP_FIND_LINKS=/opt/wheelhouse",
            *(["UV_CACHE_DIR=/opt/uv-cache", "UV_OFFLINE=1"] if uv_cache else []),
        ],
    )
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
        docker(docker_host, "import", "-", name, stdin=handle)


def _wheels(wheels: Path, requirements: tuple[str, ...], log) -> Path:
    """These requirements' wheels, downloaded on the host (this host is Debian bookworm with
    Python 3.11 on x86_64, as the image is), so no container needs the network."""
    if not wheels.exists():
        log(
            f"  downloading {', '.join(requirements)} and what they need (pip download, on the host)"
        )
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
                *requirements,
            ],
            check=True,
            capture_output=True,
        )
        partial.rename(wheels)
    return wheels


def _uv_cache(cache: Path, tools: Path, projects: tuple[Path, ...], log) -> Path | None:
    """A uv cache holding every package the projects' uv.lock files pin, and their build
    backends, filled on the host by `uv sync --frozen` in a copy of each project."""
    if not projects:
        return None
    if not cache.exists():
        log("  filling a uv cache from the projects' uv.lock (uv sync --frozen, on the host)")
        partial = cache.with_suffix(".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tempfile.TemporaryDirectory() as scratch:
            uv = Path(scratch) / "uv-tool"
            (uv_wheel,) = tools.glob("uv-*.whl")
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--target",
                    str(uv),
                    str(uv_wheel),
                ],
                check=True,
                capture_output=True,
            )
            for project in projects:
                copy = Path(scratch) / project.name
                shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".venv"))
                subprocess.run(
                    [str(uv / "bin" / "uv"), "sync", "--frozen", "--no-dev", "--python", "3.11"],
                    cwd=copy,
                    env={**os.environ, "UV_CACHE_DIR": str(partial), "UV_LINK_MODE": "copy"},
                    check=True,
                    capture_output=True,
                )
        partial.rename(cache)
    return cache


def _install_and_commit(
    docker_host: str,
    image: str,
    wheels: Path,
    script: str,
    tag: str,
    mounts: list[str] | None = None,
    env: list[str] | None = None,
) -> None:
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
        *[flag for mount in mounts or [] for flag in ("-v", mount)],
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
        *[flag for value in env or [] for flag in ("--change", f"ENV {value}")],
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


@contextmanager
def agent_network(docker_host: str) -> Iterator[tuple[str, str]]:
    """A Docker network made for one run, for the agent, its code servers and the sandbox's
    agent API (which listens on the network's gateway, an address of this machine): yields
    (name, gateway). Removed on exit."""
    name = f"migration-pipeline-{uuid.uuid4().hex[:8]}"
    # Subnets in use on this machine (every engine's bridges show here), not only this engine's.
    ip = shutil.which("ip")
    addresses = (
        subprocess.run([ip, "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
        if ip
        else ""
    )
    for third in range(20, 240):
        if f" 172.31.{third}." in addresses:
            continue
        created = docker(
            docker_host, "network", "create", "--subnet", f"172.31.{third}.0/24", name, check=False
        )
        if created.returncode == 0:
            break
    else:
        raise RuntimeError("no free 172.31.x.0/24 subnet for the agent's network")
    try:
        yield name, f"172.31.{third}.1"
    finally:
        docker(docker_host, "network", "rm", name, check=False)


@contextmanager
def compose_agent(agent_dir: Path, docker_host: str, work: Path) -> Iterator[None]:
    """The generated compose file, run as a user runs it (`up -d` from the agent's directory),
    with one override file for this machine: the engine's private socket mounted where the
    agent looks for Docker's default one, and an empty Docker config instead of the user's
    `${HOME}/.docker`. Debian's docker-compose 1.29 runs it (there is no `docker compose` v2
    here). On exit the agent's log goes to `work/agent.log` and the agent is taken down (it
    removes its code servers on SIGTERM)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "docker-config").mkdir(exist_ok=True)
    override = work / "docker-compose.engine.yaml"
    override.write_text(
        "services:\n  dagster-cloud-agent:\n    volumes:\n"
        f"      - {docker_host.removeprefix('unix://')}:/var/run/docker.sock\n"
        f"      - {work / 'docker-config'}:/root/.docker:ro\n"
    )
    compose = [
        "docker-compose",
        "--project-directory",
        str(agent_dir),
        "-f",
        str(agent_dir / "docker-compose.yaml"),
        "-f",
        str(override),
    ]
    env = {**os.environ, "DOCKER_HOST": docker_host}
    up = subprocess.run(
        [*compose, "up", "-d"], capture_output=True, text=True, env=env, timeout=300
    )
    if up.returncode != 0:
        raise RuntimeError(f"docker-compose up failed: {up.stderr[-2000:]}")
    try:
        yield
    finally:
        logs = subprocess.run(
            [*compose, "logs", "--no-color"], capture_output=True, text=True, env=env, timeout=120
        )
        (work / "agent.log").write_text(logs.stdout + logs.stderr)
        subprocess.run([*compose, "down"], capture_output=True, env=env, timeout=120)


@dataclass(frozen=True)
class DockerDemo:
    """What `make demo-docker` runs on: a private engine, the local base image, a registry on
    loopback and a network for the agent, each made for the run and stopped after it."""

    docker_host: str
    base_image: str
    registry: str  # 127.0.0.1:PORT
    network: str
    gateway: str

    @classmethod
    @contextmanager
    def start(
        cls, work: Path, engine_dir: Path | None = None, uv_projects: tuple[Path, ...] = ()
    ) -> Iterator[DockerDemo]:
        from demo.servers import docker_registry

        with ExitStack() as stack:
            docker_host = stack.enter_context(docker_engine(engine_dir or work / "docker-engine"))
            remove_all_containers(docker_host)
            base_image = python_base_image(docker_host, uv_projects=uv_projects)
            registry = stack.enter_context(docker_registry(work / "registry"))
            network, gateway = stack.enter_context(agent_network(docker_host))
            yield cls(docker_host, base_image, registry, network, gateway)
            # The run containers the agent's run launcher started stay when they exit (Dagster's
            # Docker run launcher keeps them for `docker logs`); the demo leaves none behind.
            exited = docker(docker_host, "ps", "-aq", "--filter", "status=exited").stdout.split()
            if exited:
                docker(docker_host, "rm", "-f", *exited, check=False)

    def plan_config(self, work: Path, first_run: bool = False) -> dict[str, str]:
        """The plan's registry and target settings: the docker builder, this base image, this
        network as the agent's (its gateway is where the sandbox's agent API listens), the
        environment variables for the code (`container_context.docker.env_vars`), and with
        `first_run` the example's first run with the directory it writes to (work/exports)."""
        settings = work / "target-settings.yaml"
        exports = work / "exports" if first_run else None
        settings.write_text(docker_settings(self.base_image, self.network, exports))
        return {"registry": f"{self.registry}/acme", "settings_file": str(settings)}

    def code_servers_started_at(self) -> list[float]:
        """When each of the agent's code-server containers started (epoch seconds)."""
        ids = docker(
            self.docker_host, "ps", "-q", "--filter", "label=dagster_grpc_server"
        ).stdout.split()
        if not ids:
            return []
        started = docker(
            self.docker_host, "inspect", "--format", "{{.State.StartedAt}}", *ids
        ).stdout.split()
        return [_epoch(value) for value in started]


def docker_settings(base_image: str, network: str, exports: Path | None = None) -> str:
    """The docker target settings of the demo and the end-to-end test. With `exports` (a host
    directory), the example's export_orders_job is the finish's first run: its container gets
    the directory at /exports and the env vars the job reads."""
    text = (
        f"builder: docker\nbase_image: {base_image}\nagent_network: {network}\n"
        "env_vars:\n  - ACME_ENVIRONMENT=hybrid\n"
    )
    if exports is None:
        return text
    return (
        text
        + "  - ANALYTICS_EXPORT_LABEL=finance\n  - ANALYTICS_EXPORT_DIR=/exports\n"
        + f"container_kwargs:\n  volumes: ['{exports}:/exports']\n"
        + "first_run: {analytics: export_orders_job}\n"
    )


def _epoch(rfc3339: str) -> float:
    """Docker's nanosecond RFC 3339 time as epoch seconds (Python reads microseconds)."""
    trimmed = re.sub(r"(\.\d{6})\d*", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(trimmed).timestamp()
