"""The no-agent window of `make demo`, split into its parts, against the sum of what each part
cannot go below on this machine.

    .venv/bin/python bench/downtime.py

Runs the demo in a scratch directory (sensor every 2 s, Local agent installed before the
cutover), reads the finish run's downtime metadata, and measures the floors: the sensor's lag
can be 0 (a tick right after the cutover); launching the finish run cannot be faster than
launching a no-op Dagster run (a new process that imports Dagster); deploying, than one
Dagster+ request; loading can be 0 (the agent loads while the sensor waits).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
NOOP_JOB = "import dagster as dg\n\n\n@dg.op\ndef noop():\n    pass\n\n\n@dg.job\ndef noop_job():\n    noop()\n"


def median_seconds(command: list[str], runs: int = 3, **kwargs) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import dagster as dg

    from dagster_plus_sandbox import Sandbox
    from migration_pipeline.plus import DagsterPlusClient

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "demo",
                "--dagster-home",
                str(root / "home"),
                "--work-dir",
                str(root / "work"),
            ],
            check=True,
            capture_output=True,
        )
        with dg.DagsterInstance.from_ref(
            dg._core.instance.ref.InstanceRef.from_dir(str(root / "home"))
        ) as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey("hybrid_deployment"))
            assert event is not None and event.asset_materialization is not None
            parts = {
                k: v.value
                for k, v in event.asset_materialization.metadata.items()
                if k.endswith("_seconds") and isinstance(v.value, float)
            }

        (root / "noop.py").write_text(NOOP_JOB)
        launch_floor = median_seconds(
            [str(BIN / "dagster"), "job", "execute", "-f", str(root / "noop.py"), "-j", "noop_job"],
            env={"DAGSTER_HOME": str(root / "home"), "PATH": str(BIN)},
        )
        with Sandbox.start(root / "s.db") as sandbox:
            client = DagsterPlusClient(sandbox.url, "prod", sandbox.token("admin"))
            client.current_deployment()
            start = time.perf_counter()
            for _ in range(20):
                client.current_deployment()
            request_floor = (time.perf_counter() - start) / 20

    floors = {
        "waiting_for_agent_seconds": 0.0,
        "until_deploy_seconds": launch_floor,
        "deploying_seconds": request_floor,
        "loading_seconds": 0.0,
    }
    labels = {
        "waiting_for_agent_seconds": "sensor lag (cutover to the tick that saw the agent)",
        "until_deploy_seconds": "launching the finish run",
        "deploying_seconds": "deploying",
        "loading_seconds": "loading (after deploy)",
    }
    print(f"{'part':<52} {'measured':>9} {'floor':>7}")
    for key, label in labels.items():
        print(f"{label:<52} {parts[key]:>8.2f}s {floors[key]:>6.2f}s")
    total_floor = sum(floors.values())
    print(
        f"{'no-agent window (cutover to every location LOADED)':<52} "
        f"{parts['downtime_seconds']:>8.2f}s {total_floor:>6.2f}s  ratio "
        f"{parts['downtime_seconds'] / total_floor:.1f}x"
    )


if __name__ == "__main__":
    main()
