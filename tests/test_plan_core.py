"""The pure core as plain functions: rewrite per target, conflicts, Dockerfiles, the scan, the
plan's summary and settings change, and apply's backups."""

from __future__ import annotations

import stat

import pytest
import yaml
from plan_corpus import CORPUS
from support.inventory import inventory_of
from test_plan_corpus import write_project

from migration_pipeline.cloud_yaml.edit import Edits, apply_edits
from migration_pipeline.cloud_yaml.model import load_cloud_yaml
from migration_pipeline.cloud_yaml.rewrite import rewrite_cloud_yaml
from migration_pipeline.layouts.files import ProjectFiles, read_project
from migration_pipeline.lib.files import TEMP_MARK
from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.plan.dockerfile import BuildContext, render_dockerfile
from migration_pipeline.targets import get_target, load_target_settings

ONE = "locations:\n  - location_name: etl\n    code_source:\n      package_name: etl\n"


def project(files: dict[str, str]) -> ProjectFiles:
    return ProjectFiles("/project", dict(files))


def plan_for(
    files, target="kubernetes", settings_text=None, registry="ghcr.io/acme", inventory=None
):
    settings = load_target_settings(target, settings_text, "settings.yaml", registry=registry)
    return make_plan(
        project(files),
        target,
        settings,
        inventory_of(**inventory) if isinstance(inventory, dict) else inventory,
    )


def rewritten(plan) -> dict:
    return yaml.safe_load(next(f.new for f in plan.files if f.path == plan.cloud_yaml))


def test_kubernetes_settings_become_the_container_context():
    settings = (
        "namespace: data\nenv_secrets: [snowflake]\nenv_vars: [TZ=UTC]\n"
        "image_pull_secrets: [ghcr-pull]\nservice_account_name: dagster\n"
        "resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}\n"
    )
    plan = plan_for({"dagster_cloud.yaml": ONE}, settings_text=settings)
    location = rewritten(plan)["locations"][0]
    assert location["build"] == {"registry": "ghcr.io/acme/etl"}
    assert location["container_context"]["k8s"] == {
        "namespace": "data",
        "env_secrets": ["snowflake"],
        "env_vars": ["TZ=UTC"],
        "image_pull_secrets": [{"name": "ghcr-pull"}],
        "service_account_name": "dagster",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    }


def test_ecs_docker_and_local_settings():
    ecs = plan_for(
        {"dagster_cloud.yaml": ONE},
        "ecs",
        (
            "task_role_arn: arn:aws:iam::123456789012:role/dagster-task\n"
            "execution_role_arn: arn:aws:iam::123456789012:role/dagster-exec\n"
            "cpu: '512'\nmemory: '1024'\n"
            "secrets: [{name: DB_PASSWORD, valueFrom: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db'}]\n"
        ),
        registry="123456789012.dkr.ecr.us-east-1.amazonaws.com/acme",
    )
    context = rewritten(ecs)["locations"][0]["container_context"]["ecs"]
    assert (
        context["server_resources"] == context["run_resources"] == {"cpu": "512", "memory": "1024"}
    )
    assert context["secrets"][0]["valueFrom"].startswith("arn:aws:secretsmanager")
    assert context["task_role_arn"].endswith("dagster-task")

    docker = plan_for(
        {"dagster_cloud.yaml": ONE},
        "docker",
        "networks: [dagster]\n",
        registry="localhost:5000/acme",
    )
    assert rewritten(docker)["locations"][0]["container_context"] == {
        "docker": {"networks": ["dagster"]}
    }

    local = plan_for(
        {"dagster_cloud.yaml": ONE},
        "local",
        "executable_path: /opt/venv/bin/python\n",
        registry=None,
    )
    location = rewritten(local)["locations"][0]
    assert location["executable_path"] == "/opt/venv/bin/python"
    assert "build" not in location and "container_context" not in location
    assert [f.path for f in local.files] == ["dagster_cloud.yaml"]  # no images for a Local agent


