"""Dagster+ GraphQL client: documents, typed results, errors, retries. No Dagster op code."""

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

__all__ = [
    "DagsterPlusClient",
    "DagsterPlusError",
    "DagsterPlusPythonError",
    "DagsterPlusUnavailableError",
    "DeploymentNotFoundError",
    "GraphQLRequestError",
    "InvalidLocationError",
    "NotAuthorizedError",
    "OutcomeUnknownError",
]


def __getattr__(name: str):
    # The client pulls in `requests`; load it on first use so that importing the code location
    # (which only needs the error classes) stays light.
    if name == "DagsterPlusClient":
        from migration_pipeline.plus.client import DagsterPlusClient

        return DagsterPlusClient
    raise AttributeError(name)
