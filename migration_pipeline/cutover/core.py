"""The cutover core: the preflight (what must hold before anything changes) and the switch to
HYBRID, once. Functions take a client and return plain data; nothing here knows Dagster. What
must survive the switch is `migration_pipeline.snapshot`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migration_pipeline.images.publish import PublishedImage
    from migration_pipeline.plan.applied import AppliedProject
    from migration_pipeline.plus.client import DagsterPlusClient

# -- the preflight -----------------------------------------------------------------------------


def preflight_problems(
    client: DagsterPlusClient,
    applied: AppliedProject,
    images: dict[str, PublishedImage],
    proven: dict[str, str] | None,
    agent_token_id: int | None = None,
) -> list[str]:
    """What stops the cutover before anything changes, one line each (none: go). Reads only.
    `proven`: location -> image the last passed images_load_their_definitions check started;
    `agent_token_id`: the migration's agent token, which must be live."""
    from migration_pipeline.images.prove import unproven_images
    from migration_pipeline.images.publish import missing_images
    from migration_pipeline.plus.errors import NotAuthorizedError
    from migration_pipeline.snapshot import not_loaded

    problems = [
        f"the applied {applied.cloud_yaml} is not valid: {p}" for p in applied.cloud_yaml_problems()
    ]
    problems += [
        f"the image of {name} is not in its registry: {why}"
        for name, why in missing_images(images, applied.target_settings().insecure_registry).items()
    ]
    if applied.target_settings().prove_images:
        problems += [
            f"the image of {name} is not proven to load its definitions: {why}"
            for name, why in unproven_images(images, proven).items()
        ]
    try:
        tokens = client.agent_tokens()  # readable by Organization Admins only: changes nothing
    except NotAuthorizedError as error:
        problems.append(
            f"the API token cannot switch the agent type: Organization Admin is needed ({error})"
        )
    else:
        live = {t.id for t in tokens if not t.revoked}
        if agent_token_id is not None and agent_token_id not in live:
            problems.append(
                f"the migration's agent token {agent_token_id} is revoked (a rollback revokes "
                "it): no agent could serve after the switch; run create_agent_token and "
                "prepare_hybrid_agent again, and start the agent with the new install files"
            )
    deployment = client.deployment_by_name(client.deployment)
    if deployment.agent_type == "SERVERLESS":
        unreadable = not_loaded(client.workspace())
        if unreadable:
            problems.append(
                f"these code locations are not loaded, so their schedules and "
                f"sensors cannot be recorded: {', '.join(unreadable)}; fix them first"
            )
    return problems


# -- the switch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Switch:
    deployment: str
    switched: bool  # False: it was HYBRID already, nothing was switched again
    settings_removed: tuple[str, ...]


def switch_to_hybrid(
    client: DagsterPlusClient,
    remove_settings: tuple[str, ...] = (),
    on_switched: Callable[[], None] = lambda: None,
) -> Switch:
    """Dagster+'s "Switch to Hybrid", once: an already HYBRID deployment is left as it is.
    `on_switched` runs the moment the switch is answered, before anything else can fail (the
    caller records it there). Then the deployment settings the plan removes (only those, and
    only if set) go."""
    from migration_pipeline.inventory.core import settings_after_cutover
    from migration_pipeline.plus.errors import DagsterPlusUnavailableError, OutcomeUnknownError

    deployment = client.deployment_by_name(client.deployment)
    switched = deployment.agent_type != "HYBRID"
    if switched:
        try:
            client.update_deployment_agent_type("HYBRID", deployment.id)
        except (OutcomeUnknownError, DagsterPlusUnavailableError):
            # Every answer was lost, and the switch may have taken effect all the same: it is
            # read back, and recorded if it did (a failed read leaves it to the retry).
            if client.deployment_by_name(client.deployment).agent_type != "HYBRID":
                raise
        on_switched()
    kept, removed = settings_after_cutover(client.deployment_settings(), remove_settings)
    if removed:
        client.set_deployment_settings(kept)
    return Switch(deployment.name, switched, removed)
