"""What a name or reference may look like where it goes: into a Dagster+ location, a Kubernetes
object, an AWS call, an image reference, a Docker network. Checked where a value comes in (the
settings file, dagster_cloud.yaml, the inventory), whole (`fullmatch`, so no trailing newline
slips through), so that nothing later has to trust it.

Each `*_problem` function returns None for a good value, else what is wrong, for a message
such as `file:line: key: <what is wrong>`.
"""

from __future__ import annotations

import re

# Dagster+ documents no grammar for code location names. What a name must survive: a Docker
# container name and an image tag (`[A-Za-z0-9_.-]`, 128 characters), a Kubernetes label after
# the agent's hashing, a GitHub or GitLab CI value. Letters, digits, `_`, `.` and `-`, 63 at
# most, not starting with `.` or `-`.
LOCATION_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
# RFC 1123 label (namespaces) and subdomain (secrets, service accounts), as Kubernetes checks.
K8S_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
K8S_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
AWS_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}")
# Docker's own rule for network and container names.
DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
# Dagster+ deployment names: lower-case letters, digits and hyphens (a branch deployment's is
# 40 hex digits); organizations the same.
DEPLOYMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
ORGANIZATION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ENV_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The image reference grammar of the OCI distribution spec (distribution/reference).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
IMAGE_REFERENCE = re.compile(rf"{_NAME}(?::{_TAG})?(?:@{_DIGEST})?")
# A registry setting: where images go, `host[:port]/path`, without a tag, lower case (what
# Docker's and buildah's reference parsers take everywhere).
_LOWER_DOMAIN_COMPONENT = r"(?:[a-z0-9]|[a-z0-9][a-z0-9-]*[a-z0-9])"
IMAGE_REPOSITORY = re.compile(
    rf"(?:{_LOWER_DOMAIN_COMPONENT}(?:\.{_LOWER_DOMAIN_COMPONENT})*(?::[0-9]+)?)"
    rf"(?:/{_PATH_COMPONENT})*"
)
AZURE_REGISTRY_HOST = re.compile(r"[a-z0-9]{5,50}\.azurecr\.io")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# An absolute path a Dockerfile instruction can hold as it is (WORKDIR): no space, quote,
# `$` (Docker would expand it) or backslash.
IMAGE_PATH = re.compile(r"/[A-Za-z0-9_./@+-]*")
# A URL as it goes into a config file: a scheme, a host, no space, quote or shell character.
URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/%-]*)?")


def _named(value: object, grammar: re.Pattern[str], what: str) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return f"is empty: {what}"
    if grammar.fullmatch(value) is None:
        return f"{value!r} is not {what}"
    return None


def location_name_problem(value: object) -> str | None:
    return _named(
        value,
        LOCATION_NAME,
        "a code location name this migration can carry (letters, digits, `_`, `.` and `-`, "
        "63 at most, not starting with `.` or `-`)",
    )


def k8s_label_problem(value: object) -> str | None:
    return _named(
        value,
        K8S_LABEL,
        "a Kubernetes name (RFC 1123 label: lower-case letters, digits and `-`, 63 at most)",
    )


def k8s_subdomain_problem(value: object) -> str | None:
    problem = _named(
        value,
        K8S_SUBDOMAIN,
        "a Kubernetes name (RFC 1123 subdomain: lower-case letters, digits, `-` and `.`)",
    )
    if problem is None and len(str(value)) > 253:
        return "is longer than the 253 characters Kubernetes allows"
    return problem


def aws_region_problem(value: object) -> str | None:
    return _named(value, AWS_REGION, "an AWS region (such as us-east-1)")


def docker_name_problem(value: object) -> str | None:
    return _named(
        value,
        DOCKER_NAME,
        "a Docker network name (letters, digits, `_`, `.` and `-`, starting with a letter or "
        "digit)",
    )


def deployment_name_problem(value: object) -> str | None:
    return _named(value, DEPLOYMENT_NAME, "a Dagster+ deployment name")


def organization_problem(value: object) -> str | None:
    return _named(
        value, ORGANIZATION, "a Dagster+ organization name (lower-case letters, digits, `-`)"
    )


