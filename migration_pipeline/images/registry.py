"""Registries: credentials (never in metadata or on a command line), the manifest check, and
Amazon ECR (the repository created when missing, the login from `get_authorization_token`)."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    import requests

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
# The OCI distribution spec's own limit for a manifest a registry must accept (4 MB).
MAX_MANIFEST_BYTES = 4_000_000
ECR_HOST = re.compile(r"^(\d+)\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com$")


class RegistryError(Exception):
    """A registry refused or could not be reached; the message never holds a credential."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: SecretStr


def host_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def is_local(host: str) -> bool:
    return host.split(":")[0] in ("localhost", "127.0.0.1", "::1")


def base_url(host: str, insecure: bool = False) -> str:
    return f"{'http' if insecure or is_local(host) else 'https'}://{host}"


def docker_config_path() -> Path:
    """Docker's config file: $DOCKER_CONFIG/config.json, else ~/.docker/config.json (read when
    a credential is needed, never at import)."""
    directory = os.environ.get("DOCKER_CONFIG")
    return Path(directory or Path.home() / ".docker") / "config.json"


def resolve_credentials(
    repository: str, docker_config: Path | None = None, create_ecr_repository: bool = False
) -> Credentials | None:
    """The one way to the credentials for a repository, for the publish, the image check and
    the cutover preflight alike:

    - Amazon ECR: a login from `get_authorization_token` (boto3; the repository is created when
      missing only if `create_ecr_repository`);
    - REGISTRY_USERNAME/REGISTRY_PASSWORD from the environment;
    - the docker config: the host's `credHelpers` entry, else `auths` (inline `auth`), else the
      `credsStore`, as `docker login` keeps them;
    - else none: anonymous.
    """
    host = host_of(repository)
    if ECR_HOST.match(host):
        return ecr_login(repository, create=create_ecr_repository)
    username, password = os.environ.get("REGISTRY_USERNAME"), os.environ.get("REGISTRY_PASSWORD")
    if username and password:
        return Credentials(username, SecretStr(password))
    try:
        config = json.loads((docker_config or docker_config_path()).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    helper = (config.get("credHelpers") or {}).get(host)
    auths = config.get("auths") or {}
    entry = auths.get(host) or auths.get(f"https://{host}") or {}
    if helper is None and "auth" in entry:
        user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
        return Credentials(user, SecretStr(secret))
    helper = helper or config.get("credsStore")
    return _from_helper(helper, host) if helper else None


def _from_helper(helper: str, host: str) -> Credentials | None:
    """Ask `docker-credential-<helper>` for the host's login, as the docker CLI does."""
    import shutil
    import subprocess

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        raise RegistryError(f"the docker config names an odd credential helper {helper!r}")
    program = shutil.which(f"docker-credential-{helper}")
    if program is None:
        raise RegistryError(
            f"the docker config keeps {host}'s login in "
            f"docker-credential-{helper}, which is not installed"
        )
    answer = subprocess.run(
        [program, "get"], input=host, capture_output=True, text=True, timeout=30
    )
    if answer.returncode != 0:
        return None  # the helper has no login for this host: anonymous
    try:
        found = json.loads(answer.stdout)
        return Credentials(found["Username"], SecretStr(found["Secret"]))
    except (ValueError, KeyError, TypeError):
        raise RegistryError(
            f"docker-credential-{helper} gave an answer that is not a login"
        ) from None


def ecr_login(repository: str, region: str | None = None, create: bool = True) -> Credentials:
    """A login for an ECR repository (boto3; the endpoint follows AWS_ENDPOINT_URL), creating
    the repository first when it is missing and `create`."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    host, _, name = repository.partition("/")
    match = ECR_HOST.match(host)
    if not match:
        raise RegistryError(f"{repository} is not an Amazon ECR repository")
    client = boto3.client("ecr", region_name=region or match.group(2))
    try:
        try:
            client.describe_repositories(repositoryNames=[name])
        except ClientError as error:
            if error.response["Error"]["Code"] != "RepositoryNotFoundException" or not create:
                raise
            client.create_repository(repositoryName=name)
        token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    except (BotoCoreError, ClientError) as error:
        raise RegistryError(f"Amazon ECR {repository}: {error}") from None
    username, _, password = base64.b64decode(token).decode().partition(":")
    return Credentials(username, SecretStr(password))


def _manifest(
    method: str,
    repository: str,
    reference: str,
    credentials: Credentials | None,
    insecure: bool,
    timeout: float,
) -> requests.Response:
    """A HEAD or GET of a manifest, with basic auth or Docker's bearer-token flow (GHCR,
    Docker Hub, ACR, ...). Raises `RegistryError` when the registry cannot be reached."""
    import requests  # loaded on first use: importing the code location stays light

    from migration_pipeline.lib.http import bounded_request, bounded_session

    host, _, name = repository.partition("/")
    url = f"{base_url(host, insecure)}/v2/{name}/manifests/{reference}"
    auth = (credentials.username, credentials.password.get_secret_value()) if credentials else None
    session = bounded_session()

    def read(method: str, url: str, **kwargs) -> requests.Response:
        # A manifest or a token is a few kB: a deadline for the whole answer and a bound.
        return bounded_request(
            session, method, url, deadline=timeout, max_bytes=MAX_MANIFEST_BYTES, **kwargs
        )

    try:
        response = read(method, url, headers={"Accept": MANIFEST_TYPES}, auth=auth)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and "bearer" in challenge.lower():
            fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = fields.pop("realm", None)
            token = read("GET", realm, params=fields, auth=auth) if realm else None
            if token is not None and token.ok:
                value = token.json().get("token") or token.json().get("access_token")
                response = read(
                    method,
                    url,
                    headers={"Accept": MANIFEST_TYPES, "Authorization": f"Bearer {value}"},
                )
    except (requests.RequestException, ValueError, AttributeError) as error:
        raise RegistryError(f"cannot reach the registry {host}: {type(error).__name__}") from None
    finally:
        session.close()
    if response.status_code in (401, 403):
        raise RegistryError(
            f"the registry {host} refused the credentials (HTTP "
            f"{response.status_code}): set REGISTRY_USERNAME/REGISTRY_PASSWORD or "
            "log in with docker"
        )
    return response


def manifest_digest(
    repository: str,
    tag: str,
    credentials: Credentials | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
) -> str | None:
    """The digest of `repository:tag` (a HEAD request), or None when the registry has no such
    manifest. Raises `RegistryError` when the registry cannot be asked."""
    response = _manifest("HEAD", repository, tag, credentials, insecure, timeout)
    if response.status_code == 404:
        return None
    if not response.ok:
        raise RegistryError(
            f"the registry {host_of(repository)} answered HTTP {response.status_code}"
        )
    return response.headers.get("Docker-Content-Digest")


def image_size(
    repository: str,
    reference: str,
    credentials: Credentials | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
) -> int | None:
    """Bytes of an image in the registry: its config and layers, from its manifest (None when
    it cannot be read: the size is informative only)."""
    try:
        response = _manifest("GET", repository, reference, credentials, insecure, timeout)
        manifest = response.json() if response.ok else {}
    except (RegistryError, ValueError):
        return None
    parts = [manifest.get("config") or {}, *(manifest.get("layers") or [])]
    sizes = [part.get("size") for part in parts if isinstance(part.get("size"), int)]
    return sum(sizes) if sizes else None
