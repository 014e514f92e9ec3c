"""How much loading the migration_pipeline code location costs over an empty one:
`dagster definitions validate` of each, side by side (interleaved), several times.

    .venv/bin/python bench/code_location_load.py [runs]

Prints, for the whole `dagster definitions validate` process, the median of the paired ratios
(each run of ours over the run of the empty location just before it: pairing keeps the ratio
meaningful while a shared machine's speed drifts) of the wall time and of the CPU time (user +
system), and each location's median (issue 21's target: 1.05x or under).

Two yardsticks run beside them: bench/minimal_location.py (one partitioned asset with a check,
one op job, one asset job: what Dagster charges any location with jobs, whatever it holds) and
bench/same_shape_location.py (as many definitions of each kind as ours, trivial bodies: what
Dagster charges for our number of definitions; what ours costs over it is what our own code
adds).

A whole process is ~2 s, of which a location adds tens of milliseconds, and a shared 2-core
machine moves single runs by ±10%; so the bench also prints what each location adds inside one
process (CPU milliseconds to import it and to snapshot its repository, the least of the runs),
which other load on the machine barely moves: a regression in our own import shows there first.
The locations are compiled to bytecode first, as an installed package is, whatever
PYTHONDONTWRITEBYTECODE says.
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
LOCATIONS = {  # name -> (module, working directory)
    "empty Definitions()": ("empty_location", ROOT / "bench"),
    "migration_pipeline": ("migration_pipeline.definitions", ROOT),
    "minimal location": ("minimal_location", ROOT / "bench"),
    "same-shape location": ("same_shape_location", ROOT / "bench"),
}
# In one process, after Dagster's own imports: CPU ms to import the location and to snapshot
# its repository (what the code server sends the webserver).
IN_PROCESS = """
import importlib, sys, time
import dagster._cli
from dagster._core.remote_representation.external_data import RepositorySnap
sys.path.insert(0, sys.argv[2])
start = time.process_time()
defs = importlib.import_module(sys.argv[1]).defs
imported = time.process_time()
RepositorySnap.from_def(defs.get_repository_def())
print(1000 * (imported - start), 1000 * (time.process_time() - imported))
"""


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


def in_process(module: str, working_directory: Path) -> tuple[float, float]:
    """(import, snapshot) CPU milliseconds of the location inside one process."""
    out = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, module, str(working_directory)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    for directory in (ROOT / "migration_pipeline", ROOT / "bench"):
        compileall.compile_dir(str(directory), quiet=1)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    validate(*LOCATIONS["empty Definitions()"])  # warm the file cache
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in LOCATIONS}
    inside: dict[str, list[tuple[float, float]]] = {name: [] for name in LOCATIONS}
    for _ in range(runs):  # interleaved, so all see the same machine
        for name, location in LOCATIONS.items():
            times[name].append(validate(*location))
            inside[name].append(in_process(*location))
    empty = times["empty Definitions()"]
    print(f"dagster definitions validate, {runs} interleaved runs of each:")
    for name in LOCATIONS:
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        line = f"  {name:20s} wall {wall:.2f}s, cpu {cpu:.2f}s"
        if name != "empty Definitions()":
            ratios = [
                statistics.median(t[i] / e[i] for t, e in zip(times[name], empty, strict=True))
                for i in (0, 1)
            ]
            line += f"; over the empty one (median of paired ratios): wall {ratios[0]:.3f}x, "
            line += f"cpu {ratios[1]:.3f}x"
        print(line)
    print("inside one process, CPU ms (least of the runs): import + repository snapshot")
    for name in LOCATIONS:
        imported = min(t[0] for t in inside[name])
        snapshot = min(t[1] for t in inside[name])
        print(f"  {name:20s} {imported:5.1f} + {snapshot:5.1f} = {imported + snapshot:5.1f}")


if __name__ == "__main__":
    main()
