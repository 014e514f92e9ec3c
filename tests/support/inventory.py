"""Inventories for plan tests that need no sandbox."""

from __future__ import annotations

from migration_pipeline.inventory.core import Inventory


def inventory_of(**fields) -> Inventory:
    """An inventory with these fields, the others as an empty Serverless `prod` has them."""
    base = dict(
        organization_url="https://acme.dagster.cloud",
        deployment="prod",
        deployment_id=1,
        agent_type="SERVERLESS",
        serverless_status="ACTIVE",
        agents=[],
        locations_document={"locations": []},
        locations=[],
        settings={},
        run_counts={},
    )
    return Inventory(**{**base, **fields})
