"""The baseliner command end to end against a local moto server (two accounts, three regions)."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

from baseliner.cli import main

from .aws_fakes import ACCOUNT_A, ACCOUNT_B, Proxy, ec2, launch

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


def write_config(tmp_path: Path, regions: list[str] | str = REGIONS, attempts: int = 2) -> Path:
    regions_toml = json.dumps(regions)
    path = tmp_path / "baseliner.toml"
    path.write_text(
        f"""
[store]
path = "{tmp_path / 'store.db'}"

[aws]
regions = {regions_toml}
max_workers = 8
max_attempts = {attempts}

[[aws.accounts]]
name = "ambient"

[[aws.accounts]]
name = "second"
role_arn = "arn:aws:iam::{ACCOUNT_B}:role/BaselinerReadOnly"
"""
    )
    return path


def run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["--quiet", *argv])
    return code, capsys.readouterr().out


def diff_json(capsys, config: Path, *refs: str) -> dict:
    code, out = run(capsys, "--config", str(config), "diff", *refs, "--format", "json")
    assert code == 0, out
    return json.loads(out)


def kinds(findings: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in findings:
        out.setdefault(f["kind"], set()).add(f["instance_id"] or f["region"])
    return out


def test_collect_change_collect_diff_reports_every_kind(aws, tmp_path, capsys):
    a_east, a_west = ec2(aws, "us-east-1"), ec2(aws, "eu-west-1")
    b_sydney = ec2(aws, "ap-southeast-2", ACCOUNT_B)
    resized, retagged, stopping, terminated = launch(a_east, 4, name="web")
    starting = launch(a_west, 1, name="batch")[0]
    a_west.stop_instances(InstanceIds=[starting])
    b_instance = launch(b_sydney, 1, instance_type="m5.large", name="reporting")[0]

    config = write_config(tmp_path)
    code, out = run(capsys, "--config", str(config), "collect", "--format", "json")
    assert code == 0, out
    first = json.loads(out)
    assert first["status"] == "complete"
    assert first["instance_count"] == 6
    assert {(s["account"], s["region"]) for s in first["scopes"]} == {
        (a, r) for a in (ACCOUNT_A, ACCOUNT_B) for r in REGIONS
    }
    db = tmp_path / "store.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600

    created = launch(b_sydney, 1, name="miner", instance_type="p3.2xlarge")[0]
    a_east.terminate_instances(InstanceIds=[terminated])
    a_east.modify_instance_attribute(InstanceId=resized, InstanceType={"Value": "t3.large"})
    a_east.create_tags(Resources=[retagged], Tags=[{"Key": "Owner", "Value": "mallory"}])
    a_east.stop_instances(InstanceIds=[stopping])
    a_west.start_instances(InstanceIds=[starting])

    code, out = run(capsys, "--config", str(config), "collect")
    assert code == 0
    assert "snapshot 2: complete" in out

    result = diff_json(capsys, config)
    assert result["old"]["id"] == 1 and result["new"]["id"] == 2
    found = kinds(result["findings"])
    assert found == {
        "instance_created": {created},
        "instance_deleted": {terminated},
        "instance_modified": {resized, retagged},
        "instance_stopped": {stopping},
        "instance_started": {starting},
    }
    by_id = {(f["kind"], f["instance_id"]): f for f in result["findings"]}
    resize = by_id["instance_modified", resized]
    assert {"path": "instance_type", "old": "t3.micro", "new": "t3.large"} in resize["changes"]
    assert resize["techniques"] == ["T1578.004"]
    tag = by_id["instance_modified", retagged]
    assert tag["changes"] == [{"path": "tags.Owner", "old": None, "new": "mallory"}]
    assert by_id["instance_created", created]["account"] == ACCOUNT_B
    assert by_id["instance_created", created]["techniques"] == ["T1578.002"]
    assert by_id["instance_deleted", terminated]["techniques"] == ["T1578.003"]
    assert b_instance not in {f["instance_id"] for f in result["findings"]}

    code, out = run(capsys, "--config", str(config), "show", resized, "--format", "json")
    assert code == 0
    shown = json.loads(out)
    assert shown["instance_type"] == "t3.large" and shown["snapshot"] == 2
    assert shown["key"] == f"aws:{ACCOUNT_A}:{resized}"


def test_failed_region_never_reports_deletions(aws, tmp_path, capsys, monkeypatch):
    east, west = ec2(aws, "us-east-1"), ec2(aws, "eu-west-1")
    launch(east, 2)
    doomed = launch(west, 2)
    config = write_config(tmp_path, attempts=2)
    assert run(capsys, "--config", str(config), "collect")[0] == 0

    west.terminate_instances(InstanceIds=doomed[:1])
    new_east = launch(east, 1)[0]
    with Proxy(aws) as proxy:
        proxy.failing = {"eu-west-1"}
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, out = run(capsys, "--config", str(config), "collect", "--format", "json")
    assert code == 3, out
    second = json.loads(out)
    assert second["status"] == "partial"
    failed = {(s["account"], s["region"]) for s in second["scopes"] if s["outcome"] == "failed"}
    assert failed == {(ACCOUNT_A, "eu-west-1"), (ACCOUNT_B, "eu-west-1")}
    assert proxy.failed_requests >= 2 * 2  # both accounts, every attempt

    result = diff_json(capsys, config)
    assert result["new"]["status"] == "partial"
    gaps = [f for f in result["findings"] if f["kind"] == "coverage_gap"]
    assert {(g["account"], g["region"]) for g in gaps} == failed
    assert all("ServiceUnavailable" in g["detail"] for g in gaps)
    gap_a = next(g for g in gaps if g["account"] == ACCOUNT_A)
    assert gap_a["coverage"]["unverified_missing"] == 2
    assert [f for f in result["findings"] if f["kind"] == "instance_deleted"] == []
    assert kinds(result["findings"])["instance_created"] == {new_east}


def test_all_regions_skips_disabled_regions_and_other_partitions(aws, tmp_path, capsys):
    launch(ec2(aws, "sa-east-1"), 1)
    config = write_config(tmp_path, regions="all")
    code, out = run(capsys, "--config", str(config), "collect", "--format", "json")
    assert code == 0, out
    scopes = json.loads(out)["scopes"]
    regions = {s["region"] for s in scopes}
    assert not any(r.startswith(("cn-", "us-gov-")) for r in regions)
    skipped = {s["region"] for s in scopes if s["outcome"] == "skipped"}
    ok = {s["region"] for s in scopes if s["outcome"] == "ok"}
    assert "sa-east-1" in ok and "us-east-1" in ok
    assert skipped and all(s["detail"] == "region not enabled (opt-in)"
                           for s in scopes if s["outcome"] == "skipped")
    assert json.loads(out)["instance_count"] == 1


def test_unassumable_role_is_a_failed_account_not_an_empty_one(aws, tmp_path, capsys,
                                                                 monkeypatch):
    launch(ec2(aws, "us-east-1", ACCOUNT_B), 1)
    config = write_config(tmp_path)
    assert run(capsys, "--config", str(config), "collect")[0] == 0
    with Proxy(aws) as proxy:
        proxy.failing = {"us-east-1"}  # STS and the account-level calls are signed there
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        code, _ = run(capsys, "--config", str(config), "collect")
    assert code == 3
    findings = diff_json(capsys, config)["findings"]
    assert [f for f in findings if f["kind"] == "instance_deleted"] == []
    gaps = {(f["account"], f["region"]): f for f in findings if f["kind"] == "coverage_gap"}
    # Every region of both accounts, plus the ambient account's own failure, which carries the
    # error (its id is unknown when even sts:GetCallerIdentity fails).
    assert set(gaps) == {(a, r) for a in (ACCOUNT_A, ACCOUNT_B) for r in REGIONS} | {
        ("ambient", "*")
    }
    assert "ServiceUnavailable" in gaps["ambient", "*"]["detail"]
    assert "ServiceUnavailable" in gaps[ACCOUNT_B, "eu-west-1"]["detail"]


def test_snapshots_lists_and_diff_refs_resolve(aws, tmp_path, capsys):
    config = write_config(tmp_path, regions=["us-east-1"])
    for _ in range(3):
        assert run(capsys, "--config", str(config), "collect")[0] == 0
    code, out = run(capsys, "--config", str(config), "snapshots", "--format", "json")
    listed = json.loads(out)
    assert [s["id"] for s in listed] == [1, 2, 3]
    assert all(s["status"] == "complete" and s["taken_at"] for s in listed)
    result = diff_json(capsys, config, "latest~2", "latest")
    assert (result["old"]["id"], result["new"]["id"]) == (1, 3)
    code, out = run(capsys, "--config", str(config), "diff", "latest~5")
    assert code == 2


def test_partial_snapshot_write_leaves_no_trace(aws, tmp_path, capsys):
    config = write_config(tmp_path, regions=["us-east-1"])
    launch(ec2(aws, "us-east-1"), 3)
    assert run(capsys, "--config", str(config), "collect")[0] == 0
    db = tmp_path / "store.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        members = conn.execute("SELECT COUNT(*) FROM members").fetchone()[0]
        assert members == 3
