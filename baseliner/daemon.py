"""The daemon: the collection cycle on an APScheduler 3.x schedule, one cycle at a time.

A cycle is collect → store → diff against the previous snapshot (and against the baseline
when one is set) → rules → alerts → retention. It runs on the scheduler's single worker
thread (``max_instances=1``, ``coalesce``, a misfire grace time), so two cycles never overlap;
a cycle still running when the next is due makes that one skip, with a warning.

Stopping (SIGTERM or SIGINT): scheduling stops at once; a running cycle gets
``[daemon] stop_timeout`` to finish, and is abandoned after it (or at a second signal).
Abandoning never leaves a partial snapshot: every database write of a cycle happens under
one gate, the snapshot itself in one transaction, and the stopping thread takes the gate
before it marks the cycle abandoned and ends the process. Exit status 0 either way.
The collection threads cannot be interrupted, which is why an abandoned cycle ends the
process with ``os._exit`` instead of waiting for them.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import alerts as alerting
from . import pipeline, retention
from .collect import now
from .config import Config, Section
from .durations import format_duration, parse_duration
from .errors import EXIT_OK, EXIT_PARTIAL, EXIT_STORE, BaselinerError, ConfigError, StoreError
from .lock import WriterLock
from .model import Finding, Outcome, Snapshot
from .store import Store, open_store

logger = logging.getLogger(__name__)

__all__ = ["CycleResult", "Daemon", "DaemonConfig", "parse_config"]

DEFAULT_INTERVAL = 900.0
_WRITE_GRACE = 60.0
"""How long an abandoning stop waits for a write already under way (one transaction)."""
FINISHED = ("ok", "partial", "failed", "abandoned", "interrupted")
"""Outcomes of a cycle that is over (``running`` is the only other one)."""
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY = 86400.0
MAX_DURATIONS = {"interval": 366 * _DAY, "misfire_grace_time": 366 * _DAY,
                 "stop_timeout": _DAY, "remind_after": 366 * _DAY}
"""The longest value of each [daemon] duration (beyond them APScheduler and the clock
functions overflow, and no schedule needs more)."""


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DaemonConfig:
    interval: float | None = DEFAULT_INTERVAL
    """Seconds between cycles; None when ``cron`` is set."""
    cron: str | None = None
    run_at_start: bool = True
    misfire_grace_time: float = 300.0
    stop_timeout: float = 30.0
    remind_after: float | None = 86400.0
    """None: a persistent condition is alerted again only when it changes."""
    metrics_port: int | None = None

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.cron is not None:
            return CronTrigger(**crontab_fields(self.cron), timezone=UTC)
        return IntervalTrigger(seconds=self.interval or DEFAULT_INTERVAL, timezone=UTC)

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r} (UTC)"
        return f"every {format_duration(self.interval or DEFAULT_INTERVAL)}"


def parse_config(data: dict[str, Any], file: str) -> DaemonConfig:
    """The [daemon] table."""
    s = Section(file, "daemon", data)
    interval_text, cron = s.string("interval"), s.string("cron")
    if interval_text is not None and cron is not None:
        s.fail(s.prefix, "set interval or cron, not both")
    interval: float | None = DEFAULT_INTERVAL
    if cron is not None:
        interval = None
        try:
            crontab_fields(cron)
        except ValueError as exc:
            s.fail(s.name("cron"), f"not a crontab expression: {exc}")
    elif interval_text is not None:
        interval = _duration(interval_text, s, "interval", minimum=1)
    remind = s.string("remind_after", "24h") or "24h"
    port = s.get("metrics_port", int, None)
    if port is not None and not 0 <= port <= 65535:
        s.fail(s.name("metrics_port"), f"expected a port from 0 to 65535, got {port}")
    config = DaemonConfig(
        interval=interval,
        cron=cron,
        run_at_start=s.get("run_at_start", bool, True),
        misfire_grace_time=_duration(
            s.string("misfire_grace_time", "5m") or "5m", s, "misfire_grace_time", minimum=1),
        stop_timeout=_duration(s.string("stop_timeout", "30s") or "30s", s, "stop_timeout",
                               minimum=0),
        remind_after=None if remind == "never" else _duration(remind, s, "remind_after"),
        metrics_port=port,
    )
    s.done()
    return config


def _duration(text: str, s: Section, key: str, minimum: float = 0.001) -> float:
    value = parse_duration(text, s, key, minimum=minimum)
    if not value <= MAX_DURATIONS[key]:
        s.fail(s.name(key), f"must be at most {format_duration(MAX_DURATIONS[key])}")
    return value


def crontab_fields(expr: str) -> dict[str, str]:
    """CronTrigger arguments for a five-field crontab line, with cron's weekday numbers.

    APScheduler 3.x numbers weekdays from Monday = 0 (its documented historical mistake), so
    ``* * * * 0`` would mean Monday there; here 0 and 7 are Sunday as in crontab(5). Naming
    both a day of month and a day of week is refused: cron ORs them, APScheduler ANDs them.
    """
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        raise ValueError("restrict the day of month or the day of week, not both")
    out = {"minute": minute, "hour": hour, "day": day, "month": month,
           "day_of_week": _weekdays(weekday)}
    CronTrigger(**out, timezone=UTC)  # raises ValueError on a bad field
    return out


def _weekdays(field: str) -> str:
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, slash, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else None
        if slash and not step:
            raise ValueError(f"bad step in weekday field {field!r}")
        if span == "*":
            first, last = 0, 6
        else:
            start, dash, end = span.partition("-")
            if dash and not end:
                raise ValueError(f"weekday range {span!r} has no end")
            first = _weekday(start, field)
            last = _weekday(end, field) if end else (6 if step else first)
            if end and last == 0 and first > 0:
                last = 7
        if last < first:
            raise ValueError(f"weekday range {span!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    return ",".join(_WEEKDAYS[d] for d in sorted(days))


def _weekday(text: str, field: str) -> int:
    name = text.lower()
    if name in _WEEKDAYS:
        return _WEEKDAYS.index(name)
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    raise ValueError(f"bad weekday {text!r} in {field!r}")


# ---------------------------------------------------------------- one cycle


@dataclass
class CycleResult:
    id: int
    started_at: str
    outcome: str = "running"
    """ok (complete snapshot), partial (some scope failed), failed, abandoned."""
    duration: float = 0.0
    snapshot_id: int | None = None
    previous_id: int | None = None
    baseline_id: int | None = None
    instances: int = 0
    scopes: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    alerts_sent: int = 0
    alerts_failed: int = 0
    pruned: int = 0
    error: str = ""
    exit_code: int = EXIT_OK

    def by_severity(self) -> dict[str, int]:
        counts = Counter(str(f.severity) for f in self.findings)
        return {s: counts[s] for s in ("high", "medium", "low", "info") if counts[s]}

    def by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at,
            "outcome": self.outcome,
            "duration": round(self.duration, 3),
            "snapshot_id": self.snapshot_id,
            "previous_id": self.previous_id,
            "baseline_id": self.baseline_id,
            "instances": self.instances,
            "scopes": self.scopes,
            "findings": self.by_severity(),
            "kinds": self.by_kind(),
            "alerts_sent": self.alerts_sent,
            "alerts_failed": self.alerts_failed,
            "pruned": self.pruned,
            "error": self.error,
        }

    def summary(self) -> str:
        parts = [f"cycle {self.id} {self.outcome} in {self.duration:.1f}s"]
        if self.snapshot_id is not None:
            s = self.scopes
            parts.append(
                f"snapshot {self.snapshot_id} ({self.instances} instances; scopes "
                f"{s.get('ok', 0)} ok, {s.get('failed', 0)} failed, {s.get('skipped', 0)} "
                "skipped)")
            severities = ", ".join(f"{n} {sev}" for sev, n in self.by_severity().items())
            n = len(self.findings)
            parts.append(f"{n} finding{'' if n == 1 else 's'}"
                         + (f" ({severities})" if severities else ""))
            parts.append(f"alerts {self.alerts_sent} sent, {self.alerts_failed} failed")
            parts.append(f"pruned {self.pruned}")
        if self.error:
            parts.append(f"error: {self.error}")
        return "; ".join(parts)


class _Abandoned(Exception):
    """The stopping thread gave up on this cycle; write nothing more."""


# ---------------------------------------------------------------- the daemon


class Daemon:
    """``Daemon(config, db, lock).run()`` on a schedule, or ``.run_once()``.

    ``lock`` is the writer lock, already held by the caller; it is released before an
    abandoning stop ends the process.
    """

    def __init__(self, config: Config, db: Path, lock: WriterLock | None = None,
                 exit_process: Callable[[int], None] = os._exit) -> None:
        self.config = config
        self.db = db
        self.lock = lock
        self.settings: DaemonConfig = config.daemon or DaemonConfig()
        self.sinks = alerting.build_sinks(config.alerts or ())
        self.stop_requested = threading.Event()
        self.force = threading.Event()
        self.cycles_run = 0
        self.last: CycleResult | None = None
        self.metrics: Any = None
        self.metrics_port: int | None = None
        self._exit = exit_process
        self._signals: list[int] = []
        self._gate = threading.Lock()
        """Held for every database write of a cycle, and by an abandoning stop."""
        self._state = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._running: CycleResult | None = None
        self._unfinished: tuple[int, dict[str, Any]] | None = None
        """A cycle whose final write failed (it still says running), and that write."""
        self._stopping = False
        self._abandoned = False
        self._scheduler: Any = None

    # -- entry points

    def run(self) -> int:
        """Run cycles on the schedule until SIGTERM/SIGINT (or :meth:`stop`)."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        restore = self._install_signals()
        try:
            self._prepare(publish=True)
            if self.settings.metrics_port is not None:
                from .metrics import Metrics

                self.metrics = Metrics()
                try:
                    self.metrics_port = self.metrics.serve(self.settings.metrics_port)
                except OSError as exc:
                    raise ConfigError(
                        f"daemon.metrics_port: cannot listen on 127.0.0.1:"
                        f"{self.settings.metrics_port}: {exc.strerror or exc}") from None
                self._publish(metrics=f"http://127.0.0.1:{self.metrics_port}/metrics")
            scheduler = BackgroundScheduler(
                timezone=UTC,
                executors={"default": ThreadPoolExecutor(max_workers=1)},
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": max(1, round(self.settings.misfire_grace_time)),
                },
            )
            scheduler.add_listener(self._on_scheduler_event,
                                   EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
            options: dict[str, Any] = {}
            if self.settings.run_at_start:
                options["next_run_time"] = datetime.now(UTC)
            scheduler.add_job(self._job, self.settings.trigger(), id="cycle",
                              name="baseliner cycle", **options)
            self._scheduler = scheduler
            scheduler.start()
            try:
                next_run = self._publish_next_run()
                logger.info("daemon started (pid %d): %s, next cycle at %s, writing %s",
                            os.getpid(), self.settings.describe(), next_run or "-", self.db)
                while not self.stop_requested.wait(0.25):
                    pass
                self._log_signal()
            finally:
                scheduler.shutdown(wait=False)  # no new cycle; a running one goes on
            return self._stop()
        finally:
            self._restore_signals(restore)
            if self.metrics is not None:
                self.metrics.close()

    def run_once(self) -> int:
        """One cycle now; the exit status says how it went (0, 3 partial, 2 or 4 failed)."""
        restore = self._install_signals()
        try:
            self._prepare(publish=False)
            results: list[CycleResult | None] = []
            worker = threading.Thread(target=lambda: results.append(self._job()),
                                      name="baseliner-cycle", daemon=True)
            worker.start()
            while worker.is_alive():
                if self.stop_requested.wait(0.1):
                    self._log_signal()
                    self._stop()
                    break
            worker.join()
            if not results:  # the cycle raised (and was logged): no result to go by
                return EXIT_STORE
            result = results[0]
            return EXIT_OK if result is None else result.exit_code
        finally:
            self._restore_signals(restore)

    def stop(self) -> None:
        """Ask the daemon to stop, as SIGTERM does (from any thread)."""
        if self.stop_requested.is_set():
            self.force.set()
        self.stop_requested.set()

    # -- signals

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # Only flags here: logging takes locks the interrupted code may hold.
        self._signals.append(signum)
        self.stop()

    def _log_signal(self) -> None:
        if self._signals:
            logger.info("received %s; stopping (a second signal abandons the running cycle)",
                        signal.Signals(self._signals[0]).name)

    def _on_scheduler_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        if event.code == EVENT_JOB_MAX_INSTANCES:
            logger.warning("cycle due at %s skipped: the previous cycle is still running "
                           "(interval too short for the estate?)",
                           _iso(event.scheduled_run_times[-1]))
        else:
            logger.warning("cycle due at %s skipped: missed by more than misfire_grace_time "
                           "(%s)", _iso(event.scheduled_run_time),
                           format_duration(self.settings.misfire_grace_time))

    # -- stopping

    def _stop(self) -> int:
        with self._state:
            self._stopping = True
            busy = not self._idle.is_set()
        if busy:
            logger.info("waiting up to %s for the running cycle to finish",
                        format_duration(self.settings.stop_timeout))
            deadline = time.monotonic() + self.settings.stop_timeout
            while not self._idle.wait(0.1):
                if self.force.is_set() or time.monotonic() >= deadline:
                    self._abandon()
                    break
        if not self._abandoned:
            try:
                with _database(self.db, "cannot record the stop"), open_store(self.db) as store:
                    self._settle(store)
                    self._publish(store, pid=None, next_run_at=None, stopped_at=now())
            except BaselinerError as exc:
                logger.error("%s", exc)
            logger.info("daemon stopped after %d cycle%s", self.cycles_run,
                        "" if self.cycles_run == 1 else "s")
        return EXIT_OK

    def _abandon(self) -> None:
        """Give up on the running cycle: no write of it can start after this, one under
        way finishes first (it is one transaction), then the process ends."""
        got = self._gate.acquire(timeout=_WRITE_GRACE)
        running = self._running
        try:
            self._abandoned = True
            if got and running is not None:
                why = ("a second signal" if self.force.is_set()
                       else f"stop_timeout {format_duration(self.settings.stop_timeout)}")
                try:
                    with _database(self.db, "cannot record the abandoned cycle"), \
                            open_store(self.db) as store:
                        store.finish_cycle(
                            running.id, outcome="abandoned", finished_at=now(),
                            duration=round(_since(running.started_at), 3),
                            snapshot_id=running.snapshot_id,
                            error=f"abandoned at {why}; "
                                  + ("its snapshot was stored whole" if running.snapshot_id
                                     else "no snapshot was stored"))
                        store.set_daemon_state(pid=None, next_run_at=None, stopped_at=now())
                except BaselinerError as exc:  # the process ends all the same
                    logger.error("%s", exc)
        finally:
            if got:
                self._gate.release()
        logger.warning("abandoned cycle %s (%s); daemon stopped",
                       running.id if running else "-",
                       f"snapshot {running.snapshot_id} stored whole"
                       if running and running.snapshot_id else "no snapshot stored")
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        if self.lock is not None:
            self.lock.release()
        self._exit(EXIT_OK)

    # -- state for `status`

    def _prepare(self, publish: bool) -> None:
        with _database(self.db, "cannot write"), open_store(self.db, create=True) as store:
            stale = store.interrupt_cycles(now())
            if stale:
                logger.warning("%d cycle%s of an earlier run did not finish; marked "
                               "interrupted", stale, "" if stale == 1 else "s")
            if publish:
                store.set_daemon_state(pid=str(os.getpid()), host=socket.gethostname(),
                                       started_at=now(), stopped_at=None, next_run_at=None,
                                       schedule=self.settings.describe(), metrics=None)

    def _publish(self, store: Store | None = None, **values: str | None) -> None:
        with _database(self.db, "cannot record the daemon's state"):
            if store is not None:
                store.set_daemon_state(**values)
                return
            with open_store(self.db, create=True) as own:
                own.set_daemon_state(**values)

    def _settle(self, store: Store) -> None:
        """Write the end of a cycle whose final write failed, now that writing may work."""
        if self._unfinished is None:
            return
        ident, fields = self._unfinished
        with _database(self.db, f"cannot record the end of cycle {ident}"):
            store.finish_cycle(ident, **fields)
        self._unfinished = None

    def _publish_next_run(self, store: Store | None = None) -> str | None:
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job("cycle")
        next_run = _iso(job.next_run_time) if job and job.next_run_time else None
        self._publish(store, next_run_at=next_run)
        return next_run

    # -- the cycle

    def _job(self) -> CycleResult | None:
        with self._state:
            if self._stopping:
                return None
            self._idle.clear()
        try:
            return self._cycle()
        except BaselinerError as exc:  # the database could not even be opened, or written
            return self._not_run(str(exc), exc.exit_code)
        except sqlite3.Error as exc:
            return self._not_run(f"{self.db}: database error: {exc}", EXIT_STORE)
        except Exception as exc:  # a bug: the daemon outlives it, the traceback is logged
            logger.exception("cycle failed")
            return self._not_run(f"{type(exc).__name__}: {exc}", EXIT_STORE, logged=True)
        finally:
            with self._state:
                self._running = None
                self._idle.set()

    def _not_run(self, error: str, exit_code: int, logged: bool = False) -> CycleResult:
        if not logged:
            logger.error("cycle not run: %s", error)
        if self.metrics is not None:
            self.metrics.cycle("failed", 0.0, time.time())
        return CycleResult(0, now(), "failed", error=error, exit_code=exit_code)

    def _cycle(self) -> CycleResult | None:
        clock = time.monotonic()
        store = open_store(self.db, create=True)
        try:
            with self._gate:
                if self._abandoned:
                    return None
                self._settle(store)
                started_at = now()
                with _database(self.db, "cannot start a cycle"):
                    ident = store.start_cycle(started_at)
                result = CycleResult(ident, started_at)
                self._running = result
            try:
                snapshot = self._work(store, result)
                result.outcome = "ok" if snapshot.status == "complete" else "partial"
                result.exit_code = EXIT_OK if result.outcome == "ok" else EXIT_PARTIAL
            except _Abandoned:
                return None
            except BaselinerError as exc:
                result.outcome, result.error, result.exit_code = "failed", str(exc), exc.exit_code
            except sqlite3.Error as exc:  # a write the store did not translate (disk full)
                result.outcome, result.exit_code = "failed", EXIT_STORE
                result.error = f"{self.db}: database error: {exc}"
            except Exception as exc:  # the daemon outlives a bad cycle; the error is recorded
                logger.exception("cycle %d failed", result.id)
                result.outcome, result.exit_code = "failed", EXIT_STORE
                result.error = f"{type(exc).__name__}: {exc}"
            result.duration = time.monotonic() - clock
            with self._gate:
                if self._abandoned:
                    return None
                try:
                    with _database(self.db, "cannot record the end of the cycle"):
                        store.finish_cycle(result.id, **_final_fields(result))
                except StoreError as exc:
                    # Still "running" in the database: written as failed by the next cycle
                    # (or the stop) when the database can be written again.
                    result.outcome, result.exit_code = "failed", EXIT_STORE
                    result.error = "; ".join(e for e in (result.error, str(exc)) if e)
                    self._unfinished = (result.id, _final_fields(result))
                else:
                    try:
                        self._publish_next_run(store)
                    except BaselinerError as exc:
                        logger.error("%s", exc)
        finally:
            store.close()
        self.cycles_run += 1
        self.last = result
        if self.metrics is not None:
            self.metrics.cycle(result.outcome, result.duration, time.time())
        level = logging.INFO if result.outcome in ("ok", "partial") else logging.ERROR
        logger.log(level, "%s", result.summary(), extra={"cycle": result.to_dict()})
        return result

    def _work(self, store: Store, result: CycleResult) -> Snapshot:
        prepared = pipeline.prepare(store, self.config)
        snapshot = prepared.summary()
        outcomes = Counter(str(s.outcome) for s in snapshot.scopes)
        result.scopes = {str(o): outcomes[str(o)] for o in Outcome}
        result.instances = snapshot.instance_count
        with self._gate:
            if self._abandoned:
                raise _Abandoned
            result.previous_id = store.latest_id()
            result.snapshot_id = prepared.commit()
            store.finish_cycle(result.id, snapshot_id=result.snapshot_id,
                               previous_id=result.previous_id)
        if self.metrics is not None:
            self.metrics.snapshot(snapshot.scopes)

        rules = self.config.rules
        if result.previous_id is not None:
            changes = pipeline.diff(store, result.previous_id, result.snapshot_id,
                                    rules).findings
        else:  # nothing to compare with yet, but estate conditions hold already
            changes = list(pipeline.inventory(store, result.snapshot_id, rules).findings)
        drift: list[Finding] = []
        baseline = store.baseline()
        if baseline is not None:
            result.baseline_id = baseline.snapshot_id
            drift = pipeline.diff_against_baseline(store, result.snapshot_id, rules).findings
        result.findings = _union(changes, drift)
        if self.metrics is not None:
            self.metrics.found(result.findings)

        if self.sinks:
            self._alert(store, result, snapshot, changes, drift)
        policy = self.config.store
        if policy.keep_last is not None or policy.keep_daily is not None:
            with self._gate:
                if self._abandoned:
                    raise _Abandoned
                try:
                    result.pruned = len(retention.prune(store, policy).removed)
                except BaselinerError as exc:
                    logger.error("retention failed: %s", exc)
                    result.error = f"retention failed: {exc}"
        return snapshot

    def _alert(self, store: Store, result: CycleResult, snapshot: Snapshot,
               changes: list[Finding], drift: list[Finding]) -> None:
        plan = alerting.plan(changes, drift, result.baseline_id, store.alert_states(),
                             datetime.now(UTC), self.settings.remind_after, snapshot.scopes)
        context = {"cycle": result.id, "snapshot": result.snapshot_id,
                   "previous": result.previous_id, "baseline": result.baseline_id,
                   "taken_at": snapshot.taken_at}
        deliveries = alerting.deliver(self.sinks, plan.alerts, context)
        failed = alerting.undelivered(self.sinks, plan.alerts, deliveries)
        result.alerts_sent = sum(d.count for d in deliveries if d.ok)
        result.alerts_failed = sum(d.count for d in deliveries if not d.ok)
        if self.metrics is not None:
            for d in deliveries:
                self.metrics.delivered(d.sink, d.ok, d.count)
        with self._gate:
            if self._abandoned:
                raise _Abandoned
            store.record_deliveries(result.id, now(),
                                    [(d.sink, d.ok, d.error, d.count) for d in deliveries])
            store.update_alert_states(
                [row for ident, row in plan.states.items() if ident not in failed],
                plan.resolved)


def _final_fields(result: CycleResult) -> dict[str, Any]:
    """The columns of a cycle's row once it is over."""
    return {
        "finished_at": now(), "duration": round(result.duration, 3),
        "outcome": result.outcome, "snapshot_id": result.snapshot_id,
        "previous_id": result.previous_id, "baseline_id": result.baseline_id,
        "instances": result.instances, "failed_scopes": result.scopes.get("failed", 0),
        "findings": result.by_severity(), "kinds": result.by_kind(),
        "alerts_sent": result.alerts_sent, "alerts_failed": result.alerts_failed,
        "pruned": result.pruned, "error": result.error,
    }


@contextmanager
def _database(db: Path, what: str) -> Iterator[None]:
    """An SQLite error the store did not translate (disk full, a read-only file) becomes
    one StoreError line (exit 4) instead of a traceback."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: {what}: {exc}") from None


def _union(changes: list[Finding], drift: list[Finding]) -> list[Finding]:
    """The findings of a cycle, each counted once (drift repeats many changes)."""
    seen = {(f.kind, f.key, f.provider, f.account, f.region) for f in changes}
    return changes + [f for f in drift
                      if (f.kind, f.key, f.provider, f.account, f.region) not in seen]


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _since(stamp: str) -> float:
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (datetime.now(UTC) - then).total_seconds()


# ---------------------------------------------------------------- status


def status(store: Store) -> dict[str, Any]:
    """What ``baseliner status`` shows, as plain data (the JSON shape)."""
    from .lock import holder

    writer = holder(store.path)
    state = store.daemon_state()
    running = writer is not None and writer.command == "baseliner daemon"
    current = next(iter(store.cycles(limit=1, outcomes=["running"])), None)
    last = next(iter(store.cycles(limit=1, outcomes=FINISHED)), None)
    if current is not None and writer is None:
        # Marked running, but nobody holds the lock: the process died (kill -9, power).
        current.update(outcome="interrupted", error="the daemon ended during this cycle")
        if last is None or current["id"] > last["id"]:
            last = current
        current = None
    success = next(iter(store.cycles(limit=1, outcomes=["ok", "partial"])), None)
    latest = store.latest_id()
    failing = []
    if latest is not None:
        failing = [
            {"provider": r.scope.provider, "account": r.scope.account,
             "region": r.scope.region, "detail": r.detail}
            for r in store.scope_results(latest) if r.outcome is Outcome.FAILED
        ]
    return {
        "database": {
            "path": str(store.path),
            "size_bytes": store.size() + _size_of(Path(f"{store.path}-wal")),
            "snapshots": len(store.snapshots()),
            "documents": store.document_count(),
            "latest_snapshot": store.info(latest).to_dict() if latest is not None else None,
        },
        "daemon": {
            "running": running,
            "pid": writer.pid if running and writer else None,
            "host": writer.host if running and writer else None,
            "started_at": state.get("started_at") if running else None,
            "schedule": state.get("schedule") if running else None,
            "metrics": state.get("metrics") if running else None,
            "stopped_at": None if running else state.get("stopped_at"),
        },
        "writer": writer.to_dict() if writer else None,
        "current_cycle": current,
        "last_cycle": last,
        "last_success_at": success["finished_at"] if success else None,
        "next_cycle_at": state.get("next_run_at") if running else None,
        "failing_scopes": failing,
        "alert_sinks": store.delivery_summary(),
        "alert_conditions": len(store.alert_states()),
    }
