"""The plan and apply phases as Dagster assets, on a real instance against the sandbox."""

from __future__ import annotations

import dagster as dg
from migration_env import run_job
from plan_corpus import CORPUS
from test_plan_corpus import snapshot, write_project


def plan_config(project, **overrides) -> dict:
    config = {"project_dir": str(project), "target": "kubernetes", "registry": "ghcr.io/acme"}
    config.update(overrides)
    return {"ops": {"migration_plan": {"config": config}}}


def test_dry_run_then_apply_then_check(plus_env, tmp_path):
    project = tmp_path / "project"
    write_project(project, CORPUS["serverless_features_in_code"])
    before = snapshot(project)
    with dg.DagsterInstance.ephemeral() as instance:
        dry = run_job("plan_migration", instance, run_config=plan_config(project))
        assert dry.success
        assert snapshot(project) == before  # the dry run only reads
        (materialization,) = dry.asset_materializations_for_node("migration_plan")
        metadata = materialization.metadata
        assert metadata["files_to_write"].value == 3
        assert metadata["diff"].value.startswith("```diff\n--- a/dagster_cloud.yaml")
        # Hybrid agents run non-isolated runs too: the setting is kept unless asked.
        assert "Deployment settings are kept as they are." in metadata["summary"].value
        assert metadata["settings_removed_at_cutover"].value == []

        applied = run_job("apply_migration_files", instance)
        assert applied.success
        (check,) = applied.get_asset_check_evaluations()
        assert check.passed and check.asset_check_key.name == "hybrid_dagster_cloud_yaml_is_valid"
        written = applied.asset_materializations_for_node("hybrid_project_files")[0].metadata
        assert written["written"].value == ["dagster_cloud.yaml", "Dockerfile", ".dockerignore"]
        assert "container_context" in (project / "dagster_cloud.yaml").read_text()

        again = run_job("apply_migration_files", instance)
        assert (
            again.asset_materializations_for_node("hybrid_project_files")[0]
            .metadata["written"]
            .value
            == []
        )


def test_bad_input_fails_the_plan_at_once_with_the_problem(plus_env, tmp_path):
    project = tmp_path / "project"
    write_project(
        project,
        {
            "dagster_cloud.yaml": "locations:\n  - location_name: a\n"
            "    code_source: {package_name: a}\n"
            "    working_dir: .\n"
        },
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(
            "plan_migration", instance, run_config=plan_config(project), raise_on_error=False
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = str(failure.event_specific_data.error)
    assert 'dagster_cloud.yaml:4: locations[0].working_dir: unknown key "working_dir"' in text
    assert "Nothing was written." in text
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_the_written_file_is_checked_again(plus_env, tmp_path):
    """The check reads the file on disk: a later hand edit that breaks it fails the check."""
    from migration_pipeline.plan.defs import hybrid_dagster_cloud_yaml_is_valid

    project = tmp_path / "project"
    project.mkdir()
    (project / "dagster_cloud.yaml").write_text(
        "locations:\n  - location_name: a\n    code_source: {package_name: a}\n"
        "    container_context:\n      k8s:\n        namespce: x\n"
    )
    from migration_pipeline.plan.applied import AppliedProject

    result = hybrid_dagster_cloud_yaml_is_valid(
        AppliedProject(
            project_dir=str(project),
            target_name="kubernetes",
            cloud_yaml="dagster_cloud.yaml",
            images={},
            written=(),
            settings={},
        )
    )
    assert not result.passed
    assert "namespce" in result.metadata["problems"].value
