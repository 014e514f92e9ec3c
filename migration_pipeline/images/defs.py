"""The images phase: one image per code location, built and pushed before the cutover, so that
the no-agent window holds no build."""

from pathlib import Path

import dagster as dg

from migration_pipeline.images.publish import PublishedImage
from migration_pipeline.plan.applied import AppliedProject
from migration_pipeline.records import latest_record, record_metadata

GROUP = "images"


def image_store() -> Path:
    """Where a daemonless builder keeps its layers (read when a build runs, not at import)."""
    return Path.home() / ".cache" / "migration_pipeline" / "containers"


@dg.asset(
    group_name=GROUP,
    kinds={"docker"},
    description="One image per code location, built from its Dockerfile and pushed to its "
    "build.registry, tagged `<content hash>-<location>`: an unchanged location reuses the "
    "image already in the registry and builds nothing.",
)
def code_location_images(
    context: dg.AssetExecutionContext, hybrid_project_files: AppliedProject
) -> dg.Output[dict[str, PublishedImage]]:
    from migration_pipeline.images.builders import BuildError, choose_builder
    from migration_pipeline.images.publish import ImageJob, publish_all
    from migration_pipeline.plan.core import build_directories
    from migration_pipeline.targets import needs_images

    applied = hybrid_project_files
    settings = applied.target_settings()
    if not needs_images(applied.target):
        return dg.Output(
            {},
            metadata={
                **record_metadata({}),
                "images": "none: a Local agent runs the code from its own Python environment",
            },
        )
    project = Path(applied.project_dir)
    jobs = []
    for directory, locations in sorted(build_directories(applied.load_cloud_yaml()).items()):
        for name, _ in locations:
            options = applied.image_options.get(name, {})
            dockerfile = options.get("dockerfile") or f"{directory}/Dockerfile"
            jobs.append(
                ImageJob(
                    name,
                    project / directory,
                    project / dockerfile,
                    applied.images[name],
                    options.get("target"),
                )
            )
    try:
        builder = choose_builder(
            settings.builder, storage=image_store(), insecure_registries=settings.insecure_registry
        )
    except BuildError as error:
        raise dg.Failure(str(error), allow_retries=False) from None
    context.log.info(f"building with {builder.tool}, {settings.max_parallel_builds} at a time")
    images, errors = publish_all(
        jobs,
        builder,
        settings.max_parallel_builds,
        settings.insecure_registry,
        log=context.log.info,
    )
    metadata: dict[str, dg.RawMetadataValue] = {
        **record_metadata({name: image.as_dict() for name, image in sorted(images.items())}),
        "built": sorted(n for n, i in images.items() if i.built),
        "reused": sorted(n for n, i in images.items() if not i.built),
        "images": dg.MetadataValue.json(
            {
                n: {"image": i.image, "digest": i.digest, "tag": i.tag, "size_bytes": i.size_bytes}
                for n, i in sorted(images.items())
            }
        ),
    }
    if errors:
        raise dg.Failure(
            "These locations' images were not published (the others were; a re-execution "
            "reuses them and retries only these):\n"
            + "\n".join(f"  {name}: {message}" for name, message in sorted(errors.items())),
            metadata=metadata,
            allow_retries=False,
        )
    return dg.Output(images, metadata=metadata)


@dg.asset_check(
    asset=code_location_images,
    blocking=True,
    additional_ins={"hybrid_project_files": dg.AssetIn()},
    description="Every pushed image's manifest is in its registry (a HEAD request, "
    "with the same credentials the publish used).",
)
def images_exist_in_registry(
    code_location_images: dict[str, PublishedImage], hybrid_project_files: AppliedProject
) -> dg.AssetCheckResult:
    from migration_pipeline.images.publish import missing_images

    missing = missing_images(
        code_location_images, hybrid_project_files.target_settings().insecure_registry
    )
    return dg.AssetCheckResult(
        passed=not missing,
        metadata={"checked": len(code_location_images), "missing": dg.MetadataValue.json(missing)},
    )


def recorded_images(instance: dg.DagsterInstance, needed_by: str) -> dict[str, PublishedImage]:
    """The images the last code_location_images materialization published."""
    record = latest_record(instance, "code_location_images", needed_by)
    return {name: PublishedImage(**image) for name, image in record.items()}
