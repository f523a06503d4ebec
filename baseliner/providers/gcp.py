"""Google Compute Engine: every zone of every configured or discovered project.

One unit of work per project. Per project: one walk of ``instances.aggregatedList``
(``maxResults=500``, ``includeAllScopes=true``), i.e. ``ceil(instances / 500)`` calls and at
least one; nothing else. The regions come from the response itself: every zone the project
can see is a key of ``items`` (``zones/us-central1-a``), with its instances or with only a
``NO_RESULTS_ON_PAGE`` warning, so a region whose last instance was deleted is still
"collected, empty". Zones in ``unreachables`` (or whose scoped list carries an ``UNREACHABLE``
warning) make their region *failed*, never empty: a region with one unreachable zone cannot be
claimed complete.

Discovery (``[gcp.organization]``): Resource Manager v3 ``projects.search``, ACTIVE projects
only. With a ``parent``, ``parent:X`` matches direct children only, so the folder tree below
the parent is walked first (``folders.list``) and each container searched in turn.

Credentials: ``credentials_file`` (service account or external-account JSON) or Application
Default Credentials, with read-only scopes. A plain ``http://`` endpoint gets anonymous
credentials unless ``credentials_file`` is set: an OAuth token is never sent in clear text,
and ADC (which may probe the metadata server) is never consulted for a local emulator or fake.

Errors: HTTP 429, 403 ``rateLimitExceeded``/``userRateLimitExceeded``, 5xx and connection
errors are retried here with capped exponential backoff and jitter, ``max_attempts`` in all
per call (the client library's own retry is switched off so the bound is ours). Any other error
(403 access denied or API disabled, 404 unknown project, 401) fails the project's unit with
one clear line; the other projects go on.

Permissions: ``compute.instances.list`` (``roles/compute.viewer``); for discovery
``resourcemanager.projects.get``/``list`` and ``resourcemanager.folders.list``
(``roles/browser`` on the organization or folder).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, GcpConfig
from ..errors import ConfigError, InputError, ProviderError
from ..model import ALL, InstanceRecord, Outcome, Scope, ScopeResult, State
from ..redact import is_marker, marker, redact
from . import Plan, UnitResult, WorkUnit

__all__ = [
    "STATE_MAP",
    "Backoff",
    "Listing",
    "discover_projects",
    "export_detect",
    "export_read",
    "fetch",
    "normalise",
    "plan",
    "region_of_zone",
    "scope_results",
]

logger = logging.getLogger(__name__)

PROVIDER = "gcp"

STATE_MAP = {
    "PENDING": State.PENDING,  # Flex-start: waiting for capacity
    "PROVISIONING": State.PENDING,
    "STAGING": State.PENDING,
    "RUNNING": State.RUNNING,
    "PENDING_STOP": State.STOPPING,
    "STOPPING": State.STOPPING,
    "SUSPENDING": State.STOPPING,
    "DEPROVISIONING": State.STOPPING,
    "TERMINATED": State.STOPPED,  # GCP's TERMINATED is a stopped instance, still there
    "STOPPED": State.STOPPED,
    "SUSPENDED": State.SUSPENDED,
    "REPAIRING": State.UNKNOWN,
}

SCOPES = (
    "https://www.googleapis.com/auth/compute.readonly",
    "https://www.googleapis.com/auth/cloud-platform.read-only",
)
PAGE_SIZE = 500
"""The largest page ``aggregatedList`` serves."""
TIMEOUT = 60.0
"""Seconds per HTTP call."""
BASE_DELAY = 1.0
"""First backoff delay in seconds; doubled per attempt, capped at MAX_DELAY."""
MAX_DELAY = 32.0

_RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"}
)
_DISABLED_REASONS = frozenset({"accessNotConfigured", "SERVICE_DISABLED"})
_API_PATH = re.compile(r"^https?://[^/]+/compute/(?:v1|beta|alpha)/")
_SCOPE_KEY = re.compile(r"(?:^|/)(zones|regions)/([^/]+)$")
_PROJECT_ZONE = re.compile(r"(?:^|/)projects/([^/]+)/zones/([^/]+)")
_REQUEST_PREFIX = re.compile(r"^[A-Z]+ \S+: ")


# ---------------------------------------------------------------- normalise (pure)


def normalise(raw: dict[str, Any], scope: Scope) -> InstanceRecord:
    """A redacted instance document (camelCase, as gcloud prints it) to a record."""
    instance_id = raw["id"]
    if isinstance(instance_id, bool) or not isinstance(instance_id, str | int) or (
        not str(instance_id).isdigit()
    ):
        raise ValueError(f"id must be the numeric instance id, got {instance_id!r}")
    instance_id = str(instance_id)
    interfaces = raw.get("networkInterfaces") or []
    private_ips: list[str | None] = []
    public_ips: list[str | None] = []
    for interface in interfaces:
        private_ips += [interface.get("networkIP"), interface.get("ipv6Address")]
        public_ips += [c.get("natIP") for c in interface.get("accessConfigs") or []]
        public_ips += [c.get("externalIpv6") for c in interface.get("ipv6AccessConfigs") or []]
    primary = interfaces[0] if interfaces else {}
    boot = next((d for d in raw.get("disks") or [] if d.get("boot")), {})
    emails = [a["email"] for a in raw.get("serviceAccounts") or [] if a.get("email")]
    return InstanceRecord(
        key=f"gcp:{scope.account}:{instance_id}",
        provider=PROVIDER,
        account=scope.account,
        region=scope.region,
        zone=last_segment(raw["zone"]),
        instance_id=instance_id,
        name=raw["name"],
        state=STATE_MAP.get(raw.get("status", ""), State.UNKNOWN),
        instance_type=last_segment(raw.get("machineType")),
        image=_image(raw, boot),
        launch_time=raw.get("lastStartTimestamp") or raw.get("creationTimestamp"),
        private_ips=_unique(private_ips),
        public_ips=_unique(public_ips),
        network={
            "vpc": partial_url(primary.get("network")),
            "subnet": partial_url(primary.get("subnetwork")),
        },
        security_groups=tuple(sorted(set((raw.get("tags") or {}).get("items") or []))),
        tags={str(k): str(v) for k, v in (raw.get("labels") or {}).items()},
        identity=",".join(emails) or None,
        key_name=_ssh_keys(raw),
        root_disk=partial_url(boot.get("source")),
        raw=raw,
    )


def region_of_zone(zone: str) -> str:
    """``us-central1-a`` → ``us-central1`` (a zone is its region plus ``-<letter>``)."""
    return zone.rsplit("-", 1)[0] if "-" in zone else zone


def last_segment(url: str | None) -> str | None:
    """``…/zones/us-central1-a/machineTypes/e2-medium`` → ``e2-medium``."""
    return url.rsplit("/", 1)[-1] if url else None


def partial_url(url: str | None) -> str | None:
    """A full Compute URL to its partial form ``projects/p/zones/z/disks/d``.

    The partial form keeps the owning project, which matters for Shared VPC networks and for
    images and licenses published by another project.
    """
    return _API_PATH.sub("", url) if url else None


def _image(raw: dict[str, Any], boot: dict[str, Any]) -> str | None:
    """The best available statement of what the instance booted from.

    ``instances.list`` does not return the boot disk's ``sourceImage`` (that lives on the
    disk resource); it does return the boot disk's ``licenses``, which name the OS family
    (``projects/debian-cloud/global/licenses/debian-12-bookworm``). Preference: an image
    named in the document (documents from other tools may carry it), the machine image the
    instance was created from, then the first boot-disk license.
    """
    source = boot.get("sourceImage") or (boot.get("initializeParams") or {}).get("sourceImage")
    if source:
        return partial_url(source)
    if raw.get("sourceMachineImage"):
        return partial_url(raw["sourceMachineImage"])
    licenses = boot.get("licenses") or []
    return partial_url(licenses[0]) if licenses else None


def _ssh_keys(raw: dict[str, Any]) -> str | None:
    """GCP has no key pairs; the instance's ``ssh-keys`` metadata stands in, as its marker.

    The document is redacted already, so the value is a ``[redacted:…]`` marker: a changed
    key set changes ``key_name`` without the keys being kept. A value that somehow arrives
    unredacted is turned into the same marker redact() would make.
    """
    for item in (raw.get("metadata") or {}).get("items") or []:
        if item.get("key") == "ssh-keys" and item.get("value"):
            value = item["value"]
            return value if is_marker(value) else marker(value, "metadata.ssh-keys")
    return None


def _unique(values: list[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


def scope_results(
    project: str, listing: Listing, records: list[InstanceRecord], duration: float
) -> list[ScopeResult]:
    """One outcome per region the listing mentions: ok with its count, or failed.

    A region with any unreachable zone is failed (its reachable zones' records are kept,
    counted, but the region cannot be called complete).
    """
    counts = dict.fromkeys({region_of_zone(z) for z in listing.zones}, 0)
    for record in records:
        counts[record.region] = counts.get(record.region, 0) + 1
    failed: dict[str, list[str]] = {}
    for key, why in sorted(listing.unreachable.items()):
        kind, _, name = key.partition("/")
        region = region_of_zone(name) if kind == "zones" else name
        failed.setdefault(region, []).append(f"{key} {why}")
        counts.setdefault(region, 0)
    results = []
    whole = Scope(PROVIDER, project, ALL)
    if listing.unplaced:
        # An unreachable scope we cannot place could be any region: none is complete. The
        # regions are failed one by one too, as an exact outcome outranks a wildcard.
        detail = "unreachable scope(s) in no known region: " + ", ".join(listing.unplaced)
        results.append(ScopeResult(whole, Outcome.FAILED, detail, 0, duration))
        for region in counts:
            failed.setdefault(region, []).append(detail)
    elif not counts:
        detail = "the API listed no zone for this project; cannot tell what was covered"
        results.append(ScopeResult(whole, Outcome.FAILED, detail, 0, duration))
    for region in sorted(counts):
        scope = Scope(PROVIDER, project, region)
        if region in failed:
            detail = "region incomplete: " + "; ".join(failed[region])
            results.append(ScopeResult(scope, Outcome.FAILED, detail, counts[region], duration))
        else:
            results.append(ScopeResult(scope, Outcome.OK, "", counts[region], duration))
    return results


# ---------------------------------------------------------------- saved exports


def export_detect(doc: Any) -> bool:
    """``gcloud compute instances list --format=json``: a list of ``compute#instance``.

    An empty list names no project and is left unrecognised (``az vm list`` prints ``[]``
    too); the exports module reports it as such.
    """
    return isinstance(doc, list) and any(
        isinstance(item, dict) and item.get("kind") == "compute#instance" for item in doc
    )


def export_read(doc: Any, path: Path) -> tuple[set[Scope], list[InstanceRecord]]:
    scopes: set[Scope] = set()
    records: list[InstanceRecord] = []
    for i, item in enumerate(doc):
        where = f"{path}: [{i}]"
        if not isinstance(item, dict) or item.get("kind") != "compute#instance":
            raise InputError(f"{where}: not a compute#instance document")
        if "id" not in item or "name" not in item:
            raise InputError(f"{where}: instance without id or name")
        match = _PROJECT_ZONE.search(str(item.get("zone", ""))) or _PROJECT_ZONE.search(
            str(item.get("selfLink", ""))
        )
        if match is None:
            raise InputError(f"{where}: no project and zone in zone or selfLink")
        scope = Scope(PROVIDER, match.group(1), region_of_zone(match.group(2)))
        scopes.add(scope)
        records.append(normalise(redact(item), scope))
    return scopes, records


# ---------------------------------------------------------------- plan and fetch (I/O)


@dataclass
class Listing:
    """What one aggregatedList walk of a project returned (documents unredacted)."""

    instances: list[dict[str, Any]] = field(default_factory=list)
    zones: set[str] = field(default_factory=set)
    """Zones the response mentions as reachable (with instances or only a warning)."""
    unreachable: dict[str, str] = field(default_factory=dict)
    """``zones/Z`` (or ``regions/R``) → why it is missing."""
    unplaced: list[str] = field(default_factory=list)
    """Unreachable scopes that name no zone or region."""
    calls: int = 0


@dataclass(frozen=True)
class Backoff:
    """Retries throttled and transient calls: ``max_attempts`` in all per call."""

    max_attempts: int
    base_delay: float = BASE_DELAY
    max_delay: float = MAX_DELAY
    sleep: Callable[[float], None] = time.sleep

    def call(self, fn: Callable[[], Any], what: str) -> Any:
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as exc:
                if not _transient(exc):
                    raise
                if attempt >= self.max_attempts:
                    raise ProviderError(
                        f"{_describe(exc)} (gave up after {attempt} attempts)"
                    ) from None
                delay = self.delay(attempt, exc)
                logger.info(
                    "%s: %s; retry %d of %d in %.2fs",
                    what,
                    _describe(exc),
                    attempt,
                    self.max_attempts - 1,
                    delay,
                )
                self.sleep(delay)
                attempt += 1

    def delay(self, attempt: int, exc: Exception | None = None) -> float:
        """Full-jitter exponential delay; a server's Retry-After is honoured up to the cap."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        response = getattr(exc, "response", None)  # a failed requests.Response is falsy
        headers = getattr(response, "headers", None) if response is not None else None
        retry_after = headers.get("Retry-After") if headers is not None else None
        if isinstance(retry_after, str) and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), self.max_delay))
        return delay