def image_reference_problem(value: object) -> str | None:
    problem = _named(value, IMAGE_REFERENCE, "an image reference (host/path:tag or @digest)")
    if problem is None and len(str(value)) > 255:
        return "is longer than the 255 characters an image name may have"
    return problem


def image_repository_problem(value: object) -> str | None:
    problem = _named(
        value,
        IMAGE_REPOSITORY,
        "a registry reference (lower-case host[:port]/path, no scheme, no tag)",
    )
    if problem is None and len(str(value)) > 200:
        return "is longer than the 200 characters left for a repository name"
    return problem


def azure_registry_problem(value: object) -> str | None:
    problem = image_repository_problem(value)
    if problem is not None:
        return problem
    host = str(value).split("/", 1)[0]
    if AZURE_REGISTRY_HOST.fullmatch(host) is None:
        return f"{value!r} is not an Azure Container Registry (<name>.azurecr.io[/path])"
    return None


def env_var_name_problem(value: object) -> str | None:
    return _named(value, ENV_VAR_NAME, "an environment variable name (letters, digits, `_`)")


def env_var_problem(value: object) -> str | None:
    """`NAME` or `NAME=value` (the value may be anything but a control character)."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    name, _, rest = value.partition("=")
    if ENV_VAR_NAME.fullmatch(name) is None:
        return f"{value!r} is not NAME or NAME=value (NAME: letters, digits and `_`)"
    if CONTROL.search(rest):
        return f"the value of {name} holds a control character (a newline, a tab...)"
    return None


def image_path_problem(value: object) -> str | None:
    return _named(
        value, IMAGE_PATH, "an absolute path for the image (letters, digits and `_./@+-`)"
    )


def url_problem(value: object, what: str = "a URL") -> str | None:
    return _named(value, URL, f"{what} (http(s)://host[:port][/path])")


def plain_text_problem(value: object, what: str = "text") -> str | None:
    """One line of text: no newline or other control character."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if CONTROL.search(value):
        return f"{what} may not hold a control character (a newline, a tab...)"
    return None


PLACEHOLDER = re.compile(
    r"<[^<>]*>|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|\{\{.*?\}\}|TEMPLATE_|CHANGE[_-]?ME"
)


def placeholder_reason(value: object) -> str | None:
    """Why a value reads as a placeholder a template left (empty, `<account-id>`, `${VAR}`,
    `{{ ... }}`, `TEMPLATE_...`), or None for a real value. A field the plan overwrites is
    replaced when it holds one, not refused."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "is empty"
    if not isinstance(value, str):
        return None
    match = PLACEHOLDER.search(value)
    return f"holds the placeholder {match.group(0)!r}" if match else None


# An agent token as Dagster+ issues it and the agent reads it
# (dagster_cloud.auth.constants.decode_agent_token: `agent:<organization>:<uuid>`).
AGENT_TOKEN = re.compile(
    r"agent:[a-z0-9][a-z0-9-]{0,62}:"
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)


def agent_token_problem(value: object) -> str | None:
    """Why a value from Dagster+ is not an agent token of the documented shape. The message
    never holds the value: it is a secret, and what it holds may be anything."""
    if isinstance(value, str) and AGENT_TOKEN.fullmatch(value):
        return None
    return (
        "is not an agent token of the shape Dagster+ issues and the agent reads "
        "(agent:<organization>:<uuid>)"
    )


# What a CI runner evaluates in a value before any shell sees it: GitHub's `${{ ... }}`,
# GitLab's `$VAR`/`${VAR}` expansion in variables, and a backtick or `$(` where a shell line
# holds it.
CI_SYNTAX = re.compile(r"\$|\{\{|\}\}|`")


def ci_text_problem(value: object, what: str = "text") -> str | None:
    """`plain_text_problem`, and no `$`, `{{`, `}}` or backtick: a value that goes into a
    generated GitHub workflow or GitLab job never carries the runner's expression syntax."""
    problem = plain_text_problem(value, what)
    if problem is None and CI_SYNTAX.search(str(value)):
        return (
            f"{what} may not hold `$`, `{{{{`, `}}}}` or a backtick: it is written into the "
            "generated CI, where GitHub or GitLab would evaluate it"
        )
    return problem
