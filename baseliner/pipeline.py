"""The cycle: collect → store → diff → rules. Commands and the daemon call these."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import diff as diffing
from . import rules
from .collect import Progress, build_snapshot, run_plan
from .config import Config
from .errors import ProviderError
from .model import ALL, DiffReport, Outcome, Scope, ScopeResult, Snapshot
from .providers import Plan, UnitResult, load
from .providers.exports import read_exports
from .store import Store

logger = logging.getLogger(__name__)


def collect(
    config: Config, exports: Sequence[Path] = (), progress: Progress | None = None
) -> Snapshot:
    """A snapshot from saved exports when given, else from every configured provider."""
    if exports:
        result = read_exports(exports)
        if progress:
            progress(1, 1, "exports")
        return build_snapshot(result.records, result.scopes, source="export")
    plans: dict[str, Plan] = {}
    for name in config.providers:
        plans[name] = _plan(name, config)
    total = sum(len(p.units) for p in plans.values())
    done = 0
    lock = threading.Lock()

    def tick(_done: int, _total: int, label: str) -> None:
        nonlocal done
        if progress is None or not label:
            return
        with lock:
            done += 1
            progress(done, total, label)

    if progress:
        progress(0, total, "")
    with ThreadPoolExecutor(max_workers=max(1, len(plans))) as pool:
        futures = [
            pool.submit(run_plan, plan, _max_workers(config, name), tick)
            for name, plan in plans.items()
        ]
        results: list[UnitResult] = [f.result() for f in futures]
    records = [r for result in results for r in result.records]
    scopes = [s for result in results for s in result.scopes]
    return build_snapshot(records, scopes, source="live")


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


def diff(store: Store, old_id: int, new_id: int) -> DiffReport:
    old = diffing.Side(store.entries(old_id), store.scope_results(old_id))
    new = diffing.Side(store.entries(new_id), store.scope_results(new_id))
    findings = rules.evaluate(diffing.diff(old, new, store.records))
    return DiffReport(store.info(old_id), store.info(new_id), findings)


def resolve_pair(store: Store, old_ref: str | None, new_ref: str | None) -> tuple[int, int]:
    """Defaults: NEW is the latest snapshot, OLD the one before NEW."""
    new_id = store.resolve(new_ref or "latest")
    if old_ref is not None:
        return store.resolve(old_ref), new_id
    earlier = [s.id for s in store.snapshots() if s.id < new_id]
    if not earlier:
        from .errors import InputError

        raise InputError(
            f"nothing to compare: snapshot {new_id} is the first in {store.path}; "
            "collect again, or name two snapshots"
        )
    return earlier[-1], new_id