def plan(config: Config, *, base_delay: float | None = None) -> Plan:
    """One unit per project; discovery and credential failures become failed outcomes.

    ``base_delay`` overrides :data:`BASE_DELAY` (read at call time) for this plan.
    """
    from google.cloud import compute_v1  # noqa: F401  (paid here, only when GCP runs)

    gcp = config.gcp
    if gcp is None:
        raise ConfigError("no [gcp] section in the configuration")
    backoff = Backoff(gcp.max_attempts, BASE_DELAY if base_delay is None else base_delay)
    out = Plan()
    projects = list(dict.fromkeys(gcp.projects))
    credentials = _Credentials(gcp)
    if gcp.organization is not None:
        try:
            found = discover_projects(
                gcp, credentials.for_endpoint(gcp.resource_manager_endpoint), backoff
            )
            logger.info("project discovery found %d active projects", len(found))
            projects.extend(p for p in found if p not in projects)
        except ProviderError as exc:
            out.results.append(
                ScopeResult(
                    Scope(PROVIDER, ALL, ALL), Outcome.FAILED, f"project discovery failed: {exc}"
                )
            )
    try:
        compute_credentials = credentials.for_endpoint(gcp.endpoint)
    except ProviderError as exc:
        out.results.extend(
            ScopeResult(Scope(PROVIDER, p, ALL), Outcome.FAILED, str(exc)) for p in projects
        )
        return out
    for project in projects:
        out.units.append(
            WorkUnit(
                label=f"{PROVIDER}/{project}",
                scopes=(Scope(PROVIDER, project, ALL),),
                run=_project_runner(project, gcp, compute_credentials, backoff),
            )
        )
    return out


