"""Azure virtual machines: every configured or discovered subscription, all locations at once.

The subscription is the unit of work and of completeness. ARM lists a subscription's VMs in
one subscription-wide call, so a successful listing is complete for *every* location of the
subscription, not only for the locations where it found VMs. Per subscription:

1. ``GET /subscriptions/{id}/locations``: the locations the subscription can use;
2. ``virtual_machines.list_all(status_only="true")``: the power state of every VM (the plain
   listing never carries it), one paged walk;
3. ``virtual_machines.list_all()``: the VM models, one paged walk, merged with (2) by id.

That is ``1 + 2 x pages`` requests per subscription (3 for a subscription that fits in one
page), against ``1 + N`` for a per-VM ``instance_view`` call. The unit records an ``ok`` scope
for every physical location of (1) and every location a VM was seen in, so the last VM of a
location being deleted is reported as a deletion, not hidden behind a coverage gap. A failure
anywhere fails the whole subscription, ``Scope("azure", <subscription>, ALL)``.

Subscriptions come from ``[azure] subscriptions`` or, when none are configured, from
``GET /subscriptions`` (every subscription the credential can read; ``Disabled`` and
``Deleted`` ones are recorded as skipped). Role needed: ``Reader`` on each subscription (or on
a management group above them).

The provider never writes: a guard policy refuses any request other than GET, which also stops
azure-mgmt-core's automatic resource-provider registration.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import AzureConfig, Config
from ..errors import InputError, ProviderError
from ..model import ALL, InstanceRecord, Outcome, Scope, ScopeResult, State
from ..redact import redact
from . import Plan, UnitResult, WorkUnit

logger = logging.getLogger(__name__)

PROVIDER = "azure"

VM_TYPE_NAME = "Microsoft.Compute/virtualMachines"
VM_TYPE = VM_TYPE_NAME.lower()
"""Resource types are compared lower-cased: ARM does not promise their case."""

STATE_MAP = {
    "starting": State.PENDING,
    "running": State.RUNNING,
    "stopping": State.STOPPING,
    "deallocating": State.STOPPING,
    "stopped": State.STOPPED,
    "deallocated": State.STOPPED,
}
"""``PowerState/<code>`` of the instance view (or ``VM <code>`` of ``az vm list -d``)."""


@dataclass(frozen=True)
class AzureCloud:
    arm: str
    """Azure Resource Manager endpoint."""
    scope: str
    """OAuth scope of an ARM token."""
    authority: str
    """Microsoft Entra ID host that issues the tokens."""


CLOUDS = {
    "public": AzureCloud(
        "https://management.azure.com",
        "https://management.azure.com/.default",
        "login.microsoftonline.com",
    ),
    "china": AzureCloud(
        "https://management.chinacloudapi.cn",
        "https://management.chinacloudapi.cn/.default",
        "login.chinacloudapi.cn",
    ),
    "usgov": AzureCloud(
        "https://management.usgovcloudapi.net",
        "https://management.core.usgovcloudapi.net/.default",
        "login.microsoftonline.us",
    ),
}

LISTABLE_SUBSCRIPTION_STATES = frozenset({"enabled", "warned", "pastdue"})
"""Subscription states whose VMs still exist and can be read (Warned and PastDue subscriptions
keep running their VMs, so they are inventoried too)."""

SECRET_ENV = "AZURE_CLIENT_SECRET"
"""The client secret of a service principal is read from here, never from the config file."""

_SUBSCRIPTION_IN_ID = re.compile(r"^/subscriptions/([^/]+)/", re.IGNORECASE)
_REGISTER_URL = re.compile(r"/providers/([^/]+)/register\b", re.IGNORECASE)

_HINTS = {
    "AuthorizationFailed": "grant the credential the Reader role on the subscription",
    "SubscriptionNotFound": "the subscription does not exist or is not in the credential's tenant",
    "InvalidAuthenticationTokenTenant": "the token is for another tenant; set [azure] tenant_id",
    "ReadOnlyDisabledSubscription": "the subscription is disabled",
    "SubscriptionNotRegistered": "the subscription is disabled or not registered",
}


# ---------------------------------------------------------------- normalise (pure)


def normalise(raw: dict[str, Any], scope: Scope) -> InstanceRecord:
    """A redacted VM document to a record.

    Two shapes are accepted: the ARM wire JSON that the SDK models' ``as_dict()`` returns
    (settings under ``properties``), and the flattened one ``az vm list -d -o json`` prints
    (settings at the top level, plus ``powerState``, ``privateIps`` and ``publicIps``).
    """
    props = _properties(raw)
    vm_id = props["vmId"]
    if not isinstance(vm_id, str) or not vm_id:
        raise ValueError(f"vmId must be a non-empty string, got {vm_id!r}")
    hardware = props.get("hardwareProfile") or {}
    storage = props.get("storageProfile") or {}
    os_profile = props.get("osProfile") or {}
    code = power_state(raw)
    zones = raw.get("zones") or []
    return InstanceRecord(
        key=f"{PROVIDER}:{scope.account}:{vm_id}",
        provider=PROVIDER,
        account=scope.account,
        region=scope.region,
        zone=str(zones[0]) if zones else None,
        instance_id=vm_id,
        name=raw.get("name"),
        state=STATE_MAP.get(code or "", State.UNKNOWN),
        instance_type=hardware.get("vmSize"),
        image=image_of(storage.get("imageReference") or {}),
        launch_time=props.get("timeCreated"),
        private_ips=_address_list(raw.get("privateIps")),
        public_ips=_address_list(raw.get("publicIps")),
        network={"interfaces": _interface_ids(props.get("networkProfile") or {})},
        security_groups=(),  # NSGs hang on NICs and subnets; no VM document names them
        tags={str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
        identity=identity_of(raw.get("identity") or {}),
        key_name=os_profile.get("adminUsername"),
        root_disk=_root_disk(storage.get("osDisk") or {}),
        raw=raw,
    )


def _properties(raw: dict[str, Any]) -> dict[str, Any]:
    props = raw.get("properties")
    return props if isinstance(props, dict) else raw


def power_state(raw: dict[str, Any]) -> str | None:
    """``running``, ``deallocated``, ...: from the instance view, or ``az vm list -d``'s
    ``powerState`` (``VM running``); None when the document carries no run state."""
    top = raw.get("powerState")
    if isinstance(top, str) and top.strip():
        return top.strip().lower().removeprefix("vm ").strip()
    view = _properties(raw).get("instanceView") or raw.get("instanceView") or {}
    for status in view.get("statuses") or []:
        code = str(status.get("code") or "")
        if code.lower().startswith("powerstate/"):
            return code.split("/", 1)[1].lower()
    return None


def image_of(reference: dict[str, Any]) -> str | None:
    """A gallery or custom image id, else ``publisher:offer:sku:version`` (the version that
    was actually used when the reference says ``latest``)."""
    for key in ("id", "sharedGalleryImageId", "communityGalleryImageId"):
        if reference.get(key):
            return str(reference[key])
    if not reference.get("publisher"):
        return None
    version = reference.get("version")
    if str(version).lower() == "latest" and reference.get("exactVersion"):
        version = reference["exactVersion"]
    parts = (reference.get("publisher"), reference.get("offer"), reference.get("sku"), version)
    return ":".join(str(p or "") for p in parts)


def identity_of(identity: dict[str, Any]) -> str | None:
    """``system:<principalId>`` and ``user:<identity resource id>`` parts, comma-separated."""
    kind = str(identity.get("type") or "")
    parts = []
    if "systemassigned" in kind.lower().replace(" ", ""):
        parts.append(f"system:{identity.get('principalId') or ''}")
    for resource_id in sorted(identity.get("userAssignedIdentities") or {}):
        parts.append(f"user:{resource_id}")
    return ", ".join(parts) or None


def _root_disk(os_disk: dict[str, Any]) -> str | None:
    managed = (os_disk.get("managedDisk") or {}).get("id")
    unmanaged = (os_disk.get("vhd") or {}).get("uri")
    return managed or unmanaged or os_disk.get("name")


def _interface_ids(network_profile: dict[str, Any]) -> list[str]:
    return [n["id"] for n in network_profile.get("networkInterfaces") or [] if n.get("id")]


def _address_list(value: Any) -> tuple[str, ...]:
    """``az vm list -d`` joins addresses with commas; a list is accepted too."""
    if isinstance(value, str):
        value = value.split(",")
    return tuple(dict.fromkeys(v.strip() for v in value or () if v and v.strip()))


def region_of(location: str) -> str:
    """ARM prints ``westeurope``; some tools print ``West Europe``."""
    return location.replace(" ", "").lower()


def subscription_of(resource_id: str) -> str | None:
    match = _SUBSCRIPTION_IN_ID.match(resource_id or "")
    return match.group(1).lower() if match else None


def merge_power_states(
    models: Iterable[dict[str, Any]], statuses: Iterable[dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Each VM model with ``properties.instanceView`` from the status-only listing.

    Matched by resource id, case-insensitively (ARM does not promise the case of ids). A VM
    created between the two listings has no status (its state is unknown); a status whose VM
    is gone from the model listing is dropped.
    """
    views = {
        str(doc.get("id", "")).lower(): (doc.get("properties") or {}).get("instanceView")
        for doc in statuses
    }
    for doc in models:
        view = views.get(str(doc.get("id", "")).lower())
        if view is not None:
            doc = {**doc, "properties": {**(doc.get("properties") or {}), "instanceView": view}}
        yield doc


