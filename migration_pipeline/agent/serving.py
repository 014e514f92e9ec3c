"""Is the migration's own agent serving? Decided from the user API's `agents` answer alone, by
the label the install files set; nothing depends on how Dagster+ shows its Serverless agent."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migration_pipeline.plus.types import Agent

# How old the last heartbeat of a RUNNING agent may be for it to count as serving (the real
# agent heartbeats every 30 s).
RECENT_HEARTBEAT_SECONDS = 90.0


def migration_agents(
    agents: list[Agent], label: str | None, agents_before: tuple[str, ...] | list[str], now: float
) -> list[Agent]:
    """The agents that are the migration's own and serve now: RUNNING with a recent heartbeat
    and the label its install files set (or, for a target whose install cannot set a label, not
    among the agents listed before it was installed)."""
    return [
        a
        for a in agents
        if a.is_running
        and a.heartbeated_within(RECENT_HEARTBEAT_SECONDS, now)
        and (a.label == label if label else a.id not in agents_before)
    ]


def waiting_message(agents: list[Agent], label: str | None) -> str:
    """What a tick that found no such agent says it saw."""
    wanted = f"label {label!r}" if label else "an agent not listed before the install"
    seen = ", ".join(f"{a.label or a.id} {a.status}" for a in agents) or "none"
    return (
        f"Waiting for the migration's agent ({wanted}) to be RUNNING with a recent heartbeat; "
        f"agents seen: {seen}. Start the agent."
    )
