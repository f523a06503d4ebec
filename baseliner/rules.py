"""Turn raw changes into findings: severity, ATT&CK techniques, DS0030 data component.

The table below is the default policy; every entry is data, not code, so a reviewer can
read the whole policy in one screen.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .config import Section
from .model import Finding, Severity

DEFAULT_SEVERITY: dict[str, Severity] = {
    "instance_created": Severity.MEDIUM,
    "instance_deleted": Severity.MEDIUM,
    "instance_modified": Severity.MEDIUM,
    "instance_reverted": Severity.HIGH,
    "instance_started": Severity.LOW,
    "instance_stopped": Severity.LOW,
    "unused_region": Severity.HIGH,
    "count_threshold": Severity.HIGH,
    "unapproved_image": Severity.HIGH,
}
"""Severity per kind. ``coverage_gap`` keeps what the diff gave it: medium when a scope
failed, low when it was skipped or not collected."""

TECHNIQUES: dict[str, tuple[str, ...]] = {
    "instance_created": ("T1578.002",),
    "instance_deleted": ("T1578.003",),
    "instance_modified": ("T1578.004",),
    "instance_reverted": ("T1578.004",),
    "instance_started": ("T1578.004",),
    "instance_stopped": ("T1578.004",),
    "unused_region": ("T1535",),
    "count_threshold": ("T1535", "T1578.002"),
    "unapproved_image": ("T1204.003",),
    "coverage_gap": (),
}
"""MITRE ATT&CK technique ids per kind (DS0030 "Instance" detections)."""

DATA_COMPONENT: dict[str, str] = {
    "instance_created": "Instance Creation",
    "instance_deleted": "Instance Deletion",
    "instance_modified": "Instance Modification",
    "instance_reverted": "Instance Modification",
    "instance_started": "Instance Start",
    "instance_stopped": "Instance Stop",
    "unused_region": "Instance Metadata",
    "count_threshold": "Instance Enumeration",
    "unapproved_image": "Instance Creation",
    "coverage_gap": "Instance Enumeration",
}
"""DS0030 data component each kind is evidence of."""


def evaluate(findings: list[Finding]) -> list[Finding]:
    """Assign severity and techniques to the diff's findings, keeping their order."""
    out = []
    for finding in findings:
        severity = DEFAULT_SEVERITY.get(finding.kind, finding.severity)
        out.append(replace(
            finding,
            severity=severity,
            techniques=TECHNIQUES.get(finding.kind, ()),
            extra={**finding.extra, "data_component": DATA_COMPONENT.get(finding.kind, "")},
        ))
    return out


def parse_config(data: dict[str, Any], file: str) -> dict[str, Any]:
    """The [rules] table. No rule is configurable yet: any key is reported as unknown."""
    section = Section(file, "rules", data)
    section.done()
    return data
