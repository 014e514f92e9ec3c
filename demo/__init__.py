"""The demo and its harness (`make demo`): not part of the migration_pipeline package."""
