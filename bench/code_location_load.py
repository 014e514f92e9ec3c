"""How much loading the migration_pipeline code location costs over an empty one:
`dagster definitions validate` of each, side by side, several times.

    .venv/bin/python bench/code_location_load.py

Prints the median wall time of each and their ratio (the target: within 1.1x).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAGSTER = Path(sys.executable).parent / "dagster"
RUNS = 7


def validate(module: str, working_directory: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-m", module, "-d", str(working_directory)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def main() -> None:
    validate("empty_location", ROOT / "bench")  # warm the file cache
    ours, empty = [], []
    for _ in range(RUNS):  # interleaved, so both see the same machine
        empty.append(validate("empty_location", ROOT / "bench"))
        ours.append(validate("migration_pipeline.definitions", ROOT))
    ours_median, empty_median = statistics.median(ours), statistics.median(empty)
    print(
        f"dagster definitions validate, median of {RUNS}: migration_pipeline "
        f"{ours_median:.2f}s, empty Definitions() {empty_median:.2f}s, ratio "
        f"{ours_median / empty_median:.2f}x"
    )


if __name__ == "__main__":
    main()
