"""Dagster+ GraphQL client: documents, typed results, errors, retries. No Dagster op code."""

from migration_pipeline.plus.client import DagsterPlusClient
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
