"""What counts as configuration: the one place that lists volatile fields.

A record's *fingerprint* hashes its configuration only. Run state, timestamps, addresses
that change on stop/start and provider etags/fingerprints are left out, so a stop and a
start never make an instance "modified" (lifecycle is not configuration) and a revert can
be recognised by an equal fingerprint.
"""

from __future__ import annotations

from typing import Any

from .model import InstanceRecord, content_hash

VOLATILE_FIELDS = frozenset({"state", "launch_time", "public_ips"})
"""Fields of InstanceRecord that are not configuration."""

VOLATILE_RAW_KEYS = frozenset(
    {
        # AWS
        "State",
        "StateReason",
        "StateTransitionReason",
        "LaunchTime",
        "AttachTime",
        "UsageOperationUpdateTime",
        "PublicIpAddress",
        "PublicDnsName",
        "Association",
        # Google Cloud ("Unknown CPU Platform" while stopped; the host moves on restart)
        "status",
        "cpuPlatform",
        "resourceStatus",
        "startRestricted",
        "statusMessage",
        "lastStartTimestamp",
        "lastStopTimestamp",
        "lastSuspendedTimestamp",
        "fingerprint",
        "labelFingerprint",
        "natIP",
        # Azure (systemData's lastModifiedAt changes on every write, so a revert could
        # never match an older fingerprint)
        "systemData",
        "instanceView",
        "powerState",
        "provisioningState",
        "etag",
        "publicIps",
        "fqdns",
    }
)
"""Keys of a provider document that are dropped at any depth before hashing or diffing."""


SHADOWED_RAW_PATHS: dict[str, frozenset[str]] = {
    "aws": frozenset(
        {
            "InstanceId",
            "InstanceType",
            "ImageId",
            "Tags",
            "SecurityGroups",
            "VpcId",
            "SubnetId",
            "IamInstanceProfile",
            "KeyName",
            "PrivateIpAddress",
            "PrivateDnsName",
        }
    ),
    "gcp": frozenset(
        {
            "id",
            "name",
            "machineType",
            "labels",
            "tags",
            "serviceAccounts",
            "zone",
            "sourceMachineImage",
        }
    ),
    "azure": frozenset(
        {
            "name",
            "tags",
            "identity",
            "zones",
            "location",
            "privateIps",
            "properties.vmId",
            "properties.hardwareProfile.vmSize",
            "properties.storageProfile.imageReference",
            "properties.osProfile.adminUsername",
            "vmId",
            "hardwareProfile.vmSize",
            "storageProfile.imageReference",
            "osProfile.adminUsername",
        }
    ),
}
"""Provider document paths (dotted, from the root) already shown by a normalised field: a
change report names ``instance_type`` once instead of also naming ``raw.InstanceType``.
When no normalised field changed, these paths are reported after all, so a change is never
reported without its detail."""


def strip_volatile(value: Any) -> Any:
    """``value`` without VOLATILE_RAW_KEYS, at any depth (scalars are not copied)."""
    if type(value) is dict:
        return {
            k: strip_volatile(v) if type(v) in _CONTAINERS else v
            for k, v in value.items()
            if k not in VOLATILE_RAW_KEYS
        }
    if type(value) is list:
        return [strip_volatile(v) if type(v) in _CONTAINERS else v for v in value]
    return value


_CONTAINERS = (dict, list)


def config_view(record: InstanceRecord) -> dict[str, Any]:
    """The record as configuration: volatile fields and volatile raw keys removed."""
    data = record.to_dict()
    for name in VOLATILE_FIELDS:
        data.pop(name, None)
    data["raw"] = strip_volatile(data["raw"])
    return data


def fingerprint(record: InstanceRecord) -> str:
    return content_hash(config_view(record))

