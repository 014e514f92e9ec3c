"""Bad dg input: each refusal exits 2, names the file and line, and leaves every file
byte-identical (the dg counterpart of test_plan_bad_input)."""

from __future__ import annotations

import pytest
from test_dg_projects import dg_project, project_files, workspace
from test_plan_corpus import snapshot, write_project

from migration_pipeline.cli import main

CASES = [
    (
        "pyproject_not_toml",
        {**project_files("shop"), "pyproject.toml": dg_project("shop") + "broken = [\n"},
        ["pyproject.toml:12:", "invalid TOML"],
    ),
    (
        "dg_toml_not_toml",
        {"dg.toml": 'directory_type = "workspace"\n[workspace\n', **project_files("a", "a")},
        ["dg.toml:2:", "invalid TOML"],
    ),
    (
        "build_yaml_not_yaml",
        {**project_files("shop"), "build.yaml": "registry: [unclosed\n"},
        ["build.yaml:", "invalid YAML"],
    ),
    (
        "no_root_module",
        {
            "pyproject.toml": '[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\n'
            'defs_module = "shop.defs"\n'
        },
        ["pyproject.toml:4:", "needs root_module"],
    ),
    (
        "unknown_project_key",
        {**project_files("shop"), "pyproject.toml": dg_project("shop", 'location_name = "x"\n')},
        ["pyproject.toml:12:", 'unknown key "location_name"', "code_location_name"],
    ),
    (
        "workspace_path_outside",
        {"dg.toml": workspace("../elsewhere"), **project_files("a", "a")},
        ["dg.toml:5:", "outside the repository"],
    ),
    (
        "workspace_path_twice",
        {"dg.toml": workspace("a", "./a"), **project_files("a", "a")},
        ["dg.toml:8:", "listed twice"],
    ),
    (
        "workspace_path_not_a_project",
        {"dg.toml": workspace("a", "docs"), **project_files("a", "a"), "docs/index.md": ""},
        ["dg.toml:8:", "has no pyproject.toml"],
    ),
    (
        "two_projects_one_name",
        {
            "dg.toml": workspace("a", "b"),
            **project_files("a", "a", 'code_location_name = "shop"\n'),
            **project_files("b", "b", 'code_location_name = "Shop"\n'),
        },
        ["b/pyproject.toml:12:", "deploys as 'Shop', and so does a/pyproject.toml"],
    ),
    (
        "old_build_yaml_several_locations",
        {
            **project_files("shop"),
            "build.yaml": "locations:\n  - location_name: a\n  - location_name: b\n",
        },
        ["build.yaml:1:", "old dagster_cloud.yaml shape", "2 locations"],
    ),
    (
        "unknown_build_key",
        {**project_files("shop"), "build.yaml": "registry: ghcr.io/acme\ndockerfile: x\n"},
        ["build.yaml:2:", 'unknown key "dockerfile"', "registry, directory"],
    ),
    (
        "build_directory_outside",
        {**project_files("shop"), "build.yaml": "registry: ghcr.io/acme\ndirectory: ../../etc\n"},
        ["build.yaml:2:", "leads out of the repository"],
    ),
    (
        "build_registry_not_a_registry",
        {**project_files("shop"), "build.yaml": "registry: https://ghcr.io/Acme\n"},
        ["build.yaml:1:", "is not a registry reference"],
    ),
    (
        "project_image_not_an_image",
        {**project_files("shop"), "pyproject.toml": dg_project("shop", 'image = "a b"\n')},
        ["pyproject.toml:12:", "tool.dg.project.image"],
    ),
    (
        "container_context_for_another_agent",
        {**project_files("shop"), "container_context.yaml": "ecs:\n  env_vars: [A=1]\n"},
        ["container_context.yaml:1:", "ecs:", "Amazon ECS agent", "Kubernetes"],
    ),
    (
        "container_context_unknown_key",
        {**project_files("shop"), "container_context.yaml": "k8s:\n  namespce: data\n"},
        ["container_context.yaml:2:", "namespce"],
    ),
    (
        "bad_directory_type",
        {"pyproject.toml": '[tool.dg]\ndirectory_type = "library"\n'},
        ["pyproject.toml:2:", 'dg knows "project" and "workspace"'],
    ),
    (
        "several_projects_no_workspace",
        {**project_files("a", "a"), **project_files("b", "b")},
        ["several dg projects", "a/pyproject.toml, b/pyproject.toml"],
    ),
]


@pytest.mark.parametrize(("case_id", "files", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_dg_input_exits_2_and_changes_nothing(tmp_path, capsys, case_id, files, expected):
    project = tmp_path / "shop"
    write_project(project, files)
    before = snapshot(project)
    code = main(
        [
            "plan",
            "--project-dir",
            str(project),
            "--target",
            "kubernetes",
            "--registry",
            "ghcr.io/acme",
            "--apply",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in:\n{err}"
    assert err.rstrip().endswith("Nothing was written.")
    assert snapshot(project) == before
    assert not (project / ".migration_backup").exists()


def test_nothing_is_planned_through_a_symbolic_link_out_of_the_repository(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM scratch\n")
    repo = tmp_path / "repo"
    write_project(repo, {"dg.toml": workspace("a", "b"), **project_files("a", "a")})
    (repo / "a" / "Dockerfile").symlink_to(outside / "Dockerfile")
    (repo / "b").symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    code = main(
        [
            "plan",
            "--project-dir",
            str(repo),
            "--target",
            "kubernetes",
            "--registry",
            "ghcr.io/acme",
            "--apply",
        ]
    )
    assert code == 2
    assert snapshot(outside) == before


def test_a_planned_file_through_a_link_out_is_refused_by_name(tmp_path):
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.lib.problems import InvalidInput
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets import load_target_settings

    outside = tmp_path / "outside"
    outside.mkdir()
    repo = tmp_path / "shop"
    write_project(repo, project_files("shop"))
    (repo / "Dockerfile").symlink_to(outside / "Dockerfile")
    settings = load_target_settings("kubernetes", "", registry="ghcr.io/acme")
    with pytest.raises(InvalidInput) as refused:
        make_plan(read_project(repo), "kubernetes", settings)
    assert "Dockerfile: would be written through Dockerfile, a symbolic link out" in str(
        refused.value
    )
    assert not (outside / "Dockerfile").exists()
