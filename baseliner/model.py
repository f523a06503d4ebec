"""Plain values passed between the steps of the pipeline.

Every step (collect, store, diff, rules, report) takes and returns these; none of them
imports an SDK, SQLite or rich, so each step can be tested without the others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "ALL",
    "Change",
    "DiffReport",
    "Entry",
    "Finding",
    "InstanceRecord",
    "Outcome",
    "Scope",
    "ScopeResult",
    "Severity",
    "Snapshot",
    "SnapshotInfo",
    "State",
    "canonical_json",
    "content_hash",
]

ALL = "*"
"""Account or region of a scope whose members could not even be listed (a failed
assume-role, a failed account discovery): it stands for every scope below it."""


class State(StrEnum):
    """Run state shared by every cloud; each provider maps its own states onto it."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


@dataclass(frozen=True, order=True)
class Scope:
    """One (provider, account, region) a collector enumerates."""

    provider: str
    account: str
    region: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.account}/{self.region}"

    def covers(self, other: Scope) -> bool:
        """True when this scope is `other` or stands for it through a wildcard."""
        return (
            self.provider == other.provider
            and self.account in (ALL, other.account)
            and self.region in (ALL, other.region)
        )


@dataclass(frozen=True)
class ScopeResult:
    """How the collection of one scope ended."""

    scope: Scope
    outcome: Outcome
    detail: str = ""
    """The error text for a failed scope, the reason for a skipped one."""
    instance_count: int = 0
    duration: float = 0.0


@dataclass(frozen=True)
class InstanceRecord:
    """One compute instance, normalised to the same shape for every cloud.

    ``raw`` is the provider document after redaction, JSON-safe (no datetimes).
    """

    key: str
    provider: str
    account: str
    region: str
    zone: str | None
    instance_id: str
    name: str | None
    state: State
    instance_type: str | None
    image: str | None
    launch_time: str | None
    private_ips: tuple[str, ...] = ()
    public_ips: tuple[str, ...] = ()
    network: dict[str, Any] = field(default_factory=dict)
    security_groups: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    identity: str | None = None
    key_name: str | None = None
    root_disk: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> Scope:
        return Scope(self.provider, self.account, self.region)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "provider": self.provider,
            "account": self.account,
            "region": self.region,
            "zone": self.zone,
            "instance_id": self.instance_id,
            "name": self.name,
            "state": str(self.state),
            "instance_type": self.instance_type,
            "image": self.image,
            "launch_time": self.launch_time,
            "private_ips": list(self.private_ips),
            "public_ips": list(self.public_ips),
            "network": self.network,
            "security_groups": list(self.security_groups),
            "tags": self.tags,
            "identity": self.identity,
            "key_name": self.key_name,
            "root_disk": self.root_disk,
            "raw": self.raw,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceRecord:
        return cls(
            key=data["key"],
            provider=data["provider"],
            account=data["account"],
            region=data["region"],
            zone=data.get("zone"),
            instance_id=data["instance_id"],
            name=data.get("name"),
            state=State(data.get("state", "unknown")),
            instance_type=data.get("instance_type"),
            image=data.get("image"),
            launch_time=data.get("launch_time"),
            private_ips=tuple(data.get("private_ips", ())),
            public_ips=tuple(data.get("public_ips", ())),
            network=data.get("network") or {},
            security_groups=tuple(data.get("security_groups", ())),
            tags=data.get("tags") or {},
            identity=data.get("identity"),
            key_name=data.get("key_name"),
            root_disk=data.get("root_disk"),
            raw=data.get("raw") or {},
        )


@dataclass(frozen=True)
class Snapshot:
    """All records of one collection run plus the outcome of every scope."""

    taken_at: str
    records: tuple[InstanceRecord, ...]
    scopes: tuple[ScopeResult, ...]
    source: str = "live"
    id: int | None = None

    @property
    def status(self) -> str:
        if any(s.outcome is Outcome.FAILED for s in self.scopes):
            return "partial"
        return "complete"


@dataclass(frozen=True)
class SnapshotInfo:
    id: int
    taken_at: str
    source: str
    status: str
    instance_count: int
    scope_count: int
    failed_scopes: int
    skipped_scopes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "taken_at": self.taken_at,
            "source": self.source,
            "status": self.status,
            "instance_count": self.instance_count,
            "scope_count": self.scope_count,
            "failed_scopes": self.failed_scopes,
            "skipped_scopes": self.skipped_scopes,
        }


@dataclass(frozen=True)
class DiffReport:
    old: SnapshotInfo
    new: SnapshotInfo
    findings: list[Finding]


@dataclass(frozen=True)
class Entry:
    """One record of a snapshot, without its body."""

    key: str
    document_id: int
    hash: str
    fingerprint: str
    state: State
    scope: Scope


@dataclass(frozen=True)
class Change:
    """One field that differs: ``path`` is dotted (``tags.Owner``, ``raw.SourceDestCheck``)."""

    path: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: Severity
    provider: str
    account: str
    region: str
    instance_id: str | None = None
    key: str | None = None
    changes: tuple[Change, ...] = ()
    techniques: tuple[str, ...] = ()
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "severity": str(self.severity),
            "provider": self.provider,
            "account": self.account,
            "region": self.region,
            "instance_id": self.instance_id,
            "key": self.key,
            "changes": [c.to_dict() for c in self.changes],
            "techniques": list(self.techniques),
            "detail": self.detail,
        }
        out.update(self.extra)
        return out


def canonical_json(value: Any) -> str:
    """The one serialisation used for hashing: sorted keys, no whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(value: Any) -> str:
    return hashlib.blake2b(canonical_json(value).encode(), digest_size=16).hexdigest()
