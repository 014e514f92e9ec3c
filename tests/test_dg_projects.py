"""dg projects and workspaces, planned as plain functions: which layout is found (and where),
which name each project keeps, what is written for each target, and that dg's own code
(dagster-dg-core and dagster-dg-cli 1.13.27) reads the result as intended."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
import yaml
from support.inventory import inventory_of
from test_plan_corpus import write_project

from migration_pipeline.layouts.detect import detect_layout
from migration_pipeline.layouts.files import read_project
from migration_pipeline.lib.problems import InvalidInput
from migration_pipeline.plan.apply import apply_plan
from migration_pipeline.plan.core import make_plan
from migration_pipeline.targets import load_target_settings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "serverless_dg_workspace"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme"


def dg_project(name: str, extra: str = "", requires: str = ">=3.11,<3.14") -> str:
    return (
        f'[project]\nname = "{name}"\nrequires-python = "{requires}"\nversion = "0.1.0"\n'
        'dependencies = ["dagster==1.13.27"]\n\n'
        '[tool.dg]\ndirectory_type = "project"\n\n'
        f'[tool.dg.project]\nroot_module = "{name}"\n{extra}'
    )


def project_files(name: str, folder: str = ".", extra: str = "") -> dict[str, str]:
    prefix = "" if folder == "." else folder + "/"
    return {
        f"{prefix}pyproject.toml": dg_project(name, extra),
        f"{prefix}src/{name}/__init__.py": "",
        f"{prefix}src/{name}/definitions.py": "import dagster as dg\n\ndefs = dg.Definitions()\n",
    }


def workspace(*projects: str) -> str:
    return 'directory_type = "workspace"\n\n[workspace]\n' + "".join(
        f'\n[[workspace.projects]]\npath = "{p}"\n' for p in projects
    )


def live(*names_and_modules: tuple[str, str]):
    return inventory_of(
        locations_document={
            "locations": [
                {"location_name": n, "code_source": {"module_name": m}}
                for n, m in names_and_modules
            ]
        }
    )


def plan_for(root: Path, target: str = "kubernetes", settings: str = "", inventory=None):
    registry = None if target == "local" else REGISTRY
    return make_plan(
        read_project(root),
        target,
        load_target_settings(target, settings, registry=registry),
        inventory,
    )


def files_of(plan) -> dict[str, str]:
    return {f.path: f.new for f in plan.files}


# -- layouts -----------------------------------------------------------------------------------


def test_each_layout_is_found_with_the_file_and_line_that_say_so(tmp_path):
    top = tmp_path / "top"
    write_project(top, project_files("shop"))
    layout = detect_layout(read_project(top))
    assert (layout.kind, layout.root, layout.where()) == ("dg_project", ".", "pyproject.toml:8")

    sub = tmp_path / "sub"
    write_project(sub, {"README.md": "", **project_files("shop", "orchestration")})
    layout = detect_layout(read_project(sub))
    assert (layout.kind, layout.root) == ("dg_project", "orchestration")
    assert "--target-path orchestration" in layout.evidence

    layout = detect_layout(read_project(EXAMPLE))
    assert (layout.kind, layout.where()) == ("dg_workspace", "dg.toml:3")
    assert layout.describe(3) == "dg workspace (3 projects)"

    legacy = tmp_path / "legacy"
    write_project(legacy, {"dagster_cloud.yaml": "locations: []\n"})
    assert detect_layout(read_project(legacy)).kind == "legacy"


def test_a_repository_with_both_is_decided_by_its_deploy_workflow(tmp_path):
    cloud_yaml = (
        "locations:\n  - location_name: shop\n    code_source: {module_name: shop.definitions}\n"
    )
    files = {**project_files("shop"), "dagster_cloud.yaml": cloud_yaml}
    dg_flow = {".github/workflows/deploy.yml": "steps:\n  - run: dg plus deploy --yes\n"}
    legacy_flow = {
        ".github/workflows/deploy.yml": "steps:\n  - uses: dagster-io/dagster-cloud-action/"
        "actions/serverless_prod_deploy@v1.13.27\n"
    }

    write_project(tmp_path / "dg", {**files, **dg_flow})
    layout = detect_layout(read_project(tmp_path / "dg"))
    assert layout.kind == "dg_project"
    assert "dg plus deploy ignores" in layout.notes[0] and "deploy.yml:2" in layout.notes[0]

    write_project(tmp_path / "legacy", {**files, **legacy_flow})
    layout = detect_layout(read_project(tmp_path / "legacy"))
    assert layout.kind == "legacy" and "deploy.yml:2" in layout.notes[0]

    write_project(tmp_path / "neither", files)
    with pytest.raises(InvalidInput) as refused:
        detect_layout(read_project(tmp_path / "neither"))
    assert "set `layout: dg`" in str(refused.value)
    assert detect_layout(read_project(tmp_path / "neither"), "legacy").kind == "legacy"
    assert detect_layout(read_project(tmp_path / "neither"), "dg").kind == "dg_project"


def test_dgs_build_yaml_at_the_top_is_not_taken_for_the_legacy_locations_file(tmp_path):
    write_project(tmp_path, {**project_files("shop"), "build.yaml": f"registry: {REGISTRY}\n"})
    assert detect_layout(read_project(tmp_path)).kind == "dg_project"


# -- names -------------------------------------------------------------------------------------


def test_the_example_keeps_every_live_name_and_writes_the_unset_ones(tmp_path):
    inventory = live(
        ("ingest", "ingest.definitions"),
        ("warehouse_marts", "marts.definitions"),
        ("ml", "ml.definitions"),
    )
    plan = plan_for(EXAMPLE, inventory=inventory)
    assert plan.locations == ("ingest", "warehouse_marts", "ml")
    assert plan.names_kept == plan.locations and plan.names_checked
    files = files_of(plan)
    ingest = tomllib.loads(files["projects/ingest/pyproject.toml"])
    assert ingest["tool"]["dg"]["project"]["code_location_name"] == "ingest"
    assert "projects/marts/pyproject.toml" not in files  # it sets its own
    assert "Location names kept: 3/3" in plan.summary_markdown()


def test_the_toml_edit_keeps_comments_order_and_formatting(tmp_path):
    text = dg_project(
        "shop",
        '# Components live here.\nregistry_modules = [\n    "shop.components.*",  # ours\n]\n',
    ).replace("[tool.dg]", "# dg's settings\n[tool.dg]")
    write_project(tmp_path / "shop", {**project_files("shop"), "pyproject.toml": text})
    plan = plan_for(tmp_path / "shop", inventory=live(("shop", "shop.definitions")))
    new = files_of(plan)["pyproject.toml"]
    assert new == text + 'code_location_name = "shop"\n'


def test_a_project_is_matched_to_the_live_location_that_loads_its_module(tmp_path):
    write_project(
        tmp_path, {"dg.toml": workspace("projects/shop"), **project_files("shop", "projects/shop")}
    )
    plan = plan_for(tmp_path, inventory=live(("storefront", "shop.definitions")))
    assert plan.locations == ("storefront",) and plan.names_kept == ("storefront",)
    assert "the live location that loads shop.definitions" in plan.changes[0]


def test_names_that_do_not_match_are_warnings_with_both_names(tmp_path):
    write_project(tmp_path, {"dg.toml": workspace("a"), **project_files("a", "a")})
    plan = plan_for(tmp_path, inventory=live(("old_name", "other.definitions")))
    messages = [w.message for w in plan.warnings]
    assert any(
        "deploys as 'a', which the deployment does not have" in m and "old_name" in m
        for m in messages
    )
    assert any("the live location 'old_name' has no project here" in m for m in messages)
    assert plan.names_kept == ()


def test_a_root_project_is_pinned_to_its_name_whatever_folder_ci_checks_it_out_into(tmp_path):
    root = tmp_path / "data-platform"
    write_project(root, project_files("shop"))
    plan = plan_for(root, inventory=live(("data-platform", "shop.definitions")))
    assert (
        tomllib.loads(files_of(plan)["pyproject.toml"])["tool"]["dg"]["project"][
            "code_location_name"
        ]
        == "data-platform"
    )
    assert any("folder CI checks it out into" in w.message for w in plan.warnings)


# -- what is written ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "key", "settings"),
    [
        ("kubernetes", "k8s", "namespace: data\nenv_vars: [MODE=prod]\n"),
        ("ecs", "ecs", "env_vars: [MODE=prod]\n"),
        ("docker", "docker", "env_vars: [MODE=prod]\n"),
        ("azure", "k8s", "namespace: data\n"),
    ],
)
def test_every_containerized_target_gets_what_dg_reads(tmp_path, target, key, settings):
    registry = "acmedata.azurecr.io/dagster" if target == "azure" else REGISTRY
    plan = make_plan(
        read_project(EXAMPLE), target, load_target_settings(target, settings, registry=registry)
    )
    files = files_of(plan)
    for project, name in (("ingest", "ingest"), ("marts", "warehouse_marts"), ("ml", "ml")):
        build = yaml.safe_load(files[f"projects/{project}/build.yaml"])
        assert build == {"registry": f"{registry}/{name}", "directory": "."}
        context = yaml.safe_load(files[f"projects/{project}/container_context.yaml"])
        assert list(context) == [key] and context[key]
        assert f"projects/{project}/Dockerfile" in files
        assert plan.images[name] == f"{registry}/{name}"
    assert "uv sync --frozen --no-dev" in files["projects/ingest/Dockerfile"]
    # Editable: dg's load_from_defs_folder finds pyproject.toml from the code's own path.
    assert "RUN pip install -e .\n" in files["projects/ml/Dockerfile"]
    assert "RUN uv" not in files["projects/ml/Dockerfile"]


def test_local_writes_only_the_names_and_deploys_module_working_directory_and_executable(
    tmp_path,
):
    from migration_pipeline.layouts.dg import read_dg
    from migration_pipeline.plan.dg import dg_deploy_document
    from migration_pipeline.targets import get_target

    plan = plan_for(EXAMPLE, "local", "executable_path: /opt/venv/bin/python\n")
    assert {f.path for f in plan.files} == {
        "projects/ingest/pyproject.toml",
        "projects/ml/pyproject.toml",
    }
    assert plan.images == {}
    project = read_project(EXAMPLE)
    settings = load_target_settings("local", "executable_path: /opt/venv/bin/python\n")
    document = dg_deploy_document(
        read_dg(project, detect_layout(project)), get_target("local"), settings
    )
    ingest = document["locations"][0]
    assert ingest["code_source"] == {"module_name": "ingest.definitions"}
    assert ingest["working_directory"] == "projects/ingest/src"
    assert ingest["executable_path"] == "/opt/venv/bin/python"


def test_python_comes_from_the_project_never_from_a_version_it_refuses(tmp_path):
    flow = {".github/workflows/deploy.yml": 'env:\n  PYTHON_VERSION: "3.10"\n'}
    write_project(tmp_path / "a", {**project_files("a"), **flow})
    plan = plan_for(tmp_path / "a")
    assert plan.python_version == "3.11" and "requires-python" in plan.python_version_source
    assert "FROM python:3.11-slim" in files_of(plan)["Dockerfile"]

    write_project(tmp_path / "b", {**project_files("b"), ".python-version": "3.12.4\n"})
    plan = plan_for(tmp_path / "b")
    assert (plan.python_version, plan.python_version_source) == ("3.12", ".python-version")


def test_a_placeholder_registry_is_replaced_and_a_real_one_kept(tmp_path):
    placeholder = "<account-id>.dkr.ecr.<region>.amazonaws.com/<image-name>"
    write_project(
        tmp_path / "shop",
        {
            **project_files("shop"),
            "build.yaml": f"# from the quickstart\nregistry: {placeholder}\n",
        },
    )
    plan = plan_for(tmp_path / "shop")
    build = files_of(plan)["build.yaml"]
    assert build.startswith("# from the quickstart\n")
    assert yaml.safe_load(build) == {"registry": f"{REGISTRY}/shop", "directory": "."}
    assert any("holds the placeholder '<account-id>'" in w.message for w in plan.warnings)

    mine = "ghcr.io/acme/shop"
    write_project(
        tmp_path / "mine" / "shop", {**project_files("shop"), "build.yaml": f"registry: {mine}\n"}
    )
    plan = plan_for(tmp_path / "mine" / "shop")
    assert yaml.safe_load(files_of(plan)["build.yaml"]) == {"registry": mine, "directory": "."}
    assert plan.images == {"shop": mine}


def test_a_value_set_in_the_workspace_and_a_project_is_reported_not_doubled_silently(tmp_path):
    write_project(
        tmp_path,
        {
            "dg.toml": workspace("a"),
            "container_context.yaml": "k8s:\n  env_vars: [MODE=prod, REGION=eu]\n",
            # REGION=eu as the workspace has it: dg drops the duplicate; MODE differs: both stay.
            "a/container_context.yaml": "k8s:\n  env_vars: [MODE=dev, REGION=eu]\n",
            **project_files("a", "a"),
        },
    )
    plan = plan_for(tmp_path, settings="env_vars: [EXTRA=1]\n")
    doubled = [w for w in plan.warnings if "dg concatenates" in w.message]
    assert len(doubled) == 1 and "k8s.env_vars sets MODE in both" in doubled[0].message
    # The target's env_vars are not added on top: the workspace sets the key already.
    context = files_of(plan).get("a/container_context.yaml")
    assert context is None or "EXTRA" not in context
    assert any("k8s.env_vars: kept your" in w.message for w in plan.warnings)


def test_an_old_shape_build_yaml_with_one_location_is_converted(tmp_path):
    old = "locations:\n  - location_name: shop\n    build:\n      directory: .\n"
    write_project(tmp_path / "shop", {**project_files("shop"), "build.yaml": old})
    plan = plan_for(tmp_path / "shop")
    assert yaml.safe_load(files_of(plan)["build.yaml"]) == {
        "directory": ".",
        "registry": f"{REGISTRY}/shop",
    }
    assert any("old dagster_cloud.yaml shape" in w.message for w in plan.warnings)


def test_agent_queue_from_the_settings_goes_into_each_project(tmp_path):
    plan = plan_for(EXAMPLE, settings="agent_queue: hybrid\n")
    for project in ("ingest", "marts", "ml"):
        data = tomllib.loads(files_of(plan)[f"projects/{project}/pyproject.toml"])
        assert data["tool"]["dg"]["project"]["agent_queue"] == "hybrid"


def test_a_dg_project_already_on_hybrid_is_reported_and_nothing_rewritten(tmp_path):
    with pytest.raises(InvalidInput) as refused:
        plan_for(EXAMPLE, inventory=inventory_of(agent_type="HYBRID"))
    assert "already HYBRID" in str(refused.value) and "dg.toml:3" in str(refused.value)


# -- dg's own code reads the result ------------------------------------------------------------


@pytest.mark.parametrize("target", ["kubernetes", "ecs", "docker", "azure"])
def test_dg_plus_deploy_reads_the_migrated_example_as_planned(tmp_path, target):
    """What `dg plus deploy start` writes into its state directory, by dg's own code, from the
    migrated example: it validates with dagster-cloud's model, keeps every name, finds each
    Dockerfile where dg looks for it, and its container contexts validate for the agent."""
    from dagster_cloud_cli.config.models import load_dagster_cloud_yaml
    from dagster_dg_cli.cli.plus.build import get_dockerfile_path
    from dagster_dg_cli.cli.utils import create_temp_dagster_cloud_yaml_file
    from dagster_dg_core.context import DgContext

    from migration_pipeline.cloud_yaml.model import load_cloud_yaml
    from migration_pipeline.cloud_yaml.validate import validate_cloud_yaml
    from migration_pipeline.targets import get_target

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo)
    registry = "acmedata.azurecr.io/dagster" if target == "azure" else REGISTRY
    settings = load_target_settings(target, "env_vars: [MODE=prod]\n", registry=registry)
    inventory = live(
        ("ingest", "ingest.definitions"),
        ("warehouse_marts", "marts.definitions"),
        ("ml", "ml.definitions"),
    )
    apply_plan(make_plan(read_project(repo), target, settings, inventory), repo)

    context = DgContext.for_workspace_environment(repo, {})
    state = tmp_path / "state"
    state.mkdir()
    text = Path(create_temp_dagster_cloud_yaml_file(context, str(state))).read_text()
    load_dagster_cloud_yaml(text)  # dagster-cloud's own model, extra="forbid"
    document = yaml.safe_load(text)
    assert [loc["location_name"] for loc in document["locations"]] == [
        "ingest",
        "warehouse_marts",
        "ml",
    ]
    for spec, loc in zip(context.project_specs, document["locations"], strict=True):
        project = context.with_root_path(repo / spec.path)
        assert get_dockerfile_path(project, context).is_file()
        assert loc["build"]["registry"] == f"{registry}/{loc['location_name']}"
    # dg writes absolute build directories; ours are relative to the repository.
    for loc in document["locations"]:
        loc["build"]["directory"] = Path(loc["build"]["directory"]).relative_to(repo).as_posix()
    problems = validate_cloud_yaml(
        load_cloud_yaml(yaml.safe_dump(document), "dagster_cloud.yaml"),
        get_target(target).container_context_key,
    )
    assert problems == []


def test_a_root_project_planned_from_inside_its_folder_is_named_after_that_folder(
    tmp_path, monkeypatch
):
    root = tmp_path / "shop"
    write_project(root, project_files("shop"))
    monkeypatch.chdir(root)
    plan = plan_for(Path("."))
    assert plan.locations == ("shop",)


def test_a_folder_name_that_cannot_be_a_location_name_asks_for_code_location_name(tmp_path):
    root = tmp_path / "my shop"
    write_project(root, project_files("shop"))
    with pytest.raises(InvalidInput) as refused:
        plan_for(root)
    message = str(refused.value)
    assert message.startswith("pyproject.toml:10: tool.dg.project: sets no code_location_name")
    assert "'my shop' is not a code location name" in message
