"""A value the plan replaces is not judged: a template's placeholder in a field the migration
overwrites is replaced (or, for a Local agent, removed) and reported; what the result would still
contain is refused as before."""

from __future__ import annotations

import pytest
import yaml
from test_plan_corpus import write_project

from migration_pipeline.layouts.files import read_project
from migration_pipeline.lib.names import placeholder_reason
from migration_pipeline.lib.problems import InvalidInput
from migration_pipeline.plan.core import make_plan
from migration_pipeline.targets import load_target_settings

# dagster-io/dagster-cloud-hybrid-quickstart's dagster_cloud.yaml, as published.
HYBRID_QUICKSTART = """\
locations:
  - location_name: quickstart_etl
    code_source:
      package_name: quickstart_etl
    build:
      directory: ./
      registry: <account-id>.dkr.ecr.us-west-2.amazonaws.com/<image-name>
      # registry: ghcr.io/<org>/<image-name>
"""


def planned(tmp_path, target: str, text: str):
    write_project(tmp_path, {"dagster_cloud.yaml": text})
    registry = None if target == "local" else "ghcr.io/acme"
    settings = load_target_settings(target, "", registry=registry)
    return make_plan(read_project(tmp_path), target, settings)


def test_the_hybrid_quickstart_placeholder_registry_is_replaced(tmp_path):
    plan = planned(tmp_path, "kubernetes", HYBRID_QUICKSTART)
    (cloud,) = [f for f in plan.files if f.path == "dagster_cloud.yaml"]
    location = yaml.safe_load(cloud.new)["locations"][0]
    assert location["build"] == {"directory": "./", "registry": "ghcr.io/acme/quickstart_etl"}
    assert "# registry: ghcr.io/<org>/<image-name>" in cloud.new  # the user's comment stays
    assert any("holds the placeholder '<account-id>'" in c for c in plan.changes)
    assert plan.images == {"quickstart_etl": "ghcr.io/acme/quickstart_etl"}


def test_for_a_local_agent_the_placeholder_registry_is_removed(tmp_path):
    plan = planned(tmp_path, "local", HYBRID_QUICKSTART)
    (cloud,) = [f for f in plan.files if f.path == "dagster_cloud.yaml"]
    assert yaml.safe_load(cloud.new)["locations"][0]["build"] == {"directory": "./"}
    assert any("removed (a Local agent uses no image)" in c for c in plan.changes)


def test_a_placeholder_in_defaults_is_replaced_for_every_location(tmp_path):
    text = (
        "defaults:\n  build:\n    registry: ${REGISTRY}\n"
        "locations:\n  - location_name: a\n    code_source: {package_name: a}\n"
    )
    plan = planned(tmp_path, "kubernetes", text)
    assert plan.images == {"a": "ghcr.io/acme/a"}


def test_a_registry_that_is_wrong_and_not_a_placeholder_is_still_refused(tmp_path):
    text = HYBRID_QUICKSTART.replace(
        "<account-id>.dkr.ecr.us-west-2.amazonaws.com/<image-name>", "https://ghcr.io/acme"
    )
    with pytest.raises(InvalidInput) as refused:
        planned(tmp_path, "kubernetes", text)
    assert "dagster_cloud.yaml:7" in str(refused.value)


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("<account-id>.dkr.ecr.us-west-2.amazonaws.com/<image-name>", True),
        ("", True),
        ("${REGISTRY}", True),
        ("$REGISTRY/acme", True),
        ("{{ registry }}", True),
        ("TEMPLATE_REGISTRY", True),
        ("ghcr.io/acme", False),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/acme", False),
    ],
)
def test_what_reads_as_a_placeholder(value, placeholder):
    assert (placeholder_reason(value) is not None) == placeholder
