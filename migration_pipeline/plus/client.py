"""A typed client for the Dagster+ GraphQL API.

Every call retries transient failures (HTTP 5xx, 429 with its Retry-After, dropped connections)
with bounded exponential backoff, and never retries 401/403. A call that is not idempotent
(creating an agent token) is retried only when the failure proves that the server did not act
on it; otherwise it raises `OutcomeUnknownError` so that the caller reads the state first.

Each attempt has a deadline (`timeout`: the whole answer, however slowly a server trickles it)
and a size bound (`max_answer_bytes`), both from `lib.http`.

The API token lives in a `SecretStr` and is sent only in the `Dagster-Cloud-Api-Token` header:
it is never logged, never part of an exception, and hidden from `repr`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import requests
from pydantic import SecretStr
from urllib3.exceptions import NewConnectionError

from migration_pipeline.lib.http import (
    MAX_ANSWER_BYTES,
    AnswerTooLarge,
    bounded_request,
    bounded_session,
)
from migration_pipeline.plus import documents as doc
from migration_pipeline.plus.errors import (
    DagsterPlusError,
    DagsterPlusPythonError,
    DagsterPlusUnavailableError,
    DeploymentNotFoundError,
    GraphQLRequestError,
    InvalidLocationError,
    NotAuthorizedError,
    OutcomeUnknownError,
)
from migration_pipeline.plus.types import (
    Agent,
    AgentToken,
    Deployment,
    LocationEntry,
    Run,
    RunDetail,
    agent_from,
    deployment_from,
    location_entry_from,
)

TOKEN_HEADER = "Dagster-Cloud-Api-Token"
DEPLOYMENT_HEADER = "Dagster-Cloud-Deployment"
# Answers that say the server did not act on the request, so even a non-idempotent call may
# be sent again.
NOT_PROCESSED_STATUSES = {429, 503}
RETRYABLE_STATUSES = {500, 502, 503, 504, 429}

logger = logging.getLogger(__name__)


class DagsterPlusClient:
    """One Dagster+ deployment, reached at `<url>/<deployment>/graphql`."""

    def __init__(
        self,
        url: str,
        deployment: str,
        api_token: str | SecretStr,
        *,
        timeout: float = 30.0,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
        max_retry_after_seconds: float = 60.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        log: logging.Logger | Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.url = url.rstrip("/")
        self.deployment = deployment
        self._token = api_token if isinstance(api_token, SecretStr) else SecretStr(api_token)
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.max_answer_bytes = max_answer_bytes
        self.log = log or logger
        self._sleep = sleep
        self._session = bounded_session()
        self.requests_sent = 0

    def __repr__(self) -> str:
        return (
            f"DagsterPlusClient(url={self.url!r}, deployment={self.deployment!r}, "
            f"api_token={self._token!r})"
        )

    def close(self) -> None:
        self._session.close()

    def for_deployment(self, deployment: str) -> DagsterPlusClient:
        """The same organization, token, retries and connection pool, scoped to another
        deployment (closing either closes the pool)."""
        scoped = copy.copy(self)
        scoped.deployment = deployment
        return scoped

    def __enter__(self) -> DagsterPlusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------

    def _endpoint(self, organization_scope: bool) -> str:
        return (
            f"{self.url}/graphql" if organization_scope else f"{self.url}/{self.deployment}/graphql"
        )

    def _scrub(self, text: str) -> str:
        secret = self._token.get_secret_value()
        return text.replace(secret, "**********") if secret else text

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after:
            try:
                return min(float(retry_after), self.max_retry_after_seconds)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)

    def execute(
        self,
        operation: str,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        organization_scope: bool = False,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """POST one GraphQL document and return its `data`, retrying what can be retried."""
        headers = {TOKEN_HEADER: self._token.get_secret_value(), "Content-Type": "application/json"}
        if organization_scope:
            headers[DEPLOYMENT_HEADER] = self.deployment
        body = {"query": query, "variables": variables or {}}
        last_problem = ""
        for attempt in range(1, self.max_attempts + 1):
            response = None
            try:
                self.requests_sent += 1
                response = bounded_request(
                    self._session,
                    "POST",
                    self._endpoint(organization_scope),
                    deadline=self.timeout,
                    max_bytes=self.max_answer_bytes,
                    json=body,
                    headers=headers,
                )
            except AnswerTooLarge:
                raise DagsterPlusError(
                    operation,
                    f"the answer is larger than {self.max_answer_bytes:,} bytes, more than any "
                    f"Dagster+ answer this tool reads; it was not read (is {self.url} Dagster+?)",
                ) from None
            except requests.ConnectionError as error:
                refused = _connection_refused(error)
                last_problem = "connection refused" if refused else "connection dropped"
                if not (idempotent or refused):
                    raise OutcomeUnknownError(
                        operation,
                        f"the {last_problem} before an answer came back, so it may "
                        "or may not have taken effect; read the current state before retrying",
                    ) from None
            except requests.Timeout:
                last_problem = f"no whole answer within {self.timeout:g}s"
                if not idempotent:
                    raise OutcomeUnknownError(
                        operation, f"{last_problem}; it may or may not have taken effect"
                    ) from None
            else:
                status = response.status_code
                if status in (401, 403):
                    raise NotAuthorizedError(
                        operation,
                        f"HTTP {status}: {self._server_message(response)}",
                        token_rejected=status == 401,
                    )
                if status not in RETRYABLE_STATUSES:
                    return self._data(operation, response)
                last_problem = f"HTTP {status}"
                if not idempotent and status not in NOT_PROCESSED_STATUSES:
                    raise OutcomeUnknownError(
                        operation, f"HTTP {status}; it may or may not have taken effect"
                    )
            if attempt < self.max_attempts:
                delay = self._delay(attempt, response)
                self.log.warning(
                    f"Dagster+ {operation}: {last_problem}; retry {attempt}/"
                    f"{self.max_attempts - 1} in {delay:.1f}s"
                )
                self._sleep(delay)
        raise DagsterPlusUnavailableError(
            operation,
            f"{last_problem} on all {self.max_attempts} attempts; Dagster+ may be "
            f"down or unreachable at {self.url}. Nothing after this call was done.",
        )

    def _server_message(self, response: requests.Response) -> str:
        try:
            message = response.json().get("error") or response.reason
        except (ValueError, AttributeError):
            message = response.text[:200] or response.reason
        return self._scrub(str(message))

    def _data(self, operation: str, response: requests.Response) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            raise DagsterPlusError(
                operation,
                f"HTTP {response.status_code} with a body that is not JSON "
                f"(is {self.url} a Dagster+ URL?)",
            ) from None
        if not isinstance(payload, dict):
            raise DagsterPlusError(operation, "the answer is not a GraphQL response")
        if payload.get("errors"):
            messages = "; ".join(str(e.get("message", e)) for e in payload["errors"])
            raise GraphQLRequestError(operation, self._scrub(messages))
        if response.status_code >= 400 or "data" not in payload:
            raise DagsterPlusError(
                operation, f"HTTP {response.status_code}: {self._server_message(response)}"
            )
        return payload["data"]

    def _result(self, operation: str, data: dict[str, Any], *expected: str) -> dict[str, Any]:
        """The union answer of `operation`, raising for its error members."""
        result = data[operation]
        typename = result.get("__typename")
        if typename in expected or (typename is None and not expected):
            return result
        message = self._scrub(str(result.get("message") or ""))
        if typename == "UnauthorizedError":
            raise NotAuthorizedError(operation, message or "UnauthorizedError")
        if typename == "InvalidLocationError":
            raise InvalidLocationError(
                operation, [self._scrub(e) for e in result.get("errors", [])]
            )
        if typename == "DeploymentNotFoundError":
            raise DeploymentNotFoundError(operation, message)
        if typename == "PythonError":
            raise DagsterPlusPythonError(operation, f"the server failed: {message}")
        raise DagsterPlusError(operation, f"unexpected answer {typename!r}")

    # -- deployments and agents ----------------------------------------------------------------

    def agents(self) -> list[Agent]:
        """Every agent Dagster+ lists for the deployment, as its user API gives them (no
        filter: `agents(heartbeatedSince:)` is the agent API's). Keep the recent ones with
        `Agent.heartbeated_within`."""
        data = self.execute("agents", doc.AGENTS)
        return [agent_from(raw) for raw in data["agents"]]

    def current_deployment(self) -> Deployment:
        return deployment_from(
            self.execute("currentDeployment", doc.CURRENT_DEPLOYMENT)["currentDeployment"]
        )

    def full_deployments(self) -> list[Deployment]:
        data = self.execute("fullDeployments", doc.FULL_DEPLOYMENTS, organization_scope=True)
        return [deployment_from(raw) for raw in data["fullDeployments"]]

    def deployments(self) -> list[Deployment]:
        """Every deployment of the organization, branch deployments included."""
        data = self.execute("deployments", doc.DEPLOYMENTS, organization_scope=True)
        return [deployment_from(raw) for raw in data["deployments"]]

    def deployment_by_name(self, name: str) -> Deployment:
        data = self.execute(
            "deploymentByName", doc.DEPLOYMENT_BY_NAME, {"name": name}, organization_scope=True
        )
        try:
            raw = self._result("deploymentByName", data, "DagsterCloudDeployment")
        except DeploymentNotFoundError:
            known = ", ".join(d.name for d in self.full_deployments()) or "none"
            raise DeploymentNotFoundError(
                "deploymentByName", f"no deployment named {name!r} (this organization has: {known})"
            ) from None
        return deployment_from(raw)

    def uses_branch_deployments(self) -> bool:
        """Whether the organization has any branch deployment (so its CI makes them)."""
        data = self.execute(
            "branchDeployments", doc.BRANCH_DEPLOYMENTS, {"limit": 1}, organization_scope=True
        )
        return bool(data["branchDeployments"]["nodes"])

    def serverless_status(self) -> str:
        return self.execute("serverless", doc.SERVERLESS_STATUS)["serverless"]["status"]

    def update_deployment_agent_type(
        self, agent_type: str, deployment_id: int | None = None
    ) -> Deployment:
        """Dagster+'s "Switch to Hybrid" (or back). Switching to the current type changes nothing."""
        data = self.execute(
            "updateDeploymentAgentType",
            doc.UPDATE_DEPLOYMENT_AGENT_TYPE,
            {"deploymentAgentType": agent_type, "deploymentId": deployment_id},
            organization_scope=deployment_id is not None,
        )
        return deployment_from(
            self._result("updateDeploymentAgentType", data, "DagsterCloudDeployment")
        )

    # -- agent tokens --------------------------------------------------------------------------

    def create_agent_token(self, description: str) -> AgentToken:
        """Create an agent token. Not idempotent: on an unknown outcome, look it up by
        description with `agent_tokens()` rather than creating another."""
        data = self.execute(
            "createAgentToken",
            doc.CREATE_AGENT_TOKEN,
            {"description": description},
            organization_scope=True,
            idempotent=False,
        )
        raw = self._result("createAgentToken", data, "DagsterCloudAgentToken")
        return _agent_token(raw, "createAgentToken")

    def revoke_agent_token(self, token_id: int) -> bool:
        """Revoke an agent token: True when revoked now or before, False when Dagster+ has no
        token of that id. Revoking twice changes nothing, so a lost answer is simply retried."""
        data = self.execute(
            "revokeAgentToken",
            doc.REVOKE_AGENT_TOKEN,
            {"tokenId": token_id},
            organization_scope=True,
        )
        result = data["revokeAgentToken"]
        if result.get("__typename") == "DagsterCloudTokenNotFoundError":
            return False
        self._result("revokeAgentToken", data, "DagsterCloudAgentToken")
        return True

    def agent_tokens(self) -> list[AgentToken]:
        data = self.execute("agentTokensOrError", doc.AGENT_TOKENS, organization_scope=True)
        raw = self._result("agentTokensOrError", data, "DagsterCloudAgentTokens")
        return [_agent_token(t, "agentTokensOrError") for t in raw["tokens"]]

    # -- code locations ------------------------------------------------------------------------

    def locations_as_document(self) -> dict[str, Any]:
        document = self.execute("locationsAsDocument", doc.LOCATIONS_AS_DOCUMENT)[
            "locationsAsDocument"
        ]["document"]
        return document or {"locations": []}

    def _locations_mutation(
        self, operation: str, query: str, document: dict[str, Any], success: str
    ) -> list[str]:
        # Not retried blindly: a deploy whose answer was lost has happened, and sending it again
        # would redeploy every location for nothing. Callers read the document and compare.
        data = self.execute(operation, query, {"document": document}, idempotent=False)
        result = self._result(operation, data, success)
        return [entry["locationName"] for entry in result["locations"]]

    def deploy_locations(self, document: dict[str, Any]) -> list[str]:
        return self._locations_mutation(
            "deployLocations", doc.DEPLOY_LOCATIONS, document, "DeployLocationsSuccess"
        )

    def reconcile_locations(self, document: dict[str, Any]) -> list[str]:
        return self._locations_mutation(
            "reconcileLocationsFromDocument",
            doc.RECONCILE_LOCATIONS,
            document,
            "ReconcileLocationsSuccess",
        )

    def add_or_update_location(self, location: dict[str, Any]) -> str:
        data = self.execute(
            "addOrUpdateLocationFromDocument", doc.ADD_OR_UPDATE_LOCATION, {"document": location}
        )
        return self._result("addOrUpdateLocationFromDocument", data, "WorkspaceEntry")[
            "locationName"
        ]

    def delete_location(self, name: str) -> None:
        data = self.execute("deleteLocation", doc.DELETE_LOCATION, {"locationName": name})
        self._result("deleteLocation", data, "DeleteLocationSuccess")

    def workspace(self) -> list[LocationEntry]:
        data = self.execute("workspaceOrError", doc.WORKSPACE)
        result = self._result("workspaceOrError", data, "Workspace")
        return [location_entry_from(raw) for raw in result["locationEntries"]]

    # -- settings and runs ---------------------------------------------------------------------

    def deployment_settings(self) -> dict[str, Any]:
        return (
            self.execute("deploymentSettings", doc.DEPLOYMENT_SETTINGS)["deploymentSettings"][
                "settings"
            ]
            or {}
        )

    def set_deployment_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        data = self.execute(
            "setDeploymentSettings",
            doc.SET_DEPLOYMENT_SETTINGS,
            {"deploymentSettings": {"settings": settings}},
        )
        return self._result("setDeploymentSettings", data, "DeploymentSettings")["settings"]

    def run_counts_by_status(self) -> dict[str, int]:
        """How many runs are in each status (statuses with none are left out), in one request."""
        data = self.execute("runsOrError", doc.run_counts_by_status())
        counts = {}
        for status in doc.RUN_STATUSES:
            result = data[status]
            if result.get("__typename") != "Runs":
                raise DagsterPlusPythonError("runsOrError", self._scrub(str(result.get("message"))))
            if result["count"]:
                counts[status] = result["count"]
        return counts

    def launch_run(
        self,
        location: str,
        job: str,
        run_config: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        repository: str = "__repository__",
    ) -> str:
        """Launch a run of `job` in `location` (Dagster+ queues it for an agent serving the
        location); its run id. Not retried: a second launch would be a second run."""
        data = self.execute(
            "launchRun",
            doc.LAUNCH_RUN,
            {
                "executionParams": {
                    "selector": {
                        "jobName": job,
                        "repositoryName": repository,
                        "repositoryLocationName": location,
                    },
                    "runConfigData": run_config or {},
                    "executionMetadata": {
                        "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]
                    },
                }
            },
            idempotent=False,
        )
        result = data["launchRun"]
        if result.get("__typename") == "PipelineNotFoundError":
            raise DagsterPlusError("launchRun", self._scrub(str(result.get("message"))))
        return self._result("launchRun", data, "LaunchRunSuccess")["run"]["runId"]

    def run(self, run_id: str) -> RunDetail | None:
        """One run (None: Dagster+ has no run with this id)."""
        data = self.execute("runOrError", doc.RUN, {"runId": run_id})
        if data["runOrError"].get("__typename") == "RunNotFoundError":
            return None
        r = self._result("runOrError", data, "Run")
        return RunDetail(
            r["runId"],
            r["status"],
            r["jobName"],
            r["creationTime"],
            r.get("startTime"),
            r.get("endTime"),
            {t["key"]: t["value"] for t in r.get("tags") or []},
        )

    def run_failure(self, run_id: str) -> tuple[str | None, str]:
        """Why a run failed, from its events: (the failed step, its error with the cause), or
        (None, the run's own failure message)."""
        cursor = None
        run_message = ""
        for _ in range(100):  # pages of the run's events; bounded
            data = self.execute(
                "logsForRun", doc.RUN_FAILURE_EVENTS, {"runId": run_id, "afterCursor": cursor}
            )
            page = self._result("logsForRun", data, "EventConnection")
            for event in page["events"]:
                if event["__typename"] == "ExecutionStepFailureEvent":
                    error = event.get("error") or {}
                    cause = (error.get("cause") or {}).get("message")
                    text = " ".join(part.strip() for part in (error.get("message"), cause) if part)
                    return event.get("stepKey"), self._scrub(text)
                if event["__typename"] == "RunFailureEvent":
                    error = event.get("error") or {}
                    run_message = self._scrub(str(error.get("message") or event["message"]))
            if not page["hasMore"]:
                break
            cursor = page["cursor"]
        return None, run_message

    def runs(
        self,
        limit: int = 100,
        cursor: str | None = None,
        statuses: list[str] | None = None,
        created_between: tuple[float, float] | None = None,
    ) -> list[Run]:
        """Runs, newest first; pass the last run id as `cursor` for the next page;
        `created_between` (epoch seconds, start and end) keeps the runs created then."""
        run_filter: dict[str, Any] = {}
        if statuses:
            run_filter["statuses"] = statuses
        if created_between is not None:
            run_filter["createdAfter"], run_filter["createdBefore"] = created_between
        return self._runs(run_filter or None, cursor, limit)

    def existing_run_ids(self, run_ids: list[str]) -> set[str]:
        """Which of these runs Dagster+ has, in one request."""
        if not run_ids:
            return set()
        return {r.run_id for r in self._runs({"runIds": list(run_ids)}, None, len(run_ids))}

    def _runs(self, run_filter: dict[str, Any] | None, cursor: str | None, limit: int) -> list[Run]:
        data = self.execute(
            "runsOrError", doc.RUNS, {"filter": run_filter, "cursor": cursor, "limit": limit}
        )
        result = self._result("runsOrError", data, "Runs")
        return [
            Run(r["runId"], r["status"], r["jobName"], r["creationTime"]) for r in result["results"]
        ]


def _agent_token(raw: dict[str, Any], operation: str) -> AgentToken:
    """A token as Dagster+ answered it, its value checked against the documented shape before
    anything can store or write it (it ends up in an env file a shell sources)."""
    from migration_pipeline.lib.names import agent_token_problem

    problem = agent_token_problem(raw.get("token"))
    if problem is not None:
        raise DagsterPlusError(
            operation,
            f"Dagster+ answered agent token {raw.get('id')!r} with a value that {problem}; "
            "it was not stored or written anywhere",
        )
    return AgentToken(
        id=raw["id"],
        description=raw.get("description"),
        revoked=raw.get("revoked", False),
        token=SecretStr(raw["token"]),
    )


def _connection_refused(error: requests.ConnectionError) -> bool:
    """True when the request never reached a server (so it cannot have taken effect)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)
