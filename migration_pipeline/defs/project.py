"""What the Dagster layer reads back of the applied project (the hybrid_project_files value)."""

from pathlib import Path


def target_and_settings(project_files: dict):
    from migration_pipeline.targets import get_target
    from migration_pipeline.targets.settings import SETTINGS_MODELS

    target = get_target(project_files["target"])
    settings = SETTINGS_MODELS[target.name].model_validate(project_files.get("settings") or {})
    return target, settings


def applied_cloud_yaml_problems(project_files: dict) -> list:
    """The problems of the dagster_cloud.yaml on disk for the target agent (none: it is valid)."""
    from migration_pipeline.cloud_yaml.validate import validate_cloud_yaml
    from migration_pipeline.problems import InvalidInput, Problem

    target, _ = target_and_settings(project_files)
    try:
        return validate_cloud_yaml(load_applied_cloud_yaml(project_files),
                                   target.container_context_key)
    except InvalidInput as error:
        return error.problems
    except OSError as error:
        return [Problem(project_files["cloud_yaml"], None, (),
                        f"cannot be read ({error.strerror}): apply the plan first")]


def load_applied_cloud_yaml(project_files: dict):
    from migration_pipeline.cloud_yaml.model import load_cloud_yaml
    from migration_pipeline.files import read_exact

    path = Path(project_files["project_dir"]) / project_files["cloud_yaml"]
    return load_cloud_yaml(read_exact(path), project_files["cloud_yaml"])
