"""How planning scales: load, rewrite and validate a dagster_cloud.yaml of 10, 100 and 1,000
locations, against Dagster's own `load_dagster_cloud_yaml` on the same file.

    .venv/bin/python bench/plan_scaling.py

Prints, per size: our time, the reference time, their ratio, and our time per location (which
stays flat when the cost grows linearly).
"""

from __future__ import annotations

import statistics
import time

from dagster_cloud_cli.config.models import load_dagster_cloud_yaml

from migration_pipeline.cloud_yaml.model import load_cloud_yaml
from migration_pipeline.cloud_yaml.rewrite import rewrite_cloud_yaml
from migration_pipeline.cloud_yaml.validate import validate_cloud_yaml
from migration_pipeline.targets import get_target, load_target_settings

SIZES = (10, 100, 1000)
REPEATS = 5


def cloud_yaml(locations: int) -> str:
    """A realistic file: comments, defaults, block and flow style, several code source kinds."""
    lines = [
        "# generated for the benchmark",
        "defaults:",
        "  build:",
        "    directory: .",
        "locations:",
    ]
    for i in range(locations):
        source = ("package_name", "module_name", "python_file")[i % 3]
        value = f"loc_{i}.py" if source == "python_file" else f"loc_{i}"
        lines += [
            f"  # location {i}",
            f"  - location_name: loc_{i}",
            f"    code_source: {{{source}: {value}}}"
            if i % 2
            else f"    code_source:\n      {source}: {value}",
        ]
        if i % 4 == 0:
            lines += ["    working_directory: ./src", "    build:", f"      directory: ./loc_{i}"]
    return "\n".join(lines) + "\n"


def best_of(function, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def ours(text: str) -> None:
    target = get_target("kubernetes")
    settings = load_target_settings("kubernetes", registry="ghcr.io/acme")
    cloud = load_cloud_yaml(text)
    assert not validate_cloud_yaml(cloud, target.container_context_key)
    rewritten = rewrite_cloud_yaml(cloud, target, settings)
    assert not validate_cloud_yaml(rewritten.cloud, target.container_context_key)


def main() -> None:
    ours(cloud_yaml(3))  # imports and caches out of the timing
    load_dagster_cloud_yaml(cloud_yaml(3))
    print(
        f"{'locations':>9} {'ours (s)':>9} {'reference (s)':>13} {'ratio':>7} {'ms/location':>11}"
    )
    per_location = []
    for size in SIZES:
        text = cloud_yaml(size)
        mine = best_of(lambda text=text: ours(text), 3 if size >= 1000 else REPEATS)
        reference = best_of(lambda text=text: load_dagster_cloud_yaml(text))
        per_location.append(mine / size * 1000)
        print(
            f"{size:>9} {mine:>9.3f} {reference:>13.4f} {mine / reference:>7.1f} "
            f"{per_location[-1]:>11.3f}"
        )
    spread = max(per_location) / min(per_location)
    print(
        f"per-location cost, largest / smallest: {spread:.2f} (1.0 = perfectly linear; "
        f"median {statistics.median(per_location):.3f} ms)"
    )
    print(
        "ours = load + validate + rewrite + validate the result (two round-trip parses, for comments and "
        "lines, and two full schema validations); reference = parse + pydantic model only"
    )


if __name__ == "__main__":
    main()
