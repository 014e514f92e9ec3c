"""The code location as the end-to-end test serves it to a real dagster-daemon: the same
definitions, with the readiness sensor ticking every second."""

from migration_pipeline.definitions import build_definitions

defs = build_definitions(sensor_interval_seconds=1)
