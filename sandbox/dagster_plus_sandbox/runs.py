"""Runs launched through an agent, as Dagster+ does: each deployment keeps a real Dagster run
and event-log storage (SQLite, beside the state file); a run launched through the user API is
created QUEUED there and handed to an agent serving its location as the agent API's LAUNCH_RUN
request; the run worker the agent starts writes its events back through the agent API's storage
documents (agent_api.py), and the user API reads the same storage.

A location's code pointer, executable and image come from the manifest its agent uploaded when it
loaded the code (`PUT /code_location_update_result`), as Dagster+ builds a run's origin from it.

What is the sandbox's own: the run config is not validated against the job's config schema when
the run is launched (Dagster+ validates it against the uploaded snapshot; here a bad config fails
the run in its worker), and a location the (simulated) Serverless agent serves never starts its
queued runs: only a real agent launches runs.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class LocationCode:
    """A loaded location's code as its agent reported it: each repository's code pointer, the
    Python that runs it, its image and the deploy data it was loaded with."""

    repositories: dict[str, Any]  # name -> CodePointer
    executable_path: str | None
    container_image: str | None
    deploy_data: Any  # CodeLocationDeployData

    @classmethod
    def of_manifest(cls, manifest: Any) -> LocationCode:
        """From a `DagsterCloudCodeLocationManifest` (`PUT /code_location_update_result`)."""
        return cls(
            {r.name: r.code_pointer for r in manifest.repositories},
            manifest.executable_path,
            manifest.container_image,
            manifest.code_location_deploy_data,
        )

    @classmethod
    def of_upload(cls, entry: Any) -> LocationCode | None:
        """From a `DagsterCloudUploadWorkspaceEntry` (`PUT /upload_workspace_entry`)."""
        data = entry.upload_location_data
        if data is None:
            return None
        return cls(
            {r.repository_name: r.code_pointer for r in data.upload_repository_datas},
            data.executable_path,
            data.container_image,
            entry.code_location_deploy_data,
        )


class RunNotLaunchable(Exception):
    """Why a launchRun is refused: the error a user sees (a GraphQL error type and message)."""

    def __init__(self, typename: str, message: str):
        super().__init__(message)
        self.typename = typename
        self.message = message


StatusListener = Callable[[str, str], None]  # (run id, its new status)


class DeploymentRuns:
    """One deployment's run and event-log storage: a real, persistent Dagster instance.
    `on_status` hears each change of a run's status (the sandbox's run list follows it)."""

    def __init__(self, directory: Path, on_status: StatusListener | None = None):
        from dagster import DagsterInstance
        from dagster._core.instance.ref import InstanceRef

        directory.mkdir(parents=True, exist_ok=True)
        (directory / "manifests").mkdir(exist_ok=True)
        config = directory / "dagster.yaml"
        if not config.exists():
            config.write_text("telemetry:\n  enabled: false\n")
        self.directory = directory
        self.instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(directory)))
        self._lock = threading.Lock()
        self._on_status = on_status or (lambda run_id, status: None)

    def store_events(self, entries: Iterable[Any]) -> None:
        """Events a run worker or agent sent, through the instance as Dagster+'s host handles
        them: a run's status follows its run events."""
        for entry in entries:
            self.instance.handle_new_event(entry)
            event = entry.dagster_event
            if event is not None and event.is_job_event:
                run = self.instance.get_run_by_id(entry.run_id)
                if run is not None:
                    self._on_status(run.run_id, run.status.value)

    # -- what agents upload -----------------------------------------------------------------

    def _code_path(self, location: str) -> Path:
        return self.directory / "manifests" / f"{uuid.uuid5(uuid.NAMESPACE_URL, location).hex}.json"

    def record_code(self, location: str, code: LocationCode) -> None:
        """What the agent reported of a loaded location's code (the newest report wins)."""
        from dagster._serdes import serialize_value

        path = self._code_path(location)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "location": location,
                    "repositories": {n: serialize_value(p) for n, p in code.repositories.items()},
                    "executable_path": code.executable_path,
                    "container_image": code.container_image,
                    "deploy_data": serialize_value(code.deploy_data),
                }
            )
        )
        tmp.replace(path)

    def code(self, location: str) -> LocationCode | None:
        from dagster._serdes import deserialize_value

        path = self._code_path(location)
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        return LocationCode(
            repositories={n: deserialize_value(p) for n, p in raw["repositories"].items()},
            executable_path=raw["executable_path"],
            container_image=raw["container_image"],
            deploy_data=deserialize_value(raw["deploy_data"]),
        )

    # -- the user API ---------------------------------------------------------------------------

    def launch(
        self,
        location: str,
        repository: str,
        job_name: str,
        run_config: Mapping[str, Any],
        tags: Mapping[str, str],
    ) -> Any:
        """Create the run QUEUED, its origin the location as registered; an agent serving the
        location launches it. The code it runs (the code pointer, the Python, the image) is
        the one the serving agent reported when the run is handed to it: a run queued while no
        agent served runs the code the new agent loaded."""
        from dagster._core.remote_origin import (
            RegisteredCodeLocationOrigin,
            RemoteJobOrigin,
            RemoteRepositoryOrigin,
        )
        from dagster._core.storage.dagster_run import DagsterRunStatus

        code = self.code(location)
        if code is not None and repository not in code.repositories:
            raise RunNotLaunchable(
                "PythonError", f"Could not find Repository {location}.{repository}"
            )
        remote_origin = RemoteJobOrigin(
            RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(location), repository), job_name
        )
        run = self.instance.create_run(
            job_name=job_name,
            run_id=None,
            run_config=dict(run_config),
            resolved_op_selection=None,
            step_keys_to_execute=None,
            status=DagsterRunStatus.QUEUED,
            tags=dict(tags),  # Dagster adds dagster/code_location from the origin
            root_run_id=None,
            parent_run_id=None,
            job_snapshot=None,
            execution_plan_snapshot=None,
            parent_job_snapshot=None,
            remote_job_origin=remote_origin,
            job_code_origin=None,  # set when an agent is handed the run (`dequeue`)
            asset_selection=None,
            asset_check_selection=None,
            op_selection=None,
            asset_graph=None,  # type: ignore[arg-type] # no asset selection: unused
        )
        self.instance.report_engine_event(
            f"Run queued for location {location}", run, cls=type(self)
        )
        return run

    # -- handing runs to agents -------------------------------------------------------------

    def _set_code_origin(self, run: Any, code: LocationCode) -> None:
        """The code the run will run: the location's as its agent last reported it."""
        from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
        from dagster._core.storage.runs.schema import RunsTable
        from dagster._serdes import serialize_value

        repository = _repository_of(run)
        origin = JobPythonOrigin(
            run.job_name,
            RepositoryPythonOrigin(
                executable_path=code.executable_path or "python",
                code_pointer=code.repositories[repository],
                container_image=code.container_image,
                entry_point=None,
                container_context=code.deploy_data.container_context or None,
            ),
        )
        storage = self.instance.run_storage
        with storage.connect() as connection:  # type: ignore[attr-defined]
            connection.execute(
                RunsTable.update()
                .where(RunsTable.c.run_id == run.run_id)
                .values(run_body=serialize_value(run._replace(job_code_origin=origin)))
            )

    def dequeue(self, locations: Iterable[str], limit: int | None = None) -> list[Any]:
        """The QUEUED runs of these locations, oldest first, each moved to STARTING with the
        events Dagster writes when its run coordinator dequeues a run and launches it
        (RUN_DEQUEUED, RUN_STARTING): each is handed out once."""
        from dagster import DagsterEvent, DagsterEventType
        from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter
        from dagster._core.storage.tags import CODE_LOCATION_TAG

        wanted = set(locations)
        if not wanted:
            return []
        with self._lock:
            queued = self.instance.get_runs(
                RunsFilter(statuses=[DagsterRunStatus.QUEUED]), ascending=True
            )
            codes = {location: self.code(location) for location in wanted}  # read once
            taken = []
            for run in queued:
                location = run.tags.get(CODE_LOCATION_TAG)
                code = codes.get(location) if location else None
                if code is None:
                    continue
                repository = _repository_of(run)
                if repository not in code.repositories:
                    # The code the agent loaded since has no such repository: the run fails.
                    self.instance.report_run_failed(
                        run,
                        f"Could not find Repository {location}.{repository} in the code "
                        "its agent loaded",
                    )
                    self._on_status(run.run_id, "FAILURE")
                    continue
                self._set_code_origin(run, code)
                for kind in (DagsterEventType.RUN_DEQUEUED, DagsterEventType.RUN_STARTING):
                    self.instance.report_dagster_event(
                        DagsterEvent(event_type_value=kind.value, job_name=run.job_name),
                        run_id=run.run_id,
                    )
                taken.append(self.instance.get_run_by_id(run.run_id))
                self._on_status(run.run_id, "STARTING")
                if limit is not None and len(taken) >= limit:
                    break
            return taken