class _Credentials:
    """Loads credentials once, lazily, and only for endpoints that need them."""

    def __init__(self, gcp: GcpConfig) -> None:
        self.gcp = gcp
        self._loaded: Any = None
        self._error: ProviderError | None = None

    def for_endpoint(self, endpoint: str | None) -> Any:
        from google.auth.credentials import AnonymousCredentials

        if endpoint and endpoint.startswith("http://") and self.gcp.credentials_file is None:
            logger.info("plain-http endpoint %s: sending no credentials", endpoint)
            return AnonymousCredentials()
        if self._error is not None:  # ADC may have waited on a metadata probe: once is enough
            raise self._error
        if self._loaded is None:
            try:
                self._loaded = self._load()
            except ProviderError as exc:
                self._error = exc
                raise
        return self._loaded

    def _load(self) -> Any:
        import google.auth
        from google.auth.exceptions import GoogleAuthError

        path = self.gcp.credentials_file
        try:
            if path is None:
                credentials, _ = google.auth.default(scopes=list(SCOPES))
            else:
                credentials = _service_account(path)
        except (GoogleAuthError, OSError, ValueError) as exc:
            source = f"credentials_file {path}" if path else "Application Default Credentials"
            raise ProviderError(f"cannot load {source}: {_one_line(str(exc))}") from None
        return credentials


