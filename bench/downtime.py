"""The no-agent window of the demo, split into its parts, against the sum of what each part
cannot go below on this machine; and the two cutover strategies side by side.

    .venv/bin/python bench/downtime.py                 # the Local agent (make demo)
    .venv/bin/python bench/downtime.py --agent docker  # the Docker agent (make demo-docker)
    .venv/bin/python bench/downtime.py --strategy per_location  # both strategies, one run each

With `--strategy per_location` the demo runs twice in this process, `switch` then
`per_location`, and prints for each: the deployment-wide window (the finish run's measure and
the sandbox's event log replayed by dagster_plus_sandbox.serving: a moment with no location
served), each location's unserved time (event log), and the wall time from the cutover's start
to the finish run's verification.

Runs the demo in a scratch directory (sensor every 2 s, the agent installed and RUNNING before
the cutover, so the cutover run deploys at once) and reads the window's parts from its
downtime.json (the finish run's metadata, and for docker the code-server containers' start
times). The floors: the sensor's lag and the run launch are 0 (the cutover run deploys itself
when the agent runs); deploying cannot be faster than one Dagster+ request; a Local agent's load
than a Python process that imports Dagster; a Docker agent's containers than `docker run` of
the location's base image, and their code than importing Dagster in one. No image is built or
pulled in the window: the images are in the engine before the switch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_DIR)]  # the demo's harness (demo/docker.py)
IMPORT_DAGSTER = ["python", "-c", "import dagster, dagster_cloud"]


def median_seconds(command: list[str], runs: int = 3, **kwargs) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, **kwargs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def request_floor() -> float:
    from dagster_plus_sandbox import Sandbox
    from migration_pipeline.plus import DagsterPlusClient

    with tempfile.TemporaryDirectory() as scratch, Sandbox.start(Path(scratch) / "s.db") as sandbox:
        client = DagsterPlusClient(sandbox.url, "prod", sandbox.token("admin"))
        client.current_deployment()
        start = time.perf_counter()
        for _ in range(20):
            client.current_deployment()
        return (time.perf_counter() - start) / 20


def docker_floors(work: Path) -> dict[str, float]:
    """In the engine the demo will use (so its base image is made once): starting a container of
    the base image, and importing Dagster in one, less the start."""
    from demo.docker import docker_engine, python_base_image

    with docker_engine(work / "docker-engine") as docker_host:
        base = python_base_image(docker_host, log=lambda message: None)
        run = ["/usr/bin/docker", "-H", docker_host, "run", "--rm", "--network", "none", base]
        start = median_seconds([*run, "true"])
        imported = median_seconds([*run, *IMPORT_DAGSTER])
    return {"container_start_seconds": start, "code_load_seconds": max(imported - start, 0.0)}


def run_demo(agent: str, strategy: str, root: Path) -> dict:
    """One `python -m demo` in `root`; its downtime.json."""
    work = root / "work"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "demo",
            "--agent",
            agent,
            "--strategy",
            strategy,
            "--dagster-home",
            str(root / "home"),
            "--work-dir",
            str(work),
        ],
        check=True,
        capture_output=True,
        cwd=PROJECT_DIR,
    )
    return json.loads((work / "downtime.json").read_text())


def compare_strategies(agent: str) -> None:
    results = {}
    for strategy in ("switch", "per_location"):
        with tempfile.TemporaryDirectory() as scratch:
            results[strategy] = run_demo(agent, strategy, Path(scratch))
    print(f"agent: {agent}; the demo's three locations, each strategy run once")
    print(
        f"{'strategy':<14} {'no agent (finish)':>18} {'no agent (event log)':>21} "
        f"{'cutover to verified':>20}  each location unserved (event log)"
    )
    for strategy, parts in results.items():
        each = ", ".join(
            f"{name} {value:.2f}s"
            for name, value in sorted(parts["event_log_location_unserved_seconds"].items())
        )
        print(
            f"{strategy:<14} {parts['downtime_seconds']:>17.2f}s "
            f"{parts['event_log_deployment_unserved_seconds']:>20.2f}s "
            f"{parts['cutover_to_verified_seconds']:>19.2f}s  {each}"
        )
    switch, per_location = results["switch"], results["per_location"]
    worst = max(per_location["event_log_location_unserved_seconds"].values())
    print(
        f"per_location's longest unserved location / switch's deployment-wide window: "
        f"{worst / max(switch['event_log_deployment_unserved_seconds'], 1e-9):.2f}x; "
        f"wall time per_location / switch: "
        f"{per_location['cutover_to_verified_seconds'] / switch['cutover_to_verified_seconds']:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", choices=["local", "docker"], default="local")
    parser.add_argument(
        "--strategy",
        choices=["switch", "per_location"],
        default="switch",
        help="per_location: run both strategies and compare them",
    )
    args = parser.parse_args()
    if args.strategy == "per_location":
        compare_strategies(args.agent)
        return

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        work = root / "work"
        floors = {
            "waiting_for_agent_seconds": 0.0,
            "until_deploy_seconds": 0.0,
            "deploying_seconds": request_floor(),
        }
        if args.agent == "docker":
            floors.update(docker_floors(work))
        else:
            floors["loading_seconds"] = median_seconds(
                [str(BIN / "python"), "-c", "import dagster, dagster_cloud"]
            )
        parts = run_demo(args.agent, "switch", root)

    labels = {
        "waiting_for_agent_seconds": "sensor lag (0: the cutover run deploys itself)",
        "until_deploy_seconds": "run launch (0: no run is launched in the window)",
        "deploying_seconds": "deploying (one request)",
    }
    if args.agent == "docker":
        labels["container_start_seconds"] = "containers started (after the deploy)"
        labels["code_load_seconds"] = "code loaded and reported (after the start)"
    else:
        labels["loading_seconds"] = "code loaded and reported (after the deploy)"
    print(f"agent: {args.agent}; deployed by the {parts.get('deployed_by', '?')} run")
    print(f"{'part':<52} {'measured':>9} {'floor':>7}")
    for key, label in labels.items():
        print(f"{label:<52} {parts[key]:>8.2f}s {floors[key]:>6.2f}s")
    total_floor = sum(floors[key] for key in labels)
    print(
        f"{'no-agent window (switch to the last load report)':<52} "
        f"{parts['downtime_seconds']:>8.2f}s {total_floor:>6.2f}s  ratio "
        f"{parts['downtime_seconds'] / total_floor:.1f}x"
    )
    print(
        f"the finish run (launched by the sensor) verified {parts['seen_loaded_seconds']:.2f}s "
        "after the window closed"
    )


if __name__ == "__main__":
    main()
