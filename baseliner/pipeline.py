"""The cycle: collect → store → diff → rules. Commands and the daemon call these."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from . import diff as diffing
from . import history as history_mod
from . import rules
from .collect import Progress, Sink, merge_scopes, now, run_plans
from .config import Config
from .errors import InputError, ProviderError
from .model import (
    ALL,
    Baseline,
    DiffReport,
    Entry,
    InstanceRecord,
    Inventory,
    Outcome,
    Scope,
    ScopeResult,
    Snapshot,
    Timeline,
)
from .providers import Plan, UnitResult, load
from .providers.exports import read_exports
from .store import SnapshotWriter, Store

logger = logging.getLogger(__name__)


class Prepared:
    """A collected snapshot not yet written: new documents compressed in memory, known ones
    as ids. :meth:`commit` writes it in one short transaction."""

    def __init__(self, writer: SnapshotWriter, scopes: tuple[ScopeResult, ...]) -> None:
        self.writer, self.scopes = writer, scopes

    def summary(self, snapshot_id: int | None = None) -> Snapshot:
        """A Snapshot without records (they go to the store), for reports and counts."""
        return Snapshot(taken_at=self.writer.taken_at, records=(), scopes=self.scopes,
                        source=self.writer.source, id=snapshot_id,
                        streamed=self.writer.instance_count)

    def commit(self) -> int:
        snapshot_id = self.writer.commit(self.scopes)
        logger.info("snapshot %d stored: %d instances, %d scopes (store %.2f s)", snapshot_id,
                    self.writer.instance_count, len(self.scopes), self.writer.seconds)
        return snapshot_id


def prepare(
    store: Store,
    config: Config,
    exports: Sequence[Path] = (),
    progress: Progress | None = None,
) -> Prepared:
    """Collect from saved exports when given, else from every configured provider, handing
    each scope's records to the store's writer as they arrive; nothing is written yet."""
    writer = store.writer(now(), _source(exports))
    result = _gather(config, exports, progress, sink=writer.add)
    return Prepared(writer, merge_scopes(result.scopes))


def collect_into(
    store: Store,
    config: Config,
    exports: Sequence[Path] = (),
    progress: Progress | None = None,
) -> tuple[int, Snapshot]:
    """Collect and store one snapshot; returns its id and a summary. Nothing is stored on
    error."""
    prepared = prepare(store, config, exports, progress)
    snapshot_id = prepared.commit()
    return snapshot_id, prepared.summary(snapshot_id)


def _source(exports: Sequence[Path]) -> str:
    return "export" if exports else "live"


def _gather(
    config: Config,
    exports: Sequence[Path],
    progress: Progress | None,
    sink: Sink,
) -> UnitResult:
    """Records go to ``sink``; the scope outcomes are returned."""
    if exports:
        result = read_exports(exports)
        sink(result.records)
        if progress:
            progress(1, 1, "exports")
        return UnitResult(records=[], scopes=result.scopes)
    plans = [(_plan(name, config), _max_workers(config, name)) for name in config.providers]
    return run_plans(plans, progress, sink)


def _plan(name: str, config: Config) -> Plan:
    try:
        return load(name).plan(config)
    except ProviderError as exc:
        detail = str(exc)
    except ImportError as exc:
        detail = f"provider SDK not installed: {exc}"
    logger.warning("%s: %s", name, detail)
    return Plan(results=[ScopeResult(Scope(name, ALL, ALL), Outcome.FAILED, detail)])


def _max_workers(config: Config, name: str) -> int:
    section = getattr(config, name, None)
    return getattr(section, "max_workers", 32) if section else 32


def diff(
    store: Store, old_id: int, new_id: int, rules_config: rules.RulesConfig | None = None
) -> DiffReport:
    """Findings between two snapshots, with every rule of ``rules_config`` (None: defaults).

    Loads only what the rules need: fingerprint history for modified keys, bodies for the
    keys a configured rule reads, and the scope outcomes and counts of the current baseline
    (regions empty in it count as unused when ``expected_regions`` does not say otherwise).
    """
    config = rules_config or rules.RulesConfig()
    old_entries, new_entries = store.entries(old_id), store.entries(new_id)
    old = diffing.Side(old_entries, store.scope_results(old_id))
    new = diffing.Side(new_entries, store.scope_results(new_id))
    bodies = _BodyCache(store)
    raw = diffing.diff(old, new, bodies)
    history_keys = rules.needs_history(raw)
    history = store.fingerprint_history(history_keys, new_id) if history_keys else {}
    wanted = rules.needs_records(raw, config)
    loaded = bodies([new_entries[k].document_id for k in wanted if k in new_entries])
    context = rules.Context(
        new_entries=new_entries,
        records={k: loaded[new_entries[k].document_id] for k in wanted if k in new_entries},
        history=history,
        taken_at={s.id: s.taken_at for s in store.snapshots()} if history else {},
        baseline=_baseline_scopes(store, old_id, old, old_entries, new_id),
    )
    findings = rules.evaluate(raw, config, context)
    return DiffReport(store.info(old_id), store.info(new_id), findings)


def diff_against_baseline(
    store: Store, new_id: int | None = None, rules_config: rules.RulesConfig | None = None
) -> DiffReport:
    """Drift from the approved baseline to ``new_id`` (default: the latest snapshot)."""
    baseline = store.baseline()
    if baseline is None:
        raise InputError(
            f"no baseline in {store.path}; approve a snapshot with 'baseliner baseline set'"
        )
    target = new_id if new_id is not None else store.resolve("latest")
    if target < baseline.snapshot_id:
        raise InputError(
            f"snapshot {target} is older than the baseline (snapshot {baseline.snapshot_id}); "
            "drift is measured forward from the baseline"
        )
    report = diff(store, baseline.snapshot_id, target, rules_config)
    return replace(report, baseline=baseline)


class _BodyCache:
    """``store.records`` that remembers what it loaded: the diff and the rules share bodies."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.loaded: dict[int, InstanceRecord] = {}

    def __call__(self, document_ids: Iterable[int]) -> dict[int, InstanceRecord]:
        ids = list(document_ids)
        missing = [i for i in ids if i not in self.loaded]
        if missing:
            self.loaded.update(self.store.records(missing))
        return {i: self.loaded[i] for i in ids}


