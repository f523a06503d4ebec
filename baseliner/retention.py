"""Retention: which snapshots ``[store] keep_last`` / ``keep_daily`` keep, and pruning the rest.

A snapshot is kept when any of these holds:

- ``last``: it is one of the ``keep_last`` newest snapshots;
- ``daily``: it is the newest snapshot of one of the ``keep_daily`` most recent calendar days
  (UTC, today included);
- ``baseline``: a baseline refers to it (baselines are never pruned);
- ``newest``: it is the newest snapshot (the daemon's next diff needs it).

Everything else goes, and so do the documents no remaining snapshot references. With neither
``keep_last`` nor ``keep_daily`` set nothing is pruned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .config import StoreConfig
from .errors import ConfigError
from .model import SnapshotInfo
from .store import Store

logger = logging.getLogger(__name__)

__all__ = ["PruneResult", "prune", "select"]


@dataclass(frozen=True)
class PruneResult:
    kept: list[tuple[SnapshotInfo, tuple[str, ...]]]
    """Each kept snapshot with the reasons it stays."""
    removed: list[SnapshotInfo]
    documents: int
    """Documents deleted (or, in a dry run, that would be)."""
    dry_run: bool = False
    policy: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "policy": self.policy,
            "removed": [i.to_dict() for i in self.removed],
            "kept": [{**i.to_dict(), "reasons": list(r)} for i, r in self.kept],
            "documents_removed": self.documents,
        }


def select(
    infos: Sequence[SnapshotInfo],
    keep_last: int | None,
    keep_daily: int | None,
    protected: Iterable[int] = (),
    today: date | None = None,
) -> dict[int, tuple[str, ...]]:
    """Snapshot id → reasons to keep it, for every snapshot kept (pure)."""
    if not infos or (keep_last is None and keep_daily is None):
        return {i.id: ("no policy",) for i in infos}
    ordered = sorted(infos, key=lambda i: i.id)
    reasons: dict[int, list[str]] = {}
    if keep_last:
        for info in ordered[-keep_last:]:
            reasons.setdefault(info.id, []).append("last")
    if keep_daily:
        today = today or datetime.now(UTC).date()
        days = {today - timedelta(days=n) for n in range(keep_daily)}
        newest_of_day: dict[date, SnapshotInfo] = {}
        for info in ordered:
            day = _day(info.taken_at)
            if day in days:
                newest_of_day[day] = info
        for info in newest_of_day.values():
            reasons.setdefault(info.id, []).append("daily")
    known = {i.id for i in ordered}
    for snapshot_id in protected:
        if snapshot_id in known:
            reasons.setdefault(snapshot_id, []).append("baseline")
    reasons.setdefault(ordered[-1].id, []).append("newest")
    return {k: tuple(v) for k, v in sorted(reasons.items())}


def _day(taken_at: str) -> date | None:
    try:
        moment = datetime.fromisoformat(taken_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).date()


def prune(store: Store, policy: StoreConfig, dry_run: bool = False,
          today: date | None = None) -> PruneResult:
    """Apply ``policy`` to ``store`` (one transaction); ConfigError when there is no policy."""
    if policy.keep_last is None and policy.keep_daily is None:
        raise ConfigError("no retention policy: set keep_last and/or keep_daily in [store]")
    infos = store.snapshots()
    baselines = {b.snapshot_id for b in store.baselines()}
    keep = select(infos, policy.keep_last, policy.keep_daily, baselines, today)
    removed = [i for i in infos if i.id not in keep]
    documents = store.prune_snapshots([i.id for i in removed], dry_run) if removed else 0
    result = PruneResult(
        kept=[(i, keep[i.id]) for i in infos if i.id in keep],
        removed=removed,
        documents=documents,
        dry_run=dry_run,
        policy={"keep_last": policy.keep_last, "keep_daily": policy.keep_daily},
    )
    if removed and not dry_run:
        logger.info("pruned %d snapshot(s) (%s) and %d document(s); %d kept", len(removed),
                    _ids(removed), documents, len(result.kept))
    return result


def _ids(infos: Sequence[SnapshotInfo]) -> str:
    ids = [i.id for i in infos]
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
