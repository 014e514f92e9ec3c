"""Bad input: each exits 2 with a message that names the file, the line and the key, and leaves
every file byte-identical."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_plan_corpus import snapshot, write_project

from migration_pipeline.cli import main

OK_LOCATION = "  - location_name: ok\n    code_source:\n      package_name: ok\n"


def cloud(body: str) -> dict[str, str]:
    return {"dagster_cloud.yaml": body, "requirements.txt": "dagster\n"}


# (case id, project files, extra command-line arguments, expected fragments of stderr)
CASES = [
    (
        "broken_yaml_indent",
        cloud("locations:\n  - location_name: a\n   code_source: x\n"),
        [],
        ["dagster_cloud.yaml:3:", "invalid YAML"],
    ),
    (
        "broken_yaml_unclosed_flow",
        cloud("locations:\n  - {location_name: a\n"),
        [],
        ["dagster_cloud.yaml:", "invalid YAML"],
    ),
    (
        "broken_yaml_unclosed_quote",
        cloud('locations:\n  - location_name: "a\n'),
        [],
        ["dagster_cloud.yaml:", "invalid YAML"],
    ),
    (
        "tab_indentation",
        cloud("locations:\n\t- location_name: a\n"),
        [],
        ["dagster_cloud.yaml:2:", "tabs"],
    ),
    (
        "duplicate_yaml_key",
        cloud(
            "locations:\n  - location_name: a\n    location_name: b\n"
            "    code_source: {package_name: a}\n"
        ),
        [],
        ["dagster_cloud.yaml:3:", "duplicate key"],
    ),
    (
        "undefined_alias",
        cloud("locations:\n  - location_name: a\n    build: *nothing\n"),
        [],
        ["dagster_cloud.yaml:3:", "invalid YAML"],
    ),
    (
        "two_documents",
        cloud(f"locations:\n{OK_LOCATION}---\nlocations: []\n"),
        [],
        ["dagster_cloud.yaml:5:", "more than one YAML document"],
    ),
    ("empty_file", cloud(""), [], ["dagster_cloud.yaml:", "is empty"]),
    ("not_a_mapping", cloud("- location_name: a\n"), [], ["dagster_cloud.yaml:1:", "mapping"]),
    (
        "no_locations_key",
        cloud("defaults:\n  working_directory: .\n"),
        [],
        ["dagster_cloud.yaml:1:", "no `locations:`"],
    ),
    (
        "empty_locations",
        cloud("locations: []\n"),
        [],
        ["dagster_cloud.yaml:1: locations:", "no code location"],
    ),
    (
        "unknown_top_level_key",
        cloud(f"locatons:\n{OK_LOCATION}"),
        [],
        ["dagster_cloud.yaml:1: locatons:", 'did you mean "locations"'],
    ),
    (
        "location_not_mapping",
        cloud("locations:\n  - just_a_string\n"),
        [],
        ["dagster_cloud.yaml:2: locations[0]:", "must be a mapping"],
    ),
    (
        "duplicate_location_names",
        cloud(f"locations:\n{OK_LOCATION}{OK_LOCATION}"),
        [],
        [
            "dagster_cloud.yaml:5: locations[1].location_name:",
            'duplicate location name "ok"',
            "first at line 2",
        ],
    ),
    (
        "two_code_sources",
        cloud(
            "locations:\n  - location_name: a\n    code_source:\n"
            "      package_name: a\n      python_file: a.py\n"
        ),
        [],
        ["dagster_cloud.yaml:3: locations[0].code_source:", "two code sources"],
    ),
    (
        "code_source_not_a_mapping",
        cloud("locations:\n  - location_name: a\n    code_source: a\n"),
        [],
        ["dagster_cloud.yaml:3: locations[0].code_source:", "must be a mapping"],
    ),
    (
        "no_code_source",
        cloud("locations:\n  - location_name: a\n    working_directory: .\n"),
        [],
        ["dagster_cloud.yaml:", "locations[0]", "code_source"],
    ),
    (
        "unknown_location_key",
        cloud(f"locations:\n{OK_LOCATION}    working_dir: .\n"),
        [],
        ["dagster_cloud.yaml:5: locations[0].working_dir:", 'did you mean "working_directory"'],
    ),
    (
        "unknown_build_key",
        cloud(f"locations:\n{OK_LOCATION}    build:\n      directroy: .\n"),
        [],
        ["dagster_cloud.yaml:6: locations[0].build.directroy:", 'did you mean "directory"'],
    ),
    (
        "unknown_code_source_key",
        cloud("locations:\n  - location_name: a\n    code_source:\n      package: a\n"),
        [],
        ["dagster_cloud.yaml:4: locations[0].code_source.package:", "unknown key"],
    ),
    (
        "unknown_k8s_key",
        cloud(
            f"locations:\n{OK_LOCATION}    container_context:\n      k8s:\n        namespce: data\n"
        ),
        [],
        [
            "dagster_cloud.yaml:7: locations[0].container_context.k8s.namespce:",
            'did you mean "namespace"',
        ],
    ),
    (
        "unknown_defaults_key",
        cloud(f"defaults:\n  bild:\n    directory: .\nlocations:\n{OK_LOCATION}"),
        [],
        ["dagster_cloud.yaml:2: defaults.bild:", 'did you mean "build"'],
    ),
    (
        "legacy_unknown_key",
        cloud("locations:\n  etl:\n    pakage_name: etl\n"),
        [],
        ["dagster_cloud.yaml:3: locations.etl.pakage_name:", 'did you mean "package_name"'],
    ),
    (
        "wrong_type_working_directory",
        cloud(f"locations:\n{OK_LOCATION}    working_directory: [a, b]\n"),
        [],
        ["dagster_cloud.yaml:5: locations[0].working_directory:", "must be a string"],
    ),
    (
        "wrong_type_location_name",
        cloud("locations:\n  - location_name: [a]\n    code_source:\n      package_name: a\n"),
        [],
        ["dagster_cloud.yaml:2: locations[0].location_name:", "must be a string"],
    ),
    (
        "wrong_type_env_secrets",
        cloud(
            f"locations:\n{OK_LOCATION}    container_context:\n      k8s:\n"
            "        env_secrets: one-secret\n"
        ),
        ["--target", "kubernetes"],
        ["dagster_cloud.yaml:7: locations[0].container_context.k8s.env_secrets:", "must be a list"],
    ),
    (
        "container_context_for_another_agent",
        cloud(
            f"locations:\n{OK_LOCATION}    container_context:\n      ecs:\n        env_vars: [A=1]\n"
        ),
        ["--target", "kubernetes"],
        [
            "dagster_cloud.yaml:6: locations[0].container_context.ecs:",
            "Amazon ECS agent",
            "Kubernetes",
        ],
    ),
    (
        "container_context_on_local",
        cloud(
            f"locations:\n{OK_LOCATION}    container_context:\n"
            "      docker:\n        networks: [n]\n"
        ),
        ["--target", "local"],
        ["dagster_cloud.yaml:6: locations[0].container_context.docker:", "Local agent"],
    ),
    (
        "both_cloud_files",
        {**cloud(f"locations:\n{OK_LOCATION}"), "build.yaml": f"locations:\n{OK_LOCATION}"},
        [],
        ["build.yaml", "both dagster_cloud.yaml and build.yaml"],
    ),
    ("no_cloud_file", {"requirements.txt": "dagster\n"}, [], ["has no dagster_cloud.yaml"]),
    (
        "cloud_file_is_a_directory",
        {"dagster_cloud.yaml/keep": ""},
        [],
        ["dagster_cloud.yaml:", "is a directory, not a file"],
    ),
    ("cloud_file_not_utf8", None, [], ["dagster_cloud.yaml:", "not UTF-8"]),
    (
        "missing_project_dir",
        None,
        ["--project-dir", "/nonexistent/project"],
        ["/nonexistent/project:", "no such project directory"],
    ),
    (
        "settings_typo",
        {
            **cloud(f"locations:\n{OK_LOCATION}"),
            "settings.yaml": "namespace: data\nenv_secret: [x]\n",
        },
        ["--settings", "{project}/settings.yaml"],
        ["settings.yaml:2: env_secret:", 'did you mean "env_secrets"'],
    ),
    (
        "settings_wrong_type",
        {
            **cloud(f"locations:\n{OK_LOCATION}"),
            "settings.yaml": "namespace: data\nenv_secrets: snowflake\n",
        },
        ["--settings", "{project}/settings.yaml"],
        ["settings.yaml:2: env_secrets:", "list"],
    ),
    (
        "settings_broken_yaml",
        {**cloud(f"locations:\n{OK_LOCATION}"), "settings.yaml": "namespace: [data\n"},
        ["--settings", "{project}/settings.yaml"],
        ["settings.yaml:", "invalid YAML"],
    ),
    (
        "settings_missing_file",
        cloud(f"locations:\n{OK_LOCATION}"),
        ["--settings", "{project}/nope.yaml"],
        ["nope.yaml:", "no such settings file"],
    ),
    (
        "settings_for_another_target",
        {
            **cloud(f"locations:\n{OK_LOCATION}"),
            "settings.yaml": "task_role_arn: arn:aws:iam::1:role/x\n",
        },
        ["--settings", "{project}/settings.yaml", "--target", "kubernetes"],
        ["settings.yaml:1: task_role_arn:", "unknown key", "kubernetes"],
    ),
    (
        "settings_bad_arn",
        {**cloud(f"locations:\n{OK_LOCATION}"), "settings.yaml": "task_role_arn: my-role\n"},
        ["--settings", "{project}/settings.yaml", "--target", "ecs"],
        ["settings.yaml:1: task_role_arn:", "arn:aws"],
    ),
    (
        "registry_with_scheme",
        cloud(f"locations:\n{OK_LOCATION}"),
        ["--registry", "https://ghcr.io/acme"],
        ["--registry: registry:", "not a registry reference"],
    ),
    (
        "registry_upper_case",
        cloud(f"locations:\n{OK_LOCATION}"),
        ["--registry", "GHCR.io/Acme"],
        ["--registry: registry:", "not a registry reference"],
    ),
    (
        "azure_registry_not_acr",
        cloud(f"locations:\n{OK_LOCATION}"),
        ["--target", "azure", "--registry", "ghcr.io/acme"],
        ["--registry", "Azure Container Registry"],
    ),
    (
        "registry_missing",
        cloud(f"locations:\n{OK_LOCATION}"),
        ["--no-registry"],
        ["--registry:", "required for target kubernetes"],
    ),
]


@pytest.mark.parametrize("case_id,files,extra,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_and_changes_nothing(tmp_path, capsys, case_id, files, extra, expected):
    project = tmp_path / "project"
    project.mkdir()
    if files:
        write_project(project, files)
    if case_id == "cloud_file_not_utf8":
        (project / "dagster_cloud.yaml").write_bytes(b"locations:\n  - location_name: \xff\xfe\n")
    before = snapshot(project)
    args = [
        "plan",
        "--project-dir",
        str(project),
        "--target",
        "kubernetes",
        "--registry",
        "ghcr.io/acme",
    ]
    extra = [e.replace("{project}", str(project)) for e in extra]
    if "--no-registry" in extra:
        extra.remove("--no-registry")
        index = args.index("--registry")
        del args[index : index + 2]
    for flag in ("--project-dir", "--target", "--registry"):
        if flag in extra and flag in args:
            index = args.index(flag)
            del args[index : index + 2]
    code = main(args + extra + ["--apply"])
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert err.rstrip().endswith("Nothing was written.")
    assert len(err.splitlines()) <= 6, "keep the message short"
    assert snapshot(project) == before
    assert not (project / ".migration_backup").exists()


def test_a_file_changed_after_planning_is_not_overwritten(tmp_path):
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.apply import apply_plan
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    project = tmp_path / "p"
    write_project(project, cloud(f"locations:\n{OK_LOCATION}"))
    plan = make_plan(
        read_project(project),
        "kubernetes",
        load_target_settings("kubernetes", registry="ghcr.io/acme"),
    )
    (project / "dagster_cloud.yaml").write_text(f"# edited meanwhile\nlocations:\n{OK_LOCATION}")
    before = snapshot(project)
    with pytest.raises(InvalidInput, match="changed since the plan was made"):
        apply_plan(plan, project)
    assert snapshot(project) == before


def test_root_can_read_anything_so_unreadable_means_not_text(tmp_path):
    """As root, a mode-000 file is still readable; an unreadable one here is one that is not
    text. A Python file that is not UTF-8 is skipped with a warning, not an error."""
    project = tmp_path / "p"
    write_project(project, cloud(f"locations:\n{OK_LOCATION}"))
    (project / "broken.py").write_bytes(b"\xff\xfe not python")
    code = main(["plan", "--project-dir", str(project), "--target", "local"])
    assert code == 0
    assert os.path.exists(project / "broken.py")
    assert Path(project / "dagster_cloud.yaml").read_text().startswith("locations:")
