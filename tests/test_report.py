"""The reviewer's report rendered as text at a fixed width of 80 columns, and as Markdown/JSON."""

from __future__ import annotations

import io
import json

from rich.console import Console

from baseliner import report, rules
from baseliner.model import (
    Baseline,
    Change,
    DiffReport,
    Finding,
    HistoryEvent,
    Inventory,
    InventoryRow,
    Outcome,
    Scope,
    Severity,
    SnapshotInfo,
    Timeline,
)

OLD = SnapshotInfo(3, "2026-12-01T00:00:00Z", "live", "complete", 120, 12, 0, 2)
NEW = SnapshotInfo(5, "2026-12-02T00:00:00Z", "live", "partial", 118, 12, 1, 2)
BASELINE = Baseline(1, 3, "2026-12-01T00:00:00Z", "2026-12-01T09:00:00Z", "alice",
                    "CAB-7 reviewed")
GCP_ACCOUNT = "acme-production-project-with-a-long-name"


def render(renderable) -> str:
    console = Console(file=io.StringIO(), width=80, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def lines_fit(text: str) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, too_wide


def finding(kind: str, instance: str | None = None, region: str = "us-east-1",
            provider: str = "aws", account: str = "111111111111",
            changes: tuple[Change, ...] = (), detail: str = "", **extra) -> Finding:
    return Finding(kind, Severity.INFO, provider, account, region, instance,
                   f"{provider}:{account}:{instance}" if instance else None, changes,
                   detail=detail, extra=extra)


def findings() -> list[Finding]:
    raw = [
        Finding("coverage_gap", Severity.MEDIUM, "aws", "111111111111", "ap-southeast-2",
                detail="failed in the new snapshot (ThrottlingException in "
                       "DescribeInstances: Rate exceeded); creations and deletions here are "
                       "not reported",
                extra={"coverage": {"old": {"outcome": "ok", "detail": ""},
                                    "new": {"outcome": "failed", "detail": "throttled"},
                                    "unverified_missing": 3, "unverified_appeared": 0}}),
        finding("instance_reverted", "i-0a11111111111111a",
                detail="configuration of snapshot 2 (2026-11-30T00:00:00Z) is back",
                changes=(Change("instance_type", "t3.xlarge", "t3.medium"),
                         Change("tags.Owner", "unknown", "platform")),
                revert={"snapshot": {"id": 2, "taken_at": "2026-11-30T00:00:00Z"},
                        "root_disk": None}),
        finding("instance_modified", "i-0b22222222222222b",
                changes=(Change("security_groups", ["sg-0a1b2c3d", "sg-0ffee000"],
                                ["sg-0a1b2c3d", "sg-0bad0000", "sg-0ffee000"]),
                         Change("tags.Note", None, "[bold]not markup[/bold]"))),
        finding("instance_modified", "4812345678901234567", region="europe-west1",
                provider="gcp", account=GCP_ACCOUNT,
                changes=(Change("raw.machineType",
                                "https://www.googleapis.com/compute/v1/projects/acme/zones/"
                                "europe-west1-b/machineTypes/e2-standard-2",
                                "https://www.googleapis.com/compute/v1/projects/acme/zones/"
                                "europe-west1-b/machineTypes/e2-standard-8"),)),
        finding("instance_stopped", "i-0c33333333333333c",
                changes=(Change("state", "running", "stopped"),)),
        Finding("unused_region", Severity.INFO, "aws", "111111111111", "ap-northeast-3",
                detail="2 instances in a region outside expected_regions: i-0d1, i-0d2",
                extra={"instances": ["i-0d1", "i-0d2"],
                       "rule": {"expected_regions": ["us-east-1"]}}),
    ]
    justified = finding("instance_modified", "i-0e44444444444444e",
                        changes=(Change("instance_type", "t3.small", "t3.large"),))
    out = rules.evaluate(raw)
    out.append(rules.evaluate([justified])[0])
    out[-1] = Finding(**{**out[-1].__dict__, "severity": Severity.INFO,
                         "extra": {**out[-1].extra, "justified": {
                             "ticket": "CHG-4711", "tag": "change-ticket",
                             "severity": "medium"}}})
    return out


def test_the_report_reads_at_80_columns_with_everything_a_reviewer_needs():
    text = render(report.diff_renderable(DiffReport(OLD, NEW, findings(), BASELINE)))
    lines_fit(text)
    assert text.splitlines()[0].startswith("Drift report against the baseline ──")
    assert "snapshot 3 · 2026-12-01T00:00:00Z · complete · 120 instances" in text
    assert "approved by alice at 2026-12-01T09:00:00Z: CAB-7 reviewed" in text
    assert "snapshot 5 · 2026-12-02T00:00:00Z · partial · 118 instances" in text
    assert "9 of 12 scopes collected (1 failed, 2 skipped); 1 coverage gap" in text
    assert "7: 2 high · 3 medium · 1 low · 1 info (1 justified)" in text
    assert "3 modified · 1 reverted · 1 stopped · 1 unused region · 1 coverage gap" in text
    # coverage gaps come first, boxed, with what could not be verified
    gap = text.index("Coverage gaps (1): not verified, no deletion reported here")
    assert gap < text.index("HIGH (2)") < text.index("MEDIUM (2)") < text.index("LOW (1)")
    assert "coverage gap" not in text[text.index("HIGH (2)"):]
    assert "aws/111111111111/ap-southeast-2" in text
    assert "unverified: 3 missing, 0 appeared" in text
    assert "╭─ Coverage gaps" in text
    # findings grouped by severity, then provider / account / region
    high = text[text.index("HIGH (2)"):text.index("MEDIUM (2)")]
    assert " aws / 111111111111 / ap-northeast-3" in high
    assert "unused" in high and "i-0d1, i-0d2" in high
    assert "reverted" in high and "i-0a11111111111111a" in high
    assert "instance_type: t3.xlarge → t3.medium" in high
    assert "configuration of snapshot 2" in high
    assert "T1578.004 · Instance Modification" in high
    medium = text[text.index("MEDIUM (2)"):text.index("LOW (1)")]
    assert f" gcp / {GCP_ACCOUNT} / europe-west1" in medium
    assert "tags.Note: ∅ → [bold]not markup[/bold]" in medium
    # a long value keeps its end, on a line of its own
    assert "  https://www.…hineTypes/e2-standard-2 " in medium
    assert "  → https://www.…hineTypes/e2-standard-8 " in medium
    assert "security_groups: +sg-0bad0000 " in medium  # a list shows what came and went
    # justified changes apart, last, with their ticket
    justified = text[text.index("JUSTIFIED (1)"):]
    assert "i-0e44444444444444e" in justified
    assert "ticket CHG-4711 (was medium)" in justified
    assert "i-0e44444444444444e" not in text[:text.index("JUSTIFIED (1)")]


def test_no_drift_says_so():
    text = render(report.diff_renderable(DiffReport(OLD, OLD, [])))
    lines_fit(text)
    assert text.splitlines()[0].startswith("Drift report ──")
    assert "no drift: nothing changed and no rule fired" in text
    assert "0: 0 high · 0 medium · 0 low · 0 info" in text


def test_markdown_for_a_ticket():
    md = report.diff_markdown(DiffReport(OLD, NEW, findings(), BASELINE))
    assert md.startswith("## Drift report against the baseline: snapshot 3 → snapshot 5\n")
    assert "| baseline | approved by alice at 2026-12-01T09:00:00Z: CAB-7 reviewed |" in md
    assert "### ⚠ Coverage gaps (1)" in md
    assert md.index("### ⚠ Coverage gaps") < md.index("### High (2)") < md.index(
        "### Medium (2)") < md.index("### Low (1)") < md.index("### Justified (1)")
    assert "#### aws / 111111111111 / us-east-1" in md
    assert "- **reverted** `i-0a11111111111111a`" in md
    assert "  - `instance_type`: `t3.xlarge` → `t3.medium`" in md
    assert "expected\\_regions" in md  # Markdown specials are escaped in prose
    assert "  - ticket `CHG-4711` (tag `change-ticket`; would be medium)" in md


def test_json_keeps_the_core_shape_and_adds_the_review_fields():
    data = json.loads(report.dumps(report.diff_json(DiffReport(OLD, NEW, findings(),
                                                               BASELINE))))
    assert set(data) == {"old", "new", "findings"}
    assert data["old"]["baseline"]["set_by"] == "alice"
    assert set(data["new"]) == {"id", "taken_at", "status"}
    for item in data["findings"]:
        assert {"kind", "severity", "provider", "account", "region", "instance_id", "key",
                "changes", "techniques", "justified", "data_component"} <= set(item)
    reverted = next(f for f in data["findings"] if f["kind"] == "instance_reverted")
    assert reverted["revert"]["snapshot"]["id"] == 2
    assert data["findings"][-1]["justified"]["ticket"] == "CHG-4711"
    plain = report.diff_json(DiffReport(OLD, NEW, []))
    assert plain["old"]["baseline"] is None


def test_history_reads_at_80_columns():
    timeline = Timeline(
        key="aws:111111111111:i-0a11111111111111a", provider="aws", account="111111111111",
        region="us-east-1", instance_id="i-0a11111111111111a", name="web-1",
        events=(
            HistoryEvent(1, "2026-12-01T00:00:00Z", "first_seen", 1, detail="revision 1, running"),
            HistoryEvent(2, "2026-12-02T00:00:00Z", "modified", 2,
                         (Change("instance_type", "t3.medium", "t3.xlarge"),), "revision 2"),
            HistoryEvent(3, "2026-12-03T00:00:00Z", "missing",
                         detail="scope failed (Throttling): not verified",
                         until_snapshot_id=4),
            HistoryEvent(5, "2026-12-05T00:00:00Z", "reverted", 1,
                         (Change("instance_type", "t3.xlarge", "t3.medium"),),
                         "configuration of revision 1 (snapshot 1) is back"),
        ),
        revisions=2, first_seen=(1, "2026-12-01T00:00:00Z"),
        last_seen=(5, "2026-12-05T00:00:00Z"), latest_snapshot=(6, "2026-12-06T00:00:00Z"))
    text = render(report.history_renderable(timeline))
    lines_fit(text)
    assert "History of aws:111111111111:i-0a11111111111111a" in text
    assert "i-0a11111111111111a (web-1)" in text
    assert "not in the latest snapshot (6)" in text
    assert " 3–4 │ 2026-12-03T00:00:00Z │ missing" in text
    assert "scope failed (Throttling): not" in text
    assert "instance_type: t3.medium → t3.xlarge" in text
    assert "│ reverted   │ configuration of revision 1" in text


def test_inventory_reads_at_80_columns_with_uncollected_scopes_boxed():
    azure = "11111111-2222-3333-4444-555555555555"
    inventory = Inventory(
        snapshot=NEW,
        rows=(
            InventoryRow(Scope("aws", "111111111111", "ap-southeast-2"), Outcome.FAILED,
                         "ThrottlingException: Rate exceeded", 0, {}),
            InventoryRow(Scope("aws", "111111111111", "us-east-1"), Outcome.OK, "", 14,
                         {"running": 12, "stopped": 2}, 10, ("count_threshold",)),
            InventoryRow(Scope("azure", azure, "australiasoutheast"), Outcome.OK, "", 3,
                         {"running": 3}, None, ("unused_region",)),
        ),
        findings=rules.evaluate([Finding(
            "count_threshold", Severity.HIGH, "aws", "111111111111", "us-east-1",
            detail="14 instances, more than max_instances = 10")]),
        baseline=BASELINE, empty_scopes=20, skipped_scopes=4)
    text = render(report.inventory_renderable(inventory))
    lines_fit(text)
    assert "NOT COLLECTED (1): instances here are unknown" in text
    assert "ThrottlingException: Rate exceeded" in text
    assert f" azure / {azure}" in text
    assert "australiasoutheast" in text and "unused region" in text
    row = next(line for line in text.splitlines() if "us-east-1 " in line and "14" in line)
    assert row.split()[:5] == ["us-east-1", "14", "12", "10", "threshold"]
    assert "20 empty scopes and 4 skipped scopes not listed" in text
    assert "14 instances, more than" in text
    md = report.inventory_markdown(inventory)
    assert "| aws | 111111111111 | us-east-1 | 14 | 12 | 10 | threshold |" in md
    assert "| aws | 111111111111 | ap-southeast-2 | 0 | 0 |  | failed: ThrottlingException: " \
           "Rate exceeded |" in md
    data = report.inventory_json(inventory)
    assert data["scopes"][1]["states"] == {"running": 12, "stopped": 2}


def test_baseline_show():
    other = Baseline(0, 1, "2026-11-01T00:00:00Z", "2026-11-01T09:00:00Z", "bob", "first")
    text = render(report.baseline_renderable(BASELINE, [other, BASELINE]))
    lines_fit(text)
    assert "3 (taken 2026-12-01T00:00:00Z)" in text
    assert "by alice at 2026-12-01T09:00:00Z" in text
    assert "CAB-7 reviewed" in text
    assert "Earlier approvals" in text and "bob" in text
    assert "no baseline yet" in render(report.baseline_renderable(None, []))
    assert report.baseline_json(BASELINE, [BASELINE])["baseline"]["reason"] == "CAB-7 reviewed"