def test_shared_layout_puts_every_location_in_one_repository():
    plan = plan_for(CORPUS["nested_monorepo"], settings_text="image_layout: shared\n")
    assert set(plan.images.values()) == {"ghcr.io/acme"}
    assert len(plan.images) == 5


def test_location_names_become_valid_repository_names():
    plan = plan_for(CORPUS["odd_location_names"])
    assert plan.images == {
        "Data_Science-Prod": "ghcr.io/acme/data_science-prod",
        "ETL.v2": "ghcr.io/acme/etl.v2",
    }


def test_a_conflicting_user_value_is_kept_and_reported():
    plan = plan_for(CORPUS["registry_already_set"])
    location = rewritten(plan)["locations"][0]
    assert location["build"]["registry"] == "ghcr.io/legacy/reporting"
    (warning,) = [w for w in plan.warnings if "kept your" in w.message]
    assert warning.file == "dagster_cloud.yaml" and warning.line == 7
    assert "ghcr.io/acme/reporting" in warning.message
    assert "kept your 'ghcr.io/legacy/reporting'" in plan.summary_markdown()


def test_defaults_are_honoured_not_duplicated():
    settings = "namespace: data\n"
    files = {
        "dagster_cloud.yaml": "defaults:\n  container_context:\n    k8s:\n      namespace: data\n"
        "      env_vars: [A=1]\n" + ONE
    }
    plan = plan_for(files, settings_text=settings)
    data = rewritten(plan)
    # The namespace comes from defaults already: nothing added for it, nothing reported.
    assert "container_context" not in data["locations"][0]
    assert not [w for w in plan.warnings if "kept" in w.message]


def test_edit_engine_keeps_every_other_byte():
    text = (
        "# head\nlocations:   # the list\n  - location_name: a    # first\n"
        "    code_source: {package_name: a}   # flow\n\n  # between\n"
        "  - location_name: b\n    code_source:\n      package_name: b\n# tail\n"
    )
    cloud = load_cloud_yaml(text)
    edits = Edits()
    edits.add_entries(("locations", 0, "code_source"), {"x": 1})
    edits.add_entries(("locations", 1), {"build": {"registry": "r"}})
    out = apply_edits(cloud.source, edits)
    assert out == (
        "# head\nlocations:   # the list\n  - location_name: a    # first\n"
        "    code_source: {package_name: a, x: 1}   # flow\n\n  # between\n"
        "  - location_name: b\n    code_source:\n      package_name: b\n"
        "    build:\n      registry: r\n# tail\n"
    )


def test_anchor_users_are_not_changed_by_an_edit_for_another_location():
    cloud = load_cloud_yaml(CORPUS["anchor_alias_build"]["dagster_cloud.yaml"])
    target = get_target("kubernetes")
    result = rewrite_cloud_yaml(
        cloud, target, load_target_settings("kubernetes", registry="r.io/x")
    )
    data = yaml.safe_load(result.text)
    assert data["locations"][0]["build"] == {"directory": "./etl", "registry": "r.io/x/raw"}
    assert data["locations"][1]["build"] == {"directory": "./etl", "registry": "r.io/x/curated"}
    assert "<<: *shared_build" in result.text


def test_dockerfile_runs_the_hooks_around_the_install():
    text = render_dockerfile(
        BuildContext(
            locations=("analytics",),
            python_version="3.10",
            has_requirements=True,
            has_pyproject=True,
            pre_install_hook=True,
            post_install_hook=True,
        )
    )
    lines = text.splitlines()
    assert "FROM python:3.10-slim" in lines
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(prefix))
        for prefix in (
            "RUN bash /tmp/dagster_cloud_pre_install.sh",
            "RUN pip install -r requirements.txt",
            "COPY . ./",
            "RUN pip install .",
            "RUN bash dagster_cloud_post_install.sh",
        )
    ]
    assert order == sorted(order)
    assert "RUN pip install dagster-cloud" in lines

    custom = render_dockerfile(
        BuildContext(
            locations=("x",),
            base_image="acme/python:3.11-gpu",
            working_directory="/srv/app",
            mentions_dagster_cloud=True,
        )
    )
    assert "FROM acme/python:3.11-gpu" in custom and "WORKDIR /srv/app" in custom
    assert "pip install dagster-cloud" not in custom


