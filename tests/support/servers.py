"""Real servers on loopback for tests and benches: an OCI registry (Debian's docker-registry,
from demo/servers.py, which the docker demo shares) and moto_server (AWS)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from demo.servers import docker_registry, free_port, serving

BIN = Path(sys.executable).parent

__all__ = ["docker_registry", "free_port", "htpasswd_line", "moto_server"]


def htpasswd_line(user: str, password: str) -> str:
    """A line of an htpasswd file (bcrypt, which docker-registry requires)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Python 3.11's; bcrypt through the system's libcrypt

    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"


@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """moto_server (AWS: Secrets Manager, ECR, STS...) on loopback: yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        log_dir / "moto.log",
        url + "/moto-api/",
        "moto_server to answer",
    ):
        yield url
