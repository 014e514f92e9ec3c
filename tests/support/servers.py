"""Real servers on loopback for tests and benches: an OCI registry (Debian's docker-registry)
and moto_server (AWS)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from support.processes import wait_for

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.ConnectionError:
        return False


@contextmanager
def _serving(command: list[str], log: Path, ready_url: str, what: str) -> Iterator[None]:
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=output)
    try:
        wait_for(lambda: process.poll() is not None or _answers(ready_url), 30, what, interval=0.1)
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def docker_registry(root: Path) -> Iterator[str]:
    """A real OCI registry storing under `root`: yields `127.0.0.1:PORT`."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise RuntimeError("Debian's docker-registry is not installed (.ci/run installs it)")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
        "log:\n  level: warn\n"
    )
    with _serving(
        [binary, "serve", str(config)],
        root / "registry.log",
        f"http://127.0.0.1:{port}/v2/",
        "docker-registry to answer",
    ):
        yield f"127.0.0.1:{port}"


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """moto_server (AWS: Secrets Manager, ECR, STS...) on loopback: yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with _serving(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        log_dir / "moto.log",
        url + "/moto-api/",
        "moto_server to answer",
    ):
        yield url