def test_python_version_comes_from_the_serverless_workflow():
    plan = plan_for(CORPUS["serverless_workflow"])
    assert plan.python_version == "3.11"
    assert plan.python_version_source.startswith(".github/workflows/dagster-cloud-deploy.yml:")
    dockerfile = next(f.new for f in plan.files if f.path == "Dockerfile")
    assert "FROM python:3.11-slim" in dockerfile
    assert plan_for(CORPUS["gitlab_python_version"]).python_version == "3.10"
    # None named: Serverless's own default (dagster_cloud_cli's DEFAULT_PYTHON_VERSION).
    from dagster_cloud_cli.utils import DEFAULT_PYTHON_VERSION

    assert plan_for(CORPUS["single_package"]).python_version == "3.11" == DEFAULT_PYTHON_VERSION
    assert (
        plan_for(CORPUS["single_package"], settings_text="python_version: '3.9'\n").python_version
        == "3.9"
    )


def test_serverless_only_features_are_reported_with_file_line_and_fix():
    inventory = {"settings": {"non_isolated_runs": {"enabled": True}, "run_queue": {"max": 1}}}
    plan = plan_for(
        CORPUS["serverless_features_in_code"],
        "ecs",
        registry="123456789012.dkr.ecr.us-east-1.amazonaws.com/acme",
        inventory=inventory,
    )
    isolation = next(w for w in plan.warnings if "dagster/isolation" in w.message)
    assert (isolation.file, isolation.line) == ("features/__init__.py", 4)
    # Hybrid agents run non-isolated runs too: the tag keeps working, the setting is kept.
    assert "Hybrid agents run these too" in isolation.message
    assert "in_process_executor" in isolation.fix
    io_manager = next(w for w in plan.warnings if "Serverless I/O manager" in w.message)
    assert (io_manager.file, io_manager.line) == ("features/__init__.py", 2)
    assert "S3PickleIOManager" in io_manager.fix
    kept = next(w for w in plan.warnings if "`non_isolated_runs` setting is kept" in w.message)
    assert "in_process_executor" in kept.fix and "multiprocess_executor" in kept.fix
    assert plan.settings_change.removed == ()
    assert plan.settings_change.after == inventory["settings"]
    assert "Deployment settings are kept as they are." in plan.summary_markdown()


def test_non_isolated_runs_are_removed_only_when_the_settings_ask():
    inventory = {"settings": {"non_isolated_runs": {"enabled": True}, "run_queue": {"max": 1}}}
    plan = plan_for(
        CORPUS["serverless_features_in_code"],
        "ecs",
        settings_text="remove_non_isolated_runs: true\n",
        registry="123456789012.dkr.ecr.us-east-1.amazonaws.com/acme",
        inventory=inventory,
    )
    assert plan.settings_change.removed == ("non_isolated_runs",)
    assert plan.settings_change.after == {"run_queue": {"max": 1}}
    assert "Remove the deployment setting `non_isolated_runs`" in plan.summary_markdown()
    definitions = next(w for w in plan.warnings if "could run non-isolated" in w.message)
    assert (definitions.file, definitions.line) == ("features/__init__.py", 8)
    isolation = next(w for w in plan.warnings if "dagster/isolation" in w.message)
    assert "the run will be isolated" in isolation.message


def test_existing_dockerfile_is_kept():
    plan = plan_for(CORPUS["existing_dockerfile"])
    assert "custom/Dockerfile" not in [f.path for f in plan.files]
    assert any(
        w.file == "custom/Dockerfile" and "kept your Dockerfile" in w.message for w in plan.warnings
    )