# ---------------------------------------------------------------- saved exports


def export_detect(doc: Any) -> bool:
    """``az vm list [-d] -o json``: a non-empty list of VM resources.

    An empty list cannot be told apart from an empty ``gcloud ... list``; it is not claimed.
    """
    return isinstance(doc, list) and any(
        isinstance(vm, dict) and str(vm.get("type", "")).lower() == VM_TYPE for vm in doc
    )


def export_read(doc: Any, path: Path) -> tuple[set[Scope], list[InstanceRecord]]:
    """Subscription from each VM's resource id, region from its location.

    An export only tells which locations had VMs, so a location whose last VM went away
    between two exports is absent from the newer one: a coverage gap, never a deletion.
    """
    scopes: set[Scope] = set()
    records: list[InstanceRecord] = []
    for i, vm in enumerate(doc):
        where = f"{path}: [{i}]"
        if not isinstance(vm, dict) or str(vm.get("type", "")).lower() != VM_TYPE:
            raise InputError(f"{where}: not a virtual machine (type is not {VM_TYPE_NAME})")
        subscription = subscription_of(str(vm.get("id", "")))
        if subscription is None:
            raise InputError(f"{where}: no subscription in id {vm.get('id')!r}")
        location = vm.get("location")
        if not isinstance(location, str) or not location.strip():
            raise InputError(f"{where}: missing location")
        if not _properties(vm).get("vmId"):
            raise InputError(f"{where}: missing vmId")
        scope = Scope(PROVIDER, subscription, region_of(location))
        scopes.add(scope)
        records.append(normalise(redact(vm), scope))
    return scopes, records


