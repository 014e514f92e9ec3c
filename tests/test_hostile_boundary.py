"""Issue 20, class 6 (this tool's side): every answer it reads has a deadline for the whole
answer and a size bound. A server that trickles a byte every 0.2 s never trips a per-read
timeout; here each case must end with a clear error, bounded by the deadline (pytest-timeout
stops a regression that would wait for ever)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.hostile_http import (
    answer,
    gzip_bomb,
    hostile_server,
    huge,
    silent,
    trickled_body,
    trickled_headers,
)

from migration_pipeline.cli import main
from migration_pipeline.images.registry import RegistryError, manifest_digest
from migration_pipeline.lib.history import migration_runs, render
from migration_pipeline.plus.client import DagsterPlusClient
from migration_pipeline.plus.errors import (
    DagsterPlusError,
    DagsterPlusUnavailableError,
    OutcomeUnknownError,
)

pytestmark = pytest.mark.timeout(60)


def client(url: str) -> DagsterPlusClient:
    return DagsterPlusClient(
        url, "prod", "user:acme:" + "0" * 32, timeout=1.0, max_attempts=2, sleep=lambda s: None
    )


@pytest.mark.parametrize(
    "behaviour", [trickled_headers(), trickled_body(), silent], ids=["headers", "body", "silent"]
)
def test_a_trickling_or_silent_server_is_given_up_on_at_the_deadline(behaviour):
    with hostile_server(behaviour) as url, client(url) as plus:
        with pytest.raises(DagsterPlusUnavailableError) as failed:
            plus.execute("agents", "{ agents { id } }")
    assert "no whole answer within 1s on all 2 attempts" in str(failed.value)


def test_a_trickled_answer_to_a_change_is_an_unknown_outcome_not_a_retry():
    with hostile_server(trickled_body()) as url, client(url) as plus:
        with pytest.raises(OutcomeUnknownError) as failed:
            plus.execute("createAgentToken", "mutation { x }", idempotent=False)
    assert "no whole answer within 1s" in str(failed.value)
    assert plus.requests_sent == 1


@pytest.mark.parametrize("behaviour", [huge(78_000_000), gzip_bomb()], ids=["78MB", "gzip-bomb"])
def test_an_oversized_answer_is_not_read(behaviour):
    with hostile_server(behaviour) as url, client(url) as plus:
        with pytest.raises(DagsterPlusError) as failed:
            plus.execute("agents", "{ agents { id } }")
    assert "larger than 16,000,000 bytes" in str(failed.value)
    assert plus.requests_sent == 1  # not retried: a server that does this will do it again


# The peak resident size of the child itself: /proc's VmHWM, of this process's own memory
# (getrusage's ru_maxrss keeps the parent's peak across fork and exec).
MEMORY = """
import sys
from migration_pipeline.plus.client import DagsterPlusClient
from migration_pipeline.plus.errors import DagsterPlusError
plus = DagsterPlusClient(sys.argv[1], "prod", "user:acme:" + "0" * 32, timeout=30, max_attempts=1)
try:
    plus.execute("agents", "{ agents { id } }")
except DagsterPlusError:
    pass
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(peak.split()[1]) // 1024)
"""


def test_a_78_mb_answer_leaves_the_client_small():
    # The unbounded client grew to about 2 GB on this answer (its text, then the parse).
    with hostile_server(huge(78_000_000)) as url:
        done = subprocess.run(
            [sys.executable, "-c", MEMORY, url], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) < 150, f"peak {done.stdout.split()[-1]} MB"


def test_the_registry_check_has_a_deadline_too():
    with hostile_server(trickled_headers()) as url:
        host = url.removeprefix("http://")
        with pytest.raises(RegistryError) as failed:
            manifest_digest(f"{host}/acme/app", "v1", insecure=True, timeout=1.0)
    assert "cannot reach the registry" in str(failed.value)


@pytest.mark.parametrize("behaviour", [silent, trickled_body()], ids=["silent", "trickle"])
def test_history_on_a_silent_or_trickling_webserver_ends_with_a_message(behaviour, capsys):
    with hostile_server(behaviour) as url:
        port = url.rsplit(":", 1)[1]
        code = main(["history", "--port", port, "--timeout", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "gave no whole answer within 1s" in err and "Traceback" not in err


def test_history_of_a_run_not_started_yet_and_odd_fields():
    runs = {
        "data": {
            "runsOrError": {
                "__typename": "Runs",
                "results": [
                    # queued: no startTime, no endTime
                    {"runId": "a1", "jobName": "cutover", "status": "QUEUED", "tags": []},
                    {
                        "runId": "a2",
                        "jobName": "inventory",
                        "status": "SUCCESS",
                        "startTime": 100.0,
                        "endTime": "later",  # not a number: shown as unknown
                        "tags": [{"key": "dagster/partition", "value": "prod"}, "junk"],
                    },
                    {"runId": "a3", "jobName": "someone_elses_job", "status": "SUCCESS"},
                    "not a run",
                ],
            }
        }
    }
    with hostile_server(answer(200, json.dumps(runs).encode())) as url:
        found = migration_runs("127.0.0.1", int(url.rsplit(":", 1)[1]), deadline=5)
    assert [(r.run_id, r.start_time, r.end_time, r.deployment) for r in found] == [
        ("a1", None, None, ""),
        ("a2", 100.0, None, "prod"),
    ]
    table = render(found)
    assert "QUEUED" in table and "prod" in table


@pytest.mark.parametrize(
    "body",
    [b"<html>not graphql</html>", b'{"data": null}', b"[1, 2]", b'{"data": {"runsOrError": 3}}'],
)
def test_history_from_something_that_is_not_a_dagster_webserver(body, capsys):
    with hostile_server(answer(200, body)) as url:
        code = main(["history", "--port", url.rsplit(":", 1)[1], "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "Dagster webserver" in err
