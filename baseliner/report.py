"""Rich renderables, JSON shapes and Markdown. Decides nothing: every decision was made upstream.

Every value that came from a cloud or a user goes into a ``Text`` (never a markup string), so
a tag like ``[red]`` or a ``[redacted:…]`` marker prints as it is. Layouts are built to read
at 80 columns: fixed narrow columns for kinds and ids, one folding column for details.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from .model import (
    Baseline,
    Change,
    DiffReport,
    Finding,
    HistoryEvent,
    InstanceRecord,
    Inventory,
    InventoryRow,
    Outcome,
    ScopeResult,
    Severity,
    Snapshot,
    SnapshotInfo,
    Timeline,
)

SEVERITY_STYLE = {
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
SEVERITIES = (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)
KIND_LABEL = {
    "instance_created": "created",
    "instance_deleted": "deleted",
    "instance_modified": "modified",
    "instance_reverted": "reverted",
    "instance_started": "started",
    "instance_stopped": "stopped",
    "unused_region": "unused region",
    "count_threshold": "threshold",
    "unapproved_image": "unapproved image",
    "coverage_gap": "coverage gap",
}
_MAX_VALUE = 48
_ONE_LINE = 40
"""Width of the detail column of the findings tables at 80 columns."""


def _label(kind: str) -> str:
    return KIND_LABEL.get(kind, kind)


def _where(finding: Finding) -> str:
    return f"{finding.provider}/{finding.account}/{finding.region}"


def _justified(finding: Finding) -> dict[str, Any] | None:
    return finding.extra.get("justified")


# ---------------------------------------------------------------- terminal safety

_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def scrub(text: str) -> str:
    """Control characters shown as ``\\xNN``: a tag value holding ESC sequences must not
    clear a reviewer's screen or overwrite the findings above it."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class SafeConsole(Console):
    """A rich Console whose text content is scrubbed of control characters; the escape
    codes rich itself writes for styles are added later and are unaffected."""

    def render(self, renderable: Any, options: Any = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and _UNSAFE.search(segment.text):
                yield Segment(scrub(segment.text), segment.style, None)
            else:
                yield segment


# ---------------------------------------------------------------- JSON


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def diff_json(report: DiffReport) -> dict[str, Any]:
    """Exactly ``old``, ``new`` and ``findings``; ``old.baseline`` is the approval (who, when,
    why) when ``old`` is the baseline, else null."""
    baseline = report.baseline.to_dict() if report.baseline else None
    return {
        "old": {**_snapshot_ref(report.old), "baseline": baseline},
        "new": _snapshot_ref(report.new),
        "findings": [f.to_dict() for f in report.findings],
    }


def summary(findings: Sequence[Finding]) -> dict[str, Any]:
    by_severity = Counter(str(f.severity) for f in findings)
    return {
        "findings": len(findings),
        "by_severity": {str(s): by_severity.get(str(s), 0) for s in SEVERITIES},
        "by_kind": dict(sorted(Counter(f.kind for f in findings).items())),
        "justified": sum(1 for f in findings if _justified(f)),
        "coverage_gaps": sum(1 for f in findings if f.kind == "coverage_gap"),
    }


def _snapshot_ref(info: SnapshotInfo) -> dict[str, Any]:
    return {"id": info.id, "taken_at": info.taken_at, "status": info.status}


def collect_json(snapshot_id: int, snapshot: Snapshot) -> dict[str, Any]:
    return {
        "id": snapshot_id,
        "taken_at": snapshot.taken_at,
        "status": snapshot.status,
        "source": snapshot.source,
        "instance_count": snapshot.instance_count,
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


def baseline_json(current: Baseline | None, approvals: Sequence[Baseline]) -> dict[str, Any]:
    return {
        "baseline": current.to_dict() if current else None,
        "approvals": [b.to_dict() for b in approvals],
    }


def history_json(timeline: Timeline) -> dict[str, Any]:
    return timeline.to_dict()


def inventory_json(inventory: Inventory) -> dict[str, Any]:
    info = inventory.snapshot
    return {
        "snapshot": {**_snapshot_ref(info), "instance_count": info.instance_count,
                     "scope_count": info.scope_count, "failed_scopes": info.failed_scopes,
                     "skipped_scopes": info.skipped_scopes},
        "baseline": inventory.baseline.to_dict() if inventory.baseline else None,
        "scopes": [r.to_dict() for r in inventory.rows],
        "empty_scopes": inventory.empty_scopes,
        "skipped_scopes": inventory.skipped_scopes,
        "summary": summary(inventory.findings),
        "findings": [f.to_dict() for f in inventory.findings],
    }


# ---------------------------------------------------------------- terminal: collect, snapshots


def collect_summary(snapshot_id: int, snapshot: Snapshot) -> RenderableType:
    outcomes = Counter(s.outcome for s in snapshot.scopes)
    style = "green" if snapshot.status == "complete" else "bold yellow"
    line = Text.assemble(
        (f"snapshot {snapshot_id}", "bold"),
        ": ",
        (snapshot.status, style),
        f", {snapshot.instance_count} instances in {outcomes[Outcome.OK]} scopes"
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
            Text(info.source),
            Text(info.status, "green" if info.status == "complete" else "yellow"),
            str(info.instance_count),
            f"{ok}/{info.failed_scopes}/{info.skipped_scopes}",
        )
    return table


def record_renderable(snapshot_id: int, record: InstanceRecord) -> RenderableType:
    table = Table(title=Text(f"{record.key} (snapshot {snapshot_id})"), title_justify="left",
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
        table.add_row(name, Text("" if value is None else str(value)))
    return table


# ---------------------------------------------------------------- terminal: the reviewer's report


def diff_renderable(report: DiffReport) -> RenderableType:
    """Summary header; coverage gaps in a box; findings by severity, then scope; justified
    changes apart at the end."""
    parts: list[RenderableType] = [_diff_header(report)]
    parts.extend(_findings_body(report.findings))
    if not report.findings:
        parts.append(Text("no drift: nothing changed and no rule fired", "green"))
    return Group(*parts)


def _diff_header(report: DiffReport) -> RenderableType:
    old, new = report.old, report.new
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("old", _snapshot_line(old))
    if report.baseline is not None:
        grid.add_row("baseline", _baseline_line(report.baseline))
    grid.add_row("new", _snapshot_line(new))
    grid.add_row("coverage", _coverage_line(new, report.findings))
    _summary_rows(grid, report.findings)
    title = "Drift report" + (" against the baseline" if report.baseline else "")
    return Group(Rule(Text(title, "bold"), align="left"), grid)


def _snapshot_line(info: SnapshotInfo) -> Text:
    return Text.assemble(
        (f"snapshot {info.id}", "bold"),
        f" · {info.taken_at} · ",
        (info.status, "green" if info.status == "complete" else "bold yellow"),
        f" · {info.instance_count} instances",
    )


def _baseline_line(baseline: Baseline) -> Text:
    reason = f": {baseline.reason}" if baseline.reason else ""
    return Text(f"approved by {baseline.set_by or 'unknown'} at {baseline.set_at}{reason}")


def _coverage_line(info: SnapshotInfo, findings: Sequence[Finding]) -> Text:
    ok = info.scope_count - info.failed_scopes - info.skipped_scopes
    gaps = sum(1 for f in findings if f.kind == "coverage_gap")
    text = Text(f"{ok} of {info.scope_count} scopes collected ({info.failed_scopes} failed, "
                f"{info.skipped_scopes} skipped)")
    if gaps:
        text.append(f"; {gaps} coverage gap{'s' if gaps != 1 else ''}: see below",
                    "bold yellow")
    return text


def _summary_rows(grid: Table, findings: Sequence[Finding]) -> None:
    counts = summary(findings)
    severity = Text(f"{counts['findings']}: ")
    for i, sev in enumerate(SEVERITIES):
        if i:
            severity.append(" · ")
        n = counts["by_severity"][str(sev)]
        severity.append(f"{n} {sev}", SEVERITY_STYLE[sev] if n else "")
    if counts["justified"]:
        severity.append(f" ({counts['justified']} justified)", "green")
    grid.add_row("findings", severity)
    if counts["by_kind"]:
        grid.add_row("kinds", Text(" · ".join(
            f"{counts['by_kind'][k]} {_label(k)}" for k in _kind_order(counts["by_kind"]))))


def _kind_order(kinds: Iterable[str]) -> list[str]:
    order = list(KIND_LABEL)
    return sorted(kinds, key=lambda k: (order.index(k) if k in order else len(order), k))


def _findings_body(findings: Sequence[Finding]) -> list[RenderableType]:
    parts: list[RenderableType] = []
    gaps = [f for f in findings if f.kind == "coverage_gap"]
    if gaps:
        parts.append(_gaps_panel(gaps))
    justified = [f for f in findings if f.kind != "coverage_gap" and _justified(f)]
    rest = [f for f in findings if f.kind != "coverage_gap" and not _justified(f)]
    for severity in SEVERITIES:
        chosen = [f for f in rest if f.severity is severity]
        if chosen:
            parts.append(Rule(Text(f"{str(severity).upper()} ({len(chosen)})",
                                   SEVERITY_STYLE[severity]), align="left"))
            parts.extend(_by_scope(chosen))
    if justified:
        parts.append(Rule(Text(f"JUSTIFIED ({len(justified)}): a change ticket is on the "
                               "instance; info, still listed", "green"), align="left"))
        parts.extend(_by_scope(justified))
    return parts


def _gaps_panel(gaps: Sequence[Finding]) -> Panel:
    failed = any((g.extra.get("coverage") or {}).get("new", {}).get("outcome") == "failed"
                 or (g.extra.get("coverage") or {}).get("old", {}).get("outcome") == "failed"
                 for g in gaps)
    rows: list[RenderableType] = []
    for gap in gaps:
        detail = Text(gap.detail)
        coverage = gap.extra.get("coverage") or {}
        missing = coverage.get("unverified_missing", 0)
        appeared = coverage.get("unverified_appeared", 0)
        if missing or appeared:
            detail.append(f"\nunverified: {missing} missing, {appeared} appeared", "bold")
        rows += [Text(_where(gap), "bold"), Padding(detail, (0, 0, 0, 2))]
    return Panel(
        Group(*rows),
        title=Text(f"Coverage gaps ({len(gaps)}): not verified, no deletion reported here",
                   "bold"),
        title_align="left",
        border_style="bold red" if failed else "yellow",
    )


def _by_scope(findings: Iterable[Finding]) -> list[RenderableType]:
    groups: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[(f.provider, f.account, f.region)].append(f)
    parts: list[RenderableType] = []
    for (provider, account, region), members in sorted(groups.items()):
        parts.append(Text(f" {provider} / {account} / {region}", "bold"))
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column("kind", width=10, overflow="fold")
        table.add_column("instance", width=21, overflow="fold")
        table.add_column("detail", ratio=1, overflow="fold")
        for f in members:
            table.add_row(
                Text(_label(f.kind), SEVERITY_STYLE[f.severity]),
                Text(f.instance_id or "—"),
                _finding_detail(f),
            )
        parts.append(Padding(table, (0, 0, 0, 2)))
    return parts


def _finding_detail(f: Finding) -> Text:
    lines: list[Text] = []
    ticket = _justified(f)
    if ticket:
        lines.append(Text(f"ticket {ticket.get('ticket')} (was {ticket.get('severity')})",
                          "green"))
    if f.detail:
        lines.append(Text(f.detail))
    lines.extend(_change_line(change) for change in f.changes)
    refs = " ".join(f.techniques)
    component = f.extra.get("data_component")
    if refs or component:
        lines.append(Text(" · ".join(x for x in (refs, component) if x), "dim"))
    return Text("\n").join(lines)


# ---------------------------------------------------------------- Markdown (tickets)

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _md(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_code(value: Any) -> str:
    text = _short(value, 80)
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def diff_markdown(report: DiffReport) -> str:
    old, new = report.old, report.new
    title = "Drift report" + (" against the baseline" if report.baseline else "")
    lines = [f"## {title}: snapshot {old.id} → snapshot {new.id}", "",
             "| | |", "| --- | --- |",
             f"| old | {_md_snapshot(old)} |"]
    if report.baseline is not None:
        lines.append(f"| baseline | {_md(_baseline_line(report.baseline).plain)} |")
    lines.append(f"| new | {_md_snapshot(new)} |")
    lines.append(f"| coverage | {_md(_coverage_line(new, report.findings).plain)} |")
    lines.extend(_md_summary_rows(report.findings))
    lines.append("")
    lines.extend(_md_findings(report.findings))
    if not report.findings:
        lines.append("No drift: nothing changed and no rule fired.")
    return "\n".join(lines).rstrip() + "\n"


def _md_snapshot(info: SnapshotInfo) -> str:
    return f"snapshot {info.id} · {info.taken_at} · {info.status} · {info.instance_count} " \
           "instances"


def _md_summary_rows(findings: Sequence[Finding]) -> list[str]:
    counts = summary(findings)
    severity = " · ".join(f"{counts['by_severity'][str(s)]} {s}" for s in SEVERITIES)
    if counts["justified"]:
        severity += f" ({counts['justified']} justified)"
    rows = [f"| findings | {counts['findings']}: {severity} |"]
    if counts["by_kind"]:
        kinds = " · ".join(f"{counts['by_kind'][k]} {_label(k)}"
                           for k in _kind_order(counts["by_kind"]))
        rows.append(f"| kinds | {kinds} |")
    return rows


def _md_findings(findings: Sequence[Finding]) -> list[str]:
    lines: list[str] = []
    gaps = [f for f in findings if f.kind == "coverage_gap"]
    if gaps:
        lines += [f"### ⚠ Coverage gaps ({len(gaps)}): not verified, no deletion reported here",
                  ""]
        for gap in gaps:
            coverage = gap.extra.get("coverage") or {}
            missing = coverage.get("unverified_missing", 0)
            appeared = coverage.get("unverified_appeared", 0)
            extra = f" (unverified: {missing} missing, {appeared} appeared)" if (
                missing or appeared) else ""
            lines.append(f"- **{_md(_where(gap))}**: {_md(gap.detail)}{extra}")
        lines.append("")
    justified = [f for f in findings if f.kind != "coverage_gap" and _justified(f)]
    rest = [f for f in findings if f.kind != "coverage_gap" and not _justified(f)]
    for severity in SEVERITIES:
        chosen = [f for f in rest if f.severity is severity]
        if chosen:
            lines += [f"### {str(severity).capitalize()} ({len(chosen)})", ""]
            lines += _md_by_scope(chosen)
    if justified:
        lines += [f"### Justified ({len(justified)}): a change ticket is on the instance", ""]
        lines += _md_by_scope(justified)
    return lines


def _md_by_scope(findings: Sequence[Finding]) -> list[str]:
    groups: dict[tuple[str, str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[(f.provider, f.account, f.region)].append(f)
    lines: list[str] = []
    for (provider, account, region), members in sorted(groups.items()):
        lines += [f"#### {_md(provider)} / {_md(account)} / {_md(region)}", ""]
        for f in members:
            head = f"- **{_label(f.kind)}**"
            if f.instance_id:
                head += f" {_md_code(f.instance_id)}"
            if f.detail:
                head += f": {_md(f.detail)}"
            refs = " ".join(f.techniques)
            if refs:
                head += f" ({refs})"
            lines.append(head)
            ticket = _justified(f)
            if ticket:
                lines.append(f"  - ticket {_md_code(ticket.get('ticket'))} "
                             f"(tag {_md_code(ticket.get('tag'))}; would be "
                             f"{ticket.get('severity')})")
            for change in f.changes:
                lines.append(f"  - {_md_code(change.path)}: {_md_code(change.old)} → "
                             f"{_md_code(change.new)}")
        lines.append("")
    return lines


# ---------------------------------------------------------------- baseline, history, inventory


def baseline_renderable(current: Baseline | None, approvals: Sequence[Baseline]) -> RenderableType:
    if current is None:
        return Text("no baseline yet; approve a snapshot with 'baseliner baseline set'")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("snapshot", Text(f"{current.snapshot_id} (taken {current.taken_at})"))
    grid.add_row("approved", Text(f"by {current.set_by or 'unknown'} at {current.set_at}"))
    grid.add_row("why", Text(current.reason or "(no reason given)"))
    parts: list[RenderableType] = [Rule(Text("Baseline", "bold"), align="left"), grid]
    earlier = [b for b in approvals if b.id != current.id]
    if earlier:
        table = Table(title="Earlier approvals", title_justify="left", expand=True)
        table.add_column("snapshot", justify="right", no_wrap=True)
        table.add_column("approved at", no_wrap=True)
        table.add_column("by", overflow="fold")
        table.add_column("why", ratio=1, overflow="fold")
        for b in reversed(earlier):
            table.add_row(str(b.snapshot_id), b.set_at, Text(b.set_by), Text(b.reason))
        parts.append(table)
    return Group(*parts)


def baseline_markdown(current: Baseline | None, approvals: Sequence[Baseline]) -> str:
    if current is None:
        return "No baseline yet.\n"
    lines = ["## Baseline", "",
             f"- snapshot: {current.snapshot_id} (taken {current.taken_at})",
             f"- approved by {_md(current.set_by or 'unknown')} at {current.set_at}",
             f"- why: {_md(current.reason or '(no reason given)')}"]
    return "\n".join(lines) + "\n"


_EVENT_STYLE = {
    "first_seen": "green",
    "modified": "yellow",
    "reverted": "bold red",
    "started": "cyan",
    "stopped": "cyan",
    "state": "cyan",
    "missing": "bold yellow",
    "back": "green",
}


def history_renderable(timeline: Timeline) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("instance", Text(f"{timeline.instance_id}"
                                  + (f" ({timeline.name})" if timeline.name else "")))
    grid.add_row("scope", Text(f"{timeline.provider}/{timeline.account}/{timeline.region}"))
    grid.add_row("first seen", Text(f"snapshot {timeline.first_seen[0]} · "
                                    f"{timeline.first_seen[1]}"))
    last = Text(f"snapshot {timeline.last_seen[0]} · {timeline.last_seen[1]}")
    if timeline.last_seen[0] == timeline.latest_snapshot[0]:
        last.append(" (the latest snapshot)", "green")
    else:
        last.append(f"; not in the latest snapshot ({timeline.latest_snapshot[0]})",
                    "bold yellow")
    grid.add_row("last seen", last)
    grid.add_row("revisions", Text(str(timeline.revisions)))
    table = Table(expand=True, show_edge=False, pad_edge=False)
    table.add_column("snap", justify="right", no_wrap=True)
    table.add_column("taken at", no_wrap=True)
    table.add_column("event", width=10, overflow="fold")
    table.add_column("detail", ratio=1, overflow="fold")
    for event in timeline.events:
        snap = str(event.snapshot_id)
        if event.until_snapshot_id is not None:
            snap += f"–{event.until_snapshot_id}"
        table.add_row(snap, event.taken_at, Text(event.event.replace("_", " "),
                                                 _EVENT_STYLE.get(event.event, "")),
                      _event_detail(event))
    return Group(Rule(Text(f"History of {timeline.key}", "bold"), align="left"), grid, table)


def _event_detail(event: HistoryEvent) -> Text:
    lines = [Text(event.detail)] if event.detail else []
    lines.extend(_change_line(change) for change in event.changes)
    return Text("\n").join(lines)


def inventory_renderable(inventory: Inventory) -> RenderableType:
    info = inventory.snapshot
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("snapshot", _snapshot_line(info))
    grid.add_row("coverage", _coverage_line(info, ()))
    grid.add_row("baseline", Text(
        f"snapshot {inventory.baseline.snapshot_id}, " + _baseline_line(inventory.baseline).plain
        if inventory.baseline else "none set"))
    _summary_rows(grid, inventory.findings)
    parts: list[RenderableType] = [Rule(Text("Inventory", "bold"), align="left"), grid]
    failed = [r for r in inventory.rows if r.outcome is Outcome.FAILED or r.outcome is None]
    if failed:
        rows: list[RenderableType] = []
        for row in failed:
            rows += [Text(str(row.scope), "bold"),
                     Padding(Text(row.detail or "not collected"), (0, 0, 0, 2))]
        title = Text(f"NOT COLLECTED ({len(failed)}): instances here are unknown", "bold")
        parts.append(Panel(Group(*rows), title=title, title_align="left",
                           border_style="bold red"))
    accounts: dict[tuple[str, str], list[InventoryRow]] = defaultdict(list)
    for row in inventory.rows:
        accounts[(row.scope.provider, row.scope.account)].append(row)
    for i, ((provider, account), rows) in enumerate(sorted(accounts.items())):
        parts.append(Text(f" {provider} / {account}", "bold"))
        parts.append(Padding(_inventory_table(rows, header=i == 0), (0, 0, 0, 2)))
    parts.append(Text(f"{inventory.empty_scopes} empty scopes and {inventory.skipped_scopes} "
                      "skipped scopes not listed", "dim"))
    findings = [f for f in inventory.findings if f.kind != "coverage_gap"]
    parts.extend(_findings_body(findings))
    return Group(*parts)


def _inventory_table(rows: Sequence[InventoryRow], header: bool) -> Table:
    """Fixed widths, so that the tables of successive accounts line up."""
    table = Table(box=None, show_header=header, padding=(0, 1), expand=True,
                  header_style="bold dim")
    table.add_column("region", width=20, overflow="fold")
    table.add_column("instances", width=9, justify="right")
    table.add_column("running", width=7, justify="right")
    table.add_column("limit", width=5, justify="right")
    table.add_column("notes", ratio=1, overflow="fold")
    for row in rows:
        notes = Text()
        if row.outcome is Outcome.FAILED:
            notes.append("failed", "bold red")
        elif row.outcome is None:
            notes.append("not collected", "bold red")
        for flag in row.flags:
            if notes:
                notes.append(", ")
            notes.append(_label(flag), "bold red")
        over = row.limit is not None and row.instances > row.limit
        table.add_row(
            Text(row.scope.region),
            Text(str(row.instances), "bold red" if over else ""),
            str(row.states.get("running", 0)),
            "" if row.limit is None else str(row.limit),
            notes,
        )
    return table


def inventory_markdown(inventory: Inventory) -> str:
    info = inventory.snapshot
    lines = [f"## Inventory: snapshot {info.id}", "", "| | |", "| --- | --- |",
             f"| snapshot | {_md_snapshot(info)} |",
             f"| coverage | {_md(_coverage_line(info, ()).plain)} |"]
    if inventory.baseline:
        lines.append(f"| baseline | snapshot {inventory.baseline.snapshot_id}, "
                     f"{_md(_baseline_line(inventory.baseline).plain)} |")
    lines.extend(_md_summary_rows(inventory.findings))
    lines += ["", "| provider | account | region | instances | running | limit | notes |",
              "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for row in inventory.rows:
        notes = []
        if row.outcome is not Outcome.OK:
            notes.append(f"{row.outcome or 'not collected'}: {row.detail}".rstrip(": "))
        notes.extend(_label(f) for f in row.flags)
        lines.append(
            f"| {_md(row.scope.provider)} | {_md(row.scope.account)} | {_md(row.scope.region)} "
            f"| {row.instances} | {row.states.get('running', 0)} | "
            f"{'' if row.limit is None else row.limit} | {_md(', '.join(notes))} |"
        )
    lines += ["", f"{inventory.empty_scopes} empty scopes and {inventory.skipped_scopes} "
              "skipped scopes not listed.", ""]
    lines.extend(_md_findings([f for f in inventory.findings if f.kind != "coverage_gap"]))
    return "\n".join(lines).rstrip() + "\n"


def _change_line(change: Change) -> Text:
    """``path: old → new`` on one line when it is short, else old and new each on a line of
    their own (so a long URL is not folded in the middle of the arrow)."""
    if isinstance(change.old, list) and isinstance(change.new, list):
        added = [v for v in change.new if v not in change.old]
        removed = [v for v in change.old if v not in change.new]
        if added or removed:  # a list shows what came and went, not two long lists
            return Text.assemble((change.path, "bold"), ": ", " ".join(
                [f"+{_short(v)}" for v in added] + [f"−{_short(v)}" for v in removed]))
    old, new = _short(change.old), _short(change.new)
    if len(change.path) + len(old) + len(new) + 5 <= _ONE_LINE:
        return Text.assemble((change.path, "bold"), ": ", old, " → ", new)
    old, new = _short(change.old, _ONE_LINE - 4), _short(change.new, _ONE_LINE - 4)
    return Text.assemble((change.path, "bold"), ":\n  ", old, "\n  → ", new)


def _short(value: Any, limit: int = _MAX_VALUE) -> str:
    """A value on one line; a long one keeps its start and its end (where URLs and ids
    differ), cut in the middle."""
    text = "∅" if value is None else value if isinstance(value, str) else json.dumps(
        value, default=str, ensure_ascii=False
    )
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + "…" + text[len(text) - (limit - head - 1):]