# ---------------------------------------------------------------- plan and fetch (I/O)


def plan(
    config: Config,
    *,
    credential: Any | None = None,
    client_kwargs: dict[str, Any] | None = None,
) -> Plan:
    """One unit per subscription.

    ``credential`` (any object with ``get_token``) and ``client_kwargs`` (extra keyword
    arguments for every SDK client, e.g. ``connection_verify``) exist for tests: the default
    credential chain probes the instance metadata address, which a test must never reach.
    """
    azure = config.azure or AzureConfig()
    cloud = CLOUDS[azure.cloud]
    options = _client_options(azure, cloud, client_kwargs or {})
    out = Plan()
    try:
        if credential is None:
            credential = build_credential(azure, cloud)
        credential = SharedTokens(credential)
        if azure.subscriptions:
            targets = list(dict.fromkeys(s.lower() for s in azure.subscriptions))
        else:
            targets = _discover(credential, options, out.results)
    except ProviderError as exc:
        out.results.append(ScopeResult(Scope(PROVIDER, ALL, ALL), Outcome.FAILED, str(exc)))
        return out
    for subscription in targets:
        scope = Scope(PROVIDER, subscription, ALL)
        out.units.append(WorkUnit(
            label=f"{PROVIDER}/{subscription}",
            scopes=(scope,),
            run=_subscription_runner(subscription, credential, options),
        ))
    return out


