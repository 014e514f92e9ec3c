"""The Hybrid agent's token: created once per migration (found again by its description, never
a second one) and kept where the target keeps secrets, the moment it is created.

kubernetes/azure: a Secret manifest in a 0600 file; ecs: AWS Secrets Manager (boto3; the
endpoint follows AWS_ENDPOINT_URL, as moto_server uses it in the tests); docker/local: a 0600
env file. What comes back says where it is, never what it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import SecretStr

from migration_pipeline.lib.record import dataclass_record

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.plus.types import AgentToken


PRIVATE = 0o600


def agent_token_description(deployment: str) -> str:
    return f"migration_pipeline: Hybrid agent for {deployment}"


def find_agent_token(client: DagsterPlusClient, description: str) -> AgentToken | None:
    """The live agent token with this description, if there is one (reads only)."""
    found = [t for t in client.agent_tokens() if t.description == description and not t.revoked]
    return found[0] if found else None


def ensure_agent_token(client: DagsterPlusClient, description: str) -> tuple[AgentToken, bool]:
    """The live agent token with this description, created if there is none: (token, created).
    Never creates a second one, even when a creation's answer was lost."""
    from migration_pipeline.plus.errors import OutcomeUnknownError

    existing = find_agent_token(client, description)
    if existing is not None:
        return existing, False
    try:
        return client.create_agent_token(description), True
    except OutcomeUnknownError:
        found = find_agent_token(client, description)
        if found is not None:
            return found, True
        # Dagster+ has no such token: the lost request never took effect, so send it once more.
        return client.create_agent_token(description), True


@dataclass(frozen=True)
class RecordedToken:
    """What the create_agent_token job records of the agent token (never its value), for the
    install files to name."""

    token_id: int
    description: str
    store: str  # StoredToken.kind
    reference: str  # StoredToken.reference
    organization: str


def _token_before_records(metadata: Mapping[str, Any]) -> Any:
    # Before it had a record entry, the token's fields were the materialization's own entries.
    fields = ("token_id", "description", "store", "reference", "organization")
    return {name: metadata[name] for name in fields if name in metadata} or None


AGENT_TOKEN = dataclass_record(
    RecordedToken,
    "agent token record",
    "hybrid_agent_token",
    "create_agent_token",
    legacy=_token_before_records,
)


@dataclass(frozen=True)
class StoredToken:
    kind: str  # kubernetes_secret | aws_secrets_manager | env_file
    reference: str  # a file path, or a Secrets Manager ARN
    changed: bool  # False when the same value was already stored


def protect_agent_dir(agent_dir: Path) -> None:
    """Keep the secret files out of version control."""
    from migration_pipeline.lib.files import write_if_changed
    from migration_pipeline.targets.agent import SECRET_FILES

    write_if_changed(
        agent_dir / ".gitignore",
        "# Secret files: never commit them.\n" + "".join(f"{f}\n" for f in SECRET_FILES),
    )


def store_agent_token(
    store: str,
    token: SecretStr,
    agent_dir: Path,
    deployment: str,
    namespace: str | None = None,
    aws_region: str | None = None,
) -> StoredToken:
    from migration_pipeline.lib.files import write_if_changed
    from migration_pipeline.lib.names import agent_token_problem
    from migration_pipeline.targets.agent import (
        TOKEN_ENV_FILE,
        TOKEN_ENV_VAR,
        TOKEN_SECRET_MANIFEST,
        TOKEN_SECRET_NAME,
    )

    problem = agent_token_problem(token.get_secret_value())
    if problem is not None:
        raise ValueError(f"the agent token {problem}: it was not stored")
    agent_dir.mkdir(parents=True, exist_ok=True)
    protect_agent_dir(agent_dir)
    if store == "kubernetes_secret":
        from migration_pipeline.targets.kubernetes import token_secret_manifest

        path = agent_dir / TOKEN_SECRET_MANIFEST
        text = "# The Dagster+ agent token. Secret: do not commit.\n" + yaml.safe_dump(
            token_secret_manifest(namespace or "dagster-cloud", token.get_secret_value()),
            sort_keys=False,
        )
        return StoredToken(store, str(path), write_if_changed(path, text, PRIVATE))
    if store == "env_file":
        path = agent_dir / TOKEN_ENV_FILE
        text = f"{TOKEN_ENV_VAR}={token.get_secret_value()}\n"
        return StoredToken(store, str(path), write_if_changed(path, text, PRIVATE))
    if store == "aws_secrets_manager":
        return _store_in_secrets_manager(token, f"{TOKEN_SECRET_NAME}/{deployment}", aws_region)
    raise ValueError(f"unknown token store {store!r}")


def _store_in_secrets_manager(token: SecretStr, name: str, region: str | None) -> StoredToken:
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("secretsmanager", region_name=region)
    value = token.get_secret_value()
    try:
        current = client.get_secret_value(SecretId=name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        created = client.create_secret(
            Name=name,
            SecretString=value,
            Description="Dagster+ Hybrid agent token (created by migration_pipeline)",
        )
        return StoredToken("aws_secrets_manager", created["ARN"], True)
    if current["SecretString"] == value:
        return StoredToken("aws_secrets_manager", current["ARN"], False)
    updated = client.put_secret_value(SecretId=name, SecretString=value)
    return StoredToken("aws_secrets_manager", updated["ARN"], True)
