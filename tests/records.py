"""Small builders of records and snapshots for unit tests of pure code and the store."""

from __future__ import annotations

from typing import Any

from baseliner.model import InstanceRecord, Outcome, Scope, ScopeResult, Snapshot, State

EAST = Scope("aws", "111111111111", "us-east-1")
WEST = Scope("aws", "111111111111", "eu-west-1")


def record(instance_id: str, scope: Scope = EAST, state: State = State.RUNNING,
           instance_type: str = "t3.micro", **fields: Any) -> InstanceRecord:
    raw = {"InstanceId": instance_id, "InstanceType": instance_type,
           "State": {"Name": str(state)}, "SourceDestCheck": True}
    raw.update(fields.pop("raw", {}))
    values: dict[str, Any] = {
        "key": f"{scope.provider}:{scope.account}:{instance_id}",
        "provider": scope.provider,
        "account": scope.account,
        "region": scope.region,
        "zone": scope.region + "a",
        "instance_id": instance_id,
        "name": instance_id,
        "state": state,
        "instance_type": instance_type,
        "image": "ami-1",
        "launch_time": "2026-12-01T00:00:00+00:00",
        "tags": {"Name": instance_id},
        "raw": raw,
    }
    values.update(fields)
    return InstanceRecord(**values)


def snapshot(*records: InstanceRecord, scopes: dict[Scope, Outcome] | None = None,
             taken_at: str = "2026-12-01T00:00:00Z") -> Snapshot:
    outcomes = scopes if scopes is not None else {EAST: Outcome.OK, WEST: Outcome.OK}
    results = tuple(
        ScopeResult(s, o, "" if o is Outcome.OK else f"{o} for a test")
        for s, o in sorted(outcomes.items())
    )
    return Snapshot(taken_at=taken_at, records=tuple(records), scopes=results)
