"""How much loading the migration_pipeline code location costs over an empty one:
`dagster definitions validate` of each, side by side (interleaved), several times.

    .venv/bin/python bench/code_location_load.py [runs]

Prints the median wall time and the median CPU time (user + system of the process, which other
load on a shared machine moves less than the wall clock) of each, and their ratios (issue 21's
target: 1.05x or under). A third location, bench/minimal_location.py (one partitioned asset
with a check, one op job, one asset job), is timed beside them: what it costs over the empty
one is what Dagster charges any location with jobs, whatever it holds. A fourth,
bench/same_shape_location.py, has as many definitions of each kind as ours and trivial bodies:
what it costs is what Dagster charges for our number of definitions; what ours costs over it is
what our own code adds. The locations are compiled to bytecode first, as an installed package
is, whatever PYTHONDONTWRITEBYTECODE says.
"""

from __future__ import annotations

import compileall
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).parent / "dagster"


def validate(module: str, working_directory: Path) -> tuple[float, float]:
    """(wall, cpu) seconds of one `dagster definitions validate`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-m", module, "-d", str(working_directory)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    for directory in (ROOT / "migration_pipeline", ROOT / "bench"):
        compileall.compile_dir(str(directory), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    validate("empty_location", ROOT / "bench")  # warm the file cache
    ours: list[tuple[float, float]] = []
    empty: list[tuple[float, float]] = []
    minimal: list[tuple[float, float]] = []
    same_shape: list[tuple[float, float]] = []
    for _ in range(runs):  # interleaved, so all see the same machine
        empty.append(validate("empty_location", ROOT / "bench"))
        ours.append(validate("migration_pipeline.definitions", ROOT))
        minimal.append(validate("minimal_location", ROOT / "bench"))
        same_shape.append(validate("same_shape_location", ROOT / "bench"))
    for index, what in ((0, "wall"), (1, "cpu")):
        a, b, c, d = (
            statistics.median(t[index] for t in times)
            for times in (ours, empty, minimal, same_shape)
        )
        print(
            f"dagster definitions validate, median of {runs}, {what}: migration_pipeline "
            f"{a:.2f}s, empty Definitions() {b:.2f}s, ratio {a / b:.2f}x; minimal location "
            f"{c:.2f}s ({c / b:.2f}x empty); same-shape location {d:.2f}s ({d / b:.2f}x empty; "
            f"migration_pipeline is {a / d:.2f}x it)"
        )


if __name__ == "__main__":
    main()
