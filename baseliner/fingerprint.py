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

VOLATILE_TOP_LEVEL_KEYS = frozenset(
    {
        # AWS (top level only: Monitoring.State, say, is configuration)
        "State",
        "StateReason",
        "StateTransitionReason",
        "LaunchTime",
        "UsageOperationUpdateTime",
        "PublicIpAddress",
        "PublicDnsName",
        # Google Cloud ("Unknown CPU Platform" while stopped; the host moves on restart)
        "status",
        "statusMessage",
        "cpuPlatform",
        "resourceStatus",
        "startRestricted",
        "lastStartTimestamp",
        "lastStopTimestamp",
        "lastSuspendedTimestamp",
        # Azure, as `az vm list -d` prints it
        "powerState",
        "publicIps",
        "fqdns",
    }
)
"""Keys of a provider document dropped at its top level before hashing or diffing."""

VOLATILE_RAW_KEYS = frozenset(
    {
        # AWS: attachment times, and the public address of an interface (gone on stop)
        "AttachTime",
        "Association",
        # Google Cloud: etags and the ephemeral external address
        "fingerprint",
        "labelFingerprint",
        "natIP",
        # Azure (systemData's lastModifiedAt changes on every write, so a revert could
        # never match an older fingerprint)
        "systemData",
        "instanceView",
        "provisioningState",
        "etag",
    }
)
"""Keys of a provider document dropped at any depth before hashing or diffing."""

VOLATILE_NESTED_KEYS = {"MetadataOptions": frozenset({"State"})}
"""Keys dropped one level below a top-level key (``MetadataOptions.State`` is "pending"
until a change is applied)."""


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


def strip_volatile(raw: dict[str, Any]) -> dict[str, Any]:
    """A provider document without its volatile keys (scalars are not copied)."""
    out = {}
    for key, value in raw.items():
        if key in VOLATILE_TOP_LEVEL_KEYS or key in VOLATILE_RAW_KEYS:
            continue
        nested = VOLATILE_NESTED_KEYS.get(key)
        if nested is not None and type(value) is dict:
            value = {k: v for k, v in value.items() if k not in nested}
        out[key] = _strip(value) if type(value) in _CONTAINERS else value
    return out


def _strip(value: Any) -> Any:
    if type(value) is dict:
        return {
            k: _strip(v) if type(v) in _CONTAINERS else v
            for k, v in value.items()
            if k not in VOLATILE_RAW_KEYS
        }
    if type(value) is list:
        return [_strip(v) if type(v) in _CONTAINERS else v for v in value]
    return value


_CONTAINERS = (dict, list)


def config_view(record: InstanceRecord | dict[str, Any]) -> dict[str, Any]:
    """The record (or its ``to_dict()``) as configuration: volatile fields and volatile raw
    keys removed."""
    data = record.to_dict() if isinstance(record, InstanceRecord) else record
    view = {k: v for k, v in data.items() if k not in VOLATILE_FIELDS and k != "raw"}
    view["raw"] = strip_volatile(data["raw"])
    return view


def fingerprint(record: InstanceRecord | dict[str, Any]) -> str:
    return content_hash(config_view(record))

