import dagster as dg


@dg.asset
def daily_revenue() -> int:
    """Revenue per day, for the finance dashboard."""
    return 42


weekly_revenue = dg.ScheduleDefinition(
    name="weekly_revenue", target=dg.AssetSelection.assets(daily_revenue), cron_schedule="0 7 * * 1"
)