def _service_account(path: Path) -> Any:
    """A service-account key file, and nothing else.

    The generic loader would also run external-account configurations (which can name an
    executable to run); those belong in ADC (``GOOGLE_APPLICATION_CREDENTIALS``), where the
    operator opts into them knowingly.
    """
    from google.oauth2 import service_account

    with path.open(encoding="utf-8") as handle:
        info = json.load(handle)
    kind = info.get("type") if isinstance(info, dict) else None
    if kind != "service_account":
        raise ValueError(
            f"type {kind!r} is not a service account key; use Application "
            "Default Credentials (GOOGLE_APPLICATION_CREDENTIALS) for other kinds"
        )
    return service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))


def _client_options(endpoint: str | None) -> dict[str, str] | None:
    return {"api_endpoint": endpoint} if endpoint else None


def discover_projects(gcp: GcpConfig, credentials: Any, backoff: Backoff) -> list[str]:
    """Active project ids below ``organization.parent`` (or all the credential can see)."""
    from google.cloud import resourcemanager_v3

    assert gcp.organization is not None
    options = _client_options(gcp.resource_manager_endpoint)
    parent = gcp.organization.parent
    try:
        projects_client = resourcemanager_v3.ProjectsClient(
            credentials=credentials, transport="rest", client_options=options
        )
        containers: list[str | None] = [parent]
        if parent is not None:
            folders_client = resourcemanager_v3.FoldersClient(
                credentials=credentials, transport="rest", client_options=options
            )
            containers = list(_folder_tree(folders_client, parent, backoff))
        found: list[str] = []
        active = resourcemanager_v3.Project.State.ACTIVE
        for container in containers:
            request = resourcemanager_v3.SearchProjectsRequest(
                query=f"parent:{container}" if container else ""
            )
            for page in _pages(
                projects_client.search_projects,
                request,
                backoff,
                f"projects.search {container or '(all)'}",
            ):
                found.extend(p.project_id for p in page.projects if p.state == active)
    except Exception as exc:
        raise _translated(exc) from None
    return list(dict.fromkeys(found))


