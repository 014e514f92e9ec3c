"""A yardstick for bench/code_location_load.py: a location with migration_pipeline's shape and
nothing else. The same counts of each kind of definition (6 assets, 4 asset specs, 9 asset
checks and one multi-asset check of 4, 12 ops, 4 op jobs, 5 asset jobs, 5 Config classes, a
resource and an I/O manager, one sensor), all partitioned by one dynamic partitions definition
as ours are, with trivial bodies and no imports of its own. What it costs over an empty
Definitions is what Dagster charges for that many definitions; what migration_pipeline costs over
it is what our own code adds. Keep the counts in step with migration_pipeline/definitions.py."""

import dagster as dg

parts = dg.DynamicPartitionsDefinition(name="deployments")


class Plus(dg.ConfigurableResource):
    url: str
    deployment: str
    api_token: str


class Records(dg.ConfigurableIOManager):
    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        return None

    def load_input(self, context: dg.InputContext) -> object:
        return None


def config_class(index: int) -> type[dg.Config]:
    return type(f"Config{index}", (dg.Config,), {"__annotations__": {"name": str}, "name": ""})


CONFIGS = [config_class(index) for index in range(5)]


def asset(index: int) -> dg.AssetsDefinition:
    def body(context: dg.AssetExecutionContext, plus: Plus) -> dict:
        return {}

    return dg.asset(
        name=f"asset_{index}",
        group_name=f"group_{index % 5}",
        partitions_def=parts,
        io_manager_key="records",
    )(body)


def check(index: int) -> dg.AssetChecksDefinition:
    def body(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    return dg.asset_check(asset=f"asset_{index % 6}", name=f"check_{index}", blocking=True)(body)


def op(index: int) -> dg.OpDefinition:
    config = CONFIGS[index % 5]

    def body(context: dg.OpExecutionContext, plus: Plus, config: config) -> dict:  # type: ignore[valid-type]
        return {}

    return dg.op(name=f"op_{index}")(body)


def op_job(index: int, ops: list[dg.OpDefinition]) -> dg.JobDefinition:
    def body() -> None:
        for each in ops:
            each()

    return dg.job(name=f"op_job_{index}", partitions_def=parts)(body)


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(f"multi_{index}", asset=f"spec_{index}") for index in range(4)]
)
def multi_check(context: dg.AssetCheckExecutionContext):  # noqa: ANN201
    return None


@dg.sensor(minimum_interval_seconds=10)
def sensor(context: dg.SensorEvaluationContext) -> None:
    return None


OPS = [op(index) for index in range(12)]
defs = dg.Definitions(
    assets=[asset(index) for index in range(6)]
    + [dg.AssetSpec(f"spec_{index}", partitions_def=parts) for index in range(4)],
    asset_checks=[check(index) for index in range(9)] + [multi_check],
    jobs=[op_job(index, OPS[index * 3 : index * 3 + 3]) for index in range(4)]
    + [
        dg.define_asset_job(
            f"asset_job_{index}", selection=dg.AssetSelection.groups(f"group_{index}")
        )
        for index in range(5)
    ],
    sensors=[sensor],
    resources={
        "plus": Plus(url=dg.EnvVar("URL"), deployment=dg.EnvVar("DEP"), api_token=dg.EnvVar("TOK")),
        "records": Records(),
    },
    executor=dg.in_process_executor,
)
