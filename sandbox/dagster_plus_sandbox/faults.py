"""Fault injection, per operation, for the next N calls or at a rate.

A fault is a mapping:

    {"operation": "updateDeploymentAgentType",  # a root field, a userCloudAgent field, or "*"
     "api": "user",                              # which API it hits: user (default), agent or "*"
     "kind": "http_503",                         # one of KINDS below
     "count": 2,                                 # the next N matching calls (default 1) ...
     "rate": 0.3,                                # ... or this share of them, for ever
     "seconds": 2.0,                             # latency: how long to wait
     "retry_after": 1}                           # http_429: the Retry-After header, in seconds

Faults come from the scenario's `faults:` list and, at run time, from `POST /_sandbox/faults`
or `FaultInjector.add`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

# drop: the connection closes before the call runs; drop_after: the call takes effect and only
# its answer is lost (what makes a retried mutation dangerous when it is not idempotent).
KINDS = ("latency", "http_500", "http_503", "http_429", "drop", "drop_after")


@dataclass
class Fault:
    operation: str
    kind: str
    api: str = "user"
    count: int | None = 1
    rate: float | None = None
    seconds: float = 1.0
    retry_after: float | None = 1.0
    fired: int = field(default=0)

    @classmethod
    def from_mapping(cls, raw: dict) -> Fault:
        if not isinstance(raw, dict):
            raise ValueError("fault: a mapping is needed")
        unknown = set(raw) - {"operation", "api", "kind", "count", "rate", "seconds", "retry_after"}
        if unknown:
            raise ValueError(f"fault: unknown keys {sorted(unknown)}")
        if raw.get("kind") not in KINDS:
            raise ValueError(
                f"fault: kind must be one of {', '.join(KINDS)}, got {raw.get('kind')!r}"
            )
        if not isinstance(raw.get("operation"), str) or not raw["operation"]:
            raise ValueError("fault: operation is required (a GraphQL field name or '*')")
        if raw.get("api", "user") not in ("user", "agent", "*"):
            raise ValueError("fault: api must be user, agent or '*'")
        try:
            rate = None if raw.get("rate") is None else float(raw["rate"])
            count = None if rate is not None else int(raw.get("count", 1))
            seconds = float(raw.get("seconds", 1.0))
            retry_after = raw.get("retry_after", 1.0)
            retry_after = None if retry_after is None else float(retry_after)
        except (TypeError, ValueError):
            raise ValueError("fault: count, rate, seconds and retry_after are numbers") from None
        if rate is not None and not 0 < rate <= 1:
            raise ValueError("fault: rate is a share of calls, above 0 and at most 1")
        if count is not None and count < 1:
            raise ValueError("fault: count is at least 1")
        if not 0 <= seconds <= 600 or (retry_after is not None and not 0 <= retry_after <= 3600):
            raise ValueError("fault: seconds is 0 to 600 and retry_after 0 to 3600")
        return cls(
            operation=raw["operation"],
            kind=raw["kind"],
            api=raw.get("api", "user"),
            count=count,
            rate=rate,
            seconds=seconds,
            retry_after=retry_after,
        )

    def as_dict(self) -> dict:
        return {
            "operation": self.operation,
            "api": self.api,
            "kind": self.kind,
            "count": self.count,
            "rate": self.rate,
            "seconds": self.seconds,
            "retry_after": self.retry_after,
            "fired": self.fired,
        }


class FaultInjector:
    """Chooses which fault, if any, hits a request, given the operations it touches."""

    def __init__(self, faults: list[dict] | None = None, seed: int | None = None):
        self._lock = threading.Lock()
        self._faults: list[Fault] = [Fault.from_mapping(f) for f in faults or []]
        self._random = random.Random(seed)

    def add(self, **raw) -> Fault:
        fault = Fault.from_mapping(raw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def pick(self, operations: set[str], api: str = "user") -> list[Fault]:
        """The faults that fire for a request to `api` touching `operations`: at most one
        latency and at most one failure (latency first), each consumed if it is counted."""
        fired: list[Fault] = []
        with self._lock:
            for fault in list(self._faults):
                if fault.operation != "*" and fault.operation not in operations:
                    continue
                if fault.api not in ("*", api):
                    continue
                is_latency = fault.kind == "latency"
                if any((f.kind == "latency") == is_latency for f in fired):
                    continue
                if fault.rate is not None and self._random.random() >= fault.rate:
                    continue
                fault.fired += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                fired.append(fault)
        return sorted(fired, key=lambda f: f.kind != "latency")
