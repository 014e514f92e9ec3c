"""Hostile requests to the sandbox: it answers every one with a clear 4xx, never exhausts its
memory or a thread, and keeps serving; a malformed scenario or state file is a message and
exit 2 at start-up."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from urllib.parse import urlparse

import pytest
import requests


def raw_request(url: str, request: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Send bytes as they are (no client library would send these); the status and body."""
    address = urlparse(url)
    assert address.port is not None
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(body) >= length[0]:
                    break
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def post_headers(url: str, length: str, token: str = "", extra: str = "") -> bytes:
    host = urlparse(url).netloc
    return (
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nDagster-Cloud-Api-Token: {token}\r\n{extra}\r\n"
    ).encode()


def still_serving(sandbox) -> None:
    answer = requests.post(
        f"{sandbox.url}/graphql",
        timeout=10,
        json={"query": "{ currentDeployment { deploymentName } }"},
        headers={"Dagster-Cloud-Api-Token": sandbox.token("admin")},
    )
    assert answer.json()["data"]["currentDeployment"]["deploymentName"] == "prod"


@pytest.mark.parametrize(
    "length,status",
    [("999999999999", 413), ("-1", 400), ("abc", 400), ("1e9", 400), ("17000000", 413)],
)
def test_a_content_length_it_cannot_take_is_refused_before_anything_is_read(
    sandbox, length, status
):
    got, body = raw_request(sandbox.url, post_headers(sandbox.url, length))
    assert got == status and b"error" in body
    still_serving(sandbox)


def test_a_chunked_body_is_refused(sandbox):
    got, _ = raw_request(
        sandbox.url,
        post_headers(sandbox.url, "5").replace(
            b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n"
        ),
    )
    assert got == 411
    still_serving(sandbox)


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "{ agents { id } }", "variables": [1, 2]}',
        b'{"query": "{ agents { id } }", "variables": "x"}',
        b'{"query": 42}',
        b"[1, 2]",
        b"not json",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=[
        "variables_list",
        "variables_string",
        "query_not_string",
        "a_list",
        "not_json",
        "nested_json",
    ],
)
def test_a_malformed_graphql_body_is_a_400(sandbox, body):
    answer = requests.post(
        f"{sandbox.url}/graphql",
        data=body,
        timeout=10,
        headers={"Dagster-Cloud-Api-Token": sandbox.token("admin")},
    )
    assert answer.status_code == 400 and "error" in answer.json()
    still_serving(sandbox)


def test_a_document_nested_beyond_reason_is_an_error_not_a_crash(sandbox):
    query = "{ " + "a { " * 5000 + "b" + " }" * 5000 + " }"
    answer = requests.post(
        f"{sandbox.url}/graphql",
        json={"query": query},
        timeout=30,
        headers={"Dagster-Cloud-Api-Token": sandbox.token("admin")},
    )
    assert answer.status_code == 200 and answer.json()["errors"]
    still_serving(sandbox)


@pytest.mark.parametrize(
    "fault",
    [
        {"operation": "agents", "kind": "latency", "seconds": -1},
        {"operation": "agents", "kind": "boom"},
        {"operation": "agents", "kind": "http_500", "count": 0},
        {"operation": "agents", "kind": "http_500", "rate": 2},
        {"operation": "", "kind": "http_500"},
        {"operation": "agents", "kind": "http_500", "api": "both"},
        {"operation": "agents", "kind": "http_429", "retry_after": "soon"},
        "not a mapping",
    ],
)
def test_an_invalid_fault_spec_is_a_400_and_nothing_is_injected(sandbox, fault):
    answer = requests.post(
        f"{sandbox.url}/_sandbox/faults",
        json={"faults": [fault]},
        timeout=10,
        headers={"Dagster-Cloud-Api-Token": sandbox.token("admin")},
    )
    assert answer.status_code == 400 and "fault" in answer.json()["error"]
    assert sandbox.faults.active() == []
    still_serving(sandbox)


