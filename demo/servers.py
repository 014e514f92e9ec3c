"""Real servers on loopback for the demo, the tests and benches: an OCI registry (Debian's
docker-registry)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from demo.processes import wait_for


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    """Whether a server answers at all (a readiness probe: its certificate is not checked)."""
    import urllib3

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            return requests.get(url, timeout=1, verify=False).status_code < 500
    except requests.ConnectionError:
        return False


@contextmanager
def serving(command: list[str], log: Path, ready_url: str, what: str) -> Iterator[None]:
    """A server process, ready when `ready_url` answers; terminated on exit."""
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
def docker_registry(
    root: Path, htpasswd: str | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """A real OCI registry storing under `root`: yields `127.0.0.1:PORT`. With `htpasswd`
    (lines of `htpasswd_line`), it wants a user and password; with `tls` (certificate, key),
    it serves HTTPS."""
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise RuntimeError("Debian's docker-registry is not installed (.ci/run installs it)")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    auth = https = ""
    if htpasswd is not None:
        (root / "htpasswd").write_text(htpasswd)
        auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {root / 'htpasswd'}\n"
    if tls is not None:
        https = f"  tls:\n    certificate: {tls[0]}\n    key: {tls[1]}\n"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{https}"
        f"log:\n  level: warn\n{auth}"
    )
    with serving(
        [binary, "serve", str(config)],
        root / "registry.log",
        f"{'https' if tls else 'http'}://127.0.0.1:{port}/v2/",
        "docker-registry to answer",
    ):
        yield f"127.0.0.1:{port}"
