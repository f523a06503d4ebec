"""Baselines, an instance's history and the inventory report, through the real store."""

from __future__ import annotations

import tomllib
from dataclasses import replace

import pytest

from baseliner import pipeline, rules
from baseliner.errors import InputError
from baseliner.model import ALL, Outcome, Scope, State
from baseliner.store import open_store

from .records import EAST, WEST, record, snapshot

TOKYO = Scope("aws", "111111111111", "ap-northeast-1")
SYDNEY = Scope("aws", "111111111111", "ap-southeast-2")


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "v.db", create=True) as s:
        yield s


def at(day: int) -> str:
    return f"2026-12-{day:02d}T00:00:00Z"


# ---------------------------------------------------------------- baselines


def test_baseline_set_records_who_when_why_and_the_newest_wins(store):
    first = store.write_snapshot(snapshot(record("i-1"), taken_at=at(1)))
    second = store.write_snapshot(snapshot(record("i-1"), taken_at=at(2)))
    assert store.baseline() is None
    approved = pipeline.set_baseline(store, str(first), "alice", "CAB-7 reviewed")
    assert (approved.snapshot_id, approved.set_by, approved.reason, approved.taken_at) == (
        first, "alice", "CAB-7 reviewed", at(1))
    assert approved.set_at.endswith("Z")
    pipeline.set_baseline(store, None, "bob", "")  # default: the latest
    assert store.baseline().snapshot_id == second
    assert [b.set_by for b in store.baselines()] == ["alice", "bob"]


def test_baseline_of_an_unknown_snapshot_is_an_input_error(store):
    store.write_snapshot(snapshot())
    with pytest.raises(InputError, match="no snapshot 9"):
        pipeline.set_baseline(store, "9", "alice", "")


def test_history_is_served_by_an_index_not_a_scan(store):
    plan = store.conn.execute(
        "EXPLAIN QUERY PLAN SELECT m.snapshot_id FROM documents d JOIN members m "
        "ON m.document_id = d.id WHERE d.key = ?", ("k",)).fetchall()
    text = " ".join(str(row[-1]) for row in plan)
    assert "members_by_document" in text


def test_fingerprint_history_is_per_key_ascending_and_before_the_new_snapshot(store):
    a = record("i-1")
    ids = [store.write_snapshot(snapshot(s)) for s in
           (a, replace(a, instance_type="m5.large"), a)]
    history = store.fingerprint_history(["aws:111111111111:i-1", "aws:1:none"], ids[2])
    assert [snap for snap, _ in history["aws:111111111111:i-1"]] == ids[:2]
    assert "aws:1:none" not in history


# ---------------------------------------------------------------- history


def test_history_shows_revisions_state_changes_absences_and_last_seen(store):
    a = record("i-1", instance_type="t3.micro")
    b = replace(a, instance_type="m5.large", tags={**a.tags, "Owner": "mallory"})
    b_stopped = replace(b, state=State.STOPPED)
    both_ok = {EAST: Outcome.OK, WEST: Outcome.OK}
    ids = [store.write_snapshot(s) for s in (
        snapshot(a, taken_at=at(1)),
        snapshot(b, taken_at=at(2)),
        snapshot(b_stopped, taken_at=at(3)),
        snapshot(scopes={EAST: Outcome.FAILED, WEST: Outcome.OK}, taken_at=at(4)),
        snapshot(scopes={EAST: Outcome.FAILED, WEST: Outcome.OK}, taken_at=at(5)),
        snapshot(a, taken_at=at(6)),
        snapshot(scopes=both_ok, taken_at=at(7)),
    )]
    timeline = pipeline.history(store, "i-1")
    events = [(e.snapshot_id, e.event, e.revision) for e in timeline.events]
    assert events == [
        (ids[0], "first_seen", 1),
        (ids[1], "modified", 2),
        (ids[2], "stopped", 2),
        (ids[3], "missing", None),
        (ids[5], "back", 1),
        (ids[5], "reverted", 1),
        (ids[5], "started", 1),
        (ids[6], "missing", None),
    ]
    modified = timeline.events[1]
    assert {(c.path, c.old, c.new) for c in modified.changes} == {
        ("instance_type", "t3.micro", "m5.large"), ("tags.Owner", None, "mallory")}
    gap = timeline.events[3]
    assert gap.until_snapshot_id == ids[4]
    assert "scope failed" in gap.detail and "not verified" in gap.detail
    assert "deleted" in timeline.events[-1].detail
    assert "revision 1" in timeline.events[5].detail
    assert timeline.revisions == 2
    assert timeline.first_seen == (ids[0], at(1))
    assert timeline.last_seen == (ids[5], at(6))
    assert timeline.latest_snapshot == (ids[6], at(7))
    data = timeline.to_dict()
    assert data["present_in_latest"] is False
    assert data["events"][1]["changes"][0].keys() == {"path", "old", "new"}


