"""The images phase: one image per code location, built and pushed before the cutover, so that
the no-agent window holds no build."""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from migration_pipeline.deployments import DEPLOYMENTS
from migration_pipeline.records import RECORDS_IO_MANAGER, record_metadata

if TYPE_CHECKING:
    from migration_pipeline.images.builders import Builder
    from migration_pipeline.images.publish import PublishedImage
    from migration_pipeline.plan.applied import AppliedProject
    from migration_pipeline.targets.settings import TargetSettings
else:  # Dagster reads these at load; the types load on use (definitions.ASSET_VALUE_MODULES)
    AppliedProject = PublishedImage = Any

GROUP = "images"


def image_store() -> Path:
    """Where a daemonless builder keeps its layers (read when a build runs, not at import)."""
    return Path.home() / ".cache" / "migration_pipeline" / "containers"


def builder_for(settings: "TargetSettings") -> "Builder":
    """The builder the target settings ask for, as both the publish and the proof use it."""
    from migration_pipeline.images.builders import choose_builder

    return choose_builder(
        settings.builder, storage=image_store(), insecure_registries=settings.insecure_registry
    )


@dg.asset(
    io_manager_key=RECORDS_IO_MANAGER,
    group_name=GROUP,
    kinds={"docker"},
    partitions_def=DEPLOYMENTS,
    description="One image per code location, built from its Dockerfile and pushed to its "
    "build.registry, tagged `<content hash>-<location>`: an unchanged location reuses the "
    "image already in the registry and builds nothing.",
)
def code_location_images(
    context: dg.AssetExecutionContext, hybrid_project_files: AppliedProject
) -> dg.Output[dict[str, PublishedImage]]:
    from migration_pipeline.images.builders import BuildError
    from migration_pipeline.images.publish import DEPLOY_DOCUMENT, ImageJob, publish_all
    from migration_pipeline.plan.common import build_directories
    from migration_pipeline.targets import needs_images

    applied = hybrid_project_files
    settings = applied.target_settings()
    cloud = applied.load_cloud_yaml()  # read once, here: the deploy never reads the disk again
    if not needs_images(applied.target):
        return dg.Output(
            {},
            metadata={
                **record_metadata(DEPLOY_DOCUMENT, cloud.deploy_document({})),
                "images": "none: a Local agent runs the code from its own Python environment",
            },
        )
    project = Path(applied.project_dir)
    jobs = []
    for directory, locations in sorted(build_directories(cloud).items()):
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
        builder = builder_for(settings)
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
        **record_metadata(
            DEPLOY_DOCUMENT, cloud.deploy_document({n: i.image for n, i in images.items()})
        ),
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
    partitions_def=DEPLOYMENTS,
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


@dg.asset_check(
    asset=code_location_images,  # its name is images.prove.PROOF_CHECK
    blocking=True,
    partitions_def=DEPLOYMENTS,
    additional_ins={"hybrid_project_files": dg.AssetIn()},
    description="Every pushed image starts and loads its code location's definitions "
    "(`dagster definitions validate` with the location's own code source and working "
    "directory, as its code server will), by digest, with no network under docker or podman. "
    "The cutover's "
    "preflight requires this check to have passed for the images it deploys.",
)
def images_load_their_definitions(
    context: dg.AssetCheckExecutionContext,
    code_location_images: dict[str, PublishedImage],
    hybrid_project_files: AppliedProject,
) -> dg.AssetCheckResult:
    from migration_pipeline.images.builders import BuildError
    from migration_pipeline.images.prove import PROVEN_IMAGES, prove_images

    if not code_location_images:
        return dg.AssetCheckResult(
            passed=True, metadata={"checked": 0, **record_metadata(PROVEN_IMAGES, {})}
        )
    settings = hybrid_project_files.target_settings()
    if not settings.prove_images:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="not proven: the target settings say `prove_images: false`, so no "
            "image was started (the cutover's preflight skips this requirement and says so)",
            metadata={"checked": 0, **record_metadata(PROVEN_IMAGES, {})},
        )
    try:
        builder = builder_for(settings)
    except BuildError as error:
        return dg.AssetCheckResult(passed=False, description=f"no image was started: {error}")
    cloud = hybrid_project_files.load_cloud_yaml()
    locations = {ref.name: cloud.merged_location(ref) for ref in cloud.locations}
    context.log.info(f"starting {len(code_location_images)} images with {builder.tool}")
    proofs = prove_images(
        code_location_images, locations, builder.run_image, settings.max_parallel_builds
    )
    failed = {name: proof.error for name, proof in proofs.items() if not proof.passed}
    for name, output in failed.items():
        context.log.error(f"{name}: its image does not load its definitions:\n{output}")
    return dg.AssetCheckResult(
        passed=not failed,
        description="; ".join(
            f"{name}: {output.splitlines()[-1] if output else 'failed'}"
            for name, output in failed.items()
        )
        or None,
        metadata={
            "checked": len(proofs),
            **record_metadata(
                PROVEN_IMAGES,
                {name: proof.reference for name, proof in proofs.items() if proof.passed},
            ),
            "failed": dg.MetadataValue.json(failed),
        },
    )