def _baseline_scopes(
    store: Store, old_id: int, old: diffing.Side, old_entries: dict[str, Entry], new_id: int
) -> rules.BaselineScopes | None:
    baseline = store.baseline()
    if baseline is None or baseline.snapshot_id > new_id:
        return None
    if baseline.snapshot_id == old_id:
        counts = Counter(e.scope for e in old_entries.values())
        return rules.BaselineScopes(old_id, list(old.scopes), counts)
    return rules.BaselineScopes(
        baseline.snapshot_id,
        store.scope_results(baseline.snapshot_id),
        store.scope_counts(baseline.snapshot_id),
    )


def set_baseline(store: Store, ref: str | None, set_by: str, reason: str) -> Baseline:
    """Approve the snapshot ``ref`` (default: the latest) as the baseline."""
    return store.set_baseline(store.resolve(ref or "latest"), set_by, reason, now())


def history(store: Store, ident: str) -> Timeline:
    """An instance's timeline, found by instance id or key."""
    _, record = store.find(ident)
    points = store.key_history(record.key)
    bodies = store.records(history_mod.bodies_needed(points))
    return history_mod.timeline(
        points, store.snapshots(), bodies, store.scope_history(record.scope)
    )


def inventory(
    store: Store, snapshot_id: int, rules_config: rules.RulesConfig | None = None
) -> Inventory:
    """One snapshot summarised per scope, against thresholds and expected regions."""
    config = rules_config or rules.RulesConfig()
    entries = store.entries(snapshot_id)
    scopes = store.scope_results(snapshot_id)
    baseline = store.baseline()
    baseline_scopes = None
    if baseline is not None and baseline.snapshot_id <= snapshot_id:
        baseline_scopes = rules.BaselineScopes(
            baseline.snapshot_id,
            store.scope_results(baseline.snapshot_id),
            store.scope_counts(baseline.snapshot_id),
        )
    findings = rules.evaluate([], config, rules.Context(new_entries=entries,
                                                        baseline=baseline_scopes))
    rows, empty, skipped = rules.inventory_rows(entries, scopes, config, findings)
    return Inventory(store.info(snapshot_id), tuple(rows), findings, baseline, empty, skipped)


def resolve_pair(store: Store, old_ref: str | None, new_ref: str | None) -> tuple[int, int]:
    """Defaults: NEW is the latest snapshot, OLD the one before NEW."""
    new_id = store.resolve(new_ref or "latest")
    if old_ref is not None:
        old_id = store.resolve(old_ref)
        if old_id > new_id:
            raise InputError(
                f"OLD (snapshot {old_id}) is newer than NEW (snapshot {new_id}); "
                "give the older snapshot first"
            )
        return old_id, new_id
    earlier = [s.id for s in store.snapshots() if s.id < new_id]
    if not earlier:
        raise InputError(
            f"nothing to compare: snapshot {new_id} is the first in {store.path}; "
            "collect again, or name two snapshots"
        )
    return earlier[-1], new_id
