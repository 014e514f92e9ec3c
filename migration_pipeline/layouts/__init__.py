"""Which kind of repository the user has (a legacy `dagster_cloud.yaml`, a dg project, a dg
workspace), found with the file and line that say so, and one reader per kind.

`detect.detect_layout` decides; `dg.read_dg` reads a dg project or workspace into `DgLayout`, the
model the dg plan works on and the deploy document comes from. The legacy file is read by
`migration_pipeline.cloud_yaml`.
"""