def test_history_by_key_and_a_root_disk_swap(store):
    a = record("i-1", root_disk="vol-1")
    store.write_snapshot(snapshot(a))
    store.write_snapshot(snapshot(replace(a, root_disk="vol-2")))
    timeline = pipeline.history(store, "aws:111111111111:i-1")
    assert [e.event for e in timeline.events] == ["first_seen", "reverted"]
    assert "root disk swapped" in timeline.events[1].detail
    assert timeline.to_dict()["present_in_latest"] is True


def test_history_of_an_unknown_instance_is_an_input_error(store):
    store.write_snapshot(snapshot(record("i-1")))
    with pytest.raises(InputError, match="no instance 'i-404'"):
        pipeline.history(store, "i-404")


def test_a_whole_account_failing_explains_an_absence(store):
    a = record("i-1")
    store.write_snapshot(snapshot(a))
    store.write_snapshot(snapshot(scopes={Scope("aws", "111111111111", ALL): Outcome.FAILED}))
    store.write_snapshot(snapshot(a))
    timeline = pipeline.history(store, "i-1")
    assert [e.event for e in timeline.events] == ["first_seen", "missing", "back"]
    assert "scope failed" in timeline.events[1].detail


# ---------------------------------------------------------------- inventory


def test_inventory_lists_scopes_with_instances_and_every_failed_one(store):
    config = rules.parse_config(tomllib.loads("""
expected_regions = {aws = ["us-east-1", "eu-west-1"]}
[[thresholds]]
region = "us-*"
max_instances = 1
"""), "t.toml")
    snap = snapshot(record("i-1"), record("i-2", state=State.STOPPED), record("i-t", TOKYO),
                    scopes={EAST: Outcome.OK, WEST: Outcome.OK, TOKYO: Outcome.OK,
                            SYDNEY: Outcome.FAILED, Scope("aws", "1", "me-south-1"):
                            Outcome.SKIPPED})
    inventory = pipeline.inventory(store, store.write_snapshot(snap), config)
    rows = {r.scope.region: r for r in inventory.rows}
    assert set(rows) == {"us-east-1", "ap-northeast-1", "ap-southeast-2"}
    east = rows["us-east-1"]
    assert (east.instances, east.states, east.limit, east.flags) == (
        2, {"running": 1, "stopped": 1}, 1, ("count_threshold",))
    assert rows["ap-northeast-1"].flags == ("unused_region",)
    assert rows["ap-southeast-2"].outcome is Outcome.FAILED
    assert (inventory.empty_scopes, inventory.skipped_scopes) == (1, 1)
    assert sorted(f.kind for f in inventory.findings) == ["count_threshold", "unused_region"]


def test_inventory_without_rules_has_no_findings(store):
    inventory = pipeline.inventory(store, store.write_snapshot(snapshot(record("i-1"))))
    assert inventory.findings == []
    assert [r.limit for r in inventory.rows] == [None]


def test_inventory_shows_a_failed_account_and_what_it_covers(store):
    whole = Scope("aws", "222222222222", ALL)
    snap = snapshot(record("i-1"), scopes={EAST: Outcome.OK, whole: Outcome.FAILED})
    snap = replace(snap, scopes=tuple(
        replace(r, detail="AccessDenied in AssumeRole") if r.scope == whole else r
        for r in snap.scopes))
    inventory = pipeline.inventory(store, store.write_snapshot(snap))
    rows = {r.scope: r for r in inventory.rows}
    assert rows[whole].outcome is Outcome.FAILED
    assert rows[whole].detail == "AccessDenied in AssumeRole"
    assert rows[EAST].instances == 1