def _folder_tree(client: Any, parent: str, backoff: Backoff) -> Iterator[str]:
    """``parent`` and every active folder below it, breadth first."""
    from google.cloud import resourcemanager_v3

    active = resourcemanager_v3.Folder.State.ACTIVE
    queue, seen = [parent], {parent}
    while queue:
        container = queue.pop(0)
        yield container
        request = resourcemanager_v3.ListFoldersRequest(parent=container)
        for page in _pages(client.list_folders, request, backoff, f"folders.list {container}"):
            for folder in page.folders:
                if folder.state == active and folder.name not in seen:
                    seen.add(folder.name)
                    queue.append(folder.name)


def _pages(call: Callable[..., Any], request: Any, backoff: Backoff, what: str) -> Iterator[Any]:
    """Each page of a list call, every page retried on its own.

    The SDK pager fetches later pages itself, out of reach of our retry; so each call here
    returns a pager whose attributes are those of exactly one response, and the page token
    is carried by hand. The library's own retry is off (``retry=None``): ours is the bound.
    """
    previous = None
    while True:
        response = backoff.call(lambda: call(request=request, retry=None, timeout=TIMEOUT), what)
        yield response
        token = response.next_page_token
        if not token:
            return
        if token == previous:
            raise ProviderError(f"{what}: the API repeated page token {token!r}")
        previous = request.page_token = token


def _project_runner(
    project: str, gcp: GcpConfig, credentials: Any, backoff: Backoff
) -> Callable[[], UnitResult]:
    def run() -> UnitResult:
        from google.cloud import compute_v1

        started = time.monotonic()
        try:
            with compute_v1.InstancesClient(
                credentials=credentials,
                transport="rest",
                client_options=_client_options(gcp.endpoint),
            ) as client:
                listing = fetch(client, project, backoff)
        except Exception as exc:
            raise _translated(exc) from None
        records = []
        for raw in listing.instances:
            zone = last_segment(raw["zone"]) or ""
            records.append(normalise(redact(raw), Scope(PROVIDER, project, region_of_zone(zone))))
        duration = time.monotonic() - started
        logger.info(
            "project %s: %d instances in %d zones, %d unreachable, %d calls",
            project,
            len(records),
            len(listing.zones),
            len(listing.unreachable),
            listing.calls,
        )
        return UnitResult(records, scope_results(project, listing, records, duration))

    return run