def build_credential(azure: AzureConfig, cloud: AzureCloud) -> Any:
    """The azure-identity credential that ``[azure] credential`` names.

    ``client_secret`` (the default when tenant_id and client_id are both set) reads the secret
    from ``AZURE_CLIENT_SECRET``; ``default`` is DefaultAzureCredential (environment, workload
    identity, managed identity, Azure CLI, ...); ``cli`` uses the ``az login`` session;
    ``managed_identity`` the instance's identity (a user-assigned one when client_id is set).
    """
    from azure import identity

    kind = azure.credential or (
        "client_secret" if azure.tenant_id and azure.client_id else "default"
    )
    if kind == "client_secret":
        secret = os.environ.get(SECRET_ENV)
        if not secret:
            raise ProviderError(
                f"[azure] credential is client_secret (tenant_id {azure.tenant_id}, client_id "
                f"{azure.client_id}) but the environment variable {SECRET_ENV} is not set"
            )
        if not azure.tenant_id or not azure.client_id:
            raise ProviderError("[azure] credential client_secret needs tenant_id and client_id")
        return identity.ClientSecretCredential(
            azure.tenant_id, azure.client_id, secret, authority=cloud.authority
        )
    if kind == "cli":
        return identity.AzureCliCredential(tenant_id=azure.tenant_id)
    if kind == "managed_identity":
        if azure.client_id:
            return identity.ManagedIdentityCredential(client_id=azure.client_id)
        return identity.ManagedIdentityCredential()
    options: dict[str, Any] = {"authority": cloud.authority}
    if azure.client_id:
        options["managed_identity_client_id"] = azure.client_id
    if azure.tenant_id:
        options["workload_identity_tenant_id"] = azure.tenant_id
        options["interactive_browser_tenant_id"] = azure.tenant_id
    return identity.DefaultAzureCredential(**options)


