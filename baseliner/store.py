"""SQLite store: content-addressed documents, snapshot membership, scope outcomes.

Schema (``PRAGMA user_version`` is the migration level):

- ``documents``: one row per distinct record hash; the record body is zlib-compressed
  canonical JSON. Key, fingerprint, state and scope are columns so a diff can join and
  compare without decompressing anything.
- ``members``: (snapshot, document) pairs, integer ids only, so a snapshot of 100,000
  unchanged instances costs about 1.5 MB, not a copy of every document.
- ``snapshots`` and ``scope_results``: when, from where, complete or partial, and the outcome
  of every scope (ok, failed with the error, skipped with the reason).

A snapshot is written in one transaction: it exists whole or not at all. The database file
is created readable by its owner only (0600).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from .errors import InputError, StoreError
from .fingerprint import fingerprint
from .model import (
    Entry,
    InstanceRecord,
    Outcome,
    Scope,
    ScopeResult,
    Snapshot,
    SnapshotInfo,
    State,
    canonical_json,
)

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
            "body": bytes,
        },
        pk="id",
        not_null={"hash", "key", "fingerprint", "state", "body"},
    )
    db["documents"].create_index(["hash"], unique=True)
    db["documents"].create_index(["key"])
    db.execute(
        "CREATE TABLE members (snapshot_id INTEGER NOT NULL REFERENCES snapshots(id), "
        "document_id INTEGER NOT NULL REFERENCES documents(id), "
        "PRIMARY KEY (snapshot_id, document_id)) WITHOUT ROWID"
    )


def _migrate_2(db: sqlite_utils.Database) -> None:
    """Baselines: snapshots a reviewer approved (never pruned)."""
    db["baselines"].create(
        {"id": int, "snapshot_id": int, "set_at": str, "set_by": str, "reason": str},
        pk="id",
        foreign_keys=[("snapshot_id", "snapshots", "id")],
    )


def _migrate_3(db: sqlite_utils.Database) -> None:
    """Daemon state: cycles run, alert state of persistent conditions, delivery failures."""
    db["cycles"].create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "duration": float,
            "outcome": str,
            "snapshot_id": int,
            "findings": str,
            "error": str,
        },
        pk="id",
    )
    db["alert_state"].create(
        {"condition": str, "digest": str, "first_sent": str, "last_sent": str}, pk="condition"
    )
    db["alert_deliveries"].create(
        {"id": int, "at": str, "sink": str, "ok": int, "error": str, "count": int}, pk="id"
    )


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
        if not path.exists():
            if not create:
                raise StoreError(f"{path}: no database yet; run 'baseliner collect' first")
            _create_private(path)
        try:
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
            conn.execute("PRAGMA foreign_keys = ON")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a readable baseliner database ({exc})") from None
        self.conn = conn
        self.db = sqlite_utils.Database(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: database schema {version} is newer than this baseliner "
                f"(supports {SCHEMA_VERSION}); upgrade baseliner"
            )
        if version < SCHEMA_VERSION:
            if version == 0 and self._has_foreign_tables():
                raise StoreError(f"{path}: an SQLite database, but not baseliner's")
            self._migrate(version)

    def _has_foreign_tables(self) -> bool:
        return bool(self.db.table_names())

    def _migrate(self, version: int) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            for level in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[level](self.db)
                self.conn.execute(f"PRAGMA user_version = {level}")
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: migration failed: {exc}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ write

    def write_snapshot(self, snapshot: Snapshot) -> int:
        """Store ``snapshot`` in one transaction and return its id."""
        rows = []
        for record in snapshot.records:
            body = canonical_json(record.to_dict()).encode()
            rows.append((record, body, _digest(body)))
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            known = self._known_hashes(h for _, _, h in rows)
            fresh = {}
            for record, body, digest in rows:
                if digest not in known and digest not in fresh:
                    fresh[digest] = (
                        digest,
                        record.key,
                        fingerprint(record),
                        str(record.state),
                        record.provider,
                        record.account,
                        record.region,
                        zlib.compress(body, 6),
                    )
            conn.executemany(
                "INSERT INTO documents (hash, key, fingerprint, state, provider, account, "
                "region, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                fresh.values(),
            )
            if fresh:
                known.update(self._known_hashes(fresh))
            failed = sum(s.outcome is Outcome.FAILED for s in snapshot.scopes)
            skipped = sum(s.outcome is Outcome.SKIPPED for s in snapshot.scopes)
            cursor = conn.execute(
                "INSERT INTO snapshots (taken_at, source, status, instance_count, scope_count, "
                "failed_scopes, skipped_scopes) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (snapshot.taken_at, snapshot.source, snapshot.status, len(snapshot.records),
                 len(snapshot.scopes), failed, skipped),
            )
            snapshot_id = int(cursor.lastrowid or 0)
            conn.executemany(
                "INSERT OR IGNORE INTO members (snapshot_id, document_id) VALUES (?, ?)",
                ((snapshot_id, known[digest]) for _, _, digest in rows),
            )
            conn.executemany(
                "INSERT INTO scope_results (snapshot_id, provider, account, region, outcome, "
                "detail, instance_count, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (snapshot_id, s.scope.provider, s.scope.account, s.scope.region,
                     str(s.outcome), s.detail, s.instance_count, round(s.duration, 3))
                    for s in snapshot.scopes
                ),
            )
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"{self.path}: snapshot not stored: {exc}") from None
            raise
        return snapshot_id

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
        return {
            key: Entry(key, doc_id, digest, fp, State(state), Scope(provider, account, region))
            for key, doc_id, digest, fp, state, provider, account, region in rows
        }

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
            for doc_id, body in self.conn.execute(
                f"SELECT id, body FROM documents WHERE id IN ({marks})", batch
            ):
                out[doc_id] = InstanceRecord.from_dict(json.loads(zlib.decompress(body)))
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

    def size(self) -> int:
        return self.path.stat().st_size


def _digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def open_store(path: Path, create: bool = False) -> Store:
    return Store(path, create=create)
