"""SQLite store: content-addressed documents, snapshot membership, scope outcomes.

Schema (``PRAGMA user_version`` is the migration level):

- ``documents``: one row per distinct record hash; the record body is canonical JSON,
  zlib-compressed against a preset dictionary (``dictionaries``: the first document stored
  for the provider), which makes a typical record about 200 bytes instead of 1,100. Key,
  fingerprint, state and scope are columns so a diff can join and compare without
  decompressing anything.
- ``members``: (snapshot, document) pairs, integer ids only, so a snapshot of 100,000
  unchanged instances costs about 1.5 MB, not a copy of every document.
- ``snapshots`` and ``scope_results``: when, from where, complete or partial, and the outcome
  of every scope (ok, failed with the error, skipped with the reason).

A snapshot is written in one transaction: it exists whole or not at all. The database file
is created readable by its owner only (0600).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import sqlite_utils

from .errors import InputError, StoreError
from .fingerprint import fingerprint
from .model import (
    ALL,
    Baseline,
    Entry,
    InstanceRecord,
    Outcome,
    Scope,
    ScopeResult,
    Snapshot,
    SnapshotInfo,
    State,
    document_bytes,
)
from .model import digest as model_digest

SCHEMA_VERSION = 3
_CHUNK = 500


def _migrate_1(db: sqlite_utils.Database) -> None:
    db["snapshots"].create(
        {
            "id": int,
            "taken_at": str,
            "source": str,
            "status": str,
            "instance_count": int,
            "scope_count": int,
            "failed_scopes": int,
            "skipped_scopes": int,
        },
        pk="id",
    )
    db["scope_results"].create(
        {
            "snapshot_id": int,
            "provider": str,
            "account": str,
            "region": str,
            "outcome": str,
            "detail": str,
            "instance_count": int,
            "duration": float,
        },
        pk=("snapshot_id", "provider", "account", "region"),
        foreign_keys=[("snapshot_id", "snapshots", "id")],
    )
    db["documents"].create(
        {
            "id": int,
            "hash": str,
            "key": str,
            "fingerprint": str,
            "state": str,
            "provider": str,
            "account": str,
            "region": str,
            "dictionary": int,
            "body": bytes,
        },
        pk="id",
        not_null={"hash", "key", "fingerprint", "state", "body"},
    )
    db["dictionaries"].create({"id": int, "provider": str, "body": bytes}, pk="id")
    db["documents"].create_index(["hash"], unique=True)
    db["documents"].create_index(["key"])
    db.execute(
        "CREATE TABLE members (snapshot_id INTEGER NOT NULL REFERENCES snapshots(id), "
        "document_id INTEGER NOT NULL REFERENCES documents(id), "
        "PRIMARY KEY (snapshot_id, document_id)) WITHOUT ROWID"
    )


def _migrate_2(db: sqlite_utils.Database) -> None:
    """Baselines: snapshots a reviewer approved (never pruned); every approval is kept, the
    newest is the baseline. And the reverse index of membership, for an instance's history
    (key → documents → snapshots) without scanning every snapshot."""
    db["baselines"].create(
        {"id": int, "snapshot_id": int, "set_at": str, "set_by": str, "reason": str},
        pk="id",
        foreign_keys=[("snapshot_id", "snapshots", "id")],
        not_null={"snapshot_id", "set_at"},
    )
    db.execute("CREATE INDEX members_by_document ON members (document_id, snapshot_id)")


def _migrate_3(db: sqlite_utils.Database) -> None:
    """Daemon state: cycles run, alert state of persistent conditions, delivery outcomes,
    and a few key/value facts the running daemon publishes for ``status`` (next run time)."""
    db["cycles"].create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "duration": float,
            "outcome": str,
            "snapshot_id": int,
            "previous_id": int,
            "baseline_id": int,
            "instances": int,
            "failed_scopes": int,
            "findings": str,
            "kinds": str,
            "alerts_sent": int,
            "alerts_failed": int,
            "pruned": int,
            "error": str,
        },
        pk="id",
        not_null={"started_at", "outcome"},
    )
    db["alert_state"].create(
        {"condition": str, "digest": str, "kind": str, "severity": str, "first_sent": str,
         "last_sent": str},
        pk="condition",
        not_null={"digest"},
    )
    db["alert_deliveries"].create(
        {"id": int, "cycle_id": int, "at": str, "sink": str, "ok": int, "error": str,
         "count": int},
        pk="id",
    )
    db["alert_deliveries"].create_index(["sink", "id"])
    db["daemon_state"].create({"key": str, "value": str}, pk="key")


MIGRATIONS = {1: _migrate_1, 2: _migrate_2, 3: _migrate_3}
"""Level n's function brings a database from level n-1 to n; never edit a released one."""


