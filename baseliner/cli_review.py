"""The reviewer's commands: ``baseline set|show``, ``history``, ``report``.

Registered by ``baseliner.cli`` through COMMAND_MODULES; like every command they parse, call
one pipeline function and render.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from typing import Any

from . import pipeline, report
from .config import Config, load
from .errors import EXIT_FINDINGS, EXIT_OK
from .model import Severity
from .store import open_store

Handler = Callable[[argparse.Namespace, Any, Any], int]


def register(commands: Any, format_option: Callable[..., None]) -> dict[str, Handler]:
    p = commands.add_parser("baseline", help="approve a snapshot as known-good, or show it")
    actions = p.add_subparsers(dest="baseline_action", metavar="ACTION", required=True,
                               parser_class=type(p))
    s = actions.add_parser("set", help="approve a snapshot as the baseline (who, when, why)")
    s.add_argument("snapshot", nargs="?", metavar="SNAPSHOT",
                   help="snapshot id, latest or latest~N (default: latest)")
    s.add_argument("--reason", default="", metavar="TEXT",
                   help="why this snapshot is known-good (a ticket, a review)")
    s.add_argument("--by", default=None, metavar="NAME",
                   help="who approves it (default: the current user name)")
    format_option(s)
    s = actions.add_parser("show", help="the current baseline and earlier approvals")
    format_option(s)

    p = commands.add_parser("history", help="one instance's timeline across snapshots")
    p.add_argument("ident", metavar="ID|KEY", help="instance id (i-0abc...) or key "
                                                   "(aws:<account>:<instance-id>)")
    format_option(p)

    p = commands.add_parser(
        "report", help="the inventory of a snapshot per provider/account/region, against "
                       "thresholds and expected regions")
    p.add_argument("snapshot", nargs="?", metavar="SNAPSHOT",
                   help="snapshot id, latest or latest~N (default: latest)")
    p.add_argument("--fail-on", choices=[str(s) for s in Severity], metavar="SEVERITY",
                   help="exit 1 when a finding at or above SEVERITY (info, low, medium, high) "
                        "exists")
    format_option(p, markdown=True)
    return {"baseline": cmd_baseline, "history": cmd_history, "report": cmd_report}


def _config(args: argparse.Namespace) -> Config:
    return load(args.config)


def _emit(out: Any, args: argparse.Namespace, data: Any, renderable: Any,
          markdown: Callable[[], str] | None = None) -> None:
    if args.format == "json":
        out.print(report.dumps(data), markup=False, highlight=False, soft_wrap=True)
    elif args.format == "markdown" and markdown is not None:
        out.print(markdown(), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(renderable)


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def cmd_baseline(args: argparse.Namespace, out: Any, err: Any) -> int:
    config = _config(args)
    with open_store(args.db or config.store.path) as store:
        if args.baseline_action == "set":
            approved = pipeline.set_baseline(store, args.snapshot, args.by or _user(),
                                             args.reason)
            info = store.info(approved.snapshot_id)
            if info.status != "complete":
                err.print(f"baseliner: warning: snapshot {info.id} is {info.status} "
                          f"({info.failed_scopes} scopes failed); drift in those scopes "
                          "cannot be measured against it", markup=False, highlight=False)
        current, approvals = store.baseline(), store.baselines()
    _emit(out, args, report.baseline_json(current, approvals),
          report.baseline_renderable(current, approvals),
          lambda: report.baseline_markdown(current, approvals))
    return EXIT_OK


def cmd_history(args: argparse.Namespace, out: Any, err: Any) -> int:
    with open_store(args.db or _config(args).store.path) as store:
        timeline = pipeline.history(store, args.ident)
    _emit(out, args, report.history_json(timeline), report.history_renderable(timeline))
    return EXIT_OK


def cmd_report(args: argparse.Namespace, out: Any, err: Any) -> int:
    config = _config(args)
    with open_store(args.db or config.store.path) as store:
        inventory = pipeline.inventory(store, store.resolve(args.snapshot or "latest"),
                                       config.rules)
    _emit(out, args, report.inventory_json(inventory), report.inventory_renderable(inventory),
          lambda: report.inventory_markdown(inventory))
    if args.fail_on and any(f.severity.rank >= Severity(args.fail_on).rank
                            for f in inventory.findings):
        return EXIT_FINDINGS
    return EXIT_OK
