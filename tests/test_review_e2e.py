"""Drift rules, baselines, history and the report, end to end: the baseliner command against a
local moto server (one account, a few regions), changing the estate between collections."""

from __future__ import annotations

import json
from pathlib import Path

from baseliner.cli import main

from .aws_fakes import ACCOUNT_A, Proxy, ec2, launch

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


def write_config(tmp_path: Path, rules: str = "", regions: list[str] = REGIONS[:2]) -> Path:
    path = tmp_path / "baseliner.toml"
    path.write_text(f"""
[store]
path = "{tmp_path / 'store.db'}"

[aws]
regions = {json.dumps(regions)}
max_workers = 4
max_attempts = 1

[rules]
{rules}
""")
    return path


def run(capsys, config: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--quiet", "--config", str(config), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def collect(capsys, config: Path) -> int:
    code, out, err = run(capsys, config, "collect", "--format", "json")
    assert code in (0, 3), err
    return json.loads(out)["id"]


def diff(capsys, config: Path, *argv: str) -> list[dict]:
    code, out, err = run(capsys, config, "diff", *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)["findings"]


def by_kind(findings: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in findings:
        out.setdefault(f["kind"], []).append(f)
    return out


def test_type_and_tags_changed_then_changed_back_is_a_revert(aws, tmp_path, capsys):
    east = ec2(aws, "us-east-1")
    web = launch(east, 1, instance_type="t3.micro", name="web")[0]
    config = write_config(tmp_path)
    first = collect(capsys, config)

    east.stop_instances(InstanceIds=[web])
    east.modify_instance_attribute(InstanceId=web, InstanceType={"Value": "t3.xlarge"})
    east.create_tags(Resources=[web], Tags=[{"Key": "Owner", "Value": "mallory"}])
    east.start_instances(InstanceIds=[web])
    collect(capsys, config)
    assert [f["kind"] for f in diff(capsys, config)] == ["instance_modified"]

    east.stop_instances(InstanceIds=[web])
    east.modify_instance_attribute(InstanceId=web, InstanceType={"Value": "t3.micro"})
    east.delete_tags(Resources=[web], Tags=[{"Key": "Owner"}])
    east.start_instances(InstanceIds=[web])
    third = collect(capsys, config)

    (revert,) = diff(capsys, config)
    assert revert["kind"] == "instance_reverted"
    assert revert["instance_id"] == web
    assert revert["severity"] == "high"
    assert revert["techniques"] == ["T1578.004"]
    assert revert["data_component"] == "Instance Modification"
    assert revert["revert"]["snapshot"]["id"] == first
    assert revert["justified"] is None
    assert {"path": "instance_type", "old": "t3.xlarge", "new": "t3.micro"} in revert["changes"]
    assert {"path": "tags.Owner", "old": "mallory", "new": None} in revert["changes"]

    # a stop and a start are lifecycle, never a revert
    east.stop_instances(InstanceIds=[web])
    collect(capsys, config)
    assert [f["kind"] for f in diff(capsys, config)] == ["instance_stopped"]
    east.start_instances(InstanceIds=[web])
    collect(capsys, config)
    assert [f["kind"] for f in diff(capsys, config)] == ["instance_started"]

    code, out, _ = run(capsys, config, "history", web, "--format", "json")
    assert code == 0
    timeline = json.loads(out)
    assert [e["event"] for e in timeline["events"]] == [
        "first_seen", "modified", "reverted", "stopped", "started"]
    assert timeline["events"][2]["snapshot"] == third
    assert timeline["revisions"] == 2 and timeline["present_in_latest"] is True
    code, out, _ = run(capsys, config, "history", f"aws:{ACCOUNT_A}:{web}")
    assert code == 0 and "reverted" in out and "configuration of revision 1" in out


def test_instances_outside_expected_regions(aws, tmp_path, capsys):
    launch(ec2(aws, "us-east-1"), 1)
    stray = launch(ec2(aws, "eu-west-1"), 2)
    config = write_config(tmp_path, 'expected_regions = {aws = ["us-east-1"]}')
    collect(capsys, config)
    collect(capsys, config)
    (unused,) = diff(capsys, config)
    assert unused["kind"] == "unused_region"
    assert (unused["account"], unused["region"]) == (ACCOUNT_A, "eu-west-1")
    assert unused["instances"] == sorted(stray)
    assert unused["techniques"] == ["T1535"]

    code, out, _ = run(capsys, config, "report", "--format", "json", "--fail-on", "high")
    assert code == 1
    summary = json.loads(out)
    assert {(s["region"], s["instances"], tuple(s["flags"])) for s in summary["scopes"]} == {
        ("us-east-1", 1, ()), ("eu-west-1", 2, ("unused_region",))}
    assert summary["empty_scopes"] == 0
    code, out, _ = run(capsys, config, "report")
    assert code == 0 and "unused region" in out and "eu-west-1" in out


def test_regions_empty_in_the_baseline_but_never_a_failed_one(aws, tmp_path, capsys,
                                                             monkeypatch):
    launch(ec2(aws, "us-east-1"), 1)
    config = write_config(tmp_path, regions=REGIONS)
    with Proxy(aws) as proxy:
        proxy.failing = {"ap-southeast-2"}
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        baseline = collect(capsys, config)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    code, _, err = run(capsys, config, "baseline", "set", str(baseline), "--reason", "CAB-7",
                       "--by", "alice")
    assert code == 0
    assert "is partial" in err  # approving a partial snapshot says what it cannot vouch for

    ireland = launch(ec2(aws, "eu-west-1"), 1)[0]
    launch(ec2(aws, "ap-southeast-2"), 1)  # failed in the baseline: not known to be empty
    collect(capsys, config)
    found = by_kind(diff(capsys, config, "--against", "baseline"))
    (unused,) = found["unused_region"]
    assert unused["region"] == "eu-west-1" and unused["instances"] == [ireland]
    assert unused["rule"] == {"empty_in_baseline": baseline}
    assert {f["region"] for f in found["coverage_gap"]} == {"ap-southeast-2"}


def test_count_thresholds_and_mass_deletion(aws, tmp_path, capsys):
    east = ec2(aws, "us-east-1")
    first = launch(east, 3)
    config = write_config(tmp_path, """
[[rules.thresholds]]
region = "us-*"
max_instances = 3
max_created = 2
max_deleted = 1
""")
    collect(capsys, config)
    launch(east, 3)
    east.terminate_instances(InstanceIds=first[:2])
    collect(capsys, config)
    found = by_kind(diff(capsys, config))
    metrics = {f["rule"]["metric"]: f for f in found["count_threshold"]}
    assert set(metrics) == {"max_instances", "max_created", "max_deleted"}
    assert (metrics["max_instances"]["count"], metrics["max_created"]["count"],
            metrics["max_deleted"]["count"]) == (4, 3, 2)
    assert metrics["max_deleted"]["techniques"] == ["T1485", "T1578.003"]
    assert metrics["max_created"]["techniques"] == ["T1535", "T1578.002"]
    assert all(f["techniques"] == ["T1578.003", "T1485"] for f in found["instance_deleted"])
    assert len(found["instance_created"]) == 3

    code, out, _ = run(capsys, config, "diff", "--fail-on", "high")
    assert code == 1
    assert "max_deleted = 1" in out


def test_creation_from_an_unapproved_image(aws, tmp_path, capsys):
    east = ec2(aws, "us-east-1")
    images = [i["ImageId"] for i in east.describe_images(Owners=["amazon"])["Images"][:2]]
    config = write_config(tmp_path, f'approved_images = {{aws = ["{images[0]}"]}}')
    launch(east, 1, image=images[1])  # existing before: not judged
    collect(capsys, config)
    good = launch(east, 1, image=images[0])[0]
    bad = launch(east, 1, image=images[1])[0]
    collect(capsys, config)
    found = by_kind(diff(capsys, config))
    (unapproved,) = found["unapproved_image"]
    assert unapproved["instance_id"] == bad
    assert unapproved["image"] == images[1]
    assert unapproved["techniques"] == ["T1204.003"]
    created = {f["instance_id"]: f["techniques"] for f in found["instance_created"]}
    assert created == {good: ["T1578.002"], bad: ["T1578.002", "T1204.003"]}


def test_a_justified_change_is_info_and_still_reported(aws, tmp_path, capsys):
    east = ec2(aws, "us-east-1")
    planned, unplanned = launch(east, 2, instance_type="t3.micro")
    config = write_config(tmp_path, 'justification_tag = "change-ticket"\n'
                                    'justification_pattern = "CHG-[0-9]+"')
    collect(capsys, config)
    for instance, ticket in ((planned, "CHG-42"), (unplanned, "soon")):
        east.stop_instances(InstanceIds=[instance])
        east.modify_instance_attribute(InstanceId=instance, InstanceType={"Value": "m5.large"})
        east.create_tags(Resources=[instance], Tags=[{"Key": "change-ticket", "Value": ticket}])
        east.start_instances(InstanceIds=[instance])
    collect(capsys, config)
    found = {f["instance_id"]: f for f in diff(capsys, config)}
    assert found[planned]["kind"] == "instance_modified"
    assert found[planned]["severity"] == "info"
    assert found[planned]["justified"] == {"ticket": "CHG-42", "tag": "change-ticket",
                                           "severity": "medium"}
    assert found[unplanned]["severity"] == "medium"
    assert found[unplanned]["justified"] is None

    code, out, _ = run(capsys, config, "diff")
    assert code == 0
    assert out.index("MEDIUM (1)") < out.index("JUSTIFIED (1)") < out.index(planned)
    assert "ticket CHG-42 (was medium)" in out
    code, out, _ = run(capsys, config, "diff", "--format", "markdown")
    assert "### Justified (1)" in out and f"`{planned}`" in out


def test_baseline_commands_and_diff_against_it(aws, tmp_path, capsys):
    east = ec2(aws, "us-east-1")
    launch(east, 1)
    config = write_config(tmp_path)
    first = collect(capsys, config)
    code, _, err = run(capsys, config, "diff", "--against", "baseline")
    assert code == 2 and err.count("\n") == 1 and "no baseline" in err

    code, out, _ = run(capsys, config, "baseline", "set", "--reason", "reviewed in CAB-7",
                       "--by", "alice", "--format", "json")
    assert code == 0
    assert json.loads(out)["baseline"]["snapshot_id"] == first
    added = launch(east, 1)[0]
    collect(capsys, config)
    latest = collect(capsys, config)
    assert diff(capsys, config) == []  # nothing changed since the previous snapshot
    data_out = run(capsys, config, "diff", "--against", "baseline", "--format", "json")[1]
    data = json.loads(data_out)
    assert (data["old"]["id"], data["new"]["id"]) == (first, latest)
    assert data["old"]["baseline"]["reason"] == "reviewed in CAB-7"
    assert [(f["kind"], f["instance_id"]) for f in data["findings"]] == [
        ("instance_created", added)]
    code, out, _ = run(capsys, config, "baseline", "show")
    assert code == 0 and "reviewed in CAB-7" in out and "alice" in out
    code, _, err = run(capsys, config, "diff", "--against", "baseline", "1", "2")
    assert code == 2 and "NEW only" in err
