"""Plain values passed between the steps of the pipeline.

Every step (collect, store, diff, rules, report) takes and returns these; none of them
imports an SDK, SQLite or rich, so each step can be tested without the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

__all__ = [
    "ALL",
    "REGION_NOT_ENABLED",
    "Baseline",
    "Change",
    "DiffReport",
    "Entry",
    "Finding",
    "KIND_ORDER",
    "finding_order",
    "HistoryEvent",
    "InstanceRecord",
    "Inventory",
    "InventoryRow",
    "Outcome",
    "Scope",
    "ScopeOutcomes",
    "ScopeResult",
    "Severity",
    "Snapshot",
    "SnapshotInfo",
    "State",
    "Timeline",
    "canonical_json",
    "canonical_json_bytes",
    "document_bytes",
    "content_hash",
    "digest",
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


REGION_NOT_ENABLED = "region not enabled"
"""Start of the detail of a scope skipped because its region is disabled (AWS opt-in)."""


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def rank(self) -> int:
        """How little the outcome tells: when two results speak for one scope, the worse wins."""
        return _OUTCOME_RANK[self]


_OUTCOME_RANK = {Outcome.OK: 0, Outcome.SKIPPED: 1, Outcome.FAILED: 2}


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

    @property
    def region_disabled(self) -> bool:
        """Skipped because the region is not enabled for the account: nothing can run there,
        so it was known to be empty (unlike a scope that failed or was left out)."""
        return self.outcome is Outcome.SKIPPED and self.detail.startswith(REGION_NOT_ENABLED)


class ScopeOutcomes:
    """The scope outcomes of one snapshot, looked up as every consumer needs them: a scope's
    own result, else the worst wildcard result covering it (``aws/123/*``: an account whose
    regions could not even be listed)."""

    def __init__(self, results: Iterable[ScopeResult]) -> None:
        self.by_scope: dict[Scope, ScopeResult] = {r.scope: r for r in results}
        self.wildcards = [r for r in self.by_scope.values()
                          if ALL in (r.scope.account, r.scope.region)]

    @property
    def concrete(self) -> set[Scope]:
        return {s for s in self.by_scope if ALL not in (s.account, s.region)}

    def covering(self, scope: Scope) -> ScopeResult | None:
        """The worst wildcard result covering ``scope``."""
        found = [r for r in self.wildcards if r.scope.covers(scope)]
        return max(found, key=lambda r: r.outcome.rank) if found else None

    def result(self, scope: Scope) -> ScopeResult | None:
        return self.by_scope.get(scope) or self.covering(scope)

    def outcome(self, scope: Scope) -> Outcome | None:
        found = self.result(scope)
        return found.outcome if found else None


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
    streamed: int | None = None
    """Number of records when they were streamed into the store instead of kept here."""

    @property
    def instance_count(self) -> int:
        return self.streamed if self.streamed is not None else len(self.records)

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
class Baseline:
    """A snapshot a reviewer approved as known-good: who, when and why."""

    id: int
    snapshot_id: int
    taken_at: str
    """When the approved snapshot was taken (not when it was approved)."""
    set_at: str
    set_by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "snapshot_id": self.snapshot_id,
            "taken_at": self.taken_at,
            "set_at": self.set_at,
            "set_by": self.set_by,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class DiffReport:
    old: SnapshotInfo
    new: SnapshotInfo
    findings: list[Finding]
    baseline: Baseline | None = None
    """Set when ``old`` is the approved baseline (``diff --against baseline``)."""


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


def _dumps(value: Any, option: int) -> bytes:
    # Provider documents have string keys; only an odd one needs the slower non-string path.
    try:
        return orjson.dumps(value, option=option, default=str)
    except orjson.JSONEncodeError:
        return orjson.dumps(value, option=option | orjson.OPT_NON_STR_KEYS, default=str)


def canonical_json_bytes(value: Any) -> bytes:
    """The serialisation that is hashed into fingerprints: sorted keys, no whitespace, UTF-8.

    orjson rather than the standard library: it is about four times faster, and this runs
    for every record of every snapshot."""
    return _dumps(value, orjson.OPT_SORT_KEYS)


def document_bytes(value: Any) -> bytes:
    """A stored record body: compact JSON in the record's own key order.

    Not sorted, which is cheaper than :func:`canonical_json_bytes`. Its hash only addresses
    the body: providers return their fields in a stable order, and if one ever reorders them
    the cost is one more stored document, never a finding, since the diff decides "modified"
    on the fingerprint (sorted) and not on this hash."""
    return _dumps(value, 0)


def canonical_json(value: Any) -> str:
    return canonical_json_bytes(value).decode()


def digest(data: bytes) -> str:
    """128 bits of SHA-256 (hardware-accelerated, and collision-resistant: an attacker who
    controls a tag value must not be able to make a changed record hash like the old one)."""
    return hashlib.sha256(data).hexdigest()[:32]


def content_hash(value: Any) -> str:
    return digest(canonical_json_bytes(value))


# ---------------------------------------------------------------- review: history, inventory


@dataclass(frozen=True)
class HistoryEvent:
    """One step of an instance's timeline.

    ``event`` is ``first_seen``, ``modified`` (a new configuration revision), ``reverted``
    (a configuration seen before came back), ``started``, ``stopped``, ``state`` (another
    run-state transition), ``missing`` (not in a snapshot; ``detail`` says whether its scope
    was collected) or ``back`` (listed again after missing).
    """

    snapshot_id: int
    taken_at: str
    event: str
    revision: int | None = None
    changes: tuple[Change, ...] = ()
    detail: str = ""
    until_snapshot_id: int | None = None
    """For ``missing``: the last snapshot of the run of snapshots it was missing from."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id,
            "taken_at": self.taken_at,
            "event": self.event,
            "revision": self.revision,
            "changes": [c.to_dict() for c in self.changes],
            "detail": self.detail,
            "until_snapshot": self.until_snapshot_id,
        }


@dataclass(frozen=True)
class Timeline:
    """An instance across every stored snapshot that could hold it."""

    key: str
    provider: str
    account: str
    region: str
    instance_id: str
    name: str | None
    events: tuple[HistoryEvent, ...]
    revisions: int
    first_seen: tuple[int, str]
    """(snapshot id, taken at)."""
    last_seen: tuple[int, str]
    latest_snapshot: tuple[int, str]
    """The newest snapshot in the store: ``last_seen`` equal to it means present now."""

    def to_dict(self) -> dict[str, Any]:
        def ref(pair: tuple[int, str]) -> dict[str, Any]:
            return {"id": pair[0], "taken_at": pair[1]}

        return {
            "key": self.key,
            "provider": self.provider,
            "account": self.account,
            "region": self.region,
            "instance_id": self.instance_id,
            "name": self.name,
            "revisions": self.revisions,
            "first_seen": ref(self.first_seen),
            "last_seen": ref(self.last_seen),
            "present_in_latest": self.last_seen[0] == self.latest_snapshot[0],
            "latest_snapshot": ref(self.latest_snapshot),
            "events": [e.to_dict() for e in self.events],
        }


@dataclass(frozen=True)
class InventoryRow:
    """Instances of one scope of a snapshot, with the collection outcome of that scope."""

    scope: Scope
    outcome: Outcome | None
    detail: str
    instances: int
    states: dict[str, int]
    limit: int | None = None
    """The smallest ``max_instances`` of the thresholds that count this scope on its own."""
    flags: tuple[str, ...] = ()
    """Kinds of the findings about this scope (``unused_region``, ``count_threshold``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.scope.provider,
            "account": self.scope.account,
            "region": self.scope.region,
            "outcome": str(self.outcome) if self.outcome else "not collected",
            "detail": self.detail,
            "instances": self.instances,
            "states": dict(sorted(self.states.items())),
            "limit": self.limit,
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class Inventory:
    """What ``baseliner report`` summarises: one snapshot against the rules."""

    snapshot: SnapshotInfo
    rows: tuple[InventoryRow, ...]
    findings: list[Finding]
    baseline: Baseline | None = None
    empty_scopes: int = 0
    """Scopes collected successfully that hold no instance (not listed as rows)."""
    skipped_scopes: int = 0


KIND_ORDER = (
    "coverage_gap",
    "unused_region",
    "count_threshold",
    "instance_deleted",
    "instance_created",
    "unapproved_image",
    "instance_reverted",
    "instance_modified",
    "instance_stopped",
    "instance_started",
)
"""Within one scope, findings are listed in this order (what can't be trusted first)."""
_KIND_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}


def finding_order(finding: Finding) -> tuple[Any, ...]:
    """The deterministic order of findings: scope, then kind, then key."""
    return (
        finding.provider,
        finding.account,
        finding.region,
        _KIND_RANK.get(finding.kind, len(KIND_ORDER)),
        finding.key or "",
    )
