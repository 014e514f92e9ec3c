"""`make demo`: the migration against the embedded Dagster+ sandbox, with no other set-up.

At this stage it starts the sandbox, runs the `inventory` job on a real Dagster instance in
`.dagster_home/` (so `make dev` then shows the run and its metadata) and prints what it found.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

_start = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - _start:6.1f}s] {message}", flush=True)


@contextmanager
def sandbox_process(state_dir: Path):
    """Start `python -m dagster_plus_sandbox serve` on a free port; yield its JSON banner."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dagster_plus_sandbox", "serve", "--port", "0", "--json",
         "--state", str(state_dir / "sandbox.db")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            raise SystemExit(f"the Dagster+ sandbox did not start (exit code {process.wait()})")
        yield json.loads(line)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migration_pipeline.demo",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--dagster-home", type=Path, default=PROJECT_DIR / ".dagster_home",
                        help="the Dagster instance to record the runs in (default: %(default)s)")
    args = parser.parse_args(argv)
    dagster_home = args.dagster_home.resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance_config = dagster_home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    say("Starting the embedded Dagster+ sandbox (default scenario: a Serverless 'prod' deployment)")
    with tempfile.TemporaryDirectory(prefix="migration-demo-") as state_dir, \
            sandbox_process(Path(state_dir)) as sandbox:
        say(f"Dagster+ sandbox serving {sandbox['url']}, deployment {sandbox['deployment']!r}")
        # The resource reads these through EnvVar when the run starts, as it would in Dagster+.
        os.environ["DAGSTER_CLOUD_URL"] = sandbox["url"]
        os.environ["DAGSTER_CLOUD_DEPLOYMENT"] = sandbox["deployment"]
        os.environ["DAGSTER_CLOUD_API_TOKEN"] = sandbox["admin_token"]

        from dagster import DagsterInstance

        from migration_pipeline.definitions import defs
        from migration_pipeline.inventory import Inventory, render_markdown

        say("Running the 'inventory' job (reads only; changes nothing)")
        with DagsterInstance.get() as instance:
            result = defs.resolve_job_def("inventory").execute_in_process(instance=instance)
        if not result.success:
            say("The inventory job failed; see the log above.")
            return 1
        inventory = Inventory(**result.output_for_node("serverless_inventory"))
        say(f"Inventory done (run {result.run_id})\n")
        print(render_markdown(inventory), flush=True)
    print(
        f"\nThe run and its metadata are in {dagster_home}. To browse "
        "them, start a sandbox (`make sandbox`) and the UI (`make dev`), then open "
        "http://127.0.0.1:3000.",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
