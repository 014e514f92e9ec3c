"""The HTTP side of the sandbox: two listeners, as Dagster+ has two hosts, over one state.

The user API (`Sandbox.url`, like https://<org>.dagster.cloud), for user tokens and CI:
    POST /graphql                 organization scope; the deployment may come from the
                                  `Dagster-Cloud-Deployment` header (as Dagster's CLI sends it),
                                  else the organization's first deployment
    POST /<deployment>/graphql    deployment scope
    GET  /healthz                 200 while the server is up
    GET|POST|DELETE /_sandbox/faults   list, add or clear faults (admin token)
    GET  /_sandbox/events         the audit log: switches, tokens, deploys (admin token)

The agent API (`Sandbox.agent_url`, like https://<org>.agent.dagster.cloud), agent tokens only:
    POST /graphql                 the deployment from the `Dagster-Cloud-Deployment` header
    PUT  /upload_workspace_entry, GET /check_snapshot, PUT /confirm_upload,
    PUT  /code_location_update_result, PUT /_snapshots/<sha1>
                                  an agent reports the locations it loaded (agent_uploads.py)
    PUT  /upload_api_response     an agent answers a request (acknowledged)
    GET  /healthz

A token of the wrong kind gets HTTP 401 on the agent host; on the user host an agent token may
read and deploy but gets `UnauthorizedError` for what needs an Organization Admin.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from dagster_plus_sandbox import agent_uploads
from dagster_plus_sandbox.agent_api import AgentRoot
from dagster_plus_sandbox.api import (
    ApiName,
    RequestContext,
    operations_touched,
    parse_document,
    run_graphql,
)
from dagster_plus_sandbox.clock import Clock
from dagster_plus_sandbox.faults import FaultInjector
from dagster_plus_sandbox.scenario import Scenario, load_scenario
from dagster_plus_sandbox.state import SandboxState
from dagster_plus_sandbox.user_api import UserRoot

TOKEN_HEADER = "Dagster-Cloud-Api-Token"
DEPLOYMENT_HEADER = "Dagster-Cloud-Deployment"
ROOTS = {"user": UserRoot, "agent": AgentRoot}


# An agent's upload (a compressed workspace entry); far more than any real one.
MAX_BODY_BYTES = 16_000_000
# A JSON body (a GraphQL request, an agent's JSON report): a deploy document of a thousand
# locations is about 1 MB. Checked on Content-Length before a byte is read or parsed.
MAX_JSON_BODY_BYTES = 4_000_000


class _Refused(Exception):
    """A request answered with an error before its body was read."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    # Keep-alive connections (the clients reuse theirs): the handler writes a response's headers
    # and its body in two sends, and with Nagle's algorithm the body waited for the client's
    # delayed ACK of the headers, about 40 ms a request on a reused connection. TCP_NODELAY, as
    # production HTTP servers set it.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # Request lines carry no token (it travels in a header), but they are noise in tests.
        if self.server.sandbox.verbose:
            super().log_message(format, *args)

    @property
    def api(self) -> ApiName:
        return self.server.api

    # -- plumbing ------------------------------------------------------------------------------

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Answer with `body` as JSON; a str is sent as it is (already serialized)."""
        payload = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _body(self, limit: int = MAX_BODY_BYTES) -> bytes:
        """The request body, read only once its declared size is known to be within `limit`
        (nothing is read otherwise, and the connection is closed)."""
        if self.headers.get("Transfer-Encoding"):
            raise _Refused(411, "send a Content-Length: chunked bodies are not taken")
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        if not declared.strip().isdigit():
            raise _Refused(400, "Content-Length must be a whole number of bytes")
        length = int(declared)
        if length > limit:
            raise _Refused(413, f"the body is larger than {limit:,} bytes")
        return self.rfile.read(length) if length else b""

    def _read_json(self) -> Any:
        return json.loads(self._body(MAX_JSON_BODY_BYTES) or b"null")

    def _drop(self) -> None:
        """Close the connection without an answer, as a dropped connection looks to a client."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _token(self):
        return self.server.sandbox.state.authenticate(self.headers.get(TOKEN_HEADER))

    def _no_route(self) -> None:
        self._send_json(
            404, {"error": f"no route {self.path.split('?', 1)[0]} on the {self.api} API"}
        )

    def _agent_deployment(self):
        """The deployment an agent request is for (its header), or None after answering 4xx."""
        token = self._token()
        if token is None or token.kind != "agent":
            self._send_json(401, {"error": "The agent API needs an agent token."})
            return None
        return self._deployment(self.headers.get(DEPLOYMENT_HEADER))

    def _deployment(self, name: str | None):
        state = self.server.sandbox.state
        deployment = state.deployment(name=name) if name else state.default_deployment()
        if deployment is None:
            self._send_json(404, {"error": f"Deployment {name!r} not found."})
        return deployment

    def _admin(self) -> bool:
        token = self._token()
        if token is None or not token.is_admin:
            self._send_json(401, {"error": "the sandbox control API needs an admin user token"})
            return False
        return True

    # -- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._refusing(self._get)

    def do_PUT(self) -> None:  # noqa: N802
        self._refusing(self._put)

    def do_DELETE(self) -> None:  # noqa: N802
        self._refusing(self._delete)

    def do_POST(self) -> None:  # noqa: N802
        self._refusing(self._post)

    def _refusing(self, handler) -> None:
        """Run a route; a request refused before its body was read closes the connection."""
        try:
            handler()
        except _Refused as refused:
            self.close_connection = True
            self._send_json(refused.status, {"error": refused.message})

    def _get(self) -> None:
        path, _, query = self.path.partition("?")
        path = path.rstrip("/")
        sandbox = self.server.sandbox
        if path == "/healthz":
            self._send_json(200, {"ok": True, "api": self.api})
        elif self.api == "agent" and path == "/check_snapshot":
            if self._agent_deployment() is not None:
                params = {k: v[-1] for k, v in parse_qs(query).items()}
                self._send_json(
                    200, agent_uploads.check_snapshot(params, sandbox.agent_url, sandbox.snapshots)
                )
        elif self.api == "agent" and path == "/gen_logs_url":
            # Where a run worker uploads a step's captured stdout/stderr (CloudComputeLogManager):
            # a presigned PUT URL, as Dagster+ answers with an S3 one. Kept in memory, bounded.
            deployment = self._agent_deployment()
            if deployment is not None:
                log_query = parse_qs(query)
                key = "/".join([deployment.name, *log_query.get("log_key", [])])
                key += "." + log_query.get("io_type", ["out"])[-1]
                name = hashlib.sha1(key.encode()).hexdigest()
                signature = sandbox.compute_logs.sign(name)
                url = f"{sandbox.agent_url}/_logs/{name}?signature={signature}"
                self._send_json(200, {"url": url})
        elif self.api == "user" and path in ("/_sandbox/faults", "/_sandbox/events"):
            if self._admin():
                if path.endswith("faults"):
                    self._send_json(200, {"faults": sandbox.faults.active()})
                else:
                    self._send_json(200, {"events": sandbox.state.events()})
        else:
            self._no_route()

    def _put(self) -> None:
        """What an agent uploads: see agent_uploads.py."""
        path = self.path.split("?", 1)[0].rstrip("/")
        sandbox = self.server.sandbox
        routes = (
            "/upload_workspace_entry",
            "/upload_api_response",
            "/confirm_upload",
            "/code_location_update_result",
        )
        if self.api != "agent" or not (
            path in routes or path.startswith(("/_snapshots/", "/_logs/"))
        ):
            self._no_route()
            return
        if path.startswith("/_logs/"):
            name = path.rsplit("/", 1)[1]
            signature = parse_qs(self.path.partition("?")[2]).get("signature", [""])[-1]
            if not sandbox.compute_logs.signed(name, signature):
                raise _Refused(401, "not a presigned URL the sandbox gave out")
            sandbox.compute_logs.put(name, self._body(agent_uploads.MAX_SNAPSHOT_BYTES))
            self._send_json(200, {})
            return
        if path.startswith("/_snapshots/"):
            # A presigned URL: like S3's, it carries no API token but a signature the sandbox
            # gave the agent that asked (check_snapshot), for this one snapshot.
            sha1 = path.rsplit("/", 1)[1]
            signature = parse_qs(self.path.partition("?")[2]).get("signature", [""])[-1]
            if not sandbox.snapshots.signed(sha1, signature):
                raise _Refused(401, "not a presigned URL the sandbox gave out")
            sandbox.snapshots.put(sha1, self._body(agent_uploads.MAX_SNAPSHOT_BYTES))
            self._send_json(200, {})
            return
        multipart = path == "/upload_workspace_entry"
        body = self._body(MAX_BODY_BYTES if multipart else MAX_JSON_BODY_BYTES)
        deployment = self._agent_deployment()
        if deployment is None:
            return
        if path == "/upload_api_response":
            # The agent's answer to a request (e.g. CHECK_FOR_WORKSPACE_UPDATES): acknowledged.
            self._send_json(200, {"ok": True})
            return
        try:
            if path == "/confirm_upload":
                self._send_json(
                    200, agent_uploads.confirm_upload(json.loads(body), sandbox.snapshots)
                )
                return
            if path == "/code_location_update_result":
                location, error, answer, code = agent_uploads.code_location_update(
                    json.loads(body), sandbox.snapshots
                )
            else:
                location, error, answer, code = agent_uploads.workspace_entry_upload(
                    self.headers.get("Content-Type", ""), body
                )
        except (ValueError, KeyError, TypeError, RecursionError) as problem:
            self._send_json(400, {"error": f"cannot read the upload: {problem}"})
            return
        sandbox.state.record_upload(deployment.name, location, error)
        if code is not None:
            sandbox.state.runs.deployment(deployment.name).record_code(location, code)
        self._send_json(200, answer)

    def _delete(self) -> None:
        if self.api != "user" or self.path.rstrip("/") != "/_sandbox/faults":
            self._no_route()
        elif self._admin():
            self.server.sandbox.faults.clear()
            self._send_json(200, {"faults": []})

    def _post(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if self.api == "user" and path == "/_sandbox/faults":
            if self._admin():
                try:
                    body = self._read_json() or {}
                    added = [self.server.sandbox.faults.add(**f) for f in body.get("faults", [])]
                except (ValueError, TypeError, AttributeError, RecursionError) as error:
                    self._send_json(400, {"error": f"not a list of faults: {error}"})
                    return
                self._send_json(200, {"added": [f.as_dict() for f in added]})
            return
        parts = path.strip("/").split("/")
        scoped = self.api == "user" and len(parts) == 2
        if parts[-1] != "graphql" or (len(parts) > 1 and not scoped):
            self._no_route()
            return
        self._graphql(parts[0] if scoped else None)

    def _graphql(self, path_deployment: str | None) -> None:
        sandbox = self.server.sandbox
        try:
            body = self._read_json()
        except (ValueError, RecursionError):
            self._send_json(400, {"error": "the request body is not JSON"})
            return
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            self._send_json(400, {"error": "expected a JSON object with a `query` string"})
            return
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            self._send_json(400, {"error": "`variables` must be a JSON object"})
            return

        token = self._token()
        if token is None:
            # Never echo the token back: say only whether one was sent.
            sent = bool(self.headers.get(TOKEN_HEADER))
            self._send_json(
                401,
                {
                    "error": "Unknown or revoked API token."
                    if sent
                    else f"Missing API token: send it in the {TOKEN_HEADER} header."
                },
            )
            return
        if self.api == "agent" and token.kind != "agent":
            self._send_json(401, {"error": "The agent API needs an agent token."})
            return

        deployment = self._deployment(path_deployment or self.headers.get(DEPLOYMENT_HEADER))
        if deployment is None:
            return

        document, errors = parse_document(body["query"], self.api)
        if document is None:
            self._send_json(200, {"errors": [{"message": m} for m in errors]})
            return

        operations = operations_touched(document)
        (sandbox.operations_seen if self.api == "user" else sandbox.agent_operations_seen).append(
            operations
        )
        drop_answer = False
        for fault in sandbox.faults.pick(operations, self.api):
            if fault.kind == "latency":
                time.sleep(fault.seconds)
            elif fault.kind == "drop_after":
                drop_answer = True
            elif fault.kind == "drop":
                self._drop()
                return
            elif fault.kind == "http_429":
                headers = (
                    {"Retry-After": f"{fault.retry_after:g}"}
                    if fault.retry_after is not None
                    else {}
                )
                self._send_json(429, {"error": "Too many requests."}, headers)
                return
            else:
                status = 500 if fault.kind == "http_500" else 503
                self._send_json(status, {"error": HTTPStatus(status).phrase})
                return

        root = ROOTS[self.api](RequestContext(sandbox.state, token, deployment))
        result = run_graphql(self.api, root, document, variables, body.get("operationName"))
        if drop_answer:
            self._drop()  # the call took effect; only its answer is lost
            return
        self._send_json(200, result)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: Sandbox
    api: ApiName


def _import_request_handlers() -> None:
    """Import what the request handlers import lazily, once, before any request thread runs:
    two threads importing dagster's modules at once (an agent's heartbeat and a deploy, say)
    can see one of them half initialized and fail the request with an ImportError (seen with
    a real Docker agent)."""
    import dagster._serdes  # noqa: F401
    import dagster._utils.error  # noqa: F401
    import dagster_cloud.api.dagster_cloud_api  # noqa: F401
    import dagster_cloud.workspace.config_schema  # noqa: F401
    import dagster_cloud_cli.core.workspace  # noqa: F401


class Sandbox:
    """A running sandbox: `with Sandbox.start() as sandbox: ...sandbox.url...`."""

    def __init__(
        self,
        state: SandboxState,
        faults: FaultInjector,
        host: str,
        port: int,
        verbose: bool = False,
        agent_port: int = 0,
        agent_host: str | None = None,
    ):
        _import_request_handlers()
        self.state = state
        self.faults = faults
        self.verbose = verbose
        self.snapshots = agent_uploads.SnapshotStore()
        # Run workers' captured stdout/stderr, by a hash of (deployment, log key, io type).
        self.compute_logs = agent_uploads.SnapshotStore()
        # The operations of every GraphQL request, in order (bounded), for tests and benchmarks:
        # the user API's, and apart from them the agent API's.
        self.operations_seen: deque[set[str]] = deque(maxlen=10_000)
        self.agent_operations_seen: deque[set[str]] = deque(maxlen=10_000)
        self._servers: dict[ApiName, _HTTPServer] = {}
        addresses: dict[ApiName, tuple[str, int]] = {
            "user": (host, port),
            "agent": (agent_host or host, agent_port),
        }
        for api, address in addresses.items():
            server = _HTTPServer(address, _Handler)
            server.sandbox, server.api = self, api
            self._servers[api] = server
        self._threads: list[threading.Thread] = []

    @classmethod
    def create(
        cls,
        state_path: str | Path,
        scenario: Scenario | str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        agent_port: int = 0,
        clock: Clock = time.time,
        agent_host: str | None = None,
    ) -> Sandbox:
        if not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        state = SandboxState(state_path, scenario, clock)
        return cls(
            state, FaultInjector(scenario.faults), host, port, verbose, agent_port, agent_host
        )

    @classmethod
    def start(
        cls,
        state_path: str | Path,
        scenario: Scenario | str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        agent_port: int = 0,
        clock: Clock = time.time,
        agent_host: str | None = None,
    ) -> Sandbox:
        """Start serving in background threads (port 0 picks a free port). `clock`: the time
        the sandbox's timed behaviour reads (a `ManualClock` in tests). `agent_host`: where the
        agent API listens, when agents in containers must reach it (a Docker network's
        gateway, on a network the caller made)."""
        sandbox = cls.create(
            state_path,
            scenario,
            host,
            port,
            agent_port=agent_port,
            clock=clock,
            agent_host=agent_host,
        )
        sandbox._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.1},
                daemon=True,
                name=f"dagster-plus-sandbox-{api}",
            )
            for api, server in sandbox._servers.items()
        ]
        for thread in sandbox._threads:
            thread.start()
        return sandbox

    def _url(self, api: ApiName) -> str:
        host, port = self._servers[api].server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The user API's base URL (Dagster+'s https://<org>.dagster.cloud)."""
        return self._url("user")

    @property
    def agent_url(self) -> str:
        """The agent API's base URL (Dagster+'s https://<org>.agent.dagster.cloud)."""
        return self._url("agent")

    @property
    def deployment(self) -> str:
        return self.state.default_deployment().name

    def token(self, name: str) -> str:
        value = self.state.token_value(name)
        if value is None:
            raise KeyError(f"the scenario has no token named {name!r}")
        return value

    def serve_forever(self) -> None:
        """Serve both APIs until `stop()` (from another thread) or an interrupt."""
        agent = threading.Thread(
            target=self._servers["agent"].serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        agent.start()
        self._threads = [agent]
        self._servers["user"].serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self.state.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