def fetch(client: Any, project: str, backoff: Backoff) -> Listing:
    """Walk ``instances.aggregatedList`` of one project; documents in the camelCase wire shape."""
    from google.cloud import compute_v1
    from google.protobuf.json_format import MessageToDict

    listing = Listing()
    request = compute_v1.AggregatedListInstancesRequest(
        project=project, max_results=PAGE_SIZE, include_all_scopes=True
    )
    for page in _pages(client.aggregated_list, request, backoff, f"project {project}"):
        listing.calls += 1
        for entry in page.unreachables:
            _mark_unreachable(listing, entry, "listed as unreachable")
        for key, scoped in page.items.items():
            kind, _, name = key.partition("/")
            if kind != "zones" or not name:
                continue
            if "warning" in scoped and scoped.warning.code == "UNREACHABLE":
                _mark_unreachable(listing, key, "reported UNREACHABLE")
                continue
            listing.zones.add(name)
            for instance in scoped.instances:
                listing.instances.append(MessageToDict(type(instance).pb(instance)))
    listing.zones -= {k.partition("/")[2] for k in listing.unreachable if k.startswith("zones/")}
    return listing


def _mark_unreachable(listing: Listing, entry: str, why: str) -> None:
    """``zones/Z``, a zone URL or a bare zone name; ``regions/R``; anything else is unplaced."""
    match = _SCOPE_KEY.search(entry)
    if match is not None:
        listing.unreachable[f"{match.group(1)}/{match.group(2)}"] = why
    elif entry and "/" not in entry and "-" in entry:
        listing.unreachable[f"zones/{entry}"] = why
    else:
        listing.unplaced.append(entry)


# ---------------------------------------------------------------- errors


def _reasons(exc: Any) -> set[str]:
    reasons = {getattr(exc, "reason", None)}
    reasons.update(
        e.get("reason") for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)
    )
    return {r for r in reasons if r}


def _transient(exc: Exception) -> bool:
    """Throttling, 5xx and broken connections: worth another attempt after a pause."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import TransportError

    if isinstance(exc, gexc.TooManyRequests | gexc.ServerError | gexc.DeadlineExceeded):
        return True
    if isinstance(exc, gexc.Forbidden):
        return bool(_reasons(exc) & _RATE_LIMIT_REASONS)
    return isinstance(exc, requests.ConnectionError | requests.Timeout | TransportError)


def _translated(exc: Exception) -> Exception:
    """The exception to raise at the provider boundary: ours as it is, a Google API or
    transport error as a one-line ProviderError, anything else (a bug) untouched."""
    if isinstance(exc, ProviderError) or not _translatable(exc):
        return exc
    return ProviderError(_describe(exc))


def _translatable(exc: Exception) -> bool:
    """SDK, auth and transport errors: the ones turned into ProviderError at this boundary."""
    import requests
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    return isinstance(exc, GoogleAPIError | GoogleAuthError | requests.RequestException)


def _describe(exc: Exception) -> str:
    """One line: what kind of failure, the HTTP code and reason, the server's message."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import InvalidOperation

    if isinstance(exc, InvalidOperation) and "Anonymous" in str(exc):
        # A 401 makes the session refresh its credentials, which anonymous ones cannot.
        return (
            "not authenticated (HTTP 401): the endpoint wants credentials, and none are sent "
            "to a plain-http endpoint unless credentials_file is set"
        )
    if not isinstance(exc, gexc.GoogleAPICallError):
        return f"{type(exc).__name__}: {_one_line(str(exc))}"
    reasons = _reasons(exc)
    if reasons & _DISABLED_REASONS:
        kind = "Compute Engine API not enabled"
    elif reasons & _RATE_LIMIT_REASONS or isinstance(exc, gexc.TooManyRequests):
        kind = "rate limited"
    elif isinstance(exc, gexc.Forbidden):
        kind = "access denied"
    elif isinstance(exc, gexc.NotFound):
        kind = "not found"
    elif isinstance(exc, gexc.Unauthorized):
        kind = "not authenticated"
    else:
        kind = type(exc).__name__
    legacy = [e.get("reason") for e in exc.errors or [] if isinstance(e, dict) and e.get("reason")]
    reason = legacy[0] if legacy else (exc.reason or "")
    message = _REQUEST_PREFIX.sub("", _one_line(exc.message or ""))
    return f"{kind} (HTTP {exc.code}{' ' + reason if reason else ''}): {message}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