def test_apply_keeps_a_backup_and_the_file_mode(tmp_path):
    write_project(tmp_path, {"dagster_cloud.yaml": ONE, "requirements.txt": "dagster\n"})
    (tmp_path / "dagster_cloud.yaml").chmod(0o640)
    plan = make_plan(
        read_project(tmp_path),
        "kubernetes",
        load_target_settings("kubernetes", registry="ghcr.io/acme"),
    )
    result = apply_plan(plan, tmp_path, stamp="T1")
    assert result.written == ["dagster_cloud.yaml", "Dockerfile", ".dockerignore"]
    assert (tmp_path / ".migration_backup/T1/dagster_cloud.yaml").read_text() == ONE
    assert stat.S_IMODE((tmp_path / "dagster_cloud.yaml").stat().st_mode) == 0o640
    assert not list(tmp_path.rglob(f"*{TEMP_MARK}*"))
    again = apply_plan(
        make_plan(
            read_project(tmp_path),
            "kubernetes",
            load_target_settings("kubernetes", registry="ghcr.io/acme"),
        ),
        tmp_path,
    )
    assert again.written == [] and sorted(again.unchanged) == sorted(result.written)


def test_the_plan_is_plain_data_with_a_diff():
    plan = plan_for(CORPUS["two_locations_hooks"])
    diff = plan.diff()
    assert diff.startswith("--- a/dagster_cloud.yaml\n+++ b/dagster_cloud.yaml\n")
    assert "+++ b/marketing/Dockerfile" in diff and "--- /dev/null" in diff
    as_dict = plan.as_dict()
    assert as_dict["target"] == "kubernetes" and len(as_dict["files"]) == 5
    # Nothing but plain data: YAML's safe dumper refuses anything else, and it round-trips.
    assert yaml.safe_load(yaml.safe_dump(as_dict)) == as_dict


@pytest.mark.parametrize("layout", ["per_location", "shared"])
def test_rewrite_is_idempotent_on_its_own_output(layout):
    files = dict(CORPUS["heavily_commented"])
    first = plan_for(files, settings_text=f"image_layout: {layout}\n")
    files["dagster_cloud.yaml"] = first.files[0].new
    second = plan_for(files, settings_text=f"image_layout: {layout}\n")
    assert second.files[0].action == "unchanged"


@pytest.mark.parametrize(
    "registry,secrets,login",
    [
        ("ghcr.io/acme", ["DAGSTER_CLOUD_API_TOKEN"], "docker/login-action@v3"),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme",
            ["DAGSTER_CLOUD_API_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
            "aws-actions/amazon-ecr-login@v2",
        ),
        (
            "registry.acme.test:5000/data",
            ["DAGSTER_CLOUD_API_TOKEN", "REGISTRY_USERNAME", "REGISTRY_PASSWORD"],
            "docker/login-action@v3",
        ),
    ],
)
def test_the_serverless_workflow_is_replaced_by_a_hybrid_one(registry, secrets, login):
    plan = plan_for(
        CORPUS["two_locations_hooks"]
        | {
            ".github/workflows/deploy.yml": CORPUS["serverless_workflow"][
                ".github/workflows/dagster-cloud-deploy.yml"
            ]
        },
        registry=registry,
    )
    (workflow_file,) = [f for f in plan.files if f.path == ".github/workflows/deploy.yml"]
    assert workflow_file.action == "update"
    assert "-  ENABLE_FAST_DEPLOYS: 'true'" in workflow_file.diff()
    workflow = yaml.safe_load(workflow_file.new)
    steps = workflow["jobs"]["dagster_plus_deploy"]["steps"]
    runs = [step.get("run", "") for step in steps]
    uses = [step.get("uses", "") for step in steps]
    # `ci check` is deprecated in 1.13.27: `ci init` validates dagster_cloud.yaml itself.
    assert not any("ci check" in run for run in runs)
    assert runs[3] == (
        "dagster-cloud ci init --project-dir . --dagster-cloud-yaml-path "
        '"$DAGSTER_CLOUD_YAML" --deployment "$DAGSTER_CLOUD_DEPLOYMENT"'
    )
    assert runs[2] == "pip install dagster-cloud==1.13.27"
    assert runs[-2:] == [
        "dagster-cloud ci deploy",
        'dagster-cloud ci status --output-format markdown >> "$GITHUB_STEP_SUMMARY"',
    ]
    assert login in uses
    for location in ("marketing", "finance"):
        (record,) = [s for s in steps if s.get("name") == f"Record the image of {location}"]
        assert record["env"] == {"LOCATION_NAME": location, "LOCATION_TAG": location}
        assert record["run"] == (
            "dagster-cloud ci set-build-output --location-name "
            '"$LOCATION_NAME" --image-tag "$IMAGE_TAG-$LOCATION_TAG"'
        )
        (build,) = [s for s in steps if s.get("name") == f"Build and push {location}"]
        assert build["with"]["context"] == location
        assert build["with"]["tags"] == f"{registry}/{location}:${{{{ env.IMAGE_TAG }}}}-{location}"
    assert workflow["env"]["DAGSTER_CLOUD_URL"] == "https://acme.dagster.cloud"
    assert workflow["env"]["DAGSTER_CLOUD_ORGANIZATION"] == "acme"
    assert workflow["env"]["DAGSTER_CLOUD_DEPLOYMENT"] == "prod"
    # The old workflow's triggers are kept (the emitter quotes `on`, a YAML 1.1 boolean).
    assert workflow["on"] == {"push": {"branches": ["main"]}, "workflow_dispatch": None}
    named = set(__import__("re").findall(r"secrets\.([A-Z_]+)", workflow_file.new))
    assert named - {"GITHUB_TOKEN"} == set(secrets) == set(plan.ci_secrets)
    assert all(f"`{secret}`" in plan.summary_markdown() for secret in secrets)
    assert not [w for w in plan.warnings if "Serverless CI workflow" in w.message]


