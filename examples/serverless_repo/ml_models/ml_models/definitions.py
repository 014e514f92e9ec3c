import dagster as dg


@dg.asset
def features() -> list[float]:
    return [0.1, 0.2, 0.3]


@dg.asset
def model(features: list[float]) -> float:
    return sum(features) / len(features)


# Ran as a non-isolated run on Serverless: all steps in the run worker, no new container.
train_job = dg.define_asset_job(
    "train_job", selection=[features, model], tags={"dagster/isolation": "disabled"}
)

defs = dg.Definitions(
    assets=[features, model],
    jobs=[train_job],
    schedules=[
        dg.ScheduleDefinition(name="nightly_train", job=train_job, cron_schedule="0 2 * * *")
    ],
)
