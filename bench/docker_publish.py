"""Publishing the example's three images with docker, as `make demo-docker` does: a first build
(new content: the base image's layers are cached, as after a user's first pull), the unchanged
re-publish (found in the registry by its content tag: nothing built), and the proof of the
three images (each started and its definitions loaded).

    .venv/bin/python bench/docker_publish.py

Uses the demo's engine (`.demo/docker-engine`; made, with its base image, on first use) and a
registry of its own on loopback. Prints each time and the ratio of the first build to the
re-publish.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # the demo's harness (demo/docker.py)
EXAMPLE = ROOT / "examples" / "serverless_repo"
LOCATIONS: dict[str, dict[str, Any]] = {
    "analytics": {"code_source": {"package_name": "analytics"}, "working_directory": "analytics"},
    "ml_models": {
        "code_source": {"module_name": "ml_models.definitions"},
        "working_directory": "ml_models",
    },
    "reporting": {"code_source": {"python_file": "reporting/reports.py"}},
}


def main() -> None:
    import os

    from demo.docker import DockerDemo
    from migration_pipeline.images.builders import choose_builder
    from migration_pipeline.images.prove import prove_images
    from migration_pipeline.images.publish import ImageJob, publish_all
    from migration_pipeline.plan.dockerfile import BuildContext, render_dockerfile

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        start = time.perf_counter()
        with DockerDemo.start(ROOT / ".demo") as engine:
            ready = time.perf_counter() - start
            os.environ["DOCKER_HOST"] = engine.docker_host
            project = root / "repo"
            shutil.copytree(EXAMPLE, project)
            (project / "salt.txt").write_text(str(time.time()))  # new content: a real build
            (project / "Dockerfile").write_text(
                render_dockerfile(BuildContext(tuple(LOCATIONS), base_image=engine.base_image))
            )
            jobs = [
                ImageJob(name, project, project / "Dockerfile", f"{engine.registry}/bench/{name}")
                for name in LOCATIONS
            ]
            builder = choose_builder("docker")

            def publish() -> tuple[float, dict]:
                began = time.perf_counter()
                images, errors = publish_all(jobs, builder, 2, log=lambda message: None)
                assert not errors, errors
                return time.perf_counter() - began, images

            first, images = publish()
            again, reused = publish()
            assert not any(image.built for image in reused.values())
            began = time.perf_counter()
            proofs = prove_images(images, LOCATIONS, builder.run_image, 2)
            proving = time.perf_counter() - began
            assert all(proof.passed for proof in proofs.values()), proofs
    print(f"engine, base image, registry and network ready: {ready:.2f}s")
    print(f"first build and push of {len(jobs)} images: {first:.2f}s")
    print(f"unchanged re-publish (found by content tag, nothing built): {again:.2f}s")
    print(f"ratio first / unchanged: {first / again:.1f}x")
    print(
        f"proof of {len(proofs)} images (docker run + dagster definitions validate): {proving:.2f}s"
    )


if __name__ == "__main__":
    main()
