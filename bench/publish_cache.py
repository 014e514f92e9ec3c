"""What the content-hash cache and parallel builds buy: a real registry (docker-registry on
loopback) and a real builder (buildah), four locations.

    .venv/bin/python bench/publish_cache.py

Prints the first-build time, the unchanged re-run time and their ratio, then serial versus
parallel (2 at a time) for 4 changed locations and their ratio.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from migration_pipeline.images.builders import choose_builder
from migration_pipeline.images.publish import ImageJob, publish_all

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the demo's and the tests' helpers
from support.servers import docker_registry  # noqa: E402  (the tests' real registry)

LOCATIONS = 4
PAYLOAD_BYTES = 4_000_000  # a few MB of code and data per location


def jobs(root: Path, registry: str, salt: str) -> list[ImageJob]:
    out = []
    for i in range(LOCATIONS):
        directory = root / f"loc_{i}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
        (directory / "code.py").write_text(f"SALT = {salt!r}\n")
        (directory / "data.bin").write_bytes(
            (f"{salt}-{i}".encode() * PAYLOAD_BYTES)[:PAYLOAD_BYTES]
        )
        out.append(
            ImageJob(f"loc_{i}", directory, directory / "Dockerfile", f"{registry}/bench/loc_{i}")
        )
    return out


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        with docker_registry(root / "registry") as registry:
            builder = choose_builder("buildah", storage=root / "containers")
            first_jobs = jobs(root / "a", registry, "first")
            first = timed(lambda: publish_all(first_jobs, builder, 2, log=lambda m: None))
            unchanged = timed(lambda: publish_all(first_jobs, builder, 2, log=lambda m: None))
            print(
                f"first build of {LOCATIONS} locations: {first:.2f}s; unchanged re-run: "
                f"{unchanged:.2f}s; ratio {first / unchanged:.1f}x"
            )
            serial = timed(
                lambda: publish_all(
                    jobs(root / "b", registry, "serial"), builder, 1, log=lambda m: None
                )
            )
            parallel = timed(
                lambda: publish_all(
                    jobs(root / "c", registry, "parallel"), builder, 2, log=lambda m: None
                )
            )
            print(
                f"{LOCATIONS} changed locations: serial {serial:.2f}s, 2 at a time "
                f"{parallel:.2f}s; ratio {serial / parallel:.2f}x (2 cores)"
            )


if __name__ == "__main__":
    main()