def _create_private(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


class Store:
    """The snapshot database. Open with :func:`open_store`."""

    def __init__(self, path: Path, create: bool) -> None:
        self.path = path
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not a database file")
        fresh = not path.exists() or path.stat().st_size == 0
        if fresh and not create:
            raise StoreError(f"{path}: no database yet; run 'baseliner collect' first")
        try:
            if not path.exists():
                _create_private(path)
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a readable baseliner database ({exc})") from None
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the database: {exc.strerror}") from None
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        # Nothing is changed in a file before it is known to be ours and not newer.
        self._check(version)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if version < SCHEMA_VERSION:
                self._migrate()  # also refuses a database that is not baseliner's
            # WAL: readers (diff, status) never wait for a collection being written.
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{path}: cannot open for writing: {exc}") from None
        except StoreError:
            conn.close()
            raise

    def _check(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            self.conn.close()
            raise StoreError(
                f"{self.path}: database schema {version} is newer than this baseliner "
                f"(supports {SCHEMA_VERSION}); upgrade baseliner"
            )

    def _has_foreign_tables(self) -> bool:
        return bool(self.db.table_names())

    def _migrate(self) -> None:
        """Bring the schema up to date. The level is read again inside the write
        transaction, so two processes opening a new database at once migrate it once."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and self._has_foreign_tables():
                raise StoreError(f"{self.path}: an SQLite database, but not baseliner's")
            for level in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[level](self.db)
                self.conn.execute(f"PRAGMA user_version = {level}")
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: migration failed: {exc}") from None
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ write

    def write_snapshot(self, snapshot: Snapshot) -> int:
        """Store ``snapshot`` in one transaction and return its id."""
        with self.writer(snapshot.taken_at, snapshot.source) as writer:
            writer.add(snapshot.records)
            return writer.commit(snapshot.scopes)

    def writer(self, taken_at: str, source: str) -> SnapshotWriter:
        """A snapshot written as records arrive, in one transaction (see SnapshotWriter)."""
        return SnapshotWriter(self, taken_at, source)

    def _known_hashes(self, hashes: Iterable[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        batch: list[str] = []
        for digest in hashes:
            batch.append(digest)
            if len(batch) == _CHUNK:
                found.update(self._lookup(batch))
                batch = []
        if batch:
            found.update(self._lookup(batch))
        return found

    def _lookup(self, batch: list[str]) -> Iterator[tuple[str, int]]:
        marks = ",".join("?" * len(batch))
        yield from self.conn.execute(
            f"SELECT hash, id FROM documents WHERE hash IN ({marks})", batch
        )

    # ------------------------------------------------------------------ read

    def snapshots(self) -> list[SnapshotInfo]:
        rows = self.conn.execute(
            "SELECT id, taken_at, source, status, instance_count, scope_count, failed_scopes, "
            "skipped_scopes FROM snapshots ORDER BY id"
        ).fetchall()
        return [SnapshotInfo(*row) for row in rows]

    def info(self, snapshot_id: int) -> SnapshotInfo:
        row = self.conn.execute(
            "SELECT id, taken_at, source, status, instance_count, scope_count, failed_scopes, "
            "skipped_scopes FROM snapshots WHERE id = ?",
            (snapshot_id,),
        ).fetchone()
        if row is None:
            raise InputError(f"no snapshot {snapshot_id} in {self.path}")
        return SnapshotInfo(*row)

    def resolve(self, ref: str) -> int:
        """A snapshot id from ``7``, ``latest`` or ``latest~N`` (N snapshots before the latest)."""
        ids = [row[0] for row in self.conn.execute("SELECT id FROM snapshots ORDER BY id")]
        if ref.isdigit():
            if int(ref) not in ids:
                raise InputError(f"no snapshot {ref} in {self.path}")
            return int(ref)
        match = re.fullmatch(r"latest(?:~(\d+))?", ref)
        if match is None:
            raise InputError(f"not a snapshot reference: {ref!r} (use an id, latest or latest~N)")
        back = int(match.group(1) or 0)
        if back >= len(ids):
            have = f"only {len(ids)} snapshot{'s' if len(ids) != 1 else ''}"
            raise InputError(f"no snapshot {ref}: {self.path} holds {have}")
        return ids[-1 - back]

    def entries(self, snapshot_id: int) -> dict[str, Entry]:
        rows = self.conn.execute(
            "SELECT d.key, d.id, d.hash, d.fingerprint, d.state, d.provider, d.account, "
            "d.region FROM members m JOIN documents d ON d.id = m.document_id "
            "WHERE m.snapshot_id = ?",
            (snapshot_id,),
        )
        states = {str(s): s for s in State}
        scopes: dict[tuple[str, str, str], Scope] = {}
        out = {}
        for key, doc_id, digest, fp, state, provider, account, region in rows:
            where = (provider, account, region)
            scope = scopes.get(where)
            if scope is None:
                scope = scopes[where] = Scope(provider, account, region)
            out[key] = Entry(key, doc_id, digest, fp, states.get(state, State.UNKNOWN), scope)
        return out

    def scope_results(self, snapshot_id: int) -> list[ScopeResult]:
        rows = self.conn.execute(
            "SELECT provider, account, region, outcome, detail, instance_count, duration "
            "FROM scope_results WHERE snapshot_id = ? ORDER BY provider, account, region",
            (snapshot_id,),
        )
        return [
            ScopeResult(Scope(p, a, r), Outcome(o), d or "", n or 0, t or 0.0)
            for p, a, r, o, d, n, t in rows
        ]

    def records(self, document_ids: Iterable[int]) -> dict[int, InstanceRecord]:
        """Record bodies by document id (decompressed and parsed)."""
        out: dict[int, InstanceRecord] = {}
        ids = list(dict.fromkeys(document_ids))
        for start in range(0, len(ids), _CHUNK):
            batch = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(batch))
            for doc_id, dictionary, body in self.conn.execute(
                f"SELECT id, dictionary, body FROM documents WHERE id IN ({marks})", batch
            ):
                data = _decompress(body, self._zdict(dictionary))
                out[doc_id] = InstanceRecord.from_dict(orjson.loads(data))
        return out

    def find(self, ident: str, snapshot_id: int | None = None) -> tuple[int, InstanceRecord]:
        """The newest record whose key or instance id is ``ident`` (up to ``snapshot_id``)."""
        column = "key" if ident.count(":") >= 2 else "instance_id"
        where = "d.key = ?" if column == "key" else "d.key LIKE ? ESCAPE '\\'"
        value = ident if column == "key" else "%:" + _like_escape(ident)
        sql = (
            "SELECT m.snapshot_id, d.id, d.key FROM documents d JOIN members m "
            f"ON m.document_id = d.id WHERE {where}"
        )
        params: list[Any] = [value]
        if snapshot_id is not None:
            sql += " AND m.snapshot_id <= ?"
            params.append(snapshot_id)
        rows = self.conn.execute(sql + " ORDER BY m.snapshot_id DESC", params).fetchall()
        if not rows:
            raise InputError(f"no instance {ident!r} in any snapshot of {self.path}")
        keys = sorted({key for _, _, key in rows})
        if len(keys) > 1:
            raise InputError(f"{ident!r} is ambiguous; use one of the keys: {', '.join(keys)}")
        snap, doc_id, _ = rows[0]
        return snap, self.records([doc_id])[doc_id]

    def _zdict(self, dictionary: int | None) -> bytes | None:
        if dictionary is None:
            return None
        cache: dict[int, bytes] = self.__dict__.setdefault("_zdicts", {})
        if dictionary not in cache:
            row = self.conn.execute(
                "SELECT body FROM dictionaries WHERE id = ?", (dictionary,)
            ).fetchone()
            if row is None:
                raise StoreError(f"{self.path}: compression dictionary {dictionary} is missing")
            cache[dictionary] = row[0]
        return cache[dictionary]

    def _latest_hashes(self) -> dict[str, int]:
        row = self.conn.execute("SELECT MAX(id) FROM snapshots").fetchone()
        if row is None or row[0] is None:
            return {}
        return dict(self.conn.execute(
            "SELECT d.hash, d.id FROM members m JOIN documents d ON d.id = m.document_id "
            "WHERE m.snapshot_id = ?", (row[0],)))

    def _stored_dictionary(self, provider: str) -> tuple[int, bytes] | None:
        """The provider's newest compression dictionary, if one was ever written."""
        row = self.conn.execute(
            "SELECT id, body FROM dictionaries WHERE provider = ? ORDER BY id DESC LIMIT 1",
            (provider,),
        ).fetchone()
        return (int(row[0]), row[1]) if row is not None else None

    def size(self) -> int:
        return self.path.stat().st_size

    # ---- baselines and history
    # Used by baseliner.pipeline for `baseline`, `diff --against baseline`, `history` and
    # `report`, and by the revert and unused-region rules (through pipeline.diff).

    def set_baseline(self, snapshot_id: int, set_by: str, reason: str, set_at: str) -> Baseline:
        """Approve ``snapshot_id``; earlier approvals stay, the newest is the baseline."""
        self.info(snapshot_id)  # an unknown id is an InputError
        cursor = self.conn.execute(
            "INSERT INTO baselines (snapshot_id, set_at, set_by, reason) VALUES (?, ?, ?, ?)",
            (snapshot_id, set_at, set_by, reason),
        )
        return self._baselines("WHERE b.id = ?", (cursor.lastrowid,))[0]

    def baseline(self) -> Baseline | None:
        """The current baseline: the newest approval."""
        found = self._baselines("ORDER BY b.id DESC LIMIT 1", ())
        return found[0] if found else None

    def baselines(self) -> list[Baseline]:
        """Every approval, oldest first."""
        return self._baselines("ORDER BY b.id", ())

    def _baselines(self, tail: str, params: tuple[Any, ...]) -> list[Baseline]:
        rows = self.conn.execute(
            "SELECT b.id, b.snapshot_id, COALESCE(s.taken_at, ''), b.set_at, "
            "COALESCE(b.set_by, ''), COALESCE(b.reason, '') FROM baselines b "
            f"LEFT JOIN snapshots s ON s.id = b.snapshot_id {tail}",
            params,
        )
        return [Baseline(*row) for row in rows]

    def fingerprint_history(
        self, keys: Iterable[str], before: int
    ) -> dict[str, list[tuple[int, str]]]:
        """(snapshot id, fingerprint) of each key in every snapshot older than ``before``,
        ascending; one query per 500 keys."""
        out: dict[str, list[tuple[int, str]]] = {}
        wanted = sorted(set(keys))
        for start in range(0, len(wanted), _CHUNK):
            batch = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(batch))
            for key, snapshot_id, fp in self.conn.execute(
                "SELECT d.key, m.snapshot_id, d.fingerprint FROM documents d "
                f"JOIN members m ON m.document_id = d.id WHERE d.key IN ({marks}) "
                "AND m.snapshot_id < ? ORDER BY m.snapshot_id",
                [*batch, before],
            ):
                out.setdefault(key, []).append((snapshot_id, fp))
        return out

    def scope_counts(self, snapshot_id: int) -> dict[Scope, int]:
        """Instances per scope of one snapshot, counted in SQL (no bodies, no entries)."""
        rows = self.conn.execute(
            "SELECT d.provider, d.account, d.region, COUNT(*) FROM members m "
            "JOIN documents d ON d.id = m.document_id WHERE m.snapshot_id = ? "
            "GROUP BY d.provider, d.account, d.region",
            (snapshot_id,),
        )
        return {Scope(p, a, r): n for p, a, r, n in rows}

    def key_history(self, key: str) -> list[tuple[int, int, str, State]]:
        """(snapshot id, document id, fingerprint, state) of ``key`` in every snapshot that
        holds it, oldest first."""
        rows = self.conn.execute(
            "SELECT m.snapshot_id, d.id, d.fingerprint, d.state FROM documents d "
            "JOIN members m ON m.document_id = d.id WHERE d.key = ? ORDER BY m.snapshot_id",
            (key,),
        )
        return [(snap, doc, fp, State(state)) for snap, doc, fp, state in rows]

    def scope_history(self, scope: Scope) -> dict[int, list[ScopeResult]]:
        """Per snapshot: the outcomes recorded for ``scope`` or a wildcard covering it."""
        rows = self.conn.execute(
            "SELECT snapshot_id, provider, account, region, outcome, detail, instance_count, "
            "duration FROM scope_results WHERE provider = ? AND account IN (?, ?) "
            "AND region IN (?, ?)",
            (scope.provider, scope.account, ALL, scope.region, ALL),
        )
        out: dict[int, list[ScopeResult]] = {}
        for snap, p, a, r, o, d, n, t in rows:
            out.setdefault(snap, []).append(
                ScopeResult(Scope(p, a, r), Outcome(o), d or "", n or 0, t or 0.0)
            )
        return out

    # ---- daemon state and retention
    # Used by baseliner.daemon, baseliner.alerts, baseliner.retention and the `status` command.

    def latest_id(self) -> int | None:
        return self.conn.execute("SELECT MAX(id) FROM snapshots").fetchone()[0]

    def start_cycle(self, started_at: str) -> int:
        cursor = self.conn.execute(
            "INSERT INTO cycles (started_at, outcome) VALUES (?, 'running')", (started_at,)
        )
        return int(cursor.lastrowid or 0)

    def finish_cycle(self, cycle_id: int, **fields: Any) -> None:
        """Set columns of a cycle row; dict values (counts) are stored as JSON."""
        unknown = set(fields) - _CYCLE_COLUMNS
        if unknown:
            raise ValueError(f"not a column of cycles: {', '.join(sorted(unknown))}")
        values = [json.dumps(v, sort_keys=True) if isinstance(v, dict) else v
                  for v in fields.values()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.conn.execute(f"UPDATE cycles SET {assignments} WHERE id = ?", [*values, cycle_id])

    def interrupt_cycles(self, finished_at: str) -> int:
        """Cycles still marked running belong to a process that died: say so."""
        cursor = self.conn.execute(
            "UPDATE cycles SET outcome = 'interrupted', finished_at = ?, "
            "error = 'the daemon ended during this cycle' WHERE outcome = 'running'",
            (finished_at,),
        )
        return cursor.rowcount

    def cycles(self, limit: int = 10,
               outcomes: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The newest cycles first (only those ending in ``outcomes`` if given), counts
        decoded."""
        sql = "SELECT * FROM cycles"
        params: list[Any] = []
        if outcomes is not None:
            params = list(outcomes)
            sql += f" WHERE outcome IN ({','.join('?' * len(params))})"
        cursor = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        names = [d[0] for d in cursor.description]
        out = []
        for row in cursor:
            item = dict(zip(names, row, strict=True))
            for name in ("findings", "kinds"):
                item[name] = json.loads(item[name]) if item[name] else {}
            out.append(item)
        return out

    def alert_states(self) -> dict[str, dict[str, Any]]:
        cursor = self.conn.execute(
            "SELECT condition, digest, kind, severity, first_sent, last_sent FROM alert_state"
        )
        names = [d[0] for d in cursor.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor}

    def update_alert_states(self, sent: Iterable[dict[str, Any]], resolved: Iterable[str]) -> None:
        """Upsert the conditions alerted and forget the resolved ones, in one transaction."""
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO alert_state (condition, digest, kind, severity, first_sent, "
                "last_sent) VALUES (:condition, :digest, :kind, :severity, :first_sent, "
                ":last_sent) ON CONFLICT (condition) DO UPDATE SET digest = excluded.digest, "
                "kind = excluded.kind, severity = excluded.severity, "
                "last_sent = excluded.last_sent",
                list(sent),
            )
            conn.executemany("DELETE FROM alert_state WHERE condition = ?",
                             [(c,) for c in resolved])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def record_deliveries(self, cycle_id: int | None, at: str,
                          deliveries: Iterable[tuple[str, bool, str, int]]) -> None:
        """(sink, ok, error, count) per sink that had something to deliver."""
        self.conn.executemany(
            "INSERT INTO alert_deliveries (cycle_id, at, sink, ok, error, count) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(cycle_id, at, sink, int(ok), error, count) for sink, ok, error, count in deliveries],
        )

    def delivery_summary(self) -> list[dict[str, Any]]:
        """Per sink: the last delivery, and failures since its last success."""
        out = []
        sinks = [row[0] for row in self.conn.execute(
            "SELECT DISTINCT sink FROM alert_deliveries ORDER BY sink")]
        for sink in sinks:
            last_at, last_ok, last_error = self.conn.execute(
                "SELECT at, ok, error FROM alert_deliveries WHERE sink = ? ORDER BY id DESC "
                "LIMIT 1", (sink,)).fetchone()
            last_success = self.conn.execute(
                "SELECT MAX(id), MAX(at) FROM alert_deliveries WHERE sink = ? AND ok = 1",
                (sink,)).fetchone()
            failures = self.conn.execute(
                "SELECT COUNT(*) FROM alert_deliveries WHERE sink = ? AND ok = 0 AND id > ?",
                (sink, last_success[0] or 0)).fetchone()[0]
            out.append({
                "sink": sink,
                "last_at": last_at,
                "last_ok": bool(last_ok),
                "last_error": last_error or "",
                "last_success": last_success[1],
                "failures_since_success": failures,
            })
        return out

    def set_daemon_state(self, **values: str | None) -> None:
        """Publish facts for ``status``; None removes a key."""
        for key, value in values.items():
            if value is None:
                self.conn.execute("DELETE FROM daemon_state WHERE key = ?", (key,))
            else:
                self.conn.execute(
                    "INSERT INTO daemon_state (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def daemon_state(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM daemon_state").fetchall())

    def document_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]

    def prune_snapshots(self, ids: Iterable[int], dry_run: bool = False) -> int:
        """Remove snapshots ``ids`` (never a baseline's) and the documents no remaining
        snapshot references, in one transaction; returns how many documents went (or would)."""
        doomed = json.dumps(sorted(set(ids)))
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            protected = conn.execute(
                "SELECT snapshot_id FROM baselines WHERE snapshot_id IN "
                "(SELECT value FROM json_each(?))", (doomed,)).fetchone()
            if protected is not None:
                raise InputError(f"snapshot {protected[0]} is a baseline; it is never pruned")
            if dry_run:
                count = conn.execute(
                    "SELECT COUNT(*) FROM documents WHERE id NOT IN (SELECT document_id FROM "
                    "members WHERE snapshot_id NOT IN (SELECT value FROM json_each(?)))",
                    (doomed,)).fetchone()[0]
                conn.execute("ROLLBACK")
                return count
            for table in ("members", "scope_results"):
                conn.execute(f"DELETE FROM {table} WHERE snapshot_id IN "
                             "(SELECT value FROM json_each(?))", (doomed,))
            conn.execute("DELETE FROM snapshots WHERE id IN (SELECT value FROM json_each(?))",
                         (doomed,))
            count = conn.execute(
                "DELETE FROM documents WHERE id NOT IN (SELECT document_id FROM members)"
            ).rowcount
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: nothing pruned: {exc}") from None
            raise
        return count

    def vacuum(self) -> None:
        """Give the pages freed by pruning back to the file system."""
        self.conn.execute("VACUUM")


_CYCLE_COLUMNS = frozenset({
    "finished_at", "duration", "outcome", "snapshot_id", "previous_id", "baseline_id",
    "instances", "failed_scopes", "findings", "kinds", "alerts_sent", "alerts_failed", "pruned",
    "error",
})


class SnapshotWriter:
    """Prepares a snapshot as records arrive, then writes it in one short transaction.

    Each record is serialised and hashed at once; a record whose hash the store already holds
    is kept as that document's id, a new one as its compressed body (about 200 bytes), so a
    100,000-instance snapshot never sits in memory as documents, and no write transaction is
    held while the clouds are being asked. :meth:`commit` inserts the new documents, the
    snapshot row, its members and scope outcomes in one transaction: the snapshot exists
    whole or not at all. Leaving the ``with`` block without committing (an error, a signal)
    writes nothing. One writer at a time is the caller's lock's job (``baseliner.lock``).
    """

    def __init__(self, store: Store, taken_at: str, source: str) -> None:
        self.store, self.taken_at, self.source = store, taken_at, source
        self.members: dict[str, int | str] = {}
        """Key → known document id, or the hash of a pending new document."""
        self.pending: dict[str, tuple[Any, ...]] = {}
        """Hash → the new document's row, body compressed."""
        self.zdicts: dict[str, tuple[int | None, bytes]] = {}
        """Provider → (dictionary id, or None until written; dictionary)."""
        self.recent: dict[str, int] | None = None
        """Hash → id of the latest snapshot's documents: most records are among them, and
        one query for all beats one lookup per batch."""
        self.seconds = 0.0

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pending.clear()
        self.members.clear()

    def add(self, records: Iterable[InstanceRecord]) -> None:
        """Add records; a key seen before in this snapshot is replaced by the newer record."""
        started = time.perf_counter()
        rows = []
        for record in records:
            data = record.to_dict()
            body = document_bytes(data)
            rows.append((record, data, body, _digest(body)))
        try:
            if self.recent is None:
                self.recent = self.store._latest_hashes()
            recent = self.recent
            known = {d: recent[d] for _, _, _, d in rows if d in recent}
            known.update(self.store._known_hashes(
                d for _, _, _, d in rows if d not in known and d not in self.pending
            ))
            fresh: dict[str, tuple[Any, ...]] = {}
            for record, data, body, digest in rows:
                if digest not in known and digest not in self.pending and digest not in fresh:
                    fresh[digest] = (digest, record.key, fingerprint(data), str(record.state),
                                     record.provider, record.account, record.region, body)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.store.path}: cannot read: {exc}") from None
        if fresh:
            values = list(fresh.values())
            bodies = _compress_all([(v[-1], self._zdict(v[4], v[-1])[1]) for v in values])
            for value, body in zip(values, bodies, strict=True):
                self.pending[value[0]] = value[:-1] + (body,)
        for record, _, _, digest in rows:
            self.members[record.key] = known.get(digest, digest)
        self.seconds += time.perf_counter() - started

    def _zdict(self, provider: str, sample: bytes) -> tuple[int | None, bytes]:
        """The provider's compression dictionary: the stored one, or ``sample`` (the first
        new document of this provider ever seen), written at commit."""
        if provider not in self.zdicts:
            found = self.store._stored_dictionary(provider)
            self.zdicts[provider] = found if found is not None else (None, sample)
        return self.zdicts[provider]

    @property
    def instance_count(self) -> int:
        return len(self.members)

    def commit(self, scopes: Iterable[ScopeResult]) -> int:
        """Write the new documents, the snapshot row, its members and scope outcomes in one
        transaction; return the snapshot id."""
        started = time.perf_counter()
        scopes = list(scopes)
        failed = sum(s.outcome is Outcome.FAILED for s in scopes)
        skipped = sum(s.outcome is Outcome.SKIPPED for s in scopes)
        conn = self.store.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            dictionary_ids = {}
            for provider, (dictionary_id, zdict) in self.zdicts.items():
                if dictionary_id is None:
                    cursor = conn.execute(
                        "INSERT INTO dictionaries (provider, body) VALUES (?, ?)",
                        (provider, zdict),
                    )
                    dictionary_id = int(cursor.lastrowid or 0)
                dictionary_ids[provider] = dictionary_id
            conn.executemany(
                "INSERT OR IGNORE INTO documents (hash, key, fingerprint, state, provider, "
                "account, region, dictionary, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row[:7] + (dictionary_ids[row[4]], row[7]) for row in self.pending.values()),
            )
            ids = self.store._known_hashes(self.pending)
            cursor = conn.execute(
                "INSERT INTO snapshots (taken_at, source, status, instance_count, scope_count, "
                "failed_scopes, skipped_scopes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.taken_at, self.source, "partial" if failed else "complete",
                 len(self.members), len(scopes), failed, skipped),
            )
            snapshot_id = int(cursor.lastrowid or 0)
            conn.executemany(
                "INSERT OR IGNORE INTO members (snapshot_id, document_id) VALUES (?, ?)",
                (
                    (snapshot_id, ids[m] if isinstance(m, str) else m)
                    for m in self.members.values()
                ),
            )
            conn.executemany(
                "INSERT INTO scope_results (snapshot_id, provider, account, region, outcome, "
                "detail, instance_count, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (snapshot_id, s.scope.provider, s.scope.account, s.scope.region,
                     str(s.outcome), s.detail, s.instance_count, round(s.duration, 3))
                    for s in scopes
                ),
            )
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error | KeyError):
                raise StoreError(f"{self.store.path}: snapshot not stored: {exc}") from None
            raise
        self.seconds += time.perf_counter() - started
        return snapshot_id


