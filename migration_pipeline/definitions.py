"""The one Definitions object of the migration_pipeline code location."""

import dagster as dg

from migration_pipeline.defs.inventory import inventory_job, serverless_inventory
from migration_pipeline.defs.resources import DagsterPlusResource

defs = dg.Definitions(
    assets=[serverless_inventory],
    jobs=[inventory_job],
    resources={
        "dagster_plus": DagsterPlusResource(
            url=dg.EnvVar("DAGSTER_CLOUD_URL"),
            deployment=dg.EnvVar("DAGSTER_CLOUD_DEPLOYMENT"),
            api_token=dg.EnvVar("DAGSTER_CLOUD_API_TOKEN"),
        ),
    },
    executor=dg.in_process_executor,
)
