"""Publishing one image per code location: build from its Dockerfile, push to its
`build.registry`, and skip both when an image of the same content is there already.

The tag is `<content hash>-<location>`: the hash covers the Dockerfile and every file of the
build context (less `.dockerignore`d ones), so an unchanged location finds its image by tag and
reuses its digest; a changed one gets a new tag.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migration_pipeline.images.builders import Builder, BuildError
from migration_pipeline.images.registry import (
    Credentials,
    RegistryError,
    host_of,
    image_size,
    manifest_digest,
    resolve_credentials,
)
from migration_pipeline.lib.plain import as_plain, from_plain
from migration_pipeline.lib.record import Record


@dataclass(frozen=True)
class ImageJob:
    location: str
    context: Path
    dockerfile: Path
    repository: str
    target: str | None = None  # a build stage (the old dagster-cloud-cicd-action's `target`)


@dataclass(frozen=True)
class PublishedImage:
    location: str
    image: str  # repository:tag
    digest: str
    tag: str
    built: bool  # False: an image of the same content was already in the registry
    seconds: float
    size_bytes: int | None = None


def _images_from(raw: Any, kind: Record[dict[str, PublishedImage]]) -> dict[str, PublishedImage]:
    if not isinstance(raw, dict):
        raise kind.refused("recorded earlier is not a mapping of location to image")
    return {
        str(name): from_plain(PublishedImage, image, f"image of {name}", kind.writer)
        for name, image in raw.items()
    }


IMAGES: Record[dict[str, PublishedImage]] = Record(
    "published images",
    "code_location_images",
    "prepare_hybrid_agent",
    1,
    lambda images: {name: as_plain(image) for name, image in sorted(images.items())},
    _images_from,
    asset_value=True,
)


def _document_sha256(document: Any) -> str:
    import json

    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _deploy_document_from(raw: Any, kind: Record[dict[str, Any]]) -> dict[str, Any]:
    """The document, once its hash says it is the one recorded (one edited since, in the event
    log, is not what the plan and the images were checked against)."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("document"), dict)
        or _document_sha256(raw["document"]) != raw.get("sha256")
    ):
        raise kind.refused("recorded with the images does not match its recorded sha256")
    return raw["document"]


def _deploy_document_before_records(metadata: Mapping[str, Any]) -> Any:
    # Before it had a record entry, the document and its hash were two entries of their own.
    document = metadata.get("deploy_document")
    if document is None:
        return None
    return {"document": document, "sha256": metadata.get("deploy_document_sha256")}


# The exact locations document the deploy sends after the switch (the applied project's, with
# these images), recorded with its hash when the images are published: never a re-read of
# the disk (an edit or a `git checkout` meanwhile, or a finish on another host, deploys the same).
DEPLOY_DOCUMENT: Record[dict[str, Any]] = Record(
    "deploy document",
    "code_location_images",
    "prepare_hybrid_agent",
    1,
    lambda document: {"document": document, "sha256": _document_sha256(document)},
    _deploy_document_from,
    entry="deploy",
    legacy=_deploy_document_before_records,
)


def _ignored(relative: str, patterns: list[str]) -> bool:
    parts = relative.split("/")
    return any(
        fnmatch.fnmatch(relative, p) or any(fnmatch.fnmatch(part, p) for part in parts)
        for p in patterns
    )


