import dagster as dg


@dg.asset
def churn_model() -> dict:
    """A churn model trained each night."""
    return {"weights": [0.1, 0.2]}


nightly_train = dg.ScheduleDefinition(
    name="nightly_train", target=dg.AssetSelection.assets(churn_model), cron_schedule="0 2 * * *"
)