def test_snapshot_uploads_need_the_presigned_signature_and_a_size_limit(sandbox, admin):
    base = f"{sandbox.agent_url}/_snapshots/{'a' * 40}"
    assert requests.put(base, data=b"x" * 1000, timeout=10).status_code == 401
    assert requests.put(base + "?signature=forged", data=b"x", timeout=10).status_code == 401
    signed = f"{base}?signature={sandbox.snapshots.sign('a' * 40)}"
    assert requests.put(signed, data=b"x" * 1000, timeout=10).status_code == 200
    huge = raw_request(
        sandbox.agent_url,
        (
            f"PUT /_snapshots/{'a' * 40}?signature={sandbox.snapshots.sign('a' * 40)} HTTP/1.1\r\n"
            f"Host: x\r\nContent-Length: 20000000\r\n\r\n"
        ).encode(),
    )
    assert huge[0] == 413
    assert sandbox.snapshots.get("a" * 40) == b"x" * 1000


def start(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster_plus_sandbox", "serve", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "content,fragment",
    [
        ("deployments: [\n", "invalid YAML"),
        ("- a list\n", "a scenario is a mapping"),
        ("deployments: oops\n", "a mapping with a `name` is needed"),
        ("deployments: [{name: prod}]\nsurprise: 1\n", "unknown keys"),
        (
            "deployments: [{name: prod}]\nfaults: [{operation: x, kind: latency, seconds: -1}]\n",
            "seconds is 0 to 600",
        ),
        (b"\xff\xfe", "not UTF-8"),
        # Issue 20, class 6: what a scenario seeds is bounded and typed.
        ("deployments: [{name: prod, runs: {count: -5}}]\n", "runs: count: between 0 and"),
        ("deployments: [{name: prod, runs: {count: 10000000000}}]\n", "not 10,000,000,000"),
        ("deployments: [{name: prod, runs: {count: 2.5}}]\n", "count: a whole number"),
        ("deployments: [{name: prod, runs: {count: true}}]\n", "count: a whole number"),
        ("deployments: [{name: prod, runs: 100}]\n", "runs: a mapping"),
        ("deployments: [{name: prod, runs: {statuses: {WON: 1}}}]\n", "not a run status"),
        ("deployments: [{name: prod, runs: {statuses: {SUCCESS: -1}}}]\n", "a weight of 0"),
        ("deployments: [{name: prod, runs: {statuses: {SUCCESS: 0}}}]\n", "at least one weight"),
        ("deployments: [{name: prod, runs: {jobs: []}}]\n", "jobs: a list of job names"),
        (
            "deployments: [{name: prod}]\ntiming: {heartbeat_window_seconds: -1}\n",
            "seconds between",
        ),
        ("deployments: [{name: prod}]\ntiming: {heartbeat_window_seconds: .nan}\n", "not nan"),
        ("deployments: [{name: prod}]\ntiming: {tick: 1}\n", "timing.tick: unknown"),
    ],
)
def test_a_malformed_scenario_is_a_message_and_exit_2(tmp_path, content, fragment):
    path = tmp_path / "scenario.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    done = start("--scenario", str(path))
    assert done.returncode == 2, done.stderr
    assert fragment in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", ["not_sqlite", "missing_directory", "a_directory"])
def test_a_state_file_it_cannot_use_is_a_message_and_exit_2(tmp_path, kind):
    path = {
        "not_sqlite": tmp_path / "s.db",
        "missing_directory": tmp_path / "no" / "s.db",
        "a_directory": tmp_path,
    }[kind]
    if kind == "not_sqlite":
        path.write_text("x" * 200)
    done = start("--state", str(path))
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr and "Traceback" not in done.stderr


def test_every_refusal_above_left_the_viewer_powerless_and_no_token_echoed(sandbox):
    """What held before must still hold: the viewer changes nothing, a 401 echoes no token."""
    viewer = sandbox.token("viewer")
    answer = requests.post(
        f"{sandbox.url}/graphql",
        timeout=10,
        headers={"Dagster-Cloud-Api-Token": viewer},
        json={
            "query": "mutation { updateDeploymentAgentType(deploymentAgentType: HYBRID) "
            "{ __typename } }"
        },
    )
    assert answer.json()["data"]["updateDeploymentAgentType"]["__typename"] == "UnauthorizedError"
    bogus = "user:acme:" + "f" * 32
    rejected = requests.post(
        f"{sandbox.url}/graphql",
        json={"query": "{ agents { id } }"},
        timeout=10,
        headers={"Dagster-Cloud-Api-Token": bogus},
    )
    assert rejected.status_code == 401 and bogus not in rejected.text
    assert sandbox.state.events() == []
    assert json.loads(rejected.text)["error"]


