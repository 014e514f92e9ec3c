"""How a Hybrid agent reports the code locations it loaded, in both of Dagster's schemes:

- server upload: `PUT /upload_workspace_entry` with a zlib-compressed serialized
  `DagsterCloudUploadWorkspaceEntry` (multipart);
- direct upload: `GET /check_snapshot` (is this snapshot stored?), a PUT to the "presigned" URL
  the answer gives (here `/_snapshots/<sha1>` on the sandbox itself), `PUT /confirm_upload`,
  then `PUT /code_location_update_result` naming the location and its error snapshot, if any.

The sandbox keeps only what it needs: which location loaded, and the error message if it did
not. Repository snapshots are acknowledged as stored without keeping their bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import zlib
from typing import Any

from dagster_plus_sandbox.runs import LocationCode

MAX_SNAPSHOT_BYTES = 4_000_000  # an error snapshot (a serialized load error)
# What a compressed upload may inflate to: a workspace entry (a location's whole repository
# snapshot) of a large project is tens of MB. A "zlib bomb" (a few MB that inflate to GBs) is
# refused once this much has come out, never inflated whole.
MAX_INFLATED_BYTES = 64_000_000


def inflate(data: bytes, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """`zlib.decompress(data)`, refusing (ValueError) what would inflate past `limit` bytes."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as error:
        raise ValueError(f"not zlib data: {error}") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"it inflates to more than {limit:,} bytes")
    if not inflater.eof:
        raise ValueError("the zlib stream is cut short")
    return out


class SnapshotStore:
    """Error snapshots the agent uploaded, by sha1, bounded in number and in bytes (the oldest
    go first). Uploads go to presigned URLs: `signature` is an HMAC of the sha1 under a secret
    of this store."""

    def __init__(self, limit: int = 1000, max_bytes: int = 64_000_000):
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}
        self._limit = limit
        self._max_bytes = max_bytes
        self._bytes = 0
        self._secret = secrets.token_bytes(32)

    def sign(self, sha1: str) -> str:
        return hmac.new(self._secret, sha1.encode(), hashlib.sha256).hexdigest()

    def signed(self, sha1: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(sha1), signature)

    def put(self, sha1: str, data: bytes) -> None:
        with self._lock:
            self._bytes += len(data) - len(self._data.pop(sha1, b""))
            self._data[sha1] = data
            while len(self._data) > self._limit or self._bytes > self._max_bytes:
                self._bytes -= len(self._data.pop(next(iter(self._data))))

    def get(self, sha1: str) -> bytes | None:
        with self._lock:
            return self._data.get(sha1)


def check_snapshot(params: dict[str, str], base_url: str, store: SnapshotStore) -> Any:
    """Answer `GET /check_snapshot`: error snapshots must be uploaded (we read them); any other
    snapshot is reported as stored already."""
    from dagster._serdes import pack_value
    from dagster_cloud.api.dagster_cloud_api import (
        CheckSnapshotResult,
        SnapshotType,
        SnapshotUploadData,
        StoredSnapshot,
    )

    sha1, kind = params["sha1"], params.get("type", "")
    formats = params.get("formats", "json")
    file_format = "json" if "json" in formats.split(",") else formats.split(",")[0]
    uri = f"sandbox://snapshots/{sha1}"
    if kind == SnapshotType.ERROR and store.get(sha1) is None:
        upload = SnapshotUploadData(
            sha1=sha1,
            format=file_format,
            uri=uri,
            presigned_put_url=f"{base_url}/_snapshots/{sha1}?signature={store.sign(sha1)}",
            id=sha1,
            type=kind,
        )
        return pack_value(CheckSnapshotResult(stored_snapshot=None, upload_data=upload))
    stored = StoredSnapshot(
        sha1=sha1, format=file_format, uri=uri, decompressed_size=int(params.get("size", 0))
    )
    return pack_value(CheckSnapshotResult(stored_snapshot=stored, upload_data=None))


def confirm_upload(body: Any, store: SnapshotStore) -> Any:
    from dagster._serdes import pack_value, unpack_value
    from dagster_cloud.api.dagster_cloud_api import (
        ConfirmUploadResult,
        SnapshotUploadData,
        StoredSnapshot,
    )

    upload = unpack_value(body, SnapshotUploadData)
    size = len(_decoded(store.get(upload.sha1) or b"", upload.format))
    return pack_value(
        ConfirmUploadResult(
            stored_snapshot=StoredSnapshot(
                sha1=upload.sha1, format=upload.format, uri=upload.uri, decompressed_size=size
            )
        )
    )


def _decoded(data: bytes, file_format: str) -> bytes:
    return inflate(data) if file_format != "json" and data else data


def code_location_update(
    body: Any, store: SnapshotStore
) -> tuple[str, str | None, Any, LocationCode | None]:
    """(location, load error or None, the answer, the code it loaded) for
    `PUT /code_location_update_result`."""
    from dagster._serdes import deserialize_value, pack_value, unpack_value
    from dagster._utils.error import SerializableErrorInfo
    from dagster_cloud.api.dagster_cloud_api import (
        DagsterCloudCodeLocationUpdateResponse,
        DagsterCloudCodeLocationUpdateResult,
    )

    result = unpack_value(body, DagsterCloudCodeLocationUpdateResult)
    error = None
    if result.error_snapshot is not None:
        raw = store.get(result.error_snapshot.sha1)
        error = (
            deserialize_value(
                _decoded(raw, result.error_snapshot.format).decode(), SerializableErrorInfo
            ).message.strip()
            if raw
            else "the agent reported a load error"
        )
    answer = pack_value(
        DagsterCloudCodeLocationUpdateResponse(
            updated=True,
            message=f"{result.location_name}: {'error recorded' if error else 'loaded'}",
            missing_job_snapshots=None,
        )
    )
    code = LocationCode.of_manifest(result.manifest) if result.manifest is not None else None
    return result.location_name, error, answer, code


def workspace_entry_upload(
    content_type: str, body: bytes
) -> tuple[str, str | None, str, LocationCode | None]:
    """(location, load error or None, the serialized answer, the code it loaded) for
    `PUT /upload_workspace_entry`."""
    from email.parser import BytesParser
    from email.policy import HTTP

    from dagster._serdes import deserialize_value, serialize_value
    from dagster_cloud.api.dagster_cloud_api import (
        DagsterCloudUploadWorkspaceEntry,
        DagsterCloudUploadWorkspaceResponse,
    )

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    parts = [p for p in message.iter_parts() if p.get_filename()]
    if not parts:
        raise ValueError("expected a multipart upload with a workspace_entry file")
    payload = parts[0].get_payload(decode=True)
    if not isinstance(payload, bytes):
        raise ValueError("the workspace_entry file is empty")
    entry = deserialize_value(inflate(payload).decode(), DagsterCloudUploadWorkspaceEntry)
    error_info = entry.serialized_error_info
    error = error_info.message.strip() if error_info is not None else None
    answer = serialize_value(
        DagsterCloudUploadWorkspaceResponse(
            updated=True,
            message=f"{entry.location_name}: {'error recorded' if error else 'loaded'}",
            missing_job_snapshots=None,
        )
    )
    return entry.location_name, error, answer, LocationCode.of_upload(entry)