def _repository_of(run: Any) -> str:
    origin = run.remote_job_origin
    assert origin is not None  # every run launchRun creates has one
    return origin.repository_origin.repository_name


class RunStore:
    """Every deployment's runs, under one directory (beside the sandbox's state file).
    `on_status(deployment, run id, status)` hears every run's status change."""

    def __init__(self, directory: Path, on_status: Callable[[str, str, str], None] | None = None):
        self.directory = directory
        self._on_status = on_status
        self._deployments: dict[str, DeploymentRuns] = {}
        self._lock = threading.Lock()

    def existing(self, name: str) -> DeploymentRuns | None:
        """The deployment's storage if an agent ever reported code or a run was launched."""
        safe = uuid.uuid5(uuid.NAMESPACE_URL, name).hex
        if name in self._deployments or (self.directory / safe).exists():
            return self.deployment(name)
        return None

    def deployment(self, name: str) -> DeploymentRuns:
        with self._lock:
            if name not in self._deployments:
                safe = uuid.uuid5(uuid.NAMESPACE_URL, name).hex
                listener = self._on_status
                self._deployments[name] = DeploymentRuns(
                    self.directory / safe,
                    (lambda run_id, status: listener(name, run_id, status)) if listener else None,
                )
            return self._deployments[name]

    def dispose(self) -> None:
        with self._lock:
            for runs in self._deployments.values():
                runs.instance.dispose()
            self._deployments.clear()


