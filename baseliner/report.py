"""Rich renderables and JSON shapes. Decides nothing: every decision was made upstream."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .model import (
    DiffReport,
    Finding,
    InstanceRecord,
    Outcome,
    ScopeResult,
    Severity,
    Snapshot,
    SnapshotInfo,
)

SEVERITY_STYLE = {
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
_MAX_VALUE = 48


# ---------------------------------------------------------------- JSON


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def diff_json(report: DiffReport) -> dict[str, Any]:
    return {
        "old": _snapshot_ref(report.old),
        "new": _snapshot_ref(report.new),
        "findings": [f.to_dict() for f in report.findings],
    }


def _snapshot_ref(info: SnapshotInfo) -> dict[str, Any]:
    return {"id": info.id, "taken_at": info.taken_at, "status": info.status}


def collect_json(snapshot_id: int, snapshot: Snapshot) -> dict[str, Any]:
    return {
        "id": snapshot_id,
        "taken_at": snapshot.taken_at,
        "status": snapshot.status,
        "source": snapshot.source,
        "instance_count": len(snapshot.records),
        "scopes": [_scope_json(s) for s in snapshot.scopes],
    }


def _scope_json(result: ScopeResult) -> dict[str, Any]:
    return {
        "provider": result.scope.provider,
        "account": result.scope.account,
        "region": result.scope.region,
        "outcome": str(result.outcome),
        "detail": result.detail,
        "instance_count": result.instance_count,
        "duration": round(result.duration, 3),
    }


def record_json(snapshot_id: int, record: InstanceRecord) -> dict[str, Any]:
    return {"snapshot": snapshot_id, **record.to_dict()}


# ---------------------------------------------------------------- terminal


def collect_summary(snapshot_id: int, snapshot: Snapshot) -> RenderableType:
    outcomes = Counter(s.outcome for s in snapshot.scopes)
    style = "green" if snapshot.status == "complete" else "bold yellow"
    line = Text.assemble(
        (f"snapshot {snapshot_id}", "bold"),
        ": ",
        (snapshot.status, style),
        f", {len(snapshot.records)} instances in {outcomes[Outcome.OK]} scopes"
        f" ({outcomes[Outcome.FAILED]} failed, {outcomes[Outcome.SKIPPED]} skipped)",
    )
    failed = [s for s in snapshot.scopes if s.outcome is Outcome.FAILED]
    if not failed:
        return line
    lines: list[RenderableType] = [line]
    for result in failed:
        lines.append(Text(f"  failed {result.scope}: {_short(result.detail, 100)}", "yellow"))
    return Group(*lines)


def snapshots_table(infos: list[SnapshotInfo]) -> RenderableType:
    if not infos:
        return Text("no snapshots yet; run 'baseliner collect'")
    table = Table(title="Snapshots", title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("taken at (UTC)")
    table.add_column("source")
    table.add_column("status")
    table.add_column("instances", justify="right")
    table.add_column("scopes ok/failed/skipped", justify="right")
    for info in infos:
        ok = info.scope_count - info.failed_scopes - info.skipped_scopes
        table.add_row(
            str(info.id),
            info.taken_at,
            info.source,
            Text(info.status, "green" if info.status == "complete" else "yellow"),
            str(info.instance_count),
            f"{ok}/{info.failed_scopes}/{info.skipped_scopes}",
        )
    return table


def diff_renderable(report: DiffReport) -> RenderableType:
    old, new = report.old, report.new
    header = Text.assemble(
        ("drift ", "bold"),
        f"snapshot {old.id} ({old.taken_at}, {old.status}) → "
        f"snapshot {new.id} ({new.taken_at}, {new.status})",
    )
    if not report.findings:
        return Group(header, Text("no changes", "green"))
    counts = Counter(f.kind for f in report.findings)
    summary = Text(", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    parts: list[RenderableType] = [header, summary]
    gaps = [f for f in report.findings if f.kind == "coverage_gap"]
    if gaps:
        parts.append(_gap_table(gaps))
    others = [f for f in report.findings if f.kind != "coverage_gap"]
    if others:
        parts.append(_findings_table(others))
    return Group(*parts)


def _gap_table(gaps: list[Finding]) -> Table:
    table = Table(title="Coverage gaps: not verified, not reported as deleted",
                  title_style="bold yellow", title_justify="left", expand=True)
    table.add_column("scope", ratio=2, overflow="fold")
    table.add_column("why", ratio=3, overflow="fold")
    for gap in gaps:
        table.add_row(f"{gap.provider}/{gap.account}/{gap.region}", gap.detail)
    return table


def _findings_table(findings: list[Finding]) -> Table:
    table = Table(title="Findings", title_justify="left", expand=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("instance", ratio=2, overflow="fold")
    table.add_column("changes", ratio=3, overflow="fold")
    for finding in findings:
        scope = f"{finding.provider}/{finding.account}/{finding.region}"
        where = Text.assemble(finding.instance_id or "", "\n", (scope, "dim"))
        changes = "\n".join(
            f"{c.path}: {_short(c.old)} → {_short(c.new)}" for c in finding.changes
        )
        table.add_row(
            Text(str(finding.severity), SEVERITY_STYLE[finding.severity]),
            finding.kind.removeprefix("instance_"),
            where,
            changes,
        )
    return table


def record_renderable(snapshot_id: int, record: InstanceRecord) -> RenderableType:
    table = Table(title=f"{record.key} (snapshot {snapshot_id})", title_justify="left",
                  show_header=False, expand=True)
    table.add_column("field", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    for name, value in record.to_dict().items():
        if name == "raw":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(value)
        table.add_row(name, "" if value is None else str(value))
    return table


def _short(value: Any, limit: int = _MAX_VALUE) -> str:
    text = "∅" if value is None else value if isinstance(value, str) else json.dumps(
        value, default=str, ensure_ascii=False
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
