"""Publishing the images before the cutover, so that the no-agent window holds no build."""

from pathlib import Path

import dagster as dg

from migration_pipeline.defs.project import load_applied_cloud_yaml, target_and_settings

IMAGE_STORE = Path.home() / ".cache" / "migration_pipeline" / "containers"


@dg.asset(group_name="migration", kinds={"docker"},
          description="One image per code location, built from its Dockerfile and pushed to its "
          "build.registry, tagged `<content hash>-<location>`: an unchanged location reuses the "
          "image already in the registry and builds nothing.")
def code_location_images(context: dg.AssetExecutionContext,
                         hybrid_project_files: dict) -> dg.Output[dict]:
    from migration_pipeline.images.builders import BuildError, choose_builder
    from migration_pipeline.images.publish import ImageJob, publish_all
    from migration_pipeline.plan import build_directories

    target, settings = target_and_settings(hybrid_project_files)
    if not target.needs_images:
        return dg.Output({}, metadata={"images": "none: a Local agent runs the code from its own "
                                                 "Python environment"})
    project = Path(hybrid_project_files["project_dir"])
    cloud = load_applied_cloud_yaml(hybrid_project_files)
    jobs = [ImageJob(name, project / directory, project / directory / "Dockerfile",
                     hybrid_project_files["images"][name])
            for directory, locations in sorted(build_directories(cloud).items())
            for name, _ in locations]
    try:
        builder = choose_builder(settings.builder, storage=IMAGE_STORE,
                                 insecure_registries=settings.insecure_registry)
    except BuildError as error:
        raise dg.Failure(str(error), allow_retries=False) from None
    context.log.info(f"building with {builder.tool}, {settings.max_parallel_builds} at a time")
    images, errors = publish_all(jobs, builder, settings.max_parallel_builds,
                                 settings.insecure_registry, log=context.log.info)
    metadata = {
        "built": sorted(n for n, i in images.items() if i.built),
        "reused": sorted(n for n, i in images.items() if not i.built),
        "images": dg.MetadataValue.json({n: {"image": i.image, "digest": i.digest, "tag": i.tag,
                                             "size_bytes": i.size_bytes}
                                         for n, i in sorted(images.items())}),
    }
    if errors:
        raise dg.Failure(
            "These locations' images were not published (the others were; a re-execution "
            "reuses them and retries only these):\n"
            + "\n".join(f"  {name}: {message}" for name, message in sorted(errors.items())),
            metadata=metadata, allow_retries=False)
    return dg.Output({name: image.as_dict() for name, image in images.items()}, metadata=metadata)


@dg.asset_check(asset=code_location_images, blocking=True,
                additional_ins={"hybrid_project_files": dg.AssetIn()},
                description="Every pushed image's manifest is in its registry (a HEAD request).")
def images_exist_in_registry(code_location_images: dict,
                             hybrid_project_files: dict) -> dg.AssetCheckResult:
    missing = missing_images(code_location_images, hybrid_project_files)
    return dg.AssetCheckResult(passed=not missing, metadata={
        "checked": len(code_location_images), "missing": dg.MetadataValue.json(missing)})


def missing_images(images: dict, project_files: dict) -> dict[str, str]:
    """Locations whose image the registry does not have (or cannot be asked about)."""
    from migration_pipeline.images.registry import (
        RegistryError,
        credentials_for,
        host_of,
        manifest_digest,
    )

    _, settings = target_and_settings(project_files)
    missing = {}
    for name, image in images.items():
        repository = image["image"].rsplit(":", 1)[0]
        try:
            digest = manifest_digest(repository, image["tag"], credentials_for(host_of(repository)),
                                     settings.insecure_registry)
        except RegistryError as error:
            missing[name] = str(error)
            continue
        if digest is None:
            missing[name] = f"{image['image']} is not in the registry"
    return missing
