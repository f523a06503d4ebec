"""Amazon EC2: every enabled region of every configured or discovered account.

Per account: one boto3 session (ambient, a named profile, or an assumed role),
``sts:GetCallerIdentity`` for the account id and partition, ``ec2:DescribeRegions`` with
``AllRegions`` to learn which regions are enabled. Per (account, region): the
``DescribeInstances`` paginator. Permissions needed: ``sts:GetCallerIdentity``,
``ec2:DescribeRegions``, ``ec2:DescribeInstances``, ``sts:AssumeRole`` on the roles, and
``organizations:ListAccounts`` for discovery.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..config import AwsAccount, AwsConfig, Config
from ..errors import InputError, ProviderError
from ..model import ALL, REGION_NOT_ENABLED, InstanceRecord, Outcome, Scope, ScopeResult, State
from ..redact import redact
from . import Plan, UnitResult, WorkUnit

logger = logging.getLogger(__name__)

PROVIDER = "aws"

STATE_MAP = {
    "pending": State.PENDING,
    "running": State.RUNNING,
    "shutting-down": State.STOPPING,
    "stopping": State.STOPPING,
    "stopped": State.STOPPED,
    "terminated": State.TERMINATED,
}

HOME_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}
"""Region used for the account-level calls when the session names none."""

_REGION_IN_ZONE = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)")
_ACCOUNT_REGION_NAME = re.compile(r"(\d{12})[-_.]([a-z]{2}(?:-[a-z]+)+-\d+)")
_DISABLED_REGION_CODES = {"OptInRequired", "AuthFailure", "UnrecognizedClientException"}


# ---------------------------------------------------------------- normalise (pure)


def normalise(raw: dict[str, Any], scope: Scope) -> InstanceRecord:
    """A redacted, JSON-safe ``DescribeInstances`` instance document to a record."""
    instance_id = raw["InstanceId"]
    if not isinstance(instance_id, str) or not instance_id:
        raise ValueError(f"InstanceId must be a non-empty string, got {instance_id!r}")
    tags = {str(t["Key"]): str(t.get("Value", "")) for t in raw.get("Tags") or []}
    interfaces = raw.get("NetworkInterfaces") or []
    private_ips = [raw.get("PrivateIpAddress")]
    public_ips = [raw.get("PublicIpAddress")]
    for interface in interfaces:
        for address in interface.get("PrivateIpAddresses") or []:
            private_ips.append(address.get("PrivateIpAddress"))
            public_ips.append((address.get("Association") or {}).get("PublicIp"))
        public_ips.append((interface.get("Association") or {}).get("PublicIp"))
    root_device = raw.get("RootDeviceName")
    root_disk = next(
        (
            (m.get("Ebs") or {}).get("VolumeId")
            for m in raw.get("BlockDeviceMappings") or []
            if m.get("DeviceName") == root_device
        ),
        None,
    )
    return InstanceRecord(
        key=f"aws:{scope.account}:{instance_id}",
        provider=PROVIDER,
        account=scope.account,
        region=scope.region,
        zone=(raw.get("Placement") or {}).get("AvailabilityZone"),
        instance_id=instance_id,
        name=tags.get("Name"),
        state=STATE_MAP.get((raw.get("State") or {}).get("Name", ""), State.UNKNOWN),
        instance_type=raw.get("InstanceType"),
        image=raw.get("ImageId"),
        launch_time=raw.get("LaunchTime"),
        private_ips=_unique(private_ips),
        public_ips=_unique(public_ips),
        network={"vpc": raw.get("VpcId"), "subnet": raw.get("SubnetId")},
        security_groups=tuple(sorted({str(g["GroupId"]) for g in raw.get("SecurityGroups") or []})),
        tags=tags,
        identity=(raw.get("IamInstanceProfile") or {}).get("Arn"),
        key_name=raw.get("KeyName"),
        root_disk=root_disk,
        raw=raw,
    )


def region_of_zone(zone: str) -> str | None:
    """``us-east-1a`` → ``us-east-1``; Local and Wavelength Zones (``us-west-2-lax-1a``) too."""
    match = _REGION_IN_ZONE.match(zone or "")
    return match.group(1) if match else None


def is_live(raw: dict[str, Any]) -> bool:
    """Terminated instances linger in DescribeInstances for a while; they are not inventory."""
    return (raw.get("State") or {}).get("Name") != "terminated"


def jsonable(value: Any) -> Any:
    """boto3 documents hold datetimes; stored documents hold ISO strings (as the AWS CLI prints)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _unique(values: list[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


# ---------------------------------------------------------------- saved exports


def export_detect(doc: Any) -> bool:
    return isinstance(doc, dict) and "Reservations" in doc


def export_read(doc: Any, path: Path) -> tuple[set[Scope], list[InstanceRecord]]:
    scopes: set[Scope] = set()
    records: list[InstanceRecord] = []
    if doc.get("NextToken"):
        # A page of a longer listing (--max-items, --page-size): what is missing from it
        # would read as deleted.
        raise InputError(f"{path}: a truncated export (it has a NextToken); save every page")
    named = None
    if (m := _ACCOUNT_REGION_NAME.search(path.name)) is not None:
        named = Scope(PROVIDER, m.group(1), m.group(2))
        scopes.add(named)
    reservations = doc["Reservations"]
    if not isinstance(reservations, list):
        raise InputError(f"{path}: Reservations is not a list")
    for i, reservation in enumerate(reservations):
        where = f"{path}: Reservations[{i}]"
        if not isinstance(reservation, dict):
            raise InputError(f"{where}: not an object")
        account = reservation.get("OwnerId")
        if not isinstance(account, str) or not account:
            raise InputError(f"{where}: missing OwnerId")
        for j, instance in enumerate(reservation.get("Instances") or []):
            if not isinstance(instance, dict) or "InstanceId" not in instance:
                raise InputError(f"{where}.Instances[{j}]: not an instance (no InstanceId)")
            zone = (instance.get("Placement") or {}).get("AvailabilityZone", "")
            region = region_of_zone(zone)
            if region is None:
                raise InputError(
                    f"{where}.Instances[{j}]: no region in Placement.AvailabilityZone {zone!r}"
                )
            scope = Scope(PROVIDER, account, region)
            if named is not None and scope != named:
                # The name claims a complete listing of one scope: content from another
                # (describe-instances run without --region) would turn the named scope's
                # instances into false deletions.
                raise InputError(
                    f"{where}.Instances[{j}]: in {account}/{region}, but the file name says "
                    f"{named.account}/{named.region}"
                )
            scopes.add(scope)
            if is_live(instance):
                records.append(normalise(redact(instance), scope))
    return scopes, records


# ---------------------------------------------------------------- plan and fetch (I/O)


def plan(config: Config) -> Plan:
    import boto3  # noqa: F401  (imported here so that other providers never pay for it)

    aws = config.aws_or_default()
    client_config = _client_config(aws)
    out = Plan()
    targets: list[AwsAccount] = list(aws.accounts)
    if aws.organization is not None:
        try:
            targets.extend(_organization_accounts(aws, client_config))
        except ProviderError as exc:
            out.results.append(ScopeResult(Scope(PROVIDER, ALL, ALL), Outcome.FAILED, str(exc)))
    if not targets and aws.organization is None:
        targets.append(AwsAccount(name="ambient"))
    with ThreadPoolExecutor(max_workers=max(1, min(aws.max_workers, len(targets) or 1))) as pool:
        for units, results in pool.map(lambda t: _plan_account(t, aws, client_config), targets):
            out.units.extend(units)
            out.results.extend(results)
    return out


def _client_config(aws: AwsConfig) -> Any:
    from botocore.config import Config as BotoConfig

    return BotoConfig(
        retries={"mode": "standard", "total_max_attempts": aws.max_attempts},
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max(10, aws.max_workers),
        user_agent_extra="baseliner",
    )


def _organization_accounts(aws: AwsConfig, client_config: Any) -> list[AwsAccount]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    assert aws.organization is not None
    session = boto3.Session()
    try:
        identity = session.client("sts", config=client_config).get_caller_identity()
        partition = identity["Arn"].split(":")[1]
        me = identity["Account"]
        orgs = session.client("organizations", config=client_config,
                              region_name=session.region_name or HOME_REGION.get(partition))
        accounts = []
        for page in orgs.get_paginator("list_accounts").paginate():
            for account in page["Accounts"]:
                if account.get("Status", "ACTIVE") != "ACTIVE":
                    continue
                if account["Id"] in aws.organization.exclude:
                    continue
                if account["Id"] == me:
                    accounts.append(AwsAccount(name=account["Id"]))
                else:
                    arn = f"arn:{partition}:iam::{account['Id']}:role/{aws.organization.role_name}"
                    accounts.append(AwsAccount(name=account["Id"], role_arn=arn))
    except (BotoCoreError, ClientError) as exc:
        raise ProviderError(f"organization account discovery failed: {_describe(exc)}") from None
    known = {a.account_hint for a in aws.accounts}
    logger.info("organization lists %d active accounts", len(accounts))
    return [a for a in accounts if a.account_hint not in known]


def _session(target: AwsAccount, client_config: Any) -> Any:
    import boto3

    if target.profile:
        return boto3.Session(profile_name=target.profile)
    if target.role_arn:
        sts = boto3.Session().client("sts", config=client_config)
        params = {"RoleArn": target.role_arn, "RoleSessionName": "baseliner"}
        if target.external_id:
            params["ExternalId"] = target.external_id
        credentials = sts.assume_role(**params)["Credentials"]
        return boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
    return boto3.Session()


def _plan_account(
    target: AwsAccount, aws: AwsConfig, client_config: Any
) -> tuple[list[WorkUnit], list[ScopeResult]]:
    from botocore.exceptions import BotoCoreError, ClientError

    started = time.monotonic()
    try:
        session = _session(target, client_config)
        identity = session.client("sts", config=client_config).get_caller_identity()
        account = identity["Account"]
        partition = identity["Arn"].split(":")[1]
        home = session.region_name or HOME_REGION.get(partition, "us-east-1")
        ec2 = session.client("ec2", region_name=home, config=client_config)
        regions = ec2.describe_regions(AllRegions=True)["Regions"]
    except (BotoCoreError, ClientError) as exc:
        message = f"account {target.name}: {_describe(exc)}"
        scope = Scope(PROVIDER, target.account_hint, ALL)
        return [], [ScopeResult(scope, Outcome.FAILED, message, 0, time.monotonic() - started)]

    lock = threading.Lock()
    units: list[WorkUnit] = []
    results: list[ScopeResult] = []
    known = {}
    for region in regions:
        name = region["RegionName"]
        if _partition_of(session, name) == partition:
            known[name] = region.get("OptInStatus", "opt-in-not-required")
    wanted = aws.regions if aws.regions is not None else sorted(known)
    for name in wanted:
        scope = Scope(PROVIDER, account, name)
        status = known.get(name)
        if status is None:
            results.append(ScopeResult(scope, Outcome.SKIPPED,
                                       f"not a region of partition {partition}"))
        elif status == "not-opted-in":
            results.append(ScopeResult(scope, Outcome.SKIPPED, f"{REGION_NOT_ENABLED} (opt-in)"))
        else:
            units.append(WorkUnit(
                label=str(scope),
                scopes=(scope,),
                run=_region_runner(session, lock, scope, client_config, opt_in=status),
            ))
    return units, results


_PARTITION_PREFIXES = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"),
                       ("us-iso-", "aws-iso"), ("eu-isoe-", "aws-iso-e"), ("us-isof-", "aws-iso-f"))


def _partition_of(session: Any, region: str) -> str:
    """The partition of ``region``; one newer than the installed botocore is placed by its
    name, so a region AWS just launched is still collected (never silently dropped)."""
    try:
        return session.get_partition_for_region(region)
    except Exception:  # botocore raises UnknownRegionError for names it does not know
        for prefix, partition in _PARTITION_PREFIXES:
            if region.startswith(prefix):
                return partition
        return "aws"


def _region_runner(session: Any, lock: threading.Lock, scope: Scope, client_config: Any,
                   opt_in: str) -> Any:
    def run() -> UnitResult:
        from botocore.exceptions import BotoCoreError, ClientError

        started = time.monotonic()
        with lock:  # boto3 sessions are not thread-safe; the clients they make are
            client = session.client("ec2", region_name=scope.region, config=client_config)
        records = []
        try:
            for raw in fetch(client):
                records.append(normalise(redact(raw), scope))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if opt_in == "opted-in" and code in _DISABLED_REGION_CODES or code == "OptInRequired":
                return UnitResult(scopes=[ScopeResult(
                    scope, Outcome.SKIPPED, f"{REGION_NOT_ENABLED} ({code})", 0,
                    time.monotonic() - started)])
            raise ProviderError(_describe(exc)) from None
        except BotoCoreError as exc:
            raise ProviderError(_describe(exc)) from None
        duration = time.monotonic() - started
        return UnitResult(records, [ScopeResult(scope, Outcome.OK, "", len(records), duration)])

    return run


def fetch(client: Any) -> Iterator[dict[str, Any]]:
    """Every non-terminated instance document of one region, JSON-safe, unredacted."""
    paginator = client.get_paginator("describe_instances")
    for page in paginator.paginate(PaginationConfig={"PageSize": 1000}):
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                if is_live(instance):
                    yield jsonable(instance)


def _describe(exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "")
        return f"{error.get('Code', 'Error')} in {operation}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
