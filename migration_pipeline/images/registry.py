"""Registries: credentials (never in metadata or on a command line), the manifest check, and
Amazon ECR (the repository created when missing, the login from `get_authorization_token`)."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import requests
from pydantic import SecretStr

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
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


def credentials_for(host: str, docker_config: Path | None = None) -> Credentials | None:
    """REGISTRY_USERNAME/REGISTRY_PASSWORD from the environment, else the docker config file's
    entry for this host, else none (anonymous)."""
    username, password = os.environ.get("REGISTRY_USERNAME"), os.environ.get("REGISTRY_PASSWORD")
    if username and password:
        return Credentials(username, SecretStr(password))
    path = docker_config or Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    entry = auths.get(host) or auths.get(f"https://{host}") or {}
    if "auth" in entry:
        user, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
        return Credentials(user, SecretStr(secret))
    return None


def ecr_login(repository: str, region: str | None = None) -> Credentials:
    """Create the ECR repository when it is missing and return a login for it (boto3; the
    endpoint follows AWS_ENDPOINT_URL)."""
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
            if error.response["Error"]["Code"] != "RepositoryNotFoundException":
                raise
            client.create_repository(repositoryName=name)
        token = client.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    except (BotoCoreError, ClientError) as error:
        raise RegistryError(f"Amazon ECR {repository}: {error}") from None
    username, _, password = base64.b64decode(token).decode().partition(":")
    return Credentials(username, SecretStr(password))


def _manifest(method: str, repository: str, reference: str, credentials: Credentials | None,
              insecure: bool, timeout: float) -> requests.Response:
    """A HEAD or GET of a manifest, with basic auth or Docker's bearer-token flow (GHCR,
    Docker Hub, ACR, ...). Raises `RegistryError` when the registry cannot be reached."""
    host, _, name = repository.partition("/")
    url = f"{base_url(host, insecure)}/v2/{name}/manifests/{reference}"
    auth = (credentials.username, credentials.password.get_secret_value()) if credentials else None
    session = requests.Session()
    try:
        response = session.request(method, url, headers={"Accept": MANIFEST_TYPES}, auth=auth,
                                   timeout=timeout)
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code == 401 and "bearer" in challenge.lower():
            fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = fields.pop("realm", None)
            token = session.get(realm, params=fields, auth=auth, timeout=timeout) if realm else None
            if token is not None and token.ok:
                value = token.json().get("token") or token.json().get("access_token")
                response = session.request(method, url, timeout=timeout, headers={
                    "Accept": MANIFEST_TYPES, "Authorization": f"Bearer {value}"})
    except requests.RequestException as error:
        raise RegistryError(f"cannot reach the registry {host}: {type(error).__name__}") from None
    if response.status_code in (401, 403):
        raise RegistryError(f"the registry {host} refused the credentials (HTTP "
                            f"{response.status_code}): set REGISTRY_USERNAME/REGISTRY_PASSWORD or "
                            "log in with docker")
    return response


def manifest_digest(repository: str, tag: str, credentials: Credentials | None = None,
                    insecure: bool = False, timeout: float = 10.0) -> str | None:
    """The digest of `repository:tag` (a HEAD request), or None when the registry has no such
    manifest. Raises `RegistryError` when the registry cannot be asked."""
    response = _manifest("HEAD", repository, tag, credentials, insecure, timeout)
    if response.status_code == 404:
        return None
    if not response.ok:
        raise RegistryError(f"the registry {host_of(repository)} answered HTTP "
                            f"{response.status_code}")
    return response.headers.get("Docker-Content-Digest")


def image_size(repository: str, reference: str, credentials: Credentials | None = None,
               insecure: bool = False, timeout: float = 10.0) -> int | None:
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