_ZLIB_THREADS = min(4, os.cpu_count() or 1)
_COMPRESSORS = ThreadPoolExecutor(max_workers=_ZLIB_THREADS, thread_name_prefix="baseliner-zlib")


def _compress(body: bytes, zdict: bytes) -> bytes:
    packer = zlib.compressobj(6, zdict=zdict)
    return packer.compress(body) + packer.flush()


def _decompress(body: bytes, zdict: bytes | None) -> bytes:
    if zdict is None:
        return zlib.decompress(body)
    unpacker = zlib.decompressobj(zdict=zdict)
    return unpacker.decompress(body) + unpacker.flush()


def _compress_all(items: list[tuple[bytes, bytes]]) -> list[bytes]:
    """zlib releases the GIL while it works: a large batch is split across the cores."""
    if len(items) < 256 or _ZLIB_THREADS == 1:
        return [_compress(body, zdict) for body, zdict in items]
    step = -(-len(items) // _ZLIB_THREADS)
    chunks = [items[i : i + step] for i in range(0, len(items), step)]
    parts = _COMPRESSORS.map(lambda chunk: [_compress(b, z) for b, z in chunk], chunks)
    return [body for part in parts for body in part]


_digest = model_digest


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def open_store(path: Path, create: bool = False) -> Store:
    return Store(path, create=create)
