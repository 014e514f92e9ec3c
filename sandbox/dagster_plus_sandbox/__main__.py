"""`python -m dagster_plus_sandbox serve [--host H] [--port P] [--agent-port P] [--scenario FILE]
[--state FILE] [--json] [--env-file FILE]`"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path

from dagster_plus_sandbox.server import Sandbox


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Write `KEY=value` lines to a file only its owner can read (it holds a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in values.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dagster_plus_sandbox", description="A local stand-in for the Dagster+ API."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the sandbox until interrupted")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--port", type=int, default=3030, help="the user API's port (0 picks a free port)"
    )
    serve.add_argument(
        "--agent-port", type=int, default=0, help="the agent API's port (default: a free port)"
    )
    serve.add_argument(
        "--agent-host",
        help="where the agent API listens (default: --host); for agents in containers, the "
        "gateway address of a Docker network the caller made",
    )
    serve.add_argument(
        "--scenario", type=Path, help="a scenario YAML/JSON file (default: the built-in scenario)"
    )
    serve.add_argument(
        "--state",
        type=Path,
        help="the SQLite state file; reused when it "
        "exists, so state survives a restart (default: a new temporary file)",
    )
    serve.add_argument(
        "--json",
        action="store_true",
        help="print the URL and tokens as one JSON object on the first line of stdout",
    )
    serve.add_argument(
        "--env-file",
        type=Path,
        help="also write DAGSTER_CLOUD_URL, "
        "DAGSTER_CLOUD_AGENT_URL, DAGSTER_CLOUD_DEPLOYMENT and "
        "DAGSTER_CLOUD_API_TOKEN (admin) to this file, mode 0600, for "
        "`dagster dev` to source",
    )
    serve.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    state_path = args.state or Path(tempfile.mkdtemp(prefix="dagster-plus-sandbox-")) / "state.db"
    try:
        sandbox = Sandbox.create(
            state_path,
            args.scenario,
            args.host,
            args.port,
            args.verbose,
            args.agent_port,
            agent_host=args.agent_host,
        )
    except (OSError, ValueError, sqlite3.Error) as error:
        where = args.state if isinstance(error, sqlite3.Error) else None
        message = f"{where}: cannot use it as the state file ({error})" if where else str(error)
        print(f"dagster_plus_sandbox: {message}", file=sys.stderr)
        return 2
    except (TypeError, KeyError, AttributeError) as error:  # a scenario of the wrong shape
        print(
            f"dagster_plus_sandbox: {args.scenario}: not a scenario ({type(error).__name__}: "
            f"{error}); see dagster_plus_sandbox/scenario.py for its keys",
            file=sys.stderr,
        )
        return 2
    info = {
        "url": sandbox.url,
        "agent_url": sandbox.agent_url,
        "deployment": sandbox.deployment,
        "organization": sandbox.state.organization,
        "timing": sandbox.state.timing,
        "admin_token": sandbox.token("admin"),
        "viewer_token": sandbox.token("viewer"),
        "state": str(state_path),
    }
    if args.env_file:
        write_env_file(
            args.env_file,
            {
                "DAGSTER_CLOUD_URL": info["url"],
                "DAGSTER_CLOUD_AGENT_URL": info["agent_url"],
                "DAGSTER_CLOUD_DEPLOYMENT": info["deployment"],
                "DAGSTER_CLOUD_API_TOKEN": info["admin_token"],
            },
        )
    if args.json:
        print(json.dumps(info), flush=True)
    else:
        print(
            f"Dagster+ sandbox: user API {info['url']}, agent API {info['agent_url']} "
            f"(deployment {info['deployment']!r}, state {state_path})"
        )
        print(f"  admin token:  {info['admin_token']}")
        print(f"  viewer token: {info['viewer_token']}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sandbox.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        sandbox.state.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
