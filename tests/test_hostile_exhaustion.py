"""Hostile input, resource exhaustion: what would take all memory, hang or overflow the stack
is refused with `file[:line]: what` and exit 2, or skipped with a warning, and writes nothing."""

from __future__ import annotations

import os

import pytest
from support.hostile import (
    OK_CLOUD,
    assert_clean_success,
    assert_refused,
    plan,
    plan_in_subprocess,
    tree,
    write,
)

# Nine levels of ten aliases each: a billion strings once expanded, 600 bytes as written.
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)


@pytest.fixture
def project(tmp_path):
    return write(tmp_path / "project", {"dagster_cloud.yaml": OK_CLOUD, "requirements.txt": ""})


def refused_and_untouched(project, *args, fragments=(), **kwargs):
    before = tree(project)
    outcome = plan(project, *args, **kwargs)
    assert_refused(outcome, *fragments)
    assert tree(project) == before
    return outcome


def test_an_alias_bomb_in_dagster_cloud_yaml(project):
    (project / "dagster_cloud.yaml").write_text(ALIAS_BOMB + OK_CLOUD)
    refused_and_untouched(project, fragments=("dagster_cloud.yaml:", "expands to more than"))


def test_an_alias_bomb_inside_a_location(project):
    bomb = ALIAS_BOMB.replace("\n", "\n    ").replace("a: &a", "x: &a", 1)
    (project / "dagster_cloud.yaml").write_text(
        "locations:\n  - location_name: ok\n    code_source:\n      package_name: ok\n"
        "    container_context:\n      k8s:\n        env_vars: *i\n"
        "defaults:\n  build:\n    " + bomb
    )
    refused_and_untouched(project, fragments=("dagster_cloud.yaml",))


def test_an_alias_bomb_in_the_settings_file(project, tmp_path):
    (tmp_path / "settings.yaml").write_text(ALIAS_BOMB)
    refused_and_untouched(
        project,
        "--settings",
        str(tmp_path / "settings.yaml"),
        fragments=("settings.yaml:", "expands to more than"),
    )


def test_settings_from_dev_zero_is_not_read_forever(project):
    refused_and_untouched(
        project, "--settings", "/dev/zero", fragments=("/dev/zero:", "not a regular file")
    )


def test_an_inventory_from_dev_zero(project):
    refused_and_untouched(
        project, "--inventory", "/dev/zero", fragments=("/dev/zero:", "not a regular file")
    )


def test_a_fifo_named_dagster_cloud_yaml_does_not_hang(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    os.mkfifo(project / "dagster_cloud.yaml")
    outcome = plan_in_subprocess(project, timeout=60)  # a hang fails by the timeout
    assert_refused(outcome, "dagster_cloud.yaml:", "not a regular file")


def test_a_fifo_as_the_settings_file_does_not_hang(project, tmp_path):
    os.mkfifo(tmp_path / "settings.fifo")
    outcome = plan_in_subprocess(project, "--settings", str(tmp_path / "settings.fifo"))
    assert_refused(outcome, "settings.fifo:", "not a regular file")


@pytest.mark.parametrize("style", ["block", "flow"])
def test_yaml_nested_thousands_deep(project, style):
    if style == "flow":  # 3,000 deep
        text = OK_CLOUD + "defaults:\n  x: " + "[" * 3000 + "]" * 3000 + "\n"
    else:  # 900 deep: the indentation alone is 800 kB
        text = "".join(f"{' ' * i}k{i}:\n" for i in range(900)) + " " * 900 + "v: 1\n"
    (project / "dagster_cloud.yaml").write_text(text)
    refused_and_untouched(project, fragments=("dagster_cloud.yaml", "nested"))


def test_settings_nested_deeper_than_any_configuration(project, tmp_path):
    (tmp_path / "settings.yaml").write_text("resources: " + "{a: " * 60 + "1" + "}" * 60 + "\n")
    refused_and_untouched(
        project,
        "--settings",
        str(tmp_path / "settings.yaml"),
        fragments=("settings.yaml:", "nested more than"),
    )


def test_a_python_file_of_six_thousand_terms_is_skipped_with_a_warning(project):
    (project / "ok" / "ok").mkdir(parents=True)
    (project / "ok" / "ok" / "big.py").write_text(
        "import dagster\nx = " + " + ".join(["1"] * 6000) + "\ndefs = dagster.Definitions()\n"
    )
    outcome = plan(project, apply=False)
    assert_clean_success(outcome)
    assert "ok/ok/big.py" in outcome.out and "not scanned" in outcome.out


def test_a_python_file_nested_a_thousand_parentheses_deep(project):
    (project / "deep.py").write_text(
        "import dagster\nx = " + "(" * 1000 + "1" + ")" * 1000 + "\nDefinitions = 1\n"
    )
    outcome = plan(project, apply=False)
    assert_clean_success(outcome)
    assert "deep.py" in outcome.out and "not scanned" in outcome.out


def test_a_dagster_cloud_yaml_over_the_limit_is_named_not_missing(project):
    (project / "dagster_cloud.yaml").write_text(OK_CLOUD + "# " + "x" * 1_100_000 + "\n")
    outcome = refused_and_untouched(project, fragments=("dagster_cloud.yaml:", "larger than"))
    assert "has no dagster_cloud.yaml" not in outcome.err


def test_a_settings_file_over_the_limit(project, tmp_path):
    (tmp_path / "settings.yaml").write_text("# " + "x" * 1_100_000 + "\n")
    refused_and_untouched(
        project,
        "--settings",
        str(tmp_path / "settings.yaml"),
        fragments=("settings.yaml:", "larger than"),
    )


def test_an_inventory_nested_deeper_than_json_allows(project, tmp_path):
    (tmp_path / "inventory.json").write_text("[" * 100_000 + "]" * 100_000)
    refused_and_untouched(
        project,
        "--inventory",
        str(tmp_path / "inventory.json"),
        fragments=("inventory.json:",),
    )


def test_a_huge_requirements_file_is_skipped_with_a_warning(project):
    (project / "requirements.txt").write_text("dagster\n" * 200_000)
    outcome = plan(project, apply=False)
    assert_clean_success(outcome)
    assert "requirements.txt" in outcome.out and "larger than" in outcome.out


def test_an_unexpected_fault_is_a_short_message_and_a_saved_traceback(project, monkeypatch):
    import migration_pipeline.plan.core as core

    def broken(*args, **kwargs):
        raise RuntimeError("a fault planted by the test")

    monkeypatch.setattr(core, "make_plan", broken)
    before = tree(project)
    outcome = plan(project)
    assert outcome.code == 1
    assert "Traceback" not in outcome.err and len(outcome.err.splitlines()) <= 3
    assert "unexpected error: RuntimeError: a fault planted by the test" in outcome.err
    saved = outcome.err.split("The traceback is in ")[1].split(";")[0]
    assert "Traceback" in open(saved).read() and "broken" in open(saved).read()
    assert oct(os.stat(saved).st_mode & 0o777) == "0o600"
    os.unlink(saved)
    assert tree(project) == before
