import dagster as dg


@dg.asset
def weekly_report() -> str:
    return "report"


report_job = dg.define_asset_job("report_job", selection=[weekly_report])

defs = dg.Definitions(
    assets=[weekly_report],
    jobs=[report_job],
    schedules=[
        dg.ScheduleDefinition(
            name="weekly_report_schedule",
            job=report_job,
            cron_schedule="0 8 * * 1",
            default_status=dg.DefaultScheduleStatus.RUNNING,
        )
    ],
)