def launch_run_request(run: Any, deployment: str, is_branch: bool) -> dict[str, Any]:
    """The agent API's LAUNCH_RUN request for a run, as `popUserCloudAgentRequests` hands it."""
    from dagster._serdes import serialize_value
    from dagster_cloud.api.dagster_cloud_api import (
        DagsterCloudApi,
        DagsterCloudApiRequest,
        LaunchRunArgs,
    )

    request_id = str(uuid.uuid4())
    body = DagsterCloudApiRequest(
        request_id=request_id,
        request_api=DagsterCloudApi.LAUNCH_RUN,
        request_args=LaunchRunArgs(dagster_run=run),
        deployment_name=deployment,
    )
    return {
        "requestId": request_id,
        "requestApi": "LAUNCH_RUN",
        "requestBody": serialize_value(body),
        "deploymentName": deployment,
        "isBranchDeployment": is_branch,
    }


def event_from_input(raw: Mapping[str, Any]) -> Any:
    """The EventLogEntry a run worker sent as `EventLogEntryInput` (the inverse of
    `dagster_cloud.storage.event_logs.storage._input_for_event`)."""
    from dagster import DagsterEvent
    from dagster._core.definitions.dependency import NodeHandle
    from dagster._core.events.log import EventLogEntry
    from dagster._core.execution.plan.handle import StepHandle
    from dagster._serdes import deserialize_value
    from dagster._utils.error import SerializableErrorInfo

    def error(info: Mapping[str, Any] | None) -> SerializableErrorInfo | None:
        if info is None:
            return None
        return SerializableErrorInfo(
            message=info["message"],
            stack=list(info.get("stack") or []),
            cls_name=info.get("clsName"),
            cause=error(info.get("cause")),
        )

    event = raw.get("dagsterEvent")
    dagster_event = None
    if event is not None:
        dagster_event = DagsterEvent(
            event_type_value=event["eventTypeValue"],
            job_name=event["pipelineName"],
            step_handle=(
                StepHandle.parse_from_key(event["stepHandleKey"])  # type: ignore[arg-type]
                if event.get("stepHandleKey")
                else None
            ),
            node_handle=(
                NodeHandle.from_string(event["solidHandleId"])
                if event.get("solidHandleId")
                else None
            ),
            step_kind_value=event.get("stepKindValue"),
            logging_tags=json.loads(event["loggingTags"]) if event.get("loggingTags") else None,
            event_specific_data=(
                deserialize_value(event["eventSpecificData"])  # type: ignore[arg-type]
                if event.get("eventSpecificData")
                else None
            ),
            message=event.get("message"),
            pid=event.get("pid"),
            step_key=event.get("stepKey"),
        )
    return EventLogEntry(
        error_info=error(raw.get("errorInfo")),
        level=raw["level"],
        user_message=raw["userMessage"],
        run_id=raw["runId"],
        timestamp=raw["timestamp"],
        step_key=raw.get("stepKey"),
        job_name=raw.get("pipelineName"),
        dagster_event=dagster_event,
    )


def runs_filter(raw: Mapping[str, Any] | None) -> Any:
    """A `RunsFilter` as the agent's storage sends it (`_get_filters_input`)."""
    from datetime import datetime

    from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

    if not raw:
        return None

    def when(key: str) -> datetime | None:
        value = raw.get(key)
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    tags: dict[str, str | list[str]] = {}
    for tag in raw.get("tags") or []:
        tags[tag["key"]] = tag["value"] if tag.get("value") is not None else tag.get("values") or []
    return RunsFilter(
        run_ids=raw.get("runIds") or None,
        job_name=raw.get("pipelineName"),
        statuses=[DagsterRunStatus(s) for s in raw.get("statuses") or []],
        tags=tags,
        snapshot_id=raw.get("snapshotId"),
        updated_after=when("updatedAfter"),
        updated_before=when("updatedBefore"),
        created_after=when("createdAfter"),
        created_before=when("createdBefore"),
    )
