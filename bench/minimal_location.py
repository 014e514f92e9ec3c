"""A yardstick for bench/code_location_load.py: the smallest location shaped like ours (one
partitioned asset with a check, one op job, one asset job). What it costs over an empty
Definitions is what Dagster charges any such location the first time it builds job snapshots."""

import dagster as dg

parts = dg.DynamicPartitionsDefinition(name="deployments")


@dg.asset(partitions_def=parts)
def one() -> None:
    return None


@dg.asset_check(asset=one, partitions_def=parts)
def one_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@dg.op
def act() -> None:
    return None


@dg.job(partitions_def=parts)
def one_job():
    act()


defs = dg.Definitions(
    assets=[one],
    asset_checks=[one_ok],
    jobs=[one_job, dg.define_asset_job("one_asset_job", selection=[one])],
)
