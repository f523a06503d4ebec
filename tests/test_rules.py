"""Drift rules: reverts, unused regions, thresholds, images, justification, severity, ATT&CK.

Each rule is driven through the real store and pipeline.diff (the context the rules get is
built from SQLite exactly as in production), with the negative case beside the positive one.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace

import pytest

from baseliner import pipeline, rules
from baseliner.config import parse
from baseliner.errors import ConfigError, InputError
from baseliner.model import ALL, Finding, Outcome, Scope, Severity, State
from baseliner.store import open_store

from .records import EAST, WEST, record, snapshot

GCP = Scope("gcp", "acme-prod", "europe-west1")
TOKYO = Scope("aws", "111111111111", "ap-northeast-1")


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "r.db", create=True) as s:
        yield s


def cfg(text: str) -> rules.RulesConfig:
    return rules.parse_config(tomllib.loads(text), "test.toml")


def write(store, *snapshots) -> list[int]:
    return [store.write_snapshot(s) for s in snapshots]


def diff(store, *snapshots, config: rules.RulesConfig | None = None) -> list[Finding]:
    """Store the snapshots and diff the last two."""
    ids = write(store, *snapshots)
    return pipeline.diff(store, ids[-2], ids[-1], config).findings


def kinds(found: list[Finding]) -> list[tuple[str, str]]:
    return sorted((f.kind, f.instance_id or f"{f.provider}/{f.account}/{f.region}")
                  for f in found)


def one(found: list[Finding], kind: str) -> Finding:
    matches = [f for f in found if f.kind == kind]
    assert len(matches) == 1, kinds(found)
    return matches[0]


# ---------------------------------------------------------------- reverts


def test_configuration_coming_back_is_a_revert_naming_the_snapshot(store):
    a = record("i-1", instance_type="t3.micro", tags={"Name": "web", "Owner": "platform"})
    b = replace(a, instance_type="t3.xlarge", tags={"Name": "web", "Owner": "unknown"})
    ids = write(store, snapshot(a, taken_at="2026-12-01T00:00:00Z"),
                snapshot(b, taken_at="2026-12-02T00:00:00Z"),
                snapshot(a, taken_at="2026-12-03T00:00:00Z"))
    first = pipeline.diff(store, ids[0], ids[1]).findings
    assert kinds(first) == [("instance_modified", "i-1")]
    found = pipeline.diff(store, ids[1], ids[2]).findings
    revert = one(found, "instance_reverted")
    assert revert.severity is Severity.HIGH
    assert revert.techniques == ("T1578.004",)
    assert revert.extra["data_component"] == "Instance Modification"
    assert revert.extra["revert"] == {
        "snapshot": {"id": ids[0], "taken_at": "2026-12-01T00:00:00Z"}, "root_disk": None}
    assert f"snapshot {ids[0]}" in revert.detail
    assert {c.path for c in revert.changes} == {"instance_type", "tags.Owner"}
    assert not [f for f in found if f.kind == "instance_modified"]


def test_revert_names_the_last_snapshot_that_had_the_configuration(store):
    a, b = record("i-1"), record("i-1", instance_type="m5.large")
    ids = write(store, snapshot(a), snapshot(a), snapshot(b), snapshot(b), snapshot(a))
    found = pipeline.diff(store, ids[3], ids[4]).findings
    assert one(found, "instance_reverted").extra["revert"]["snapshot"]["id"] == ids[1]


def test_a_new_configuration_is_a_modification_not_a_revert(store):
    a = record("i-1")
    found = diff(store, snapshot(a), snapshot(replace(a, instance_type="m5.large")),
                 snapshot(replace(a, instance_type="c5.large")))
    assert kinds(found) == [("instance_modified", "i-1")]


def test_stop_and_start_is_not_a_revert(store):
    running = record("i-1", public_ips=("54.1.1.1",))
    stopped = replace(running, state=State.STOPPED, public_ips=(),
                      raw={**running.raw, "State": {"Name": "stopped"}})
    started = replace(running, public_ips=("54.9.9.9",))
    ids = write(store, snapshot(running), snapshot(stopped), snapshot(started))
    assert kinds(pipeline.diff(store, ids[0], ids[1]).findings) == [("instance_stopped", "i-1")]
    assert kinds(pipeline.diff(store, ids[1], ids[2]).findings) == [("instance_started", "i-1")]


def test_root_disk_swapped_under_the_same_id_is_a_revert(store):
    a = record("i-1", root_disk="vol-aaa")
    found = diff(store, snapshot(a), snapshot(replace(a, root_disk="vol-bbb")))
    revert = one(found, "instance_reverted")
    assert revert.extra["revert"] == {"snapshot": None,
                                      "root_disk": {"old": "vol-aaa", "new": "vol-bbb"}}
    assert "root disk swapped: vol-aaa → vol-bbb" in revert.detail


def test_a_root_disk_appearing_is_no_swap(store):
    a = record("i-1", root_disk=None)
    found = diff(store, snapshot(a), snapshot(replace(a, root_disk="vol-new")))
    assert kinds(found) == [("instance_modified", "i-1")]


def test_against_the_baseline_a_configuration_back_to_the_baseline_is_no_drift(store):
    a = record("i-1")
    ids = write(store, snapshot(a), snapshot(replace(a, instance_type="m5.large")),
                snapshot(a))
    store.set_baseline(ids[0], "alice", "reviewed", "2026-12-01T00:00:00Z")
    report = pipeline.diff_against_baseline(store)
    assert report.findings == []
    assert report.baseline is not None and report.baseline.snapshot_id == ids[0]
    assert (report.old.id, report.new.id) == (ids[0], ids[2])


def test_against_the_baseline_a_configuration_older_than_it_coming_back_is_a_revert(store):
    a = record("i-1")
    b = replace(a, instance_type="m5.large")
    ids = write(store, snapshot(a), snapshot(b), snapshot(a))
    store.set_baseline(ids[1], "alice", "", "2026-12-01T00:00:00Z")
    found = pipeline.diff_against_baseline(store).findings
    assert one(found, "instance_reverted").extra["revert"]["snapshot"]["id"] == ids[0]


def test_diff_against_baseline_without_one_is_a_clear_error(store):
    write(store, snapshot(record("i-1")))
    with pytest.raises(InputError, match="no baseline"):
        pipeline.diff_against_baseline(store)


# ---------------------------------------------------------------- unused regions


EXPECTED = """
expected_regions = {aws = ["us-east-1"], azure = ["WestEurope"]}
"""


def test_instances_outside_expected_regions_are_one_finding_per_scope(store):
    old = snapshot(record("i-east"), scopes={EAST: Outcome.OK, WEST: Outcome.OK})
    new = snapshot(record("i-east"), record("i-w1", WEST), record("i-w2", WEST))
    found = diff(store, old, new, config=cfg(EXPECTED))
    unused = one(found, "unused_region")
    assert (unused.provider, unused.account, unused.region) == ("aws", "111111111111",
                                                                 "eu-west-1")
    assert unused.instance_id is None
    assert unused.extra["instances"] == ["i-w1", "i-w2"]
    assert unused.extra["rule"] == {"expected_regions": ["us-east-1"]}
    assert unused.techniques == ("T1535",)
    assert unused.severity is Severity.HIGH
    assert "2 instances" in unused.detail


def test_expected_regions_take_globs_and_azure_compares_case_insensitively(store):
    azure = Scope("azure", "sub-1", "westeurope")
    config = cfg('expected_regions = {aws = ["eu-*", "us-east-?"], azure = ["WestEurope"]}')
    snap = snapshot(record("i-1"), record("i-2", WEST), record("vm-1", azure),
                    scopes={EAST: Outcome.OK, WEST: Outcome.OK, azure: Outcome.OK})
    assert not [f for f in diff(store, snap, snap, config=config) if f.kind == "unused_region"]


def test_a_provider_missing_from_expected_regions_is_not_judged_by_them(store):
    snap = snapshot(record("vm-1", GCP), scopes={GCP: Outcome.OK})
    assert diff(store, snap, snap, config=cfg(EXPECTED)) == []


def test_without_expected_regions_or_baseline_no_region_is_unused(store):
    old = snapshot(scopes={EAST: Outcome.OK, TOKYO: Outcome.OK})
    new = snapshot(record("i-1", TOKYO), scopes={EAST: Outcome.OK, TOKYO: Outcome.OK})
    assert kinds(diff(store, old, new)) == [("instance_created", "i-1")]


def test_a_region_empty_in_the_baseline_is_unused(store):
    base = snapshot(record("i-east"), scopes={EAST: Outcome.OK, TOKYO: Outcome.OK})
    ids = write(store, base)
    store.set_baseline(ids[0], "alice", "approved", "2026-12-01T00:00:00Z")
    found = diff(store, base, snapshot(record("i-east"), record("i-x", TOKYO),
                                       scopes={EAST: Outcome.OK, TOKYO: Outcome.OK}))
    unused = one(found, "unused_region")
    assert unused.region == "ap-northeast-1"
    assert unused.extra["rule"] == {"empty_in_baseline": ids[0]}
    assert unused.extra["instances"] == ["i-x"]


@pytest.mark.parametrize(
    "baseline_scopes",
    [
        {EAST: Outcome.OK, TOKYO: Outcome.FAILED},
        {EAST: Outcome.OK, TOKYO: Outcome.SKIPPED},
        {EAST: Outcome.OK},  # never collected
        {EAST: Outcome.OK, Scope("aws", "111111111111", ALL): Outcome.FAILED},
    ],
    ids=["failed", "skipped", "not-collected", "account-failed"],
)
def test_a_region_not_seen_empty_in_the_baseline_is_never_unused(store, baseline_scopes):
    ids = write(store, snapshot(record("i-east"), scopes=baseline_scopes))
    store.set_baseline(ids[0], "alice", "", "2026-12-01T00:00:00Z")
    found = diff(store, snapshot(record("i-east"), scopes={EAST: Outcome.OK, TOKYO: Outcome.OK}),
                 snapshot(record("i-east"), record("i-x", TOKYO),
                          scopes={EAST: Outcome.OK, TOKYO: Outcome.OK}))
    assert not [f for f in found if f.kind == "unused_region"]


def test_a_region_used_in_the_baseline_is_not_unused(store):
    snap = snapshot(record("i-x", TOKYO), scopes={TOKYO: Outcome.OK})
    ids = write(store, snap)
    store.set_baseline(ids[0], "alice", "", "2026-12-01T00:00:00Z")
    assert diff(store, snap, snap) == []


# ---------------------------------------------------------------- thresholds


def test_max_instances_counts_each_matching_region(store):
    config = cfg("""
