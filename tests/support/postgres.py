"""A throwaway PostgreSQL server (Debian's `postgresql`): a cluster in a temporary directory of
its own (pytest's are private to root, and the server runs as the `postgres` system user, since
initdb refuses root), on a free loopback port, stopped by the PID in its postmaster.pid and
removed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.servers import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*command: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@contextmanager
def postgres_server() -> Iterator[dict[str, str]]:
    """Yields the DAGSTER_PG_* environment that instance/dagster.yaml reads."""
    if not (BIN / "initdb").exists():
        raise RuntimeError("Debian's postgresql is not installed (.ci/run installs it)")
    root = Path(tempfile.mkdtemp(prefix="migration-pipeline-postgres-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(
        _as_postgres(str(BIN / "initdb"), "-D", str(data), "-U", "dagster", "--auth=trust"),
        check=True,
        capture_output=True,
    )
    port = free_port()
    subprocess.run(
        _as_postgres(
            str(BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "postgres.log"),
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "-w",
            "start",
        ),
        check=True,
        capture_output=True,
    )
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    try:
        subprocess.run(
            [
                str(BIN.parent / "bin" / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                "dagster",
                "migration",
            ],
            check=True,
            capture_output=True,
        )
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "",
            "DAGSTER_PG_DB": "migration",
        }
    finally:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's fast shutdown
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
