"""Every Serverless CI variant seen in real repositories is recognized and replaced by a Hybrid
one, not left with "this workflow stops working": the Serverless quickstart's PEX workflow
(dagster-cloud-action's build_deploy_pex), dg's own Serverless GitLab template (read from the
installed dagster-dg-cli), and a workflow that runs a bare `dg plus deploy`."""

from __future__ import annotations

from pathlib import Path

import yaml
from support.inventory import inventory_of
from test_dg_projects import project_files
from test_plan_corpus import write_project

from migration_pipeline.layouts.files import read_project
from migration_pipeline.plan.core import make_plan
from migration_pipeline.targets import load_target_settings

# dagster-io/dagster-cloud-serverless-quickstart, .github/workflows/dagster_build_deploy_pex.yml
QUICKSTART_PEX = """\
name: Build and deploy (using pex files)

# workflow works for both full and branch deployments
on:
  pull_request:
    types: [opened, synchronize, reopened, closed]
  push:
    branches:
      - "main"
      - "master"
  workflow_dispatch:

env:
  DAGSTER_CLOUD_URL: ${{ secrets.DAGSTER_CLOUD_URL }}
  DAGSTER_CLOUD_API_TOKEN: ${{ secrets.DAGSTER_CLOUD_API_TOKEN }}

jobs:
  build_deploy:
    runs-on: ubuntu-latest
    name: Pex build and deploy
    strategy:
      fail-fast: false
    steps:
      - name: Checkout
        uses: actions/checkout@v3
        with:
          ref: ${{ github.head_ref }}
          path: project-repo
      - name: Pex build and deploy
        uses: dagster-io/dagster-cloud-action/actions/build_deploy_pex@shalabhc/isolate-branch-deps
        with:
          dagster_cloud_file: "$GITHUB_WORKSPACE/project-repo/dagster_cloud.yaml"
          build_output_dir: "$GITHUB_WORKSPACE/build"
          python_version: "3.8"
"""
BARE_DG = """\
name: Deploy
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: pip install dagster-dg-cli
      - run: dg plus deploy --yes
        env:
          DAGSTER_CLOUD_API_TOKEN: ${{ secrets.DAGSTER_CLOUD_API_TOKEN }}
"""
REGISTRY = "ghcr.io/acme"


def plan(root: Path):
    settings = load_target_settings("kubernetes", "organization: acme\n", registry=REGISTRY)
    return make_plan(read_project(root), "kubernetes", settings, inventory_of())


def replaced(plan) -> dict[str, dict]:
    return {
        f.path: yaml.safe_load(f.new)
        for f in plan.files
        if f.path.startswith((".github/", ".gitlab/"))
    }


def no_stops_working(plan) -> None:
    assert not [w for w in plan.warnings if "stops working" in w.message]


def test_the_serverless_quickstart_pex_workflow_gets_a_hybrid_one(tmp_path):
    write_project(
        tmp_path,
        {
            "dagster_cloud.yaml": "locations:\n  - location_name: quickstart_etl\n"
            "    code_source:\n      package_name: quickstart_etl\n",
            "setup.py": "from setuptools import setup\nsetup(name='quickstart_etl')\n",
            ".github/workflows/dagster_build_deploy_pex.yml": QUICKSTART_PEX,
        },
    )
    result = plan(tmp_path)
    workflow = replaced(result)[".github/workflows/dagster_build_deploy_pex.yml"]
    runs = [s.get("run", "") for s in workflow["jobs"]["dagster_plus_deploy"]["steps"]]
    assert any(r.startswith("dagster-cloud ci init") for r in runs)
    assert any(r.startswith("dagster-cloud ci deploy") for r in runs)
    no_stops_working(result)


def test_dgs_own_serverless_gitlab_template_gets_a_hybrid_job(tmp_path):
    import dagster_dg_cli

    template = (
        Path(dagster_dg_cli.__file__).parent / "templates" / "serverless-gitlab-ci.yaml"
    ).read_text()
    write_project(tmp_path / "shop", {**project_files("shop"), ".gitlab-ci.yml": template})
    result = plan(tmp_path / "shop")
    (job,) = replaced(result)[".gitlab/dagster-plus-hybrid.yml"].values()
    assert job["script"][0].startswith("dg plus deploy start")
    assert job["script"][-1].startswith("dg plus deploy finish")
    assert any("include .gitlab/dagster-plus-hybrid.yml" in w.message for w in result.warnings)
    no_stops_working(result)


def test_a_bare_dg_plus_deploy_workflow_gets_a_hybrid_one(tmp_path):
    write_project(
        tmp_path / "shop", {**project_files("shop"), ".github/workflows/deploy.yml": BARE_DG}
    )
    result = plan(tmp_path / "shop")
    workflow = replaced(result)[".github/workflows/deploy.yml"]
    runs = [s.get("run", "") for s in workflow["jobs"]["dagster_plus_deploy"]["steps"]]
    assert "dg plus deploy start" in runs[3] and "--target-path" in runs[3]
    assert workflow["on"]["push"] == {"branches": ["main"]}
    no_stops_working(result)


def test_a_hybrid_dg_workflow_is_not_taken_for_a_serverless_one(tmp_path):
    hybrid = BARE_DG.replace("dg plus deploy --yes", "dg plus deploy --agent-type=hybrid --yes")
    write_project(
        tmp_path / "shop", {**project_files("shop"), ".github/workflows/deploy.yml": hybrid}
    )
    assert ".github/workflows/deploy.yml" not in replaced(plan(tmp_path / "shop"))
