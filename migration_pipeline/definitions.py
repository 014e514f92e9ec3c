"""The one Definitions object of the migration_pipeline code location."""

import dagster as dg

from migration_pipeline.defs.cutover import (
    build_hybrid_agent_ready_sensor,
    cutover_job,
    deactivate_serverless_agent,
    finish_job,
    hybrid_agent_install_files,
    hybrid_agent_token,
    hybrid_locations,
    pre_cutover_snapshot,
    prepare_agent_job,
    rollback_job,
    serverless_restored,
    verify_nothing_lost,
)
from migration_pipeline.defs.images import code_location_images, images_exist_in_registry
from migration_pipeline.defs.inventory import inventory_job, serverless_inventory
from migration_pipeline.defs.plan import (
    apply_files_job,
    hybrid_dagster_cloud_yaml_is_valid,
    hybrid_project_files,
    migration_plan,
    plan_job,
)
from migration_pipeline.defs.resources import DagsterPlusResource



def build_definitions(sensor_interval_seconds: int = 10) -> dg.Definitions:
    """The code location; the sensor's interval can be shortened (tests, a demo)."""
    return dg.Definitions(
        assets=[
            serverless_inventory,
            migration_plan,
            hybrid_project_files,
            code_location_images,
            hybrid_agent_token,
            hybrid_agent_install_files,
            pre_cutover_snapshot,
            deactivate_serverless_agent,
            hybrid_locations,
            serverless_restored,
        ],
        asset_checks=[hybrid_dagster_cloud_yaml_is_valid, images_exist_in_registry,
                      verify_nothing_lost],
        jobs=[inventory_job, plan_job, apply_files_job, prepare_agent_job, cutover_job, finish_job,
              rollback_job],
        sensors=[build_hybrid_agent_ready_sensor(sensor_interval_seconds)],
        resources={
            "dagster_plus": DagsterPlusResource(
                url=dg.EnvVar("DAGSTER_CLOUD_URL"),
                deployment=dg.EnvVar("DAGSTER_CLOUD_DEPLOYMENT"),
                api_token=dg.EnvVar("DAGSTER_CLOUD_API_TOKEN"),
            ),
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions()