class SharedTokens:
    """One token for every client of a run, refreshed five minutes before it expires.

    Each SDK client caches its own token, and a run builds two clients per subscription; an
    ``az login`` credential spawns the Azure CLI for every token, so without this a run over
    100 subscriptions would start it 200 times. Requests carrying ``claims`` (a
    conditional-access challenge) always go to the wrapped credential.
    """

    REFRESH_MARGIN = 300

    def __init__(self, credential: Any) -> None:
        self.credential = credential
        self._lock = threading.Lock()
        self._tokens: dict[tuple[Any, ...], Any] = {}

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        if kwargs.get("claims"):
            return self.credential.get_token(*scopes, **kwargs)
        key = (scopes, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        with self._lock:  # one fetch at a time: concurrent units wait for the same token
            token = self._tokens.get(key)
            if token is None or token.expires_on - self.REFRESH_MARGIN <= time.time():
                token = self._tokens[key] = self.credential.get_token(*scopes, **kwargs)
            return token


def _client_options(
    azure: AzureConfig, cloud: AzureCloud, extra: dict[str, Any]
) -> dict[str, Any]:
    retries = azure.max_attempts - 1
    options: dict[str, Any] = {
        "base_url": (azure.endpoint or cloud.arm).rstrip("/"),
        "credential_scopes": [cloud.scope],
        # azure-core's RetryPolicy retries 408/429/5xx and sleeps for Retry-After when given
        "retry_total": retries,
        "retry_status": retries,
        "retry_connect": retries,
        "retry_read": retries,
        "connection_timeout": 10,
        "read_timeout": 60,
        "user_agent": "baseliner",
    }
    options.update(extra)
    return options


def _read_only_policy() -> Any:
    """A pipeline policy that refuses anything but GET (and so provider auto-registration)."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class ReadOnlyPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            http = request.http_request
            if http.method.upper() in ("GET", "HEAD"):
                return
            if (match := _REGISTER_URL.search(http.url)) is not None:
                raise ProviderError(
                    f"the subscription is not registered for {match.group(1)} "
                    "(MissingSubscriptionRegistration); baseliner is read-only and never "
                    "registers resource providers"
                )
            raise ProviderError(f"refused {http.method} {http.url}: baseliner is read-only")

    return ReadOnlyPolicy()


def _subscription_client(credential: Any, options: dict[str, Any]) -> Any:
    from azure.mgmt.resource.subscriptions import SubscriptionClient

    return SubscriptionClient(credential, per_retry_policies=[_read_only_policy()], **options)


def _compute_client(credential: Any, subscription: str, options: dict[str, Any]) -> Any:
    from azure.mgmt.compute import ComputeManagementClient

    return ComputeManagementClient(
        credential, subscription, per_retry_policies=[_read_only_policy()], **options
    )


def _discover(credential: Any, options: dict[str, Any], results: list[ScopeResult]) -> list[str]:
    """Every readable subscription the credential sees; disabled ones become skipped scopes."""
    from azure.core.exceptions import AzureError

    targets = []
    try:
        with _subscription_client(credential, options) as client:
            for subscription in client.subscriptions.list():
                doc = subscription.as_dict()
                sub_id = str(doc["subscriptionId"]).lower()
                state = str(doc.get("state") or "Enabled")
                if state.lower() in LISTABLE_SUBSCRIPTION_STATES:
                    targets.append(sub_id)
                else:
                    results.append(ScopeResult(
                        Scope(PROVIDER, sub_id, ALL), Outcome.SKIPPED, f"subscription is {state}"
                    ))
    except AzureError as exc:
        raise ProviderError(f"subscription discovery failed: {describe(exc)}") from None
    logger.info("credential sees %d readable subscriptions (%d skipped)",
                len(targets), len(results))
    if not targets and not results:
        results.append(ScopeResult(
            Scope(PROVIDER, ALL, ALL), Outcome.SKIPPED, "the credential sees no subscription"
        ))
    return list(dict.fromkeys(targets))


def _subscription_runner(subscription: str, credential: Any, options: dict[str, Any]) -> Any:
    def run() -> UnitResult:
        from azure.core.exceptions import AzureError

        started = time.monotonic()
        records: list[InstanceRecord] = []
        try:
            with _subscription_client(credential, options) as subscriptions:
                locations = list_locations(subscriptions, subscription)
            with _compute_client(credential, subscription, options) as compute:
                for raw in fetch(compute):
                    scope = Scope(PROVIDER, subscription, region_of(raw["location"]))
                    records.append(normalise(redact(raw), scope))
        except AzureError as exc:
            raise ProviderError(f"subscription {subscription}: {describe(exc)}") from None
        duration = time.monotonic() - started
        counts = dict.fromkeys(locations, 0)
        for record in records:
            counts[record.region] = counts.get(record.region, 0) + 1
        return UnitResult(records, [
            ScopeResult(Scope(PROVIDER, subscription, region), Outcome.OK, "", n, duration)
            for region, n in sorted(counts.items())
        ])

    return run


def list_locations(client: Any, subscription: str) -> list[str]:
    """Physical locations of the subscription (logical ones such as ``europe`` hold no VM)."""
    names = []
    for location in client.subscriptions.list_locations(subscription):
        doc = location.as_dict()
        region_type = str((doc.get("metadata") or {}).get("regionType") or "Physical")
        if doc.get("name") and region_type.lower() == "physical":
            names.append(region_of(doc["name"]))
    return names


def fetch(compute: Any) -> Iterator[dict[str, Any]]:
    """Every VM document of the client's subscription, wire JSON, unredacted.

    Two paged walks: power states first (small documents, kept in memory), then the models,
    streamed and merged with them.
    """
    statuses = [vm.as_dict() for vm in compute.virtual_machines.list_all(status_only="true")]
    models = (vm.as_dict() for vm in compute.virtual_machines.list_all())
    yield from merge_power_states(models, statuses)


def describe(exc: Exception) -> str:
    """One line for an azure.core exception: the ARM error code, its message and a hint."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    status = getattr(exc, "status_code", None)
    code, message = _arm_error(exc)
    if isinstance(exc, HttpResponseError) and (code or status):
        text = f"{code or 'HTTP error'} (HTTP {status}): {message}"
        if code in _HINTS:
            text = f"{text.rstrip('.')}; {_HINTS[code]}"
    elif isinstance(exc, ClientAuthenticationError):
        text = f"authentication failed: {_one_line(getattr(exc, 'message', '') or str(exc))}"
    else:
        text = f"{type(exc).__name__}: {_one_line(getattr(exc, 'message', '') or str(exc))}"
    return text


def _arm_error(exc: Exception) -> tuple[str | None, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    response = getattr(exc, "response", None)
    if not code and response is not None:
        try:
            body = response.json()
        except Exception:  # any body that is not JSON: no ARM error to read
            body = None
        inner = body.get("error") if isinstance(body, dict) else None
        if isinstance(inner, dict):
            code, message = inner.get("code"), inner.get("message")
    if not message:
        message = getattr(exc, "reason", None) or getattr(exc, "message", None) or str(exc)
    return code, _one_line(str(message))


def _one_line(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