def content_hash(context: Path, dockerfile: Path, target: str | None = None) -> str:
    """A hash of the Dockerfile, its build stage and the build context, as the builder would
    see them."""
    ignore_file = context / ".dockerignore"
    ignored = _build_file(ignore_file) if ignore_file.exists() else ""
    recipe = _build_file(dockerfile)
    patterns = [
        line.strip().rstrip("/")
        for line in ignored.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    digest = hashlib.sha256(recipe.encode())
    if target:
        digest.update(b"target\0" + target.encode() + b"\0")
    for relative, path in _context_entries(context):
        if _ignored(relative, patterns):
            continue
        if path.is_symlink():  # sent as a link, as the builder sends it: never followed
            digest.update(relative.encode() + b"\0link\0" + os.readlink(path).encode() + b"\0")
        else:
            digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _build_file(path: Path) -> str:
    """A Dockerfile or .dockerignore, read bounded (a FIFO or a device is refused, never waited
    on); `BuildError` naming it otherwise."""
    from migration_pipeline.lib.files import NotReadable, read_text

    try:
        return read_text(path)
    except NotReadable as error:
        raise BuildError(f"{path}: {error}") from None


def _context_entries(context: Path) -> list[tuple[str, Path]]:
    """The build context's regular files and symbolic links, sorted by relative path: walked
    with a stack (a tree of any depth) and never through a link (a link to a directory, or to
    a file outside the context, is one entry, its target's name)."""
    found: list[tuple[str, Path]] = []
    stack = [context]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(path)
                elif entry.is_symlink() or entry.is_file(follow_symlinks=False):
                    found.append((path.relative_to(context).as_posix(), path))
    return sorted(found)


def image_tag(content: str, location: str) -> str:
    return f"{content}-{re.sub(r'[^A-Za-z0-9_.-]', '-', location)}"[:128]


def publish_one(
    job: ImageJob,
    builder: Builder,
    credentials: Credentials | None,
    insecure: bool = False,
    content: str | None = None,
) -> PublishedImage:
    """Build and push one location's image, unless its content is in the registry already.
    `content` is the build context's hash, when the caller has it."""
    start = time.monotonic()
    tag = image_tag(content or content_hash(job.context, job.dockerfile, job.target), job.location)
    image = f"{job.repository}:{tag}"
    existing = manifest_digest(job.repository, tag, credentials, insecure)
    built = existing is None
    if existing is None:
        builder.build(job.context, job.dockerfile, image, job.target)
        digest = builder.push(image)
    else:
        digest = existing
    size = image_size(job.repository, digest, credentials, insecure)
    return PublishedImage(
        job.location, image, digest, tag, built, round(time.monotonic() - start, 3), size
    )


def publish_all(
    jobs: list[ImageJob],
    builder: Builder,
    max_parallel: int = 2,
    insecure: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, PublishedImage], dict[str, str]]:
    """(published images, errors) by location: one location's failure leaves the others be."""
    credentials: dict[str, Credentials | None] = {}
    errors: dict[str, str] = {}
    for repository in sorted({j.repository for j in jobs}):
        host = host_of(repository)
        try:
            # Every repository (an ECR one is created when missing), one login per host.
            found = resolve_credentials(repository, create_ecr_repository=True)
            if host not in credentials and found is not None:
                builder.login(host, found)
            credentials.setdefault(host, found)
        except (RegistryError, BuildError) as error:
            for job in jobs:
                if job.repository == repository:
                    errors[job.location] = str(error)

    # Locations that share a build directory share its hash: read the context once.
    contents: dict[tuple[Path, Path, str | None], str] = {}

    def one(job: ImageJob) -> tuple[str, PublishedImage | str]:
        try:
            key = (job.context, job.dockerfile, job.target)
            if key not in contents:
                contents[key] = content_hash(*key)
            published = publish_one(
                job, builder, credentials.get(host_of(job.repository)), insecure, contents[key]
            )
        except (BuildError, RegistryError, OSError) as error:
            return job.location, str(error)
        log(
            f"{job.location}: {'built and pushed' if published.built else 'unchanged, reused'} "
            f"{published.image} ({published.digest[:19]}, {published.seconds:.1f}s)"
        )
        return job.location, published

    todo = [j for j in jobs if j.location not in errors]
    images: dict[str, PublishedImage] = {}
    with ThreadPoolExecutor(max_workers=max(1, max_parallel)) as pool:
        for location, outcome in pool.map(one, todo):
            if isinstance(outcome, str):
                errors[location] = outcome
            else:
                images[location] = outcome
    return images, errors


def missing_images(images: dict[str, PublishedImage], insecure: bool = False) -> dict[str, str]:
    """Locations whose image the registry does not have (or cannot be asked about): what the
    blocking image check and the cutover preflight both ask."""
    missing = {}
    for name, image in images.items():
        repository = image.image.rsplit(":", 1)[0]
        try:
            digest = manifest_digest(
                repository, image.tag, resolve_credentials(repository), insecure
            )
        except RegistryError as error:
            missing[name] = str(error)
            continue
        if digest is None:
            missing[name] = f"{image.image} is not in the registry"
    return missing
