"""The Dagster UI in a real headless Chromium (Debian's, driven by Playwright; no browser
download): the organization's deployments added as partitions, the plan job's Launchpad for
one of them, a launched run, the plan's diff on the asset page, and each deployment's progress
on the organization inventory's page."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import requests
from migration_env import location_env
from support.processes import background, wait_for
from support.servers import free_port

pytestmark = pytest.mark.slow

PROJECT_DIR = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def run_statuses(url: str) -> list[tuple[str, str]]:
    answer = requests.post(
        url + "/graphql",
        timeout=10,
        json={"query": ("{ runsOrError { ... on Runs { results { jobName status } } } }")},
    ).json()
    return [(r["jobName"], r["status"]) for r in answer["data"]["runsOrError"]["results"]]


def test_launch_the_plan_from_the_launchpad_and_read_its_diff(sandbox, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
    home = tmp_path / "home"
    home.mkdir()
    # No daemon here: the webserver launches runs itself.
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
        "  class: DefaultRunCoordinator\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = location_env(sandbox, home)
    with background(
        [
            str(BIN / "dagster-webserver"),
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        tmp_path / "webserver.log",
        env,
        cwd=PROJECT_DIR,
    ) as web:

        def serving():
            assert web.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
            try:
                return requests.get(url + "/server_info", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(serving, 120, "the webserver")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_FLAGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def launch_from_the_launchpad(job: str, partition: str | None = None) -> None:
                page.goto(f"{url}/locations/migration_pipeline/jobs/{job}/playground")
                # A first visit shows a "Join the Dagster community" dialog: skip it.
                skip = page.get_by_role("button", name="Skip")
                try:
                    skip.click(timeout=5_000)
                except Exception:  # noqa: BLE001 - no dialog this time
                    pass
                if partition is not None:
                    page.get_by_placeholder("Partition").click(timeout=60_000)
                    page.get_by_text(partition, exact=True).first.click()
                launch = page.get_by_role("button", name="Launch run")
                expect(launch).to_be_enabled(timeout=60_000)
                if job == "plan_migration":
                    # The Launchpad holds the job's default run config: the example repository.
                    expect(page.get_by_text("serverless_repo").first).to_be_visible()
                    page.screenshot(path=str(tmp_path / "plan_launchpad.png"), full_page=True)
                launch.click()
                wait_for(
                    lambda: run_statuses(url).count((job, "SUCCESS")) >= 1,
                    120,
                    f"the {job} run to succeed",
                    interval=1,
                )

            # The organization first: its Serverless deployments become partitions.
            launch_from_the_launchpad("list_deployments")
            launch_from_the_launchpad("plan_migration", partition="prod")
            page.goto(f"{url}/assets/migration_plan")
            diff_row = page.get_by_role("row").filter(has=page.get_by_text("diff", exact=True))
            expect(diff_row).to_be_visible(timeout=60_000)
            diff_row.get_by_text("[Show Markdown]").click()
            # The rewritten dagster_cloud.yaml, as a diff, in the metadata's markdown.
            expect(page.get_by_text("+++ b/dagster_cloud.yaml").first).to_be_visible(timeout=30_000)
            expect(
                page.get_by_text("registry: registry.example.com/acme/analytics").first
            ).to_be_visible()
            screenshot = tmp_path / "migration_plan.png"
            page.screenshot(path=str(screenshot), full_page=True)

            # The cutover is an op job: its switch is an op, not an asset to materialize.
            page.goto(f"{url}/locations/migration_pipeline/jobs/cutover")
            for op in (
                "cutover_preflight",
                "record_pre_cutover_snapshot",
                "move_locations_one_at_a_time",
                "stop_unless_every_location_moved",
                "deactivate_serverless_agent",
            ):
                expect(page.get_by_text(op, exact=True).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(tmp_path / "cutover_job.png"), full_page=True)
            # The finish: the first runs on the new agent before the migration is called done.
            page.goto(f"{url}/locations/migration_pipeline/jobs/finish_hybrid_migration")
            for op in (
                "deploy_hybrid_locations",
                "verify_hybrid_deployment",
                "prove_first_runs",
                "require_nothing_lost",
            ):
                expect(page.get_by_text(op, exact=True).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(tmp_path / "finish_job.png"), full_page=True)
            page.goto(f"{url}/assets/hybrid_deployment?view=checks")
            expect(page.get_by_text("first_runs_succeed").first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(tmp_path / "hybrid_deployment_checks.png"), full_page=True)
            # The asset catalog: one group per phase, and no action among the assets.
            page.goto(f"{url}/assets?view=flat")
            expect(page.get_by_text("serverless_inventory").first).to_be_visible(timeout=60_000)
            expect(page.get_by_text("hybrid_location_moves").first).to_be_visible()
            for group in ("inventory", "plan", "images", "agent", "cutover", "finish"):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            expect(page.get_by_text("deactivate_serverless_agent")).to_have_count(0)
            page.screenshot(path=str(tmp_path / "asset_catalog.png"), full_page=True)

            # The organization's inventory, read again, shows where each deployment is.
            before = run_statuses(url).count(("list_deployments", "SUCCESS"))
            page.goto(f"{url}/locations/migration_pipeline/jobs/list_deployments/playground")
            page.get_by_role("button", name="Launch run").click(timeout=60_000)
            wait_for(
                lambda: run_statuses(url).count(("list_deployments", "SUCCESS")) > before,
                120,
                "the second list_deployments run",
                interval=1,
            )
            page.goto(f"{url}/assets/organization_inventory")
            progress = (
                page.get_by_role("row").filter(has=page.get_by_text("progress", exact=True)).first
            )
            expect(progress).to_contain_text('"prod": "planned"', timeout=60_000)
            expect(progress).to_contain_text('"staging": "not planned"')
            page.screenshot(path=str(tmp_path / "organization.png"), full_page=True)
            browser.close()
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
