"""Diff kinds and coverage, through the real store (a temporary SQLite file)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from baseliner import pipeline
from baseliner.model import ALL, Outcome, Scope, State
from baseliner.store import open_store

from .records import EAST, WEST, record, snapshot


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "d.db", create=True) as s:
        yield s


def findings(store, old, new):
    a, b = store.write_snapshot(old), store.write_snapshot(new)
    return pipeline.diff(store, a, b).findings


def summary(found):
    return sorted((f.kind, f.instance_id or f"{f.account}/{f.region}") for f in found)


def test_created_deleted_modified_started_stopped(store):
    old = snapshot(record("i-gone"), record("i-mod"), record("i-stop"),
                   record("i-start", state=State.STOPPED), record("i-same", WEST))
    new = snapshot(record("i-new"), record("i-mod", instance_type="m5.large"),
                   record("i-stop", state=State.STOPPED),
                   record("i-start"), record("i-same", WEST))
    found = findings(store, old, new)
    assert summary(found) == [
        ("instance_created", "i-new"),
        ("instance_deleted", "i-gone"),
        ("instance_modified", "i-mod"),
        ("instance_started", "i-start"),
        ("instance_stopped", "i-stop"),
    ]
    modified = next(f for f in found if f.kind == "instance_modified")
    paths = [(c.path, c.old, c.new) for c in modified.changes]
    assert paths == [("instance_type", "t3.micro", "m5.large")]  # raw.InstanceType is shadowed
    stopped = next(f for f in found if f.kind == "instance_stopped")
    assert [(c.path, c.old, c.new) for c in stopped.changes] == [("state", "running", "stopped")]


def test_stop_is_lifecycle_not_modification_even_with_volatile_changes(store):
    before = record("i-1", public_ips=("1.2.3.4",), raw={"PublicIpAddress": "1.2.3.4"})
    after = record("i-1", state=State.STOPPED, launch_time="2026-12-02T00:00:00+00:00",
                   raw={"State": {"Name": "stopped"}})
    assert summary(findings(store, snapshot(before), snapshot(after))) == [
        ("instance_stopped", "i-1")
    ]


def test_volatile_only_change_is_no_finding(store):
    before = record("i-1", public_ips=("1.1.1.1",))
    after = record("i-1", public_ips=("2.2.2.2",), launch_time="2026-12-03T00:00:00+00:00")
    assert findings(store, snapshot(before), snapshot(after)) == []


def test_provider_only_change_is_reported_with_its_path(store):
    before = record("i-1")
    after = record("i-1", raw={"SourceDestCheck": False, "MetadataOptions": {"HttpTokens": "x"}})
    found = findings(store, snapshot(before), snapshot(after))
    assert [(c.path, c.old, c.new) for c in found[0].changes] == [
        ("raw.MetadataOptions", None, {"HttpTokens": "x"}),
        ("raw.SourceDestCheck", True, False),
    ]


def test_nested_provider_change_names_the_nested_path(store):
    before = record("i-1", raw={"MetadataOptions": {"HttpTokens": "required", "Hop": 2}})
    after = record("i-1", raw={"MetadataOptions": {"HttpTokens": "optional", "Hop": 2}})
    found = findings(store, snapshot(before), snapshot(after))
    assert [(c.path, c.old, c.new) for c in found[0].changes] == [
        ("raw.MetadataOptions.HttpTokens", "required", "optional")
    ]


def test_rename_is_a_modification_and_recreate_is_delete_plus_create(store):
    old = snapshot(record("i-1", name="web"), record("i-2", name="db"))
    new = snapshot(record("i-1", name="web-renamed"), record("i-3", name="db"))
    assert summary(findings(store, old, new)) == [
        ("instance_created", "i-3"),
        ("instance_deleted", "i-2"),
        ("instance_modified", "i-1"),
    ]


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.SKIPPED])
def test_failed_or_skipped_scope_gives_a_gap_never_deletions(store, outcome):
    old = snapshot(record("i-1", WEST), record("i-2", WEST), record("i-3"))
    new = snapshot(record("i-3"), scopes={EAST: Outcome.OK, WEST: outcome})
    found = findings(store, old, new)
    assert summary(found) == [("coverage_gap", "111111111111/eu-west-1")]
    gap = found[0]
    assert gap.extra["coverage"]["unverified_missing"] == 2
    assert gap.severity.value == ("medium" if outcome is Outcome.FAILED else "low")


def test_instances_appearing_in_a_previously_failed_scope_are_not_created(store):
    old = snapshot(record("i-1"), scopes={EAST: Outcome.OK, WEST: Outcome.FAILED})
    new = snapshot(record("i-1"), record("i-9", WEST))
    found = findings(store, old, new)
    assert summary(found) == [("coverage_gap", "111111111111/eu-west-1")]
    assert found[0].extra["coverage"]["unverified_appeared"] == 1


def test_scope_missing_from_the_new_snapshot_is_a_gap(store):
    old = snapshot(record("i-1", WEST))
    new = snapshot(scopes={EAST: Outcome.OK})
    assert summary(findings(store, old, new)) == [("coverage_gap", "111111111111/eu-west-1")]


def test_account_wide_failure_covers_every_region_of_the_account(store):
    old = snapshot(record("i-1"), record("i-2", WEST))
    new = snapshot(scopes={Scope("aws", "111111111111", ALL): Outcome.FAILED})
    found = findings(store, old, new)
    assert summary(found) == [
        ("coverage_gap", "111111111111/eu-west-1"),
        ("coverage_gap", "111111111111/us-east-1"),
    ]
    assert all("failed in the new snapshot" in f.detail for f in found)


def test_region_disabled_on_both_sides_is_not_a_gap(store):
    disabled = Scope("aws", "111111111111", "me-south-1")
    scopes = {EAST: Outcome.OK, disabled: Outcome.SKIPPED}
    assert findings(store, snapshot(record("i-1"), scopes=scopes),
                    snapshot(record("i-1"), scopes=scopes)) == []


def test_order_is_deterministic(store):
    records = [record(f"i-{n:02d}", EAST if n % 2 else WEST) for n in range(20)]
    old = snapshot(*records)
    new = snapshot(*[replace(r, instance_type="big") for r in reversed(records)])
    first = findings(store, old, new)
    again = findings(store, old, new)
    assert [f.key for f in first] == [f.key for f in again]
    assert [f.region for f in first] == sorted(f.region for f in first)


def test_instances_in_a_newly_enabled_region_are_created_not_a_gap(store):
    from baseliner.model import REGION_NOT_ENABLED, ScopeResult

    hong_kong = Scope("aws", "111111111111", "ap-east-1")
    old = snapshot(record("i-1"))
    old = replace(old, scopes=old.scopes + (
        ScopeResult(hong_kong, Outcome.SKIPPED, f"{REGION_NOT_ENABLED} (opt-in)"),))
    new = snapshot(record("i-1"), record("i-hk1", hong_kong), record("i-hk2", hong_kong),
                   scopes={EAST: Outcome.OK, WEST: Outcome.OK, hong_kong: Outcome.OK})
    assert summary(findings(store, old, new)) == [
        ("instance_created", "i-hk1"),
        ("instance_created", "i-hk2"),
    ]
