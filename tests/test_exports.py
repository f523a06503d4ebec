"""Saved `aws ec2 describe-instances` exports as a source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baseliner.errors import InputError
from baseliner.model import Outcome, Scope
from baseliner.providers.exports import read_exports

SAMPLE = Path(__file__).parent.parent / "snapshots" / "sample"


def test_sample_directory_reads_accounts_regions_and_local_zones():
    result = read_exports([SAMPLE / "t1"])
    scopes = {r.scope: r for r in result.scopes}
    assert Scope("aws", "111111111111", "us-west-2") in scopes  # from us-west-2-lax-1a
    assert scopes[Scope("aws", "222222222222", "ap-southeast-2")].outcome is Outcome.OK
    lax = next(r for r in result.records if r.zone == "us-west-2-lax-1a")
    assert lax.region == "us-west-2"
    aws = [r for r in result.records if r.provider == "aws"]
    assert aws and all(r.account in ("111111111111", "222222222222") for r in aws)


def test_terminated_instances_are_not_inventory_but_their_scope_counts(tmp_path):
    t2 = read_exports([SAMPLE / "t2" / "111111111111-eu-west-1.json"])
    assert [r.name for r in t2.records] == ["bastion"]
    assert t2.scopes[0].instance_count == 1


def test_empty_export_records_its_scope_from_the_file_name(tmp_path):
    path = tmp_path / "123456789012-eu-north-1.json"
    path.write_text('{"Reservations": []}')
    result = read_exports([path])
    assert [(r.scope, r.outcome) for r in result.scopes] == [
        (Scope("aws", "123456789012", "eu-north-1"), Outcome.OK)
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"Reservations": 5}', "Reservations is not a list"),
        ('{"Reservations": [{"Instances": []}]}', "missing OwnerId"),
        ('{"Reservations": [{"OwnerId": "1", "Instances": [{"x": 1}]}]}', "no InstanceId"),
        ('{"Reservations": [{"OwnerId": "1", "Instances": [{"InstanceId": "i-1"}]}]}',
         "no region"),
        ('{"Reservations": [{"OwnerId": "1", "Instances": [{"InstanceId": "i-1", '
         '"Placement": {"AvailabilityZone": "us-east-1a"}, "Tags": [{"Value": "x"}]}]}]}',
         "malformed aws export"),
        ('[1, 2, 3]', "not a recognised export"),
    ],
)
def test_malformed_export_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        read_exports([path])
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(InputError, match="no such export"):
        read_exports([tmp_path / "nope.json"])
    with pytest.raises(InputError, match="holds no"):
        read_exports([tmp_path])


def test_secrets_in_tags_are_redacted_before_normalising(tmp_path):
    doc = json.loads((SAMPLE / "t1" / "222222222222-us-east-1.json").read_text())
    doc["Reservations"][0]["Instances"][0]["Tags"].append(
        {"Key": "bootstrap", "Value": "password=hunter2-very-secret"}
    )
    path = tmp_path / "222222222222-us-east-1.json"
    path.write_text(json.dumps(doc))
    record = read_exports([path]).records[0]
    assert "hunter2" not in json.dumps(record.to_dict())
    assert record.tags["bootstrap"].startswith("[redacted:")


def test_an_empty_cloud_cli_listing_adds_no_scope(tmp_path):
    empty = tmp_path / "gcp-empty.json"
    empty.write_text("[]")
    other = tmp_path / "123456789012-eu-north-1.json"
    other.write_text('{"Reservations": []}')
    result = read_exports([tmp_path])
    assert [r.scope for r in result.scopes] == [Scope("aws", "123456789012", "eu-north-1")]
    assert result.records == []


def _reservation(instance_id, zone="us-east-1a", owner="123456789012"):
    return {"OwnerId": owner, "Instances": [
        {"InstanceId": instance_id, "Placement": {"AvailabilityZone": zone},
         "State": {"Name": "running"}}]}


def test_a_truncated_export_is_refused_not_read_as_deletions(tmp_path):
    path = tmp_path / "123456789012-us-east-1.json"
    path.write_text(json.dumps({"Reservations": [_reservation("i-1")], "NextToken": "abc"}))
    with pytest.raises(InputError, match="truncated export"):
        read_exports([path])


def test_a_file_named_for_one_region_holding_another_is_refused(tmp_path):
    # 'aws ec2 describe-instances' run without --region, saved under the wrong name: the
    # named region would otherwise be "collected, empty" and its instances "deleted".
    path = tmp_path / "123456789012-us-east-1.json"
    path.write_text(json.dumps({"Reservations": [_reservation("i-1", "eu-west-1a")]}))
    with pytest.raises(InputError, match="the file name says 123456789012/us-east-1"):
        read_exports([path])


@pytest.mark.parametrize("bad_id", [None, "", 5, ["i-1"]])
def test_an_instance_id_that_is_not_a_string_is_refused(tmp_path, bad_id):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"Reservations": [_reservation(bad_id)]}))
    with pytest.raises(InputError, match="InstanceId"):
        read_exports([path])


def test_odd_tag_and_group_types_are_kept_as_text(tmp_path):
    doc = {"Reservations": [_reservation("i-1")]}
    instance = doc["Reservations"][0]["Instances"][0]
    instance["Tags"] = [{"Key": "ticket", "Value": 5}]
    instance["SecurityGroups"] = [{"GroupId": 7}]
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    [record] = read_exports([path]).records
    assert record.tags == {"ticket": "5"} and record.security_groups == ("7",)
