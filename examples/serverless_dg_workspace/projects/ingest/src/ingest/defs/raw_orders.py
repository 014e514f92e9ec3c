import dagster as dg


@dg.asset
def raw_orders() -> list[dict]:
    """Yesterday's orders, pulled from the shop's API."""
    return [{"id": 1, "amount": 40}, {"id": 2, "amount": 2}]


daily_ingest = dg.ScheduleDefinition(
    name="daily_ingest", target=dg.AssetSelection.assets(raw_orders), cron_schedule="0 5 * * *"
)
