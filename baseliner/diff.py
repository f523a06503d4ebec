"""Changes between two snapshots: a hash join first, field-level detail only where needed.

1. Every key's (document hash, fingerprint, state) is compared; equal hashes are done.
2. Keys whose fingerprint differs are *modified*; only those bodies are loaded, and only
   their differing top-level provider fields go through DeepDiff.
3. A run-state transition is its own lifecycle change (*started* / *stopped*), never a
   modification.
4. Creations and deletions are reported only for scopes collected successfully in both
   snapshots. Any other scope yields one ``coverage_gap`` finding saying what could not be
   verified (invariant 1: no false deletions).

Pure: the store is reached only through the ``load`` callable it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deepdiff import DeepDiff

from .fingerprint import SHADOWED_RAW_PATHS, VOLATILE_FIELDS, strip_volatile
from .model import (
    Change,
    Entry,
    Finding,
    InstanceRecord,
    Outcome,
    Scope,
    ScopeOutcomes,
    ScopeResult,
    Severity,
    State,
    finding_order,
)

RUNNING_STATES = frozenset({State.PENDING, State.RUNNING})
STOPPED_STATES = frozenset({State.STOPPING, State.STOPPED, State.SUSPENDED, State.TERMINATED})

Loader = Callable[[Iterable[int]], Mapping[int, InstanceRecord]]


@dataclass(frozen=True)
class Side:
    """What the diff needs of one snapshot."""

    entries: Mapping[str, Entry]
    scopes: Iterable[ScopeResult]


def diff(old: Side, new: Side, load: Loader) -> list[Finding]:
    """Findings (severity and techniques not yet assigned) in a deterministic order."""
    old_scopes = ScopeOutcomes(old.scopes)
    new_scopes = ScopeOutcomes(new.scopes)

    def comparable(scope: Scope) -> bool:
        return (
            old_scopes.outcome(scope) is Outcome.OK and new_scopes.outcome(scope) is Outcome.OK
        )

    def newly_enabled(scope: Scope) -> bool:
        """A region disabled before and collected now: whatever runs there is new (T1535)."""
        before = old_scopes.result(scope)
        return (
            before is not None
            and before.region_disabled
            and new_scopes.outcome(scope) is Outcome.OK
        )

    findings: list[Finding] = []
    modified: list[tuple[Entry, Entry]] = []
    unverified: dict[Scope, dict[str, int]] = {}
    for key in sorted(old.entries.keys() | new.entries.keys()):
        before, after = old.entries.get(key), new.entries.get(key)
        if before is not None and after is not None:
            if before.hash == after.hash:
                continue
            if before.fingerprint != after.fingerprint:
                modified.append((before, after))
            lifecycle = _lifecycle(before.state, after.state)
            if lifecycle:
                findings.append(_instance_finding(lifecycle, after, (
                    Change("state", str(before.state), str(after.state)),)))
        elif after is not None:
            if comparable(after.scope) or newly_enabled(after.scope):
                findings.append(_instance_finding("instance_created", after, ()))
            else:
                unverified.setdefault(after.scope, {"appeared": 0, "missing": 0})["appeared"] += 1
        elif before is not None:
            if comparable(before.scope):
                findings.append(_instance_finding("instance_deleted", before, ()))
            else:
                unverified.setdefault(before.scope, {"appeared": 0, "missing": 0})["missing"] += 1

    if modified:
        bodies = load([e.document_id for pair in modified for e in pair])
        for before, after in modified:
            changes = record_changes(bodies[before.document_id], bodies[after.document_id])
            findings.append(_instance_finding("instance_modified", after, tuple(changes)))

    findings.extend(_coverage_gaps(old_scopes, new_scopes, old.entries, new.entries, unverified))
    findings.sort(key=finding_order)
    return findings


# ---------------------------------------------------------------- scopes


def _coverage_gaps(
    old_scopes: ScopeOutcomes,
    new_scopes: ScopeOutcomes,
    old_entries: Mapping[str, Entry],
    new_entries: Mapping[str, Entry],
    unverified: Mapping[Scope, Mapping[str, int]],
) -> list[Finding]:
    concrete = old_scopes.concrete | new_scopes.concrete
    concrete |= {e.scope for e in old_entries.values()} | {e.scope for e in new_entries.values()}
    wildcards = {r.scope for r in old_scopes.wildcards + new_scopes.wildcards}
    # A wildcard failure is reported through the concrete scopes it covers; on its own only
    # when it covers none of them (an account that has never been collected).
    candidates = concrete | {w for w in wildcards if not any(w.covers(c) for c in concrete)}
    findings = []
    for scope in sorted(candidates):
        before, after = old_scopes.result(scope), new_scopes.result(scope)
        was = before.outcome if before else None
        now = after.outcome if after else None
        if was is Outcome.OK and now is Outcome.OK:
            continue
        if before is not None and before.region_disabled and now is Outcome.OK:
            continue  # enabled since: its instances are reported as created
        counts = unverified.get(scope, {"appeared": 0, "missing": 0})
        if was in (Outcome.SKIPPED, None) and now in (Outcome.SKIPPED, None) and not any(
            counts.values()
        ):
            continue  # disabled (or never collected) on both sides: nothing could be lost
        failed = Outcome.FAILED in (was, now)
        findings.append(
            Finding(
                kind="coverage_gap",
                severity=Severity.MEDIUM if failed else Severity.LOW,
                provider=scope.provider,
                account=scope.account,
                region=scope.region,
                detail=_gap_detail(before, after),
                extra={
                    "coverage": {
                        "old": _describe_outcome(before),
                        "new": _describe_outcome(after),
                        "unverified_missing": counts["missing"],
                        "unverified_appeared": counts["appeared"],
                    }
                },
            )
        )
    return findings


def _describe_outcome(result: ScopeResult | None) -> dict[str, Any]:
    if result is None:
        return {"outcome": "not collected", "detail": ""}
    return {"outcome": str(result.outcome), "detail": result.detail}


def _gap_detail(before: ScopeResult | None, after: ScopeResult | None) -> str:
    def side(name: str, result: ScopeResult | None) -> str:
        if result is None:
            return f"not collected in the {name} snapshot"
        if result.outcome is Outcome.OK:
            return ""
        return f"{result.outcome} in the {name} snapshot ({result.detail})"

    parts = [p for p in (side("old", before), side("new", after)) if p]
    return "; ".join(parts) + "; creations and deletions here are not reported"


# ---------------------------------------------------------------- instances


def _lifecycle(before: State, after: State) -> str | None:
    if before in STOPPED_STATES and after in RUNNING_STATES:
        return "instance_started"
    if before in RUNNING_STATES and after in STOPPED_STATES:
        return "instance_stopped"
    return None


def _instance_finding(kind: str, entry: Entry, changes: tuple[Change, ...]) -> Finding:
    scope = entry.scope
    return Finding(
        kind=kind,
        severity=Severity.INFO,
        provider=scope.provider,
        account=scope.account,
        region=scope.region,
        instance_id=entry.key.split(":", 2)[2],
        key=entry.key,
        changes=changes,
    )


def record_changes(old: InstanceRecord, new: InstanceRecord) -> list[Change]:
    """Field-level configuration changes: normalised fields first, then provider fields
    that no normalised field already shows."""
    before, after = old.to_dict(), new.to_dict()
    changes: list[Change] = []
    for name in before:
        if name in VOLATILE_FIELDS or name == "raw" or before[name] == after[name]:
            continue
        if isinstance(before[name], dict) and isinstance(after[name], dict):
            for sub in sorted(before[name].keys() | after[name].keys()):
                a, b = before[name].get(sub), after[name].get(sub)
                if a != b:
                    changes.append(Change(f"{name}.{sub}", a, b))
        else:
            changes.append(Change(name, before[name], after[name]))
    old_raw, new_raw = strip_volatile(old.raw), strip_volatile(new.raw)
    shadowed = SHADOWED_RAW_PATHS.get(new.provider, frozenset())
    raw_changes = _raw_changes(old_raw, new_raw, shadowed)
    if not changes and not raw_changes:
        raw_changes = _raw_changes(old_raw, new_raw, frozenset())
    changes.extend(raw_changes)
    return changes


def _raw_changes(
    old: dict[str, Any], new: dict[str, Any], skip: frozenset[str], prefix: str = ""
) -> list[Change]:
    """Changes between two provider documents, leaving out the ``skip`` paths (dotted, from
    the document's root). Equal subtrees are passed over by plain comparison; DeepDiff only
    sees the smallest differing subtrees."""
    changes: list[Change] = []
    for top in sorted(old.keys() | new.keys(), key=str):
        path = f"{prefix}{top}"
        if path in skip:
            continue
        a, b = old.get(top, _MISSING), new.get(top, _MISSING)
        if a == b:
            continue
        nested_skip = any(s.startswith(path + ".") for s in skip)
        if nested_skip and isinstance(a, dict) and isinstance(b, dict):
            changes.extend(_raw_changes(a, b, skip, path + "."))
            continue
        if a is _MISSING or b is _MISSING or type(a) is not type(b) or not isinstance(
            a, dict | list
        ):
            changes.append(Change(f"raw.{path}", _plain(a), _plain(b)))
            continue
        tree = DeepDiff(a, b, view="tree", verbose_level=2)
        for levels in tree.values():
            for level in levels:
                where = f"raw.{path}" + _format_path(level.path(output_format="list"))
                changes.append(Change(where, _plain(level.t1), _plain(level.t2)))
    changes.sort(key=lambda c: c.path)
    return changes


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _plain(value: Any) -> Any:
    """DeepDiff's and our own "not present" markers become None in a Change."""
    if value is _MISSING or type(value).__name__ == "NotPresent":
        return None
    return value


def _format_path(parts: list[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)
