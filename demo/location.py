"""The code location the demo's dagster-daemon loads: the product's, with the readiness sensor
ticking every 2 s (its default is 10 s)."""

from migration_pipeline.definitions import build_definitions

defs = build_definitions(sensor_interval_seconds=2)