def test_pull_requests_and_branch_deployments_are_kept():
    """An organization with branch deployments (or an old workflow deploying pull requests)
    gets them from the Hybrid workflow: pull request triggers, `ci init` creating the branch
    deployment, and the closing of a pull request closing it."""
    workflow_text = CORPUS["serverless_workflow"][".github/workflows/dagster-cloud-deploy.yml"]
    branch_text = (
        "name: Serverless Branch Deployments\non:\n  pull_request:\n"
        "    types: [opened, synchronize]\nenv:\n  ENABLE_FAST_DEPLOYS: 'true'\njobs:\n"
        "  d:\n    steps:\n      - uses: dagster-io/dagster-cloud-action/actions/"
        "serverless_branch_deploy@v0.1\n"
    )
    plan = plan_for(
        CORPUS["two_locations_hooks"]
        | {
            ".github/workflows/deploy.yml": workflow_text,
            ".github/workflows/branch_deployments.yml": branch_text,
        },
        registry="ghcr.io/acme",
    )
    assert plan.branch_deployments
    (workflow_file,) = [f for f in plan.files if f.path.startswith(".github/")]
    assert workflow_file.path == ".github/workflows/branch_deployments.yml"  # the first, sorted
    workflow = yaml.safe_load(workflow_file.new)
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert workflow["on"]["pull_request"] == {"types": ["opened", "synchronize", "closed"]}
    steps = workflow["jobs"]["dagster_plus_deploy"]["steps"]
    (close,) = [s for s in steps if "--mark-closed" in s.get("run", "")]
    assert close["if"] == "github.event_name == 'pull_request' && github.event.action == 'closed'"
    assert all(
        s["if"] == "github.event.action != 'closed'"
        for s in steps
        if "ci init" in s.get("run", "") or "ci deploy" in s.get("run", "")
    )
    (other,) = [w for w in plan.warnings if w.file == ".github/workflows/deploy.yml"]
    assert "remove this Serverless workflow" in other.message

    # The inventory alone says so too, for a workflow that only deploys pushes.
    plan = plan_for(
        CORPUS["two_locations_hooks"] | {".github/workflows/deploy.yml": workflow_text},
        registry="ghcr.io/acme",
        inventory={
            "uses_branch_deployments": True,
            "deployment": "prod",
            "organization_url": "https://acme.dagster.cloud",
        },
    )
    workflow = yaml.safe_load(next(f.new for f in plan.files if f.path.startswith(".github/")))
    assert workflow["on"]["pull_request"] == {
        "types": ["opened", "synchronize", "reopened", "closed"]
    }


