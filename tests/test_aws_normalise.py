"""The EC2 normaliser on a saved DescribeInstances document, and fingerprint volatility."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from baseliner.fingerprint import fingerprint
from baseliner.model import Scope, State
from baseliner.providers import aws

DATA = Path(__file__).parent / "data" / "aws" / "describe-instances.json"
SCOPE = Scope("aws", "111111111111", "us-east-1")


@pytest.fixture
def raw() -> dict:
    return json.loads(DATA.read_text())["Reservations"][0]["Instances"][0]


def test_every_field_of_the_record_is_set(raw):
    record = aws.normalise(raw, SCOPE)
    assert record.key == "aws:111111111111:i-0a11111111111111a"
    assert (record.provider, record.account, record.region) == ("aws", "111111111111", "us-east-1")
    assert record.zone == "us-east-1a"
    assert record.instance_id == "i-0a11111111111111a"
    assert record.name == "web-1"
    assert record.state is State.RUNNING
    assert record.instance_type == "t3.medium"
    assert record.image == "ami-0abcdef1234567890"
    assert record.launch_time == "2026-11-02T09:14:03+00:00"
    assert record.private_ips == ("10.0.1.10", "10.0.1.11")
    assert record.public_ips == ("54.80.1.10", "54.80.1.99")
    assert record.network == {"vpc": "vpc-0123456789abcdef0", "subnet": "subnet-0123456789abcdef0"}
    assert record.security_groups == ("sg-0a1b2c3d",)
    assert record.tags == {"Name": "web-1", "Owner": "platform"}
    assert record.identity == "arn:aws:iam::111111111111:instance-profile/web"
    assert record.key_name == "ops-2026"
    assert record.root_disk == "vol-0a11111111111111a"
    assert record.raw is raw
    assert all(value not in (None, "", (), {}) for value in record.to_dict().values())


def test_a_missing_instance_id_fails_loudly(raw):
    del raw["InstanceId"]
    with pytest.raises(KeyError):
        aws.normalise(raw, SCOPE)


def test_unknown_state_maps_to_unknown(raw):
    raw["State"] = {"Name": "hibernating-ish"}
    assert aws.normalise(raw, SCOPE).state is State.UNKNOWN


def _stop_start(raw: dict) -> dict:
    moved = copy.deepcopy(raw)
    moved["State"] = {"Code": 80, "Name": "stopped"}
    moved["StateReason"] = {"Code": "Client.UserInitiatedShutdown", "Message": "user"}
    moved["StateTransitionReason"] = "User initiated (2026-12-01 10:00:00 GMT)"
    moved.pop("PublicIpAddress")
    moved["PublicDnsName"] = ""
    moved["NetworkInterfaces"][0].pop("Association")
    moved["NetworkInterfaces"][0]["PrivateIpAddresses"][1].pop("Association")
    moved["LaunchTime"] = "2026-12-01T11:00:00+00:00"
    moved["NetworkInterfaces"][0]["Attachment"]["AttachTime"] = "2026-12-01T11:00:00+00:00"
    return moved


def test_stop_and_start_leave_the_fingerprint_unchanged(raw):
    before = aws.normalise(raw, SCOPE)
    stopped = aws.normalise(_stop_start(raw), SCOPE)
    restarted_raw = _stop_start(raw)
    restarted_raw["State"] = {"Code": 16, "Name": "running"}
    restarted_raw["PublicIpAddress"] = "3.3.3.3"
    restarted = aws.normalise(restarted_raw, SCOPE)
    assert fingerprint(before) == fingerprint(stopped) == fingerprint(restarted)
    assert stopped.state is State.STOPPED


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("InstanceType", "t3.2xlarge"),
        ("ImageId", "ami-0ffffffffffffffff"),
        ("SourceDestCheck", False),
        ("KeyName", "someone-elses"),
    ],
)
def test_a_configuration_change_changes_the_fingerprint(raw, field, value):
    changed = copy.deepcopy(raw)
    changed[field] = value
    assert fingerprint(aws.normalise(raw, SCOPE)) != fingerprint(aws.normalise(changed, SCOPE))


def test_a_swapped_root_volume_changes_the_fingerprint(raw):
    changed = copy.deepcopy(raw)
    changed["BlockDeviceMappings"][0]["Ebs"]["VolumeId"] = "vol-0restoredfromsnap"
    record = aws.normalise(changed, SCOPE)
    assert record.root_disk == "vol-0restoredfromsnap"
    assert fingerprint(record) != fingerprint(aws.normalise(raw, SCOPE))


@pytest.mark.parametrize(
    ("zone", "region"),
    [
        ("us-east-1a", "us-east-1"),
        ("us-west-2-lax-1a", "us-west-2"),
        ("us-east-1-wl1-bos-wlz-1", "us-east-1"),
        ("us-gov-west-1b", "us-gov-west-1"),
        ("cn-north-1a", "cn-north-1"),
        ("ap-southeast-2c", "ap-southeast-2"),
    ],
)
def test_region_of_zone_handles_local_and_wavelength_zones(zone, region):
    assert aws.region_of_zone(zone) == region


def test_nested_state_that_is_configuration_changes_the_fingerprint(raw):
    changed = copy.deepcopy(raw)
    changed["Monitoring"] = {"State": "enabled"}
    assert fingerprint(aws.normalise(raw, SCOPE)) != fingerprint(aws.normalise(changed, SCOPE))


def test_metadata_options_being_applied_is_not_a_change(raw):
    pending = copy.deepcopy(raw)
    pending["MetadataOptions"]["State"] = "pending"
    assert fingerprint(aws.normalise(raw, SCOPE)) == fingerprint(aws.normalise(pending, SCOPE))
