"""Back to Serverless: the agent type, the locations document and the deployment settings as
the pre-cutover snapshot recorded them. Changes only what differs, so it is safe at any point
after the snapshot and safe to run twice."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migration_pipeline.plus.client import DagsterPlusClient
    from migration_pipeline.snapshot import Snapshot


class RollbackIncomplete(Exception):
    """The rollback stopped partway; the message says in what state it left the deployment."""


def _canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True)


def restore(client: DagsterPlusClient, snapshot: Snapshot) -> list[str]:
    """What was restored: `agent_type`, `locations_document`, `settings` (none: already as
    before). A reconcile whose answer was lost is sent again only if it did not take effect."""
    from migration_pipeline.plus.errors import DagsterPlusError, OutcomeUnknownError

    restored = []
    deployment = client.deployment_by_name(client.deployment)
    switched_back = deployment.agent_type != snapshot.agent_type
    if switched_back:
        client.update_deployment_agent_type(snapshot.agent_type, deployment.id)
        restored.append("agent_type")
    document = snapshot.locations_document
    if _canonical(client.locations_as_document()) != _canonical(document):
        try:
            try:
                client.reconcile_locations(document)
            except OutcomeUnknownError:
                if _canonical(client.locations_as_document()) != _canonical(document):
                    client.reconcile_locations(document)
        except DagsterPlusError as error:
            if switched_back:
                # The agent type and the document go together: a Serverless deployment with the
                # Hybrid document runs nothing, while the Hybrid agent still serves the Hybrid
                # one. Put the agent type back, so the deployment works as before the rollback.
                client.update_deployment_agent_type(deployment.agent_type, deployment.id)
            raise RollbackIncomplete(
                f"the locations document could not be restored ({error}); "
                + (
                    f"the agent type was put back to {deployment.agent_type}, so the deployment "
                    "works as before the rollback. Run the rollback again."
                    if switched_back
                    else "run the rollback again."
                )
            ) from None
        restored.append("locations_document")
    if client.deployment_settings() != snapshot.settings:
        client.set_deployment_settings(snapshot.settings)
        restored.append("settings")
    return restored


def restore_locations(client: DagsterPlusClient, snapshot: Snapshot, names: list[str]) -> list[str]:
    """Send the named locations back to their documents in the snapshot (the Serverless agent's
    default queue), while the deployment is still SERVERLESS (the per_location strategy before
    its switch): the others stay where they are. Returns those redeployed (none: already as
    before). Raises `RollbackIncomplete`, changing nothing, on a HYBRID deployment (no Serverless
    agent would serve them: roll back the whole deployment) or a name the snapshot lacks."""
    from migration_pipeline.finish.deploy import deploy_what_differs
    from migration_pipeline.plus.types import locations_by_name

    before = locations_by_name(snapshot.locations_document)
    unknown = sorted(set(names) - set(before))
    if unknown:
        raise RollbackIncomplete(
            f"not in the pre-cutover snapshot: {', '.join(unknown)} (it has "
            f"{', '.join(sorted(before)) or 'none'}). Nothing was changed."
        )
    deployment = client.deployment_by_name(client.deployment)
    if deployment.agent_type != "SERVERLESS":
        raise RollbackIncomplete(
            f"{deployment.name} is {deployment.agent_type}: no Serverless agent serves a "
            "location sent back on its own. Roll back the whole deployment (no `locations` in "
            "the config). Nothing was changed."
        )
    wanted = {"locations": [before[name] for name in names]}
    deployed, _ = deploy_what_differs(client, wanted)
    return deployed


def overwritten_by_rollback(
    current_document: dict[str, Any],
    current_settings: dict[str, Any],
    snapshot: Snapshot,
    deployed_document: dict[str, Any] | None,
) -> dict[str, list[str]]:
    """What the rollback will delete or overwrite that changed after the snapshot, said before
    it acts: locations added since (deleted), locations changed since by someone other than the
    migration's deploy (overwritten), and deployment settings changed since (overwritten)."""
    from migration_pipeline.plus.types import locations_by_name

    before, ours = (
        locations_by_name(snapshot.locations_document),
        locations_by_name(deployed_document),
    )
    added, changed = [], []
    for location in current_document.get("locations") or []:
        name = location.get("location_name")
        if name not in before:
            added.append(str(name))
        elif location != before[name] and location != ours.get(name):
            changed.append(str(name))
    expected = snapshot.settings_expected_after
    settings = sorted(
        key
        for key in set(current_settings) | set(expected)
        if current_settings.get(key) != expected.get(key)
    )
    return {
        "locations_deleted": sorted(added),
        "locations_overwritten": sorted(changed),
        "settings_overwritten": settings,
    }
