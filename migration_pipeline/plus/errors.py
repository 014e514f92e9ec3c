"""Errors from Dagster+ that a person can act on. None of them ever holds a token value."""

from __future__ import annotations

# The role each operation needs, for "not authorized" messages (Dagster+ RBAC).
PERMISSION_NEEDED = {
    "updateDeploymentAgentType": "Organization Admin",
    "createAgentToken": "Organization Admin",
    "revokeAgentToken": "Organization Admin",
    "agentTokensOrError": "Organization Admin",
    "setDeploymentSettings": "Admin on the deployment",
    "deployLocations": "Editor on the deployment",
    "addOrUpdateLocationFromDocument": "Editor on the deployment",
    "reconcileLocationsFromDocument": "Editor on the deployment",
    "deleteLocation": "Editor on the deployment",
}
DEFAULT_PERMISSION = "Viewer on the deployment"


class DagsterPlusError(Exception):
    """Base class: something Dagster+ refused or could not do."""

    def __init__(self, operation: str, message: str):
        self.operation = operation
        super().__init__(f"Dagster+ {operation}: {message}")


class NotAuthorizedError(DagsterPlusError):
    """HTTP 401/403 or an `UnauthorizedError` answer: never retried."""

    def __init__(self, operation: str, detail: str, *, token_rejected: bool = False):
        self.permission = PERMISSION_NEEDED.get(operation, DEFAULT_PERMISSION)
        if token_rejected:
            advice = (
                "the API token was rejected (unknown, revoked or of another organization); "
                "set DAGSTER_CLOUD_API_TOKEN to a current user token"
            )
        else:
            advice = (
                f"this needs {self.permission}; use the API token of a user with that "
                "role (Organization settings > Users)"
            )
        super().__init__(operation, f"not authorized: {advice}. Dagster+ said: {detail}")


class DeploymentNotFoundError(DagsterPlusError):
    pass


class InvalidLocationError(DagsterPlusError):
    def __init__(self, operation: str, errors: list[str]):
        self.errors = list(errors)
        super().__init__(
            operation, "the locations document was rejected:\n  - " + "\n  - ".join(self.errors)
        )


class DagsterPlusPythonError(DagsterPlusError):
    """A `PythonError` answer: the server failed while doing the operation."""


class GraphQLRequestError(DagsterPlusError):
    """The server answered with GraphQL `errors` (a malformed or unsupported document)."""


class DagsterPlusUnavailableError(DagsterPlusError):
    """Transient failures (5xx, 429, dropped connections) outlasted every retry."""


class OutcomeUnknownError(DagsterPlusError):
    """A call that must not be repeated blindly lost its answer: it may or may not have taken
    effect. Read the current state before trying again."""