[[thresholds]]
provider = "aws"
region = "us-*"
max_instances = 2
""")
    snap = snapshot(*(record(f"i-{n}") for n in range(3)),
                    *(record(f"i-w{n}", WEST) for n in range(5)))
    found = diff(store, snap, snap, config=config)
    threshold = one(found, "count_threshold")
    assert (threshold.region, threshold.extra["count"]) == ("us-east-1", 3)
    assert threshold.extra["rule"] == {"metric": "max_instances", "limit": 2, "provider": "aws",
                                       "account": "*", "region": "us-*", "per": "region"}
    assert threshold.techniques == ("T1535", "T1578.002")
    assert threshold.extra["data_component"] == "Instance Enumeration"


def test_max_instances_at_the_limit_is_fine(store):
    config = cfg("[[thresholds]]\nmax_instances = 3")
    snap = snapshot(*(record(f"i-{n}") for n in range(3)))
    assert diff(store, snap, snap, config=config) == []


@pytest.mark.parametrize(("per", "account"), [("account", "111111111111"), ("provider", "*")])
def test_per_account_or_provider_adds_up_regions(store, per, account):
    config = cfg(f'[[thresholds]]\nper = "{per}"\nmax_instances = 3')
    snap = snapshot(*(record(f"i-{n}") for n in range(2)),
                    *(record(f"i-w{n}", WEST) for n in range(2)))
    threshold = one(diff(store, snap, snap, config=config), "count_threshold")
    assert (threshold.account, threshold.region, threshold.extra["count"]) == (account, "*", 4)
    assert threshold.extra["rule"]["per"] == per


def test_max_created_per_diff(store):
    config = cfg("[[thresholds]]\nmax_created = 1")
    found = diff(store, snapshot(), snapshot(record("i-1"), record("i-2"), record("i-3", WEST)),
                 config=config)
    threshold = one(found, "count_threshold")
    assert (threshold.region, threshold.extra["count"]) == ("us-east-1", 2)
    assert threshold.extra["data_component"] == "Instance Creation"
    assert "2 instances created" in threshold.detail


def test_mass_deletion_maps_to_t1485(store):
    config = cfg("[[thresholds]]\nmax_deleted = 2")
    old = snapshot(*(record(f"i-{n}") for n in range(3)), record("i-w", WEST))
    found = diff(store, old, snapshot(), config=config)
    threshold = one(found, "count_threshold")
    assert threshold.techniques == ("T1485", "T1578.003")
    assert threshold.extra["data_component"] == "Instance Deletion"
    deleted = {f.instance_id: f.techniques for f in found if f.kind == "instance_deleted"}
    assert deleted["i-0"] == ("T1578.003", "T1485")
    assert deleted["i-w"] == ("T1578.003",)  # its region stayed under the limit


def test_deletions_in_a_failed_region_count_for_nothing(store):
    config = cfg("[[thresholds]]\nmax_deleted = 0")
    old = snapshot(*(record(f"i-{n}") for n in range(3)))
    new = snapshot(scopes={EAST: Outcome.FAILED, WEST: Outcome.OK})
    found = diff(store, old, new, config=config)
    assert kinds(found) == [("coverage_gap", "aws/111111111111/us-east-1")]


# ---------------------------------------------------------------- images


IMAGES = 'approved_images = {aws = ["ami-golden-*", "ami-1"]}'


def test_creation_from_an_unapproved_image(store):
    found = diff(store, snapshot(), snapshot(record("i-ok", image="ami-golden-42"),
                                             record("i-bad", image="ami-evil")),
                 config=cfg(IMAGES))
    created = {f.instance_id: f.techniques for f in found if f.kind == "instance_created"}
    assert created == {"i-ok": ("T1578.002",), "i-bad": ("T1578.002", "T1204.003")}
    bad = one(found, "unapproved_image")
    assert bad.instance_id == "i-bad"
    assert bad.techniques == ("T1204.003",)
    assert bad.changes[0].to_dict() == {"path": "image", "old": None, "new": "ami-evil"}
    assert bad.extra["rule"] == {"approved_images": ["ami-golden-*", "ami-1"]}


def test_an_unknown_image_is_not_approved(store):
    found = diff(store, snapshot(), snapshot(record("i-x", image=None)), config=cfg(IMAGES))
    assert one(found, "unapproved_image").extra["image"] is None


def test_existing_instances_and_other_providers_are_not_judged(store):
    scopes = {EAST: Outcome.OK, GCP: Outcome.OK}
    old = snapshot(record("i-old", image="ami-evil"), scopes=scopes)
    new = snapshot(record("i-old", image="ami-evil"), record("vm-1", GCP, image="debian"),
                   scopes=scopes)
    found = diff(store, old, new, config=cfg(IMAGES))
    assert kinds(found) == [("instance_created", "vm-1")]


def test_re_image_with_an_unapproved_image(store):
    a = record("i-1", image="ami-1")
    found = diff(store, snapshot(a), snapshot(replace(a, image="ami-evil")), config=cfg(IMAGES))
    assert one(found, "unapproved_image").changes[0].old == "ami-1"


# ---------------------------------------------------------------- justification


TICKETS = """
justification_tag = "change-ticket"
justification_pattern = "CHG-[0-9]+"
"""


def test_a_change_carrying_a_ticket_is_justified_and_still_reported(store):
    a = record("i-1")
    b = replace(a, instance_type="m5.large", tags={**a.tags, "Change-Ticket": "CHG-123"})
    found = diff(store, snapshot(a), snapshot(b), config=cfg(TICKETS))
    modified = one(found, "instance_modified")
    assert modified.severity is Severity.INFO
    assert modified.extra["justified"] == {"ticket": "CHG-123", "tag": "Change-Ticket",
                                           "severity": "medium"}
    assert modified.techniques == ("T1578.004",)


def test_a_ticket_not_matching_the_pattern_justifies_nothing(store):
    a = record("i-1")
    b = replace(a, instance_type="m5.large", tags={**a.tags, "change-ticket": "later"})
    modified = one(diff(store, snapshot(a), snapshot(b), config=cfg(TICKETS)),
                   "instance_modified")
    assert modified.severity is Severity.MEDIUM
    assert modified.extra["justified"] is None


def test_created_and_unapproved_image_findings_take_the_ticket(store):
    config = cfg(TICKETS + IMAGES)
    found = diff(store, snapshot(), snapshot(record(
        "i-1", image="ami-evil", tags={"change-ticket": "CHG-9"})), config=config)
    assert {f.kind: (f.severity, f.extra["justified"]["ticket"]) for f in found} == {
        "instance_created": (Severity.INFO, "CHG-9"),
        "unapproved_image": (Severity.INFO, "CHG-9"),
    }


def test_deletions_and_estate_findings_are_never_justified(store):
    config = cfg(TICKETS + 'expected_regions = {aws = ["us-east-1"]}')
    old = snapshot(record("i-1", tags={"change-ticket": "CHG-1"}),
                   record("i-w", WEST, tags={"change-ticket": "CHG-2"}))
    found = diff(store, old, snapshot(record("i-w", WEST, tags={"change-ticket": "CHG-2"})),
                 config=config)
    assert {f.kind: f.extra["justified"] for f in found} == {
        "instance_deleted": None, "unused_region": None}


def test_without_a_justification_tag_every_finding_says_not_justified(store):
    a = record("i-1", tags={"change-ticket": "CHG-1"})
    found = diff(store, snapshot(a), snapshot(replace(a, instance_type="m5.large")))
    assert one(found, "instance_modified").extra["justified"] is None


# ---------------------------------------------------------------- severity and vocabulary


def test_severity_overrides_per_kind(store):
    config = cfg('[severity]\ninstance_created = "high"\ncoverage_gap = "high"')
    found = diff(store, snapshot(), snapshot(record("i-1"), scopes={EAST: Outcome.OK,
                                                                    WEST: Outcome.SKIPPED}),
                 config=config)
    assert {f.kind: f.severity for f in found} == {"instance_created": Severity.HIGH,
                                                   "coverage_gap": Severity.HIGH}


def test_every_finding_carries_techniques_data_component_and_justified(store):
    a = record("i-1", root_disk="vol-1")
    config = cfg(TICKETS + IMAGES + EXPECTED + "[[thresholds]]\nmax_instances = 0")
    old = snapshot(a, record("i-gone"), record("i-stop"))
    new = snapshot(replace(a, root_disk="vol-2"), record("i-new", WEST, image="ami-x"),
                   record("i-stop", state=State.STOPPED), scopes={EAST: Outcome.OK,
                                                                  WEST: Outcome.OK,
                                                                  TOKYO: Outcome.FAILED})
    old = replace(old, scopes=new.scopes[:2] + (replace(new.scopes[2], outcome=Outcome.OK),))
    found = diff(store, old, new, config=config)
    assert {f.kind for f in found} == set(rules.KINDS) - {"instance_modified",
                                                          "instance_started"}
    for f in found:
        data = f.to_dict()
        assert data["data_component"] in rules.DATA_COMPONENT.values()
        assert "justified" in data
        if f.kind != "coverage_gap":
            assert f.techniques, f.kind


def test_evaluate_without_config_or_context_keeps_working():
    finding = Finding("instance_created", Severity.INFO, "aws", "1", "us-east-1", "i-1",
                      "aws:1:i-1")
    (out,) = rules.evaluate([finding])
    assert (out.severity, out.techniques, out.extra["justified"]) == (
        Severity.MEDIUM, ("T1578.002",), None)


def test_rules_load_only_what_they_need():
    created = Finding("instance_created", Severity.INFO, "aws", "1", "r", "i-1", "aws:1:i-1")
    modified = replace(created, kind="instance_modified", key="aws:1:i-2")
    deleted = replace(created, kind="instance_deleted", key="aws:1:i-3")
    assert rules.needs_history([created, modified, deleted]) == {"aws:1:i-2"}
    assert rules.needs_records([created, modified, deleted], rules.RulesConfig()) == set()
    assert rules.needs_records([created, modified, deleted], cfg(IMAGES)) == {"aws:1:i-1"}
    assert rules.needs_records([created, modified, deleted], cfg(TICKETS)) == {
        "aws:1:i-1", "aws:1:i-2"}


# ---------------------------------------------------------------- configuration


def test_the_rules_table_becomes_config_rules():
    config = parse({"rules": {"justification_tag": "ticket",
                              "thresholds": [{"max_deleted": 5}]}}, "b.toml")
    assert isinstance(config.rules, rules.RulesConfig)
    assert config.rules.thresholds[0].max_deleted == 5
    assert parse({}, "b.toml").rules is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("typo = 1", "test.toml: rules.typo: unknown key"),
        ('expected_regions = {aws = "us-east-1"}', "rules.expected_regions.aws: expected a list"),
        ('expected_regions = {oci = ["x"]}', "rules.expected_regions.oci: unknown provider"),
        ('approved_images = ["ami-1"]', "rules.approved_images: expected a table"),
        ('justification_pattern = "x"', "rules.justification_pattern: needs justification_tag"),
        ('justification_tag = "t"\njustification_pattern = "("',
         "rules.justification_pattern: not a regular expression"),
        ('justification_tag = ""', "rules.justification_tag: must not be empty"),
        ('[severity]\ninstance_created = "critical"', "rules.severity.instance_created: expected"),
        ('[severity]\ninstance_exploded = "high"', "rules.severity.instance_exploded: unknown "
                                                   "finding kind"),
        ('[[thresholds]]\nprovider = "aws"', "rules.thresholds[0]: set at least one"),
        ("[[thresholds]]\nmax_deleted = -1", "rules.thresholds[0].max_deleted: expected an "
                                             "integer of 0 or more"),
        ('[[thresholds]]\nmax_created = "5"', "rules.thresholds[0].max_created: expected an "
                                              "integer"),
        ('[[thresholds]]\nper = "zone"\nmax_created = 1', "rules.thresholds[0].per: expected one"),
        ("[[thresholds]]\nmax_created = 1\ncount = 2", "rules.thresholds[0].count: unknown key"),
    ],
)
def test_bad_rules_configuration_names_file_and_key(text, message):
    with pytest.raises(ConfigError) as exc:
        cfg(text)
    assert message in str(exc.value)


def test_defaults_apply_when_keys_are_absent():
    config = cfg("")
    assert config == rules.RulesConfig()
    threshold = cfg("[[thresholds]]\nmax_instances = 1").thresholds[0]
    assert (threshold.provider, threshold.account, threshold.region, threshold.per) == (
        "*", "*", "*", "region")


def test_the_commented_example_in_the_example_configuration_is_valid():
    from pathlib import Path

    text = (Path(__file__).parent.parent / "config" / "baseliner.example.toml").read_text()
    section = text[text.index("\n[rules]"):].split("\n# ----")[0]
    active = "\n".join(re.sub(r"^# (?=(\[|[a-z_]+ = ))", "", line)
                       for line in section.splitlines())
    config = parse(tomllib.loads(active), "example").rules
    assert config.expected_regions["aws"] == ("us-east-1", "eu-*")
    assert config.thresholds[0].max_deleted == 10
    assert config.severity["instance_stopped"] is Severity.INFO


def test_a_region_disabled_in_the_baseline_counts_as_empty(store):
    from baseliner.model import REGION_NOT_ENABLED, ScopeResult

    base = snapshot(record("i-east"), scopes={EAST: Outcome.OK})
    base = replace(base, scopes=base.scopes + (
        ScopeResult(TOKYO, Outcome.SKIPPED, f"{REGION_NOT_ENABLED} (opt-in)"),))
    ids = write(store, base)
    store.set_baseline(ids[0], "alice", "approved", "2026-12-01T00:00:00Z")
    found = diff(store, base, snapshot(record("i-east"), record("i-x", TOKYO),
                                       scopes={EAST: Outcome.OK, TOKYO: Outcome.OK}))
    assert one(found, "unused_region").extra["instances"] == ["i-x"]
    assert one(found, "instance_created").instance_id == "i-x"
    assert not [f for f in found if f.kind == "coverage_gap"]
