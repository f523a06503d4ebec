"""Commands ``daemon``, ``prune`` and ``status``: parse, call one function, render."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from . import retention
from .errors import EXIT_OK
from .lock import WriterLock, add_wait_option
from .store import open_store

Handler = Callable[[argparse.Namespace, Any, Any], int]

_CHATTY = ("baseliner.collect", "baseliner.providers")
"""Per-scope INFO lines: shown by the daemon only with --verbose."""


def register(commands: Any, format_option: Callable[[argparse.ArgumentParser], None]
             ) -> dict[str, Handler]:
    p = commands.add_parser(
        "daemon", help="run cycles (collect, store, diff, alerts, retention) on the "
                       "[daemon] schedule until SIGTERM")
    p.add_argument("--once", action="store_true",
                   help="run one cycle now and exit: 0 complete, 3 partial, 2 or 4 failed "
                        "(for cron and CI)")
    add_wait_option(p)

    p = commands.add_parser("prune", help="remove snapshots beyond [store] keep_last / "
                                          "keep_daily (baselines are never removed)")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would be removed and remove nothing")
    p.add_argument("--vacuum", action="store_true",
                   help="afterwards, give the freed space back to the file system (VACUUM)")
    add_wait_option(p)
    format_option(p)

    p = commands.add_parser("status", help="last and next cycle, failing scopes, alert "
                                           "delivery failures, database size")
    format_option(p)
    return {"daemon": cmd_daemon, "prune": cmd_prune, "status": cmd_status}


def cmd_daemon(args: argparse.Namespace, out: Any, err: Any) -> int:
    from .cli import _config, _db_path
    from .daemon import Daemon

    config = _config(args)
    db = _db_path(args, config)
    if not args.quiet:
        logging.getLogger("baseliner").setLevel(logging.INFO)
        if not args.verbose:
            for name in _CHATTY:
                logging.getLogger(name).setLevel(logging.WARNING)
    daemon = Daemon(config, db)
    command = "baseliner daemon --once" if args.once else "baseliner daemon"
    with open_store(db, create=True):
        pass  # create and migrate before the first cycle, so a bad database fails here
    lock = WriterLock(db, command).acquire(args.wait)
    daemon.lock = lock
    try:
        return daemon.run_once() if args.once else daemon.run()
    finally:
        lock.release()


def cmd_prune(args: argparse.Namespace, out: Any, err: Any) -> int:
    from .cli import _config, _db_path, _print

    config = _config(args)
    db = _db_path(args, config)
    with open_store(db) as store:
        if args.dry_run:
            result = retention.prune(store, config.store, dry_run=True)
        else:
            with WriterLock(db, "baseliner prune").acquire(args.wait):
                result = retention.prune(store, config.store)
                if args.vacuum:
                    store.vacuum()
    _print(out, args, result.to_dict(), prune_renderable(result))
    return EXIT_OK


def cmd_status(args: argparse.Namespace, out: Any, err: Any) -> int:
    from .cli import _config, _db_path, _print
    from .daemon import status

    with open_store(_db_path(args, _config(args))) as store:
        data = status(store)
    _print(out, args, data, status_renderable(data))
    return EXIT_OK


# ---------------------------------------------------------------- rendering (pure)


def prune_renderable(result: retention.PruneResult) -> RenderableType:
    verb = "would remove" if result.dry_run else "removed"
    policy = ", ".join(f"{k} = {v}" for k, v in result.policy.items() if v is not None)
    head = Text.assemble(
        ("prune ", "bold"), f"({policy}): {verb} {len(result.removed)} snapshot"
        f"{'' if len(result.removed) == 1 else 's'} and {result.documents} document"
        f"{'' if result.documents == 1 else 's'}; {len(result.kept)} kept")
    table = Table(title_justify="left", expand=False)
    table.add_column("id", justify="right")
    table.add_column("taken at (UTC)")
    table.add_column("instances", justify="right")
    table.add_column("fate")
    rows = [(i, ", ".join(r)) for i, r in result.kept] + [(i, "") for i in result.removed]
    for info, reasons in sorted(rows, key=lambda r: r[0].id):
        fate = Text(f"keep ({reasons})", "green") if reasons else Text(
            "would remove" if result.dry_run else "removed", "yellow")
        table.add_row(str(info.id), info.taken_at, str(info.instance_count), fate)
    return Group(head, table) if rows else head


def status_renderable(data: dict[str, Any]) -> RenderableType:
    table = Table(show_header=False, title="baseliner status", title_justify="left",
                  expand=True)
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    daemon = data["daemon"]
    if daemon["running"]:
        line = (f"running, pid {daemon['pid']} on {daemon['host']}, since "
                f"{daemon['started_at'] or '?'}; {daemon['schedule'] or ''}")
        table.add_row("daemon", Text(line, "green"))
        if daemon["metrics"]:
            table.add_row("metrics", daemon["metrics"])
    else:
        line = "not running" + (f" (stopped {daemon['stopped_at']})"
                                if daemon["stopped_at"] else "")
        table.add_row("daemon", Text(line, "yellow"))
    writer = data["writer"]
    if writer and not daemon["running"]:
        table.add_row("writing now", f"{writer['command']} (pid {writer['pid']} on "
                                     f"{writer['host']}, since {writer['since']})")
    if data["current_cycle"]:
        c = data["current_cycle"]
        table.add_row("current cycle", f"{c['id']}, running since {c['started_at']}")
    table.add_row("last cycle", _cycle_text(data["last_cycle"]))
    table.add_row("last success", data["last_success_at"] or "never")
    table.add_row("next cycle", data["next_cycle_at"] or (
        "-" if daemon["running"] else "- (daemon not running)"))
    failing = data["failing_scopes"]
    if failing:
        lines = Text()
        for i, scope in enumerate(failing):
            lines.append(("\n" if i else "")
                         + f"{scope['provider']}/{scope['account']}/{scope['region']}: "
                         f"{scope['detail']}")
        table.add_row("failing scopes", Text(str(lines), "yellow"))
    else:
        table.add_row("failing scopes", Text("none", "green"))
    sinks = data["alert_sinks"]
    if sinks:
        lines = Text()
        for i, sink in enumerate(sinks):
            if i:
                lines.append("\n")
            if sink["last_ok"]:
                lines.append(f"{sink['sink']}: ok (last {sink['last_at']})", "green")
            else:
                n = sink["failures_since_success"]
                since = (f"since the last success ({sink['last_success']})"
                         if sink["last_success"] else "and none succeeded yet")
                lines.append(f"{sink['sink']}: FAILING, {n} failed deliver"
                             f"{'y' if n == 1 else 'ies'} {since}; last error: "
                             f"{sink['last_error']}", "bold red")
        table.add_row("alert sinks", lines)
    else:
        table.add_row("alert sinks", "no deliveries yet")
    table.add_row("open conditions", str(data["alert_conditions"]))
    db = data["database"]
    latest = db["latest_snapshot"]
    table.add_row("database", f"{db['path']}: {_size(db['size_bytes'])}, {db['snapshots']} "
                              f"snapshots, {db['documents']} documents")
    if latest:
        table.add_row("latest snapshot", f"{latest['id']} taken {latest['taken_at']}, "
                                         f"{latest['status']}, {latest['instance_count']} "
                                         "instances")
    return table


def _cycle_text(cycle: dict[str, Any] | None) -> Text:
    if cycle is None:
        return Text("none yet")
    style = {"ok": "green", "partial": "yellow"}.get(cycle["outcome"], "bold red")
    findings = ", ".join(f"{n} {s}" for s, n in cycle["findings"].items()) or "no findings"
    text = Text.assemble(
        f"{cycle['id']} at {cycle['started_at']}, ",
        (str(cycle["outcome"]), style),
        f", {cycle['duration'] or 0:.1f}s",
    )
    if cycle["snapshot_id"] is not None:
        text.append(f", snapshot {cycle['snapshot_id']}, {cycle['instances'] or 0} instances, "
                    f"{findings}, {cycle['alerts_sent'] or 0} alerts sent")
        if cycle["alerts_failed"]:
            text.append(f", {cycle['alerts_failed']} failed", "bold red")
    if cycle["error"]:
        text.append(f"\n{cycle['error']}", "yellow")
    return text


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
