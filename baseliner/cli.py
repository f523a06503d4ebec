"""The ``baseliner`` command: parse, call the pipeline, render. No logic of its own.

Exit codes: 0 success; 1 ``diff --fail-on`` found a finding at or above the severity;
2 usage, configuration or input error; 3 a partial snapshot (some scope failed);
4 the database cannot be used.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sqlite3
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__, pipeline, report
from .config import DEFAULT_CONFIG, Config, load
from .errors import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_STORE,
    EXIT_USAGE,
    BaselinerError,
    InputError,
)
from .lock import WriterLock, add_wait_option
from .model import Severity
from .store import Store, open_store

logger = logging.getLogger("baseliner")

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "snapshots" / "sample"


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"baseliner: error: {message} (see 'baseliner --help')\n")


def _format_option(parser: argparse.ArgumentParser, markdown: bool = False) -> None:
    if markdown:
        parser.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                            help="output as a terminal report (default), JSON, or Markdown "
                                 "for a ticket")
        return
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="output as a terminal table (default) or JSON")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="baseliner",
        description="Inventory compute instances across clouds and report drift.",
    )
    parser.add_argument("--config", type=Path, metavar="PATH",
                        help=f"configuration file (default: {DEFAULT_CONFIG}, optional)")
    parser.add_argument("--db", type=Path, metavar="PATH",
                        help="snapshot database (overrides [store] path)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar and only errors on stderr")
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress at INFO")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log lines on stderr as text (default) or one JSON object each")
    parser.add_argument("--version", action="version", version=f"baseliner {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    p = commands.add_parser("collect", help="collect a snapshot and store it")
    p.add_argument("--from-export", type=Path, action="append", default=[], metavar="PATH",
                   help="read saved CLI exports (a file or a directory of *.json) instead of "
                        "calling the clouds; repeatable")
    add_wait_option(p)
    _format_option(p)

    p = commands.add_parser("snapshots", help="list stored snapshots")
    _format_option(p)

    p = commands.add_parser("diff", help="findings between two snapshots")
    p.add_argument("old", nargs="?", metavar="OLD",
                   help="snapshot id, latest or latest~N (default: the one before NEW)")
    p.add_argument("new", nargs="?", metavar="NEW", help="snapshot reference (default: latest)")
    p.add_argument("--fail-on", choices=[str(s) for s in Severity], metavar="SEVERITY",
                   help="exit 1 when a finding at or above SEVERITY (info, low, medium, high) "
                        "exists")
    p.add_argument("--against", choices=("previous", "baseline"), default="previous",
                   help="previous: OLD defaults to the snapshot before NEW (default); baseline: "
                        "measure drift from the approved baseline (then give NEW only)")
    _format_option(p, markdown=True)

    p = commands.add_parser("show", help="one instance's record, by instance id or key")
    p.add_argument("ident", metavar="ID|KEY", help="instance id (i-0abc...) or key "
                                                   "(aws:<account>:<instance-id>)")
    p.add_argument("--snapshot", metavar="REF",
                   help="as of this snapshot (default: the newest that holds it)")
    _format_option(p)

    p = commands.add_parser("demo", help="collect the bundled sample estate twice and diff it")
    p.add_argument("--sample-dir", type=Path, default=SAMPLE_DIR, metavar="PATH",
                   help="directory holding t1/ and t2/ export folders (default: the bundled "
                        "snapshots/sample)")
    _format_option(p)
    for name in COMMAND_MODULES:
        COMMANDS.update(importlib.import_module(name).register(commands, _format_option))
    return parser


COMMAND_MODULES: tuple[str, ...] = ("baseliner.cli_review", "baseliner.cli_daemon")
"""Modules adding commands: each has ``register(commands, format_option) -> {name: handler}``
where ``commands`` is the subparsers object, ``format_option(parser)`` adds ``--format``, and a
handler is ``handler(args, out, err) -> exit code`` like the ones below."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _logging(args)
    out = report.SafeConsole(highlight=False, soft_wrap=False)
    err = report.SafeConsole(stderr=True, highlight=False)
    try:
        return COMMANDS[args.command](args, out, err)
    except BaselinerError as exc:
        _fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _fail("interrupted; no partial snapshot was stored")
        return 130
    except sqlite3.Error as exc:  # a database fault the store did not foresee
        _fail(f"{_db_hint(args)}database error: {exc}")
        return EXIT_STORE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}")
        return EXIT_STORE


def _db_hint(args: argparse.Namespace) -> str:
    return f"{args.db}: " if getattr(args, "db", None) else ""


