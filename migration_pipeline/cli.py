"""`migration-pipeline plan`: the dry run (and `--apply`) for CI and scripts. The Dagster UI
stays the main way in; this runs the same pure core.

Exit codes: 0 a valid plan (printed, and written with --apply); 2 invalid input, with the
problems on stderr and nothing written; 1 an unexpected error (a short message on stderr, the
traceback saved to a file it names); 130/143 interrupted (SIGINT/SIGTERM), with what was
rolled back.
"""

from __future__ import annotations

import argparse
import json
import sys

from migration_pipeline.lib.files import read_user_file
from migration_pipeline.lib.problems import InvalidInput, Problem
from migration_pipeline.targets.settings import TARGETS

EXIT_INVALID_INPUT = 2
EXIT_UNEXPECTED = 1
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}  # the shell's 128 + the signal's number
# An inventory of a large deployment (its locations document, settings, counts) fits in this.
MAX_INVENTORY_BYTES = 20_000_000


def plan_command(args: argparse.Namespace) -> int:
    from migration_pipeline.layouts.files import read_project
    from migration_pipeline.plan.apply import ApplyFailed, apply_plan
    from migration_pipeline.plan.core import make_plan
    from migration_pipeline.targets.settings import load_target_settings

    settings_text = read_user_file(args.settings, "settings file") if args.settings else None
    settings = load_target_settings(
        args.target, settings_text, args.settings or "settings", registry=args.registry
    )
    inventory = None
    if args.inventory:
        inventory = read_inventory(args.inventory)
    project = read_project(args.project_dir)
    plan = make_plan(project, args.target, settings, inventory)
    diff = plan.diff()
    print(diff if diff else "No file changes: the project is already migrated for this target.\n")
    print(plan.summary_markdown())
    if args.apply:
        try:
            result = apply_plan(plan, args.project_dir)
        except ApplyFailed as failure:
            print(f"{args.project_dir}: {failure.report()}", file=sys.stderr)
            return SIGNAL_EXIT.get(failure.signal_name or "", EXIT_UNEXPECTED)
        for path in result.written:
            backup = result.backups.get(path)
            print(f"wrote {path}" + (f" (backup: {backup})" if backup else ""))
        if not result.written:
            print("Nothing to write: every file is already as planned.")
        if result.late_signal:
            print(
                f"{args.project_dir}: {result.late_signal} came after every file was written: "
                "the apply is complete; stopping as asked.",
                file=sys.stderr,
            )
            return SIGNAL_EXIT[result.late_signal]
    return 0


def read_inventory(path: str):
    """An inventory JSON (the serverless_inventory asset's record), or `InvalidInput`."""
    from migration_pipeline.inventory.core import inventory_from

    try:
        raw = json.loads(read_user_file(path, "inventory file", MAX_INVENTORY_BYTES))
    except json.JSONDecodeError as error:
        raise InvalidInput([Problem(path, error.lineno, (), f"is not JSON: {error.msg}")]) from None
    except RecursionError:
        raise InvalidInput(
            [Problem(path, None, (), "is nested too deeply to be an inventory")]
        ) from None
    return inventory_from(raw, path)


def history_command(args: argparse.Namespace) -> int:
    from migration_pipeline.lib.history import migration_runs, render

    try:
        runs = migration_runs(args.host, args.port, args.limit, args.timeout)
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    print(render(runs))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="migration-pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    plan = commands.add_parser(
        "plan", help="show (and with --apply, write) the Hybrid project files"
    )
    plan.add_argument(
        "--project-dir",
        required=True,
        help="the repository: a dagster_cloud.yaml, a dg project or a dg workspace",
    )
    plan.add_argument("--target", required=True, choices=TARGETS, help="the Hybrid agent type")
    plan.add_argument(
        "--registry",
        help="image registry and repository prefix (required for every target but local)",
    )
    plan.add_argument("--settings", help="a target settings YAML file (optional)")
    plan.add_argument(
        "--inventory",
        help="an inventory JSON (the serverless_inventory asset's "
        "value) for the Dagster+ settings changes",
    )
    plan.add_argument(
        "--apply",
        action="store_true",
        help="write the files (atomically, with a backup of what they replace)",
    )
    history = commands.add_parser(
        "history", help="list past migration runs from a Dagster webserver (`dagster dev`)"
    )
    history.add_argument("--host", default="127.0.0.1")
    history.add_argument("--port", type=int, default=3000)
    history.add_argument("--limit", type=int, default=200, help="how many recent runs to look at")
    history.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the webserver's whole answer (default 20)",
    )
    args = parser.parse_args(argv)
    if args.command == "history":
        return history_command(args)
    try:
        return plan_command(args)
    except InvalidInput as error:
        print(error.report(), file=sys.stderr)
        return EXIT_INVALID_INPUT
    except KeyboardInterrupt:
        print("migration-pipeline: interrupted (SIGINT); nothing was written.", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the user sees a message, not a traceback
        saved = save_traceback()
        print(
            f"migration-pipeline: unexpected error: {type(error).__name__}: {error}\n"
            f"This is a fault in migration-pipeline, not in your files. The traceback is in "
            f"{saved}; please include it in a bug report.",
            file=sys.stderr,
        )
        return EXIT_UNEXPECTED


def save_traceback() -> str:
    """The current exception's traceback in a new private file; its path."""
    import os
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="migration-pipeline-error-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write(traceback.format_exc())
    return path


if __name__ == "__main__":
    sys.exit(main())
