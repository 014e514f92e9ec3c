"""The plan over a corpus of Serverless-era projects x every target, through the command line:
every output validates with the real schemas, the user's lines survive byte for byte, and a
second `--apply` changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from plan_corpus import CORPUS, TARGET_REGISTRIES

from migration_pipeline.cli import main

TARGETS = list(TARGET_REGISTRIES)


def write_project(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def cli(project: Path, target: str, *extra: str) -> list[str]:
    args = ["plan", "--project-dir", str(project), "--target", target]
    registry = TARGET_REGISTRIES[target]
    if registry:
        args += ["--registry", registry]
    return args + list(extra)


def independently_valid(text: str, name: str, target: str) -> None:
    """Check the written file with the schemas directly, not through our validate module: it
    loads with `dagster-cloud ci`'s own reader (the list form, every key checked), and each
    location with Dagster+'s location schema and the target's container context schema."""
    from dagster._config import validate_config
    from dagster_cloud.workspace.config_schema import process_workspace_config
    from dagster_cloud_cli.config.merger import DagsterCloudConfigDefaultsMerger
    from dagster_cloud_cli.config.models import load_dagster_cloud_yaml

    from migration_pipeline.cloud_yaml.validate import container_context_schemas

    model = load_dagster_cloud_yaml(text)
    processed = DagsterCloudConfigDefaultsMerger().process_dict(model.model_dump())
    schemas = container_context_schemas()
    key = {"kubernetes": "k8s", "azure": "k8s", "ecs": "ecs", "docker": "docker"}.get(target)
    for location in processed.locations:
        as_dict = location.model_dump(exclude_none=True)
        as_dict.pop("build", None)
        assert process_workspace_config({"locations": [as_dict]})
        for context_key, value in (as_dict.get("container_context") or {}).items():
            assert context_key == key
            assert validate_config(schemas[context_key], value).success


def image_registries(text: str) -> dict[str, str | None]:
    """Each location's `build.registry` (its own, else the defaults'), read with PyYAML: the
    legacy mapping form or the list form, anchors and merge keys resolved."""
    data = yaml.safe_load(text) or {}
    default = ((data.get("defaults") or {}).get("build") or {}).get("registry")
    locations = data.get("locations") or []
    if isinstance(locations, dict):  # the legacy form: name -> location
        locations = [{"location_name": name, **(loc or {})} for name, loc in locations.items()]
    return {
        loc["location_name"]: (loc.get("build") or {}).get("registry", default) for loc in locations
    }


def survives(original: str, rewritten: str) -> None:
    """Every original line is still there, in order, unless it is a line the rewrite had to
    touch: a flow mapping or alias it added keys to, or a Serverless-only key it dropped."""
    new_lines = rewritten.splitlines(keepends=True)
    position = 0
    dropping_indent = None
    for line in original.splitlines(keepends=True):
        indent = len(line) - len(line.lstrip())
        if dropping_indent is not None and (indent > dropping_indent or not line.strip()):
            continue
        dropping_indent = None
        if line.strip().startswith(("pex_metadata:", "pex_bundle:")):
            dropping_indent = indent
            continue
        try:
            position = new_lines.index(line, position) + 1
        except ValueError:
            if not line.endswith(("\n", "\r")) and rewritten.endswith(line + "\n"):
                continue  # a last line without a newline gains one
            stripped = line.strip()
            # The legacy form converted to the list form: a location's key line became its
            # `- location_name:` item, and its code source key moved under `code_source:`.
            if re.fullmatch(r"[\w.-]+:(\s+#.*)?", stripped) and re.search(
                rf"^\s*- location_name: {re.escape(stripped.split(':')[0])}\b", rewritten, re.M
            ):
                continue
            if stripped.split(":")[0] in ("package_name", "module_name", "python_file") and any(
                new.endswith(line.lstrip(" "))
                and "code_source" in new_lines[i - 1]
                or new.strip() == stripped
                for i, new in enumerate(new_lines)
            ):
                continue
            assert stripped.startswith(
                ("build:", "- {location_name", "- location_name", "build: *")
            ) and ("{" in stripped or "*" in stripped), f"line changed or lost: {line!r}"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_project_migrates(tmp_path, capsys, name, target):
    files = CORPUS[name]
    project = tmp_path / name
    write_project(project, files)
    cloud_name = "build.yaml" if "build.yaml" in files else "dagster_cloud.yaml"

    assert main(cli(project, target)) == 0  # the dry run writes nothing
    assert snapshot(project) == {k: v.encode() for k, v in sorted(files.items())}
    assert "## Migration plan" in capsys.readouterr().out

    assert main(cli(project, target, "--apply")) == 0
    rewritten = (project / cloud_name).read_bytes().decode()
    independently_valid(rewritten, cloud_name, target)
    survives(files[cloud_name], rewritten)
    after_first = snapshot(project)
    if target != "local":
        assert any(path.endswith("Dockerfile") for path in after_first)
        # Each location's image goes to the target's registry, unless it named one already.
        before, after = image_registries(files[cloud_name]), image_registries(rewritten)
        assert sorted(after) == sorted(before)
        for location, registry in after.items():
            kept = before[location] is not None and registry == before[location]
            assert kept or str(registry).startswith(f"{TARGET_REGISTRIES[target]}/"), (
                location,
                registry,
            )

    capsys.readouterr()
    assert main(cli(project, target, "--apply")) == 0
    out = capsys.readouterr().out
    assert "No file changes" in out and "Nothing to write" in out
    assert snapshot(project) == after_first