def _fail(message: str) -> None:
    """One line on stderr, never wrapped: operators grep these."""
    line = " ".join(message.split())
    sys.stderr.write(f"baseliner: error: {line}\n")
    sys.stderr.flush()


def _logging(args: argparse.Namespace) -> None:
    level = logging.ERROR if args.quiet else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("botocore", "boto3", "urllib3", "azure", "google"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if args.log_format == "json":
        from .logformat import use_json

        use_json()


def _config(args: argparse.Namespace) -> Config:
    return load(args.config)


def _db_path(args: argparse.Namespace, config: Config) -> Path:
    return args.db or config.store.path


def _print(out: Any, args: argparse.Namespace, data: Any, renderable: Any) -> None:
    if args.format == "json":
        out.print(report.dumps(data), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(renderable)


class _Bar:
    """A rich progress bar of scopes done/total on a terminal; nothing otherwise."""

    def __init__(self, err: Any, enabled: bool) -> None:
        self.progress = None
        if enabled and err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("collecting"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.description}"), console=err, transient=True,
            )
            self.task = self.progress.add_task("", total=None)

    def __enter__(self) -> _Bar:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.progress:
            self.progress.update(self.task, completed=done, total=total, description=label)


def cmd_collect(args: argparse.Namespace, out: Any, err: Any) -> int:
    config = _config(args)
    with (
        open_store(_db_path(args, config), create=True) as store,
        WriterLock(store.path, "baseliner collect").acquire(args.wait),
        _Bar(err, not args.quiet) as bar,
    ):
        snapshot_id, snapshot = pipeline.collect_into(store, config, args.from_export, bar)
    _print(out, args, report.collect_json(snapshot_id, snapshot),
           report.collect_summary(snapshot_id, snapshot))
    return EXIT_OK if snapshot.status == "complete" else EXIT_PARTIAL


def cmd_snapshots(args: argparse.Namespace, out: Any, err: Any) -> int:
    with open_store(_db_path(args, _config(args))) as store:
        infos = store.snapshots()
    _print(out, args, [i.to_dict() for i in infos], report.snapshots_table(infos))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace, out: Any, err: Any) -> int:
    config = _config(args)
    with open_store(_db_path(args, config)) as store:
        return _diff(store, args, out, config)


def _diff(store: Store, args: argparse.Namespace, out: Any, config: Config | None = None) -> int:
    rules_config = config.rules if config else None
    if getattr(args, "against", "previous") == "baseline":
        if args.old is not None and args.new is not None:
            raise InputError("diff --against baseline takes NEW only (OLD is the baseline)")
        new_ref = args.new or args.old
        new_id = store.resolve(new_ref) if new_ref else None
        result = pipeline.diff_against_baseline(store, new_id, rules_config)
    else:
        old_id, new_id = pipeline.resolve_pair(store, args.old, args.new)
        result = pipeline.diff(store, old_id, new_id, rules_config)
    if args.format == "markdown":
        out.print(report.diff_markdown(result), markup=False, highlight=False, soft_wrap=True)
    else:
        _print(out, args, report.diff_json(result), report.diff_renderable(result))
    threshold = getattr(args, "fail_on", None)
    if threshold and any(f.severity.rank >= Severity(threshold).rank for f in result.findings):
        return EXIT_FINDINGS
    return EXIT_OK


def cmd_show(args: argparse.Namespace, out: Any, err: Any) -> int:
    with open_store(_db_path(args, _config(args))) as store:
        snapshot_id = store.resolve(args.snapshot) if args.snapshot else None
        found_in, record = store.find(args.ident, snapshot_id)
    _print(out, args, report.record_json(found_in, record),
           report.record_renderable(found_in, record))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: Any, err: Any) -> int:
    moments = [args.sample_dir / "t1", args.sample_dir / "t2"]
    for moment in moments:
        if not moment.is_dir():
            raise InputError(f"{moment}: sample export folder not found")
    with (
        tempfile.TemporaryDirectory(prefix="baseliner-demo-") as tmp,
        open_store(Path(tmp) / "demo.db", create=True) as store,
    ):
        for moment in moments:
            snapshot_id, snapshot = pipeline.collect_into(store, Config(), [moment])
            if args.format == "table":
                out.print(report.collect_summary(snapshot_id, snapshot))
        args.old, args.new, args.fail_on = None, None, None
        return _diff(store, args, out)


COMMANDS = {
    "collect": cmd_collect,
    "snapshots": cmd_snapshots,
    "diff": cmd_diff,
    "show": cmd_show,
    "demo": cmd_demo,
}
