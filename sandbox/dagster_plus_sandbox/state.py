"""The sandbox's state: one SQLite file, seeded from a scenario, that survives a restart.

Time-dependent answers (is the Serverless agent still shutting down, is an agent RUNNING, has
a location finished loading) are not stored: they are computed at read time from stored
timestamps and the scenario's timing, so no background thread is needed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster_plus_sandbox.clock import Clock
from dagster_plus_sandbox.runs import RunStore
from dagster_plus_sandbox.scenario import Scenario, generate_runs, new_token_value

# Bumped whenever a table changes: a state file of another version is refused with a message.
SCHEMA_VERSION = "4"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, type TEXT NOT NULL,
    agent_type TEXT NOT NULL, switched_at REAL, settings TEXT NOT NULL,
    parent_id INTEGER, branch TEXT, latest_commit TEXT);
CREATE TABLE IF NOT EXISTS locations (
    deployment_id INTEGER NOT NULL, name TEXT NOT NULL, position INTEGER NOT NULL,
    document TEXT NOT NULL, updated_at REAL NOT NULL, revision INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, name));
CREATE TABLE IF NOT EXISTS instigators (
    deployment_id INTEGER NOT NULL, location TEXT NOT NULL, kind TEXT NOT NULL,
    name TEXT NOT NULL, status TEXT NOT NULL, cron TEXT,
    PRIMARY KEY (deployment_id, location, kind, name));
CREATE TABLE IF NOT EXISTS runs (
    deployment_id INTEGER NOT NULL, run_id TEXT NOT NULL, status TEXT NOT NULL,
    job_name TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (deployment_id, run_id));
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (deployment_id, status);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (deployment_id, created);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY, value TEXT UNIQUE NOT NULL, name TEXT, kind TEXT NOT NULL,
    role TEXT, user TEXT, description TEXT, revoked INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeats (
    agent_id TEXT NOT NULL, deployment TEXT NOT NULL, agent_label TEXT, agent_type TEXT,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL, metadata TEXT NOT NULL,
    errors TEXT NOT NULL, queues TEXT NOT NULL, PRIMARY KEY (agent_id, deployment));
CREATE TABLE IF NOT EXISTS uploads (
    deployment TEXT NOT NULL, location TEXT NOT NULL, at REAL NOT NULL, error TEXT,
    revision INTEGER NOT NULL, PRIMARY KEY (deployment, location));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, deployment TEXT, kind TEXT NOT NULL,
    detail TEXT NOT NULL);
"""

SERVERLESS_AGENT_ID = "serverless"
DEFAULT_QUEUE = None  # a location without `agent_queue`, an agent's include_default_queue
DEPLOYMENT_TYPES = ("PRODUCTION", "BRANCH")  # DagsterCloudDeploymentType


@dataclass(frozen=True)
class Token:
    id: int
    name: str | None
    kind: str  # "user" | "agent"
    role: str | None  # "ADMIN" | "EDITOR" | "VIEWER" for user tokens
    user: str | None
    description: str | None
    revoked: bool
    created: float

    @property
    def is_admin(self) -> bool:
        """An Organization Admin's user token: agent switches, agent tokens, settings."""
        return self.kind == "user" and self.role == "ADMIN"

    @property
    def can_edit(self) -> bool:
        """May deploy code locations and create branch deployments: an Editor or Admin user
        token, or an agent token (Dagster's Hybrid CI deploys with one)."""
        return self.kind == "agent" or (self.kind == "user" and self.role in ("ADMIN", "EDITOR"))


@dataclass(frozen=True)
class Deployment:
    id: int
    name: str
    type: str  # PRODUCTION | BRANCH
    agent_type: str  # SERVERLESS | HYBRID
    switched_at: float | None
    settings: dict[str, Any]
    parent_id: int | None = None  # a branch deployment's base deployment
    branch: dict[str, Any] | None = (
        None  # repo_name, branch_name, pull_request_* of a branch deployment
    )
    latest_commit: dict[str, Any] | None = None

    @property
    def is_branch(self) -> bool:
        return self.type == "BRANCH"


