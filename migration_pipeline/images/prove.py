"""Proving each pushed image before the switch: start it and load its code location's
definitions from the location's own code source, as the agent's code server will
(`dagster api grpc` with the same code source, working directory and executable), with
`dagster definitions validate`. A broken import shows here, while Serverless still serves,
instead of as a failed location after the switch.

The image is started by digest, so what was proven is exactly what the cutover deploys; docker
and podman start it with no network (`--network none`): loading definitions must not need one.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from migration_pipeline.images.publish import PublishedImage
from migration_pipeline.lib.record import Record


def _proven_from(raw: Any, kind: Record[dict[str, str]]) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise kind.refused("recorded earlier is not a mapping of location to image reference")
    return dict(raw)


# The check on code_location_images that starts each image and loads its definitions.
PROOF_CHECK = "images_load_their_definitions"

# location -> the image reference (by digest) the proof check started and saw load, recorded
# in the check's result; the cutover's preflight requires it.
PROVEN_IMAGES: Record[dict[str, str]] = Record(
    "proven images",
    "code_location_images",
    "prepare_hybrid_agent (its images_load_their_definitions check)",
    1,
    dict,
    _proven_from,
    entry="proven",
)

# code_source key -> `dagster definitions validate` option (the options `dagster api grpc` takes)
CODE_SOURCE_OPTIONS = {
    "python_file": "--python-file",
    "module_name": "--module-name",
    "package_name": "--package-name",
    "autoload_defs_module_name": "--autoload-defs-module-name",
}
OUTPUT_LINES_KEPT = 12

# (image reference, command, environment) -> (exit code, output)
ImageRunner = Callable[[str, list[str], dict[str, str]], tuple[int, str]]


@dataclass(frozen=True)
class Proof:
    location: str
    reference: str  # repository@digest: the image that was started
    passed: bool
    error: str  # the last lines the load printed, when it failed


def pinned_reference(image: PublishedImage) -> str:
    return f"{image.image.rsplit(':', 1)[0]}@{image.digest}"


def validate_command(location: dict[str, Any]) -> list[str]:
    """The command that loads one location's definitions the way its code server will. Every
    value is one argument of its own: none is ever read by a shell."""
    executable = location.get("executable_path")
    command = [executable, "-m", "dagster"] if executable else ["dagster"]
    command += ["definitions", "validate"]
    source = location.get("code_source") or {}
    for key, option in CODE_SOURCE_OPTIONS.items():
        if source.get(key):
            command += [option, str(source[key])]
    if location.get("working_directory"):
        command += ["--working-directory", str(location["working_directory"])]
    if location.get("attribute"):
        command += ["--attribute", str(location["attribute"])]
    return command


def _last_lines(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return "\n".join(lines[-OUTPUT_LINES_KEPT:])


def prove_images(
    images: dict[str, PublishedImage],
    locations: dict[str, dict[str, Any]],
    run: ImageRunner,
    parallel: int = 1,
) -> dict[str, Proof]:
    """Start each location's image and load its definitions; one Proof per location."""

    def prove(name: str) -> Proof:
        reference = pinned_reference(images[name])
        if name not in locations:
            return Proof(name, reference, False, f"{name} is not in dagster_cloud.yaml")
        code, output = run(
            reference, validate_command(locations[name]), {"DAGSTER_LOCATION_NAME": name}
        )
        return Proof(name, reference, code == 0, "" if code == 0 else _last_lines(output))

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return dict(zip(sorted(images), pool.map(prove, sorted(images)), strict=True))


def unproven_images(
    images: dict[str, PublishedImage], proven: dict[str, str] | None
) -> dict[str, str]:
    """Locations whose image being deployed was not proven to load (location -> why): what the
    cutover's preflight asks. `proven`: location -> reference, from the last passed proof."""
    if proven is None:
        return {
            name: "no passed images_load_their_definitions check is recorded (run the prepare job)"
            for name in sorted(images)
        }
    problems = {}
    for name, image in sorted(images.items()):
        reference = pinned_reference(image)
        if proven.get(name) != reference:
            problems[name] = (
                f"{reference} was not proven to load (the last passed proof started "
                f"{proven.get(name) or 'no image of it'})"
            )
    return problems
