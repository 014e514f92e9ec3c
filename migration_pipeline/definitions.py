"""The one Definitions object of the migration_pipeline code location."""

import dagster as dg

from migration_pipeline.defs.inventory import inventory_job, serverless_inventory
from migration_pipeline.defs.plan import (
    apply_files_job,
    hybrid_dagster_cloud_yaml_is_valid,
    hybrid_project_files,
    migration_plan,
    plan_job,
)
from migration_pipeline.defs.resources import DagsterPlusResource

defs = dg.Definitions(
    assets=[serverless_inventory, migration_plan, hybrid_project_files],
    asset_checks=[hybrid_dagster_cloud_yaml_is_valid],
    jobs=[inventory_job, plan_job, apply_files_job],
    resources={
        "dagster_plus": DagsterPlusResource(
            url=dg.EnvVar("DAGSTER_CLOUD_URL"),
            deployment=dg.EnvVar("DAGSTER_CLOUD_DEPLOYMENT"),
            api_token=dg.EnvVar("DAGSTER_CLOUD_API_TOKEN"),
        ),
    },
    executor=dg.in_process_executor,
)
