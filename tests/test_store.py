"""The SQLite store against a real file: round trip, dedup, atomicity, permissions, errors."""

from __future__ import annotations

import sqlite3
import stat
from dataclasses import replace

import pytest

from baseliner.errors import InputError, StoreError
from baseliner.model import Outcome, State
from baseliner.store import SCHEMA_VERSION, open_store

from .records import EAST, WEST, record, snapshot


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "sub" / "b.db"


def test_round_trip_keeps_records_scopes_and_status(db_path):
    snap = snapshot(record("i-1"), record("i-2", WEST, State.STOPPED),
                    scopes={EAST: Outcome.OK, WEST: Outcome.FAILED})
    with open_store(db_path, create=True) as store:
        sid = store.write_snapshot(snap)
        info = store.info(sid)
        assert (info.status, info.instance_count, info.failed_scopes) == ("partial", 2, 1)
        entries = store.entries(sid)
        assert set(entries) == {"aws:111111111111:i-1", "aws:111111111111:i-2"}
        bodies = store.records(e.document_id for e in entries.values())
        assert {r.key: r for r in bodies.values()} == {r.key: r for r in snap.records}
        results = store.scope_results(sid)
        assert [(r.scope, r.outcome) for r in results] == [(WEST, Outcome.FAILED),
                                                          (EAST, Outcome.OK)]
        assert results[0].detail == "failed for a test"


def test_database_is_created_owner_only(db_path):
    with open_store(db_path, create=True):
        pass
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_unchanged_records_are_stored_once(db_path):
    records = [record(f"i-{n}") for n in range(50)]
    with open_store(db_path, create=True) as store:
        store.write_snapshot(snapshot(*records))
        store.write_snapshot(snapshot(*records))
        store.write_snapshot(snapshot(*records[:49], replace(records[49], instance_type="x")))
        count = store.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        members = store.conn.execute("SELECT COUNT(*) FROM members").fetchone()[0]
    assert count == 51
    assert members == 150


def test_a_failed_write_leaves_no_partial_snapshot(db_path):
    with open_store(db_path, create=True) as store:
        store.write_snapshot(snapshot(record("i-1")))
        poisoned = snapshot(record("i-2"), record("i-3"))
        # A scope result that violates the primary key fails the transaction at the end.
        duplicated = replace(poisoned, scopes=poisoned.scopes + poisoned.scopes[:1])
        with pytest.raises(StoreError, match="snapshot not stored"):
            store.write_snapshot(duplicated)
        assert [s.id for s in store.snapshots()] == [1]
        assert store.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 1
        assert store.conn.execute("SELECT COUNT(*) FROM members").fetchone()[0] == 1


def test_resolve_ids_latest_and_latest_tilde(db_path):
    with open_store(db_path, create=True) as store:
        for _ in range(3):
            store.write_snapshot(snapshot(record("i-1")))
        assert store.resolve("latest") == 3
        assert store.resolve("latest~2") == 1
        assert store.resolve("2") == 2
        for bad in ("latest~3", "7", "yesterday"):
            with pytest.raises(InputError):
                store.resolve(bad)


def test_find_by_instance_id_or_key(db_path):
    with open_store(db_path, create=True) as store:
        store.write_snapshot(snapshot(record("i-1")))
        store.write_snapshot(snapshot(record("i-1", instance_type="t3.large")))
        sid, found = store.find("i-1")
        assert (sid, found.instance_type) == (2, "t3.large")
        sid, found = store.find("aws:111111111111:i-1", snapshot_id=1)
        assert (sid, found.instance_type) == (1, "t3.micro")
        with pytest.raises(InputError, match="no instance"):
            store.find("i-9")


def test_missing_database_is_not_created_by_readers(db_path):
    with pytest.raises(StoreError, match="no database yet"):
        open_store(db_path)
    assert not db_path.exists()


def test_garbage_file_is_a_clear_store_error(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a readable baseliner database"):
        open_store(path)
    assert path.read_bytes().startswith(b"this is not sqlite")


def test_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE mine (x)")
    with pytest.raises(StoreError, match="not baseliner's"):
        open_store(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        open_store(path)


def test_two_processes_creating_the_database_at_once_both_succeed(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "race.db"
    code = (
        "import sys; from pathlib import Path; from baseliner.store import open_store\n"
        "open_store(Path(sys.argv[1]), create=True).close()\n"
    )
    for _ in range(3):
        path.unlink(missing_ok=True)
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    with open_store(path) as store:
        assert store.snapshots() == []


def test_refused_databases_are_left_byte_for_byte_untouched(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE mine (x)")
    before = path.read_bytes()
    with pytest.raises(StoreError):
        open_store(path, create=True)
    assert path.read_bytes() == before


def test_an_empty_file_is_not_initialised_by_a_reader(tmp_path):
    path = tmp_path / "empty.db"
    path.touch()
    with pytest.raises(StoreError, match="no database yet"):
        open_store(path)
    assert path.stat().st_size == 0
