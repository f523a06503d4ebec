"""Retention: keep_last, keep_daily, baselines never pruned, unreferenced documents deleted."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from baseliner import retention
from baseliner.cli import main
from baseliner.config import StoreConfig
from baseliner.errors import ConfigError
from baseliner.model import SnapshotInfo
from baseliner.store import open_store

from .records import record, snapshot

TODAY = date(2026, 12, 10)


def info(snapshot_id: int, taken_at: str) -> SnapshotInfo:
    return SnapshotInfo(snapshot_id, taken_at, "live", "complete", 1, 1, 0, 0)


# Two a day from 1 to 10 December, ids 1..20.
HISTORY = [info(2 * (d - 1) + n, f"2026-12-{d:02d}T{6 + 12 * (n - 1):02d}:00:00Z")
           for d in range(1, 11) for n in (1, 2)]


def test_keep_last_keeps_the_newest_n():
    keep = retention.select(HISTORY, keep_last=3, keep_daily=None, today=TODAY)
    assert keep == {18: ("last",), 19: ("last",), 20: ("last", "newest")}


def test_keep_daily_keeps_the_newest_of_each_recent_day():
    keep = retention.select(HISTORY, keep_last=None, keep_daily=3, today=TODAY)
    # 10, 9 and 8 December, today included; the evening snapshot of each.
    assert keep == {16: ("daily",), 18: ("daily",), 20: ("daily", "newest")}


def test_policies_add_up_and_baselines_and_the_newest_always_stay():
    keep = retention.select(HISTORY, keep_last=1, keep_daily=2, protected=[3], today=TODAY)
    assert keep == {3: ("baseline",), 18: ("daily",), 20: ("last", "daily", "newest")}
    # Days counted from today: a daemon stopped for weeks keeps at least its newest.
    stale = retention.select(HISTORY, keep_last=None, keep_daily=2, today=date(2027, 1, 31))
    assert stale == {20: ("newest",)}


def test_no_policy_keeps_everything_and_prune_refuses(tmp_path: Path):
    assert set(retention.select(HISTORY, None, None)) == {i.id for i in HISTORY}
    with open_store(tmp_path / "s.db", create=True) as store, pytest.raises(
        ConfigError, match="no retention policy"
    ):
        retention.prune(store, StoreConfig())


def build(tmp_path: Path) -> Path:
    """Five snapshots: a (shared by all), b (only in 1-2), c (only in 3), d (4-5)."""
    db = tmp_path / "store.db"
    a, b, c, d = record("i-a"), record("i-b"), record("i-c"), record("i-d")
    b2 = record("i-b", instance_type="t3.large")
    moments = [(a, b), (a, b2), (a, c), (a, d), (a, d)]
    with open_store(db, create=True) as store:
        for day, records in enumerate(moments, 1):
            store.write_snapshot(snapshot(*records, taken_at=f"2026-12-0{day}T12:00:00Z"))
    return db


def documents(db: Path) -> set[str]:
    """``instance-id/type`` of every stored document."""
    with open_store(db) as store:
        ids = [row[0] for row in store.conn.execute("SELECT id FROM documents")]
        return {f"{r.instance_id}/{r.instance_type}" for r in store.records(ids).values()}


def consistent(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for snapshot_id, count in conn.execute("SELECT id, instance_count FROM snapshots"):
            members = conn.execute("SELECT COUNT(*) FROM members WHERE snapshot_id = ?",
                                   (snapshot_id,)).fetchone()[0]
            assert members == count
        orphans = conn.execute("SELECT COUNT(*) FROM documents WHERE id NOT IN "
                               "(SELECT document_id FROM members)").fetchone()[0]
        assert orphans == 0


def test_prune_removes_snapshots_and_documents_nobody_references(tmp_path: Path):
    db = build(tmp_path)
    assert documents(db) == {"i-a/t3.micro", "i-b/t3.micro", "i-b/t3.large", "i-c/t3.micro",
                             "i-d/t3.micro"}
    with open_store(db) as store:
        store.set_baseline(2, "tester", "approved", "2026-12-02T13:00:00Z")
        result = retention.prune(store, StoreConfig(keep_last=1), today=date(2026, 12, 5))
        assert [i.id for i in result.removed] == [1, 3, 4]
        assert [(i.id, r) for i, r in result.kept] == [(2, ("baseline",)),
                                                       (5, ("last", "newest"))]
        assert [i.id for i in store.snapshots()] == [2, 5]
        assert store.baseline().snapshot_id == 2
    # i-b (only in 1) and i-c (only in 3) went; a, the baseline's b2, and d stay.
    assert result.documents == 2
    assert documents(db) == {"i-a/t3.micro", "i-b/t3.large", "i-d/t3.micro"}
    consistent(db)


def test_dry_run_changes_nothing(tmp_path: Path):
    db = build(tmp_path)
    with open_store(db) as store:
        result = retention.prune(store, StoreConfig(keep_last=2), dry_run=True)
        assert [i.id for i in result.removed] == [1, 2, 3]
        assert result.documents == 3  # i-b, i-b-large, i-c
        assert len(store.snapshots()) == 5
    assert len(documents(db)) == 5


def test_prune_command(tmp_path: Path, capsys):
    db = build(tmp_path)
    config = tmp_path / "c.toml"
    config.write_text(f'[store]\npath = "{db}"\nkeep_last = 2\n')
    capsys.readouterr()
    assert main(["--config", str(config), "prune", "--dry-run", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True and data["policy"] == {"keep_last": 2, "keep_daily": None}
    assert [s["id"] for s in data["removed"]] == [1, 2, 3]
    assert data["documents_removed"] == 3
    assert [(s["id"], s["reasons"]) for s in data["kept"]] == [(4, ["last"]),
                                                               (5, ["last", "newest"])]

    assert main(["--config", str(config), "prune", "--vacuum"]) == 0
    out = capsys.readouterr().out
    assert "prune (keep_last = 2): removed 3 snapshots and 3 documents; 2 kept" in out
    assert "keep (last, newest)" in out
    consistent(db)
    assert main(["--config", str(config), "snapshots", "--format", "json"]) == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [4, 5]


def test_prune_without_a_policy_says_what_to_set(tmp_path: Path, capsys):
    db = build(tmp_path)
    assert main(["--db", str(db), "prune"]) == 2
    assert "set keep_last and/or keep_daily in [store]" in capsys.readouterr().err
