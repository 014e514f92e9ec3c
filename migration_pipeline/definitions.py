"""The one Definitions object of the migration_pipeline code location: the phases, in order.

organization -> inventory -> plan -> images, agent -> cutover -> readiness (sensor) -> finish
(rollback on demand). The organization inventory adds each full deployment still on Serverless as
a partition; every other asset and job is partitioned by deployment.

Data are assets, grouped by phase; what changes Dagster+ (the agent token, the switch, the
deploy, the rollback) are ops in jobs, so nothing in the asset graph can change Dagster+.
"""

import dagster as dg

from migration_pipeline.agent.defs import (
    agent_install_files_parse,
    create_agent_token_job,
    hybrid_agent_install_files,
    hybrid_agent_token,
    prepare_agent_job,
)
from migration_pipeline.cutover.defs import (
    cutover_job,
    every_location_on_the_hybrid_agent,
    hybrid_location_moves,
    pre_cutover_snapshot,
    snapshot_is_complete,
)
from migration_pipeline.finish.defs import (
    finish_job,
    first_runs_succeed,
    hybrid_deployment,
    verify_nothing_lost,
)
from migration_pipeline.images.defs import (
    code_location_images,
    images_exist_in_registry,
    images_load_their_definitions,
)
from migration_pipeline.inventory.defs import (
    every_location_readable,
    every_partition_is_a_full_deployment,
    inventory_job,
    organization_inventory,
    organization_job,
    serverless_inventory,
)
from migration_pipeline.plan.defs import (
    apply_files_job,
    hybrid_dagster_cloud_yaml_is_valid,
    hybrid_project_files,
    migration_plan,
    plan_job,
)
from migration_pipeline.readiness.sensor import build_hybrid_agent_ready_sensor
from migration_pipeline.records import RECORDS_IO_MANAGER, RecordsIOManager
from migration_pipeline.resources import DagsterPlusResource
from migration_pipeline.rollback.defs import rollback_job

# Each asset whose value RecordsIOManager keeps -> the module that declares its record (beside
# the value's type). Imported when a value is first written or read, not when the code location
# loads: the phases' types stay out of the load (issue 21's load target; the defs modules
# annotate those values for the type checker only). A test keeps it in step with the assets.
ASSET_VALUE_MODULES = {
    "organization_inventory": "migration_pipeline.inventory.organization",
    "serverless_inventory": "migration_pipeline.inventory.core",
    "migration_plan": "migration_pipeline.plan.model",
    "hybrid_project_files": "migration_pipeline.plan.applied",
    "code_location_images": "migration_pipeline.images.publish",
    "hybrid_agent_install_files": "migration_pipeline.agent.install",
}


def build_definitions(sensor_interval_seconds: int = 10) -> dg.Definitions:
    """The code location; the sensor's interval can be shortened (tests, a demo)."""
    return dg.Definitions(
        assets=[
            serverless_inventory,
            organization_inventory,
            migration_plan,
            hybrid_project_files,
            code_location_images,
            hybrid_agent_token,
            hybrid_agent_install_files,
            pre_cutover_snapshot,
            hybrid_location_moves,
            hybrid_deployment,
        ],
        asset_checks=[
            every_location_readable,
            every_partition_is_a_full_deployment,
            hybrid_dagster_cloud_yaml_is_valid,
            images_exist_in_registry,
            images_load_their_definitions,
            agent_install_files_parse,
            snapshot_is_complete,
            every_location_on_the_hybrid_agent,
            verify_nothing_lost,
            first_runs_succeed,
        ],
        jobs=[
            organization_job,
            inventory_job,
            plan_job,
            apply_files_job,
            create_agent_token_job,
            prepare_agent_job,
            cutover_job,
            finish_job,
            rollback_job,
        ],
        sensors=[build_hybrid_agent_ready_sensor(sensor_interval_seconds)],
        resources={
            "dagster_plus": DagsterPlusResource(
                url=dg.EnvVar("DAGSTER_CLOUD_URL"),
                deployment=dg.EnvVar("DAGSTER_CLOUD_DEPLOYMENT"),
                api_token=dg.EnvVar("DAGSTER_CLOUD_API_TOKEN"),
            ),
            RECORDS_IO_MANAGER: RecordsIOManager(ASSET_VALUE_MODULES),
        },
        executor=dg.in_process_executor,
    )


defs = build_definitions()
