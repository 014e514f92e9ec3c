import os

import dagster as dg
from dagster_cloud.serverless import serverless_io_manager


@dg.asset
def raw_orders() -> list[dict]:
    return [{"id": 1, "amount": 10.0}, {"id": 2, "amount": 32.5}]


@dg.asset
def daily_revenue(raw_orders: list[dict]) -> float:
    return sum(order["amount"] for order in raw_orders)


daily_refresh_job = dg.define_asset_job("daily_refresh_job", selection=[raw_orders, daily_revenue])
weekly_rollup_job = dg.define_asset_job("weekly_rollup_job", selection=[daily_revenue])


@dg.op(out=dg.Out(io_manager_key="export_files"))
def export_orders(context: dg.OpExecutionContext) -> dict:
    """Exports today's orders for finance. ANALYTICS_EXPORT_LABEL is set where the code runs
    (Serverless: a Dagster+ env var; Hybrid: the agent's env_vars)."""
    label = os.environ["ANALYTICS_EXPORT_LABEL"]
    context.log.info(f"exporting orders for {label}")
    return {"label": label, "orders": [{"id": 1, "amount": 10.0}, {"id": 2, "amount": 32.5}]}


@dg.job(description="Writes to ANALYTICS_EXPORT_DIR, a directory the code's host can reach.")
def export_orders_job():
    export_orders()


@dg.sensor(job=daily_refresh_job, minimum_interval_seconds=300)
def new_files_sensor():
    return dg.SkipReason("no new files")


defs = dg.Definitions(
    assets=[raw_orders, daily_revenue],
    jobs=[daily_refresh_job, weekly_rollup_job, export_orders_job],
    schedules=[
        dg.ScheduleDefinition(
            name="daily_refresh", job=daily_refresh_job, cron_schedule="0 6 * * *"
        ),
        dg.ScheduleDefinition(
            name="weekly_rollup", job=weekly_rollup_job, cron_schedule="0 7 * * 1"
        ),
    ],
    sensors=[new_files_sensor],
    # Serverless-only: outputs go to Dagster-managed storage.
    resources={
        "io_manager": serverless_io_manager,
        "export_files": dg.FilesystemIOManager(base_dir=dg.EnvVar("ANALYTICS_EXPORT_DIR")),
    },
)
