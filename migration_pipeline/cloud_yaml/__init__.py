"""dagster_cloud.yaml: read, validate, edit, convert."""

# The names a project's locations file has had, newest first: dagster_cloud.yaml, its older
# name build.yaml, and the old dagster-cloud-cicd-action's locations.yaml.
CLOUD_YAML_NAMES = ("dagster_cloud.yaml", "build.yaml", "locations.yaml")
