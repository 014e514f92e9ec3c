"""When each code location was served, replayed from the sandbox's event log: the deploys (with
their agent queue), the agents' load reports, the agent-type switches. The same rules as
`SandboxState.locations` (a Serverless location is served `location_load_seconds` after its
deploy or its agent's start; any other once an agent reported it after its deploy), over the
whole history instead of now, so a test or a bench can ask whether there was a moment when no
agent served the deployment, and how long each location went unserved.

The Hybrid agent is taken to be running from its first report on (a report is the agent's own
act); its heartbeats are not replayed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEPLOY_KINDS = ("location_deployed", "location_updated", "location_reconciled")


@dataclass
class _Location:
    queue: str | None
    deployed_at: float
    served_from: float | None = None  # None: not served since its deploy


@dataclass
class Timeline:
    """Unserved intervals, (start, end) in the sandbox's clock, between `start` and `end`."""

    start: float
    end: float
    deployment_unserved: list[tuple[float, float]] = field(default_factory=list)
    location_unserved: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    @property
    def deployment_unserved_seconds(self) -> float:
        return round(sum(end - start for start, end in self.deployment_unserved), 3)

    def location_unserved_seconds(self, name: str) -> float:
        return round(sum(end - start for start, end in self.location_unserved.get(name, [])), 3)


def serving_timeline(
    events: list[dict[str, Any]],
    deployment: str,
    agent_type: str,
    timing: dict[str, float],
    start: float,
    end: float,
    locations: dict[str, str | None],
) -> Timeline:
    """The unserved intervals of `deployment` between `start` and `end`. `agent_type` and
    `locations` (name -> agent queue) are what it had at `start`, every location served then.
    """
    load = timing["location_load_seconds"]
    provision = timing["serverless_provision_seconds"]
    state = {name: _Location(queue, start - load, start) for name, queue in locations.items()}
    serverless_active_from: float | None = start if agent_type == "SERVERLESS" else None
    hybrid = agent_type == "HYBRID"
    mine = [e for e in events if e.get("deployment") == deployment and start <= e["at"] <= end]

    def serverless_owned(loc: _Location) -> bool:
        return not hybrid and loc.queue is None

    def serverless_ready(loc: _Location) -> float | None:
        if serverless_active_from is None:
            return None
        return max(loc.deployed_at + load, serverless_active_from)

    def served(at: float) -> set[str]:
        out = set()
        for name, loc in state.items():
            if serverless_owned(loc):
                ready = serverless_ready(loc)
                if ready is not None and at >= ready:
                    out.add(name)
            elif loc.served_from is not None and at >= loc.served_from:
                out.add(name)
        return out

    samples: list[tuple[float, set[str]]] = []

    def sample_until(since: float, until: float) -> None:
        """Samples while nothing happens but Serverless loads finishing: at `since` and at each
        load's end before `until`."""
        points = {since}
        for loc in state.values():
            ready = serverless_ready(loc) if serverless_owned(loc) else None
            if ready is not None and since < ready < until:
                points.add(ready)
        samples.extend((at, served(at)) for at in sorted(points))

    previous = start
    for event in mine:
        at, kind, detail = event["at"], event["kind"], event["detail"]
        sample_until(previous, at)
        previous = at
        if kind in DEPLOY_KINDS:
            name = detail["location"]
            state[name] = _Location(detail.get("agent_queue"), at)
        elif kind == "location_reported" and detail["location"] in state:
            loc = state[detail["location"]]
            if loc.served_from is None and not serverless_owned(loc) and not detail.get("error"):
                loc.served_from = at
        elif kind == "location_deleted":
            state.pop(detail["location"], None)
        elif kind == "agent_type_switched":
            hybrid = detail["to"] == "HYBRID"
            if hybrid:
                serverless_active_from = None
                for loc in state.values():
                    if loc.queue is None:
                        loc.served_from = None  # a Hybrid agent must report it first
            else:
                serverless_active_from = at + provision
    sample_until(previous, end)
    samples.append((end, served(end)))
    timeline = Timeline(start, end)
    names = set(locations) | {e["detail"]["location"] for e in mine if e["kind"] in DEPLOY_KINDS}
    for name in sorted(names):
        timeline.location_unserved[name] = _gaps(samples, lambda s, n=name: n not in s, end)
    timeline.deployment_unserved = _gaps(samples, lambda s: not s, end)
    return timeline


def _gaps(samples, unserved, end: float) -> list[tuple[float, float]]:
    gaps: list[tuple[float, float]] = []
    began: float | None = None
    for at, served in samples:
        if unserved(served) and began is None:
            began = at
        elif not unserved(served) and began is not None:
            if at - began > 1e-6:
                gaps.append((round(began, 6), round(at, 6)))
            began = None
    if began is not None and end - began > 1e-6:
        gaps.append((round(began, 6), round(end, 6)))
    return gaps
