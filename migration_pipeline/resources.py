"""Resources: how the code location reaches Dagster+."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from migration_pipeline.plus.errors import (
    DagsterPlusError,
    DagsterPlusPythonError,
    DagsterPlusUnavailableError,
    OutcomeUnknownError,
)

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient

# Dagster+ calls already retry transient faults inside the client; an op retry covers an outage
# that outlasts them. Errors that a retry cannot fix (a rejected token, a missing permission, an
# invalid document) fail the step at once instead: see `DagsterPlusResource.session`.
DAGSTER_PLUS_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL)


class DagsterPlusResource(dg.ConfigurableResource):
    """A Dagster+ deployment, reached with a user API token.

    Set `api_token` with `dg.EnvVar("DAGSTER_CLOUD_API_TOKEN")`: the value is then read when a
    run starts, never stored in run config, and never logged.
    """

    url: str = Field(description="Dagster+ organization URL, e.g. https://acme.dagster.cloud")
    deployment: str = Field(
        default="prod",
        description="The deployment the token addresses for organization-wide queries; a "
        "migration run works on its partition's deployment.",
    )
    api_token: str = Field(description="A user API token (Organization Admin for the cutover).")
    timeout_seconds: float = Field(default=30.0, description="Per-request timeout.")
    max_attempts: int = Field(default=5, description="Attempts per call on transient failures.")
    backoff_seconds: float = Field(default=0.5, description="First retry delay; doubles, capped.")

    def client(
        self, log: Any | None = None, deployment: str | None = None, **bounds: Any
    ) -> "DagsterPlusClient":
        """A client for `deployment` (default: the configured one); `bounds` overrides the
        client's timeout, attempts or Retry-After cap (the sensor keeps its tick short)."""
        from migration_pipeline.plus.client import DagsterPlusClient

        options: dict[str, Any] = {
            "timeout": self.timeout_seconds,
            "max_attempts": self.max_attempts,
            "backoff_seconds": self.backoff_seconds,
            **bounds,
        }
        return DagsterPlusClient(
            self.url, deployment or self.deployment, self.api_token, log=log, **options
        )

    def deployment_for(self, context: Any) -> str:
        """The deployment a step works on: its run's partition (every migration job is
        partitioned by deployment), else the configured deployment."""
        from migration_pipeline.deployments import partition_of

        return partition_of(context) or self.deployment

    @contextmanager
    def session(self, context: Any) -> Iterator["DagsterPlusClient"]:
        """A client for the step's deployment that logs to the run. A Dagster+ error that
        retrying cannot fix fails the step without using up its RetryPolicy; a transient one
        (unavailable, a server error, a lost answer) is left to it: every op that changes
        Dagster+ reads the state first, so a retry never does a thing twice."""
        with self.client(log=context.log, deployment=self.deployment_for(context)) as client:
            try:
                yield client
            except (DagsterPlusUnavailableError, DagsterPlusPythonError, OutcomeUnknownError):
                raise
            except DagsterPlusError as error:
                raise dg.Failure(description=str(error), allow_retries=False) from None
