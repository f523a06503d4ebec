"""Fan-out over every unit of work in a bounded pool; one outcome per scope.

Nothing is swallowed: a unit that raises becomes failed scopes carrying the error text,
which the diff then reports as a coverage gap instead of a deletion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime

from .errors import ProviderError
from .model import InstanceRecord, Outcome, Scope, ScopeResult
from .providers import Plan, UnitResult, WorkUnit

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
"""Called as progress(done, total, label) after each unit; the CLI draws a bar with it."""


def now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


Sink = Callable[[list[InstanceRecord]], None]
"""Receives each unit's records in the calling thread (the store writer is not thread-safe)."""


def run_plan(plan: Plan, max_workers: int, progress: Progress | None = None) -> UnitResult:
    """Run every unit of ``plan``; returns all records and every scope's outcome."""
    return run_plans([(plan, max_workers)], progress)


def run_plans(
    plans: Sequence[tuple[Plan, int]],
    progress: Progress | None = None,
    sink: Sink | None = None,
) -> UnitResult:
    """Run the units of several plans at once, each plan bounded by its own worker count.

    With a ``sink``, records are handed over as each unit finishes and not kept; otherwise
    they are returned. Scope outcomes are always returned."""
    out = UnitResult(records=[], scopes=[s for plan, _ in plans for s in plan.results])
    jobs = [(unit, threading.BoundedSemaphore(max(1, n))) for plan, n in plans
            for unit in plan.units]
    total = len(jobs)
    if progress:
        progress(0, total, "")
    if not jobs:
        return out
    workers = max(1, min(sum(max(1, n) for _, n in plans), total))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_bounded, unit, limit): unit for unit, limit in jobs}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                result = future.result()
                if sink is not None:
                    sink(result.records)
                else:
                    out.records.extend(result.records)
                out.scopes.extend(result.scopes)
                if progress:
                    progress(done, total, futures[future].label)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return out


def _bounded(unit: WorkUnit, limit: threading.BoundedSemaphore) -> UnitResult:
    with limit:
        return _run_unit(unit)


def _run_unit(unit: WorkUnit) -> UnitResult:
    started = time.monotonic()
    try:
        result = unit.run()
    except ProviderError as exc:
        return _failed(unit, str(exc), started)
    except Exception as exc:  # recorded as a failed scope with its error, never dropped
        logger.exception("unexpected error collecting %s", unit.label)
        return _failed(unit, f"{type(exc).__name__}: {exc}", started)
    for scope_result in result.scopes:
        if scope_result.outcome is Outcome.FAILED:
            logger.warning("%s failed: %s", scope_result.scope, scope_result.detail)
        else:
            logger.info("collected %d instances in %s", scope_result.instance_count,
                        scope_result.scope)
    return result


def _failed(unit: WorkUnit, error: str, started: float) -> UnitResult:
    duration = time.monotonic() - started
    logger.warning("%s failed: %s", unit.label, error)
    return UnitResult(
        records=[],
        scopes=[ScopeResult(s, Outcome.FAILED, error, 0, duration) for s in unit.scopes],
    )


def merge_scopes(scopes: Iterable[ScopeResult]) -> tuple[ScopeResult, ...]:
    """One outcome per scope, the worst when two units reported on it, in scope order."""
    by_scope: dict[Scope, ScopeResult] = {}
    for result in scopes:
        previous = by_scope.get(result.scope)
        if previous is None or result.outcome.rank > previous.outcome.rank:
            by_scope[result.scope] = result
    return tuple(by_scope[s] for s in sorted(by_scope))