@dataclass(frozen=True)
class AgentView:
    id: str
    label: str | None
    launcher: str | None  # the heartbeat's agent_type: the user code launcher's class name
    status: str  # RUNNING | NOT_RUNNING
    last_heartbeat: float
    metadata: dict[str, Any]
    errors: list[dict[str, Any]]
    # The agent queues it serves (None: the default queue), from its heartbeat's
    # agent_queues_config; the Serverless agent serves the default queue only.
    queues: tuple[str | None, ...] = (DEFAULT_QUEUE,)


@dataclass(frozen=True)
class LocationView:
    name: str
    document: dict[str, Any]
    updated_at: float
    revision: int  # orders deploys and agents' reports (see SandboxState._next_revision)
    load_status: str  # LOADING | LOADED
    error: str | None  # a load error, once LOADED
    # Hybrid only: deployed since an agent last reported it, so an agent must load and upload it.
    outdated: bool = False
    # When the agent's report of this deploy arrived (Hybrid, once reported).
    reported_at: float | None = None

    @property
    def agent_queue(self) -> str | None:
        """The queue whose agents serve it (`agent_queue` in its document; None: the default)."""
        return self.document.get("agent_queue") or DEFAULT_QUEUE

    @property
    def entry_updated_at(self) -> float:
        """The user API's updatedTimestamp: the entry changes when the agent's report of the
        deploy arrives (its load data or error), else at the deploy. The agent API keeps the
        deploy's time (`updated_at`): the agent reconciles on it, and a later time there would
        make it restart every code server. Dagster+'s own rule for updatedTimestamp is not
        public; this is the sandbox's."""
        return self.reported_at if self.reported_at is not None else self.updated_at