@pytest.mark.parametrize(
    "url,organization",
    [
        ("https://acme.dagster.cloud", "acme"),
        ("https://acme.dagster.cloud/prod", "acme"),
        ("https://acme.eu.dagster.cloud", "acme"),
        ("https://acme-data.us.dagster.cloud/", "acme-data"),
        ("https://acme.dagster.plus", "acme"),
        ("https://acme.eu.dagster.plus/prod", "acme"),
        ("https://dagster.cloud/acme", "acme"),
        ("http://127.0.0.1:3030", None),
        ("https://dagster.example.com", None),
    ],
)
def test_the_organization_is_read_from_every_form_of_the_url(url, organization):
    from migration_pipeline.ci.common import organization_from_url

    assert organization_from_url(url) == organization


def test_an_organization_that_cannot_be_derived_is_a_setting_or_a_warning():
    files = CORPUS["two_locations_hooks"] | {
        ".github/workflows/deploy.yml": CORPUS["serverless_workflow"][
            ".github/workflows/dagster-cloud-deploy.yml"
        ]
    }
    inventory = {"deployment": "prod", "organization_url": "http://127.0.0.1:3030"}
    plan = plan_for(files, registry="ghcr.io/acme", inventory=inventory)
    assert any("set `organization` in the target settings" in w.message for w in plan.warnings)
    plan = plan_for(
        files, settings_text="organization: hooli\n", registry="ghcr.io/acme", inventory=inventory
    )
    workflow = yaml.safe_load(next(f.new for f in plan.files if f.path.startswith(".github/")))
    assert workflow["env"]["DAGSTER_CLOUD_ORGANIZATION"] == "hooli"
    assert workflow["env"]["DAGSTER_CLOUD_URL"] == "http://127.0.0.1:3030"


def test_no_workflow_for_a_local_agent_and_a_warning_kept():
    plan = plan_for(CORPUS["serverless_workflow"], "local", registry=None)
    assert [f.path for f in plan.files] == ["dagster_cloud.yaml"]
    assert any("Serverless CI workflow" in w.message for w in plan.warnings)


def test_gitlab_projects_get_a_hybrid_job_to_include():
    plan = plan_for(
        CORPUS["gitlab_python_version"],
        registry="registry.acme.test/data",
        inventory={"deployment": "prod", "organization_url": "https://acme.eu.dagster.cloud"},
    )
    (job_file,) = [f for f in plan.files if f.path == ".gitlab/dagster-plus-hybrid.yml"]
    job = yaml.safe_load(job_file.new)["dagster_plus_hybrid_deploy"]
    script = job["script"]
    assert script[0].startswith("dagster-cloud ci init") and script[-1] == "dagster-cloud ci deploy"
    assert not any("ci check" in line for line in script)
    # `ci init` and `ci check` need the organization: the job sets it, with the URL.
    assert job["variables"]["DAGSTER_CLOUD_ORGANIZATION"] == "acme"
    assert job["variables"]["DAGSTER_CLOUD_DEPLOYMENT"] == "prod"
    assert (
        'printf %s "$REGISTRY_PASSWORD" | docker login --username "$REGISTRY_USERNAME" '
        "--password-stdin registry.acme.test"
    ) in script
    assert (
        'dagster-cloud ci set-build-output --location-name geo --image-tag "$IMAGE_TAG"-geo'
    ) in script
    assert plan.ci_secrets == ("DAGSTER_CLOUD_API_TOKEN", "REGISTRY_USERNAME", "REGISTRY_PASSWORD")
    assert "(DAGSTER_CLOUD_API_TOKEN: a Dagster+ agent token)" in job_file.new.splitlines()[2]
    (include,) = [w for w in plan.warnings if "include" in w.message]
    assert include.file == ".gitlab-ci.yml"
    assert "include .gitlab/dagster-plus-hybrid.yml" in include.message
    assert "gitlab-ci.yml" not in [f.path for f in plan.files]  # the user's file is not edited