# -- issue 20, class 6: every read bounded, on the sandbox's side too ---------------------------


def graphql(sandbox, query: str, token: str | None = None) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/graphql",
        json={"query": query},
        timeout=30,
        headers={"Dagster-Cloud-Api-Token": token or sandbox.token("admin")},
    )


def test_a_fragment_bomb_is_refused_before_it_runs(sandbox):
    # Each fragment spreads the one below it twice: 2^24 selections of `id` from 25 lines.
    fragments = (
        "".join(f"fragment F{i} on CloudQuery {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(24))
        + "fragment F24 on CloudQuery { agents { id } }\n"
    )
    answer = graphql(sandbox, "query { ...F0 }\n" + fragments)
    assert answer.status_code == 200
    assert "selects more than 2,000 fields" in answer.json()["errors"][0]["message"]
    still_serving(sandbox)


def test_an_alias_bomb_is_refused(sandbox):
    aliases = " ".join(f"a{i}: agents {{ id status }}" for i in range(1500))
    answer = graphql(sandbox, "{ " + aliases + " }")
    assert "selects more than 2,000 fields" in answer.json()["errors"][0]["message"]
    still_serving(sandbox)


def test_a_document_too_long_is_refused_and_large_ones_are_not_cached(sandbox):
    from dagster_plus_sandbox.api import _parse_cached

    long = graphql(sandbox, "{ agents { id } }" + " " * 200_000)
    assert "at most 100,000 are read" in long.json()["errors"][0]["message"]
    cached = _parse_cached.cache_info().currsize
    for i in range(20):  # distinct documents of 20 kB: parsed, answered, not kept
        assert graphql(sandbox, f"# {i}{' ' * 20_000}\n{{ agents {{ id }} }}").json()["data"]
    assert _parse_cached.cache_info().currsize == cached
    still_serving(sandbox)


def test_a_json_body_beyond_its_bound_is_refused_before_it_is_parsed(sandbox):
    got, body = raw_request(sandbox.url, post_headers(sandbox.url, "5000000"))
    assert got == 413 and b"4,000,000" in body
    still_serving(sandbox)


def multipart(payload: bytes) -> tuple[str, bytes]:
    boundary = "sandboxbomb"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="workspace_entry.tmp"; '
            f'filename="workspace_entry.tmp"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={boundary}", body


def test_a_zlib_bomb_upload_is_refused_without_inflating_it(sandbox, admin):
    import zlib

    from dagster_plus_sandbox.agent_uploads import MAX_INFLATED_BYTES, inflate

    bomb = zlib.compress(b"\0" * (MAX_INFLATED_BYTES * 4), 9)  # ~250 kB on the wire
    with pytest.raises(ValueError, match="inflates to more than"):
        inflate(bomb)
    token = admin.create_agent_token("bomb").token.get_secret_value()
    content_type, body = multipart(bomb)
    answer = requests.put(
        f"{sandbox.agent_url}/upload_workspace_entry",
        data=body,
        timeout=60,
        headers={
            "Content-Type": content_type,
            "Dagster-Cloud-Api-Token": token,
            "Dagster-Cloud-Deployment": "prod",
        },
    )
    assert answer.status_code == 400 and "inflates to more than" in answer.json()["error"]
    still_serving(sandbox)


def test_the_snapshot_store_is_bounded_in_bytes():
    from dagster_plus_sandbox.agent_uploads import SnapshotStore

    store = SnapshotStore(limit=1000, max_bytes=10_000)
    for i in range(10):
        store.put(f"{i:040d}", b"x" * 3000)
    kept = [i for i in range(10) if store.get(f"{i:040d}") is not None]
    assert kept == [7, 8, 9]  # the newest that fit in 10,000 bytes
