"""The code location itself: it loads, validates, stays light to import, runs in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

PROJECT_DIR = Path(__file__).resolve().parent.parent
HEAVY = [
    "kubernetes",
    "boto3",
    "botocore",
    "dagster_k8s",
    "dagster_aws",
    "dagster_docker",
    "dagster_cloud",
    "dagster_plus_sandbox",
    "requests",
    "ruamel",
    "graphql",
]


def test_import_does_not_load_heavy_libraries():
    code = (
        "import json, sys, migration_pipeline.definitions; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_DIR
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_import_reads_no_environment():
    """In a fresh interpreter (this one imported the location at collection): no Dagster+
    variable, no HOME, and `Path.home()` fails; the location still imports and validates."""
    code = (
        "import pathlib\n"
        "def no_home(*args):\n"
        "    raise AssertionError('Path.home() called while importing the code location')\n"
        "pathlib.Path.home = no_home\n"
        "import dagster as dg\n"
        "from migration_pipeline.definitions import defs\n"
        "dg.Definitions.validate_loadable(defs)\n"
        "print('loaded', len(defs.resolve_all_job_defs()), 'jobs')\n"
    )
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DAGSTER_CLOUD_", "REGISTRY_", "AWS_")) and name != "HOME"
    }
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_DIR, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("loaded ")


def test_every_job_runs_in_process():
    from migration_pipeline.definitions import defs

    jobs = defs.resolve_all_job_defs()
    assert {job.name for job in jobs} >= {"inventory"}
    for job in jobs:
        assert job.executor_def is dg.in_process_executor, job.name


def test_the_token_is_an_env_var_in_the_resource_config():
    from migration_pipeline.definitions import defs

    resource = defs.resources["dagster_plus"]
    assert isinstance(resource.api_token, dg.EnvVar)
    assert resource.api_token.env_var_name == "DAGSTER_CLOUD_API_TOKEN"


def test_dagster_definitions_validate_passes():
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_dg_check_defs_passes():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_workspace_and_dagster_cloud_yaml_point_at_the_definitions():
    import yaml
    from dagster_cloud.workspace.config_schema import process_workspace_config

    workspace = yaml.safe_load((PROJECT_DIR / "workspace.yaml").read_text())
    assert (
        workspace["load_from"][0]["python_module"]["module_name"]
        == "migration_pipeline.definitions"
    )
    cloud = process_workspace_config(
        yaml.safe_load((PROJECT_DIR / "dagster_cloud.yaml").read_text())
    )
    assert cloud["locations"][0]["code_source"] == {"module_name": "migration_pipeline.definitions"}
