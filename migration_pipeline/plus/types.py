"""Typed answers of the Dagster+ API: plain, frozen data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr


@dataclass(frozen=True)
class Deployment:
    name: str
    id: int
    type: str  # PRODUCTION | BRANCH
    agent_type: str  # SERVERLESS | HYBRID

    @property
    def is_branch(self) -> bool:
        return self.type == "BRANCH"


@dataclass(frozen=True)
class CodeServerState:
    location_name: str
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Agent:
    id: str
    label: str | None  # the agent's `agent_label` (its config's dagster_cloud_api.agent_label)
    status: str  # RUNNING | NOT_RUNNING
    last_heartbeat_time: float
    metadata: dict[str, str | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    code_server_states: list[CodeServerState] = field(default_factory=list)

    @property
    def is_running(self) -> bool:
        return self.status == "RUNNING"

    def heartbeated_within(self, seconds: float, now: float) -> bool:
        """Whether its last heartbeat is at most `seconds` old at `now` (what the agent API's
        `agents(heartbeatedSince:)` filters on, done here on the user API's answer)."""
        return now - self.last_heartbeat_time <= seconds


@dataclass(frozen=True)
class AgentToken:
    id: int
    description: str | None
    revoked: bool
    token: SecretStr  # repr and str show '**********'; `.get_secret_value()` reveals it


@dataclass(frozen=True)
class Instigator:
    """A schedule or a sensor and whether it is running."""

    location: str
    name: str
    kind: str  # schedule | sensor
    status: str  # RUNNING | STOPPED


@dataclass(frozen=True)
class LocationEntry:
    name: str
    load_status: str  # LOADING | LOADED
    error: str | None
    instigators: tuple[Instigator, ...] = ()
    updated_at: float | None = None  # the entry's last change (a deploy, an agent's report)

    @property
    def is_loaded(self) -> bool:
        return self.load_status == "LOADED" and self.error is None


@dataclass(frozen=True)
class Run:
    run_id: str
    status: str
    job_name: str
    creation_time: float


@dataclass(frozen=True)
class RunDetail:
    """One run as the user API's runOrError answers it."""

    run_id: str
    status: str
    job_name: str
    creation_time: float
    start_time: float | None
    end_time: float | None
    tags: dict[str, str]

    @property
    def finished(self) -> bool:
        return self.status in ("SUCCESS", "FAILURE", "CANCELED")


def locations_by_name(document: dict[str, Any] | None) -> dict[str, Any]:
    """A locations document (as `locationsAsDocument` answers it and a deploy takes it), each
    location by its `location_name`; an absent document has none."""
    return {loc.get("location_name"): loc for loc in (document or {}).get("locations") or []}


def agent_from(raw: dict[str, Any]) -> Agent:
    return Agent(
        id=raw["id"],
        label=raw.get("agentLabel"),
        status=raw["status"],
        last_heartbeat_time=float(raw["lastHeartbeatTime"]),
        metadata={m["key"]: m.get("value") for m in raw.get("metadata") or []},
        errors=[(e.get("error") or {}).get("message", "") for e in raw.get("errors") or []],
        code_server_states=[
            CodeServerState(s["locationName"], s["status"], (s.get("error") or {}).get("message"))
            for s in raw.get("codeServerStates") or []
        ],
    )


def deployment_from(raw: dict[str, Any]) -> Deployment:
    return Deployment(
        name=raw["deploymentName"],
        id=raw["deploymentId"],
        type=raw["deploymentType"],
        agent_type=raw["agentType"],
    )


def location_entry_from(raw: dict[str, Any]) -> LocationEntry:
    location = raw.get("locationOrLoadError") or {}
    error = location.get("message") if location.get("__typename") == "PythonError" else None
    instigators = []
    for repository in location.get("repositories") or []:
        for schedule in repository.get("schedules") or []:
            instigators.append(
                Instigator(
                    raw["name"], schedule["name"], "schedule", schedule["scheduleState"]["status"]
                )
            )
        for sensor in repository.get("sensors") or []:
            instigators.append(
                Instigator(raw["name"], sensor["name"], "sensor", sensor["sensorState"]["status"])
            )
    return LocationEntry(
        raw["name"], raw["loadStatus"], error, tuple(instigators), raw.get("updatedTimestamp")
    )