class SandboxState:
    """All reads and writes of the sandbox, serialized by one lock."""

    def __init__(self, path: str | Path, scenario: Scenario, clock: Clock = time.time):
        self.path = str(path)
        self.clock = clock
        self._lock = threading.RLock()
        # Each deployment's real run and event-log storage, beside the state file (runs.py).
        self.runs = RunStore(Path(self.path + ".runs"), self.set_run_status)
        fresh = not Path(self.path).exists() or Path(self.path).stat().st_size == 0
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if not fresh:
            self._check_version()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        if fresh or self._meta("organization") is None:
            self._seed(scenario)
        # (deployment, agent queues) -> the deploy's revision last asked about
        self._workspace_checks: dict[tuple[str, tuple[str | None, ...] | None], int] = {}
        organization, timing = self._meta("organization"), self._meta("timing")
        assert organization is not None and timing is not None  # seeded above
        self.organization: str = organization
        self.timing = json.loads(timing)

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.runs.dispose()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @staticmethod
    def _next_revision(db: sqlite3.Connection) -> int:
        """The next number of a sequence over every deploy and every agent report, in the
        transaction that writes it: which came after which, whatever the clock says."""
        db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'revision'")
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(value)

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _check_version(self) -> None:
        try:
            version = self._meta("schema_version")
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise ValueError(f"{self.path}: not a sandbox state file ({error})") from None
        if version != SCHEMA_VERSION:
            self._db.close()
            raise ValueError(
                f"{self.path}: a state file of another sandbox version "
                f"({version or 'unversioned'}, this is {SCHEMA_VERSION}); delete it "
                "to start from the scenario again"
            )

    # -- seeding ------------------------------------------------------------------------------

    def _seed(self, scenario: Scenario) -> None:
        now = self.clock()
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [
                    ("schema_version", SCHEMA_VERSION),
                    ("organization", scenario.organization),
                    ("timing", json.dumps(scenario.timing)),
                    ("revision", "0"),
                ],
            )
            for token in scenario.tokens:
                kind = token.get("kind", "user")
                db.execute(
                    "INSERT INTO tokens (value, name, kind, role, user, description, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        token.get("value") or new_token_value(kind, scenario.organization),
                        token.get("name"),
                        kind,
                        token.get("role", "VIEWER" if kind == "user" else "AGENT"),
                        token.get("user"),
                        token.get("description"),
                        now,
                    ),
                )
            ids: dict[str, int] = {}
            for spec in scenario.deployments:
                branch = spec.get("branch")
                cursor = db.execute(
                    "INSERT INTO deployments (name, type, agent_type, switched_at, settings,"
                    " parent_id, branch) VALUES (?, ?, ?, NULL, ?, ?, ?)",
                    (
                        spec["name"],
                        spec.get("type", "PRODUCTION"),
                        spec.get("agent_type", "SERVERLESS"),
                        json.dumps(spec.get("settings") or {}),
                        ids.get(spec.get("parent", "")),
                        json.dumps(branch) if branch else None,
                    ),
                )
                assert cursor.lastrowid is not None  # an INSERT's row
                deployment_id = ids[spec["name"]] = cursor.lastrowid
                for position, document in enumerate(spec.get("locations") or []):
                    # Seeded locations were deployed long ago: already loaded where served.
                    db.execute(
                        "INSERT INTO locations VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            deployment_id,
                            document["location_name"],
                            position,
                            json.dumps(document),
                            now - 86400.0,
                            self._next_revision(db),
                        ),
                    )
                for location, kinds in (spec.get("instigators") or {}).items():
                    for kind in ("schedules", "sensors"):
                        for item in kinds.get(kind) or []:
                            db.execute(
                                "INSERT INTO instigators VALUES (?, ?, ?, ?, ?, ?)",
                                (
                                    deployment_id,
                                    location,
                                    kind[:-1],
                                    item["name"],
                                    item.get("status", "RUNNING"),
                                    item.get("cron"),
                                ),
                            )
                db.executemany(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?)",
                    (
                        (deployment_id, run_id, status, job, created)
                        for run_id, status, job, created in generate_runs(
                            spec.get("runs") or {}, now
                        )
                    ),
                )

    # -- tokens --------------------------------------------------------------------------------

    @staticmethod
    def _token(row: sqlite3.Row) -> Token:
        return Token(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            role=row["role"],
            user=row["user"],
            description=row["description"],
            revoked=bool(row["revoked"]),
            created=row["created"],
        )

    def authenticate(self, value: str | None) -> Token | None:
        """The live token with this value, or None (missing, unknown or revoked)."""
        if not value:
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM tokens WHERE value = ?", (value,)).fetchone()
        if row is None or row["revoked"]:
            return None
        return self._token(row)

    def token_value(self, name: str) -> str | None:
        """The value of a scenario token by its name (for the CLI's start-up banner)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM tokens WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def agent_tokens(self) -> list[tuple[Token, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM tokens WHERE kind = 'agent' ORDER BY id"
            ).fetchall()
        return [(self._token(row), row["value"]) for row in rows]

    def create_agent_token(self, description: str | None, created_by: Token) -> tuple[Token, str]:
        value = new_token_value("agent", self.organization)
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO tokens (value, kind, role, description, created)"
                " VALUES (?, 'agent', 'AGENT', ?, ?)",
                (value, description, self.clock()),
            )
            self._event(
                db,
                None,
                "agent_token_created",
                {"id": cursor.lastrowid, "description": description, "by": created_by.user},
            )
            row = db.execute("SELECT * FROM tokens WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return self._token(row), value

    def revoke_agent_token(self, token_id: int) -> tuple[Token, str] | None:
        with self._tx() as db:
            db.execute("UPDATE tokens SET revoked = 1 WHERE id = ? AND kind = 'agent'", (token_id,))
            row = db.execute(
                "SELECT * FROM tokens WHERE id = ? AND kind = 'agent'", (token_id,)
            ).fetchone()
            if row is not None:
                self._event(db, None, "agent_token_revoked", {"id": token_id})
        return (self._token(row), row["value"]) if row else None

    # -- deployments ---------------------------------------------------------------------------

    @staticmethod
    def _deployment(row: sqlite3.Row) -> Deployment:
        return Deployment(
            id=row["id"],
            name=row["name"],
            type=row["type"],
            agent_type=row["agent_type"],
            switched_at=row["switched_at"],
            settings=json.loads(row["settings"]),
            parent_id=row["parent_id"],
            branch=json.loads(row["branch"]) if row["branch"] else None,
            latest_commit=json.loads(row["latest_commit"]) if row["latest_commit"] else None,
        )

    def deployments(self) -> list[Deployment]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM deployments ORDER BY id").fetchall()
        return [self._deployment(row) for row in rows]

    def deployment(self, name: str | None = None, id: int | None = None) -> Deployment | None:
        column, value = ("id", id) if id is not None else ("name", name)
        with self._lock:
            row = self._db.execute(
                f"SELECT * FROM deployments WHERE {column} = ?", (value,)
            ).fetchone()
        return self._deployment(row) if row else None

    def existing_deployment(self, name: str | None = None, id: int | None = None) -> Deployment:
        """A deployment this state has just written (so it exists)."""
        found = self.deployment(name, id)
        if found is None:
            raise LookupError(f"no deployment {name or id}")
        return found

    def default_deployment(self) -> Deployment:
        return self.deployments()[0]

    def set_agent_type(self, deployment: Deployment, agent_type: str) -> Deployment:
        """Switch the agent type; switching to the type a deployment already has changes nothing."""
        if deployment.agent_type == agent_type:
            return deployment
        with self._tx() as db:
            db.execute(
                "UPDATE deployments SET agent_type = ?, switched_at = ? WHERE id = ?",
                (agent_type, self.clock(), deployment.id),
            )
            self._event(
                db,
                deployment.name,
                "agent_type_switched",
                {"from": deployment.agent_type, "to": agent_type},
            )
        return self.existing_deployment(id=deployment.id)

    def upsert_branch_deployment(
        self, branch: dict[str, Any], commit: dict[str, Any], base: Deployment
    ) -> Deployment:
        """The branch deployment of (repository, branch), created on first use (as `dagster-cloud
        ci init` asks for it in a pull request) and updated with the newest commit after. It is
        served by the agent type of its base deployment."""
        name = branch_deployment_name(branch["repoName"], branch["branchName"])
        stored = {
            k: branch.get(k)
            for k in (
                "repoName",
                "branchName",
                "branchUrl",
                "pullRequestUrl",
                "pullRequestStatus",
                "pullRequestNumber",
            )
        }
        with self._tx() as db:
            existing = db.execute("SELECT id FROM deployments WHERE name = ?", (name,)).fetchone()
            if existing is None:
                db.execute(
                    "INSERT INTO deployments (name, type, agent_type, switched_at, settings,"
                    " parent_id, branch, latest_commit) VALUES (?, 'BRANCH', ?, NULL, '{}', ?, ?, ?)",
                    (name, base.agent_type, base.id, json.dumps(stored), json.dumps(commit)),
                )
                self._event(
                    db,
                    name,
                    "branch_deployment_created",
                    {"repo": stored["repoName"], "branch": stored["branchName"], "base": base.name},
                )
            else:
                db.execute(
                    "UPDATE deployments SET branch = ?, latest_commit = ? WHERE id = ?",
                    (json.dumps(stored), json.dumps(commit), existing[0]),
                )
        return self.existing_deployment(name=name)

    def branch_deployment(self, repo_name: str, branch_name: str) -> Deployment | None:
        return self.deployment(name=branch_deployment_name(repo_name, branch_name))

    def delete_deployment(self, deployment: Deployment) -> None:
        with self._tx() as db:
            for table in ("locations", "instigators", "runs"):
                db.execute(f"DELETE FROM {table} WHERE deployment_id = ?", (deployment.id,))
            db.execute("DELETE FROM deployments WHERE id = ?", (deployment.id,))
            self._event(db, deployment.name, "deployment_deleted", {"type": deployment.type})

    def set_settings(self, deployment: Deployment, settings: dict[str, Any]) -> dict[str, Any]:
        with self._tx() as db:
            db.execute(
                "UPDATE deployments SET settings = ? WHERE id = ?",
                (json.dumps(settings), deployment.id),
            )
            self._event(db, deployment.name, "settings_set", {"keys": sorted(settings)})
        return settings

    # -- agents and their heartbeats -----------------------------------------------------------

    def record_heartbeat(
        self, deployment: str, heartbeat: dict[str, Any], errors: list[dict[str, Any]]
    ) -> None:
        now = self.clock()
        with self._tx() as db:
            db.execute(
                "INSERT INTO heartbeats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (agent_id, deployment) DO UPDATE SET agent_label = excluded.agent_label,"
                " agent_type = excluded.agent_type, last_seen = excluded.last_seen,"
                " metadata = excluded.metadata, errors = excluded.errors,"
                " queues = excluded.queues",
                (
                    heartbeat["agent_id"],
                    deployment,
                    heartbeat.get("agent_label"),
                    heartbeat.get("agent_type"),
                    now,
                    now,
                    json.dumps(heartbeat.get("metadata") or {}),
                    json.dumps(errors),
                    json.dumps(served_queues(heartbeat.get("agent_queues_config"))),
                ),
            )

    def serverless_status(self, deployment: Deployment) -> str:
        """The `ServerlessAgentStatus` of a deployment, from its last switch and the timing:
        PROVISIONING then ACTIVE while SERVERLESS, DELETING then INACTIVE once HYBRID. (Which
        values live Dagster+ shows around a switch cannot be checked from here.)"""
        since = self.clock() - (deployment.switched_at or float("-inf"))
        if deployment.agent_type == "SERVERLESS":
            if since < self.timing["serverless_provision_seconds"]:
                return "PROVISIONING"
            return "ACTIVE"
        if since < self.timing["serverless_shutdown_seconds"]:
            return "DELETING"
        return "INACTIVE"

    def agents(
        self, deployment: Deployment, heartbeated_since: float | None = None
    ) -> list[AgentView]:
        """The agents of a deployment: its Serverless agent while it runs or shuts down, and
        every agent that heartbeated for it (since `heartbeated_since`, as the agent API asks)."""
        now = self.clock()
        window = self.timing["heartbeat_window_seconds"]
        views = []
        serverless = self.serverless_status(deployment)
        if serverless != "INACTIVE" and not deployment.is_branch:
            views.append(
                AgentView(
                    id=SERVERLESS_AGENT_ID,
                    label=None,
                    launcher=None,
                    status="RUNNING" if serverless == "ACTIVE" else "NOT_RUNNING",
                    last_heartbeat=now if serverless == "ACTIVE" else deployment.switched_at or now,
                    metadata={},
                    errors=[],
                )
            )
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM heartbeats WHERE deployment = ? AND last_seen >= ?"
                " ORDER BY first_seen",
                (deployment.name, heartbeated_since or float("-inf")),
            ).fetchall()
        for row in rows:
            views.append(
                AgentView(
                    id=row["agent_id"],
                    label=row["agent_label"],
                    launcher=row["agent_type"],
                    status="RUNNING" if now - row["last_seen"] <= window else "NOT_RUNNING",
                    last_heartbeat=row["last_seen"],
                    metadata=json.loads(row["metadata"]),
                    errors=json.loads(row["errors"]),
                    queues=tuple(json.loads(row["queues"])),
                )
            )
        return views

    def record_upload(self, deployment: str, location: str, error: str | None) -> None:
        """What an agent reports after loading a location's code: loaded, or its error."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?)",
                (deployment, location, self.clock(), error, self._next_revision(db)),
            )
            self._event(db, deployment, "location_reported", {"location": location, "error": error})

    def claim_workspace_check(
        self, deployment: str, revision: int, queues: tuple[str | None, ...] | None = None
    ) -> bool:
        """True once per deploy (its revision) and set of agent queues: whether to ask the
        agents of those queues to check for workspace updates."""
        key = (deployment, queues)
        with self._lock:
            if self._workspace_checks.get(key, -1) >= revision:
                return False
            self._workspace_checks[key] = revision
            return True

    def _uploads(self, deployment: Deployment) -> dict[str, tuple[int, str | None, float]]:
        """Each location's latest report: (its revision, the load error or None, its time)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT location, revision, error, at FROM uploads WHERE deployment = ?",
                (deployment.name,),
            ).fetchall()
        return {row["location"]: (row["revision"], row["error"], row["at"]) for row in rows}

    def _queues_served(self, deployment: Deployment) -> set[str | None]:
        """The agent queues the Hybrid agents heartbeating for this deployment within the
        window serve (None: the default queue)."""
        window = self.timing["heartbeat_window_seconds"]
        with self._lock:
            rows = self._db.execute(
                "SELECT queues FROM heartbeats WHERE deployment = ? AND last_seen >= ?",
                (deployment.name, self.clock() - window),
            ).fetchall()
        return {queue for row in rows for queue in json.loads(row[0])}

    # -- code locations ------------------------------------------------------------------------

    def location_documents(self, deployment: Deployment) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT document FROM locations WHERE deployment_id = ? ORDER BY position",
                (deployment.id,),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def locations(self, deployment: Deployment) -> list[LocationView]:
        """Every location with its load status as the agent that serves it sees it now.

        Which agent serves a location is decided by its agent queue, as in Dagster+: on a
        SERVERLESS deployment the Serverless agent serves the default queue only (a location
        with an `agent_queue` is a Hybrid agent's, the mixed setup of Dagster's guide
        "Deploying to both Serverless and Hybrid code locations"); on a HYBRID deployment
        every location is a Hybrid agent's.

        Serverless: LOADED `location_load_seconds` after its deploy or the agent's start.
        Hybrid: LOADED only when a RUNNING Hybrid agent that serves the location's queue
        reported it (its code loaded, or its load error) after the location's last deploy: the
        agent's own report, whatever its launcher, never a timer."""
        now = self.clock()
        load_seconds = self.timing["location_load_seconds"]
        hybrid = deployment.agent_type == "HYBRID"
        serverless_since = (
            deployment.switched_at or float("-inf")
            if not hybrid and self.serverless_status(deployment) == "ACTIVE"
            else None
        )
        queues_served = self._queues_served(deployment)
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM locations WHERE deployment_id = ? ORDER BY position",
                (deployment.id,),
            ).fetchall()
        uploads = self._uploads(deployment)

        views = []
        for row in rows:
            document = json.loads(row["document"])
            queue = document.get("agent_queue") or DEFAULT_QUEUE
            serverless_owned = not hybrid and queue is DEFAULT_QUEUE
            # The agent's report of this deploy: written after it (revisions order every write,
            # even two within one tick of the clock).
            reported = row["name"] in uploads and uploads[row["name"]][0] > row["revision"]
            status, error, reported_at = "LOADING", None, None
            if serverless_owned:
                if (
                    serverless_since is not None
                    and now >= max(row["updated_at"], serverless_since) + load_seconds
                ):
                    status = "LOADED"
            elif reported and queue in queues_served:
                _, error, reported_at = uploads[row["name"]]
                status = "LOADED"
            views.append(
                LocationView(
                    row["name"],
                    document,
                    row["updated_at"],
                    row["revision"],
                    status,
                    error,
                    outdated=not serverless_owned and not reported,
                    reported_at=reported_at,
                )
            )
        return views

    def upsert_locations(
        self, deployment: Deployment, documents: list[dict[str, Any]], kind: str
    ) -> list[str]:
        """Add or replace each location in `documents` (a deploy); others are left alone."""
        now = self.clock()
        with self._tx() as db:
            (next_position,) = db.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM locations WHERE deployment_id = ?",
                (deployment.id,),
            ).fetchone()
            for document in documents:
                name = document["location_name"]
                existing = db.execute(
                    "SELECT position FROM locations WHERE deployment_id = ? AND name = ?",
                    (deployment.id, name),
                ).fetchone()
                position = existing[0] if existing else next_position
                next_position += 0 if existing else 1
                db.execute(
                    "INSERT OR REPLACE INTO locations VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        deployment.id,
                        name,
                        position,
                        json.dumps(document),
                        now,
                        self._next_revision(db),
                    ),
                )
                self._event(
                    db,
                    deployment.name,
                    kind,
                    {
                        "location": name,
                        "image": document.get("image"),
                        "agent_queue": document.get("agent_queue"),
                    },
                )
        return [document["location_name"] for document in documents]

    def delete_location(self, deployment: Deployment, name: str) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM locations WHERE deployment_id = ? AND name = ?",
                (deployment.id, name),
            )
            if cursor.rowcount:
                self._event(db, deployment.name, "location_deleted", {"location": name})
        return bool(cursor.rowcount)

    def instigators(self, deployment: Deployment, location: str) -> dict[str, list[dict]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, name, status, cron FROM instigators"
                " WHERE deployment_id = ? AND location = ? ORDER BY kind, name",
                (deployment.id, location),
            ).fetchall()
        out: dict[str, list[dict]] = {"schedule": [], "sensor": []}
        for row in rows:
            out[row["kind"]].append(dict(row))
        return out

    # -- runs ----------------------------------------------------------------------------------

    @staticmethod
    def _run_filter(
        deployment: Deployment,
        statuses: list[str] | None,
        run_ids: list[str] | None,
        job_name: str | None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> tuple[str, list]:
        where: list[str] = ["deployment_id = ?"]
        args: list[Any] = [deployment.id]
        if created_after is not None:
            where.append("created > ?")
            args.append(created_after)
        if created_before is not None:
            where.append("created < ?")
            args.append(created_before)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if run_ids:
            where.append(f"run_id IN ({','.join('?' * len(run_ids))})")
            args += run_ids
        if job_name:
            where.append("job_name = ?")
            args.append(job_name)
        return " AND ".join(where), args

    def run_count(
        self,
        deployment: Deployment,
        statuses: list[str] | None = None,
        run_ids: list[str] | None = None,
        job_name: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> int:
        clause, args = self._run_filter(
            deployment, statuses, run_ids, job_name, created_after, created_before
        )
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM runs WHERE {clause}", args).fetchone()[0]

    def run_page(
        self,
        deployment: Deployment,
        statuses: list[str] | None = None,
        run_ids: list[str] | None = None,
        job_name: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> list[dict[str, Any]]:
        """Runs newest first; `cursor` is the run id after which the page starts."""
        clause, args = self._run_filter(
            deployment, statuses, run_ids, job_name, created_after, created_before
        )
        with self._lock:
            if cursor:
                anchor = self._db.execute(
                    "SELECT created FROM runs WHERE deployment_id = ? AND run_id = ?",
                    (deployment.id, cursor),
                ).fetchone()
                if anchor is not None:
                    clause += " AND (created < ? OR (created = ? AND run_id < ?))"
                    args += [anchor[0], anchor[0], cursor]
            sql = f"SELECT * FROM runs WHERE {clause} ORDER BY created DESC, run_id DESC"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            return [dict(row) for row in self._db.execute(sql, args).fetchall()]

    def record_launched_run(
        self, deployment: Deployment, run_id: str, job_name: str, location: str
    ) -> None:
        """A run launched through the user API joins the deployment's run list, QUEUED; its
        status then follows its real storage (`set_run_status`)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?)",
                (deployment.id, run_id, "QUEUED", job_name, self.clock()),
            )
            self._event(
                db, deployment.name, "run_launched", {"run_id": run_id, "location": location}
            )

    def set_run_status(self, deployment: str, run_id: str, status: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET status = ? WHERE run_id = ? AND deployment_id ="
                " (SELECT id FROM deployments WHERE name = ?)",
                (status, run_id, deployment),
            )
            self._event(db, deployment, "run_status", {"run_id": run_id, "status": status})

    # -- the audit log -------------------------------------------------------------------------

    def _event(
        self, db: sqlite3.Connection, deployment: str | None, kind: str, detail: dict[str, Any]
    ) -> None:
        db.execute(
            "INSERT INTO events (at, deployment, kind, detail) VALUES (?, ?, ?, ?)",
            (self.clock(), deployment, kind, json.dumps(detail)),
        )

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """What changed, in order: agent switches, tokens created, deploys, settings."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM events" + (" WHERE kind = ?" if kind else "") + " ORDER BY id",
                (kind,) if kind else (),
            ).fetchall()
        return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]


def served_queues(config: Any) -> list[str | None]:
    """The queues an agent serves, from its heartbeat's serialized AgentQueuesConfig
    (`dagster_cloud.agent.AgentQueuesConfig.queues`: the additional queues, then the default
    queue, None, when include_default_queue); an agent that sends none serves the default."""
    if not isinstance(config, dict):
        return [DEFAULT_QUEUE]
    queues: list[str | None] = [q for q in config.get("additional_queues") or [] if q]
    if config.get("include_default_queue", True):
        queues.append(DEFAULT_QUEUE)
    return queues


def branch_deployment_name(repo_name: str, branch_name: str) -> str:
    """A branch deployment's name: stable for (repository, branch). Dagster+'s own naming is not
    documented; this one is the sandbox's (40 hex digits, like the names seen in its URLs)."""
    import hashlib

    return hashlib.sha1(f"{repo_name}:{branch_name}".encode()).hexdigest()
