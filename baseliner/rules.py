"""Turn raw changes into findings: reverts, unused regions, thresholds, images, justification,
severity, ATT&CK techniques and the DS0030 data component.

Pure: everything a rule needs arrives as plain values in a :class:`Context` that
``pipeline.diff`` builds from the store (fingerprint history only for modified keys, record
bodies only for the keys a configured rule looks at). The tables below are the default policy;
every entry is data, not code, so a reviewer can read the whole policy in one screen.

The [rules] table (all keys optional)::

    expected_regions = {aws = ["us-east-1", "eu-*"], gcp = [...], azure = [...]}
    approved_images = {aws = ["ami-0abc...", "ami-golden-*"], gcp = [...], azure = [...]}
    justification_tag = "change-ticket"
    justification_pattern = "CHG-[0-9]+"
    [rules.severity]            # kind = "info" | "low" | "medium" | "high"
    [[rules.thresholds]]        # provider/account/region globs, per, max_instances/created/deleted
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from .config import Section
from .model import (
    ALL,
    Change,
    Entry,
    Finding,
    InstanceRecord,
    InventoryRow,
    Outcome,
    Scope,
    ScopeOutcomes,
    ScopeResult,
    Severity,
    finding_order,
)

__all__ = [
    "DATA_COMPONENT",
    "DEFAULT_SEVERITY",
    "KINDS",
    "TECHNIQUES",
    "BaselineScopes",
    "Context",
    "RulesConfig",
    "Threshold",
    "estate_findings",
    "evaluate",
    "inventory_rows",
    "needs_history",
    "needs_records",
    "parse_config",
]

KINDS = (
    "instance_created",
    "instance_deleted",
    "instance_modified",
    "instance_reverted",
    "instance_started",
    "instance_stopped",
    "unused_region",
    "count_threshold",
    "unapproved_image",
    "coverage_gap",
)

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
"""MITRE ATT&CK technique ids per kind (DS0030 "Instance" detections). Two additions depend
on the case: a creation from an unapproved image adds T1204.003, and deletions beyond a
``max_deleted`` threshold (mass deletion) add T1485 to the deletions and to the threshold
finding, which then reads T1485 + T1578.003 instead of the default pair."""

UNAPPROVED_IMAGE = "T1204.003"
MASS_DELETION = ("T1485", "T1578.003")

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
"""DS0030 data component each kind is evidence of (a creation or deletion threshold names
Instance Creation / Instance Deletion instead)."""

PROVIDERS = ("aws", "gcp", "azure")
METRICS = ("max_instances", "max_created", "max_deleted")
PER = ("region", "account", "provider")
_INSTANCE_KINDS = frozenset(k for k in KINDS if k.startswith("instance_")) | {"unapproved_image"}

# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Threshold:
    """One ``[[rules.thresholds]]`` entry. Globs select scopes; ``per`` says what is counted
    together: each region (default), each account, or each provider."""

    provider: str = ALL
    account: str = ALL
    region: str = ALL
    per: str = "region"
    max_instances: int | None = None
    max_created: int | None = None
    max_deleted: int | None = None

    def matches(self, scope: Scope) -> bool:
        return (
            fnmatchcase(scope.provider, self.provider)
            and fnmatchcase(scope.account, self.account)
            and fnmatchcase(scope.region, self.region)
        )

    def group(self, scope: Scope) -> Scope:
        if self.per == "account":
            return Scope(scope.provider, scope.account, ALL)
        if self.per == "provider":
            return Scope(scope.provider, ALL, ALL)
        return scope

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "account": self.account, "region": self.region,
                "per": self.per}


@dataclass(frozen=True)
class RulesConfig:
    """The parsed [rules] table; the defaults switch every optional rule off."""

    expected_regions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per provider: region names or globs. A provider absent here falls back to "regions
    empty in the baseline"; with no baseline either, it gets no unused_region finding."""
    approved_images: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per provider: image ids or globs. A provider absent here is not checked."""
    thresholds: tuple[Threshold, ...] = ()
    justification_tag: str | None = None
    justification_pattern: re.Pattern[str] | None = None
    severity: Mapping[str, Severity] = field(default_factory=dict)
    """Overrides of DEFAULT_SEVERITY, by kind."""


def parse_config(data: dict[str, Any], file: str) -> RulesConfig:
    """The [rules] table; every error names the file and the dotted key."""
    s = Section(file, "rules", data)
    expected = _per_provider(s, "expected_regions")
    approved = _per_provider(s, "approved_images")
    tag = s.string("justification_tag")
    pattern_text = s.string("justification_pattern")
    pattern = None
    if pattern_text is not None:
        if tag is None:
            s.fail(s.name("justification_pattern"), "needs justification_tag")
        try:
            pattern = re.compile(pattern_text)
        except re.error as exc:
            s.fail(s.name("justification_pattern"), f"not a regular expression: {exc}")
    severity: dict[str, Severity] = {}
    if (t := s.table("severity")) is not None:
        for kind in list(t.data):
            if kind not in KINDS:
                t.fail(t.name(kind), f"unknown finding kind; known: {', '.join(KINDS)}")
            value = t.string(kind)
            if value not in {str(v) for v in Severity}:
                t.fail(t.name(kind), f"expected info, low, medium or high, got {value!r}")
            severity[kind] = Severity(value)
        t.done()
    thresholds = tuple(
        _threshold(Section(file, f"rules.thresholds[{i}]", item))
        for i, item in enumerate(s.get("thresholds", list, []))
    )
    s.done()
    return RulesConfig(expected, approved, thresholds, tag, pattern, severity)


def _per_provider(s: Section, key: str) -> dict[str, tuple[str, ...]]:
    table = s.table(key)
    if table is None:
        return {}
    out = {}
    for provider in list(table.data):
        if provider not in PROVIDERS:
            table.fail(table.name(provider), f"unknown provider; known: {', '.join(PROVIDERS)}")
        out[provider] = table.strings(provider)
    table.done()
    return out


def _threshold(t: Section) -> Threshold:
    globs = {}
    for key in ("provider", "account", "region"):
        globs[key] = t.string(key, ALL) or ALL
    per = t.string("per", "region") or "region"
    if per not in PER:
        t.fail(t.name("per"), f"expected one of {', '.join(PER)}, got {per!r}")
    limits: dict[str, int | None] = {}
    for metric in METRICS:
        value = t.get(metric, int, None)
        if value is not None and value < 0:
            t.fail(t.name(metric), f"expected an integer of 0 or more, got {value}")
        limits[metric] = value
    if all(v is None for v in limits.values()):
        t.fail(t.prefix, "set at least one of max_instances, max_created, max_deleted")
    t.done()
    return Threshold(per=per, **globs, **limits)


# ---------------------------------------------------------------- context


@dataclass(frozen=True)
class BaselineScopes:
    """What the unused-region fallback needs of the approved snapshot."""

    snapshot_id: int
    scopes: Sequence[ScopeResult]
    counts: Mapping[Scope, int]
    """Instances per scope in the approved snapshot."""


@dataclass(frozen=True)
class Context:
    """Plain values the rules read; every field may be empty (that rule then stays quiet)."""

    new_entries: Mapping[str, Entry] = field(default_factory=dict)
    """Every record of the new snapshot (no bodies)."""
    records: Mapping[str, InstanceRecord] = field(default_factory=dict)
    """New-state bodies, only for the keys :func:`needs_records` named."""
    history: Mapping[str, Sequence[tuple[int, str]]] = field(default_factory=dict)
    """(snapshot id, fingerprint) of each key of :func:`needs_history`, ascending, for every
    snapshot older than the new one that holds it."""
    taken_at: Mapping[int, str] = field(default_factory=dict)
    """When each snapshot was taken, by id (names the snapshot a revert came back to)."""
    baseline: BaselineScopes | None = None


def needs_history(findings: Iterable[Finding]) -> set[str]:
    """Keys whose fingerprint history the revert rule reads: the modified ones."""
    return {f.key for f in findings if f.kind == "instance_modified" and f.key}


def needs_records(findings: Iterable[Finding], config: RulesConfig | None) -> set[str]:
    """Keys whose new-state body a configured rule reads (tags for justification, the image
    of a creation); none when neither rule is configured."""
    if config is None:
        return set()
    justified = _INSTANCE_KINDS - {"instance_deleted"} if config.justification_tag else set()
    return {
        f.key
        for f in findings
        if f.key
        and (
            f.kind in justified
            or f.kind == "instance_created" and f.provider in config.approved_images
        )
    }


# ---------------------------------------------------------------- evaluate


def evaluate(
    findings: list[Finding], config: RulesConfig | None = None, context: Context | None = None
) -> list[Finding]:
    """The diff's findings plus the rules' own, each with severity, techniques, DS0030 data
    component and justification, in a deterministic order."""
    config = config or RulesConfig()
    context = context or Context()
    out = [_revert(f, context) if f.kind == "instance_modified" else f for f in findings]
    out = _images(out, config, context)
    out = _change_thresholds(out, config)
    out.extend(estate_findings(context.new_entries, config, context.baseline))
    out = [_justify(_classify(f, config), config, context) for f in out]
    out.sort(key=finding_order)
    return out


def estate_findings(
    entries: Mapping[str, Entry], config: RulesConfig, baseline: BaselineScopes | None
) -> list[Finding]:
    """Conditions of one snapshot, whatever changed: instances in unused regions and counts
    over ``max_instances``. Not yet classified: :func:`evaluate` applies severity overrides,
    techniques and the data component (``evaluate([], config, context)`` gives just these)."""
    counts = Counter(e.scope for e in entries.values())
    found = _unused_regions(entries, counts, config, baseline)
    found.extend(_instance_thresholds(counts, config))
    return found


def _classify(finding: Finding, config: RulesConfig) -> Finding:
    severity = config.severity.get(
        finding.kind, DEFAULT_SEVERITY.get(finding.kind, finding.severity)
    )
    return replace(
        finding,
        severity=severity,
        techniques=finding.techniques or TECHNIQUES.get(finding.kind, ()),
        extra={
            **finding.extra,
            "data_component": finding.extra.get("data_component")
            or DATA_COMPONENT.get(finding.kind, ""),
        },
    )


# ---------------------------------------------------------------- revert


def _revert(finding: Finding, context: Context) -> Finding:
    """instance_modified → instance_reverted when the new configuration was seen before in a
    non-adjacent snapshot (A → B → A), or the root/boot disk was swapped under the same id."""
    assert finding.key is not None
    came_back = None
    entry = context.new_entries.get(finding.key)
    history = context.history.get(finding.key, ())
    if entry is not None and history:
        now = entry.fingerprint
        # The last snapshot holding another configuration ends the run that leads to now;
        # an equal fingerprint before it is a configuration that went away and came back.
        last_other = max((i for i, (_, fp) in enumerate(history) if fp != now), default=None)
        if last_other is not None:
            earlier = [snap for snap, fp in history[:last_other] if fp == now]
            if earlier:
                came_back = earlier[-1]
    disk = next(
        (c for c in finding.changes if c.path == "root_disk" and c.old and c.new), None
    )
    if came_back is None and disk is None:
        return finding
    reasons = []
    snapshot = None
    if came_back is not None:
        taken_at = context.taken_at.get(came_back, "")
        snapshot = {"id": came_back, "taken_at": taken_at}
        reasons.append(f"configuration of snapshot {came_back} ({taken_at}) is back")
    if disk is not None:
        reasons.append(f"root disk swapped: {disk.old} → {disk.new}")
    return replace(
        finding,
        kind="instance_reverted",
        detail="; ".join(reasons),
        extra={
            **finding.extra,
            "revert": {
                "snapshot": snapshot,
                "root_disk": {"old": disk.old, "new": disk.new} if disk else None,
            },
        },
    )


# ---------------------------------------------------------------- images


def _image_approved(provider: str, image: str | None, patterns: Sequence[str]) -> bool:
    if not image:
        return False
    if provider == "azure":  # Azure resource ids and image URNs compare case-insensitively
        image = image.lower()
        return any(fnmatchcase(image, p.lower()) for p in patterns)
    return any(fnmatchcase(image, p) for p in patterns)


def _images(findings: list[Finding], config: RulesConfig, context: Context) -> list[Finding]:
    """A creation (or a re-image) from an image outside ``approved_images`` adds an
    ``unapproved_image`` finding, and T1204.003 to the creation."""
    if not config.approved_images:
        return findings
    out = []
    for f in findings:
        patterns = config.approved_images.get(f.provider)
        if patterns is None or not f.key:
            out.append(f)
            continue
        if f.kind == "instance_created":
            record = context.records.get(f.key)
            if record is None:  # body not loaded: nothing to judge
                out.append(f)
                continue
            before, image, how = None, record.image, "created from"
        elif f.kind in ("instance_modified", "instance_reverted"):
            change = next((c for c in f.changes if c.path == "image"), None)
            if change is None:
                out.append(f)
                continue
            before, image, how = change.old, change.new, "re-imaged with"
        else:
            out.append(f)
            continue
        if _image_approved(f.provider, image, patterns):
            out.append(f)
            continue
        if f.kind == "instance_created":
            f = replace(f, techniques=(*TECHNIQUES["instance_created"], UNAPPROVED_IMAGE))
        out.append(f)
        out.append(Finding(
            kind="unapproved_image",
            severity=Severity.HIGH,
            provider=f.provider,
            account=f.account,
            region=f.region,
            instance_id=f.instance_id,
            key=f.key,
            changes=(Change("image", before, image),),
            detail=f"{how} {image or 'an unknown image'}, not in approved_images",
            extra={"image": image, "rule": {"approved_images": list(patterns)}},
        ))
    return out


# ---------------------------------------------------------------- thresholds


def _threshold_finding(
    threshold: Threshold, metric: str, group: Scope, count: int, noun: str
) -> Finding:
    limit = getattr(threshold, metric)
    extra: dict[str, Any] = {
        "count": count,
        "rule": {"metric": metric, "limit": limit, **threshold.to_dict()},
    }
    techniques: tuple[str, ...] = ()
    if metric == "max_deleted":
        techniques = MASS_DELETION
        extra["data_component"] = DATA_COMPONENT["instance_deleted"]
    elif metric == "max_created":
        extra["data_component"] = DATA_COMPONENT["instance_created"]
    return Finding(
        kind="count_threshold",
        severity=Severity.HIGH,
        provider=group.provider,
        account=group.account,
        region=group.region,
        techniques=techniques,
        detail=f"{count} {noun if count != 1 else noun.replace('instances', 'instance')}, "
               f"more than {metric} = {limit}",
        extra=extra,
    )


def _instance_thresholds(counts: Mapping[Scope, int], config: RulesConfig) -> list[Finding]:
    found = []
    for threshold in config.thresholds:
        if threshold.max_instances is None:
            continue
        grouped: Counter[Scope] = Counter()
        for scope, n in counts.items():
            if threshold.matches(scope):
                grouped[threshold.group(scope)] += n
        for group, n in sorted(grouped.items()):
            if n > threshold.max_instances:
                found.append(_threshold_finding(threshold, "max_instances", group, n,
                                                "instances"))
    return found


def _change_thresholds(findings: list[Finding], config: RulesConfig) -> list[Finding]:
    """Creations and deletions of this diff over ``max_created`` / ``max_deleted``; the
    deletions of a group over its limit are a mass deletion and carry T1485."""
    extra: list[Finding] = []
    mass: set[int] = set()
    for threshold in config.thresholds:
        for metric, kind, noun in (("max_created", "instance_created", "instances created"),
                                   ("max_deleted", "instance_deleted", "instances deleted")):
            limit = getattr(threshold, metric)
            if limit is None:
                continue
            groups: dict[Scope, list[int]] = defaultdict(list)
            for i, f in enumerate(findings):
                scope = Scope(f.provider, f.account, f.region)
                if f.kind == kind and threshold.matches(scope):
                    groups[threshold.group(scope)].append(i)
            for group, members in sorted(groups.items()):
                if len(members) > limit:
                    extra.append(_threshold_finding(threshold, metric, group, len(members), noun))
                    if kind == "instance_deleted":
                        mass.update(members)
    out = [
        replace(f, techniques=(*TECHNIQUES["instance_deleted"], MASS_DELETION[0]))
        if i in mass else f
        for i, f in enumerate(findings)
    ]
    return out + extra


# ---------------------------------------------------------------- unused regions


def _region_expected(provider: str, region: str, patterns: Sequence[str]) -> bool:
    if provider == "azure":  # Azure location names are case-insensitive
        region = region.lower()
        return any(fnmatchcase(region, p.lower()) for p in patterns)
    return any(fnmatchcase(region, p) for p in patterns)


def _unused_regions(
    entries: Mapping[str, Entry],
    counts: Mapping[Scope, int],
    config: RulesConfig,
    baseline: BaselineScopes | None,
) -> list[Finding]:
    """One finding per (provider, account, region) holding instances where none belong:
    outside ``expected_regions``; for a provider without that key, a region the baseline
    collected successfully and found empty, or had not even enabled (an AWS opt-in region).
    A region the baseline failed or skipped for another reason was not seen empty, so it
    is never unused on that ground."""
    rules: dict[Scope, dict[str, Any]] = {}
    outcomes = ScopeOutcomes(baseline.scopes if baseline else ())
    for scope in counts:
        patterns = config.expected_regions.get(scope.provider)
        if patterns is not None:
            if not _region_expected(scope.provider, scope.region, patterns):
                rules[scope] = {"expected_regions": list(patterns)}
        elif (
            baseline is not None
            and baseline.counts.get(scope, 0) == 0
            and (found := outcomes.result(scope)) is not None
            and (found.outcome is Outcome.OK or found.region_disabled)
        ):
            rules[scope] = {"empty_in_baseline": baseline.snapshot_id}
    if not rules:
        return []
    instances: dict[Scope, list[str]] = defaultdict(list)
    for entry in entries.values():
        if entry.scope in rules:
            instances[entry.scope].append(entry.key.split(":", 2)[2])
    found = []
    for scope in sorted(rules):
        ids = sorted(instances[scope])
        rule = rules[scope]
        why = ("outside expected_regions" if "expected_regions" in rule
               else f"empty in baseline snapshot {rule['empty_in_baseline']}")
        found.append(Finding(
            kind="unused_region",
            severity=Severity.HIGH,
            provider=scope.provider,
            account=scope.account,
            region=scope.region,
            detail=f"{len(ids)} instance{'s' if len(ids) != 1 else ''} in a region {why}: "
                   + ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else ""),
            extra={"instances": ids, "rule": rule},
        ))
    return found


# ---------------------------------------------------------------- justification


def _ticket(record: InstanceRecord, config: RulesConfig) -> tuple[str, str] | None:
    """(tag name, ticket) when the record carries the justification tag with a valid value.
    Tag names compare case-insensitively (Azure tags do; GCP labels are lower case)."""
    wanted = (config.justification_tag or "").lower()
    for name, value in record.tags.items():
        if name.lower() != wanted or not value or not value.strip():
            continue
        if config.justification_pattern is None or config.justification_pattern.fullmatch(
            value.strip()
        ):
            return name, value.strip()
    return None


def _justify(finding: Finding, config: RulesConfig, context: Context) -> Finding:
    """A change on an instance whose new state carries a ticket drops to info and says so.
    Deletions have no new state, and estate conditions are no change on one instance: they
    are never justified."""
    ticket = None
    if (
        config.justification_tag
        and finding.key
        and finding.kind in _INSTANCE_KINDS
        and finding.kind != "instance_deleted"
        and (record := context.records.get(finding.key)) is not None
    ):
        ticket = _ticket(record, config)
    if ticket is None:
        return replace(finding, extra={**finding.extra, "justified": None})
    tag, value = ticket
    return replace(
        finding,
        severity=Severity.INFO,
        extra={
            **finding.extra,
            "justified": {"ticket": value, "tag": tag, "severity": str(finding.severity)},
        },
    )


# ---------------------------------------------------------------- inventory


def inventory_rows(
    entries: Mapping[str, Entry],
    scopes: Sequence[ScopeResult],
    config: RulesConfig,
    findings: Sequence[Finding],
) -> tuple[list[InventoryRow], int, int]:
    """Rows of ``baseliner report``: every scope holding instances and every scope that was
    not collected successfully; plus the number of empty ok scopes and of skipped ones."""
    states: dict[Scope, Counter[str]] = defaultdict(Counter)
    for entry in entries.values():
        states[entry.scope][str(entry.state)] += 1
    flags: dict[Scope, set[str]] = defaultdict(set)
    for f in findings:
        flags[Scope(f.provider, f.account, f.region)].add(f.kind)
    outcomes = ScopeOutcomes(scopes)
    # A failed wildcard (an account whose role could not be assumed) is a row of its own:
    # none of its regions could even be listed.
    wildcards = {r.scope for r in outcomes.wildcards if r.outcome is Outcome.FAILED}
    rows = []
    empty = skipped = 0
    for scope in sorted(set(states) | outcomes.concrete | wildcards):
        result = outcomes.result(scope)
        outcome = result.outcome if result else None
        n = sum(states[scope].values()) if scope in states else 0
        if n == 0 and outcome is Outcome.OK:
            empty += 1
            continue
        if n == 0 and outcome is Outcome.SKIPPED:
            skipped += 1
            continue
        limits = [t.max_instances for t in config.thresholds
                  if t.max_instances is not None and t.per == "region" and t.matches(scope)]
        rows.append(InventoryRow(
            scope=scope,
            outcome=outcome,
            detail=result.detail if result else "",
            instances=n,
            states=dict(states.get(scope, {})),
            limit=min(limits) if limits else None,
            flags=tuple(sorted(flags.get(scope, ()))),
        ))
    return rows, empty, skipped
